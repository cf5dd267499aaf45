//! Draining the session after every input, and the invariants every
//! scenario relies on, checked after every drain (the harness panics with
//! the recent trace when one breaks):
//! - `bytes_pushed == bytes_sent + bytes_queued + bytes_dropped`;
//! - the bytes of all `Dropped` events sum to `stats.bytes_dropped`;
//! - `queued_bytes() <= buffer.maxBytes`;
//! - the `Timeout` deadline is never in the past;
//! - once `closed`/`failed`, the state never changes again, and `closed` is
//!   the last event (only audio pushed afterwards is reported after it);
//! - time makes progress (no busy loop at one instant, see
//!   [`Harness::step`]).

use std::fmt::Write as _;

use resilient_transcriber::core::{Event, Frame, Input, Output, StateChange};

use super::{Deliver, Harness, Scheduled, Sent};
use crate::common::audio::decode_frame;

impl Harness {
    pub(super) fn drain(&mut self, after_timeout: bool) {
        let mut sent_on = None;
        loop {
            let out = self.session.poll_output();
            match out {
                Output::Timeout(d) => {
                    if let Some(d) = d {
                        if d < self.now {
                            self.fail(&format!(
                                "deadline {} ms is in the past (now {} ms)",
                                d.as_millis(),
                                self.now.as_millis()
                            ));
                        }
                    }
                    self.deadline = d;
                    break;
                }
                Output::Open { id, url, protocols } => {
                    self.note(format!("out open {id:?}"));
                    self.opens.push((self.now, id, protocols.clone()));
                    self.server.on_open(self.now, id, &url, &protocols);
                }
                Output::Send(id, frame) => {
                    let rec = match &frame {
                        Frame::Text(s) => Sent::Text(s.clone()),
                        Frame::Binary(b) if self.server.is_keepalive(b) || self.opaque_audio => {
                            Sent::Other(b.len())
                        }
                        Frame::Binary(b) => {
                            let (first, n) = decode_frame(b);
                            Sent::Audio(first, n)
                        }
                    };
                    self.note(format!("out send {id:?} {rec:?}"));
                    self.unsampled_bytes += frame.len() as u64;
                    self.sent.push((self.now, id, rec));
                    sent_on = Some(id);
                    self.server.on_frame(self.now, id, frame);
                }
                Output::Close { id, code, reason } => {
                    self.note(format!("out close {id:?} {code} {reason}"));
                    self.closes.push((self.now, id, code, reason.clone()));
                    self.server.on_client_close(self.now, id, code, &reason);
                }
                Output::RequestToken(req) => {
                    self.note("out request-token".into());
                    self.token_requests.push(self.now);
                    let n = self.token_requests.len();
                    let answer = self
                        .token_script
                        .pop_front()
                        .unwrap_or_else(|| Ok(format!("tok-{n}")));
                    let delay = self.token_delays.pop_front().unwrap_or(self.token_delay);
                    let at = self.now + delay;
                    self.schedule(at, Scheduled::Client(Deliver::Token(req, answer)));
                }
                Output::Event(e) => self.on_event(e),
                other => self.fail(&format!("unknown output {other:?}")),
            }
        }
        self.absorb();
        self.check_invariants();
        if sent_on.is_some() && !after_timeout {
            self.sample_buffered();
        }
    }

    /// The shell's sample before a timer input: a healthy browser buffer
    /// has drained by then.
    pub(super) fn sample_before_timer(&mut self) {
        if self.browser_buffer {
            self.unsampled_bytes = 0;
        }
        self.sample_buffered();
    }

    /// Feeds the current socket's `bufferedAmount`, like the browser shell
    /// does after sending and on every timer, when it is (or was) non-zero.
    fn sample_buffered(&mut self) {
        let Some(id) = self.server.current() else {
            return;
        };
        let healthy = std::mem::take(&mut self.unsampled_bytes);
        if self.browser_buffer && self.server.buffered(id).is_none() {
            self.note(format!("in  buffered {id:?} {healthy}"));
            let _ = self
                .session
                .handle_input(self.now, Input::BufferedAmount(id, healthy));
            self.drain(true);
            return;
        }
        let amount = self.server.buffered(id).unwrap_or(0);
        let last = self.last_buffered.get(&id).copied().unwrap_or(0);
        if amount == 0 && last == 0 {
            return;
        }
        self.last_buffered.insert(id, amount);
        self.note(format!("in  buffered {id:?} {amount}"));
        let _ = self
            .session
            .handle_input(self.now, Input::BufferedAmount(id, amount));
        self.drain(true);
    }

    fn on_event(&mut self, e: Event) {
        self.note(format!("event {}", brief_event(&e)));
        if let Event::State(StateChange {
            state, previous, ..
        }) = &e
        {
            if let Some(term) = self.terminal {
                self.fail(&format!(
                    "state changed {previous:?} -> {state:?} after the terminal {term:?}"
                ));
            }
            if state.is_terminal() {
                self.terminal = Some(*state);
            }
        }
        if let Event::Dropped(d) = &e {
            self.dropped_in_events += d.bytes;
        }
        if self.closed_seen && !(self.in_audio && matches!(e, Event::Dropped(_))) {
            self.fail(&format!(
                "{} after `closed`, which must be the last event (only audio pushed later is reported)",
                brief_event(&e)
            ));
        }
        if matches!(e, Event::Closed { .. }) {
            self.closed_seen = true;
        }
        self.events.push((self.now, e));
    }

    fn check_invariants(&mut self) {
        if !self.check_stats {
            return;
        }
        let s = self.session.stats();
        if s.bytes_pushed != s.bytes_sent + s.bytes_queued + s.bytes_dropped {
            self.fail(&format!(
                "conservation: pushed {} != sent {} + queued {} + dropped {}",
                s.bytes_pushed, s.bytes_sent, s.bytes_queued, s.bytes_dropped
            ));
        }
        if s.bytes_dropped != self.dropped_in_events {
            self.fail(&format!(
                "stats.bytes_dropped {} != bytes in dropped events {}",
                s.bytes_dropped, self.dropped_in_events
            ));
        }
        let max = self.session.config().max_bytes;
        if self.session.queued_bytes() > max {
            self.fail(&format!(
                "queue holds {} bytes > maxBytes {max}",
                self.session.queued_bytes()
            ));
        }
    }

    pub(super) fn note(&mut self, line: String) {
        if self.trace.len() == 60 {
            self.trace.pop_front();
        }
        let at = self.now.as_millis();
        self.trace.push_back(format!("{at:>10} {line}"));
    }

    /// Panics with `msg` and the recent trace.
    pub fn fail(&self, msg: &str) -> ! {
        let mut s = String::new();
        for l in &self.trace {
            let _ = writeln!(s, "  {l}");
        }
        panic!("{msg}\nrecent trace (ms):\n{s}");
    }
}

fn brief_event(e: &Event) -> String {
    match e {
        Event::Transcript(t) => format!("transcript {:?}", t.text),
        other => format!("{other:?}"),
    }
}
