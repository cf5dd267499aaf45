//! One browser WebSocket per attempt, tagged with the core's `SocketId`.

use std::rc::Weak;

use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::driver::{Incoming, Shared};
use super::owned::Listener;
use crate::core::{Frame, SocketId};

/// A WebSocket and its four listeners. Dropping it removes the listeners
/// FIRST and then closes the socket, so a late `close` event can never
/// reach a dropped closure (gloo #264).
pub(crate) struct Socket {
    ws: WebSocket,
    listeners: Vec<Listener>,
}

impl Socket {
    /// Opens a socket whose events are fed to `shared` under `id`.
    pub(crate) fn open(
        id: SocketId,
        url: &str,
        protocols: &[String],
        shared: Weak<Shared>,
    ) -> Result<Socket, String> {
        let ws = if protocols.is_empty() {
            WebSocket::new(url)
        } else {
            let list: Array = protocols
                .iter()
                .map(|p| wasm_bindgen::JsValue::from_str(p))
                .collect();
            WebSocket::new_with_str_sequence(url, &list)
        }
        .map_err(|e| {
            // Only the error's name: browsers put the URL (which may carry
            // a token in its query) into the message.
            js_sys::Reflect::get(&e, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                .unwrap_or_else(|| "Error".into())
        })?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let target: &web_sys::EventTarget = ws.as_ref();
        let feed = move |shared: &Weak<Shared>, incoming: Incoming| {
            if let Some(s) = shared.upgrade() {
                s.feed(incoming);
            }
        };
        let (s1, s2, s3, s4) = (shared.clone(), shared.clone(), shared.clone(), shared);
        let listeners = vec![
            Listener::new(target, "open", move |_| feed(&s1, Incoming::Opened(id))),
            Listener::new(target, "message", move |e| {
                let Some(e) = e.dyn_ref::<MessageEvent>() else {
                    return;
                };
                let data = e.data();
                let incoming = if let Some(text) = data.as_string() {
                    Incoming::Text(id, text)
                } else if let Some(buf) = data.dyn_ref::<ArrayBuffer>() {
                    Incoming::Binary(id, Uint8Array::new(buf).to_vec())
                } else {
                    Incoming::Binary(id, Vec::new())
                };
                feed(&s2, incoming);
            }),
            Listener::new(target, "close", move |e| {
                let (code, reason) = match e.dyn_ref::<CloseEvent>() {
                    Some(c) => (c.code(), c.reason()),
                    None => (1006, String::new()),
                };
                feed(&s3, Incoming::Closed(id, code, reason));
            }),
            // A WebSocket `error` is a plain Event with no detail; the
            // close event that follows carries the code.
            Listener::new(target, "error", move |_| feed(&s4, Incoming::Error(id))),
        ];
        Ok(Socket { ws, listeners })
    }

    /// Sends a frame. An exception (socket not open) is left to the close
    /// event that follows; the core keeps unacknowledged audio anyway.
    pub(crate) fn send(&self, frame: &Frame) -> bool {
        let r = match frame {
            Frame::Text(t) => self.ws.send_with_str(t),
            Frame::Binary(b) => self.ws.send_with_u8_array(b),
        };
        r.is_ok()
    }

    /// Bytes queued in the browser but not yet sent.
    pub(crate) fn buffered_amount(&self) -> u64 {
        u64::from(self.ws.buffered_amount())
    }

    /// Closes with a code and reason; listeners go first.
    pub(crate) fn close(mut self, code: u16, reason: &str) {
        self.listeners.clear();
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if !self.listeners.is_empty() {
            self.listeners.clear();
            let _ = self.ws.close_with_code_and_reason(1000, "client released");
        }
    }
}
