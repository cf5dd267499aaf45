//! The generic resumable protocol of `docs/protocol.md` (`/v1/stream`).

use super::Parsed;
use crate::core::event::Transcript;
use crate::core::io::Frame;
use crate::core::json::{self, Value};

pub(super) fn start(stream: &str, offset: u64) -> Frame {
    let mut s = String::from(r#"{"type":"start","stream":"#);
    json::push_str(&mut s, stream);
    s.push_str(&format!(r#","offset":{offset}}}"#));
    Frame::Text(s)
}

pub(super) fn seek(offset: u64) -> Frame {
    Frame::Text(format!(r#"{{"type":"seek","offset":{offset}}}"#))
}

pub(super) fn parse(text: &str, out: &mut Vec<Parsed>) {
    if text == "ping" {
        return out.push(Parsed::Heartbeat);
    }
    let v = match Value::parse(text) {
        Ok(v) => v,
        Err(e) => return out.push(Parsed::Malformed(e.to_string())),
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
            }),
            None => Parsed::Malformed("transcript without text".into()),
        },
        Some("error") => {
            Parsed::ServerError(v.str_field("message").unwrap_or("unspecified").to_string())
        }
        Some(other) => Parsed::Malformed(format!("unknown message type \"{other}\"")),
        None => Parsed::Malformed("message without a type".into()),
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
        ] {
            parse(t, &mut out);
        }
        assert_eq!(out[0], Parsed::Ack(6400));
        assert!(matches!(out[1], Parsed::Malformed(_)));
        assert!(matches!(&out[2], Parsed::Transcript(t) if t.is_final && t.text == "hi"));
        assert_eq!(out[3], Parsed::Finished);
        assert_eq!(out[4], Parsed::Resumed(0));
        assert_eq!(
            start("s1", 3200),
            Frame::Text(r#"{"type":"start","stream":"s1","offset":3200}"#.into())
        );
    }
}
