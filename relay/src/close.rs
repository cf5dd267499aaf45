//! Close codes: what the relay forwards, and what it sends of its own.
//!
//! Root cause 5 of the original failure (DESIGN.md) was a relay that tore
//! connections down without a close frame and threw the upstream's code
//! away. Here every end of a session is a close frame on both sides, with
//! the other side's code where it had one, and a code of the relay's own,
//! from this table, where the relay ends it:
//!
//! | code | reason | when |
//! |---|---|---|
//! | 1012 | `service restart` | SIGTERM drain; clients reconnect and replay |
//! | 1013 | `relay at capacity` | `--max-connections` reached |
//! | 1013 | `too many connections for this subject` | `--max-connections-per-subject` reached |
//! | 1013 | `session time limit` | `--max-session` elapsed |
//! | 1013 | `idle timeout` | no client frame for `--idle-timeout` |
//! | 1009 | `message too big` | a client message over `--max-message-bytes` |
//! | 1011 | `upstream unreachable` / `upstream handshake failed: S` / `... timed out` | opening the upstream failed |
//! | 1008 | `upstream handshake failed: 401` (or 403) | the upstream refused the operator's credential |
//! | 1011 | `upstream closed abnormally` | the upstream vanished without a close frame |

use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError, UrlError};
use tokio_tungstenite::tungstenite::Error as WsError;

/// Drain on SIGTERM.
pub const SERVICE_RESTART: (u16, &str) = (1012, "service restart");
/// The overall connection limit.
pub const AT_CAPACITY: (u16, &str) = (1013, "relay at capacity");
/// The per-subject connection limit.
pub const SUBJECT_AT_CAPACITY: (u16, &str) = (1013, "too many connections for this subject");
/// `--max-session`.
pub const SESSION_LIMIT: (u16, &str) = (1013, "session time limit");
/// `--idle-timeout`.
pub const IDLE: (u16, &str) = (1013, "idle timeout");
/// `--max-message-bytes`.
pub const TOO_BIG: (u16, &str) = (1009, "message too big");
/// What the upstream is told when the relay ends a session itself.
pub const GOING_AWAY: u16 = 1001;

/// Close codes an endpoint may send (RFC 6455 7.4): 1000-1003, 1007-1014,
/// 3000-4999.
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Maps a received close (or its absence) to one the relay may send on:
/// 1005 (no code) → 1000, 1006 (no close frame) → 1011 `SIDE closed
/// abnormally`, 1015 → 1011, other unsendable codes → 1011; reasons are
/// cut to 123 bytes on a character boundary.
pub fn map_close(code: Option<u16>, reason: &str, side: &str) -> (u16, String) {
    let reason = truncate_utf8(reason, 123).to_string();
    match code {
        None | Some(1005) => (1000, reason),
        Some(1006) => (1011, format!("{side} closed abnormally")),
        Some(1015) => (1011, format!("{side} TLS failure")),
        Some(c) if valid_close_code(c) => (c, reason),
        Some(_) => (1011, reason),
    }
}

/// Truncates to at most `max` bytes on a UTF-8 character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A description of a WebSocket error that is safe to log and to send as
/// a close reason: never the URL (its query may carry parameters the
/// operator considers private), never frame contents.
pub fn describe(e: &WsError) -> String {
    match e {
        WsError::Io(io) => format!("io: {}", io.kind()),
        WsError::Tls(_) => "tls error".into(),
        WsError::Url(UrlError::UnableToConnect(_)) => "connection failed".into(),
        WsError::Url(_) => "bad url".into(),
        WsError::Http(res) => format!("http {}", res.status().as_u16()),
        WsError::HttpFormat(_) => "bad http".into(),
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => "message too big".into(),
        WsError::Capacity(_) => "capacity".into(),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "reset without closing handshake".into()
        }
        WsError::Protocol(_) => "protocol error".into(),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".into(),
        _ => "error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_codes_are_mapped() {
        assert_eq!(map_close(None, "", "upstream"), (1000, String::new()));
        assert_eq!(
            map_close(Some(1006), "", "upstream"),
            (1011, "upstream closed abnormally".into())
        );
        assert_eq!(map_close(Some(1015), "x", "upstream").0, 1011);
        assert_eq!(map_close(Some(1004), "x", "client").0, 1011);
        assert_eq!(
            map_close(Some(4321), "custom", "upstream"),
            (4321, "custom".into())
        );
        assert_eq!(
            map_close(Some(4321), &"é".repeat(100), "upstream").1.len(),
            122
        );
    }

    #[test]
    fn the_relay_s_own_codes_are_sendable() {
        for (code, reason) in [
            SERVICE_RESTART,
            AT_CAPACITY,
            SUBJECT_AT_CAPACITY,
            SESSION_LIMIT,
            IDLE,
            TOO_BIG,
        ] {
            assert!(valid_close_code(code), "{code}");
            assert!(reason.len() <= 123);
        }
        assert!(valid_close_code(GOING_AWAY));
    }

    #[test]
    fn error_descriptions_never_carry_the_url() {
        let e = WsError::Url(UrlError::UnableToConnect(
            "wss://api.example.com/v1/listen?secret=1".into(),
        ));
        assert_eq!(describe(&e), "connection failed");
    }
}
