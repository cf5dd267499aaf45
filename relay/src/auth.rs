//! Client authentication: short-lived HS256 tokens signed by the app's own
//! backend with a secret it shares with the relay.
//!
//! A browser cannot set headers on a WebSocket handshake, so the client
//! library sends its token as the subprotocol pair `token, T` (or
//! `bearer, T`); Omi-style clients put it in a `token` query parameter;
//! server-side clients may use `Authorization: Bearer T`. [`Presented`]
//! finds it wherever it is and gives back the request without it, so it
//! never reaches the upstream, where the operator's credential is sent
//! instead.
//!
//! A token must be signed with HS256 (no other algorithm is accepted, so
//! `alg: none` and algorithm confusion are impossible), carry `sub`, `aud`
//! and `exp`, have the configured audience (and issuer, if one is set),
//! not be expired and not be before its `nbf`, each within the leeway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::signature::{self, Signer, Verifier as SigVerifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Subjects longer than this are refused (they key the per-subject limit).
pub const MAX_SUBJECT_BYTES: usize = 256;

/// The claims the relay reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token is for: limits count per subject, logs name it.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Not before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// Why a client was refused. Only counted and logged by kind: the client
/// always gets the same bare 401, which tells an attacker nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No token anywhere in the request.
    Missing,
    /// Not a JWT, too long, or a claim of the wrong shape.
    Malformed,
    /// Signed with another key or another algorithm.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    /// `aud` is not ours.
    WrongAudience,
    /// `iss` is not the configured one.
    WrongIssuer,
    /// A required claim (`sub`, `aud`, `exp`) is absent or `sub` is empty.
    MissingClaim,
}

impl AuthError {
    /// The `reason` label of `relay_auth_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::MissingClaim => "missing_claim",
        }
    }
}

/// Checks client tokens against the configured secrets.
pub struct TokenVerifier {
    keys: Vec<DecodingKey>,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for `config` (already validated: secrets long enough).
    pub fn new(config: &JwtConfig) -> Result<TokenVerifier, String> {
        install_provider();
        let keys = config
            .secrets
            .iter()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("token secret rejected: {e}"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[config.audience.as_str()]);
        let mut required = vec!["exp", "sub", "aud"];
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss.as_str()]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(TokenVerifier { keys, validation })
    }

    /// The token's claims if it is valid now. Tries the current secret,
    /// then the previous one (rotation).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        for key in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => {
                    let c = data.claims;
                    if c.sub.trim().is_empty() {
                        return Err(AuthError::MissingClaim);
                    }
                    if c.sub.len() > MAX_SUBJECT_BYTES {
                        return Err(AuthError::Malformed);
                    }
                    return Ok(c);
                }
                // Maybe the previous key signed it.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm
                    ) => {}
                // Claims are checked only after the signature, so the
                // signature was good and another key will not do better.
                Err(e) => {
                    return Err(match e.kind() {
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                        ErrorKind::InvalidAudience => AuthError::WrongAudience,
                        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                        ErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim,
                        _ => AuthError::Malformed,
                    })
                }
            }
        }
        Err(AuthError::BadSignature)
    }
}

/// Signs a token for `sub` and `aud` valid from now for `ttl` (what the
/// app's backend does; `resilient-relay mint` and the tests use it).
pub fn mint(
    secret: &[u8],
    sub: &str,
    aud: &str,
    iss: Option<&str>,
    ttl: Duration,
) -> Result<String, String> {
    let now = unix_now();
    mint_claims(
        secret,
        &Claims {
            sub: sub.to_string(),
            aud: aud.to_string(),
            exp: now + ttl.as_secs().max(1),
            nbf: Some(now),
            iat: Some(now),
            iss: iss.map(str::to_string),
        },
    )
}

/// Signs arbitrary claims (tests mint expired and future tokens with it).
pub fn mint_claims(secret: &[u8], claims: &Claims) -> Result<String, String> {
    install_provider();
    let key = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).map_err(|e| e.to_string())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where the client put its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Subprotocols `token, T`: the 101 selects `token`.
    TokenProtocol,
    /// Subprotocols `bearer, T`: the 101 selects `bearer`.
    BearerProtocol,
    /// `Authorization: Bearer T`.
    Header,
    /// `?token=T`.
    Query,
}

/// The client's handshake with its credential taken out.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The token and where it was, if the client sent one.
    pub token: Option<(String, Carrier)>,
    /// The subprotocol to select in the 101 (browsers fail a handshake
    /// that offered subprotocols and got none back).
    pub selected_protocol: Option<String>,
    /// The offered subprotocols without the credential pair.
    pub other_protocols: Vec<String>,
    /// The query without `token` parameters (`None` if nothing is left).
    pub query: Option<String>,
}

impl Presented {
    /// Splits the credential out of the offered subprotocols, the query
    /// and the `Authorization` header. The subprotocol pair wins over the
    /// header, which wins over the query; every `token` query parameter is
    /// removed either way.
    pub fn from_request(
        protocols: &[String],
        query: Option<&str>,
        authorization: Option<&str>,
    ) -> Presented {
        let mut p = Presented::default();
        let mut rest = Vec::with_capacity(protocols.len());
        let mut i = 0;
        while i < protocols.len() {
            let name = protocols[i].as_str();
            let carrier = if name.eq_ignore_ascii_case("token") {
                Some(Carrier::TokenProtocol)
            } else if name.eq_ignore_ascii_case("bearer") {
                Some(Carrier::BearerProtocol)
            } else {
                None
            };
            match (carrier, protocols.get(i + 1)) {
                (Some(c), Some(value)) if p.token.is_none() => {
                    p.token = Some((value.clone(), c));
                    p.selected_protocol = Some(name.to_string());
                    i += 2;
                }
                _ => {
                    rest.push(protocols[i].clone());
                    i += 1;
                }
            }
        }
        if p.token.is_none() {
            if let Some(t) = authorization
                .map(str::trim)
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim().to_string())
            {
                p.token = Some((t, Carrier::Header));
            }
        }
        if let Some(q) = query {
            let mut kept = Vec::new();
            for part in q.split('&').filter(|s| !s.is_empty()) {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                let key: String = form_urlencoded::parse(format!("{k}=").as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                if key == "token" {
                    if p.token.is_none() {
                        let value = form_urlencoded::parse(format!("x={v}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default();
                        p.token = Some((value, Carrier::Query));
                    }
                } else {
                    kept.push(part);
                }
            }
            if !kept.is_empty() {
                p.query = Some(kept.join("&"));
            }
        }
        if p.selected_protocol.is_none() {
            p.selected_protocol = rest.first().cloned();
        }
        p.other_protocols = rest;
        p
    }
}

// --- a ring-backed, HS256-only crypto provider for jsonwebtoken ------------
//
// jsonwebtoken 10+ asks for a crypto backend. Its two built-in ones bring
// either aws-lc (a C build with cmake) or RSA, P-256, P-384 and Ed25519
// implementations the relay would never accept. ring is already in the
// build for rustls, and HS256 is the only algorithm a client token may use.

struct Hs256Signer(hmac::Key);

impl Signer<Vec<u8>> for Hs256Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.0, msg).as_ref().to_vec())
    }
}

impl JwtSigner for Hs256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

struct Hs256Verifier(hmac::Key);

impl SigVerifier<Vec<u8>> for Hs256Verifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        // Constant-time comparison.
        hmac::verify(&self.0, msg, sig).map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Hs256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    if *alg != Algorithm::HS256 || key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(Hs256Signer(hmac::Key::new(
        hmac::HMAC_SHA256,
        key.as_bytes(),
    ))))
}

fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    if *alg != Algorithm::HS256 || key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(Hs256Verifier(hmac::Key::new(
        hmac::HMAC_SHA256,
        key.try_get_as_bytes()?,
    ))))
}

static HS256_RING: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils::new_unimplemented(),
};

fn install_provider() {
    // Err means one is installed already: ours, since nothing else in the
    // process installs one.
    let _ = HS256_RING.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(&JwtConfig {
            secrets: vec![Secret::new(SECRET)],
            audience: "relay".into(),
            issuer: None,
            leeway: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn claims(exp_in: i64, nbf_in: Option<i64>) -> Claims {
        let now = unix_now() as i64;
        Claims {
            sub: "user-1".into(),
            aud: "relay".into(),
            exp: (now + exp_in) as u64,
            nbf: nbf_in.map(|n| (now + n) as u64),
            iat: Some(now as u64),
            iss: None,
        }
    }

    #[test]
    fn a_fresh_token_passes_and_names_its_subject() {
        let t = mint(
            SECRET.as_bytes(),
            "user-1",
            "relay",
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(verifier().verify(&t).unwrap().sub, "user-1");
    }

    #[test]
    fn expired_future_foreign_and_misaddressed_tokens_fail_with_their_reason() {
        let v = verifier();
        let sign = |c: &Claims| mint_claims(SECRET.as_bytes(), c).unwrap();
        assert_eq!(
            v.verify(&sign(&claims(-60, None))).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            v.verify(&sign(&claims(600, Some(120)))).unwrap_err(),
            AuthError::NotYetValid
        );
        let mut c = claims(60, None);
        c.aud = "someone-else".into();
        assert_eq!(v.verify(&sign(&c)).unwrap_err(), AuthError::WrongAudience);
        let other = mint_claims(b"another-secret-another-secret-xx", &claims(60, None)).unwrap();
        assert_eq!(v.verify(&other).unwrap_err(), AuthError::BadSignature);
        assert_eq!(v.verify("not.a.jwt").unwrap_err(), AuthError::Malformed);
        assert_eq!(
            v.verify(&"a".repeat(5000)).unwrap_err(),
            AuthError::Malformed
        );
        let mut c = claims(60, None);
        c.sub = " ".into();
        assert_eq!(v.verify(&sign(&c)).unwrap_err(), AuthError::MissingClaim);
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let b64 = base64_url;
        let v = verifier();
        let body = serde_json::to_string(&claims(60, None)).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
        ] {
            let t = format!("{}.{}.", b64(header), b64(&body));
            assert!(v.verify(&t).is_err(), "{header} accepted");
        }
    }

    fn base64_url(s: &str) -> String {
        // Tiny unpadded base64url, enough to forge test headers.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, &x| (n << 8) | u32::from(x)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn the_previous_secret_still_verifies_during_rotation() {
        let v = TokenVerifier::new(&JwtConfig {
            secrets: vec![Secret::new("n".repeat(32)), Secret::new(SECRET)],
            audience: "relay".into(),
            issuer: None,
            leeway: Duration::ZERO,
        })
        .unwrap();
        let old = mint(
            SECRET.as_bytes(),
            "u",
            "relay",
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(v.verify(&old).unwrap().sub, "u");
    }

    #[test]
    fn the_credential_is_found_and_taken_out_wherever_it_is() {
        let pr = |p: &[&str], q: Option<&str>, a: Option<&str>| {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            Presented::from_request(&p, q, a)
        };
        let p = pr(&["token", "JWT"], Some("model=nova&token=Q"), None);
        assert_eq!(p.token, Some(("JWT".into(), Carrier::TokenProtocol)));
        assert_eq!(p.selected_protocol.as_deref(), Some("token"));
        assert!(p.other_protocols.is_empty());
        assert_eq!(p.query.as_deref(), Some("model=nova"));

        let p = pr(&["bearer", "JWT", "v1"], None, None);
        assert_eq!(p.token, Some(("JWT".into(), Carrier::BearerProtocol)));
        assert_eq!(p.selected_protocol.as_deref(), Some("bearer"));
        assert_eq!(p.other_protocols, vec!["v1".to_string()]);

        let p = pr(&[], Some("token=a%2Eb&x=1&token=again"), None);
        assert_eq!(p.token, Some(("a.b".into(), Carrier::Query)));
        assert_eq!(p.query.as_deref(), Some("x=1"));
        assert_eq!(p.selected_protocol, None);

        let p = pr(&[], Some("token=only"), Some("Bearer H"));
        assert_eq!(p.token, Some(("H".into(), Carrier::Header)));
        assert_eq!(p.query, None);

        let p = pr(&["v1"], None, Some("Token notbearer"));
        assert_eq!(p.token, None);
        assert_eq!(p.selected_protocol.as_deref(), Some("v1"));
    }
}
