//! Deepgram's live API as the fake speaks it: `KeepAlive` keeps the socket
//! from idling out (10 s), `Finalize` is answered with a final for what was
//! received (the socket stays open), `CloseStream` with the remaining
//! `Results`, `Metadata` and close 1000; results are `Results` messages
//! timed in this socket's audio, with interims every 250 ms on request.

use std::time::Duration;

use resilient_transcriber::core::{Config, Instant, Provider, SocketId};

use super::results::Heard;
use super::{secs, Deliver, FakeServer, ProviderFake};

/// See the module docs.
pub(super) struct Deepgram;

impl ProviderFake for Deepgram {
    fn config(&self) -> Config {
        Config::new(Provider::Deepgram, "wss://api.deepgram.test/v1/listen")
    }

    fn idle_timeout(&self) -> Option<Duration> {
        Some(secs(10))
    }

    fn on_text(&self, server: &mut FakeServer, now: Instant, id: SocketId, text: &str) {
        match text {
            r#"{"type":"KeepAlive"}"# => {}
            r#"{"type":"Finalize"}"# => {
                // Finalize what was received; the socket stays open.
                if server.answer_flush {
                    server.flush_results(now, id, true);
                }
            }
            r#"{"type":"CloseStream"}"# => {
                if server.answer_finalize {
                    server.flush_results(now, id, true);
                    server.emit(
                        now,
                        Deliver::Text(
                            id,
                            r#"{"type":"Metadata","request_id":"r","duration":1}"#.into(),
                        ),
                    );
                    server.close(now, id, 1000, "");
                }
            }
            other => server
                .violations
                .push(format!("deepgram: unexpected text {other}")),
        }
    }

    fn sends_interims(&self) -> bool {
        true
    }

    fn result(&self, r: &Heard) -> String {
        let Heard {
            start,
            dur,
            words,
            timed,
            is_final,
            last,
            channel,
            channels,
            ..
        } = r;
        format!(
            r#"{{"type":"Results","channel_index":[{channel},{channels}],"duration":{dur},"start":{start},"is_final":{is_final},"speech_final":{last},"channel":{{"alternatives":[{{"transcript":"{words}","confidence":0.9,"words":[{timed}]}}]}}}}"#
        )
    }
}
