//! The state every handler shares. Defined here, below the endpoints and
//! the router, so that none of them imports the crate root or each other to
//! reach it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::ServerConfig;
use crate::faults::Faults;
use crate::recording::Recorder;
use crate::stream::StreamStore;

/// Shared server state.
pub struct App {
    pub cfg: ServerConfig,
    pub recorder: Recorder,
    pub faults: Faults,
    /// Generic streams by id, across their connections.
    pub streams: Mutex<HashMap<String, StreamStore>>,
}

impl App {
    pub fn new(cfg: ServerConfig) -> App {
        App {
            cfg,
            recorder: Recorder::default(),
            faults: Faults::default(),
            streams: Mutex::new(HashMap::new()),
        }
    }
}

pub type AppState = Arc<App>;
