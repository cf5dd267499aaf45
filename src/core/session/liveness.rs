//! Is the connection alive? The watchdog (wall-clock deadlines checked on
//! every input, send stalls judged by bytes leaving), probation after a
//! freeze, a sleep or an offline spell, and the browser's network events.

use std::time::Duration;

use super::Session;
use super::CLOSE_STALE;
use crate::core::event::State;
use crate::core::io::SocketId;
use crate::core::text::int;
use crate::core::time::Instant;
use crate::core::timer::Timer;
use crate::core::watchdog::{Expectation, Stale};

/// How long a connection that may not have survived a freeze, a sleep or
/// an offline spell has to prove it is alive before it is replaced: one
/// ack or result interval of the servers we speak to, with room to spare.
/// A dead one is replaced, and its unconfirmed tail resent, within this
/// plus one handshake of the resume.
const PROOF_OF_LIFE: Duration = Duration::from_secs(2);
/// How long after a `freeze` an input counts as the page running again
/// (what arrives in the instant before the freeze takes hold does not).
const RESUMED_AFTER: Duration = Duration::from_secs(1);

/// A ready connection whose liveness is in doubt.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probation {
    /// Audio bytes sent on the socket when the doubt began: a result or
    /// an ack covering audio beyond them proves the server reads what we
    /// send now (frames it sent before it died may still arrive).
    wire_mark: u64,
    /// Stream offset sent when the doubt began (generic acks).
    offset_mark: u64,
    /// Why, for the state event if it is replaced.
    reason: &'static str,
}

impl Session {
    /// A `bufferedAmount` sample of socket `id`.
    pub(super) fn on_buffered(&mut self, now: Instant, id: SocketId, bytes: u64) {
        if let Some((conn, live)) = self.link.ready_mut().filter(|(c, _)| c.id == id) {
            live.watchdog.on_buffered(now, bytes, conn.handed);
            self.counters.buffered_amount = bytes;
        }
    }

    pub(super) fn check_liveness(&mut self, now: Instant) {
        // After finalize no keepalive timer runs, so a long close timeout is
        // not a sign of a suspended page.
        let timers_run = !self.closing.is_some_and(|c| c.finalize_sent);
        let Some((conn, live)) = self.link.ready_mut() else {
            return;
        };
        if live.probation.is_some() {
            // The probation decides, on its own deadline.
            return;
        }
        if self
            .frozen
            .is_some_and(|at| now.saturating_duration_since(at) >= RESUMED_AFTER)
        {
            // An input well after a `freeze` means the page runs again,
            // whether or not `resume` comes first (timers may fire before
            // it): what the freeze kept from arriving is not judged.
            self.frozen = None;
            self.start_probation(now, "page resumed after a freeze");
            return;
        }
        let id = conn.id;
        match live.watchdog.check(now, timers_run) {
            None => {}
            Some(Stale::Suspended(_)) => {
                // The page did not run (a frozen or throttled tab): the
                // connection may well have survived; it gets a short
                // window to prove it instead of a reconnect on suspicion.
                self.start_probation(now, "page was suspended");
            }
            Some(stale) => {
                self.close_socket(id, CLOSE_STALE, "stale");
                self.connection_lost(now, stale.describe(), false);
            }
        }
    }

    /// Puts the ready connection on probation: it keeps sending, and must
    /// prove alive within [`PROOF_OF_LIFE`] or be replaced.
    pub(super) fn start_probation(&mut self, now: Instant, reason: &'static str) {
        let Some((conn, live)) = self.link.ready_mut() else {
            return;
        };
        if live.probation.is_some() {
            return;
        }
        // The answers it owed could not be received while the page did
        // not run: the watchdog starts afresh, the probation decides.
        live.watchdog.rebase(now);
        live.probation = Some(Probation {
            wire_mark: conn.wire_bytes,
            offset_mark: conn.next_offset.unwrap_or(0),
            reason,
        });
        self.timers.set(Timer::Probation, now + PROOF_OF_LIFE);
    }

    /// Evidence from socket `id` that the server is alive: `heard_wire`,
    /// the audio bytes of this socket a result covers (interim ones too),
    /// or `acked`, a stream offset the server acknowledged; `None` for any
    /// other frame.
    pub(super) fn prove_alive(
        &mut self,
        id: SocketId,
        heard_wire: Option<u64>,
        acked: Option<u64>,
    ) {
        let heartbeats = self.wire.expectation() == Expectation::Heartbeat;
        let Some((conn, live)) = self.link.ready_mut().filter(|(c, _)| c.id == id) else {
            return;
        };
        let Some(p) = live.probation else { return };
        // Frames the server sent before the doubt began (before it died,
        // perhaps) arrive first after a freeze: only an answer to audio
        // sent since then proves the server reads this socket. Omi answers
        // audio only with segments, which silence does not produce; for it,
        // any frame received once audio went out since counts (weaker:
        // docs/reliability.md says so).
        let heard = heard_wire.is_some_and(|w| w > p.wire_mark);
        let acked = acked.is_some_and(|o| o > p.offset_mark);
        let heartbeat = heartbeats && conn.wire_bytes > p.wire_mark;
        if heard || acked || heartbeat {
            live.probation = None;
            self.timers.clear(Timer::Probation);
        }
    }

    pub(super) fn probation_expired(&mut self, now: Instant) {
        let Some((conn, live)) = self.link.ready_mut() else {
            return;
        };
        let Some(p) = live.probation else { return };
        if conn.wire_bytes == p.wire_mark {
            // Nothing went out since the doubt began, so no answer was owed
            // and nothing is at risk: the ordinary watchdog takes over.
            live.probation = None;
            live.watchdog.rebase(now);
            return;
        }
        let id = conn.id;
        self.counters.probes_failed += 1;
        self.close_socket(id, CLOSE_STALE, "no proof of life");
        let reason = [
            "stale: no answer within ",
            &int(PROOF_OF_LIFE.as_millis() as u64),
            " ms (",
            p.reason,
            ")",
        ]
        .concat();
        // The network is likely fine (the page, not the link, was away):
        // replace the connection at once.
        self.connection_lost(now, reason, true);
    }

    pub(super) fn handle_online(&mut self, now: Instant) {
        if self.timers.get(Timer::Reconnect).is_some() {
            // The browser says the network is back: retry at once instead
            // of sitting out the backoff.
            self.timers.clear(Timer::Reconnect);
            self.start_attempt(now);
            return;
        }
        if std::mem::take(&mut self.offline) && self.link.ready().is_some() {
            // The connection was kept through the offline spell, audio held
            // back. It resumes sending at once, and must prove within
            // PROOF_OF_LIFE that the server reads it, or it is replaced and
            // the unconfirmed tail resent.
            self.announce(Some("network is back".into()), None);
            self.start_probation(now, "network came back");
        }
    }

    /// The browser reports no network. Audio stops being written into the
    /// socket, which could not carry it (and would carry it twice: once if
    /// it arrived after all, once more when it is resent on the next
    /// connection); it waits in the queue with the usual bounds.
    pub(super) fn handle_offline(&mut self) {
        self.offline = true;
        if self.state() == State::Offline {
            self.announce(
                Some("the browser reports no network; audio is held in the queue".into()),
                None,
            );
        }
    }
}
