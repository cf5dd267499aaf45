//! The session's inputs and outputs.

use super::event::Event;
use super::time::Instant;
use std::time::Duration;

/// Identifies one socket attempt. Events from an older id are ignored, so
/// a late `close` from a replaced socket cannot tear down its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// A WebSocket frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
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
    /// A sample of the socket's `bufferedAmount`.
    BufferedAmount(SocketId, u64),
    /// The browser reports the network is back.
    Online,
    /// The browser reports the network is gone.
    Offline,
    /// The page became hidden or frozen.
    PageHidden,
    /// The page became visible or was resumed after a freeze.
    PageResumed,
    /// The token requested by [`Output::RequestToken`] (or why it failed).
    Token(Result<String, String>),
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
    /// Call the user's `getToken` and feed the result as [`Input::Token`].
    RequestToken,
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
            Output::RequestToken => "request-token",
            Output::Event(_) => "event",
            Output::Timeout(_) => "timeout",
        }
    }
}
