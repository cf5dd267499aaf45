//! The conservation ledger: every byte the caller pushed is, at every
//! moment, sent, queued, or dropped, and every drop is reported. The queue
//! owns it and moves bytes between the columns itself, so the law
//! `pushed == sent + queued + dropped` is kept by one type, not by a dozen
//! call sites remembering to update counters.

use crate::core::event::{DropReason, Dropped};

/// Drops waiting to be reported, per reason: (reason, chunks, bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DropTally {
    entries: Vec<(DropReason, u32, u64)>,
}

impl DropTally {
    /// Counts `chunks` dropped chunks totalling `bytes`.
    pub(crate) fn add(&mut self, reason: DropReason, chunks: u32, bytes: u64) {
        match self.entries.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, c, b)) => {
                *c += chunks;
                *b += bytes;
            }
            None => self.entries.push((reason, chunks, bytes)),
        }
    }

    fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.2).sum()
    }
}

/// The byte and chunk counters of the audio stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Ledger {
    pub(crate) pushed_bytes: u64,
    pub(crate) pushed_chunks: u64,
    /// Sent and not taken back (unconfirmed audio of a lost connection goes
    /// back to `queued`; if it is then dropped, it leaves `sent`).
    pub(crate) sent_bytes: u64,
    pub(crate) sent_chunks: u64,
    pub(crate) acked_bytes: u64,
    pub(crate) resent_bytes: u64,
    pub(crate) replayed_chunks: u64,
    /// Reported in `dropped` events.
    pub(crate) dropped_bytes: u64,
    pub(crate) dropped_chunks: u64,
    pub(crate) dropped_ms: f64,
    /// Dropped, to be reported by the next [`Ledger::take_reports`].
    tally: DropTally,
}

impl Ledger {
    pub(crate) fn pushed(&mut self, bytes: u64, chunks: u64) {
        self.pushed_bytes += bytes;
        self.pushed_chunks += chunks;
    }

    pub(crate) fn drop(&mut self, reason: DropReason, chunks: u32, bytes: u64) {
        self.tally.add(reason, chunks, bytes);
    }

    pub(crate) fn sent(&mut self, bytes: u64) {
        self.sent_bytes += bytes;
        self.sent_chunks += 1;
    }

    /// Sent bytes that are no longer sent: back in the queue, or dropped.
    pub(crate) fn unsent(&mut self, bytes: u64, chunks: u64) {
        self.sent_bytes -= bytes;
        self.sent_chunks -= chunks;
    }

    /// Dropped bytes not yet reported.
    pub(crate) fn unreported(&self) -> u64 {
        self.tally.bytes()
    }

    /// The drops since the last call, as `dropped` events, now counted as
    /// reported. `bytes_per_ms` turns bytes into milliseconds of audio.
    pub(crate) fn take_reports(&mut self, bytes_per_ms: f64) -> Vec<Dropped> {
        let entries = std::mem::take(&mut self.tally.entries);
        entries
            .into_iter()
            .map(|(reason, chunks, bytes)| {
                let audio_ms = bytes as f64 / bytes_per_ms;
                self.dropped_bytes += bytes;
                self.dropped_chunks += u64::from(chunks);
                self.dropped_ms += audio_ms;
                Dropped {
                    chunks,
                    bytes,
                    audio_ms,
                    reason,
                }
            })
            .collect()
    }
}
