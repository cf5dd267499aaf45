//! The audio queue: every chunk waits here until it is sent (and, with an
//! acknowledging protocol, until the server confirms it), bounded by age and
//! by bytes. Nothing leaves it without being counted: a chunk is sent, or it
//! is dropped and tallied for a `dropped` event.

use std::collections::VecDeque;
use std::time::Duration;

use super::event::DropReason;
use super::time::Instant;

/// A fixed-length piece of PCM16 audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the stream, from 0, without gaps.
    pub seq: u64,
    /// Byte offset of the first byte in the stream.
    pub offset: u64,
    /// When the audio was pushed.
    pub captured: Instant,
    /// PCM16 little-endian bytes.
    pub data: Vec<u8>,
    /// Sent before, on a connection that was lost before the server
    /// acknowledged it: sending it again is a resend, not a first send.
    pub resend: bool,
    /// Waited for a connection: sending it is a replay.
    pub waited: bool,
    /// Bytes sent on its socket up to and including this chunk (set when
    /// sent): Deepgram and Omi confirm audio by time, i.e. by bytes of that socket.
    pub wire_end: u64,
}

impl Chunk {
    /// The byte offset just past this chunk.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// Drops waiting to be reported, per reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DropTally {
    entries: Vec<(DropReason, u32, u64)>,
}

impl DropTally {
    /// Counts one dropped chunk of `bytes`.
    pub fn add(&mut self, reason: DropReason, bytes: u64) {
        self.add_n(reason, 1, bytes);
    }

    /// Counts `chunks` dropped chunks totalling `bytes`.
    pub fn add_n(&mut self, reason: DropReason, chunks: u32, bytes: u64) {
        match self.entries.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, c, b)) => {
                *c += chunks;
                *b += bytes;
            }
            None => self.entries.push((reason, chunks, bytes)),
        }
    }

    /// Takes the tallies: (reason, chunks, bytes).
    pub fn take(&mut self) -> Vec<(DropReason, u32, u64)> {
        std::mem::take(&mut self.entries)
    }

    /// Nothing to report.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Bytes that moved between the "sent" and "queued" categories of the
/// stats: sent but unconfirmed audio going back to the queue (or into a
/// drop report), or a waiting resend the queue let go of, which counts as
/// sent again until the server's verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsent {
    /// Bytes no longer counted as sent.
    pub bytes: u64,
    /// Chunks no longer counted as sent.
    pub chunks: u64,
}

/// What an acknowledgement confirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acked {
    /// Bytes newly confirmed.
    pub bytes: u64,
    /// Of those, bytes (and chunks) that were waiting to be resent: they
    /// move from queued back to sent.
    pub requeued_bytes: u64,
    /// Chunks among `requeued_bytes`.
    pub requeued_chunks: u64,
}

/// A run of sent-but-unacknowledged bytes the queue had to let go of
/// (capacity or TTL) before the server confirmed them. If the connection
/// then dies, they are reported dropped: never a silent loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Evicted {
    start: u64,
    end: u64,
    chunks: u32,
    reason: DropReason,
    /// Of the run's last chunk: what confirms the whole run by wire bytes.
    wire_end: u64,
}

/// The TTL- and byte-bounded queue.
#[derive(Debug, Clone)]
pub struct AudioQueue {
    /// Not yet sent (or to be resent), in stream order.
    pending: VecDeque<Chunk>,
    /// Sent, awaiting the server's acknowledgement, in stream order.
    unacked: VecDeque<Chunk>,
    pending_bytes: usize,
    unacked_bytes: usize,
    evicted: Vec<Evicted>,
    ttl: Duration,
    max_bytes: usize,
}

impl AudioQueue {
    /// An empty queue bounded by `ttl` and `max_bytes`.
    pub fn new(ttl: Duration, max_bytes: usize) -> AudioQueue {
        AudioQueue {
            pending: VecDeque::new(),
            unacked: VecDeque::new(),
            pending_bytes: 0,
            unacked_bytes: 0,
            evicted: Vec::new(),
            ttl,
            max_bytes,
        }
    }

    /// Remembers a sent chunk let go of before the server confirmed it.
    fn note_evicted(&mut self, c: &Chunk, reason: DropReason) {
        match self.evicted.last_mut() {
            Some(e) if e.end == c.offset && e.reason == reason => {
                e.end = c.end();
                e.chunks += 1;
                e.wire_end = c.wire_end;
            }
            _ => self.evicted.push(Evicted {
                start: c.offset,
                end: c.end(),
                chunks: 1,
                reason,
                wire_end: c.wire_end,
            }),
        }
    }

    /// Reports every evicted-unconfirmed run as dropped.
    fn report_evicted(&mut self, drops: &mut DropTally, unsent: &mut Unsent) {
        for e in self.evicted.drain(..) {
            drops.add_n(e.reason, e.chunks, e.end - e.start);
            unsent.bytes += e.end - e.start;
            unsent.chunks += u64::from(e.chunks);
        }
    }

    /// Appends a chunk, making room first: sent-but-unacknowledged chunks go
    /// before unsent ones (they already reached the wire once; they are
    /// reported only if the connection dies before the server confirms
    /// them), then the oldest unsent chunks, each tallied as a `capacity` drop.
    pub fn push(&mut self, chunk: Chunk, drops: &mut DropTally) {
        let need = chunk.data.len();
        while self.bytes() + need > self.max_bytes {
            if let Some(old) = self.unacked.pop_front() {
                self.unacked_bytes -= old.data.len();
                self.note_evicted(&old, DropReason::Capacity);
            } else if let Some(old) = self.pending.pop_front() {
                self.evict_pending(old, DropReason::Capacity, drops);
            } else {
                break;
            }
        }
        self.pending_bytes += need;
        self.pending.push_back(chunk);
    }

    /// A chunk that will never be sent (again). A waiting resend is lost
    /// too: its old socket's confirmations (wire bytes) mean nothing on
    /// the next socket, and a server's `started` offset is no promise that
    /// it stored what it reports (docs/protocol.md), so it is reported.
    fn evict_pending(&mut self, c: Chunk, reason: DropReason, drops: &mut DropTally) {
        self.pending_bytes -= c.data.len();
        drops.add(reason, c.data.len() as u64);
    }

    /// Drops chunks captured `ttl` or more before `now`: unsent ones are
    /// tallied as `ttl` drops; unacknowledged ones are let go of and
    /// reported only if the connection dies before the server confirms them.
    pub fn expire(&mut self, now: Instant, drops: &mut DropTally) {
        let ttl = self.ttl;
        let old = |c: &Chunk| now.saturating_duration_since(c.captured) >= ttl;
        while self.unacked.front().is_some_and(old) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
            self.note_evicted(&c, DropReason::Ttl);
        }
        while self.pending.front().is_some_and(old) {
            let c = self.pending.pop_front().expect("front exists");
            self.evict_pending(c, DropReason::Ttl, drops);
        }
    }

    /// When the oldest chunk expires, if there is one.
    pub fn next_expiry(&self) -> Option<Instant> {
        let a = self.unacked.front().map(|c| c.captured + self.ttl);
        let b = self.pending.front().map(|c| c.captured + self.ttl);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next chunk to send.
    pub fn front(&self) -> Option<&Chunk> {
        self.pending.front()
    }

    /// Removes and returns the next chunk to send.
    pub fn pop_front(&mut self) -> Option<Chunk> {
        let c = self.pending.pop_front()?;
        self.pending_bytes -= c.data.len();
        Some(c)
    }

    /// Keeps a sent chunk until the server acknowledges it.
    pub fn keep_unacked(&mut self, chunk: Chunk) {
        self.unacked_bytes += chunk.data.len();
        self.unacked.push_back(chunk);
    }

    /// The server holds every byte below `offset`: forget those chunks.
    pub fn ack(&mut self, offset: u64) -> Acked {
        let mut acked = Acked::default();
        while self.unacked.front().is_some_and(|c| c.end() <= offset) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
            acked.bytes += c.data.len() as u64;
        }
        // Resends still waiting that the server already had (an ack that
        // arrived after the reconnect) need not go out again.
        while self
            .pending
            .front()
            .is_some_and(|c| c.resend && c.end() <= offset)
        {
            let c = self.pending.pop_front().expect("front exists");
            self.pending_bytes -= c.data.len();
            acked.bytes += c.data.len() as u64;
            acked.requeued_bytes += c.data.len() as u64;
            acked.requeued_chunks += 1;
        }
        // Evicted runs the server confirmed are no longer at risk.
        let confirmed = &mut acked.bytes;
        self.evicted.retain_mut(|e| {
            if offset > e.start {
                *confirmed += offset.min(e.end) - e.start;
                // Chunks of a run are equal-sized (full chunks), so whole
                // chunks confirmed = confirmed bytes / chunk size.
                let size = (e.end - e.start) / u64::from(e.chunks.max(1));
                let done = (offset.min(e.end) - e.start) / size.max(1);
                e.chunks = e.chunks.saturating_sub(done as u32);
                e.start = offset.min(e.end);
            }
            e.start < e.end && e.chunks > 0
        });
        acked
    }

    /// Confirms, in order, the sent chunks (and evicted runs) whose bytes
    /// on the current socket end at or before `wire`: the implicit
    /// acknowledgement of protocols without byte offsets (a Deepgram final
    /// result or an Omi segment covers audio time, i.e. bytes of this socket).
    pub fn ack_wire(&mut self, wire: u64) -> Acked {
        let mut acked = Acked::default();
        while self.unacked.front().is_some_and(|c| c.wire_end <= wire) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
            acked.bytes += c.data.len() as u64;
        }
        let bytes = &mut acked.bytes;
        self.evicted.retain(|e| {
            let done = e.wire_end <= wire;
            if done {
                *bytes += e.end - e.start;
            }
            !done
        });
        acked
    }

    /// The server finished the stream normally: everything sent is confirmed.
    pub fn ack_all(&mut self) -> Acked {
        self.ack_wire(u64::MAX)
    }

    /// The connection was lost: unacknowledged chunks go back to the front
    /// of the queue to be resent (they count as queued again), and every
    /// chunk now waits for a connection. Sent chunks the queue had to let
    /// go of before the server confirmed them can be neither resent nor
    /// confirmed any more: they are reported in `drops`. Returns what is
    /// no longer counted as sent.
    pub fn rewind(&mut self, drops: &mut DropTally) -> Unsent {
        let mut unsent = Unsent::default();
        self.report_evicted(drops, &mut unsent);
        while let Some(mut c) = self.unacked.pop_back() {
            self.unacked_bytes -= c.data.len();
            unsent.bytes += c.data.len() as u64;
            unsent.chunks += 1;
            c.resend = true;
            self.pending_bytes += c.data.len();
            self.pending.push_front(c);
        }
        for c in &mut self.pending {
            c.waited = true;
        }
        unsent
    }

    /// Removes everything. Chunks never sent are tallied under `reason`;
    /// chunks sent but never confirmed (waiting for a confirmation or for a
    /// resend) under [`DropReason::Unconfirmed`]: they may have reached the
    /// server, but no acknowledgement or final transcript says so. Returns
    /// what is no longer counted as sent.
    pub fn drain_all(&mut self, reason: DropReason, drops: &mut DropTally) -> Unsent {
        let mut unsent = Unsent::default();
        self.report_evicted(drops, &mut unsent);
        for c in self.unacked.drain(..) {
            drops.add(DropReason::Unconfirmed, c.data.len() as u64);
            unsent.bytes += c.data.len() as u64;
            unsent.chunks += 1;
        }
        for c in self.pending.drain(..) {
            let r = if c.resend {
                DropReason::Unconfirmed
            } else {
                reason
            };
            drops.add(r, c.data.len() as u64);
        }
        self.pending_bytes = 0;
        self.unacked_bytes = 0;
        unsent
    }

    /// Nothing waits to be sent or confirmed.
    pub fn all_confirmed(&self) -> bool {
        self.pending.is_empty() && self.unacked.is_empty() && self.evicted.is_empty()
    }

    /// Bytes held (unsent plus unacknowledged): never above `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.pending_bytes + self.unacked_bytes
    }

    /// Bytes waiting to be sent, resends included (what `stats().bytesQueued` counts).
    pub fn unsent_bytes(&self) -> u64 {
        self.pending_bytes as u64
    }

    /// Chunks waiting to be sent, resends included.
    pub fn unsent_chunks(&self) -> u64 {
        self.pending.len() as u64
    }

    /// Chunks waiting to be sent (including resends).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes waiting to be sent (including resends).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, at_ms: u64) -> Chunk {
        Chunk {
            seq,
            offset: seq * 3200,
            captured: Instant::from_millis(at_ms),
            data: vec![0; 3200],
            resend: false,
            waited: false,
            wire_end: 0,
        }
    }

    #[test]
    fn chunks_older_than_ttl_are_reported_dropped() {
        let mut q = AudioQueue::new(Duration::from_secs(30), 1 << 20);
        let mut d = DropTally::default();
        for i in 0..10 {
            q.push(chunk(i, i * 100), &mut d);
        }
        q.expire(Instant::from_millis(30_450), &mut d);
        assert_eq!(d.take(), vec![(DropReason::Ttl, 5, 16_000)]);
        assert_eq!(q.front().unwrap().seq, 5);
        assert_eq!(q.next_expiry(), Some(Instant::from_millis(30_500)));
    }

    #[test]
    fn capacity_drops_oldest_and_memory_stays_bounded() {
        let mut q = AudioQueue::new(Duration::from_secs(30), 10 * 3200);
        let mut d = DropTally::default();
        for i in 0..25 {
            q.push(chunk(i, 0), &mut d);
            assert!(q.bytes() <= 10 * 3200);
        }
        assert_eq!(d.take(), vec![(DropReason::Capacity, 15, 15 * 3200)]);
        assert_eq!(q.front().unwrap().seq, 15);
    }

    #[test]
    fn unacked_chunks_are_resent_in_order_after_rewind_and_forgotten_when_acked() {
        let mut q = AudioQueue::new(Duration::from_secs(30), 1 << 20);
        let mut d = DropTally::default();
        for i in 0..4 {
            q.push(chunk(i, 0), &mut d);
        }
        for _ in 0..3 {
            let c = q.pop_front().unwrap();
            q.keep_unacked(c);
        }
        assert_eq!(q.ack(3200).bytes, 3200);
        let unsent = q.rewind(&mut d);
        assert_eq!(
            unsent,
            Unsent {
                bytes: 6400,
                chunks: 2
            }
        );
        let order: Vec<(u64, bool)> = std::iter::from_fn(|| q.pop_front())
            .map(|c| (c.seq, c.resend))
            .collect();
        assert_eq!(order, [(1, true), (2, true), (3, false)]);
        assert!(d.is_empty());
    }

    #[test]
    fn unconfirmed_audio_evicted_for_capacity_is_reported_when_the_connection_dies() {
        // Generic protocol: chunks sent but never acknowledged, pushed out of
        // the queue by newer audio, then the connection dies. They must be
        // reported dropped, not forgotten as "sent".
        let mut q = AudioQueue::new(Duration::from_secs(30), 4 * 3200);
        let mut d = DropTally::default();
        for i in 0..4 {
            q.push(chunk(i, 0), &mut d);
            let c = q.pop_front().unwrap();
            q.keep_unacked(c);
        }
        for i in 4..7 {
            q.push(chunk(i, 0), &mut d);
        }
        assert!(
            d.is_empty(),
            "eviction of unconfirmed audio is not yet a loss"
        );
        assert_eq!(
            q.ack(3200).bytes,
            3200,
            "evicted chunk 0 is confirmed by its range"
        );
        // The connection dies: chunk 3 is still held, back to the queue
        // for a resend; chunks 1 and 2 are gone and were never confirmed.
        assert_eq!(
            q.rewind(&mut d),
            Unsent {
                bytes: 3 * 3200,
                chunks: 3
            }
        );
        assert_eq!(d.take(), vec![(DropReason::Capacity, 2, 6400)]);
        let order: Vec<u64> = std::iter::from_fn(|| q.pop_front())
            .map(|c| c.seq)
            .collect();
        assert_eq!(order, [3, 4, 5, 6]);
    }
}
