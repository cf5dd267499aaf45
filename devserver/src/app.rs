//! The state every handler shares. Defined here, below the endpoints and
//! the router, so that none of them imports the crate root or each other to
//! reach it.

use std::sync::Arc;

use crate::config::ServerConfig;
use crate::faults::Faults;
use crate::recording::Recorder;
use crate::stream::Streams;

/// Shared server state.
pub struct App {
    pub cfg: ServerConfig,
    pub recorder: Recorder,
    pub faults: Faults,
    /// Generic streams by id, across their connections.
    pub streams: Streams,
}

impl App {
    pub fn new(cfg: ServerConfig) -> App {
        App {
            cfg,
            recorder: Recorder::default(),
            faults: Faults::default(),
            streams: Streams::default(),
        }
    }
}

pub type AppState = Arc<App>;
