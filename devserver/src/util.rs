//! Small helpers shared by the endpoints: clocks, token rules, query parsing,
//! locks. A leaf: it imports nothing from the crate.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// Wall-clock time in Unix milliseconds (recordings are compared with
/// browser-side `Date.now()` values, so this is deliberately not monotonic).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as ISO 8601 UTC (`2024-08-29T22:37:55.202Z`), the
/// form Deepgram uses in `Metadata.created`. Civil-from-days after Howard
/// Hinnant's algorithm, so no date crate is needed for one field.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms % 1000
    )
}

/// A short, non-reversible fingerprint of a token, so recordings can tell
/// tokens apart without ever storing one.
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(format!("devserver-token:{token}").as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The shared token rule of every endpoint: a token starting with `bad` is
/// always rejected (so tests can provoke auth failures without configuring
/// anything); with `--token X` only `X` passes; otherwise anything, including
/// no token at all, passes.
pub fn token_ok(required: Option<&str>, given: Option<&str>) -> bool {
    if given.is_some_and(|t| t.starts_with("bad")) {
        return false;
    }
    match required {
        None => true,
        Some(x) => given == Some(x),
    }
}

/// Offered WebSocket subprotocols, in order.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The token carried as subprotocols `token, T` (the only way a browser can
/// send a credential on a WebSocket handshake).
pub fn subprotocol_token(protocols: &[String]) -> Option<String> {
    let i = protocols.iter().position(|p| p == "token")?;
    protocols.get(i + 1).cloned()
}

/// A credential offered as a pair of subprotocols: `token, K` (Deepgram's
/// API-key form) or `bearer, T` (short-lived access tokens: the Deepgram
/// SDK's browser path). Returns the scheme, which the server must select in
/// its 101 (browsers fail the handshake otherwise), and the credential
/// after it, if any. The first scheme offered wins.
pub fn subprotocol_credential(protocols: &[String]) -> Option<(&'static str, Option<String>)> {
    let (i, scheme) = protocols
        .iter()
        .enumerate()
        .find_map(|(i, p)| match p.as_str() {
            "token" => Some((i, "token")),
            "bearer" => Some((i, "bearer")),
            _ => None,
        })?;
    Some((scheme, protocols.get(i + 1).cloned()))
}

/// `Authorization: Token K` (Deepgram) or `Bearer K`.
pub fn header_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.trim().to_string())
    } else {
        None
    }
}

/// The query without credentials, for recordings.
pub fn redacted_query(query: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "token" | "key" | "api_key" | "access_token"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Locks a mutex, recovering from poisoning: a panicking session must not
/// take the whole control API down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Truncates to at most `max` bytes on a UTF-8 character boundary (close
/// reasons are limited to 123 bytes by RFC 6455).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_instant() {
        assert_eq!(iso8601(1_724_971_075_202), "2024-08-29T22:37:55.202Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn bad_tokens_are_rejected_even_without_a_configured_token() {
        assert!(token_ok(None, None));
        assert!(token_ok(None, Some("anything")));
        assert!(!token_ok(None, Some("bad-key")));
        assert!(!token_ok(Some("k"), None));
        assert!(!token_ok(Some("k"), Some("j")));
        assert!(token_ok(Some("k"), Some("k")));
    }

    #[test]
    fn token_and_bearer_subprotocols_carry_credentials() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            subprotocol_credential(&v(&["token", "k1"])),
            Some(("token", Some("k1".into())))
        );
        assert_eq!(
            subprotocol_credential(&v(&["bearer", "eyJ.x.y"])),
            Some(("bearer", Some("eyJ.x.y".into())))
        );
        assert_eq!(
            subprotocol_credential(&v(&["bearer"])),
            Some(("bearer", None))
        );
        assert_eq!(subprotocol_credential(&v(&["chat", "v2"])), None);
        assert_eq!(subprotocol_token(&v(&["bearer", "t"])), None);
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let s = "é".repeat(100);
        let t = truncate_utf8(&s, 123);
        assert_eq!(t.len(), 122);
        assert!(t.chars().all(|c| c == 'é'));
    }
}
