//! The listener: one HTTP/1.1 server (hyper) that upgrades WebSocket
//! handshakes after checking origin, token and limits, and answers
//! `/healthz`, `/readyz` and `/metrics`; the drain on SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use crate::auth::{AuthError, Presented, TokenVerifier};
use crate::config::{redact_url, ClientAuth, Config, ConfigError};
use crate::limits::{Limiter, Refusal, Tracker};
use crate::metrics::Metrics;
use crate::session::{self, Session};
use crate::shared::Shared;

/// Why [`Relay::bind`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BindError {
    /// A setting is invalid (the message names it).
    Config(ConfigError),
    /// The address could not be bound.
    Listen(String),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Config(e) => e.fmt(f),
            BindError::Listen(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for BindError {}

/// Starts a drain: stop accepting, close every session with 1012, wait
/// (bounded) for the closing handshakes. Idempotent.
#[derive(Clone)]
pub struct DrainHandle(Arc<watch::Sender<bool>>);

impl DrainHandle {
    /// Begins the drain; [`Relay::run`] returns when it is done.
    pub fn drain(&self) {
        self.0.send_replace(true);
    }
}

/// What a finished [`Relay::run`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RunSummary {
    /// Sessions open when the drain began.
    pub drained: usize,
    /// Sessions still open when `--drain-timeout` ran out.
    pub abandoned: usize,
}

/// A bound relay. [`Relay::run`] serves until drained.
pub struct Relay {
    shared: Arc<Shared>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    drain_tx: Arc<watch::Sender<bool>>,
}

impl Relay {
    /// Validates `config` and binds its addresses. Nothing is served until
    /// [`Relay::run`].
    pub async fn bind(config: Config) -> Result<Relay, BindError> {
        config.validate().map_err(BindError::Config)?;
        // tokio-tungstenite's rustls (wss:// upstreams) uses the process
        // default provider; ring, as everywhere in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = match &config.tls {
            Some(files) => Some(TlsAcceptor::from(
                crate::tls::load(files).map_err(|e| BindError::Config(ConfigError::new(e)))?,
            )),
            None => None,
        };
        let verifier = match &config.auth {
            ClientAuth::Jwt(j) => {
                Some(TokenVerifier::new(j).map_err(|e| BindError::Config(ConfigError::new(e)))?)
            }
            ClientAuth::InsecureNoAuth => None,
        };
        let uri: http::Uri = config
            .upstream
            .parse()
            .map_err(|_| BindError::Config(ConfigError::new("--upstream: not a valid URL")))?;
        let default_port = if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        };
        let upstream_host = (
            uri.host().unwrap_or_default().to_string(),
            uri.port_u16().unwrap_or(default_port),
        );
        let bind = |addr: &str| {
            let addr = addr.to_string();
            async move {
                TcpListener::bind(&addr)
                    .await
                    .map_err(|e| BindError::Listen(format!("cannot listen on {addr}: {e}")))
            }
        };
        let listener = bind(&config.listen).await?;
        let metrics_listener = match &config.metrics_listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let (drain_tx, drain_rx) = watch::channel(false);
        let limits = &config.limits;
        // 16 KiB read buffers instead of tungstenite's 128 KiB: audio
        // frames are a few KiB, and two buffers per session at 128 KiB made
        // a 500-session relay weigh ~140 MiB.
        let client_ws = WebSocketConfig::default()
            .read_buffer_size(16 << 10)
            .max_message_size(Some(limits.max_message_bytes))
            .max_frame_size(Some(limits.max_message_bytes));
        let upstream_ws = WebSocketConfig::default()
            .read_buffer_size(16 << 10)
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let shared = Arc::new(Shared {
            verifier,
            metrics: Metrics::new(),
            limiter: Limiter::new(limits.max_connections, limits.max_connections_per_subject),
            tracker: Arc::new(Tracker::default()),
            drain: drain_rx,
            metrics_on_main: metrics_listener.is_none(),
            upstream_host,
            ready_cache: Mutex::new(None),
            next_session: AtomicU64::new(1),
            client_ws,
            upstream_ws,
            config,
        });
        Ok(Relay {
            shared,
            listener,
            metrics_listener,
            tls,
            drain_tx: Arc::new(drain_tx),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The separate `/metrics` address, if `--metrics-listen` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// A handle that starts the drain (what SIGTERM does).
    pub fn drain_handle(&self) -> DrainHandle {
        DrainHandle(self.drain_tx.clone())
    }

    /// Serves until drained: then stops accepting, lets every session
    /// close with 1012 and waits for them, at most `--drain-timeout`.
    pub async fn run(self) -> RunSummary {
        let Relay {
            shared,
            listener,
            metrics_listener,
            tls,
            drain_tx,
        } = self;
        let c = &shared.config;
        info!(
            listen = %listener.local_addr().map_or_else(|_| c.listen.clone(), |a| a.to_string()),
            upstream = %redact_url(&c.upstream),
            tls = tls.is_some(),
            max_connections = c.limits.max_connections,
            max_connections_per_subject = c.limits.max_connections_per_subject,
            "relay started"
        );
        match &c.auth {
            ClientAuth::InsecureNoAuth => warn!(
                "client authentication is OFF (--insecure-no-auth): anyone who reaches this relay \
                 spends the upstream credential; use it for local development only"
            ),
            ClientAuth::Jwt(j) => info!(
                audience = %j.audience,
                secrets = j.secrets.len(),
                "client tokens required (HS256)"
            ),
        }
        if c.upstream_auth.is_none() {
            warn!("no upstream credential (RELAY_AUTH_HEADER or DEEPGRAM_API_KEY) is set");
        }
        if c.allow_origins.is_empty() {
            info!("no --allow-origin: browser clients from any origin are accepted");
        }
        let mut drain = shared.drain.clone();
        loop {
            tokio::select! {
                biased;
                _ = session::wait_drain(&mut drain) => break,
                r = listener.accept() => match r {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        let shared = shared.clone();
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            match tls {
                                None => serve_conn(tcp, peer, shared, true).await,
                                Some(acceptor) => {
                                    let t = shared.config.timeouts.handshake;
                                    match tokio::time::timeout(t, acceptor.accept(tcp)).await {
                                        Ok(Ok(s)) => serve_conn(s, peer, shared, true).await,
                                        Ok(Err(e)) => debug!(%peer, error = %e.kind(), "TLS handshake failed"),
                                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                                    }
                                }
                            }
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                r = accept_opt(metrics_listener.as_ref()) => {
                    if let Ok((tcp, peer)) = r {
                        let shared = shared.clone();
                        tokio::spawn(serve_conn(tcp, peer, shared, false));
                    }
                }
            }
        }
        // Stop accepting first: a load balancer sees refused connections
        // (and /readyz gone) and sends new clients to the other relays.
        drop(listener);
        drop(metrics_listener);
        shared.metrics.draining.set(1);
        let drained = shared.tracker.live();
        info!(
            sessions = drained,
            "draining: every session closes with 1012 (service restart)"
        );
        let wait = shared.config.timeouts.drain;
        let _ = tokio::time::timeout(wait, shared.tracker.wait_idle()).await;
        let abandoned = shared.tracker.live();
        drop(drain_tx);
        RunSummary { drained, abandoned }
    }
}

async fn accept_opt(
    l: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve_conn<IO>(io: IO, peer: SocketAddr, shared: Arc<Shared>, main: bool)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = shared.config.timeouts.handshake;
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(req, shared, peer, main).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}

type Res = Response<Full<Bytes>>;

fn plain(status: StatusCode, body: &'static str) -> Res {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // One request per connection, so nothing lingers to be drained. (Not
    // `keep_alive(false)` on the builder: hyper would then turn the 101's
    // `Connection: upgrade` into `close`.)
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>, peer: SocketAddr, main: bool) -> Res {
    let path = req.uri().path();
    if main && is_upgrade(&req) {
        return upgrade(req, shared, peer).await;
    }
    match (req.method(), path) {
        (&Method::GET, "/healthz") => plain(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => match readiness(&shared).await {
            Ok(()) => plain(StatusCode::OK, "ready\n"),
            Err(why) => plain(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        (&Method::GET, "/metrics") if shared.metrics_on_main || !main => {
            let mut r = plain(StatusCode::OK, "");
            *r.body_mut() = Full::new(Bytes::from(shared.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Ready: not draining, not at capacity, and the upstream's host resolves
/// (checked at most every 5 s).
async fn readiness(shared: &Shared) -> Result<(), &'static str> {
    if *shared.drain.borrow() {
        return Err("draining\n");
    }
    if shared.limiter.at_capacity() {
        return Err("at capacity\n");
    }
    let cached = *shared.ready_cache.lock().unwrap_or_else(|e| e.into_inner());
    let ok = match cached {
        Some((at, ok)) if at.elapsed() < Duration::from_secs(5) => ok,
        _ => {
            let (host, port) = &shared.upstream_host;
            let lookup = tokio::net::lookup_host((host.as_str(), *port));
            let ok = match tokio::time::timeout(Duration::from_secs(2), lookup).await {
                Ok(Ok(mut addrs)) => addrs.next().is_some(),
                _ => false,
            };
            *shared.ready_cache.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), ok));
            ok
        }
    };
    if ok {
        Ok(())
    } else {
        Err("upstream does not resolve\n")
    }
}

fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
    })
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    header_has_token(req, header::UPGRADE, "websocket")
}

/// Offered WebSocket subprotocols, in order.
fn offered_protocols(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

async fn upgrade(mut req: Request<Incoming>, shared: Arc<Shared>, peer: SocketAddr) -> Res {
    let m = &shared.metrics;
    let path = crate::close::truncate_utf8(req.uri().path(), 200).to_string();
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec());
    let valid = req.method() == Method::GET
        && header_has_token(&req, header::CONNECTION, "upgrade")
        && req
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| valid) else {
        m.rejected.with_label_values(&["bad_request"]).inc();
        return plain(StatusCode::BAD_REQUEST, "bad websocket handshake\n");
    };
    if *shared.drain.borrow() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }

    let allow = &shared.config.allow_origins;
    if !allow.is_empty() {
        // Browsers always send Origin; other clients may not, and could
        // forge it anyway, so its absence is not a refusal (the token is).
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let ok = origin
                .to_str()
                .is_ok_and(|o| allow.iter().any(|a| a.eq_ignore_ascii_case(o)));
            if !ok {
                m.rejected.with_label_values(&["origin"]).inc();
                let shown = origin
                    .to_str()
                    .map_or("<not text>", |o| crate::close::truncate_utf8(o, 100));
                info!(%peer, %path, origin = shown, "refused: origin not allowed");
                return plain(StatusCode::FORBIDDEN, "forbidden\n");
            }
        }
    }

    let protocols = offered_protocols(req.headers());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented = Presented::from_request(&protocols, req.uri().query(), authorization);
    let subject = match &shared.verifier {
        None => None,
        Some(v) => {
            let verdict = match &presented.token {
                None => Err(AuthError::Missing),
                Some((t, _)) => v.verify(t),
            };
            match verdict {
                Ok(claims) => Some(claims.sub),
                Err(e) => {
                    m.auth_failures.with_label_values(&[e.label()]).inc();
                    info!(%peer, %path, reason = e.label(), "refused: not authenticated");
                    let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return r;
                }
            }
        }
    };

    let admission = shared.limiter.admit(subject.as_deref());
    if let Err(r) = &admission {
        let label = match r {
            Refusal::AtCapacity => "capacity",
            Refusal::SubjectAtCapacity => "subject_capacity",
        };
        m.rejected.with_label_values(&[label]).inc();
    }

    // What goes upstream. The client's credential is forwarded only by a
    // relay that neither checks clients nor has a credential of its own
    // (a plain close-code-preserving proxy for development).
    let c = &shared.config;
    let pass_through = matches!(c.auth, ClientAuth::InsecureNoAuth) && c.upstream_auth.is_none();
    let (query, upstream_protocols, client_authorization) = if pass_through {
        (
            req.uri().query().map(str::to_string),
            protocols.clone(),
            req.headers().get(header::AUTHORIZATION).cloned(),
        )
    } else {
        (
            presented.query.clone(),
            presented.other_protocols.clone(),
            None,
        )
    };
    let mut upstream_url = format!("{}{}", c.upstream.trim_end_matches('/'), req.uri().path());
    if let Some(q) = &query {
        upstream_url.push('?');
        upstream_url.push_str(q);
    }
    let upstream_authorization = match &c.upstream_auth {
        Some(a) => HeaderValue::from_str(a.expose()).ok(),
        None => client_authorization,
    };
    let session = Session {
        id: shared.next_session.fetch_add(1, Ordering::Relaxed),
        peer,
        path,
        subject,
        upstream_url,
        upstream_protocols,
        upstream_authorization,
    };

    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = presented
        .selected_protocol
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }

    let on_upgrade = hyper::upgrade::on(&mut req);
    let tracked = shared.tracker.track();
    tokio::spawn(async move {
        let _tracked = tracked;
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(shared.client_ws),
                )
                .await;
                session::run(ws, session, admission, &shared).await;
            }
            Err(e) => debug!(%peer, error = %e, "upgrade did not complete"),
        }
    });
    res
}
