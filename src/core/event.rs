//! What the session tells its user: state changes, transcripts, loss.

use std::time::Duration;

/// The connection state as a UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Created; `connect` not called yet. Audio pushed now is queued.
    Idle,
    /// A socket attempt is in progress (token fetch, TCP, TLS, upgrade).
    Connecting,
    /// The socket is open and the provider's session handshake is running
    /// (Omi: waiting for `auth_response`).
    Authenticating,
    /// The session is ready; audio flows.
    Open,
    /// Push-to-talk with `connection: "onDemand"`: no utterance runs and
    /// everything is confirmed, so no connection is held; the next
    /// `beginUtterance()` opens one.
    Standby,
    /// The browser reports no network: the connection is kept, but audio
    /// waits in the queue (bounded as always) instead of being written into
    /// a socket that cannot carry it; it flows again once the connection
    /// proves alive after `online`, or on a new one.
    Offline,
    /// The connection was lost; the next attempt is scheduled.
    Reconnecting,
    /// `close` was called; flushing, finalizing, waiting for final results.
    Closing,
    /// Closed for good, by the user or after a graceful end.
    Closed,
    /// Stopped by a fatal error (auth failure, bad audio, attempts exhausted).
    Failed,
}

impl State {
    /// Every state (for the API schema, `examples/api_schema.rs`).
    pub const ALL: [State; 10] = [
        State::Idle,
        State::Connecting,
        State::Authenticating,
        State::Open,
        State::Standby,
        State::Offline,
        State::Reconnecting,
        State::Closing,
        State::Closed,
        State::Failed,
    ];

    /// The name used by the JavaScript API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Authenticating => "authenticating",
            State::Open => "open",
            State::Standby => "standby",
            State::Offline => "offline",
            State::Reconnecting => "reconnecting",
            State::Closing => "closing",
            State::Closed => "closed",
            State::Failed => "failed",
        }
    }

    /// Closed or failed: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Closed | State::Failed)
    }
}

/// Why audio was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Queued longer than `buffer.ttlMs`.
    Ttl,
    /// The queue hit `buffer.maxBytes`; the oldest audio made room.
    Capacity,
    /// The client was closed (or closed without flush) before it was sent.
    Closed,
    /// A fatal error stopped the client before it was sent.
    Failed,
    /// Sent, but the session ended before the server confirmed it (an
    /// acknowledgement, or a final transcript covering it): it may have
    /// reached the server, but no transcript the user sees covers it.
    Unconfirmed,
    /// Captured in a format that cannot be converted to the stream's
    /// (an unsupported capture sample rate).
    Format,
}

impl DropReason {
    /// Every reason (for the API schema, `examples/api_schema.rs`).
    pub const ALL: [DropReason; 6] = [
        DropReason::Ttl,
        DropReason::Capacity,
        DropReason::Closed,
        DropReason::Failed,
        DropReason::Unconfirmed,
        DropReason::Format,
    ];

    /// The name used by the JavaScript API.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Ttl => "ttl",
            DropReason::Capacity => "capacity",
            DropReason::Closed => "closed",
            DropReason::Failed => "failed",
            DropReason::Unconfirmed => "unconfirmed",
            DropReason::Format => "format",
        }
    }
}

/// Error codes of `error` events. Stable strings for `switch` statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The server rejected the credentials (close 1008/4001/4003, Omi auth_response false). Fatal.
    AuthFailed,
    /// The server rejected the audio format or data (1003, Deepgram DATA-*). Fatal.
    BadAudio,
    /// The server closed with a code this client treats as fatal (protocol error, policy). Fatal.
    FatalClose,
    /// `reconnect.maxAttempts` consecutive attempts failed. Fatal.
    MaxAttempts,
    /// An attempt was not ready within `connectTimeoutMs`. Not fatal: retried.
    ConnectTimeout,
    /// `getToken` rejected or returned an unusable token. Not fatal: retried.
    TokenFailed,
    /// The server sent something this client could not understand. Not fatal.
    MalformedMessage,
    /// The server reported an error in a message. Not fatal by itself.
    ServerError,
}

impl ErrorCode {
    /// Every code (for the API schema, `examples/api_schema.rs`).
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::AuthFailed,
        ErrorCode::BadAudio,
        ErrorCode::FatalClose,
        ErrorCode::MaxAttempts,
        ErrorCode::ConnectTimeout,
        ErrorCode::TokenFailed,
        ErrorCode::MalformedMessage,
        ErrorCode::ServerError,
    ];

    /// The name used by the JavaScript API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthFailed => "auth-failed",
            ErrorCode::BadAudio => "bad-audio",
            ErrorCode::FatalClose => "fatal-close",
            ErrorCode::MaxAttempts => "max-attempts",
            ErrorCode::ConnectTimeout => "connect-timeout",
            ErrorCode::TokenFailed => "token-failed",
            ErrorCode::MalformedMessage => "malformed-message",
            ErrorCode::ServerError => "server-error",
        }
    }
}

/// One transcript result, the same shape for every provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The text (may be empty: a result for silence).
    pub text: String,
    /// Final for this span, or an interim hypothesis that may change.
    pub is_final: bool,
    /// Deepgram `speech_final`: the speaker paused; the utterance ended.
    pub speech_final: bool,
    /// Start of the span in seconds of stream time: from the first sample
    /// the caller pushed, continuous across reconnects (a provider whose
    /// clock restarts on every connection is mapped back onto it).
    pub start: f64,
    /// End of the span in seconds.
    pub end: f64,
    /// Speaker label, where the backend diarizes.
    pub speaker: Option<String>,
    /// Audio channel index.
    pub channel: u32,
    /// Word timings, where the provider gives them (Deepgram), in the same
    /// stream time as `start`/`end`.
    pub words: Vec<Word>,
}

/// One word of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// The word as shown (punctuated where the provider punctuates).
    pub word: String,
    /// Start in seconds of stream time.
    pub start: f64,
    /// End in seconds of stream time.
    pub end: f64,
}

/// A state transition.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// The new state.
    pub state: State,
    /// The state before.
    pub previous: State,
    /// Consecutive failed attempts so far (0 while healthy).
    pub attempt: u32,
    /// When reconnecting: the delay before the next attempt.
    pub retry_in: Option<Duration>,
    /// Why, in words, where there is a reason (close code and reason, "stale", ...).
    pub reason: Option<String>,
}

/// Audio that was lost, always reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    /// Number of chunks (a partial chunk counts as one).
    pub chunks: u32,
    /// PCM16 bytes.
    pub bytes: u64,
    /// Milliseconds of audio.
    pub audio_ms: f64,
    /// Why.
    pub reason: DropReason,
}

/// An utterance resolved (push-to-talk): its final transcripts, or what
/// arrived by its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct UtteranceResult {
    /// 1 for the first utterance of the session, then counting.
    pub id: u64,
    /// The finals' text, in order, joined with spaces.
    pub text: String,
    /// The final transcripts of the utterance's audio.
    pub finals: Vec<Transcript>,
    /// Where the utterance (with its pre-roll) starts, ms of stream time.
    pub start_ms: f64,
    /// Where it ends, ms of stream time.
    pub end_ms: f64,
    /// Milliseconds of audio in it.
    pub audio_ms: f64,
    /// From `endUtterance()` to this result, ms.
    pub latency_ms: f64,
    /// The finals did not cover it by `pushToTalk.timeoutMs` (or the
    /// session ended first): these are what arrived.
    pub timed_out: bool,
}

/// Everything the session reports to its user.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The state changed.
    State(StateChange),
    /// The session became ready (on open, or on the provider's handshake ack).
    Open {
        /// 1 for the first connection, then counting reconnects.
        connection: u32,
        /// Chunks waiting to be replayed at this moment.
        backlog_chunks: u32,
        /// Generic protocol: the byte offset resumed from.
        resume_offset: Option<u64>,
    },
    /// A transcript arrived.
    Transcript(Transcript),
    /// An ended utterance resolved.
    Utterance(UtteranceResult),
    /// A server text message that is not a transcript (metadata, status,
    /// unknown shapes), verbatim.
    Message(String),
    /// Audio was lost.
    Dropped(Dropped),
    /// Something went wrong; `fatal` means the session stopped.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// A sentence for a person.
        message: String,
        /// True when the session is now `failed`.
        fatal: bool,
    },
    /// A reconnect attempt is scheduled.
    Reconnecting {
        /// Consecutive failed attempts, this one included.
        attempt: u32,
        /// Delay before it starts.
        delay: Duration,
    },
    /// The session ended (closed or failed). The last event.
    Closed {
        /// Close code of the last socket, when there was one.
        code: Option<u16>,
        /// Close reason or the cause.
        reason: String,
    },
}

/// Counters. `bytes_pushed == bytes_sent + bytes_queued + bytes_dropped`
/// holds at all times (the conservation law the tests check).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// PCM16 bytes accepted from the user (after resampling).
    pub bytes_pushed: u64,
    /// Bytes sent (once each; with the generic protocol, bytes sent but
    /// unconfirmed when a connection dies go back to `bytes_queued` until
    /// they are resent).
    pub bytes_sent: u64,
    /// Of the bytes sent, those the server acknowledged (generic protocol).
    pub bytes_acked: u64,
    /// Bytes waiting to be sent (including a partial chunk).
    pub bytes_queued: u64,
    /// Bytes reported in `dropped` events.
    pub bytes_dropped: u64,
    /// Bytes sent again after a reconnect (generic resume); in `bytes_sent` once.
    pub bytes_resent: u64,
    /// Chunks made from the pushed audio.
    pub chunks_pushed: u64,
    /// Chunks sent (counted like `bytes_sent`).
    pub chunks_sent: u64,
    /// Chunks waiting in the queue.
    pub chunks_queued: u64,
    /// Chunks dropped.
    pub chunks_dropped: u64,
    /// Chunks that waited for a reconnect and were then sent (replayed).
    pub chunks_replayed: u64,
    /// Milliseconds of audio dropped.
    pub audio_ms_dropped: f64,
    /// Milliseconds of audio waiting.
    pub audio_ms_queued: f64,
    /// Socket attempts made.
    pub attempts: u64,
    /// Times the session became ready after the first time.
    pub reconnects: u64,
    /// Keepalive frames sent.
    pub keepalives_sent: u64,
    /// Frames received from the server.
    pub messages_received: u64,
    /// Transcripts received.
    pub transcripts: u64,
    /// Last sampled `bufferedAmount` of the socket.
    pub buffered_amount: u64,
    /// Generic protocol: the high-water mark the server reported in its
    /// last `started` (informational; only `ack`s confirm).
    pub server_offset: Option<u64>,
    /// Connections replaced because they did not prove alive after a
    /// freeze, a sleep or an offline spell.
    pub probes_failed: u64,
    /// Final transcripts (or parts of them) not emitted because an earlier
    /// connection's finals already covered that stretch of the stream.
    pub duplicate_finals_suppressed: u64,
    /// Push-to-talk: milliseconds of audio captured between utterances and
    /// let go of (beyond the pre-roll): never part of the stream, so not
    /// counted in `bytes_pushed` and not a loss.
    pub audio_ms_gated: f64,
}
