//! The generic resumable protocol of `docs/protocol.md` (`/v1/stream`).

use super::{Auth, Format, Parsed, Wire};
use crate::core::event::Transcript;
use crate::core::io::Frame;
use crate::core::json::{self, Value};
use crate::core::text::{int, num};

/// The generic resumable protocol.
///
/// - handshake: none; the first message `start` names the stream, the
///   offset it resumes at and `final_from`. Credential: subprotocols.
/// - confirms audio: `ack` of stream byte offsets (`started` is
///   informational); transcripts are in stream time.
/// - keepalive `{"type":"keepalive"}`; finalize `{"type":"finish"}`;
///   `seek` announces a gap the client reported.
pub(super) struct Generic;

impl Wire for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }

    fn url_params(&self, f: Format) -> Vec<(&'static str, String)> {
        vec![
            ("encoding", "linear16".into()),
            ("sample_rate", crate::core::text::int(f.sample_rate.into())),
            ("channels", crate::core::text::int(f.channels.into())),
        ]
    }

    fn auth(&self) -> Auth {
        Auth::Subprotocol
    }

    fn first_frame(
        &self,
        _token: Option<&str>,
        stream: &str,
        offset: u64,
        final_from_ms: u64,
    ) -> Option<Frame> {
        Some(start(stream, offset, final_from_ms))
    }

    fn acks(&self) -> bool {
        true
    }

    fn socket_clock(&self) -> bool {
        false
    }

    fn keepalive(&self) -> Frame {
        Frame::Text(r#"{"type":"keepalive"}"#.into())
    }

    fn finalize(&self) -> Option<Frame> {
        Some(Frame::Text(r#"{"type":"finish"}"#.into()))
    }

    fn seek(&self, offset: u64) -> Option<Frame> {
        Some(seek(offset))
    }

    fn flush(&self) -> Option<Frame> {
        Some(Frame::Text(r#"{"type":"flush"}"#.into()))
    }

    fn parse(&self, text: &str, out: &mut Vec<Parsed>) {
        parse(text, out)
    }
}

/// `start`, with `final_from`: the stream time (ms) up to which this
/// client already has final transcripts, so a server that keeps the
/// stream's transcripts resends the finals after it (those in flight when
/// the last connection died).
fn start(stream: &str, offset: u64, final_from_ms: u64) -> Frame {
    let mut s = String::from(r#"{"type":"start","stream":"#);
    json::push_str(&mut s, stream);
    s.push_str(r#","offset":"#);
    s.push_str(&int(offset));
    s.push_str(r#","final_from":"#);
    s.push_str(&num(final_from_ms as f64 / 1000.0));
    s.push('}');
    Frame::Text(s)
}

fn seek(offset: u64) -> Frame {
    Frame::Text([r#"{"type":"seek","offset":"#, &int(offset), "}"].concat())
}

fn parse(text: &str, out: &mut Vec<Parsed>) {
    if text == "ping" {
        return out.push(Parsed::Heartbeat);
    }
    let v = match Value::parse(text) {
        Ok(v) => v,
        Err(e) => return out.push(Parsed::Malformed(e.message())),
    };
    let p = match v.str_field("type") {
        Some("ack") => match v.num_field("offset") {
            Some(o) if o >= 0.0 => Parsed::Ack(o as u64),
            _ => Parsed::Malformed("ack without a valid offset".into()),
        },
        Some("started") => match v.num_field("offset") {
            Some(o) if o >= 0.0 => Parsed::Resumed(o as u64),
            _ => Parsed::Malformed("started without a valid offset".into()),
        },
        Some("finished") => Parsed::Finished,
        Some("flushed") => Parsed::Flushed,
        Some("transcript") => match v.str_field("text") {
            Some(text) => Parsed::Transcript(Transcript {
                text: text.to_string(),
                is_final: v.get("is_final").and_then(Value::as_bool).unwrap_or(false),
                speech_final: v
                    .get("speech_final")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                start: v.num_field("start").unwrap_or(0.0),
                end: v.num_field("end").unwrap_or(0.0),
                speaker: v.str_field("speaker").map(str::to_string),
                channel: v.num_field("channel").unwrap_or(0.0).max(0.0) as u32,
                words: Vec::new(),
            }),
            None => Parsed::Malformed("transcript without text".into()),
        },
        Some("error") => {
            Parsed::ServerError(v.str_field("message").unwrap_or("unspecified").to_string())
        }
        // Types a server adds later are messages, not errors.
        _ => Parsed::Message,
    };
    out.push(p);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_transcripts_and_frames() {
        let mut out = Vec::new();
        for t in [
            r#"{"type":"ack","offset":6400}"#,
            r#"{"type":"ack","offset":-1}"#,
            r#"{"type":"transcript","text":"hi","is_final":true,"start":0,"end":0.4}"#,
            r#"{"type":"finished","offset":6400}"#,
            r#"{"type":"started","stream":"s","offset":0}"#,
            r#"{"type":"progress","percent":3}"#,
        ] {
            parse(t, &mut out);
        }
        assert_eq!(out[0], Parsed::Ack(6400));
        assert!(matches!(out[1], Parsed::Malformed(_)));
        assert!(matches!(&out[2], Parsed::Transcript(t) if t.is_final && t.text == "hi"));
        assert_eq!(out[3], Parsed::Finished);
        assert_eq!(out[4], Parsed::Resumed(0));
        assert_eq!(out[5], Parsed::Message);
        assert_eq!(
            start("s1", 3200, 1_250),
            Frame::Text(r#"{"type":"start","stream":"s1","offset":3200,"final_from":1.25}"#.into())
        );
    }
}
