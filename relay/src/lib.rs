//! `resilient-relay`: the WebSocket relay between resilient-transcriber
//! clients and a transcription provider.
//!
//! Browsers must never hold a provider API key, so the app's clients
//! connect here with a short-lived token signed by the app's own backend
//! (HS256, [`auth`]); the relay checks it, takes it out of the request, and
//! opens the provider with the operator's credential instead. It forwards
//! every close code both ways and ends every session with close frames on
//! both sides ([`close`]), enforces connection, duration, size and idle
//! limits, and on SIGTERM stops accepting and closes every client with
//! 1012, which the client library answers by reconnecting (through another
//! relay) and replaying its unconfirmed audio. It keeps no shared state, so
//! it scales behind any load balancer that passes WebSockets.
//!
//! See relay/README.md for the configuration table, the token format and a
//! deployment. In-process use (what the tests do):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use resilient_relay::{ClientAuth, Config, Relay};
//! let config = Config::new("127.0.0.1:0", "wss://api.deepgram.com", ClientAuth::InsecureNoAuth);
//! let relay = Relay::bind(config).await?;
//! let addr = relay.local_addr();
//! let drain = relay.drain_handle();
//! let task = tokio::spawn(relay.run());
//! // ... clients connect to ws://{addr}/v1/listen ...
//! drain.drain(); // what SIGTERM does
//! let summary = task.await?;
//! # let _ = (addr, summary); Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod cli;
pub mod close;
pub mod config;
mod limits;
pub mod logging;
pub mod metrics;
mod server;
mod session;
mod shared;
mod tls;

pub use config::{ClientAuth, Config, ConfigError, JwtConfig, Limits, Secret, Timeouts, TlsFiles};
pub use server::{BindError, DrainHandle, Relay, RunSummary};
