//! Fault injection: the state behind `/control/*` and the commands sent to
//! running sessions.
//!
//! Two kinds of fault exist. *Session faults* (close, reset, blackhole,
//! stuck-reader, malformed, stop-acking, interims-only, slow-reads) hit the
//! sessions open now
//! (`"scope":"current"`) or the next N sessions right after their upgrade
//! (`"scope":"next","count":N`). *Handshake faults* (delay-handshake, reject)
//! only make sense for future handshakes, so they always use the next-N
//! scope. `down` and `flap` are time windows that hit every connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::util::lock;

/// A command to one running session.
#[derive(Debug, Clone)]
pub enum Cmd {
    /// Send a close frame with this code and reason; with `hold`, keep the
    /// TCP connection that long afterwards, reading and answering nothing.
    Close {
        code: u16,
        reason: String,
        hold: Option<Duration>,
    },
    /// Abort the TCP connection with an RST (SO_LINGER 0), no close frame.
    Reset,
    /// Stop reading and writing for this long (None: until `/control/clear`).
    Blackhole(Option<Duration>),
    /// Stop reading for this long (None: until `/control/clear`), but keep
    /// writing: heartbeats, and results of what was read before.
    StuckReader(Option<Duration>),
    /// Send a malformed frame.
    Malformed(MalformedKind),
    /// Faults were cleared: end a blackhole now.
    Wake,
}

/// What `/control/malformed` sends.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MalformedKind {
    /// A text frame that is not JSON.
    InvalidJson,
    /// A 2 MB text frame.
    HugeText,
    /// A binary frame (no endpoint ever sends binary).
    UnexpectedBinary,
}

impl MalformedKind {
    pub fn name(self) -> &'static str {
        match self {
            MalformedKind::InvalidJson => "invalid-json",
            MalformedKind::HugeText => "huge-text",
            MalformedKind::UnexpectedBinary => "unexpected-binary",
        }
    }
}

/// A fault waiting for the next sessions.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub fault: NextFault,
    pub remaining: u32,
}

/// The faults that can wait for future sessions.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NextFault {
    DelayHandshake {
        ms: u64,
    },
    Reject {
        status: u16,
    },
    Close {
        code: u16,
        reason: String,
        hold_ms: Option<u64>,
    },
    Reset,
    Blackhole {
        ms: Option<u64>,
    },
    StuckReader {
        ms: Option<u64>,
    },
    Malformed {
        malformed: MalformedKind,
    },
    StopAcking,
    InterimsOnly,
    SlowReads {
        bytes_per_sec: u64,
    },
}

impl NextFault {
    /// Faults acted on before the upgrade.
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            NextFault::DelayHandshake { .. } | NextFault::Reject { .. }
        )
    }

    /// The label recorded in a session's `faults`.
    pub fn label(&self) -> String {
        match self {
            NextFault::DelayHandshake { ms } => format!("delay-handshake:{ms}"),
            NextFault::Reject { status } => format!("reject:{status}"),
            NextFault::Close { code, .. } => format!("close:{code}"),
            NextFault::Reset => "reset".into(),
            NextFault::Blackhole { .. } => "blackhole".into(),
            NextFault::StuckReader { .. } => "stuck-reader".into(),
            NextFault::Malformed { malformed } => format!("malformed:{}", malformed.name()),
            NextFault::StopAcking => "stop-acking".into(),
            NextFault::InterimsOnly => "interims-only".into(),
            NextFault::SlowReads { bytes_per_sec } => format!("slow-reads:{bytes_per_sec}"),
        }
    }
}

#[derive(Default)]
struct State {
    pending: Vec<Pending>,
    down_until: Option<Instant>,
    flap: Option<(Duration, Option<Instant>)>,
    stop_acking: bool,
    interims_only: bool,
    slow_reads_bps: u64,
}

/// Global fault state.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    pub fn push_next(&self, fault: NextFault, count: u32) {
        lock(&self.state).pending.push(Pending {
            fault,
            remaining: count,
        });
    }

    /// Takes one use of every pending fault, in the order they were posted.
    pub fn take_next(&self) -> Vec<NextFault> {
        let mut st = lock(&self.state);
        let taken = st.pending.iter_mut().map(|p| {
            p.remaining -= 1;
            p.fault.clone()
        });
        let taken: Vec<_> = taken.collect();
        st.pending.retain(|p| p.remaining > 0);
        taken
    }

    pub fn set_down(&self, d: Duration) {
        lock(&self.state).down_until = Some(Instant::now() + d);
    }

    pub fn is_down(&self) -> bool {
        lock(&self.state)
            .down_until
            .is_some_and(|t| Instant::now() < t)
    }

    pub fn set_flap(&self, every: Duration, duration: Option<Duration>) {
        lock(&self.state).flap = Some((every, duration.map(|d| Instant::now() + d)));
    }

    /// The flap period if flapping is active now.
    pub fn flap(&self) -> Option<Duration> {
        let st = lock(&self.state);
        match st.flap {
            Some((every, until)) if until.is_none_or(|u| Instant::now() < u) => Some(every),
            _ => None,
        }
    }

    pub fn set_stop_acking(&self, on: bool) {
        lock(&self.state).stop_acking = on;
    }

    pub fn stop_acking(&self) -> bool {
        lock(&self.state).stop_acking
    }

    pub fn set_interims_only(&self, on: bool) {
        lock(&self.state).interims_only = on;
    }

    pub fn interims_only(&self) -> bool {
        lock(&self.state).interims_only
    }

    pub fn set_slow_reads(&self, bps: u64) {
        lock(&self.state).slow_reads_bps = bps;
    }

    pub fn slow_reads(&self) -> u64 {
        lock(&self.state).slow_reads_bps
    }

    pub fn clear(&self) {
        *lock(&self.state) = State::default();
    }

    /// `GET /control/faults`.
    pub fn describe(&self) -> Value {
        let st = lock(&self.state);
        let now = Instant::now();
        json!({
            "pending": st.pending,
            "down_remaining_ms": st.down_until.filter(|t| *t > now).map(|t| (t - now).as_millis() as u64),
            "flap": st.flap.and_then(|(every, until)| {
                if until.is_some_and(|u| u <= now) { return None; }
                Some(json!({
                    "ms": every.as_millis() as u64,
                    "remaining_ms": until.map(|u| (u - now).as_millis() as u64),
                }))
            }),
            "stop_acking": st.stop_acking,
            "interims_only": st.interims_only,
            "slow_reads_bytes_per_sec": st.slow_reads_bps,
        })
    }
}

/// A bad control request: HTTP 400 with this message.
#[derive(Debug)]
pub struct BadInput(pub String);

/// Accessors over a JSON body that name the field and value on error.
pub struct Body<'a>(pub &'a serde_json::Map<String, Value>);

impl Body<'_> {
    /// An integer field in `min..=max`.
    pub fn int(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, BadInput> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(BadInput(format!(
                    "field `{field}` must be an integer in {min}..={max}, got {v}"
                ))),
            },
        }
    }

    pub fn req_int(&self, field: &str, min: i64, max: i64) -> Result<i64, BadInput> {
        self.int(field, min, max)?
            .ok_or_else(|| BadInput(format!("field `{field}` is required")))
    }

    pub fn string(&self, field: &str) -> Result<Option<String>, BadInput> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(BadInput(format!(
                "field `{field}` must be a string, got {v}"
            ))),
        }
    }

    pub fn bool(&self, field: &str) -> Result<Option<bool>, BadInput> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(BadInput(format!(
                "field `{field}` must be true or false, got {v}"
            ))),
        }
    }
}

/// Where a session fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Current,
    Next(u32),
}

/// Parses `scope`/`count`; `default` applies when `scope` is absent.
pub fn scope(body: &Body<'_>, default: Scope) -> Result<Scope, BadInput> {
    let count = body.int("count", 1, 1_000_000)?;
    match body.string("scope")?.as_deref() {
        None if count.is_some() => Ok(Scope::Next(count.unwrap_or(1) as u32)),
        None => Ok(default),
        Some("current") => Ok(Scope::Current),
        Some("next") => Ok(Scope::Next(count.unwrap_or(1) as u32)),
        Some(other) => Err(BadInput(format!(
            "field `scope` must be \"current\" or \"next\", got \"{other}\""
        ))),
    }
}

/// A close code a server may send: 1000..=4999 minus the reserved ones and
/// the unassigned 1016..=2999 range.
pub fn valid_close_code(code: i64) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Longest duration any fault accepts (1 hour): larger values are typos.
pub const MAX_MS: i64 = 3_600_000;
