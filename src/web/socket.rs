//! One browser WebSocket per attempt, tagged with the core's `SocketId`.

use wasm_bindgen::JsValue;

use super::js;
use crate::core::{Frame, SocketId};

/// A WebSocket and its four listeners (attached in `shell.js`). Dropping
/// it removes the listeners FIRST and then closes the socket, so a late
/// `close` event can never reach a client that forgot the socket.
pub(crate) struct Socket {
    ws: JsValue,
    closed: bool,
}

impl Socket {
    /// Opens a socket whose events reach `sink` under `id`. The error is
    /// only the exception's name: browsers put the URL (which may carry a
    /// token in its query) into the message.
    pub(crate) fn open(
        id: SocketId,
        url: &str,
        protocols: Vec<String>,
        sink: &JsValue,
    ) -> Result<Socket, String> {
        let ws = js::rt_ws_open(url, protocols, id.0 as f64, sink);
        match ws.as_string() {
            Some(name) => Err(name),
            None => Ok(Socket { ws, closed: false }),
        }
    }

    /// Sends a frame if the socket is open; false when it is closing or
    /// closed (the server's close frame arrived, its close event follows).
    /// Nothing is lost: the core keeps audio until it is confirmed.
    pub(crate) fn send(&self, frame: &Frame) -> bool {
        match frame {
            Frame::Text(t) => js::rt_ws_send_text(&self.ws, t),
            Frame::Binary(b) => js::rt_ws_send_bytes(&self.ws, b),
        }
    }

    /// Bytes queued in the browser but not yet sent.
    pub(crate) fn buffered_amount(&self) -> u64 {
        js::rt_ws_buffered(&self.ws) as u64
    }

    /// Closes with a code and reason; listeners go first.
    pub(crate) fn close(mut self, code: u16, reason: &str) {
        js::rt_ws_close(&self.ws, code, reason);
        self.closed = true;
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if !self.closed {
            js::rt_ws_close(&self.ws, 1000, "client released");
        }
    }
}
