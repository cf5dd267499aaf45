//! The session's inputs and outputs.

use super::event::Event;
use super::time::Instant;
use std::time::Duration;

/// Identifies one socket attempt. Events from an older id are ignored, so
/// a late `close` from a replaced socket cannot tear down its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// Identifies one token request. An answer carrying an older id (a late
/// `getToken` of an attempt that already timed out) is ignored, so it can
/// never satisfy the request of a later attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenRequest(pub u64);

/// How a credential is presented (Deepgram and generic: the subprotocol
/// pair `[scheme, token]`; browsers cannot set an `Authorization` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenScheme {
    /// `token`: an API key (`Authorization: Token K`).
    #[default]
    Token,
    /// `bearer`: a short-lived access token, such as a JWT from Deepgram's
    /// token-grant endpoint (`Authorization: Bearer T`).
    Bearer,
}

impl TokenScheme {
    /// The subprotocol name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScheme::Token => "token",
            TokenScheme::Bearer => "bearer",
        }
    }
}

/// A credential: the token and how to present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The secret itself. Never printed.
    pub token: String,
    /// How it is presented.
    pub scheme: TokenScheme,
}

impl Credential {
    /// An API-key style credential (`token` scheme).
    pub fn token(t: impl Into<String>) -> Credential {
        Credential {
            token: t.into(),
            scheme: TokenScheme::Token,
        }
    }
}

impl From<&str> for Credential {
    fn from(t: &str) -> Credential {
        Credential::token(t)
    }
}

impl From<String> for Credential {
    fn from(t: String) -> Credential {
        Credential::token(t)
    }
}

/// A WebSocket frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl Frame {
    /// Bytes of application data, as `bufferedAmount` counts them.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }
}

/// Something that happened, fed to [`Session::handle_input`](super::Session::handle_input).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input<'a> {
    /// Start connecting (once).
    Connect,
    /// PCM16 mono samples at the configured sample rate, captured at `now`.
    Audio(&'a [i16]),
    /// The socket finished its handshake.
    SocketOpened(SocketId),
    /// A text frame arrived.
    SocketText(SocketId, &'a str),
    /// A binary frame arrived.
    SocketBinary(SocketId, &'a [u8]),
    /// The socket closed (`close` event).
    SocketClosed {
        /// Which socket.
        id: SocketId,
        /// Close code (1006 when the connection dropped without a close frame).
        code: u16,
        /// Close reason.
        reason: &'a str,
    },
    /// The socket reported an error. A close follows in browsers; nothing
    /// is decided on the error alone.
    SocketError(SocketId),
    /// A sample of the socket's `bufferedAmount`: bytes handed to the
    /// socket (every [`Output::Send`] drained so far) that have not left
    /// the machine yet. Sample it at any time; the session compares it
    /// with what it handed out, so a value taken right after a send is fine.
    BufferedAmount(SocketId, u64),
    /// The browser reports the network is back.
    Online,
    /// The browser reports the network is gone.
    Offline,
    /// The page became hidden (`visibilitychange`, `pagehide`): timers may
    /// be throttled from now on.
    PageHidden,
    /// The page is being frozen (`freeze`): nothing runs until it resumes.
    PageFrozen,
    /// The page became visible, was shown again, or resumed after a freeze.
    PageResumed,
    /// The machine slept for about this long: the wall clock jumped ahead
    /// of the monotonic clock the session's `now` comes from (a suspended
    /// laptop stops the monotonic clock, not the wall clock).
    Slept(Duration),
    /// The answer to [`Output::RequestToken`] with the same id (or why it
    /// failed). Answers to older requests are ignored.
    Token(TokenRequest, Result<Credential, String>),
    /// `beginUtterance()`: audio flows into the stream from now on (with
    /// push-to-talk, after the pre-roll: at most `pre_roll`, default the
    /// configured one).
    BeginUtterance {
        /// Pre-roll wanted, capped by `pushToTalk.preRollMs`.
        pre_roll: Option<Duration>,
    },
    /// `endUtterance()`: the utterance's audio is complete; it is finalized
    /// and resolves as [`Event::Utterance`](super::Event::Utterance).
    EndUtterance,
    /// Audio captured but impossible to convert to the stream's format
    /// (for example an unsupported capture sample rate): this many samples
    /// at the target rate are reported dropped with reason `format`.
    AudioLost(u64),
    /// A wake-up: the deadline from [`Output::Timeout`] passed (or anything
    /// else woke the caller; spurious wake-ups are harmless).
    Timeout,
    /// Stop. With `flush`, send what is queued, finalize, and wait for the
    /// final results, bounded by `timeout` (default `closeTimeoutMs`).
    Close {
        /// Deliver queued audio and await final results first.
        flush: bool,
        /// Bound on the whole close.
        timeout: Option<Duration>,
    },
}

/// Something the caller must do, drained from [`Session::poll_output`](super::Session::poll_output).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Open a WebSocket.
    Open {
        /// Id to tag this socket's events with.
        id: SocketId,
        /// The URL (may carry the caller's own query parameters: never print it whole).
        url: String,
        /// Subprotocols to offer (may carry a token: never print them).
        protocols: Vec<String>,
    },
    /// Send a frame on socket `id`.
    Send(SocketId, Frame),
    /// Close socket `id` with a code and reason, and forget it: later
    /// events from it are ignored.
    Close {
        /// Which socket.
        id: SocketId,
        /// 1000 or 3000..=4999, as browsers allow.
        code: u16,
        /// Reason text (≤ 123 bytes).
        reason: String,
    },
    /// Call the user's `getToken` and feed the result as [`Input::Token`]
    /// with this id.
    RequestToken(TokenRequest),
    /// Tell the user.
    Event(Event),
    /// Nothing more to do now; call `handle_input(Input::Timeout)` at this
    /// instant (or never, for `None`). Always the last output of a drain.
    Timeout(Option<Instant>),
}

impl Output {
    /// The provider-independent short name, for logs in tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Output::Open { .. } => "open",
            Output::Send(..) => "send",
            Output::Close { .. } => "close",
            Output::RequestToken(_) => "request-token",
            Output::Event(_) => "event",
            Output::Timeout(_) => "timeout",
        }
    }
}
