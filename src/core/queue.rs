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
        match self.entries.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, chunks, b)) => {
                *chunks += 1;
                *b += bytes;
            }
            None => self.entries.push((reason, 1, bytes)),
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

/// The TTL- and byte-bounded queue.
#[derive(Debug, Clone)]
pub struct AudioQueue {
    /// Not yet sent (or to be resent), in stream order.
    pending: VecDeque<Chunk>,
    /// Sent, awaiting the server's acknowledgement, in stream order.
    unacked: VecDeque<Chunk>,
    pending_bytes: usize,
    unacked_bytes: usize,
    ttl: Duration,
    max_bytes: usize,
}

impl AudioQueue {
    /// An empty queue.
    pub fn new(ttl: Duration, max_bytes: usize) -> AudioQueue {
        AudioQueue {
            pending: VecDeque::new(),
            unacked: VecDeque::new(),
            pending_bytes: 0,
            unacked_bytes: 0,
            ttl,
            max_bytes,
        }
    }

    /// Appends a chunk, making room first: sent-but-unacknowledged chunks go
    /// before unsent ones (they already reached the wire once), then the
    /// oldest unsent chunks, each tallied as a `capacity` drop.
    pub fn push(&mut self, chunk: Chunk, drops: &mut DropTally) {
        let need = chunk.data.len();
        while self.bytes() + need > self.max_bytes {
            if let Some(old) = self.unacked.pop_front() {
                self.unacked_bytes -= old.data.len();
            } else if let Some(old) = self.pending.pop_front() {
                self.pending_bytes -= old.data.len();
                if !old.resend {
                    drops.add(DropReason::Capacity, old.data.len() as u64);
                }
            } else {
                break;
            }
        }
        self.pending_bytes += need;
        self.pending.push_back(chunk);
    }

    /// Drops chunks captured `ttl` or more before `now`: unsent ones are
    /// tallied as `ttl` drops; unacknowledged ones are forgotten (they were
    /// sent once, and audio that old is no use to a live transcript).
    pub fn expire(&mut self, now: Instant, drops: &mut DropTally) {
        let ttl = self.ttl;
        let old = |c: &Chunk| now.saturating_duration_since(c.captured) >= ttl;
        while self.unacked.front().is_some_and(old) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
        }
        while self.pending.front().is_some_and(old) {
            let c = self.pending.pop_front().expect("front exists");
            self.pending_bytes -= c.data.len();
            if !c.resend {
                drops.add(DropReason::Ttl, c.data.len() as u64);
            }
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
    /// Returns the bytes newly acknowledged.
    pub fn ack(&mut self, offset: u64) -> u64 {
        let mut acked = 0;
        while self.unacked.front().is_some_and(|c| c.end() <= offset) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
            acked += c.data.len() as u64;
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
            acked += c.data.len() as u64;
        }
        acked
    }

    /// The connection was lost: unacknowledged chunks go back to the front
    /// of the queue to be resent, and every chunk now waits for a connection.
    pub fn rewind(&mut self) {
        while let Some(mut c) = self.unacked.pop_back() {
            self.unacked_bytes -= c.data.len();
            c.resend = true;
            self.pending_bytes += c.data.len();
            self.pending.push_front(c);
        }
        for c in &mut self.pending {
            c.waited = true;
        }
    }

    /// Removes everything; unsent chunks are tallied under `reason`.
    pub fn drain_all(&mut self, reason: DropReason, drops: &mut DropTally) {
        for c in self.pending.drain(..) {
            if !c.resend {
                drops.add(reason, c.data.len() as u64);
            }
        }
        self.unacked.clear();
        self.pending_bytes = 0;
        self.unacked_bytes = 0;
    }

    /// Bytes held (unsent plus unacknowledged): never above `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.pending_bytes + self.unacked_bytes
    }

    /// Unsent bytes that were never sent before (what `stats().bytesQueued` counts).
    pub fn unsent_bytes(&self) -> u64 {
        self.pending
            .iter()
            .filter(|c| !c.resend)
            .map(|c| c.data.len() as u64)
            .sum()
    }

    /// Unsent chunks that were never sent before.
    pub fn unsent_chunks(&self) -> u64 {
        self.pending.iter().filter(|c| !c.resend).count() as u64
    }

    /// Chunks waiting to be sent (including resends).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes waiting to be sent (including resends).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Offset of the oldest unacknowledged byte, if any is held.
    pub fn first_unacked_offset(&self) -> Option<u64> {
        self.unacked
            .front()
            .or(self.pending.front().filter(|c| c.resend))
            .map(|c| c.offset)
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
        assert_eq!(q.ack(3200), 3200);
        q.rewind();
        let order: Vec<(u64, bool)> = std::iter::from_fn(|| q.pop_front())
            .map(|c| (c.seq, c.resend))
            .collect();
        assert_eq!(order, [(1, true), (2, true), (3, false)]);
        assert!(d.is_empty());
    }
}
