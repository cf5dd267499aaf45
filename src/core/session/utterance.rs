//! Push-to-talk: utterances between `beginUtterance()` and
//! `endUtterance()`. While none runs (and `pushToTalk` is set), captured
//! audio waits in a short pre-roll ring instead of the stream, so the first
//! syllable is not cut when the key goes down. At the end, the audio is
//! finalized with the provider's flush (Deepgram `Finalize`, generic
//! `flush`) once it is all on the wire, and the utterance resolves when the
//! final transcripts cover it, or at its deadline with what arrived. An
//! utterance spoken while the connection is down is queued, replayed and
//! completed after the reconnect like any audio: the flush goes out again
//! on every new connection that carries its end.

use std::time::Duration;

use super::link::Link;
use super::Session;
use crate::core::event::{Event, Transcript, UtteranceResult};
use crate::core::io::SocketId;
use crate::core::time::Instant;
use crate::core::timer::Timer;

/// Tolerance on stream times (providers round to milliseconds).
const EPS: f64 = 0.005;

#[derive(Debug)]
struct Running {
    id: u64,
    /// Stream offset of its first byte (the pre-roll's).
    start: u64,
    /// Stream offset just past its last byte, once ended.
    end: Option<u64>,
    ended_at: Instant,
    /// `pushToTalk.timeoutMs` after its audio was all on the wire (its
    /// flush went out): an utterance spoken while disconnected waits for
    /// the reconnect first.
    deadline: Option<Instant>,
    /// The bound on waiting at all: the queue's TTL plus the timeout after
    /// `endUtterance()` (past the TTL its audio is dropped anyway).
    hard_deadline: Instant,
    finals: Vec<Transcript>,
    /// The socket its flush went out on (sent again on a new one).
    flushed_on: Option<SocketId>,
    /// The server said it finalized everything up to the flush.
    flushed: bool,
}

/// The utterances of a session.
#[derive(Debug, Default)]
pub(super) struct Utterances {
    next_id: u64,
    /// Begun and not ended (at most one), then ended and waiting for finals.
    running: Vec<Running>,
    /// The pre-roll: the last samples captured while none runs (trimmed
    /// to the pre-roll length in batches, so the trim is rare).
    ring: Vec<i16>,
    /// Samples (all channels) captured while none ran and let go of
    /// (see [`Session::gated_samples`] for the exact count).
    gated_samples: u64,
}

impl Utterances {
    /// The utterance begun and not ended, if any.
    pub(super) fn active(&self) -> Option<u64> {
        self.running.iter().find(|u| u.end.is_none()).map(|u| u.id)
    }
}

impl Session {
    /// Whether captured audio is held back: push-to-talk with no utterance
    /// running. A provider without a flush (Omi) finalizes the last words
    /// only when audio after them shows the speech ended, so until an ended
    /// utterance is settled the audio after it keeps flowing (a post-roll,
    /// at most `pushToTalk.timeoutMs`).
    pub(super) fn gated(&self) -> bool {
        let post_roll = self.wire.flush().is_none() && !self.utterances.running.is_empty();
        self.cfg.push_to_talk.is_some() && self.utterances.active().is_none() && !post_roll
    }

    /// Audio captured while gated: into the pre-roll ring, whose oldest
    /// samples are let go of (never part of the stream, so not a loss).
    pub(super) fn hold_pre_roll(&mut self, samples: &[i16]) {
        let keep = self.pre_roll_samples(None);
        let u = &mut self.utterances;
        u.ring.extend_from_slice(samples);
        let len = u.ring.len();
        if len > keep + keep.max(4_096) {
            let excess = len - keep;
            u.ring.copy_within(excess.., 0);
            u.ring.truncate(keep);
            u.gated_samples += excess as u64;
        }
    }

    /// Samples captured while no utterance ran that are not in the
    /// stream: let go of, or in the ring beyond the pre-roll.
    pub(super) fn gated_samples(&self) -> u64 {
        let keep = self.pre_roll_samples(None);
        let u = &self.utterances;
        u.gated_samples + u.ring.len().saturating_sub(keep) as u64
    }

    /// Samples (whole frames, all channels) of pre-roll: the configured
    /// length, or less when `beginUtterance({preRollMs})` asks for less.
    fn pre_roll_samples(&self, asked: Option<Duration>) -> usize {
        let configured = self.cfg.push_to_talk.map_or(Duration::ZERO, |p| p.pre_roll);
        let roll = asked.map_or(configured, |a| a.min(configured));
        let channels = usize::from(self.cfg.channels.max(1));
        (roll.as_millis() as usize * self.cfg.sample_rate as usize / 1000) * channels
    }

    /// `beginUtterance()`: the pre-roll goes into the stream first.
    pub(super) fn begin_utterance(&mut self, now: Instant, pre_roll: Option<Duration>) -> u64 {
        self.utterances.next_id += 1;
        let id = self.utterances.next_id;
        let start = self.queue.next_offset();
        let keep = self.pre_roll_samples(pre_roll);
        let u = &mut self.utterances;
        let skip = u.ring.len().saturating_sub(keep);
        u.gated_samples += skip as u64;
        let roll = std::mem::take(&mut u.ring);
        u.running.push(Running {
            id,
            start,
            end: None,
            ended_at: now,
            deadline: None,
            hard_deadline: now,
            finals: Vec::new(),
            flushed_on: None,
            flushed: false,
        });
        if roll.len() > skip {
            let waited = self.link.ready().is_none();
            self.queue.push(now, &roll[skip..], waited);
        }
        // The allocation is kept for the next pre-roll.
        self.utterances.ring = roll;
        self.utterances.ring.clear();
        id
    }

    /// `endUtterance()`: its audio is complete (the partial chunk goes
    /// too); it waits for its finals until the deadline.
    pub(super) fn end_utterance(&mut self, now: Instant) -> Option<u64> {
        let waited = self.link.ready().is_none();
        self.queue.push_partial(now, waited);
        let end = self.queue.next_offset();
        let timeout = self.cfg.push_to_talk.unwrap_or_default().timeout;
        let ttl = self.cfg.ttl;
        let u = self
            .utterances
            .running
            .iter_mut()
            .find(|u| u.end.is_none())?;
        u.end = Some(end);
        u.ended_at = now;
        u.hard_deadline = now + ttl + timeout;
        Some(u.id)
    }

    /// Sends the provider's flush on socket `id` for every ended utterance
    /// whose audio is all on the wire and that this socket has not flushed.
    pub(super) fn flush_utterances(&mut self, id: SocketId) {
        let sent_through = self.queue.resume_offset();
        let frame = self.wire.flush();
        let deadline = self.now + self.cfg.push_to_talk.unwrap_or_default().timeout;
        let mut due = false;
        for u in &mut self.utterances.running {
            if u.end.is_some_and(|e| e <= sent_through) && u.flushed_on != Some(id) {
                u.flushed_on = Some(id);
                u.deadline.get_or_insert(deadline);
                due = true;
            }
        }
        if let (true, Some(frame)) = (due, frame) {
            self.send(id, frame);
        }
    }

    /// A final transcript was emitted: it belongs to the utterances whose
    /// audio it overlaps.
    pub(super) fn note_final(&mut self, t: &Transcript) {
        let bps = self.cfg.bytes_per_ms() * 1000.0;
        for u in &mut self.utterances.running {
            let start = u.start as f64 / bps;
            let end = u.end.map_or(f64::INFINITY, |e| e as f64 / bps);
            if t.end > start + EPS && t.start < end - EPS {
                u.finals.push(t.clone());
            }
        }
    }

    /// The server finalized what it had (generic `flushed`): every
    /// utterance flushed on this socket is complete.
    pub(super) fn server_flushed(&mut self, id: SocketId) {
        for u in &mut self.utterances.running {
            if u.flushed_on == Some(id) {
                u.flushed = true;
            }
        }
    }

    /// Resolves the ended utterances the finals now cover (or, with
    /// `expired`, those past their deadline), in order, and arms the timer
    /// for the next deadline.
    pub(super) fn settle_utterances(&mut self, now: Instant, expired: bool) {
        let bps = self.cfg.bytes_per_ms() * 1000.0;
        let channels = usize::from(self.cfg.channels.max(1));
        let reached = self.finals.reached_all(channels);
        let mut done = Vec::new();
        self.utterances.running.retain_mut(|u| {
            let Some(end) = u.end else { return true };
            let covered = u.flushed || reached >= end as f64 / bps - EPS;
            let late = expired && now >= u.due();
            if covered || late {
                done.push(result(u, bps, now, !covered));
                false
            } else {
                true
            }
        });
        for r in done {
            self.emit(Event::Utterance(r));
        }
        let next = self
            .utterances
            .running
            .iter()
            .filter(|u| u.end.is_some())
            .map(Running::due)
            .min();
        self.timers.set_opt(Timer::Utterance, next);
    }

    /// Push-to-talk on demand: once no utterance runs or waits and every
    /// byte is confirmed, the socket closes (1000) and the session stands
    /// by. Nothing is lost: with anything unconfirmed it stays open.
    pub(super) fn stand_by_when_idle(&mut self) {
        let on_demand = self.cfg.push_to_talk.is_some_and(|p| p.on_demand);
        let Some(id) = self.link.ready() else { return };
        let idle = self.utterances.running.is_empty()
            && self.closing.is_none()
            && self.queue.all_confirmed();
        if !(on_demand && idle) {
            return;
        }
        self.close_socket(id, 1000, "standby");
        self.link = Link::Standby;
        // A clean end: the next connection starts a fresh budget.
        self.failures = 0;
        self.clear_connection_timers();
        self.announce(Some("no utterance in progress".into()), None);
    }

    /// The session ended: every ended utterance resolves with what it has.
    pub(super) fn abandon_utterances(&mut self, now: Instant) {
        let bps = self.cfg.bytes_per_ms() * 1000.0;
        let done: Vec<UtteranceResult> = self
            .utterances
            .running
            .drain(..)
            .filter(|u| u.end.is_some())
            .map(|u| result(&u, bps, now, true))
            .collect();
        for r in done {
            self.emit(Event::Utterance(r));
        }
    }
}

impl Running {
    /// When it resolves at the latest.
    fn due(&self) -> Instant {
        self.deadline
            .map_or(self.hard_deadline, |d| d.min(self.hard_deadline))
    }
}

fn result(u: &Running, bytes_per_sec: f64, now: Instant, timed_out: bool) -> UtteranceResult {
    let end = u.end.unwrap_or(u.start);
    // In stream order (channels interleave), by insertion: a handful of
    // finals, and no sort routine in the bundle.
    let mut finals = u.finals.clone();
    for i in 1..finals.len() {
        let mut j = i;
        while j > 0 && finals[j - 1].start > finals[j].start {
            finals.swap(j - 1, j);
            j -= 1;
        }
    }
    let text: Vec<&str> = finals
        .iter()
        .map(|t| t.text.trim())
        .filter(|t| !t.is_empty())
        .collect();
    UtteranceResult {
        id: u.id,
        text: text.join(" "),
        start_ms: u.start as f64 / bytes_per_sec * 1000.0,
        end_ms: end as f64 / bytes_per_sec * 1000.0,
        audio_ms: (end - u.start) as f64 / bytes_per_sec * 1000.0,
        latency_ms: now.saturating_duration_since(u.ended_at).as_millis() as f64,
        timed_out,
        finals,
    }
}
