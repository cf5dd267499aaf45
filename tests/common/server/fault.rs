//! The faults a scenario scripts, and what the server does for each.

use std::time::Duration;

use resilient_transcriber::core::Instant;

use super::{generic, Deliver, FakeServer, OpenMode, ServerTimer};

/// A scripted fault, applied at a given instant to the server's current
/// socket (the one most recently accepted and still open).
///
/// - `Close { code, reason }`: the server sends a close frame with that code
///   and reason (e.g. 1008, 4001, 1011 `"NET-0001"`, unsolicited 1000).
/// - `Reset`: the connection drops without a close frame: the browser fires
///   `error`, then `close` with 1006.
/// - `Blackhole`: from now on nothing is delivered in either direction on
///   that socket and it never closes (a dead NAT mapping, a sleeping Wi-Fi).
/// - `Down(d)`: the server dies for `d`: the current socket resets and every
///   open in the window is refused (1006).
/// - `Flap { for_, up }`: for `for_`, every socket the server accepts resets
///   `up` after its open (a crash-looping backend behind a load balancer);
///   the current socket resets at once.
/// - `StopAcking` / `ResumeAcking`: the generic server keeps storing audio
///   but stops (or resumes) sending `ack`s.
/// - `SendText(s)`: the server sends this text frame (malformed JSON, an
///   unknown type, an error report, ...).
/// - `SendBinary(b)`: the server sends a binary frame (no provider does).
/// - `HoldBuffered(n)`: the socket stops draining: what the client sends
///   stays in the browser's send buffer, whose `bufferedAmount` reads `n`
///   plus everything sent since, and nothing reaches the server.
/// - `ReleaseBuffered`: the buffer drains: the held frames reach the server.
/// - `OpenMode(m)`: from now on opens are answered per [`OpenMode`].
/// - `Crash`: the server dies before persisting: every stored stream is cut
///   back to the last offset it acknowledged (what it held unacknowledged,
///   and may have reported in `started`, is gone), and the current socket
///   resets.
/// - `StopReading` / `ResumeReading`: the server stops (or resumes)
///   processing what arrives (a stuck reader), while its own heartbeats
///   and timers carry on.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// See the type docs.
    Close {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// See the type docs.
    Reset,
    /// See the type docs.
    Blackhole,
    /// See the type docs.
    Down(Duration),
    /// See the type docs.
    Flap {
        /// How long the backend keeps crashing.
        for_: Duration,
        /// How long each connection lives.
        up: Duration,
    },
    /// See the type docs.
    StopAcking,
    /// See the type docs.
    ResumeAcking,
    /// See the type docs.
    SendText(String),
    /// See the type docs.
    SendBinary(Vec<u8>),
    /// See the type docs.
    HoldBuffered(u64),
    /// See the type docs.
    ReleaseBuffered,
    /// See the type docs.
    OpenMode(OpenMode),
    /// See the type docs.
    Crash,
    /// See the type docs.
    StopReading,
    /// See the type docs.
    ResumeReading,
}

impl Fault {
    /// A close frame.
    pub fn close(code: u16, reason: &str) -> Fault {
        Fault::Close {
            code,
            reason: reason.into(),
        }
    }
}

impl FakeServer {
    /// Applies `fault` now.
    pub(in crate::common) fn apply(&mut self, now: Instant, fault: Fault) {
        let cur = self.current();
        match fault {
            Fault::Close { code, reason } => {
                if let Some(id) = cur {
                    self.close(now, id, code, &reason);
                }
            }
            Fault::Reset => {
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::Blackhole => {
                if let Some(id) = cur {
                    self.sockets.get_mut(&id).expect("exists").blackholed = true;
                }
            }
            Fault::Down(d) => {
                self.down_until = Some(now + d);
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::Flap { for_, up } => {
                self.flap = Some((now + for_, up));
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::StopAcking => self.acking = false,
            Fault::ResumeAcking => {
                self.acking = true;
                if let Some(id) = cur {
                    self.timer(now, ServerTimer::AckTick(id));
                }
            }
            Fault::SendText(s) => {
                if let Some(id) = cur {
                    self.emit(now, Deliver::Text(id, s));
                }
            }
            Fault::SendBinary(b) => {
                if let Some(id) = cur {
                    self.emit(now, Deliver::Binary(id, b));
                }
            }
            Fault::HoldBuffered(n) => {
                if let Some(id) = cur {
                    self.sockets.get_mut(&id).expect("exists").held = Some(n);
                }
            }
            Fault::ReleaseBuffered => {
                for id in self.sockets.keys().copied().collect::<Vec<_>>() {
                    let s = self.sockets.get_mut(&id).expect("exists");
                    if s.held.take().is_some() {
                        let stuck = std::mem::take(&mut s.stuck);
                        s.stuck_bytes = 0;
                        for f in stuck {
                            self.on_frame(now, id, f);
                        }
                    }
                }
            }
            Fault::OpenMode(m) => self.open_mode = m,
            Fault::Crash => {
                generic::lose_unacknowledged(self);
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::StopReading => self.stuck_reader = true,
            Fault::ResumeReading => self.stuck_reader = false,
        }
    }
}
