//! The connection lifecycle: one [`Link`] that owns the socket, so a
//! socket exists exactly when a state needs one. Attempts, the provider's
//! handshake, readiness, and what a lost connection costs (backoff, the
//! attempt budget).

use std::time::Duration;

use super::liveness::Probation;
use super::timeline::Conn;
use super::Session;
use crate::core::error::UsageError;
use crate::core::event::{ErrorCode, Event, State};
use crate::core::io::{Credential, Output, SocketId, TokenRequest};
use crate::core::protocol::{self, CloseClass};
use crate::core::text::int;
use crate::core::time::Instant;
use crate::core::timer::Timer;
use crate::core::watchdog::Watchdog;

use super::CLOSE_STALE;

/// What a ready connection carries beyond its socket.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) watchdog: Watchdog,
    /// Liveness in doubt since a freeze, a sleep or an offline spell.
    pub(super) probation: Option<Probation>,
}

/// The connection, as far as there is one.
#[derive(Debug)]
pub(super) enum Link {
    /// No socket and none scheduled: before `connect()`, or between the end
    /// of one socket and what follows it within the same input.
    Idle,
    /// `getToken` is running for this request; answers to others are stale.
    FetchingToken(TokenRequest),
    /// Waiting for the socket's open event.
    Connecting(Conn),
    /// Open; waiting for the provider's handshake acknowledgement.
    Handshake(Conn),
    /// Ready: audio flows.
    Ready(Conn, Live),
    /// Waiting out the backoff (the `Reconnect` timer) before the next attempt.
    Backoff,
    /// Push-to-talk on demand: no utterance and nothing unconfirmed, so the
    /// socket was closed; `beginUtterance()` opens the next.
    Standby,
}

impl Link {
    /// The socket, in any state that has one.
    pub(super) fn conn(&self) -> Option<&Conn> {
        match self {
            Link::Connecting(c) | Link::Handshake(c) | Link::Ready(c, _) => Some(c),
            _ => None,
        }
    }

    /// The socket `id`, if it is the current one.
    pub(super) fn conn_mut(&mut self, id: SocketId) -> Option<&mut Conn> {
        match self {
            Link::Connecting(c) | Link::Handshake(c) | Link::Ready(c, _) if c.id == id => Some(c),
            _ => None,
        }
    }

    /// The ready socket's id.
    pub(super) fn ready(&self) -> Option<SocketId> {
        match self {
            Link::Ready(c, _) => Some(c.id),
            _ => None,
        }
    }

    /// The ready socket and its liveness.
    pub(super) fn ready_mut(&mut self) -> Option<(&mut Conn, &mut Live)> {
        match self {
            Link::Ready(c, l) => Some((c, l)),
            _ => None,
        }
    }
}

impl Session {
    pub(super) fn handle_connect(&mut self, now: Instant) -> Result<(), UsageError> {
        match self.state() {
            State::Idle => {
                self.start_attempt(now);
                Ok(())
            }
            s if s.is_terminal() || s == State::Closing => Err(UsageError::Closed),
            _ => Err(UsageError::AlreadyConnected),
        }
    }

    pub(super) fn start_attempt(&mut self, now: Instant) {
        self.counters.attempts += 1;
        self.timers
            .set(Timer::Connect, now + self.cfg.connect_timeout);
        if self.cfg.token_callback {
            let req = TokenRequest(self.next_token);
            self.next_token += 1;
            self.link = Link::FetchingToken(req);
            self.announce(None, None);
            self.out.push_back(Output::RequestToken(req));
        } else {
            self.open_socket();
            self.announce(None, None);
        }
    }

    fn open_socket(&mut self) {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        self.link = Link::Connecting(Conn::new(id));
        let protocols = protocol::protocols(self.wire, &self.cfg.protocols, self.token.as_ref());
        self.out.push_back(Output::Open {
            id,
            url: self.url.clone(),
            protocols,
        });
    }

    pub(super) fn handle_token(
        &mut self,
        now: Instant,
        req: TokenRequest,
        result: Result<Credential, String>,
    ) -> Result<(), UsageError> {
        if !matches!(self.link, Link::FetchingToken(r) if r == req) {
            // A late answer to an attempt that already timed out (its id
            // is not the one in flight), or a caller bug: either way it
            // must not satisfy the current request.
            return Err(UsageError::UnexpectedToken);
        }
        self.link = Link::Idle;
        let (message, reason) = match result {
            Ok(t) if protocol::token_usable(self.wire, &t) => {
                self.token = Some(t);
                self.open_socket();
                return Ok(());
            }
            Ok(_) => (
                "getToken returned an empty or malformed token".to_string(),
                "getToken returned an unusable token",
            ),
            Err(why) => (["getToken failed: ", &why].concat(), "getToken failed"),
        };
        self.emit_error(ErrorCode::TokenFailed, message, false);
        self.timers.clear(Timer::Connect);
        self.connection_lost(now, reason.into(), false);
        Ok(())
    }

    pub(super) fn handle_opened(&mut self, now: Instant, id: SocketId) {
        if !matches!(&self.link, Link::Connecting(c) if c.id == id) {
            return;
        }
        let Link::Connecting(mut conn) = std::mem::replace(&mut self.link, Link::Idle) else {
            unreachable!("checked above");
        };
        let resume = self.queue.resume_offset();
        let token = self.token.as_ref().map(|c| c.token.as_str());
        let first = self
            .wire
            .first_frame(token, &self.stream_id, resume, self.finals.reached_ms());
        if let Some(frame) = first {
            conn.next_offset = Some(resume);
            self.out.push_back(Output::Send(id, frame));
        }
        if self.wire.has_handshake() {
            self.link = Link::Handshake(conn);
            self.announce(None, None);
        } else {
            self.became_ready(now, conn, resume);
        }
    }

    /// The provider acknowledged the handshake (Omi `auth_response`).
    pub(super) fn handshake_done(&mut self, now: Instant) {
        if !matches!(self.link, Link::Handshake(_)) {
            return;
        }
        let Link::Handshake(conn) = std::mem::replace(&mut self.link, Link::Idle) else {
            unreachable!("checked above");
        };
        let resume = conn
            .next_offset
            .unwrap_or_else(|| self.queue.resume_offset());
        self.became_ready(now, conn, resume);
    }

    fn became_ready(&mut self, now: Instant, conn: Conn, resume: u64) {
        let cfg = &self.cfg;
        let watchdog = Watchdog::new(
            now,
            self.wire.expectation(),
            cfg.stale_after,
            cfg.stall_after,
            cfg.keepalive_interval(),
        );
        self.link = Link::Ready(
            conn,
            Live {
                watchdog,
                probation: None,
            },
        );
        self.timers.clear(Timer::Connect);
        self.timers
            .set(Timer::ResetAttempts, now + self.cfg.reconnect.reset_after);
        self.connections += 1;
        if self.connections > 1 {
            self.counters.reconnects += 1;
        }
        self.pacer.reset(now);
        // A connection that works says more than the browser's flag.
        self.offline = false;
        self.announce(None, None);
        self.emit(Event::Open {
            connection: self.connections,
            backlog_chunks: self.queue.pending_len() as u32,
            resume_offset: self.wire.acks().then_some(resume),
        });
    }

    pub(super) fn attempt_timed_out(&mut self, now: Instant) {
        if let Some(id) = self.link.conn().map(|c| c.id) {
            self.close_socket(id, CLOSE_STALE, "connect timeout");
        }
        self.link = Link::Idle;
        let ms = int(self.cfg.connect_timeout.as_millis() as u64);
        self.emit_error(
            ErrorCode::ConnectTimeout,
            ["the connection was not ready within ", &ms, " ms"].concat(),
            false,
        );
        self.connection_lost(now, ["not ready within ", &ms, " ms"].concat(), false);
    }

    pub(super) fn handle_closed(&mut self, now: Instant, id: SocketId, code: u16, reason: &str) {
        if self.link.conn_mut(id).is_none() {
            return;
        }
        self.link = Link::Idle;
        let finishing = self.closing.is_some_and(|c| c.finalize_sent);
        let described = if reason.is_empty() {
            ["close ", &int(code.into())].concat()
        } else {
            ["close ", &int(code.into()), " \"", reason, "\""].concat()
        };
        match protocol::classify_close(self.wire, code, reason, finishing) {
            CloseClass::Finished => {
                // A normal close after our finalize: the server sent every
                // final before it. (Any other close after the finalize is a
                // network failure: it reconnects, resends and finalizes
                // again within the close deadline.)
                self.queue.ack_all();
                let reason = if reason.is_empty() {
                    "finished"
                } else {
                    reason
                };
                self.finish(Some(code), reason.into());
            }
            CloseClass::Fatal(err) => self.fail(
                err,
                ["the server closed the connection: ", &described].concat(),
                Some(code),
            ),
            CloseClass::Retry => self.connection_lost(now, described, false),
        }
    }

    /// The socket is gone (already closed or forgotten): count the failure
    /// and schedule the next attempt, or give up when the budget is spent.
    pub(super) fn connection_lost(&mut self, now: Instant, reason: String, immediate: bool) {
        self.link = Link::Idle;
        self.clear_connection_timers();
        // Unconfirmed audio goes back to the queue to be resent; what the
        // queue had to let go of unconfirmed is lost, and said so.
        self.queue.rewind();
        if let Some(closing) = self.closing.as_mut() {
            // A flushing close lost its socket after the finalize went out:
            // the next socket must resend the unconfirmed audio and finalize
            // again, within the user's deadline (not the linger's).
            closing.finalize_sent = false;
            self.timers.set(Timer::CloseDeadline, closing.deadline);
        }
        // Every close counts, including closes after open: a server that
        // accepts and drops at once must not get a retry storm.
        self.failures = self.failures.saturating_add(1);
        if let Some(max) = self.cfg.reconnect.max_attempts {
            if self.failures >= max {
                let msg = [
                    "gave up after ",
                    &int(self.failures.into()),
                    " consecutive failed attempts (last: ",
                    &reason,
                    ")",
                ]
                .concat();
                self.fail(ErrorCode::MaxAttempts, msg, None);
                return;
            }
        }
        if self.closing.is_some() && self.queue.pending_len() == 0 && !self.finals_owed() {
            self.finish(None, reason);
            return;
        }
        let delay = if immediate {
            Duration::ZERO
        } else {
            self.backoff.delay(self.failures)
        };
        self.link = Link::Backoff;
        self.announce(Some(reason), Some(delay));
        self.emit(Event::Reconnecting {
            attempt: self.failures,
            delay,
        });
        if immediate {
            self.start_attempt(now);
        } else {
            self.timers.set(Timer::Reconnect, now + delay);
        }
    }

    /// The timers that belong to a connection (its attempt, its attempt
    /// counter's reset, pacing, probation), once it is gone.
    pub(super) fn clear_connection_timers(&mut self) {
        for t in [
            Timer::Connect,
            Timer::ResetAttempts,
            Timer::Pace,
            Timer::Probation,
        ] {
            self.timers.clear(t);
        }
    }

    /// Closes socket `id` with a code and reason, and forgets it: later
    /// events from it are ignored.
    pub(super) fn close_socket(&mut self, id: SocketId, code: u16, reason: &str) {
        if self.link.conn_mut(id).is_some() {
            self.link = Link::Idle;
            self.out.push_back(Output::Close {
                id,
                code,
                reason: reason.to_string(),
            });
        }
    }
}
