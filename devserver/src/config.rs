//! Server configuration. Timeouts live here (not as constants) so the
//! integration tests can shrink them to milliseconds.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::EngineKind;

/// Timeouts and heartbeat periods of the wire protocols.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Deepgram and generic: close when neither audio nor a keepalive arrives
    /// for this long (Deepgram: 1011 `NET-0001` after 10 s).
    pub idle: Duration,
    /// Omi: the `auth` message must arrive within this (default 5 s).
    pub auth: Duration,
    /// Omi: period of the text `ping` heartbeat (default 10 s).
    pub ping: Duration,
    /// Omi: close 1001 after this long without any inbound frame (90 s).
    pub omi_idle: Duration,
    /// Generic: the `start` message must arrive within this (default 5 s).
    pub start: Duration,
    /// Generic: minimum interval between acks; an ack goes out whenever the
    /// stored offset moved and this much time passed (default 200 ms, so the
    /// protocol's "at least once per second" holds with margin).
    pub ack: Duration,
    /// How long the server waits for the client's answer to its close frame.
    pub close_handshake: Duration,
    /// A generic stream with no connection for this long is forgotten
    /// (its audio, high-water mark and finals), when the next one opens.
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(10),
            auth: Duration::from_secs(5),
            ping: Duration::from_secs(10),
            omi_idle: Duration::from_secs(90),
            start: Duration::from_secs(5),
            ack: Duration::from_millis(200),
            close_handshake: Duration::from_secs(2),
            stream_idle: Duration::from_secs(600),
        }
    }
}

/// Everything `devserver serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Interface to bind (default 127.0.0.1: the server is for local use).
    pub host: String,
    /// Port; 0 picks a free one (tests).
    pub port: u16,
    /// Engine used when a connection does not ask for one with `engine=`.
    pub engine: EngineKind,
    /// Static files served at `/`.
    pub www: PathBuf,
    /// The built wasm package served at `/pkg/`.
    pub pkg: PathBuf,
    /// Where `<session>.wav` files are written at session end, if anywhere.
    pub record_dir: Option<PathBuf>,
    /// When set, only this token is accepted.
    pub token: Option<String>,
    /// A JSGF grammar used by the pocketsphinx engine for every connection
    /// that does not pick one with `grammar=`.
    pub grammar: Option<String>,
    /// Protocol timeouts.
    pub timeouts: Timeouts,
    /// Audio kept in memory per session (and per generic stream), in seconds.
    pub max_audio_secs: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8787,
            engine: EngineKind::default_kind(),
            www: PathBuf::from("www"),
            pkg: PathBuf::from("pkg"),
            record_dir: None,
            token: None,
            grammar: None,
            timeouts: Timeouts::default(),
            max_audio_secs: 600,
        }
    }
}
