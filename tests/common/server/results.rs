//! The cadence of results, whatever the provider: a final per
//! `final_every` samples of audio counted, interims every 250 ms where the
//! provider sends them, and the words each result names. The provider only
//! chooses the clock of its times and the format of the message.

use resilient_transcriber::core::{Instant, SocketId};

use super::{Deliver, FakeServer, RATE};

/// One result, before the provider puts it into its message.
pub(super) struct Heard {
    /// Stream position of the first sample it covers.
    pub(super) from: u64,
    /// Start, in seconds of the provider's clock.
    pub(super) start: f64,
    /// Duration, in seconds.
    pub(super) dur: f64,
    /// The transcript: `audio A..B`, or the words `wN` it fully covers.
    pub(super) words: String,
    /// The words with their timings, as JSON objects (empty without
    /// [`FakeServer::words`]).
    pub(super) timed: String,
    /// A final result.
    pub(super) is_final: bool,
    /// The last result of the stream (the answer to a finalize).
    pub(super) last: bool,
    /// The channel it transcribes, of `channels`.
    pub(super) channel: u64,
    pub(super) channels: u64,
}

impl FakeServer {
    /// Counts `n` samples from mic position `first` toward the next
    /// result; `stream_at` is where they sit in the stream (generic: its
    /// offset, which push-to-talk's gating sets apart from the position).
    pub(super) fn count_for_results(
        &mut self,
        now: Instant,
        id: SocketId,
        first: u64,
        n: u64,
        stream_at: Option<u64>,
    ) {
        let s = self.sockets.get_mut(&id).expect("exists");
        if s.result_from.is_none() {
            s.result_from = Some(first);
            s.result_socket_from = s.socket_samples;
            s.result_stream_from = stream_at.unwrap_or(first);
        }
        s.socket_samples += n;
        s.result_samples += n;
        s.interim_samples += n;
        let interim_due = s.interim_samples >= RATE / 4;
        if interim_due {
            s.interim_samples = 0;
        }
        let final_due = s.result_samples >= self.final_every;
        let fake = self.fake();
        if final_due && (self.finals || !fake.obeys_finals()) {
            self.flush_results(now, id, false);
        } else if interim_due && self.interims && fake.sends_interims() {
            self.send_result(now, id, false, false);
        }
    }

    /// A final transcript for the audio counted since the last one (at
    /// most `final_every` samples of it unless `last`; the rest carries).
    pub(super) fn flush_results(&mut self, now: Instant, id: SocketId, last: bool) {
        let every = self.final_every;
        let s = self.sockets.get_mut(&id).expect("exists");
        let total = s.result_samples;
        let take = if last { total } else { total.min(every) };
        s.result_samples = take;
        self.send_result(now, id, true, last);
        let s = self.sockets.get_mut(&id).expect("exists");
        let rest = total - take;
        match (s.result_from, rest) {
            (Some(from), r) if r > 0 => {
                s.result_from = Some(from + take);
                s.result_socket_from += take;
                s.result_stream_from += take;
                s.result_samples = r;
            }
            _ => {
                s.result_from = None;
                s.result_samples = 0;
            }
        }
    }

    /// A result for the audio counted since the last final. Its text names
    /// the stream positions (`audio A..B`); its times are this socket's
    /// audio time (Deepgram, Omi) or stream time (generic), as the real
    /// services count them.
    fn send_result(&mut self, now: Instant, id: SocketId, is_final: bool, last: bool) {
        let fake = self.fake();
        let s = &self.sockets[&id];
        let Some(from) = s.result_from else {
            return;
        };
        let n = s.result_samples;
        let clock_from = if fake.stream_clock() {
            s.result_stream_from
        } else {
            s.result_socket_from
        };
        // Interleaved channels: a second holds RATE frames of `channels`
        // samples each.
        let channels = self.channels.max(1);
        let per_sec = (RATE * channels) as f64;
        let (start, dur) = (clock_from as f64 / per_sec, n as f64 / per_sec);
        let (words, timed) = if self.words {
            // One word per 50 ms of stream that this result fully covers.
            let mut names = Vec::new();
            let mut timed = Vec::new();
            let mut w = from.div_ceil(800);
            while (w + 1) * 800 <= from + n {
                let ws = (clock_from + w * 800 - from) as f64 / RATE as f64;
                names.push(format!("w{w}"));
                timed.push(format!(
                    r#"{{"word":"w{w}","start":{ws},"end":{},"confidence":0.9}}"#,
                    ws + 0.05
                ));
                w += 1;
            }
            (names.join(" "), timed.join(","))
        } else {
            (format!("audio {from}..{}", from + n), String::new())
        };
        // One result per channel, each naming the (interleaved) positions.
        for channel in 0..channels {
            if self.only_channel.is_some_and(|c| c != channel) {
                continue;
            }
            let text = fake.result(&Heard {
                from,
                start,
                dur,
                words: words.clone(),
                timed: timed.clone(),
                is_final,
                last,
                channel,
                channels,
            });
            if is_final {
                fake.sent_final(self, id, start + dur, &text);
            }
            self.emit(now, Deliver::Text(id, text));
        }
    }
}
