//! Keepalive and liveness, from wall-clock deadlines.
//!
//! The original client checked liveness every 30 s against a 60 s threshold
//! and lost up to 90 s of audio to a silently dead connection. Here the
//! deadlines are checked on every input the session receives, so a laptop
//! waking from sleep or a throttled background tab is caught on the first
//! event after it, not on the next timer that may never fire on time.

use std::time::Duration;

use super::time::Instant;

/// When the server is expected to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// The server sends heartbeats regardless of our traffic (Omi's `ping`
    /// every 10 s): silence is suspicious at any time.
    Heartbeat,
    /// The server answers streamed audio (Deepgram results, generic acks):
    /// silence is suspicious only once audio went unanswered.
    AnswersAudio,
}

/// Why a connection was judged dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// No frame arrived for the threshold while one was expected.
    Silent(Duration),
    /// `bufferedAmount` did not drain for the threshold.
    Stalled(Duration),
    /// The caller was not run for longer than the threshold (sleep, frozen
    /// tab): keepalives were not sent, so the server has likely given up.
    Suspended(Duration),
    /// Heartbeats kept coming, but speech sent for the threshold got no
    /// transcript: the server's reader is stuck while its heartbeat task
    /// runs on (the kernel's socket buffers hide this from
    /// `bufferedAmount` for minutes).
    Unheard(Duration),
}

impl Stale {
    /// The reason for the close frame and the state event.
    pub fn describe(&self) -> String {
        match self {
            Stale::Silent(d) => ms("stale: no frame from the server for ", *d),
            Stale::Stalled(d) => ms("stale: send buffer did not drain for ", *d),
            Stale::Suspended(d) => ms("stale: page was suspended for ", *d),
            Stale::Unheard(d) => ms("stale: no transcript for speech sent ", *d),
        }
    }
}

/// Whether PCM16 little-endian audio reaches speech level: an RMS of at
/// least 1/50 of full scale (about -34 dBFS). Room noise and silence stay
/// far below it; a voice at a microphone is above it in most 100 ms chunks.
pub fn speech_level(pcm_le: &[u8]) -> bool {
    const RMS: i64 = 32_768 / 50;
    let n = (pcm_le.len() / 2) as i64;
    let energy: i64 = pcm_le
        .chunks_exact(2)
        .map(|b| i64::from(i16::from_le_bytes([b[0], b[1]])).pow(2))
        .sum();
    n > 0 && energy >= RMS * RMS * n
}

fn ms(what: &str, d: Duration) -> String {
    [what, &super::text::int(d.as_millis() as u64), " ms"].concat()
}

/// Liveness and keepalive bookkeeping for one open connection.
#[derive(Debug, Clone)]
pub struct Watchdog {
    expectation: Expectation,
    stale_after: Duration,
    stall_after: Duration,
    keepalive_interval: Duration,
    last_rx: Instant,
    last_tx: Instant,
    /// First audio sent since the last frame received.
    unanswered_since: Option<Instant>,
    /// Heartbeat servers: first speech-level audio sent since the last
    /// transcript (heartbeats prove the socket, not that audio is heard).
    unheard_since: Option<Instant>,
    /// The last time the send buffer was seen empty or draining (bytes
    /// left the machine since the previous sample).
    last_progress: Instant,
    /// Bytes that had left the machine at the last sample: handed to the
    /// socket minus `bufferedAmount`.
    left: u64,
    last_buffered: u64,
    /// The last time the caller ran us at all.
    last_seen: Instant,
}

impl Watchdog {
    /// Starts watching a connection that became ready at `now`.
    pub fn new(
        now: Instant,
        expectation: Expectation,
        stale_after: Duration,
        stall_after: Duration,
        keepalive_interval: Duration,
    ) -> Watchdog {
        Watchdog {
            expectation,
            stale_after,
            stall_after,
            keepalive_interval,
            last_rx: now,
            last_tx: now,
            unanswered_since: None,
            unheard_since: None,
            last_progress: now,
            left: 0,
            last_buffered: 0,
            last_seen: now,
        }
    }

    /// A frame arrived.
    pub fn on_rx(&mut self, now: Instant) {
        self.last_rx = now;
        self.unanswered_since = None;
    }

    /// Audio was sent; `loud`: some of it at speech level, which a
    /// transcribing server answers with a transcript.
    pub fn on_audio_sent(&mut self, now: Instant, loud: bool) {
        self.last_tx = now;
        self.unanswered_since.get_or_insert(now);
        if loud && self.expectation == Expectation::Heartbeat {
            self.unheard_since.get_or_insert(now);
        }
    }

    /// A transcript (or result) arrived: the server hears the audio.
    pub fn on_heard(&mut self) {
        self.unheard_since = None;
    }

    /// A keepalive (or any non-audio frame) was sent.
    pub fn on_other_sent(&mut self, now: Instant) {
        self.last_tx = now;
    }

    /// A `bufferedAmount` sample (`buffered`), taken when `handed` bytes
    /// had been handed to the socket in all.
    ///
    /// A stall is measured by whether bytes LEAVE, never by the value
    /// alone: a sample taken right after a send reads one chunk even on a
    /// link that drains completely between sends (the browser shell samples
    /// right after sending), so equal non-zero samples are progress as long
    /// as what left (`handed - buffered`) grows.
    pub fn on_buffered(&mut self, now: Instant, buffered: u64, handed: u64) {
        let left = handed.saturating_sub(buffered);
        // Empty, draining, or empty at the last look (it filled since, at
        // an unknown moment): the stall window starts now.
        if buffered == 0 || left > self.left || self.last_buffered == 0 {
            self.last_progress = now;
        }
        self.left = self.left.max(left);
        self.last_buffered = buffered;
    }

    /// Forgets what happened before `now`: a connection that survived a
    /// freeze, a sleep or an offline spell starts a fresh liveness window
    /// (the answers it owed could not be received meanwhile).
    pub fn rebase(&mut self, now: Instant) {
        self.last_rx = now;
        self.last_seen = now;
        self.last_progress = now;
        self.unanswered_since = self.unanswered_since.map(|_| now);
        self.unheard_since = self.unheard_since.map(|_| now);
    }

    /// Since when the send buffer has not drained, if it holds bytes.
    fn stall_since(&self) -> Option<Instant> {
        (self.last_buffered > 0).then_some(self.last_progress)
    }

    /// Checks every deadline against `now`; call on every input.
    /// `timers_run`: the caller keeps a timer armed at least every keepalive
    /// interval, so a long gap between calls means the page was suspended.
    pub fn check(&mut self, now: Instant, timers_run: bool) -> Option<Stale> {
        let gap = now.saturating_duration_since(self.last_seen);
        self.last_seen = now;
        // Timers fire at least every keepalive interval while open, so a gap
        // of two (or of a threshold, if shorter) means the page did not
        // run: sleep, a frozen or heavily throttled tab. Nothing could be
        // received or sampled meanwhile, so no other deadline is judged
        // across it.
        let suspended = self
            .stale_after
            .min(self.stall_after)
            .min(self.keepalive_interval * 2);
        if timers_run && gap >= suspended {
            return Some(Stale::Suspended(gap));
        }
        // A shorter spell in which the page did not run (a timer is armed
        // for every keepalive interval at the latest) took no samples: it
        // is no evidence of a stall, and does not count toward one.
        if gap > self.keepalive_interval + Duration::from_secs(1) {
            self.last_progress = (self.last_progress + gap).min(now);
        }
        let silent_since = match self.expectation {
            Expectation::Heartbeat => Some(self.last_rx),
            Expectation::AnswersAudio => self.unanswered_since.map(|t| t.max(self.last_rx)),
        };
        if let Some(since) = silent_since {
            let silent = now.saturating_duration_since(since);
            if silent >= self.stale_after {
                return Some(Stale::Silent(silent));
            }
        }
        if let Some(since) = self.stall_since() {
            let stalled = now.saturating_duration_since(since);
            if stalled >= self.stall_after {
                return Some(Stale::Stalled(stalled));
            }
        }
        if let Some(since) = self.unheard_since {
            let unheard = now.saturating_duration_since(since);
            if unheard >= self.stale_after {
                return Some(Stale::Unheard(unheard));
            }
        }
        None
    }

    /// Whether a keepalive should go out now (no frame sent for the interval).
    pub fn keepalive_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_tx) >= self.keepalive_interval
    }

    /// The earliest instant at which `check` or `keepalive_due` may change.
    pub fn next_deadline(&self) -> Instant {
        let keepalive = self.last_tx + self.keepalive_interval;
        self.liveness_deadline()
            .map_or(keepalive, |t| t.min(keepalive))
    }

    /// The earliest instant at which `check` may change, ignoring the
    /// keepalive: for a connection on which no keepalive will be sent any
    /// more (finalize sent), whose timer must not keep firing at a
    /// keepalive deadline that has passed.
    pub fn liveness_deadline(&self) -> Option<Instant> {
        let silent_since = match self.expectation {
            Expectation::Heartbeat => Some(self.last_rx),
            Expectation::AnswersAudio => self.unanswered_since.map(|s| s.max(self.last_rx)),
        };
        let silent = silent_since.map(|s| s + self.stale_after);
        let stalled = self.stall_since().map(|s| s + self.stall_after);
        let unheard = self.unheard_since.map(|s| s + self.stale_after);
        [silent, stalled, unheard].into_iter().flatten().min()
    }

    /// The last `bufferedAmount` sample.
    pub fn buffered(&self) -> u64 {
        self.last_buffered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn dog(e: Expectation) -> Watchdog {
        Watchdog::new(
            t(0),
            e,
            Duration::from_secs(25),
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn unanswered_audio_becomes_stale_after_threshold_only() {
        let mut w = dog(Expectation::AnswersAudio);
        // Idle with keepalives: the server owes us nothing.
        for s in (0..100).step_by(4) {
            assert_eq!(w.check(t(s * 1000), true), None);
            w.on_other_sent(t(s * 1000));
        }
        w.on_audio_sent(t(100_000), true);
        for s in 100..125 {
            w.on_audio_sent(t(s * 1000), true);
            assert_eq!(w.check(t(s * 1000), true), None, "at {s} s");
        }
        assert_eq!(w.next_deadline(), t(124_000 + 5_000).min(t(125_000)));
        assert!(matches!(w.check(t(125_000), true), Some(Stale::Silent(_))));
    }

    #[test]
    fn heartbeat_silence_is_stale_even_without_audio() {
        let mut w = dog(Expectation::Heartbeat);
        for s in 0..10 {
            w.on_other_sent(t(s * 2400));
            assert_eq!(w.check(t(s * 2400), true), None);
        }
        w.on_rx(t(24_000));
        // The keepalive timer runs every 4 s: silence, not a suspended page.
        for ms in (24_000..=48_000).step_by(4_000) {
            assert_eq!(w.check(t(ms), true), None, "at {ms}");
        }
        assert!(matches!(w.check(t(49_000), true), Some(Stale::Silent(_))));
    }

    /// Pings every 10 s prove the socket delivers, not that speech is
    /// heard: speech unanswered by any transcript for the threshold is
    /// stale, a transcript restarts the window, and quiet audio never
    /// starts one.
    #[test]
    fn speech_without_transcripts_is_stale_under_heartbeats() {
        let mut w = dog(Expectation::Heartbeat);
        let run = |w: &mut Watchdog, from: u64, to: u64, loud: bool| {
            let mut stale = None;
            for ms in (from..to).step_by(100) {
                w.on_audio_sent(t(ms), loud);
                if ms % 10_000 == 0 {
                    w.on_rx(t(ms));
                }
                stale = stale.or(w.check(t(ms), true).map(|s| (ms, s)));
            }
            stale
        };
        assert_eq!(run(&mut w, 0, 60_000, false), None, "quiet audio");
        w.on_heard();
        let (at, why) = run(&mut w, 60_000, 120_000, true).expect("stale");
        assert_eq!((at, why), (85_000, Stale::Unheard(Duration::from_secs(25))));
        let mut w = dog(Expectation::Heartbeat);
        for k in 0..10 {
            assert_eq!(run(&mut w, k * 20_000, (k + 1) * 20_000, true), None);
            w.on_heard();
        }
        assert!(speech_level(&[0x00, 0x10, 0x00, 0xF0]));
        assert!(
            !speech_level(&[0x80, 0x02, 0x80, 0xFD]),
            "±640: below -34 dBFS"
        );
        assert!(!speech_level(&[]));
    }

    #[test]
    fn laptop_sleep_is_detected_on_first_event_after_wake() {
        let mut w = dog(Expectation::AnswersAudio);
        assert_eq!(w.check(t(1_000), true), None);
        assert!(matches!(
            w.check(t(1_000 + 40 * 60_000), true),
            Some(Stale::Suspended(_))
        ));
    }

    #[test]
    fn send_buffer_that_never_drains_is_a_stall() {
        let mut w = dog(Expectation::AnswersAudio);
        // 3200 bytes handed, none left.
        w.on_buffered(t(1_000), 3_200, 3_200);
        w.on_rx(t(2_000));
        w.on_buffered(t(5_000), 6_400, 6_400);
        assert_eq!(w.check(t(5_000), true), None);
        // 2400 bytes left: draining, the window restarts.
        w.on_buffered(t(8_000), 4_000, 6_400);
        w.on_rx(t(9_000));
        // Sampled on every timer, nothing leaves from now on.
        for ms in (9_000..=17_000).step_by(4_000) {
            w.on_buffered(t(ms), 4_000, 6_400);
            assert_eq!(w.check(t(ms), true), None, "at {ms}");
        }
        w.on_rx(t(17_500));
        w.on_buffered(t(18_000), 4_000, 6_400);
        assert!(matches!(w.check(t(18_000), true), Some(Stale::Stalled(_))));
    }

    /// A page that did not run took no samples: a buffer last seen full
    /// before a 9 s pause is not a stall (it drained meanwhile, as the
    /// first sample after shows), and a pause of two keepalive intervals
    /// is a suspended page, put on probation, not a dead link.
    #[test]
    fn a_paused_page_is_not_a_stalled_link() {
        let mut w = dog(Expectation::AnswersAudio);
        w.on_buffered(t(1_000), 3_200, 3_200);
        w.on_rx(t(1_000));
        assert_eq!(w.check(t(1_000), true), None);
        assert_eq!(w.check(t(10_900), true), None, "9.9 s pause");
        // The next input, before any sample: 10 s since the buffer was
        // last seen moving, 0.15 s of them with the page running.
        assert_eq!(w.check(t(11_050), true), None);
        w.on_buffered(t(11_050), 3_200, 6_400);
        assert!(matches!(
            w.check(t(21_100), true),
            Some(Stale::Suspended(_))
        ));
    }

    /// Before: the shell samples `bufferedAmount` right after each send, so
    /// a healthy link that drains fully every 100 ms read 3200 on every
    /// sample, and equal non-zero samples counted as "not draining": the
    /// client dropped its own healthy connection every 10-20 s.
    #[test]
    fn a_buffer_sampled_right_after_each_send_of_a_draining_link_is_no_stall() {
        let mut w = dog(Expectation::AnswersAudio);
        let mut handed = 0;
        for i in 1..=600u64 {
            handed += 3_200;
            let now = t(i * 100);
            w.on_audio_sent(now, true);
            w.on_buffered(now, 3_200, handed);
            if i % 10 == 0 {
                w.on_rx(now);
            }
            assert_eq!(w.check(now, true), None, "at {} ms", i * 100);
        }
    }
}
