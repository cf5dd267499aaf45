//! What the server's frames mean: transcripts (on the stream's timeline,
//! shown once), confirmations that release audio from the resend window,
//! the handshake, the end of the stream, and what is only a message.

use super::timeline::Admit;
use super::Session;
use crate::core::event::{ErrorCode, Event};
use crate::core::io::SocketId;
use crate::core::protocol::Parsed;
use crate::core::text::int;
use crate::core::time::Instant;

impl Session {
    pub(super) fn handle_text(&mut self, now: Instant, id: SocketId, text: &str) {
        if !self.on_frame(now, id) {
            return;
        }
        let mut parsed = std::mem::take(&mut self.scratch);
        self.wire.parse(text, &mut parsed);
        let mut message_sent = false;
        for p in parsed.drain(..) {
            self.apply(now, id, p, text, &mut message_sent);
        }
        self.scratch = parsed;
    }

    pub(super) fn handle_binary(&mut self, now: Instant, id: SocketId, data: &[u8]) {
        if !self.on_frame(now, id) {
            return;
        }
        let p = Parsed::Malformed(
            [
                "unexpected binary frame of ",
                &int(data.len() as u64),
                " bytes",
            ]
            .concat(),
        );
        let mut message_sent = true; // no text to put in a message event
        self.apply(now, id, p, "", &mut message_sent);
    }

    /// A transcript or result: the server hears the audio (a heartbeat
    /// alone does not say so).
    fn heard(&mut self) {
        if let Some((_, live)) = self.link.ready_mut() {
            live.watchdog.on_heard();
        }
    }

    /// Bookkeeping common to every frame; false for stale sockets.
    fn on_frame(&mut self, now: Instant, id: SocketId) -> bool {
        if self.current(id).is_none() {
            return false;
        }
        if let Some((_, live)) = self.link.ready_mut() {
            live.watchdog.on_rx(now);
        }
        self.counters.messages_received += 1;
        self.prove_alive(id, None, None);
        true
    }

    fn apply(
        &mut self,
        now: Instant,
        id: SocketId,
        p: Parsed,
        text: &str,
        message_sent: &mut bool,
    ) {
        let mut message = |s: &mut Session| {
            if !*message_sent {
                *message_sent = true;
                s.emit(Event::Message(text.to_string()));
            }
        };
        match p {
            Parsed::Transcript(mut t) => {
                self.counters.transcripts += 1;
                self.heard();
                let bytes_per_sec = self.cfg.bytes_per_ms() * 1000.0;
                let heard = (t.end * bytes_per_sec).max(0.0) as u64;
                if self.wire.socket_clock() {
                    // Any result, interim too, covering audio sent after a
                    // doubt began proves the server reads this socket.
                    self.prove_alive(id, Some(heard), None);
                    // The provider's clock restarted at zero with this
                    // socket: put the times back on the stream's timeline.
                    if let Some(conn) = self.current(id) {
                        conn.to_stream_time(&mut t, bytes_per_sec);
                    }
                } else {
                    self.prove_alive(id, None, Some(heard));
                }
                let (admit, trimmed) = self.finals.admit(t);
                match admit {
                    Admit::Emit(t) => {
                        self.counters.duplicate_finals_suppressed += u64::from(trimmed);
                        if t.is_final {
                            self.note_final(&t);
                        }
                        self.emit(Event::Transcript(t));
                    }
                    Admit::Suppress(was_final) => {
                        self.counters.duplicate_finals_suppressed += u64::from(was_final);
                    }
                }
            }
            Parsed::Ready => self.handshake_done(now),
            Parsed::AuthRejected(why) => {
                message(self);
                self.close_socket(id, 1000, "authentication rejected");
                self.fail(
                    ErrorCode::AuthFailed,
                    ["the server rejected the credentials: ", &why].concat(),
                    None,
                );
            }
            Parsed::Resumed(offset) => {
                // The server's high-water mark: informational. It is no
                // promise that the server stored those bytes durably
                // (docs/protocol.md), so it confirms nothing; only `ack` does.
                self.counters.server_offset = Some(offset);
            }
            Parsed::Processed { channel, secs } => {
                self.heard();
                // The provider's final results count this socket's audio
                // from zero, per channel; audio is confirmed once every
                // channel's finals reached it.
                let channels = usize::from(self.cfg.channels.max(1));
                let frames = self
                    .current(id)
                    .and_then(|conn| conn.processed(channel, secs, channels));
                if let Some(secs) = frames {
                    let frames = (secs * f64::from(self.cfg.sample_rate)).round().max(0.0) as u64;
                    self.queue.ack_wire(frames * 2 * channels as u64);
                }
            }
            Parsed::Flushed => self.server_flushed(id),
            Parsed::Ack(offset) => {
                self.prove_alive(id, None, Some(offset));
                self.queue.ack(offset);
            }
            Parsed::Heartbeat => {}
            Parsed::Finished => {
                if self.closing.is_some() {
                    self.queue.ack_all();
                    self.close_socket(id, 1000, "finished");
                    self.finish(Some(1000), "finished".into());
                }
            }
            Parsed::Message => message(self),
            Parsed::ServerError(m) => {
                message(self);
                self.emit_error(
                    ErrorCode::ServerError,
                    ["server error: ", &m].concat(),
                    false,
                );
            }
            Parsed::Malformed(m) => {
                message(self);
                self.emit_error(
                    ErrorCode::MalformedMessage,
                    ["could not understand a server message: ", &m].concat(),
                    false,
                );
            }
        }
    }
}
