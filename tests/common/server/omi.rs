//! Omi's browser endpoint as the fake speaks it: the first message is
//! `auth`, answered with `auth_response` after `auth_delay` (a failure if
//! `reject_auth`); audio before a successful auth is a violation; the
//! server sends `ping` every 10 s; binary frames of ≤ 2 bytes are
//! keepalives; results are segment arrays timed in this socket's audio.

use resilient_transcriber::core::{Config, Instant, Provider, SocketId};

use super::results::Heard;
use super::{secs, Deliver, FakeServer, ProviderFake, ServerTimer};

/// See the module docs.
pub(super) struct Omi;

impl ProviderFake for Omi {
    fn config(&self) -> Config {
        let mut c = Config::new(Provider::Omi, "wss://api.omi.test/v4/web/listen");
        c.token = Some("omi-secret".into());
        c
    }

    fn on_accept(&self, server: &mut FakeServer, id: SocketId, open_at: Instant) {
        server.timer(open_at + secs(10), ServerTimer::Ping(id));
    }

    fn on_text(&self, server: &mut FakeServer, now: Instant, id: SocketId, text: &str) {
        if text.starts_with(r#"{"type":"auth""#) {
            let delay = server.auth_delay;
            let reply = if server.reject_auth {
                r#"{"type":"auth_response","success":false,"error":"invalid token"}"#
            } else {
                r#"{"type":"auth_response","success":true}"#
            };
            server.sockets.get_mut(&id).expect("exists").authed = !server.reject_auth;
            server.emit(now + delay, Deliver::Text(id, reply.into()));
        } else {
            server
                .violations
                .push(format!("omi: unexpected text {text}"));
        }
    }

    fn is_keepalive(&self, frame: &[u8]) -> bool {
        frame.len() <= 2
    }

    fn on_audio(
        &self,
        server: &mut FakeServer,
        now: Instant,
        id: SocketId,
        first: u64,
        n: u64,
        _bytes: &[u8],
    ) {
        if !server.sockets[&id].authed {
            server.violations.push("omi: audio before auth".into());
        }
        server.count_for_results(now, id, first, n, None);
    }

    fn result(&self, r: &Heard) -> String {
        let Heard {
            from,
            start,
            dur,
            words,
            ..
        } = r;
        format!(
            r#"[{{"id":"s{from}","text":"{words}","speaker":"SPEAKER_00","start":{start},"end":{}}}]"#,
            start + dur
        )
    }
}

/// The server's heartbeat: `ping` every 10 s while the socket is open.
pub(super) fn ping(server: &mut FakeServer, now: Instant, id: SocketId) {
    if server.sockets.get(&id).is_some_and(|s| !s.closed) {
        server.emit(now, Deliver::Text(id, "ping".into()));
        server.timer(now + secs(10), ServerTimer::Ping(id));
    }
}
