//! The bounded close: flush the queue, finalize, await the final results,
//! close 1000, all within the deadline; and the two terminal states.

use std::time::Duration;

use super::link::Link;
use super::Session;
use crate::core::event::{DropReason, ErrorCode, Event, State};
use crate::core::io::SocketId;
use crate::core::time::Instant;
use crate::core::timer::Timer;

/// Without a finalize message (Omi), wait at most this long after the last
/// audio for the segments that confirm it (what stays unconfirmed is
/// reported, never assumed delivered).
const LINGER_WITHOUT_FINALIZE: Duration = Duration::from_millis(1500);

/// A flushing close in progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct Closing {
    /// The whole close must be over by then.
    pub(super) deadline: Instant,
    /// Finalize sent (or, without one, the linger started): the next
    /// normal server close is the end.
    pub(super) finalize_sent: bool,
}

impl Session {
    pub(super) fn handle_close(&mut self, now: Instant, flush: bool, timeout: Option<Duration>) {
        match self.state() {
            State::Closed | State::Failed => {}
            State::Closing => {
                if !flush {
                    self.close_now("client closed");
                }
            }
            State::Idle => self.finish(None, "closed before connecting".into()),
            _ if !flush => self.close_now("client closed"),
            _ => {
                let waited = self.link.ready().is_none();
                self.queue.push_partial(now, waited);
                let deadline = now + timeout.unwrap_or(self.cfg.close_timeout);
                self.closing = Some(Closing {
                    deadline,
                    finalize_sent: false,
                });
                self.timers.set(Timer::CloseDeadline, deadline);
                self.timers.clear(Timer::ResetAttempts);
                self.announce(Some("close requested".into()), None);
                match self.link {
                    // An attempt in progress carries the flush: starting
                    // another would call `getToken` twice and reject the
                    // first token's answer.
                    Link::FetchingToken(_) | Link::Connecting(_) | Link::Handshake(_) => {}
                    Link::Ready(..) => {}
                    Link::Idle | Link::Backoff | Link::Standby => {
                        self.timers.clear(Timer::Reconnect);
                        if self.queue.pending_len() == 0 && !self.finals_owed() {
                            self.finish(None, "closed".into());
                        } else {
                            // Try once more right away to deliver the backlog.
                            self.start_attempt(now);
                        }
                    }
                }
            }
        }
    }

    /// The queue is empty on a ready socket during a flushing close: ask
    /// the server to finish, or (without a finalize message) linger.
    pub(super) fn finalize(&mut self, now: Instant, id: SocketId) {
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        if closing.finalize_sent {
            return;
        }
        closing.finalize_sent = true;
        match self.wire.finalize() {
            Some(frame) => self.send(id, frame),
            None => {
                // The user's deadline stays in `closing.deadline`, in case
                // the socket dies during the linger and a new one is needed.
                let until = closing.deadline.min(now + LINGER_WITHOUT_FINALIZE);
                self.timers.set(Timer::CloseDeadline, until);
            }
        }
    }

    /// Without a finalize message (Omi) the close lingers for segments that
    /// confirm the last audio; once everything is confirmed there is
    /// nothing left to wait for.
    pub(super) fn end_linger_when_confirmed(&mut self) {
        let lingering = self.closing.is_some_and(|c| c.finalize_sent)
            && self.wire.finalize().is_none()
            && self.link.ready().is_some();
        if lingering && self.queue.all_confirmed() {
            self.close_now("closed");
        }
    }

    pub(super) fn close_deadline(&mut self) {
        let clean = self.queue.pending_len() == 0 && self.queue.partial_samples() == 0;
        // Without a finalize message (Omi) the linger ends the close: what
        // no segment confirmed by then is reported `unconfirmed` by
        // `finish`, never assumed delivered.
        let reason = if clean && self.closing.is_some_and(|c| c.finalize_sent) {
            "closed"
        } else {
            "close timeout"
        };
        self.close_now(reason);
    }

    /// Ends at once: closes the socket with 1000 and reports what is unsent.
    pub(super) fn close_now(&mut self, reason: &str) {
        if let Some(id) = self.link.conn().map(|c| c.id) {
            self.close_socket(id, 1000, reason);
            self.finish(Some(1000), reason.into());
        } else {
            self.finish(None, reason.into());
        }
    }

    /// Enters `closed`. Whatever was not sent or confirmed is reported.
    pub(super) fn finish(&mut self, code: Option<u16>, reason: String) {
        self.drop_untranscribed();
        self.queue.drain_all(DropReason::Closed);
        self.terminate(State::Closed, code, reason);
    }

    /// Enters `failed` with a fatal error event.
    pub(super) fn fail(&mut self, code: ErrorCode, message: String, close_code: Option<u16>) {
        if let Some(id) = self.link.conn().map(|c| c.id) {
            self.close_socket(id, 1000, "fatal error");
        }
        self.drop_untranscribed();
        self.queue.drain_all(DropReason::Failed);
        self.emit_error(code, message.clone(), true);
        self.terminate(State::Failed, close_code, message);
    }

    /// Audio the server acknowledged (generic `ack`: stored) but no final
    /// covers, when the session ends without `finished`: every second the
    /// user spoke is in a final transcript or reported dropped.
    fn drop_untranscribed(&mut self) {
        if self.wire.acks() {
            self.queue.drop_untranscribed(self.finals_offset());
        }
    }

    /// Whether the server stored audio (generic `ack`) whose finals have
    /// not come: a flushing close that lost its socket reconnects for
    /// them (`final_from` asks the server to send them again).
    pub(super) fn finals_owed(&self) -> bool {
        self.wire.acks() && self.queue.untranscribed(self.finals_offset()) > 0
    }

    /// The stream offset every channel's finals reached.
    fn finals_offset(&self) -> u64 {
        let channels = u64::from(self.cfg.channels.max(1));
        let secs = self.finals.reached_all(channels as usize);
        let frames = (secs * f64::from(self.cfg.sample_rate)).round().max(0.0) as u64;
        frames * 2 * channels
    }

    fn terminate(&mut self, state: State, code: Option<u16>, reason: String) {
        // `closed` is the last event: what `finish`/`fail` just dropped is
        // reported before it, not after (a listener that unsubscribes on
        // `closed` would never learn that audio was lost).
        self.report_drops();
        self.abandon_utterances(self.now);
        self.link = Link::Idle;
        self.closing = None;
        self.timers.clear_all();
        self.ended = Some(state);
        self.announce(Some(reason.clone()), None);
        self.emit(Event::Closed { code, reason });
    }
}
