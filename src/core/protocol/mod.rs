//! Wire protocols: URL building, auth placement, parsing of server messages
//! into one transcript type, keepalive and finalize frames, and the table of
//! which close codes are fatal, retryable or a normal end.

mod deepgram;
mod generic;
mod omi;

use super::config::{Config, Provider};
use super::event::{ErrorCode, Transcript};
use super::io::{Credential, Frame};
use super::watchdog::Expectation;

/// What a server frame means to the session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// A transcript.
    Transcript(Transcript),
    /// The provider's session handshake succeeded (Omi `auth_response`).
    Ready,
    /// The provider's session handshake failed: fatal.
    AuthRejected(String),
    /// The server holds every byte below this offset (generic).
    Ack(u64),
    /// Answer to `start`: the server's high-water mark for the stream
    /// (generic). Informational only: it confirms nothing, because the
    /// protocol does not promise the server stored what it reports.
    Resumed(u64),
    /// A final result of the server covers this many seconds of the current
    /// socket's audio (the end of a Deepgram final, of an Omi segment): an
    /// implicit acknowledgement of everything before it.
    Processed(f64),
    /// Proof of life with nothing to report (`ping`, `started`).
    Heartbeat,
    /// End of stream after our finalize (generic `finished`).
    Finished,
    /// A well-formed message that is not a transcript: a `message` event.
    Message,
    /// The server reported an error: `message` plus a non-fatal `error` event.
    ServerError(String),
    /// Not understood: `message` plus a non-fatal `error` event.
    Malformed(String),
}

/// How the session reacts to a close of its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseClass {
    /// Reconnect with backoff.
    Retry,
    /// Stop: `failed`, `error` with `fatal: true`.
    Fatal(ErrorCode),
    /// The normal end of a session we were closing.
    Finished,
}

/// The protocol of one provider, with the configuration it needs.
#[derive(Debug, Clone)]
pub(crate) struct Protocol {
    provider: Provider,
}

impl Protocol {
    pub(crate) fn new(provider: Provider) -> Protocol {
        Protocol { provider }
    }

    /// The URL to open: the user's URL plus the parameters the provider
    /// needs, unless the user already set them.
    pub(crate) fn url(&self, cfg: &Config) -> String {
        let rate = cfg.sample_rate.to_string();
        let mut params: Vec<(&str, &str)> = match self.provider {
            Provider::Deepgram => vec![
                ("encoding", "linear16"),
                ("sample_rate", &rate),
                ("channels", "1"),
            ],
            Provider::Omi => vec![
                ("language", "en"),
                ("sample_rate", &rate),
                ("codec", "pcm16"),
                ("channels", "1"),
            ],
            Provider::Generic => vec![
                ("encoding", "linear16"),
                ("sample_rate", &rate),
                ("channels", "1"),
            ],
        };
        if let Some(lang) = &cfg.language {
            params.retain(|(k, _)| *k != "language");
            params.push(("language", lang));
        }
        append_query(&cfg.url, &params)
    }

    /// Subprotocols to offer. Deepgram and generic carry the credential as
    /// `[scheme, T]`, `["token", K]` or `["bearer", JWT]` (browsers cannot
    /// set an Authorization header).
    pub(crate) fn protocols(&self, cfg: &Config, cred: Option<&Credential>) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(c), Provider::Deepgram | Provider::Generic) = (cred, self.provider) {
            out.push(c.scheme.as_str().to_string());
            out.push(c.token.clone());
        }
        out.extend(
            cfg.protocols
                .iter()
                .filter(|p| !out.contains(p))
                .cloned()
                .collect::<Vec<_>>(),
        );
        out
    }

    /// Whether readiness waits for a server acknowledgement after open.
    pub(crate) fn has_handshake(&self) -> bool {
        self.provider == Provider::Omi
    }

    /// Whether the server acknowledges byte offsets (resumable).
    pub(crate) fn acks(&self) -> bool {
        self.provider == Provider::Generic
    }

    /// Whether transcript times count from the start of each socket's
    /// audio (Deepgram, Omi) rather than from the start of the stream
    /// (generic, which resumes at byte offsets).
    pub(crate) fn socket_clock(&self) -> bool {
        self.provider != Provider::Generic
    }

    /// The first frame after open, if any: Omi's auth, generic's start
    /// (resuming at `offset`, with finals wanted after `final_from_ms`).
    pub(crate) fn first_frame(
        &self,
        token: Option<&str>,
        stream: &str,
        offset: u64,
        final_from_ms: u64,
    ) -> Option<Frame> {
        match self.provider {
            Provider::Deepgram => None,
            Provider::Omi => Some(omi::auth(token.unwrap_or(""))),
            Provider::Generic => Some(generic::start(stream, offset, final_from_ms)),
        }
    }

    /// The frame announcing that the next audio starts at `offset` after a
    /// gap (generic only).
    pub(crate) fn seek(&self, offset: u64) -> Option<Frame> {
        (self.provider == Provider::Generic).then(|| generic::seek(offset))
    }

    /// When the server is expected to speak.
    pub(crate) fn expectation(&self) -> Expectation {
        match self.provider {
            Provider::Omi => Expectation::Heartbeat,
            Provider::Deepgram | Provider::Generic => Expectation::AnswersAudio,
        }
    }

    /// The keepalive frame.
    pub(crate) fn keepalive(&self) -> Frame {
        match self.provider {
            Provider::Deepgram => Frame::Text(r#"{"type":"KeepAlive"}"#.into()),
            // Omi treats binary frames of at most two bytes as keepalives;
            // two zero bytes are also harmless as one silent sample.
            Provider::Omi => Frame::Binary(vec![0, 0]),
            Provider::Generic => Frame::Text(r#"{"type":"keepalive"}"#.into()),
        }
    }

    /// The frame asking the server to finish: final results, then close.
    /// Omi has none: the session closes once the audio is sent.
    pub(crate) fn finalize(&self) -> Option<Frame> {
        match self.provider {
            Provider::Deepgram => Some(Frame::Text(r#"{"type":"CloseStream"}"#.into())),
            Provider::Omi => None,
            Provider::Generic => Some(Frame::Text(r#"{"type":"finish"}"#.into())),
        }
    }

    /// Interprets a text frame. One frame may hold several results (Omi
    /// sends arrays of segments).
    pub(crate) fn parse_text(&self, text: &str, out: &mut Vec<Parsed>) {
        match self.provider {
            Provider::Deepgram => deepgram::parse(text, out),
            Provider::Omi => omi::parse(text, out),
            Provider::Generic => generic::parse(text, out),
        }
    }

    /// Interprets a binary frame: no provider sends audio back.
    pub(crate) fn parse_binary(&self, data: &[u8]) -> Parsed {
        Parsed::Malformed(format!("unexpected binary frame of {} bytes", data.len()))
    }

    /// The close-code table. `finishing` is true once our finalize went
    /// out: then a normal close (1000) is the end of the stream. Any other
    /// code is what it always is: a network failure while we waited for the
    /// finals (1006) must reconnect and finalize again, not end the stream.
    pub(crate) fn classify_close(&self, code: u16, reason: &str, finishing: bool) -> CloseClass {
        if finishing && code == 1000 {
            return CloseClass::Finished;
        }
        if self.provider == Provider::Deepgram {
            // Deepgram puts its error class in the reason: DATA-* means the
            // audio cannot be decoded (fatal), NET-* a network/idle problem.
            if reason.starts_with("DATA-") {
                return CloseClass::Fatal(ErrorCode::BadAudio);
            }
            if reason.starts_with("NET-") {
                return CloseClass::Retry;
            }
        }
        match code {
            1003 => CloseClass::Fatal(ErrorCode::BadAudio),
            1008 | 4001 | 4003 | 4401 | 4403 => CloseClass::Fatal(ErrorCode::AuthFailed),
            1002 | 1007 | 1009 | 1010 | 4400 => CloseClass::Fatal(ErrorCode::FatalClose),
            // 1000 unsolicited (iOS, proxies), 1001 going away, 1005/1006
            // no status / abnormal, 1011 server error, 1012 restart, 1013
            // try again later, 1014 bad gateway, 1015 TLS, and any other
            // application code: retry, within the attempt budget.
            _ => CloseClass::Retry,
        }
    }
}

/// Appends `params` to `url`'s query, skipping keys the URL already has.
pub(crate) fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    let existing: Vec<&str> = url
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .map(|kv| kv.split('=').next().unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    let mut out = url.to_string();
    for (k, v) in params {
        if existing.contains(k) {
            continue;
        }
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(k);
        out.push('=');
        percent_encode(v, &mut out);
    }
    out
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_gets_provider_parameters_without_overriding_the_users() {
        let mut cfg = Config::new(
            Provider::Deepgram,
            "wss://h/v1/listen?model=nova-3&sample_rate=48000",
        );
        cfg.language = Some("en US".into());
        let url = Protocol::new(Provider::Deepgram).url(&cfg);
        assert_eq!(
            url,
            "wss://h/v1/listen?model=nova-3&sample_rate=48000&encoding=linear16&channels=1&language=en%20US"
        );
        let cfg = Config::new(Provider::Omi, "ws://127.0.0.1:8787/v4/web/listen");
        assert_eq!(
            Protocol::new(Provider::Omi).url(&cfg),
            "ws://127.0.0.1:8787/v4/web/listen?language=en&sample_rate=16000&codec=pcm16&channels=1"
        );
    }

    #[test]
    fn token_goes_into_subprotocols_for_deepgram_and_first_message_for_omi() {
        let cfg = Config::new(Provider::Deepgram, "wss://h/");
        let dg = Protocol::new(Provider::Deepgram);
        let key = Credential::token("K");
        assert_eq!(dg.protocols(&cfg, Some(&key)), ["token", "K"]);
        let jwt = Credential {
            token: "a.b.c".into(),
            scheme: crate::core::io::TokenScheme::Bearer,
        };
        assert_eq!(dg.protocols(&cfg, Some(&jwt)), ["bearer", "a.b.c"]);
        assert_eq!(dg.protocols(&cfg, None), Vec::<String>::new());
        let omi = Protocol::new(Provider::Omi);
        assert!(omi.protocols(&cfg, Some(&key)).is_empty());
        assert_eq!(
            omi.first_frame(Some("K\"x"), "", 0, 0),
            Some(Frame::Text(r#"{"type":"auth","token":"K\"x"}"#.into()))
        );
    }

    #[test]
    fn close_table_separates_fatal_retryable_and_finished() {
        use CloseClass::*;
        let dg = Protocol::new(Provider::Deepgram);
        for code in [1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 4000, 4999] {
            assert_eq!(dg.classify_close(code, "", false), Retry, "{code}");
        }
        assert_eq!(
            dg.classify_close(1008, "", false),
            Fatal(ErrorCode::AuthFailed)
        );
        assert_eq!(
            dg.classify_close(1003, "", false),
            Fatal(ErrorCode::BadAudio)
        );
        assert_eq!(
            dg.classify_close(1008, "DATA-0000", false),
            Fatal(ErrorCode::BadAudio)
        );
        assert_eq!(dg.classify_close(1011, "NET-0001", false), Retry);
        assert_eq!(
            dg.classify_close(4001, "", false),
            Fatal(ErrorCode::AuthFailed)
        );
        assert_eq!(dg.classify_close(1000, "", true), Finished);
        assert_eq!(dg.classify_close(1006, "", true), Retry);
        assert_eq!(dg.classify_close(1011, "", true), Retry);
        assert_eq!(
            dg.classify_close(1008, "", true),
            Fatal(ErrorCode::AuthFailed)
        );
    }
}
