//! What every connection task shares: the configuration, the token
//! verifier, the metrics, the limits and the drain signal. Its own module
//! so that the server (which builds it) and the sessions (which read it)
//! both depend on it, and not on each other.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::TokenVerifier;
use crate::config::Config;
use crate::limits::{Limiter, Tracker};
use crate::metrics::Metrics;

/// What every connection task shares.
pub(crate) struct Shared {
    pub config: Config,
    pub verifier: Option<TokenVerifier>,
    pub metrics: Metrics,
    pub limiter: Arc<Limiter>,
    pub tracker: Arc<Tracker>,
    pub drain: watch::Receiver<bool>,
    pub(crate) metrics_on_main: bool,
    pub(crate) upstream_host: (String, u16),
    pub(crate) ready_cache: Mutex<Option<(Instant, bool)>>,
    pub(crate) next_session: AtomicU64,
    pub client_ws: WebSocketConfig,
    pub upstream_ws: WebSocketConfig,
}
