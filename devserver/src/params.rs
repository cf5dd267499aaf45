//! The query parameters every audio endpoint shares.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::app::AppState;
use crate::engine::{pocketsphinx, EngineKind};

/// Per-connection settings parsed from the query.
pub struct Params {
    pub query: BTreeMap<String, String>,
    pub sample_rate: u32,
    pub channels: u16,
    pub engine: EngineKind,
    pub grammar: Option<Arc<str>>,
}

/// Reads the query parameters every endpoint shares (`sample_rate`,
/// `channels`, `engine`, `grammar`). Errors are messages for an HTTP 400.
pub fn params(app: &AppState, q: HashMap<String, String>) -> Result<Params, String> {
    let query: BTreeMap<String, String> = q.into_iter().collect();
    let sample_rate = match query.get("sample_rate") {
        None => 16_000,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|r| (8_000..=192_000).contains(r))
            .ok_or_else(|| format!("sample_rate must be 8000..=192000, got {v:?}"))?,
    };
    let channels = match query.get("channels") {
        None => 1,
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|c| (1..=8).contains(c))
            .ok_or_else(|| format!("channels must be 1..=8, got {v:?}"))?,
    };
    let engine = match query.get("engine") {
        None => app.cfg.engine,
        Some(e) => EngineKind::parse(e)?,
    };
    let grammar = match query.get("grammar").map(String::as_str) {
        None => app.cfg.grammar.as_deref().map(Into::into),
        Some("none") => None,
        Some(name) => Some(
            pocketsphinx::builtin_grammar(name)
                .ok_or_else(|| format!("unknown grammar {name:?} (built in: hello, none)"))?
                .into(),
        ),
    };
    Ok(Params {
        query,
        sample_rate,
        channels,
        engine,
        grammar,
    })
}
