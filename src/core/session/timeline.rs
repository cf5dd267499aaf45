//! Stream time. Every byte the caller pushed has a place on one timeline
//! (its stream offset); each socket carries a stretch of it, in runs. The
//! providers whose clocks restart at zero with every socket (Deepgram, Omi)
//! are mapped back onto the stream's timeline, and the stream remembers how
//! far its final transcripts reached, so resent audio is not shown twice.

use crate::core::event::Transcript;
use crate::core::io::SocketId;

/// One socket's place in the stream, and what it has been handed.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) id: SocketId,
    /// Audio bytes sent on this socket (its own clock, in bytes).
    pub(super) wire_bytes: u64,
    /// Bytes of every frame handed to the caller for this socket (audio,
    /// keepalives, control): what `bufferedAmount` is measured against.
    pub(super) handed: u64,
    /// `(wire, offset)` pairs, one per contiguous run of the stream.
    runs: Vec<(u64, u64)>,
    /// Stream offset just past the last audio byte sent on this socket.
    run_end: u64,
    /// Where the server expects the next audio byte (set by the generic
    /// `start`, then by every chunk): a chunk elsewhere needs a `seek`.
    pub(super) next_offset: Option<u64>,
    /// How far each channel's final results reached, in this socket's
    /// seconds.
    processed: [f64; 2],
}

impl Conn {
    pub(super) fn new(id: SocketId) -> Conn {
        Conn {
            id,
            wire_bytes: 0,
            handed: 0,
            runs: Vec::new(),
            run_end: 0,
            next_offset: None,
            processed: [0.0; 2],
        }
    }

    /// A final result of `channel` reached `secs`: how far all `channels`
    /// have now reached (what is confirmed), in this socket's seconds.
    pub(super) fn processed(&mut self, channel: u32, secs: f64, channels: usize) -> Option<f64> {
        let slot = self.processed.get_mut(channel as usize)?;
        *slot = slot.max(secs);
        self.processed[..channels.min(2)]
            .iter()
            .copied()
            .reduce(f64::min)
    }

    /// Records that `len` audio bytes at stream `offset` go out now;
    /// returns the socket's audio bytes up to and including them.
    pub(super) fn note_audio(&mut self, offset: u64, len: u64) -> u64 {
        if self.runs.is_empty() || offset != self.run_end {
            self.runs.push((self.wire_bytes, offset));
        }
        self.run_end = offset + len;
        self.wire_bytes += len;
        self.wire_bytes
    }

    /// The stream byte position of this socket's audio byte `wire`.
    fn stream_pos(&self, wire: f64) -> f64 {
        let run = self
            .runs
            .iter()
            .rev()
            .find(|(w, _)| (*w as f64) <= wire)
            .or(self.runs.first());
        match run {
            Some(&(w, off)) => off as f64 + (wire - w as f64),
            None => wire,
        }
    }

    /// Moves a transcript timed in this socket's audio onto the stream's
    /// timeline (`bytes_per_sec` of the PCM16 stream).
    pub(super) fn to_stream_time(&self, t: &mut Transcript, bytes_per_sec: f64) {
        let map = |secs: f64| self.stream_pos(secs * bytes_per_sec) / bytes_per_sec;
        t.start = map(t.start);
        t.end = map(t.end);
        for w in &mut t.words {
            w.start = map(w.start);
            w.end = map(w.end);
        }
    }
}

/// Tolerance on stream times (providers round to milliseconds).
const EPS: f64 = 0.005;

/// How far final transcripts reached, per channel.
#[derive(Debug, Default)]
pub(super) struct Finals {
    until: Vec<f64>,
}

/// What [`Finals::admit`] decided.
pub(super) enum Admit {
    /// Emit it (possibly trimmed).
    Emit(Transcript),
    /// Covers only time already final: not shown again. `true` when it was
    /// a final itself.
    Suppress(bool),
}

impl Finals {
    /// The earliest point any channel's finals reached, in ms: what the
    /// generic protocol's `final_from` asks the server to resend after.
    pub(super) fn reached_ms(&self) -> u64 {
        let secs = self.until.iter().copied().reduce(f64::min).unwrap_or(0.0);
        (secs * 1000.0).max(0.0) as u64
    }

    /// How far the finals of every one of `channels` reached, in seconds.
    pub(super) fn reached_all(&self, channels: usize) -> f64 {
        (0..channels)
            .map(|c| self.until.get(c).copied().unwrap_or(0.0))
            .reduce(f64::min)
            .unwrap_or(0.0)
    }

    /// Keeps each stretch of the stream in at most one final transcript.
    /// Audio in flight when a connection died is resent, and sometimes the
    /// old server had it after all and its finals arrived: the new
    /// server's finals for that stretch would show the words twice. A
    /// result that covers only time that already has finals is suppressed;
    /// a final that overlaps it loses the words that start before that
    /// point (without word timings it is emitted whole: see
    /// docs/reliability.md). The second value is true when something was
    /// trimmed.
    pub(super) fn admit(&mut self, mut t: Transcript) -> (Admit, bool) {
        let ch = t.channel as usize;
        if self.until.len() <= ch {
            self.until.resize(ch + 1, 0.0);
        }
        let done = self.until[ch];
        if t.end <= done + EPS && t.end > t.start.max(0.0) {
            return (Admit::Suppress(t.is_final), false);
        }
        let mut trimmed = false;
        if t.is_final {
            if t.start < done - EPS && !t.words.is_empty() {
                let before = t.words.len();
                t.words.retain(|w| w.start >= done - EPS);
                if t.words.len() < before {
                    trimmed = true;
                    let text: Vec<&str> = t.words.iter().map(|w| w.word.as_str()).collect();
                    t.text = text.join(" ");
                    t.start = done;
                }
            }
            self.until[ch] = done.max(t.end);
        }
        (Admit::Emit(t), trimmed)
    }
}
