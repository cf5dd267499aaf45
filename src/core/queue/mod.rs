//! The audio queue: every chunk waits here until it is sent and the server
//! confirms it, bounded by age and by bytes. It owns the [`Ledger`]: nothing
//! enters or leaves without being counted, so `pushed == sent + queued +
//! dropped` holds by construction, and every loss becomes a `dropped` event.

mod ledger;

use std::collections::VecDeque;
use std::time::Duration;

use super::audio::{pcm16_to_le_bytes, Chunker};
use super::event::{DropReason, Dropped};
use super::time::Instant;

pub(crate) use ledger::Ledger;

/// A fixed-length piece of PCM16 audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset of the first byte in the stream.
    pub offset: u64,
    /// When the audio was pushed.
    pub captured: Instant,
    /// PCM16 little-endian bytes.
    pub data: Vec<u8>,
    /// Sent before, on a connection that was lost before the server
    /// confirmed it: sending it again is a resend, not a first send.
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

/// A run of sent-but-unconfirmed bytes the queue had to let go of
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

/// The TTL- and byte-bounded queue, with the chunker in front of it.
#[derive(Debug, Clone)]
pub struct AudioQueue {
    chunker: Chunker,
    /// Not yet sent (or to be resent), in stream order.
    pending: VecDeque<Chunk>,
    /// Sent, awaiting the server's confirmation, in stream order.
    unacked: VecDeque<Chunk>,
    pending_bytes: usize,
    unacked_bytes: usize,
    evicted: Vec<Evicted>,
    ttl: Duration,
    max_bytes: usize,
    next_offset: u64,
    /// The stream ranges the server's `ack`s confirmed (stored), merged:
    /// audio whose final transcripts may still be owed. One range per gap
    /// in the stream, so it stays small.
    stored: Vec<(u64, u64)>,
    ledger: Ledger,
}

impl AudioQueue {
    /// An empty queue of `chunk_samples`-sample chunks, bounded by `ttl`
    /// and `max_bytes`.
    pub fn new(chunk_samples: usize, ttl: Duration, max_bytes: usize) -> AudioQueue {
        AudioQueue {
            chunker: Chunker::new(chunk_samples),
            pending: VecDeque::new(),
            unacked: VecDeque::new(),
            pending_bytes: 0,
            unacked_bytes: 0,
            evicted: Vec::new(),
            ttl,
            max_bytes,
            next_offset: 0,
            stored: Vec::new(),
            ledger: Ledger::default(),
        }
    }

    /// The counters.
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    // --- in ------------------------------------------------------------

    /// Audio captured at `now`: cut into chunks and queued (`waited`: no
    /// connection is ready, so sending it will be a replay). Makes room as
    /// [`AudioQueue::enqueue`] says.
    pub fn push(&mut self, now: Instant, samples: &[i16], waited: bool) {
        self.ledger.pushed(samples.len() as u64 * 2, 0);
        let mut full = Vec::new();
        self.chunker.push(samples, |c| full.push(le_bytes(c)));
        for data in full {
            self.enqueue(now, data, waited);
        }
    }

    /// Queues the samples held back for an incomplete chunk (the stream's
    /// tail, at close) as a short chunk of its own.
    pub fn push_partial(&mut self, now: Instant, waited: bool) {
        if let Some(partial) = self.chunker.take_partial() {
            self.enqueue(now, le_bytes(&partial), waited);
        }
    }

    /// Audio that arrives when nothing can be sent any more (after close,
    /// after a fatal error): counted and reported under `reason`, one
    /// chunk per chunk's worth of samples.
    pub fn refuse(&mut self, samples: u64, reason: DropReason) {
        let per = self.chunker.samples_per_chunk() as u64;
        let bytes = samples * 2;
        self.ledger.pushed(bytes, 0);
        self.ledger
            .drop(reason, samples.div_ceil(per.max(1)) as u32, bytes);
    }

    /// Audio captured but impossible to convert (an unsupported capture
    /// rate): `samples` at the stream's rate, reported as `format`.
    pub fn lost(&mut self, samples: u64) {
        self.ledger.pushed(samples * 2, 0);
        self.ledger.drop(DropReason::Format, 1, samples * 2);
    }

    /// Appends a chunk, making room first: sent-but-unconfirmed chunks go
    /// before unsent ones (they already reached the wire once; they are
    /// reported only if the connection dies before the server confirms
    /// them), then the oldest unsent chunks, each a `capacity` drop. A
    /// chunk whose TTL ends now is a `ttl` drop, not a `capacity` one: with
    /// the defaults (30 s TTL, maxBytes = 30 s at 16 kHz) both bounds are
    /// reached at the same instant.
    fn enqueue(&mut self, now: Instant, data: Vec<u8>, waited: bool) {
        let len = data.len();
        self.ledger.pushed(0, 1);
        let chunk = Chunk {
            offset: self.next_offset,
            captured: now,
            data,
            resend: false,
            waited,
            wire_end: 0,
        };
        self.next_offset += len as u64;
        self.expire(now);
        while self.bytes() + len > self.max_bytes {
            if let Some(old) = self.unacked.pop_front() {
                self.unacked_bytes -= old.data.len();
                self.note_evicted(&old, DropReason::Capacity);
            } else if let Some(old) = self.pending.pop_front() {
                self.evict_pending(old, DropReason::Capacity);
            } else {
                break;
            }
        }
        self.pending_bytes += len;
        self.pending.push_back(chunk);
    }

    /// Drops chunks captured `ttl` or more before `now`: unsent ones are
    /// `ttl` drops; sent ones are let go of and reported only if the
    /// connection dies before the server confirms them.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        let old = |c: &Chunk| now.saturating_duration_since(c.captured) >= ttl;
        while self.unacked.front().is_some_and(old) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
            self.note_evicted(&c, DropReason::Ttl);
        }
        while self.pending.front().is_some_and(old) {
            let c = self.pending.pop_front().expect("front exists");
            self.evict_pending(c, DropReason::Ttl);
        }
    }

    /// A chunk that will never be sent (again). A waiting resend is lost
    /// too: its old socket's confirmations (wire bytes) mean nothing on
    /// the next socket, and a server's `started` offset is no promise that
    /// it stored what it reports (docs/protocol.md), so it is reported.
    fn evict_pending(&mut self, c: Chunk, reason: DropReason) {
        self.pending_bytes -= c.data.len();
        self.ledger.drop(reason, 1, c.data.len() as u64);
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

    // --- out -----------------------------------------------------------

    /// The next chunk to send.
    pub fn front(&self) -> Option<&Chunk> {
        self.pending.front()
    }

    /// Takes the next chunk to send; hand it back with
    /// [`AudioQueue::sent`] once it is on the wire.
    pub fn pop_front(&mut self) -> Option<Chunk> {
        let c = self.pending.pop_front()?;
        self.pending_bytes -= c.data.len();
        Some(c)
    }

    /// `chunk` went out, ending at `wire_end` bytes of its socket's audio:
    /// it is kept until the server confirms it.
    pub fn sent(&mut self, mut chunk: Chunk, wire_end: u64) {
        let len = chunk.data.len() as u64;
        self.ledger.sent(len);
        if chunk.resend {
            self.ledger.resent_bytes += len;
        } else if chunk.waited {
            self.ledger.replayed_chunks += 1;
        }
        chunk.wire_end = wire_end;
        self.unacked_bytes += chunk.data.len();
        self.unacked.push_back(chunk);
    }

    // --- confirmations ---------------------------------------------------

    /// The server holds every byte of the stream below `offset` (generic
    /// `ack`): those chunks are confirmed.
    pub fn ack(&mut self, offset: u64) {
        while self.unacked.front().is_some_and(|c| c.end() <= offset) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
            self.ledger.acked_bytes += c.data.len() as u64;
            note_stored(&mut self.stored, c.offset, c.end());
        }
        // Resends still waiting that the server already had (an ack that
        // arrived after the reconnect) need not go out again: queued again
        // at the rewind, now sent for good.
        while self
            .pending
            .front()
            .is_some_and(|c| c.resend && c.end() <= offset)
        {
            let c = self.pending.pop_front().expect("front exists");
            let len = c.data.len() as u64;
            self.pending_bytes -= c.data.len();
            self.ledger.acked_bytes += len;
            self.ledger.sent(len);
            note_stored(&mut self.stored, c.offset, c.end());
        }
        // Evicted runs the server confirmed are no longer at risk.
        let (ledger, stored) = (&mut self.ledger, &mut self.stored);
        self.evicted.retain_mut(|e| {
            if offset > e.start {
                ledger.acked_bytes += offset.min(e.end) - e.start;
                note_stored(stored, e.start, offset.min(e.end));
                // Chunks of a run are equal-sized (full chunks), so whole
                // chunks confirmed = confirmed bytes / chunk size.
                let size = (e.end - e.start) / u64::from(e.chunks.max(1));
                let done = (offset.min(e.end) - e.start) / size.max(1);
                e.chunks = e.chunks.saturating_sub(done as u32);
                e.start = offset.min(e.end);
            }
            e.start < e.end && e.chunks > 0
        });
    }

    /// Confirms, in order, the sent chunks (and evicted runs) whose bytes
    /// on the current socket end at or before `wire`: the implicit
    /// acknowledgement of protocols without byte offsets (a Deepgram final
    /// result or an Omi segment covers audio time, i.e. bytes of this socket).
    pub fn ack_wire(&mut self, wire: u64) {
        while self.unacked.front().is_some_and(|c| c.wire_end <= wire) {
            let c = self.unacked.pop_front().expect("front exists");
            self.unacked_bytes -= c.data.len();
            self.ledger.acked_bytes += c.data.len() as u64;
        }
        let ledger = &mut self.ledger;
        self.evicted.retain(|e| {
            let done = e.wire_end <= wire;
            if done {
                ledger.acked_bytes += e.end - e.start;
            }
            !done
        });
    }

    /// The server finished the stream normally: everything sent is
    /// confirmed, and every final transcript it owed has been sent.
    pub fn ack_all(&mut self) {
        self.ack_wire(u64::MAX);
        self.stored.clear();
    }

    /// The session ends without the server's `finished`: audio it
    /// acknowledged (stored) from stream offset `finals_until` on has no
    /// final transcript and never will on this stream, so for the user it
    /// is lost. It leaves `sent` and is reported
    /// [`DropReason::Unconfirmed`], like sent audio nothing confirmed.
    pub fn drop_untranscribed(&mut self, finals_until: u64) {
        let bytes = self.untranscribed(finals_until);
        self.stored.clear();
        if bytes == 0 {
            return;
        }
        // Stored bytes are sent and acknowledged bytes (an ack never
        // confirms more): they leave `sent` and `acked` for `dropped`. The
        // chunks were sent all the same (the count of chunks sent stays);
        // they are reported as whole chunks' worth.
        let per = (self.chunker.samples_per_chunk() as u64 * 2).max(1);
        self.ledger.unsent(bytes, 0);
        self.ledger.acked_bytes -= bytes;
        self.ledger
            .drop(DropReason::Unconfirmed, bytes.div_ceil(per) as u32, bytes);
    }

    /// Bytes the server acknowledged from stream offset `finals_until` on:
    /// stored audio whose finals are still owed.
    pub fn untranscribed(&self, finals_until: u64) -> u64 {
        self.stored
            .iter()
            .map(|&(a, b)| b.saturating_sub(a.max(finals_until)))
            .sum()
    }

    /// The connection was lost: unconfirmed chunks go back to the front of
    /// the queue to be resent (they count as queued again), and every chunk
    /// now waits for a connection. Sent chunks the queue had to let go of
    /// before the server confirmed them can be neither resent nor confirmed
    /// any more: they are reported.
    pub fn rewind(&mut self) {
        self.report_evicted();
        while let Some(mut c) = self.unacked.pop_back() {
            self.unacked_bytes -= c.data.len();
            self.ledger.unsent(c.data.len() as u64, 1);
            c.resend = true;
            self.pending_bytes += c.data.len();
            self.pending.push_front(c);
        }
        for c in &mut self.pending {
            c.waited = true;
        }
    }

    fn report_evicted(&mut self) {
        for e in std::mem::take(&mut self.evicted) {
            self.ledger.drop(e.reason, e.chunks, e.end - e.start);
            self.ledger.unsent(e.end - e.start, u64::from(e.chunks));
        }
    }

    /// Removes everything, the chunker's partial chunk included. Audio
    /// never sent is reported under `reason`; audio sent but never
    /// confirmed (waiting for a confirmation or for a resend) under
    /// [`DropReason::Unconfirmed`]: it may have reached the server, but no
    /// acknowledgement or final transcript says so.
    pub fn drain_all(&mut self, reason: DropReason) {
        if let Some(partial) = self.chunker.take_partial() {
            self.ledger.drop(reason, 1, partial.len() as u64 * 2);
        }
        self.report_evicted();
        for c in std::mem::take(&mut self.unacked) {
            let len = c.data.len() as u64;
            self.ledger.drop(DropReason::Unconfirmed, 1, len);
            self.ledger.unsent(len, 1);
        }
        for c in std::mem::take(&mut self.pending) {
            let r = if c.resend {
                DropReason::Unconfirmed
            } else {
                reason
            };
            self.ledger.drop(r, 1, c.data.len() as u64);
        }
        self.pending_bytes = 0;
        self.unacked_bytes = 0;
    }

    /// The drops since the last call, as `dropped` events.
    pub fn take_reports(&mut self, bytes_per_ms: f64) -> Vec<Dropped> {
        self.ledger.take_reports(bytes_per_ms)
    }

    // --- looking ---------------------------------------------------------

    /// When the oldest chunk expires, if there is one.
    pub fn next_expiry(&self) -> Option<Instant> {
        let a = self.unacked.front().map(|c| c.captured + self.ttl);
        let b = self.pending.front().map(|c| c.captured + self.ttl);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The stream offset the next pushed byte will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Where the next connection resumes: the first byte not confirmed.
    pub fn resume_offset(&self) -> u64 {
        self.front().map_or(self.next_offset, |c| c.offset)
    }

    /// Nothing waits to be sent or confirmed, and no partial chunk is held.
    pub fn all_confirmed(&self) -> bool {
        self.pending.is_empty()
            && self.unacked.is_empty()
            && self.evicted.is_empty()
            && self.chunker.pending() == 0
    }

    /// Samples held back for an incomplete chunk.
    pub fn partial_samples(&self) -> usize {
        self.chunker.pending()
    }

    /// Bytes held (unsent plus unconfirmed): never above `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.pending_bytes + self.unacked_bytes
    }

    /// Bytes waiting to be sent, resends and the partial chunk included
    /// (what `stats().bytesQueued` counts).
    pub fn queued_bytes(&self) -> u64 {
        self.pending_bytes as u64 + self.chunker.pending() as u64 * 2
    }

    /// Chunks waiting to be sent, a partial chunk counting as one.
    pub fn queued_chunks(&self) -> u64 {
        self.pending.len() as u64 + u64::from(self.chunker.pending() > 0)
    }

    /// Chunks waiting to be sent (including resends, not the partial one).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The ledger balances: `pushed == sent + queued + dropped`, with
    /// drops not yet reported counted as dropped. For tests and debug
    /// assertions.
    pub fn conserved(&self) -> bool {
        let l = &self.ledger;
        l.pushed_bytes == l.sent_bytes + self.queued_bytes() + l.dropped_bytes + l.unreported()
    }
}

/// Adds `[start, end)` to the sorted, disjoint `ranges`, merging what
/// touches (stored audio arrives in stream order, so this is almost always
/// an extension of the last range).
fn note_stored(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    if start >= end {
        return;
    }
    let i = ranges
        .iter()
        .position(|r| r.1 >= start)
        .unwrap_or(ranges.len());
    if i < ranges.len() && ranges[i].0 <= end {
        ranges[i] = (ranges[i].0.min(start), ranges[i].1.max(end));
        while i + 1 < ranges.len() && ranges[i + 1].0 <= ranges[i].1 {
            let next = ranges.remove(i + 1);
            ranges[i].1 = ranges[i].1.max(next.1);
        }
    } else {
        ranges.insert(i, (start, end));
    }
}

fn le_bytes(pcm: &[i16]) -> Vec<u8> {
    let mut data = Vec::with_capacity(pcm.len() * 2);
    pcm16_to_le_bytes(pcm, &mut data);
    data
}

#[cfg(test)]
mod tests;
