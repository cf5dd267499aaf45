//! Deepgram live streaming (`/v1/listen`): `Results` messages with
//! `channel.alternatives[0]`, plus `Metadata`, `UtteranceEnd`,
//! `SpeechStarted` and error reports.

use super::{Auth, CloseClass, Format, Parsed, Wire};
use crate::core::event::{ErrorCode, Transcript, Word};
use crate::core::io::Frame;
use crate::core::json::Value;
use crate::core::text::int;

/// Deepgram's live streaming API.
///
/// - handshake: none; ready on open. Credential: subprotocols `token, K` or
///   `bearer, JWT`.
/// - confirms audio: the end of the last FINAL result, in this socket's
///   audio time; interim results confirm nothing.
/// - keepalive `{"type":"KeepAlive"}`; finalize `{"type":"CloseStream"}`.
/// - close reasons `DATA-*` (bad audio, fatal) and `NET-*` (retry).
pub(super) struct Deepgram;

impl Wire for Deepgram {
    fn name(&self) -> &'static str {
        "deepgram"
    }

    fn url_params(&self, f: Format) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("encoding", "linear16".into()),
            ("sample_rate", int(f.sample_rate.into())),
            ("channels", int(f.channels.into())),
        ];
        if f.channels > 1 {
            // One transcript per channel, `channel_index` naming it.
            p.push(("multichannel", "true".into()));
        }
        p
    }

    fn auth(&self) -> Auth {
        Auth::Subprotocol
    }

    fn keepalive(&self) -> Frame {
        Frame::Text(r#"{"type":"KeepAlive"}"#.into())
    }

    fn finalize(&self) -> Option<Frame> {
        Some(Frame::Text(r#"{"type":"CloseStream"}"#.into()))
    }

    fn flush(&self) -> Option<Frame> {
        Some(Frame::Text(r#"{"type":"Finalize"}"#.into()))
    }

    fn parse(&self, text: &str, out: &mut Vec<Parsed>) {
        parse(text, out)
    }

    fn close_class(&self, _code: u16, reason: &str) -> Option<CloseClass> {
        // Deepgram puts its error class in the reason: DATA-* means the
        // audio cannot be decoded (fatal), NET-* a network/idle problem.
        if reason.starts_with("DATA-") {
            Some(CloseClass::Fatal(ErrorCode::BadAudio))
        } else if reason.starts_with("NET-") {
            Some(CloseClass::Retry)
        } else {
            None
        }
    }
}

fn parse(text: &str, out: &mut Vec<Parsed>) {
    let v = match Value::parse(text) {
        Ok(v) => v,
        Err(e) => return out.push(Parsed::Malformed(e.message())),
    };
    match v.str_field("type") {
        Some("Results") => {
            let r = results(&v);
            let is_final = matches!(&r, Parsed::Transcript(t) if t.is_final)
                || v.get("from_finalize").and_then(Value::as_bool) == Some(true);
            out.push(r);
            // A FINAL result covers the audio up to start + duration of
            // this socket's stream: the server will not revise it, so the
            // audio before it can leave the resend window. An interim one
            // confirms nothing: if the socket dies before the final, that
            // audio's final transcript never exists unless it is resent.
            if let (true, Some(start), Some(duration)) =
                (is_final, v.num_field("start"), v.num_field("duration"))
            {
                let channel = v
                    .get("channel_index")
                    .and_then(|c| c.at(0))
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .max(0.0) as u32;
                out.push(Parsed::Processed {
                    channel,
                    secs: start + duration,
                });
            }
        }
        Some("Error") => {
            let what = v
                .str_field("description")
                .or(v.str_field("message"))
                .unwrap_or("unspecified server error");
            out.push(Parsed::ServerError(what.to_string()));
        }
        // Metadata, SpeechStarted, UtteranceEnd, and whatever types the
        // provider adds later: messages for the caller, never errors.
        _ => out.push(Parsed::Message),
    }
}

fn results(v: &Value) -> Parsed {
    let Some(alt) = v
        .get("channel")
        .and_then(|c| c.get("alternatives"))
        .and_then(|a| a.at(0))
    else {
        return Parsed::Malformed("Results without channel.alternatives[0]".into());
    };
    let Some(text) = alt.str_field("transcript") else {
        return Parsed::Malformed("Results without a transcript".into());
    };
    let start = v.num_field("start").unwrap_or(0.0);
    let duration = v.num_field("duration").unwrap_or(0.0);
    let speaker = alt
        .get("words")
        .and_then(|w| w.at(0))
        .and_then(|w| w.num_field("speaker"))
        .map(crate::core::num);
    let channel = v
        .get("channel_index")
        .and_then(|c| c.at(0))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let mut words = Vec::new();
    let mut i = 0;
    while let Some(w) = alt.get("words").and_then(|ws| ws.at(i)) {
        i += 1;
        let text = w.str_field("punctuated_word").or(w.str_field("word"));
        if let (Some(text), Some(ws), Some(we)) = (text, w.num_field("start"), w.num_field("end")) {
            words.push(Word {
                word: text.to_string(),
                start: ws,
                end: we,
            });
        }
    }
    Parsed::Transcript(Transcript {
        text: text.to_string(),
        is_final: v.get("is_final").and_then(Value::as_bool).unwrap_or(false),
        speech_final: v
            .get("speech_final")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        start,
        end: start + duration,
        speaker,
        channel: channel.max(0.0) as u32,
        words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Parsed {
        let mut out = Vec::new();
        parse(text, &mut out);
        out.retain(|p| !matches!(p, Parsed::Processed { .. }));
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    #[test]
    fn only_final_results_confirm_the_audio_they_cover() {
        let mut out = Vec::new();
        parse(
            r#"{"type":"Results","duration":1.5,"start":2.0,"is_final":false,"channel":{"alternatives":[{"transcript":""}]}}"#,
            &mut out,
        );
        assert!(
            !out.iter().any(|p| matches!(p, Parsed::Processed { .. })),
            "{out:?}"
        );
        out.clear();
        parse(
            r#"{"type":"Results","duration":1.5,"start":2.0,"is_final":true,"channel":{"alternatives":[{"transcript":""}]}}"#,
            &mut out,
        );
        assert_eq!(
            out.last(),
            Some(&Parsed::Processed {
                channel: 0,
                secs: 3.5
            })
        );
        out.clear();
        parse(
            r#"{"type":"Results","duration":0.5,"start":3.5,"is_final":false,"from_finalize":true,"channel":{"alternatives":[{"transcript":""}]}}"#,
            &mut out,
        );
        assert_eq!(
            out.last(),
            Some(&Parsed::Processed {
                channel: 0,
                secs: 4.0
            })
        );
    }

    #[test]
    fn results_become_transcripts() {
        let p = one(
            r#"{"type":"Results","channel_index":[0,1],"duration":1.5,"start":2.0,"is_final":true,"speech_final":true,
            "channel":{"alternatives":[{"transcript":"hello world","confidence":0.9,"words":[{"word":"hello","speaker":1}]}]}}"#,
        );
        let Parsed::Transcript(t) = p else {
            panic!("{p:?}")
        };
        assert_eq!(t.text, "hello world");
        assert!(t.is_final && t.speech_final);
        assert_eq!((t.start, t.end), (2.0, 3.5));
        assert_eq!(t.speaker.as_deref(), Some("1"));
    }

    #[test]
    fn unknown_and_malformed_messages_are_reported_not_panicked_on() {
        assert!(matches!(one("not json"), Parsed::Malformed(_)));
        // Types the provider adds later are messages, not errors.
        assert_eq!(one(r#"{"type":"SomethingNew","x":1}"#), Parsed::Message);
        assert_eq!(one(r#"{"no_type":true}"#), Parsed::Message);
        assert!(matches!(one(r#"{"type":"Results"}"#), Parsed::Malformed(_)));
        assert_eq!(one(r#"[1,2]"#), Parsed::Message);
        assert_eq!(one(r#"{"type":"Metadata","duration":3}"#), Parsed::Message);
        assert!(
            matches!(one(r#"{"type":"Error","description":"bad"}"#), Parsed::ServerError(m) if m == "bad")
        );
    }
}
