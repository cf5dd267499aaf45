//! The generic resumable protocol (`docs/protocol.md`) as the fake speaks
//! it: `start` names the stream and the offset the client resumes from and
//! is answered with `started` (the stored high-water mark), then the finals
//! after `final_from` again when `resend_finals`; `seek` skips a gap;
//! audio is stored per stream with dedupe by offset and acknowledged at
//! most `ack_every` after it arrives; `finish` is answered with a final
//! `ack`, `finished` and close 1000 `"finished"`. Results are timed in
//! stream time, and the server transcribes what it stores whatever
//! `finals` says.

use resilient_transcriber::core::{Config, Instant, Provider, SocketId};

use super::results::Heard;
use super::{Deliver, FakeServer, ProviderFake, ServerTimer};

/// See the module docs.
pub(super) struct Generic;

/// The generic protocol's view of one socket.
#[derive(Debug, Clone, Default)]
pub(super) struct StreamState {
    /// The stream `start` named.
    stream: Option<String>,
    /// The byte offset the next audio frame carries.
    offset: u64,
    /// The highest offset acknowledged on this socket.
    acked: u64,
    /// An `AckTick` is pending.
    ack_scheduled: bool,
    /// The client sent `finish`.
    finishing: bool,
}

impl ProviderFake for Generic {
    fn config(&self) -> Config {
        Config::new(Provider::Generic, "wss://stt.test/v1/stream")
    }

    fn on_text(&self, server: &mut FakeServer, now: Instant, id: SocketId, text: &str) {
        if text.starts_with(r#"{"type":"start""#) {
            start(server, now, id, text);
        } else if text.starts_with(r#"{"type":"seek""#) {
            seek(server, id, text);
        } else if text == r#"{"type":"keepalive"}"# {
        } else if text == r#"{"type":"finish"}"# {
            finish(server, now, id);
        } else if text == r#"{"type":"flush"}"# {
            // Finalize what was stored, say so, and carry on.
            if server.answer_flush {
                server.flush_results(now, id, true);
                let h = server.high_water(id);
                server.emit(
                    now,
                    Deliver::Text(id, format!(r#"{{"type":"flushed","offset":{h}}}"#)),
                );
            }
        } else {
            server
                .violations
                .push(format!("generic: unexpected text {text}"));
        }
    }

    fn on_audio(
        &self,
        server: &mut FakeServer,
        now: Instant,
        id: SocketId,
        first: u64,
        _n: u64,
        bytes: &[u8],
    ) {
        store(server, now, id, first, bytes);
    }

    fn obeys_finals(&self) -> bool {
        false
    }

    fn stream_clock(&self) -> bool {
        true
    }

    fn result(&self, r: &Heard) -> String {
        let Heard {
            start,
            dur,
            words,
            channel,
            ..
        } = r;
        format!(
            r#"{{"type":"transcript","text":"{words}","is_final":true,"channel":{channel},"start":{start},"end":{}}}"#,
            start + dur
        )
    }

    fn sent_final(&self, server: &mut FakeServer, id: SocketId, end: f64, text: &str) {
        if let Some(st) = server.sockets[&id].generic.stream.clone() {
            server
                .stream_finals
                .entry(st)
                .or_default()
                .push((end, text.to_string()));
        }
    }
}

impl FakeServer {
    /// The generic stream stored under `id`.
    pub fn stream(&self, id: &str) -> &[u8] {
        self.streams.get(id).map_or(&[], Vec::as_slice)
    }

    /// The stored length of the stream `id` carries.
    fn high_water(&self, id: SocketId) -> u64 {
        let s = &self.sockets[&id];
        s.generic
            .stream
            .as_ref()
            .map_or(0, |st| self.stream(st).len() as u64)
    }
}

/// The number after `"name":` in `text`.
fn field(text: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\":");
    let at = text.find(&key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn start(server: &mut FakeServer, now: Instant, id: SocketId, text: &str) {
    let stream = text
        .split(r#""stream":""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string();
    let offset = field(text, "offset").unwrap_or(0);
    let h = server.stream(&stream).len() as u64;
    // Transcription state belongs to the stream, not the socket:
    // audio stored on a connection that died before its final is
    // finalized on the next one.
    let carried = server
        .sockets
        .values_mut()
        .filter(|o| {
            (o.closed || o.blackholed) && o.generic.stream.as_deref() == Some(stream.as_str())
        })
        .find_map(|o| {
            o.result_from.take().map(|f| {
                (
                    f,
                    std::mem::take(&mut o.result_samples),
                    o.result_stream_from,
                )
            })
        });
    let s = server.sockets.get_mut(&id).expect("exists");
    if let Some((from, n, stream_from)) = carried {
        s.result_from = Some(from);
        s.result_samples = n;
        s.result_stream_from = stream_from;
    }
    s.generic.stream = Some(stream.clone());
    s.generic.offset = offset;
    s.generic.acked = 0;
    server.emit(
        now,
        Deliver::Text(
            id,
            format!(r#"{{"type":"started","stream":"{stream}","offset":{h}}}"#),
        ),
    );
    // The finals the client may have missed (in flight when the
    // last connection died), as docs/protocol.md describes.
    let final_from = text.split(r#""final_from":"#).nth(1).and_then(|r| {
        r.split(|c: char| c != '.' && !c.is_ascii_digit())
            .next()?
            .parse::<f64>()
            .ok()
    });
    if let (true, Some(from)) = (server.resend_finals, final_from) {
        let again: Vec<String> = server
            .stream_finals
            .get(&stream)
            .map(|v| {
                v.iter()
                    .filter(|(end, _)| *end > from + 1e-6)
                    .map(|(_, t)| t.clone())
                    .collect()
            })
            .unwrap_or_default();
        for t in again {
            server.emit(now, Deliver::Text(id, t));
        }
    }
}

fn seek(server: &mut FakeServer, id: SocketId, text: &str) {
    let offset = field(text, "offset").unwrap_or(0);
    let s = server.sockets.get_mut(&id).expect("exists");
    if offset <= s.generic.offset {
        server
            .violations
            .push(format!("seek to {offset} not after {}", s.generic.offset));
    }
    s.generic.offset = offset;
}

fn finish(server: &mut FakeServer, now: Instant, id: SocketId) {
    server
        .sockets
        .get_mut(&id)
        .expect("exists")
        .generic
        .finishing = true;
    if server.answer_finalize {
        server.flush_results(now, id, true);
        let h = server.high_water(id);
        if let Some(st) = server.sockets[&id].generic.stream.clone() {
            server.acked_streams.insert(st, h);
        }
        server.emit(
            now,
            Deliver::Text(id, format!(r#"{{"type":"ack","offset":{h}}}"#)),
        );
        server.emit(
            now,
            Deliver::Text(id, format!(r#"{{"type":"finished","offset":{h}}}"#)),
        );
        server.close(now, id, 1000, "finished");
    }
}

/// Stores an audio frame at the socket's offset: duplicates are dropped,
/// a gap announced by `seek` is kept as zeros; an ack follows within
/// `ack_every`, and what is new is transcribed.
fn store(server: &mut FakeServer, now: Instant, id: SocketId, first: u64, b: &[u8]) {
    let s = server.sockets.get_mut(&id).expect("exists");
    let Some(stream) = s.generic.stream.clone() else {
        server.violations.push("generic: audio before start".into());
        server.close(now, id, 4400, "start first");
        return;
    };
    let off = s.generic.offset;
    if server.positions_are_offsets && off != first * 2 {
        server.violations.push(format!(
            "generic: frame carries offset {} but the server's offset is {off}",
            first * 2
        ));
    }
    s.generic.offset += b.len() as u64;
    let store = server.streams.entry(stream).or_default();
    let h = store.len() as u64;
    let end = off + b.len() as u64;
    if end <= h {
        server.duplicate_bytes += b.len() as u64;
    } else if off <= h {
        server.duplicate_bytes += h - off;
        store.extend_from_slice(&b[(h - off) as usize..]);
    } else {
        // A gap the client announced with `seek`: keep the timeline
        // aligned by recording the gap as zeros.
        server.gap_bytes += off - h;
        store.resize(off as usize, 0);
        store.extend_from_slice(b);
    }
    let (acking, every) = (server.acking, server.ack_every);
    let s = server.sockets.get_mut(&id).expect("exists");
    if acking && !s.generic.ack_scheduled {
        s.generic.ack_scheduled = true;
        server.timer(now + every, ServerTimer::AckTick(id));
    }
    // Like a real resumable server, it transcribes what it stores, not
    // the duplicates it discards.
    let fresh_at = off.max(h);
    let fresh = end.saturating_sub(fresh_at) / 2;
    if fresh > 0 {
        let first_fresh = first + (fresh_at - off) / 2;
        server.count_for_results(now, id, first_fresh, fresh, Some(fresh_at / 2));
    }
}

/// The ack timer: the stored high-water mark, if it grew since the last ack.
pub(super) fn ack_tick(server: &mut FakeServer, now: Instant, id: SocketId) {
    let h = server.high_water(id);
    let acking = server.acking;
    let s = server.sockets.get_mut(&id).expect("exists");
    s.generic.ack_scheduled = false;
    if !s.closed && acking && h > s.generic.acked {
        s.generic.acked = h;
        if let Some(st) = s.generic.stream.clone() {
            server.acked_streams.insert(st, h);
        }
        server.emit(
            now,
            Deliver::Text(id, format!(r#"{{"type":"ack","offset":{h}}}"#)),
        );
    }
}

/// A crash before persisting: every stored stream is cut back to the last
/// offset it acknowledged.
pub(super) fn lose_unacknowledged(server: &mut FakeServer) {
    for (id, store) in server.streams.iter_mut() {
        let keep = server.acked_streams.get(id).copied().unwrap_or(0);
        store.truncate(keep as usize);
    }
}
