//! The HTTP side: accept loop, routing, static files and CORS.
//!
//! The accept loop is our own (not `axum::serve`) for one reason: the
//! `reset` fault must abort a connection with a TCP RST, which needs the
//! socket's file descriptor after hyper has taken the stream. Each request
//! therefore carries a [`ConnInfo`] with the raw fd.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::app::{App, AppState};
use crate::config::ServerConfig;
use crate::conn::ConnInfo;
use crate::{control, deepgram, generic, omi};

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Binds the listener. Fails with a readable error when the port is taken.
    pub async fn bind(cfg: ServerConfig) -> std::io::Result<Server> {
        let addr = if cfg.host.contains(':') && !cfg.host.starts_with('[') {
            format!("[{}]:{}", cfg.host, cfg.port) // a bare IPv6 address
        } else {
            format!("{}:{}", cfg.host, cfg.port)
        };
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let state = Arc::new(App::new(cfg));
        Ok(Server { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until the task is dropped.
    pub async fn run(self) {
        let router = router(self.state.clone());
        loop {
            let (stream, _peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("devserver: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let info = ConnInfo {
                fd: stream.as_raw_fd(),
            };
            let router = router.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(info);
                        router.clone().oneshot(req.map(Body::new))
                    });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades();
                let _ = conn.await;
            });
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/listen", get(deepgram::handler))
        .route("/v4/web/listen", get(omi::handler))
        .route("/v1/stream", get(generic::handler))
        .merge(control::routes())
        .route("/pkg/{*path}", get(pkg_file))
        .fallback(www_file)
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

/// CORS on everything: browser tests run on wasm-bindgen-test's own origin
/// and drive `/control` with fetch + JSON.
async fn cors(req: Request, next: Next) -> Response {
    let mut res = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    res
}

async fn pkg_file(State(app): State<AppState>, req: Request) -> Response {
    let rel = req.uri().path().trim_start_matches("/pkg/").to_string();
    serve_file(&app.cfg.pkg, &rel).await
}

async fn www_file(State(app): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let path = req.uri().path().trim_start_matches('/');
    let rel = if path.is_empty() { "index.html" } else { path };
    serve_file(&app.cfg.www, rel).await
}

/// Serves `root/rel`, refusing anything that would leave `root`.
async fn serve_file(root: &Path, rel: &str) -> Response {
    let decoded = percent_decode(rel);
    let rel_path = PathBuf::from(&decoded);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let mut full = root.join(&rel_path);
    if tokio::fs::metadata(&full).await.is_ok_and(|m| m.is_dir()) {
        full = full.join("index.html");
    }
    match tokio::fs::read(&full).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(mime(&full))),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            "not found\n",
        )
            .into_response(),
    }
}

/// The MIME type by extension; `application/wasm` matters most, since
/// `WebAssembly.instantiateStreaming` refuses anything else.
pub fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "wasm" => "application/wasm",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "wav" => "audio/wav",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
