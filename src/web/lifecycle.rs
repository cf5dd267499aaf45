//! Page lifecycle → core inputs: `online`, `offline`, `visibilitychange`,
//! `pagehide`/`pageshow`, `freeze`/`resume` (where supported). A page kept
//! in the back/forward cache (`pagehide` with `persisted`) is frozen like a
//! `freeze`; whether the connection survived is decided on the way back.

use std::rc::Weak;

use super::driver::{Incoming, Shared};
use super::owned::Listener;

/// The listeners, removed on drop.
pub(crate) struct Lifecycle {
    _listeners: Vec<Listener>,
}

impl Lifecycle {
    pub(crate) fn attach(shared: Weak<Shared>) -> Lifecycle {
        let mut listeners = Vec::new();
        let on = |shared: &Weak<Shared>, incoming: Incoming| {
            let shared = shared.clone();
            move |_: &web_sys::Event| {
                if let Some(s) = shared.upgrade() {
                    s.feed(incoming.clone());
                }
            }
        };
        if let Some(window) = web_sys::window() {
            let w: &web_sys::EventTarget = window.as_ref();
            listeners.push(Listener::new(w, "online", on(&shared, Incoming::Online)));
            listeners.push(Listener::new(w, "offline", on(&shared, Incoming::Offline)));
            listeners.push(Listener::new(w, "pagehide", on(&shared, Incoming::Frozen)));
            listeners.push(Listener::new(w, "pageshow", on(&shared, Incoming::Resumed)));
            if let Some(doc) = window.document() {
                let d: &web_sys::EventTarget = doc.as_ref();
                let s = shared.clone();
                listeners.push(Listener::new(d, "visibilitychange", move |_| {
                    let hidden = web_sys::window()
                        .and_then(|w| w.document())
                        .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden);
                    if let Some(s) = s.upgrade() {
                        s.feed(if hidden {
                            Incoming::Hidden
                        } else {
                            Incoming::Resumed
                        });
                    }
                }));
                listeners.push(Listener::new(d, "freeze", on(&shared, Incoming::Frozen)));
                listeners.push(Listener::new(d, "resume", on(&shared, Incoming::Resumed)));
            }
        }
        Lifecycle {
            _listeners: listeners,
        }
    }
}
