//! The state of a generic-protocol stream (`/v1/stream`) that outlives its
//! connections: the high-water mark and the deduplicated audio, and the
//! stream's transcription.
//!
//! Transcription belongs to the stream, not to a connection, so that no
//! final is lost with a connection (the client's promise: every second of
//! audio ends in a final transcript or a `dropped` event):
//!
//! - **One engine per stream**, fed through the stream with exactly the
//!   bytes that raise the high-water mark (and the gaps, as
//!   [`EngineIn::Skip`]), whichever connection brought them; its times are
//!   stream time. It runs while any connection is attached; when the last
//!   one detaches it is flushed, so audio stored on a connection that died
//!   before its final is finalized, and then ended (a pocketsphinx decoder
//!   is not held by a stream nobody sends to). The next connection starts
//!   a new engine at the high-water mark.
//! - **The finals are kept** (non-empty ones, the last [`MAX_FINALS`]), with
//!   whether any connection was there to be sent them. A new connection
//!   gets, right after `started`, the finals never sent, and with
//!   `final_from` also every final whose `end` is after it (those in flight
//!   when the last connection died). Taking that list and subscribing to
//!   new results happen under one lock, so no final is both resent and
//!   sent live.
//! - **Bounded**: a stream with no connection for [`Timeouts::stream_idle`]
//!   (10 min by default) is forgotten when the next stream is opened.
//!
//! [`Timeouts::stream_idle`]: crate::config::Timeouts::stream_idle

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::engine::{self, EngineIn, EngineOut, EngineSpec, Transcript};
use crate::util::lock;

/// Finals kept per stream for `final_from` (about half an hour of the
/// counter engine's one per second); older ones are forgotten first.
pub const MAX_FINALS: usize = 2048;

/// Every generic stream the server holds, by id.
#[derive(Default)]
pub struct Streams {
    map: Mutex<HashMap<String, Arc<Stream>>>,
}

impl Streams {
    /// The stream `id`, created when new. Streams with no connection for
    /// `idle` are forgotten first.
    pub fn open(&self, id: &str, idle: Duration) -> Arc<Stream> {
        let mut map = lock(&self.map);
        map.retain(|name, s| name == id || !s.idle_for(idle));
        map.entry(id.to_string())
            .or_insert_with(Stream::new)
            .clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Stream>> {
        lock(&self.map).get(id).cloned()
    }

    /// Forgets every stream (connections attached keep theirs until they end).
    pub fn clear(&self) {
        lock(&self.map).clear();
    }
}

/// One stream: its audio and its transcription, shared by its connections.
pub struct Stream {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    store: StreamStore,
    engine: Option<Engine>,
    /// Connections listening to results: (id, sender).
    subs: Vec<(u64, mpsc::UnboundedSender<EngineOut>)>,
    finals: VecDeque<Final>,
    /// The engine's failure, for connections that attach after it.
    failed: Option<String>,
    /// Since when no connection is attached; `None` while one is.
    idle_since: Option<Instant>,
}

struct Engine {
    tx: mpsc::UnboundedSender<EngineIn>,
    /// Who asked for each flush not yet answered, oldest first (the worker
    /// answers flushes in order).
    flushes: VecDeque<FlushBy>,
}

enum FlushBy {
    /// A connection's `finish`: its `Flushed` goes to that connection.
    Conn(u64),
    /// The last connection detached: finalize what it stored, then end.
    Retire,
}

struct Final {
    t: Transcript,
    /// Whether a connection was attached to be sent it.
    sent: bool,
}

/// What a connection gets when it attaches.
pub struct Joined {
    /// The high-water mark, for `started`.
    pub hwm: u64,
    /// Finals to send right after `started`, in order.
    pub resend: Vec<Transcript>,
    /// The stream's engine failed; the connection cannot be served.
    pub failed: Option<String>,
    /// The stream engine's results from now on.
    pub rx: mpsc::UnboundedReceiver<EngineOut>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Stream {
    /// A new stream, idle until a connection attaches.
    pub fn new() -> Arc<Stream> {
        Arc::new(Stream {
            state: Mutex::new(State {
                idle_since: Some(Instant::now()),
                ..State::default()
            }),
        })
    }

    fn idle_for(&self, idle: Duration) -> bool {
        let st = lock(&self.state);
        st.subs.is_empty() && st.idle_since.is_some_and(|t| t.elapsed() >= idle)
    }

    /// The stored audio, for `/control/streams/:id/audio`.
    pub fn with_store<R>(&self, f: impl FnOnce(&StreamStore) -> R) -> R {
        f(&lock(&self.state).store)
    }

    /// Attaches a connection: starts the stream's engine when none runs
    /// (from `spec`, at the high-water mark), and returns what to send
    /// after `started`: the finals never sent and, with `final_from`, every
    /// final ending after it. The connection detaches when the
    /// [`Attachment`] is dropped.
    pub fn attach(
        self: &Arc<Self>,
        spec: EngineSpec,
        final_from: Option<f64>,
    ) -> (Attachment, Joined) {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = lock(&self.state);
        st.store.sample_rate = spec.sample_rate;
        st.store.channels = spec.channels;
        if st.engine.is_none() {
            let frame_bytes = 2 * u64::from(spec.channels.max(1));
            let h = engine::spawn(EngineSpec {
                base_frames: st.store.hwm / frame_bytes,
                ..spec
            });
            pump(Arc::downgrade(self), h.rx);
            st.engine = Some(Engine {
                tx: h.tx,
                flushes: VecDeque::new(),
            });
            st.failed = None;
        }
        let resend = st
            .finals
            .iter_mut()
            .filter(|f| !f.sent || final_from.is_some_and(|from| f.t.end > from))
            .map(|f| {
                f.sent = true;
                f.t.clone()
            })
            .collect();
        st.subs.push((id, tx));
        st.idle_since = None;
        let joined = Joined {
            hwm: st.store.hwm,
            resend,
            failed: st.failed.clone(),
            rx,
        };
        drop(st);
        let att = Attachment {
            stream: self.clone(),
            id,
        };
        (att, joined)
    }

    /// What the stream's engine said; the pump calls this, in order.
    fn on_engine(&self, out: EngineOut) {
        let mut st = lock(&self.state);
        match out {
            EngineOut::Transcript(t) => {
                if t.is_final && !t.text.is_empty() {
                    let sent = !st.subs.is_empty();
                    st.finals.push_back(Final { t: t.clone(), sent });
                    while st.finals.len() > MAX_FINALS {
                        st.finals.pop_front();
                    }
                }
                let out = EngineOut::Transcript(t);
                st.subs.retain(|(_, tx)| tx.send(out.clone()).is_ok());
            }
            EngineOut::Flushed => {
                let by = st.engine.as_mut().and_then(|e| e.flushes.pop_front());
                if let Some(FlushBy::Conn(id)) = by {
                    if let Some((_, tx)) = st.subs.iter().find(|(i, _)| *i == id) {
                        let _ = tx.send(EngineOut::Flushed);
                    }
                }
                let done = st.engine.as_ref().is_some_and(|e| e.flushes.is_empty());
                if done && st.subs.is_empty() {
                    // Nobody listens and everything stored is finalized:
                    // the worker thread ends, and this pump with it.
                    st.engine = None;
                }
            }
            EngineOut::Failed(e) => {
                st.failed = Some(e.clone());
                let out = EngineOut::Failed(e);
                st.subs.retain(|(_, tx)| tx.send(out.clone()).is_ok());
            }
            // The generic protocol has no VAD events.
            EngineOut::SpeechStarted { .. } | EngineOut::UtteranceEnd { .. } => {}
        }
    }
}

/// Moves the engine's results into the stream until the engine ends (or
/// the stream is gone).
fn pump(stream: Weak<Stream>, mut rx: mpsc::UnboundedReceiver<EngineOut>) {
    tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let Some(s) = stream.upgrade() else { return };
            s.on_engine(out);
        }
    });
}

/// A connection attached to a stream; detaches when dropped.
pub struct Attachment {
    stream: Arc<Stream>,
    id: u64,
}

impl Attachment {
    /// Stores a frame at `off` (deduplicated against the high-water mark)
    /// and gives the engine what is new: the gap before it, if any, then
    /// the new bytes.
    pub fn put(&self, off: u64, data: &[u8], cap: usize) -> Placement {
        let mut st = lock(&self.stream.state);
        let p = st.store.put(off, data, cap);
        if let Some(e) = &st.engine {
            if p.gap > 0 {
                let _ = e.tx.send(EngineIn::Skip(p.gap));
            }
            if p.skip < data.len() {
                let _ = e.tx.send(EngineIn::Audio(data[p.skip..].to_vec()));
            }
        }
        p
    }

    /// Finalizes everything stored; this connection gets `Flushed` after
    /// the finals. Returns the high-water mark the flush covers (taken
    /// under the lock that also orders audio before the flush).
    pub fn flush(&self) -> u64 {
        let mut st = lock(&self.stream.state);
        let st = &mut *st;
        match st.engine.as_mut() {
            Some(e) => {
                let _ = e.tx.send(EngineIn::Flush);
                e.flushes.push_back(FlushBy::Conn(self.id));
            }
            None => {
                // No engine (it cannot be while attached); never leave the
                // connection waiting.
                if let Some((_, tx)) = st.subs.iter().find(|(i, _)| *i == self.id) {
                    let _ = tx.send(EngineOut::Flushed);
                }
            }
        }
        st.store.hwm
    }

    /// The high-water mark.
    pub fn hwm(&self) -> u64 {
        lock(&self.stream.state).store.hwm
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut st = lock(&self.stream.state);
        st.subs.retain(|(i, _)| *i != self.id);
        if st.subs.is_empty() {
            st.idle_since = Some(Instant::now());
            // Audio stored on this connection may still wait for its final:
            // finalize it now, so it reaches the next connection.
            if let Some(e) = st.engine.as_mut() {
                let _ = e.tx.send(EngineIn::Flush);
                e.flushes.push_back(FlushBy::Retire);
            }
        }
    }
}

/// One stream's stored audio, across all its connections.
#[derive(Debug, Default)]
pub struct StreamStore {
    /// Bytes stored (the high-water mark `H`).
    pub hwm: u64,
    pub pcm: Vec<u8>,
    pub sample_rate: u32,
    pub channels: u16,
    pub duplicate_bytes: u64,
    pub gap_bytes: u64,
    /// True once the kept audio hit the cap (the mark still advances).
    pub truncated: bool,
}

/// How a frame `[off, off+len)` relates to the stream's high-water mark.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    /// Leading bytes already held.
    pub duplicate: u64,
    /// Bytes missing between `H` and `off`.
    pub gap: u64,
    /// Index in the frame of the first new byte.
    pub skip: usize,
}

impl StreamStore {
    /// Applies a frame at `off`; returns its placement.
    pub fn put(&mut self, off: u64, data: &[u8], cap: usize) -> Placement {
        let len = data.len() as u64;
        let end = off + len;
        let p = if end <= self.hwm {
            Placement {
                duplicate: len,
                gap: 0,
                skip: data.len(),
            }
        } else if off < self.hwm {
            let d = self.hwm - off;
            Placement {
                duplicate: d,
                gap: 0,
                skip: d as usize,
            }
        } else {
            Placement {
                duplicate: 0,
                gap: off - self.hwm,
                skip: 0,
            }
        };
        self.duplicate_bytes += p.duplicate;
        self.gap_bytes += p.gap;
        if end > self.hwm {
            // A gap is audio the client reported as dropped; it is stored as
            // silence so the WAV keeps its timeline.
            if p.gap > 0 && self.pcm.len() as u64 == self.hwm && self.hwm + p.gap <= cap as u64 {
                self.pcm.resize((self.hwm + p.gap) as usize, 0);
            }
            let new = &data[p.skip..];
            if self.pcm.len() as u64 == off.max(self.hwm) && self.pcm.len() + new.len() <= cap {
                self.pcm.extend_from_slice(new);
            } else {
                self.truncated = true;
            }
            self.hwm = end;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineKind;

    fn spec() -> EngineSpec {
        EngineSpec {
            kind: EngineKind::Counter,
            sample_rate: 16_000,
            channels: 1,
            per_channel: true,
            grammar: None,
            base_frames: 0,
            utterance_end_ms: None,
        }
    }

    fn result(i: usize, text: &str, is_final: bool) -> EngineOut {
        let (s, e) = (i as f64, i as f64 + 1.0);
        EngineOut::Transcript(Transcript::new(text.into(), s, e, is_final, 1.0))
    }

    /// The log keeps the last MAX_FINALS non-empty finals; what no
    /// connection was there for goes to the next one, once; with
    /// `final_from`, every final ending after it goes again.
    #[tokio::test]
    async fn kept_finals_are_bounded_and_sent_to_the_next_connection_once() {
        let s = Stream::new();
        for i in 0..MAX_FINALS + 10 {
            s.on_engine(result(i, &format!("f{i}"), true));
            s.on_engine(result(i, "", true));
            s.on_engine(result(i, "interim", false));
        }
        let (a, joined) = s.attach(spec(), None);
        assert_eq!(joined.resend.len(), MAX_FINALS);
        assert_eq!(joined.resend[0].text, "f10");
        assert!(joined
            .resend
            .iter()
            .all(|t| t.is_final && !t.text.is_empty()));
        drop(a);
        let (_b, joined) = s.attach(spec(), None);
        assert!(joined.resend.is_empty(), "each was sent once");
        let n = MAX_FINALS as f64;
        let (_c, joined) = s.attach(spec(), Some(n + 8.0));
        let texts: Vec<&str> = joined.resend.iter().map(|t| t.text.as_str()).collect();
        let want = [
            format!("f{}", MAX_FINALS + 8),
            format!("f{}", MAX_FINALS + 9),
        ];
        assert_eq!(texts, want);
    }

    #[test]
    fn overlapping_resend_is_deduplicated() {
        let mut s = StreamStore::default();
        let data: Vec<u8> = (0..100u8).collect();
        s.put(0, &data[..60], 1000);
        let p = s.put(40, &data[40..], 1000);
        assert_eq!(
            p,
            Placement {
                duplicate: 20,
                gap: 0,
                skip: 20
            }
        );
        let p = s.put(10, &data[10..30], 1000);
        assert_eq!(p.duplicate, 20);
        assert_eq!(s.pcm, data);
        assert_eq!((s.hwm, s.duplicate_bytes, s.gap_bytes), (100, 40, 0));
    }

    #[test]
    fn gap_is_recorded_and_filled_with_silence() {
        let mut s = StreamStore::default();
        s.put(0, &[1, 1], 1000);
        let p = s.put(6, &[2, 2], 1000);
        assert_eq!(p.gap, 4);
        assert_eq!(s.pcm, vec![1, 1, 0, 0, 0, 0, 2, 2]);
        assert_eq!(s.hwm, 8);
    }
}
