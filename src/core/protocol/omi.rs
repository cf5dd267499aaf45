//! Omi's browser endpoint (`/v4/web/listen`): first-message auth, `ping`
//! heartbeats, transcripts as JSON arrays of segments, typed event objects.

use super::{Auth, Format, Parsed, Wire};
use crate::core::event::Transcript;
use crate::core::io::Frame;
use crate::core::json::{self, Value};
use crate::core::watchdog::Expectation;

/// Omi's browser endpoint.
///
/// - handshake: the first message `{"type":"auth","token":T}`; ready on
///   `auth_response` success. A token is required.
/// - confirms audio: the `end` of transcript segments, in this socket's
///   audio time; `ping`s confirm nothing.
/// - heartbeats: `ping` every 10 s (silence is suspicious at any time).
/// - keepalive: a binary frame of two zero bytes; no finalize message.
pub(super) struct Omi;

impl Wire for Omi {
    fn name(&self) -> &'static str {
        "omi"
    }

    fn url_params(&self, f: Format) -> Vec<(&'static str, String)> {
        vec![
            ("language", "en".into()),
            ("sample_rate", crate::core::text::int(f.sample_rate.into())),
            ("codec", "pcm16".into()),
            ("channels", "1".into()),
        ]
    }

    fn auth(&self) -> Auth {
        Auth::FirstMessage
    }

    fn first_frame(&self, token: Option<&str>, _: &str, _: u64, _: u64) -> Option<Frame> {
        Some(auth(token.unwrap_or("")))
    }

    fn has_handshake(&self) -> bool {
        true
    }

    /// `/v4/web/listen` transcribes one audio stream (`channels=1`); two
    /// channels are refused when the client is created.
    fn max_channels(&self) -> u16 {
        1
    }

    fn expectation(&self) -> Expectation {
        Expectation::Heartbeat
    }

    fn keepalive(&self) -> Frame {
        // Omi treats binary frames of at most two bytes as keepalives; two
        // zero bytes are also harmless as one silent sample.
        Frame::Binary(vec![0, 0])
    }

    fn finalize(&self) -> Option<Frame> {
        None
    }

    fn parse(&self, text: &str, out: &mut Vec<Parsed>) {
        parse(text, out)
    }
}

fn auth(token: &str) -> Frame {
    let mut s = String::from(r#"{"type":"auth","token":"#);
    json::push_str(&mut s, token);
    s.push('}');
    Frame::Text(s)
}

fn parse(text: &str, out: &mut Vec<Parsed>) {
    if text == "ping" {
        return out.push(Parsed::Heartbeat);
    }
    let v = match Value::parse(text) {
        Ok(v) => v,
        Err(e) => return out.push(Parsed::Malformed(e.message())),
    };
    match &v {
        Value::Array(segments) => {
            for s in segments {
                out.push(segment(s));
                // A segment is audio the server has processed into the
                // transcript it keeps: its end, in this socket's audio
                // time, confirms what came before. Pings and other frames
                // confirm nothing (a server can keep pinging while it no
                // longer reads).
                if let Some(end) = s.num_field("end").filter(|e| *e > 0.0) {
                    out.push(Parsed::Processed {
                        channel: 0,
                        secs: end,
                    });
                }
            }
        }
        Value::Object(_) => match v.str_field("type") {
            Some("auth_response") => match v.get("success").and_then(Value::as_bool) {
                Some(true) => out.push(Parsed::Ready),
                _ => {
                    let why = v
                        .str_field("error")
                        .or(v.str_field("message"))
                        .unwrap_or("rejected");
                    out.push(Parsed::AuthRejected(why.to_string()));
                }
            },
            Some("error") => {
                let what = v
                    .str_field("message")
                    .or(v.str_field("error"))
                    .unwrap_or("unspecified");
                out.push(Parsed::ServerError(what.to_string()));
            }
            // service_status, memory events, translations, types added
            // later...: informational.
            _ => out.push(Parsed::Message),
        },
        // A well-formed value of a shape Omi may add later.
        _ => out.push(Parsed::Message),
    }
}

fn segment(s: &Value) -> Parsed {
    let Some(text) = s.str_field("text") else {
        return Parsed::Malformed("segment without text".into());
    };
    Parsed::Transcript(Transcript {
        text: text.to_string(),
        // Omi sends segments as its recogniser commits them.
        is_final: true,
        speech_final: false,
        start: s.num_field("start").unwrap_or(0.0),
        end: s.num_field("end").unwrap_or(0.0),
        speaker: s.str_field("speaker").map(str::to_string),
        channel: 0,
        words: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_arrays_auth_and_ping() {
        let mut out = Vec::new();
        parse(
            r#"[{"id":"a","text":"hello","speaker":"SPEAKER_00","speaker_id":0,"is_user":false,"start":0.5,"end":1.0},
               {"id":"b","text":"world","speaker":"SPEAKER_01","start":1.0,"end":1.4}]"#,
            &mut out,
        );
        parse("ping", &mut out);
        parse(r#"{"type":"auth_response","success":true}"#, &mut out);
        parse(r#"{"type":"auth_response","success":false}"#, &mut out);
        parse(r#"{"type":"service_status","status":"ready"}"#, &mut out);
        parse(r#"{"no":"type"}"#, &mut out);
        parse("pong?", &mut out);
        assert!(
            matches!(&out[0], Parsed::Transcript(t) if t.text == "hello" && t.speaker.as_deref() == Some("SPEAKER_00"))
        );
        assert_eq!(
            out[1],
            Parsed::Processed {
                channel: 0,
                secs: 1.0
            }
        );
        assert!(matches!(&out[2], Parsed::Transcript(t) if t.text == "world" && t.end == 1.4));
        assert_eq!(
            out[3],
            Parsed::Processed {
                channel: 0,
                secs: 1.4
            }
        );
        assert_eq!(out[4], Parsed::Heartbeat);
        assert_eq!(out[5], Parsed::Ready);
        assert!(matches!(out[6], Parsed::AuthRejected(_)));
        assert_eq!(out[7], Parsed::Message);
        assert_eq!(out[8], Parsed::Message, "an object of a new shape");
        assert!(matches!(out[9], Parsed::Malformed(_)), "not JSON");
    }
}
