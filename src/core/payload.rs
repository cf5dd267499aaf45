//! The JavaScript API's event payloads, as JSON text: the browser shell
//! parses them (`JSON.parse`) and hands them to the listeners. Built here,
//! in plain Rust, so a native test can hold every payload's fields against
//! the TypeScript declarations (`tests/api_drift.rs`).

use super::event::{Event, Stats, Transcript};
use super::json::push_str;
use super::text::{int, num};

/// The event types `on`, `once` and `off` accept.
pub const EVENT_TYPES: [&str; 10] = [
    "state",
    "open",
    "transcript",
    "message",
    "dropped",
    "error",
    "close",
    "reconnecting",
    "utterance",
    "capture",
];

/// A JSON object under construction. The builder works through `&mut`
/// (`Obj::new().str(..).num(..).done()`), so no call moves the string in
/// and out by value: that was ~30 bytes of WASM per field.
pub(crate) struct Obj(String);

impl Obj {
    pub(crate) fn new() -> Obj {
        Obj(String::from("{"))
    }

    fn key(&mut self, k: &str) -> &mut String {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(k);
        self.0.push_str("\":");
        &mut self.0
    }

    pub(crate) fn str(&mut self, k: &str, v: &str) -> &mut Obj {
        push_str(self.key(k), v);
        self
    }

    pub(crate) fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Obj {
        match v {
            Some(v) => push_str(self.key(k), v),
            None => self.key(k).push_str("null"),
        }
        self
    }

    pub(crate) fn num(&mut self, k: &str, v: f64) -> &mut Obj {
        // JSON has no NaN or Infinity; no payload field can hold one, but a
        // malformed server number must not make the document unparseable.
        let text = if v.is_finite() { num(v) } else { "null".into() };
        self.key(k).push_str(&text);
        self
    }

    pub(crate) fn int(&mut self, k: &str, v: u64) -> &mut Obj {
        self.key(k).push_str(&int(v));
        self
    }

    pub(crate) fn opt_int(&mut self, k: &str, v: Option<u64>) -> &mut Obj {
        match v {
            Some(v) => self.key(k).push_str(&int(v)),
            None => self.key(k).push_str("null"),
        }
        self
    }

    pub(crate) fn bool(&mut self, k: &str, v: bool) -> &mut Obj {
        self.key(k).push_str(if v { "true" } else { "false" });
        self
    }

    pub(crate) fn raw(&mut self, k: &str, json: &str) -> &mut Obj {
        self.key(k).push_str(json);
        self
    }

    pub(crate) fn done(&mut self) -> String {
        self.0.push('}');
        std::mem::take(&mut self.0)
    }
}

fn transcript(t: &Transcript) -> String {
    let mut words = String::from("[");
    for (i, w) in t.words.iter().enumerate() {
        if i > 0 {
            words.push(',');
        }
        words.push_str(
            &Obj::new()
                .str("word", &w.word)
                .num("start", w.start)
                .num("end", w.end)
                .done(),
        );
    }
    words.push(']');
    Obj::new()
        .str("text", &t.text)
        .bool("isFinal", t.is_final)
        .bool("speechFinal", t.speech_final)
        .num("start", t.start)
        .num("end", t.end)
        .opt_str("speaker", t.speaker.as_deref())
        .int("channel", t.channel.into())
        .raw("words", &words)
        .done()
}

/// A capture source started or ended (`capture` event): `source` is
/// `"microphone"` or `"systemAudio"`, `state` `"started"` or `"ended"`. A
/// source that ends does not stop the other: its channel carries silence.
pub fn capture(source: &str, state: &str) -> String {
    Obj::new().str("source", source).str("state", state).done()
}

/// An utterance's result (`utterance` event, `endUtterance()`'s value).
pub fn utterance(u: &crate::core::event::UtteranceResult) -> String {
    let mut finals = String::from("[");
    for (i, t) in u.finals.iter().enumerate() {
        if i > 0 {
            finals.push(',');
        }
        finals.push_str(&transcript(t));
    }
    finals.push(']');
    Obj::new()
        .int("id", u.id)
        .str("text", &u.text)
        .raw("finals", &finals)
        .num("startMs", u.start_ms)
        .num("endMs", u.end_ms)
        .num("audioMs", u.audio_ms)
        .num("latencyMs", u.latency_ms)
        .bool("timedOut", u.timed_out)
        .done()
}

/// `stats()`, as JSON.
pub fn stats(s: &Stats) -> String {
    Obj::new()
        .int("bytesPushed", s.bytes_pushed)
        .int("bytesSent", s.bytes_sent)
        .int("bytesAcked", s.bytes_acked)
        .int("bytesQueued", s.bytes_queued)
        .int("bytesDropped", s.bytes_dropped)
        .int("bytesResent", s.bytes_resent)
        .int("chunksPushed", s.chunks_pushed)
        .int("chunksSent", s.chunks_sent)
        .int("chunksQueued", s.chunks_queued)
        .int("chunksDropped", s.chunks_dropped)
        .int("chunksReplayed", s.chunks_replayed)
        .num("audioMsQueued", s.audio_ms_queued)
        .num("audioMsDropped", s.audio_ms_dropped)
        .int("attempts", s.attempts)
        .int("reconnects", s.reconnects)
        .int("keepalivesSent", s.keepalives_sent)
        .int("messagesReceived", s.messages_received)
        .int("transcripts", s.transcripts)
        .int("bufferedAmount", s.buffered_amount)
        .opt_int("serverOffset", s.server_offset)
        .int("probesFailed", s.probes_failed)
        .int("duplicateFinalsSuppressed", s.duplicate_finals_suppressed)
        .num("audioMsGated", s.audio_ms_gated)
        .done()
}

/// The close summary (`close` event, `close()`'s promise): the session's
/// last close code and reason, its final state and stats.
pub fn summary(code: Option<u16>, reason: &str, state: &str, stats_json: &str) -> String {
    Obj::new()
        .opt_int("code", code.map(u64::from))
        .str("reason", reason)
        .str("state", state)
        .raw("stats", stats_json)
        .done()
}

/// An error event's payload (also the shell's own: microphone errors).
pub fn error(code: &str, message: &str, fatal: bool) -> String {
    Obj::new()
        .str("code", code)
        .str("message", message)
        .bool("fatal", fatal)
        .done()
}

/// The event type and its payload. `None` for [`Event::Closed`], whose
/// payload is the [`summary`] (it needs the session's stats).
pub fn event(e: &Event) -> Option<(&'static str, String)> {
    Some(match e {
        Event::State(s) => (
            "state",
            Obj::new()
                .str("state", s.state.as_str())
                .str("previous", s.previous.as_str())
                .int("attempt", s.attempt.into())
                .opt_int("retryInMs", s.retry_in.map(|d| d.as_millis() as u64))
                .opt_str("reason", s.reason.as_deref())
                .done(),
        ),
        Event::Open {
            connection,
            backlog_chunks,
            resume_offset,
        } => (
            "open",
            Obj::new()
                .int("connection", (*connection).into())
                .int("backlogChunks", (*backlog_chunks).into())
                .opt_int("resumeOffset", *resume_offset)
                .done(),
        ),
        Event::Transcript(t) => ("transcript", transcript(t)),
        Event::Utterance(u) => ("utterance", utterance(u)),
        Event::Message(text) => ("message", Obj::new().str("data", text).done()),
        Event::Dropped(d) => (
            "dropped",
            Obj::new()
                .int("chunks", d.chunks.into())
                .int("bytes", d.bytes)
                .num("audioMs", d.audio_ms)
                .str("reason", d.reason.as_str())
                .done(),
        ),
        Event::Error {
            code,
            message,
            fatal,
        } => ("error", error(code.as_str(), message, *fatal)),
        Event::Reconnecting { attempt, delay } => (
            "reconnecting",
            Obj::new()
                .int("attempt", (*attempt).into())
                .int("delayMs", delay.as_millis() as u64)
                .done(),
        ),
        Event::Closed { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{DropReason, Dropped, Word};
    use crate::core::json::Value;

    #[test]
    fn payloads_are_valid_json_with_escaped_text() {
        let t = Transcript {
            text: "say \"hi\"\n".into(),
            is_final: true,
            speech_final: false,
            start: 1.25,
            end: 2.0,
            speaker: None,
            channel: 1,
            words: vec![Word {
                word: "hi".into(),
                start: 1.5,
                end: 1.75,
            }],
        };
        let (kind, json) = event(&Event::Transcript(t)).unwrap();
        assert_eq!(kind, "transcript");
        let v = Value::parse(&json).unwrap();
        assert_eq!(v.str_field("text"), Some("say \"hi\"\n"));
        assert_eq!(v.get("speaker"), Some(&Value::Null));
        assert_eq!(
            v.get("words")
                .and_then(|w| w.at(0))
                .and_then(|w| w.num_field("end")),
            Some(1.75)
        );
        let (_, json) = event(&Event::Dropped(Dropped {
            chunks: 2,
            bytes: 6400,
            audio_ms: 200.0,
            reason: DropReason::Unconfirmed,
        }))
        .unwrap();
        assert_eq!(
            json,
            r#"{"chunks":2,"bytes":6400,"audioMs":200,"reason":"unconfirmed"}"#
        );
        let s = stats(&Stats::default());
        assert!(Value::parse(&summary(Some(1000), "done", "closed", &s)).is_ok());
    }
}
