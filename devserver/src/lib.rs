//! `devserver`: the development backend of resilient-transcriber.
//!
//! It serves the demo page and the built wasm package, speaks three
//! transcription wire protocols (Deepgram's `/v1/listen`, Omi's
//! `/v4/web/listen`, and the project's resumable `/v1/stream`, see
//! `docs/protocol.md`), records what every session received, injects network
//! faults on command through `/control/*`; `devserver relay` runs the
//! production relay (the `resilient-relay` crate). The library target exists so integration tests
//! can start a server in-process on port 0:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let cfg = devserver::ServerConfig { port: 0, ..Default::default() };
//! let server = devserver::Server::bind(cfg).await?;
//! let addr = server.local_addr();
//! tokio::spawn(server.run());
//! # let _ = addr; Ok(()) }
//! ```

mod app;
pub mod cli;
pub mod config;
mod conn;
mod control;
mod deepgram;
pub mod engine;
pub mod faults;
mod generic;
mod http;
mod omi;
mod params;
pub mod recording;
mod stream;
pub mod util;
pub mod wav;

pub use config::{ServerConfig, Timeouts};
pub use engine::EngineKind;
pub use http::Server;
