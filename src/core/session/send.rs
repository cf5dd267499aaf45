//! From the queue to the socket: the pump (backpressure, pacing, seeks),
//! keepalives, and the timers the session asks its caller to keep.

use std::time::Duration;

use super::Session;
use crate::core::io::{Frame, Output, SocketId};
use crate::core::time::Instant;
use crate::core::timer::Timer;

/// Above this many bytes in the socket's send buffer, audio stays in our
/// queue (where it is bounded, counted and replayable) instead of piling up
/// in the browser's buffer, where a dead connection would lose it silently.
const HIGH_WATER: u64 = 64 * 1024;
/// How often to look at the send buffer again while backpressured.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(250);

impl Session {
    /// Sends what the queue holds, as far as the socket, the pacer and the
    /// browser's network flag allow; finalizes a flushing close once the
    /// queue is empty.
    pub(super) fn pump(&mut self, now: Instant) {
        let Some(id) = self.link.ready() else { return };
        if self.closing.is_some_and(|c| c.finalize_sent) {
            return;
        }
        let bytes_per_ms = self.cfg.bytes_per_ms();
        let buffered = self
            .link
            .ready_mut()
            .map_or(0, |(_, live)| live.watchdog.buffered());
        let mut sent_audio = false;
        let mut loud = false;
        let heartbeat = self.wire.expectation() == crate::core::watchdog::Expectation::Heartbeat;
        while let Some(front) = self.queue.front().filter(|_| !self.offline) {
            if buffered > HIGH_WATER {
                self.timers.set(Timer::Pace, now + BACKPRESSURE_POLL);
                break;
            }
            let cost = front.data.len() as f64 / bytes_per_ms;
            if let Err(at) = self.pacer.spend(now, cost) {
                self.timers.set(Timer::Pace, at);
                break;
            }
            let chunk = self.queue.pop_front().expect("front exists");
            let Some((conn, _)) = self.link.ready_mut() else {
                unreachable!("the link is ready: checked above");
            };
            let seek = conn.next_offset.is_some_and(|o| o != chunk.offset);
            conn.next_offset = Some(chunk.end());
            // Every provider keeps sent audio until the server confirms it
            // (generic acks, Deepgram finals, Omi segments): audio in
            // flight when a connection dies is resent, not lost silently.
            let wire_end = conn.note_audio(chunk.offset, chunk.data.len() as u64);
            if seek {
                if let Some(frame) = self.wire.seek(chunk.offset) {
                    self.send(id, frame);
                }
            }
            // Only a heartbeat server's watchdog asks whether speech went
            // unheard: no per-chunk energy sum for the others.
            loud = loud || (heartbeat && crate::core::watchdog::speech_level(&chunk.data));
            self.out
                .push_back(Output::Send(id, Frame::Binary(chunk.data.clone())));
            self.queue.sent(chunk, wire_end);
            sent_audio = true;
            // An utterance that ended with this chunk is finalized before
            // the next one's audio goes out.
            self.flush_utterances(id);
        }
        if !self.offline {
            self.flush_utterances(id);
        }
        if sent_audio {
            if let Some((_, live)) = self.link.ready_mut() {
                live.watchdog.on_audio_sent(now, loud);
            }
        }
        if self.queue.pending_len() == 0 && self.closing.is_some() {
            self.finalize(now, id);
        }
    }

    pub(super) fn keepalive(&mut self, now: Instant) {
        if self.closing.is_some_and(|c| c.finalize_sent) {
            return;
        }
        let Some(id) = self.link.ready() else { return };
        let due = self
            .link
            .ready_mut()
            .is_some_and(|(_, live)| live.watchdog.keepalive_due(now));
        if due {
            self.counters.keepalives_sent += 1;
            self.send(id, self.wire.keepalive());
        }
    }

    /// Queues a frame that is not audio for socket `id`.
    pub(super) fn send(&mut self, id: SocketId, frame: Frame) {
        let now = self.now;
        if let Some((_, live)) = self.link.ready_mut().filter(|(c, _)| c.id == id) {
            live.watchdog.on_other_sent(now);
        }
        self.out.push_back(Output::Send(id, frame));
    }

    /// The deadlines that depend on the state after an input.
    pub(super) fn arm_timers(&mut self) {
        // Once the finalize frame is out, `keepalive` sends nothing more, so
        // a keepalive deadline would stay due (in the past) and the caller
        // would be woken at `now` in a loop until the close deadline: only
        // the liveness deadlines count then.
        let finalizing = self.closing.is_some_and(|c| c.finalize_sent);
        let watchdog = self.link.ready_mut().and_then(|(_, live)| {
            if finalizing {
                live.watchdog.liveness_deadline()
            } else {
                Some(live.watchdog.next_deadline())
            }
        });
        self.timers.set_opt(Timer::Watchdog, watchdog);
        if self.link.ready().is_none() {
            self.timers.clear(Timer::Pace);
        }
        let expiry = if self.ended.is_some() {
            None
        } else {
            self.queue.next_expiry()
        };
        self.timers.set_opt(Timer::Expiry, expiry);
    }
}
