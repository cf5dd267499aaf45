//! Wire protocols. Each provider is one file that describes itself behind
//! the [`Wire`] trait: URL parameters, where the credential goes, the
//! handshake, what confirms audio, keepalive and finalize frames, the close
//! codes peculiar to it, and the parser of its messages. The session only
//! ever talks to a `&'static dyn Wire`.
//!
//! Adding a provider is one new file here plus one line in [`providers!`]
//! below (see docs/architecture.md).

mod deepgram;
mod generic;
mod omi;

use super::error::ConfigError;
use super::event::{ErrorCode, Transcript};
use super::io::{Credential, Frame};
use super::watchdog::Expectation;

/// The providers, one line each: `Variant => module::Type`, where `Type`
/// implements [`Wire`]. Generates the [`Provider`] enum and its dispatch.
macro_rules! providers {
    ($($(#[$doc:meta])* $variant:ident => $module:ident::$spec:ident,)+) => {
        /// Which backend wire protocol the session speaks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Provider {
            $($(#[$doc])* $variant,)+
        }

        impl Provider {
            /// Every provider, in declaration order.
            pub const ALL: &'static [Provider] = &[$(Provider::$variant,)+];

            /// The provider's description.
            pub(crate) fn wire(self) -> &'static dyn Wire {
                match self {
                    $(Provider::$variant => &$module::$spec,)+
                }
            }
        }
    };
}

providers! {
    /// Deepgram's live streaming API (`/v1/listen`).
    Deepgram => deepgram::Deepgram,
    /// Omi's browser endpoint (`/v4/web/listen`), first-message auth.
    Omi => omi::Omi,
    /// The generic resumable protocol of `docs/protocol.md` (`/v1/stream`).
    Generic => generic::Generic,
}

impl Provider {
    /// Parses the JavaScript option value.
    pub fn parse(name: &str) -> Result<Provider, ConfigError> {
        Provider::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<String> = Provider::ALL
                    .iter()
                    .map(|p| ["\"", p.as_str(), "\""].concat())
                    .collect();
                ConfigError::new(
                    "provider",
                    ["\"", name, "\""].concat(),
                    ["one of ", &names.join(", ")].concat(),
                )
            })
    }

    /// The JavaScript option value.
    pub fn as_str(self) -> &'static str {
        self.wire().name()
    }
}

/// Where a provider takes the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Subprotocols `[scheme, token]` (browsers cannot set headers): the
    /// token must be a header token.
    Subprotocol,
    /// In the provider's first message, after open: required.
    FirstMessage,
}

/// What a provider file declares about its wire protocol.
pub(crate) trait Wire: Sync {
    /// The option value (`provider: "deepgram"`).
    fn name(&self) -> &'static str;

    /// Query parameters the provider needs, added to the user's URL unless
    /// it has them already.
    fn url_params(&self, f: Format) -> Vec<(&'static str, String)>;

    /// Where the credential goes.
    fn auth(&self) -> Auth;

    /// The first frame after open, if any (Omi's auth, generic's start):
    /// `offset` is where the stream resumes, `final_from_ms` the stream time
    /// up to which the client already has final transcripts.
    fn first_frame(
        &self,
        _token: Option<&str>,
        _stream: &str,
        _offset: u64,
        _final_from_ms: u64,
    ) -> Option<Frame> {
        None
    }

    /// The most audio channels its endpoint transcribes.
    fn max_channels(&self) -> u16 {
        2
    }

    /// The frame asking the server to finalize what it has without ending
    /// the stream (push-to-talk: the end of an utterance), where the
    /// protocol has one.
    fn flush(&self) -> Option<Frame> {
        None
    }

    /// Readiness waits for the provider's acknowledgement after open.
    fn has_handshake(&self) -> bool {
        false
    }

    /// The server acknowledges stream byte offsets (the connection resumes).
    fn acks(&self) -> bool {
        false
    }

    /// Transcript times count from the start of each socket's audio
    /// (Deepgram, Omi) rather than from the start of the stream.
    fn socket_clock(&self) -> bool {
        true
    }

    /// When the server is expected to speak.
    fn expectation(&self) -> Expectation {
        Expectation::AnswersAudio
    }

    /// The keepalive frame.
    fn keepalive(&self) -> Frame;

    /// The frame asking the server to finish (final results, then close);
    /// `None`: the session closes once the audio is confirmed or the
    /// linger ends.
    fn finalize(&self) -> Option<Frame>;

    /// The frame announcing that the next audio starts at `offset` after a
    /// gap, where the protocol has one.
    fn seek(&self, _offset: u64) -> Option<Frame> {
        None
    }

    /// Interprets a text frame; one frame may hold several results.
    fn parse(&self, text: &str, out: &mut Vec<Parsed>);

    /// A close the provider classifies itself (its error classes), before
    /// the common table; `None` defers to it.
    fn close_class(&self, _code: u16, _reason: &str) -> Option<CloseClass> {
        None
    }
}

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
    /// socket's audio on one channel (the end of a Deepgram final, of an Omi
    /// segment): an implicit acknowledgement of everything before it, once
    /// every channel's finals reached it.
    Processed {
        /// The channel the result is for.
        channel: u32,
        /// Seconds of this socket's audio.
        secs: f64,
    },
    /// The server finalized everything it had (generic `flushed`).
    Flushed,
    /// Proof of life with nothing to report (`ping`).
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

/// What a provider's URL parameters describe: the audio on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    pub sample_rate: u32,
    pub channels: u16,
}

/// The URL to open: the user's `base` URL plus the provider's parameters
/// (and `language`), unless the user already set them.
pub(crate) fn url(wire: &dyn Wire, base: &str, f: Format, language: Option<&str>) -> String {
    let mut params = wire.url_params(f);
    if let Some(lang) = language {
        params.retain(|(k, _)| *k != "language");
        params.push(("language", lang.to_string()));
    }
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    append_query(base, &borrowed)
}

/// Subprotocols to offer: the credential as `[scheme, T]` where the
/// provider takes it there (`["token", K]`, `["bearer", JWT]`), then the
/// user's own.
pub(crate) fn protocols(
    wire: &dyn Wire,
    user: &[String],
    cred: Option<&Credential>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(c), Auth::Subprotocol) = (cred, wire.auth()) {
        out.push(c.scheme.as_str().to_string());
        out.push(c.token.clone());
    }
    out.extend(
        user.iter()
            .filter(|p| !out.contains(p))
            .cloned()
            .collect::<Vec<_>>(),
    );
    out
}

/// RFC 7230 `token` characters, as WebSocket subprotocols require.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a credential can be presented the way `wire` takes it.
pub(crate) fn token_usable(wire: &dyn Wire, c: &Credential) -> bool {
    match wire.auth() {
        Auth::Subprotocol => is_token(&c.token),
        Auth::FirstMessage => !c.token.is_empty(),
    }
}

/// The close-code table. `finishing` is true once our finalize went out:
/// then a normal close (1000) is the end of the stream. Any other code is
/// what it always is: a network failure while we waited for the finals
/// (1006) must reconnect and finalize again, not end the stream.
pub(crate) fn classify_close(
    wire: &dyn Wire,
    code: u16,
    reason: &str,
    finishing: bool,
) -> CloseClass {
    if finishing && code == 1000 {
        return CloseClass::Finished;
    }
    if let Some(c) = wire.close_class(code, reason) {
        return c;
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

/// Appends `params` to `url`'s query, skipping keys the URL already has.
pub(crate) fn append_query(url: &str, params: &[(&str, &str)]) -> String {
    // By byte ('?', '&' and '=' are ASCII), not with `str` patterns, whose
    // searchers cost WASM bytes.
    let query = url
        .bytes()
        .position(|b| b == b'?')
        .map(|i| &url.as_bytes()[i + 1..]);
    let has = |key: &str| {
        query.is_some_and(|q| {
            q.split(|&b| b == b'&')
                .any(|kv| kv.split(|&b| b == b'=').next() == Some(key.as_bytes()))
        })
    };
    let mut out = url.to_string();
    let mut sep = if query.is_some() { '&' } else { '?' };
    for (k, v) in params {
        if has(k) {
            continue;
        }
        out.push(sep);
        sep = '&';
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
    use crate::core::io::TokenScheme;

    const MONO: Format = Format {
        sample_rate: 16_000,
        channels: 1,
    };

    #[test]
    fn url_gets_provider_parameters_without_overriding_the_users() {
        assert_eq!(
            url(
                Provider::Deepgram.wire(),
                "wss://h/v1/listen?model=nova-3&sample_rate=48000",
                MONO,
                Some("en US")
            ),
            "wss://h/v1/listen?model=nova-3&sample_rate=48000&encoding=linear16&channels=1&language=en%20US"
        );
        assert_eq!(
            url(Provider::Omi.wire(), "ws://127.0.0.1:8787/v4/web/listen", MONO, None),
            "ws://127.0.0.1:8787/v4/web/listen?language=en&sample_rate=16000&codec=pcm16&channels=1"
        );
    }

    #[test]
    fn query_keys_are_matched_whole() {
        let p = [("a", "1"), ("b", "2")];
        assert_eq!(append_query("ws://h/p", &p), "ws://h/p?a=1&b=2");
        assert_eq!(append_query("ws://h/p?", &p), "ws://h/p?&a=1&b=2");
        // `ab=` and `=a` are not `a`; a bare `b` is.
        assert_eq!(
            append_query("ws://h/p?ab=0&=a&b", &p),
            "ws://h/p?ab=0&=a&b&a=1"
        );
        assert_eq!(append_query("ws://h/p?x=1&a", &p), "ws://h/p?x=1&a&b=2");
    }

    #[test]
    fn two_channels_ask_deepgram_for_a_transcript_per_channel() {
        let stereo = Format {
            channels: 2,
            ..MONO
        };
        assert_eq!(
            url(Provider::Deepgram.wire(), "wss://h/v1/listen", stereo, None),
            "wss://h/v1/listen?encoding=linear16&sample_rate=16000&channels=2&multichannel=true"
        );
    }

    #[test]
    fn token_goes_into_subprotocols_for_deepgram_and_first_message_for_omi() {
        let none: &[String] = &[];
        let dg = Provider::Deepgram.wire();
        let key = Credential::token("K");
        assert_eq!(protocols(dg, none, Some(&key)), ["token", "K"]);
        let jwt = Credential {
            token: "a.b.c".into(),
            scheme: TokenScheme::Bearer,
        };
        assert_eq!(protocols(dg, none, Some(&jwt)), ["bearer", "a.b.c"]);
        assert_eq!(protocols(dg, none, None), Vec::<String>::new());
        let omi = Provider::Omi.wire();
        assert!(protocols(omi, none, Some(&key)).is_empty());
        assert_eq!(
            omi.first_frame(Some("K\"x"), "", 0, 0),
            Some(Frame::Text(r#"{"type":"auth","token":"K\"x"}"#.into()))
        );
    }

    #[test]
    fn close_table_separates_fatal_retryable_and_finished() {
        use CloseClass::*;
        let dg = Provider::Deepgram.wire();
        for code in [1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 4000, 4999] {
            assert_eq!(classify_close(dg, code, "", false), Retry, "{code}");
        }
        assert_eq!(
            classify_close(dg, 1008, "", false),
            Fatal(ErrorCode::AuthFailed)
        );
        assert_eq!(
            classify_close(dg, 1003, "", false),
            Fatal(ErrorCode::BadAudio)
        );
        assert_eq!(
            classify_close(dg, 1008, "DATA-0000", false),
            Fatal(ErrorCode::BadAudio)
        );
        assert_eq!(classify_close(dg, 1011, "NET-0001", false), Retry);
        assert_eq!(
            classify_close(dg, 4001, "", false),
            Fatal(ErrorCode::AuthFailed)
        );
        assert_eq!(classify_close(dg, 1000, "", true), Finished);
        assert_eq!(classify_close(dg, 1006, "", true), Retry);
        assert_eq!(classify_close(dg, 1011, "", true), Retry);
        assert_eq!(
            classify_close(dg, 1008, "", true),
            Fatal(ErrorCode::AuthFailed)
        );
    }

    #[test]
    fn every_provider_parses_its_own_name() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Ok(*p));
        }
        let e = Provider::parse("azure").unwrap_err();
        assert_eq!(e.field, "provider");
        assert!(
            e.to_string().contains("\"deepgram\", \"omi\", \"generic\""),
            "{e}"
        );
    }
}
