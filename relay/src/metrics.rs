//! Prometheus metrics, one registry per relay (so relays in one test
//! process do not share counters), served as text at `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `relay_connections_open` | gauge | |
//! | `relay_connections_total` | counter | |
//! | `relay_closes_total` | counter | `side` (who ended it: client, upstream, relay), `code` |
//! | `relay_auth_failures_total` | counter | `reason` (missing, malformed, bad_signature, expired, not_yet_valid, wrong_audience, wrong_issuer, missing_claim) |
//! | `relay_rejected_total` | counter | `reason` (origin, capacity, subject_capacity, bad_request) |
//! | `relay_bytes_total` | counter | `direction` (up: client→upstream, down) |
//! | `relay_upstream_connect_seconds` | histogram | |
//! | `relay_upstream_failures_total` | counter | `reason` (unreachable, rejected, timeout) |
//! | `relay_draining` | gauge | |

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The relay's metrics.
pub struct Metrics {
    registry: Registry,
    /// Sessions whose client is upgraded and not yet closed.
    pub connections_open: IntGauge,
    /// Upgraded client connections ever.
    pub connections_total: IntCounter,
    /// Session ends by who ended them and the close code.
    pub closes: IntCounterVec,
    /// Refused tokens by reason.
    pub auth_failures: IntCounterVec,
    /// Other refusals by reason.
    pub rejected: IntCounterVec,
    /// Payload bytes relayed, by direction.
    pub bytes: IntCounterVec,
    /// Time to open the upstream (TCP, TLS, WebSocket handshake).
    pub upstream_connect_seconds: Histogram,
    /// Upstream opening failures by kind.
    pub upstream_failures: IntCounterVec,
    /// 1 while draining.
    pub draining: IntGauge,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            connections_open: IntGauge::new(
                "relay_connections_open",
                "Client connections upgraded and not yet closed.",
            )
            .expect("valid metric"),
            connections_total: IntCounter::new(
                "relay_connections_total",
                "Client connections upgraded.",
            )
            .expect("valid metric"),
            closes: IntCounterVec::new(
                Opts::new(
                    "relay_closes_total",
                    "Sessions ended, by the side that ended them and the close code.",
                ),
                &["side", "code"],
            )
            .expect("valid metric"),
            auth_failures: IntCounterVec::new(
                Opts::new(
                    "relay_auth_failures_total",
                    "Handshakes refused with 401, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            rejected: IntCounterVec::new(
                Opts::new(
                    "relay_rejected_total",
                    "Handshakes refused for other reasons than the token, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            bytes: IntCounterVec::new(
                Opts::new(
                    "relay_bytes_total",
                    "Payload bytes of data messages relayed; up is client to upstream.",
                ),
                &["direction"],
            )
            .expect("valid metric"),
            upstream_connect_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "relay_upstream_connect_seconds",
                    "Time to open the upstream WebSocket (TCP, TLS, handshake).",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )
            .expect("valid metric"),
            upstream_failures: IntCounterVec::new(
                Opts::new(
                    "relay_upstream_failures_total",
                    "Failures to open the upstream, by kind.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            draining: IntGauge::new("relay_draining", "1 while the relay drains after SIGTERM.")
                .expect("valid metric"),
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.connections_open.clone()))
            .and_then(|_| r.register(Box::new(m.connections_total.clone())))
            .and_then(|_| r.register(Box::new(m.closes.clone())))
            .and_then(|_| r.register(Box::new(m.auth_failures.clone())))
            .and_then(|_| r.register(Box::new(m.rejected.clone())))
            .and_then(|_| r.register(Box::new(m.bytes.clone())))
            .and_then(|_| r.register(Box::new(m.upstream_connect_seconds.clone())))
            .and_then(|_| r.register(Box::new(m.upstream_failures.clone())))
            .and_then(|_| r.register(Box::new(m.draining.clone())))
            .expect("metric names are unique");
        // Series that exist from the start, so dashboards and alerts see a
        // zero rather than nothing.
        for d in ["up", "down"] {
            m.bytes.with_label_values(&[d]);
        }
        m
    }

    /// Counts a session end.
    pub fn close(&self, side: &str, code: u16) {
        self.closes
            .with_label_values(&[side, &code.to_string()])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on metric families without
        // metrics, which `gather` never returns.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
