//! # resilient-transcriber
//!
//! Streams live audio from a browser or webview to a transcription backend
//! over a WebSocket and keeps doing so through every kind of network
//! failure, never losing audio silently.
//!
//! The heart is [`core::Session`], a sans-IO state machine: it never reads a
//! clock, never touches a socket, never sleeps. Feed it inputs that carry
//! `now`, then drain its outputs until [`core::Output::Timeout`], and call
//! back at that instant:
//!
//! ```no_run
//! use resilient_transcriber::core::{Config, Input, Instant, Output, Provider, Session};
//! # fn open_socket(_: &str, _: &[String]) {}
//! # fn now() -> Instant { Instant::from_millis(0) }
//! let cfg = Config::new(Provider::Deepgram, "wss://api.deepgram.com/v1/listen");
//! let mut session = Session::new(cfg).expect("valid config");
//! session.handle_input(now(), Input::Connect).expect("first connect");
//! loop {
//!     match session.poll_output() {
//!         Output::Open { url, protocols, .. } => open_socket(&url, &protocols),
//!         Output::Send(_id, _frame) => { /* socket.send(frame) */ }
//!         Output::Close { .. } => { /* socket.close(code, reason) */ }
//!         Output::RequestToken(_req) => { /* call getToken, then Input::Token(_req, ..) */ }
//!         Output::Event(_e) => { /* tell the user */ }
//!         Output::Timeout(_at) => break, // arm one timer for `_at`
//!         _ => {}
//!     }
//! }
//! ```
//!
//! In the browser, `web` (compiled for `wasm32` only) wires the session to
//! a WebSocket, one timer, page lifecycle events and the microphone, and
//! exposes the `TranscriptionClient` JavaScript class.
#![deny(missing_docs)]

pub mod core;

#[cfg(target_arch = "wasm32")]
pub mod web;
