//! What each session received and did, for `/control/sessions`.
//!
//! Every WebSocket handshake attempt on an audio endpoint becomes a session,
//! including rejected ones (`http_status` tells which), so tests can see that
//! a fault really hit a connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::faults::Cmd;
use crate::util::{lock, now_ms};

/// The JSON shape of one `/control/sessions` entry.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SessionRecord {
    pub id: String,
    /// `deepgram`, `omi` or `generic`.
    pub endpoint: String,
    pub path: String,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    /// 101 when upgraded, else the HTTP status the handshake got.
    pub http_status: u16,
    /// Query parameters with credentials removed.
    pub query: BTreeMap<String, String>,
    pub token_fingerprint: Option<String>,
    pub subprotocol: Option<String>,
    pub authenticated: bool,
    pub engine: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// Audio bytes received (generic: including duplicates).
    pub bytes_received: u64,
    pub audio_frames: u64,
    pub first_audio_ms: Option<u64>,
    pub last_audio_ms: Option<u64>,
    pub keepalives: u64,
    pub finalize_count: u64,
    /// Deepgram: `Configure` messages accepted, and the last one.
    pub configure_count: u64,
    pub last_configure: Option<serde_json::Value>,
    pub close_stream: bool,
    /// Generic: the stream id from `start`.
    pub stream: Option<String>,
    /// Generic: the offset from `start`.
    pub start_offset: Option<u64>,
    pub duplicate_bytes: u64,
    pub gap_bytes: u64,
    pub transcripts_sent: u64,
    /// Text frames the server could not use (bad JSON, unknown type).
    pub invalid_messages: u64,
    /// The close the server initiated; null when it only echoed the client's.
    pub close_code_sent: Option<u16>,
    pub close_reason_sent: Option<String>,
    pub close_code_received: Option<u16>,
    pub close_reason_received: Option<String>,
    /// Bytes the client sent into a blackhole, dropped unread.
    pub blackholed_bytes: u64,
    /// Faults applied, e.g. `reset`, `close:4321`, `delay-handshake:500`.
    pub faults: Vec<String>,
    /// True when the kept audio hit the per-session cap.
    pub audio_truncated: bool,
}

/// Per-session switches the control API flips while the session runs.
pub struct SessionCtl {
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub stop_acking: AtomicBool,
    pub interims_only: AtomicBool,
    pub slow_reads_bps: AtomicU64,
    pub live: AtomicBool,
}

/// One session: its record, its received audio and its control handle.
pub struct Session {
    pub id: String,
    pub record: Mutex<SessionRecord>,
    pcm: Mutex<Vec<u8>>,
    /// `(arrival ms, bytes kept)` of every audio frame whose bytes are in
    /// `pcm`, in order: when each stretch of the recording arrived.
    frames: Mutex<Vec<(u64, u32)>>,
    max_pcm: usize,
    pub ctl: SessionCtl,
}

impl Session {
    /// Applies `f` to the record.
    pub fn update(&self, f: impl FnOnce(&mut SessionRecord)) {
        f(&mut lock(&self.record));
    }

    pub fn snapshot(&self) -> SessionRecord {
        lock(&self.record).clone()
    }

    pub fn add_fault(&self, fault: impl Into<String>) {
        let fault = fault.into();
        self.update(|r| r.faults.push(fault));
    }

    /// Records an audio frame and keeps its bytes (up to the cap).
    pub fn add_audio(&self, bytes: &[u8]) {
        let now = now_ms();
        let mut pcm = lock(&self.pcm);
        let room = self.max_pcm.saturating_sub(pcm.len());
        let kept = bytes.len().min(room);
        pcm.extend_from_slice(&bytes[..kept]);
        let truncated = bytes.len() > room;
        drop(pcm);
        if kept > 0 {
            lock(&self.frames).push((now, kept as u32));
        }
        self.update(|r| {
            r.bytes_received += bytes.len() as u64;
            r.audio_frames += 1;
            r.first_audio_ms.get_or_insert(now);
            r.last_audio_ms = Some(now);
            r.audio_truncated |= truncated;
        });
    }

    pub fn pcm(&self) -> Vec<u8> {
        lock(&self.pcm).clone()
    }

    /// `(arrival ms, bytes)` of the frames in [`Session::pcm`], in order.
    pub fn frames(&self) -> Vec<(u64, u32)> {
        lock(&self.frames).clone()
    }
}

/// Recordings kept; older finished ones are forgotten first.
pub const MAX_SESSIONS: usize = 2000;

/// All sessions since start (or the last `DELETE /control/sessions`).
#[derive(Default)]
pub struct Recorder {
    inner: Mutex<RecInner>,
}

#[derive(Default)]
struct RecInner {
    next_id: u64,
    sessions: Vec<Arc<Session>>,
    /// Every session still running, listed or not: clearing the list must
    /// not make running sessions immune to faults.
    running: Vec<std::sync::Weak<Session>>,
}

impl Recorder {
    /// Creates and registers a session; the receiver carries control commands.
    pub fn create(
        &self,
        mut record: SessionRecord,
        max_pcm: usize,
    ) -> (Arc<Session>, mpsc::UnboundedReceiver<Cmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = lock(&self.inner);
        inner.next_id += 1;
        let id = format!("s{}", inner.next_id);
        record.id = id.clone();
        record.started_at_ms = now_ms();
        let session = Arc::new(Session {
            id,
            record: Mutex::new(record),
            pcm: Mutex::new(Vec::new()),
            frames: Mutex::new(Vec::new()),
            max_pcm,
            ctl: SessionCtl {
                tx,
                stop_acking: AtomicBool::new(false),
                interims_only: AtomicBool::new(false),
                slow_reads_bps: AtomicU64::new(0),
                live: AtomicBool::new(false),
            },
        });
        inner.sessions.push(session.clone());
        if inner.sessions.len() > MAX_SESSIONS {
            // A dev server left running for days must not grow without
            // bound: forget the oldest finished sessions (and their audio).
            let excess = inner.sessions.len() - MAX_SESSIONS;
            let mut dropped = 0;
            inner.sessions.retain(|s| {
                let drop_it = dropped < excess && lock(&s.record).ended_at_ms.is_some();
                dropped += usize::from(drop_it);
                !drop_it
            });
        }
        inner.running.retain(|w| w.strong_count() > 0);
        inner.running.push(Arc::downgrade(&session));
        (session, rx)
    }

    pub fn list(&self) -> Vec<SessionRecord> {
        lock(&self.inner)
            .sessions
            .iter()
            .map(|s| s.snapshot())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.inner)
            .sessions
            .iter()
            .find(|s| s.id == id)
            .cloned()
    }

    /// Sessions whose WebSocket is open right now.
    pub fn live(&self) -> Vec<Arc<Session>> {
        lock(&self.inner)
            .running
            .iter()
            .filter_map(|w| w.upgrade())
            .filter(|s| s.ctl.live.load(Ordering::SeqCst))
            .collect()
    }

    /// Forgets every recording (running sessions keep running and stay
    /// reachable by faults, but are no longer listed).
    pub fn clear(&self) -> usize {
        let mut inner = lock(&self.inner);
        let n = inner.sessions.len();
        inner.sessions.clear();
        n
    }
}
