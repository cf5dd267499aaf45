//! Speech engines. An engine turns PCM16 into transcripts; each connection
//! gets its own worker thread, because pocketsphinx calls block for tens of
//! milliseconds and must not stall the async runtime. Multi-channel audio
//! is either mixed down into one recogniser or, with
//! [`EngineSpec::per_channel`], heard by one recogniser per channel in that
//! thread, each result tagged with its channel.

pub mod counter;
pub mod meter;
pub mod pocketsphinx;
mod recognizer;

pub use recognizer::{RecEvent, Recognizer, Transcript, Word};

use std::sync::Arc;
use std::thread;

use tokio::sync::mpsc;

/// Which engine a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Energy-based speech activity; transcripts are labelled `[meter] ...`.
    Meter,
    /// Offline recognition through the system libpocketsphinx.
    Pocketsphinx,
    /// Decodes self-describing test audio and names the stream positions
    /// it received (`pos 0-16000`), for the client's fault matrix.
    Counter,
}

impl EngineKind {
    /// pocketsphinx when the crate was built with it, else meter.
    pub fn default_kind() -> EngineKind {
        if pocketsphinx::AVAILABLE {
            EngineKind::Pocketsphinx
        } else {
            EngineKind::Meter
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Meter => "meter",
            EngineKind::Pocketsphinx => "pocketsphinx",
            EngineKind::Counter => "counter",
        }
    }

    /// Parses an engine name, refusing pocketsphinx when it is not built in.
    pub fn parse(s: &str) -> Result<EngineKind, String> {
        match s {
            "meter" => Ok(EngineKind::Meter),
            "counter" => Ok(EngineKind::Counter),
            "pocketsphinx" if pocketsphinx::AVAILABLE => Ok(EngineKind::Pocketsphinx),
            "pocketsphinx" => Err(pocketsphinx::UNAVAILABLE.into()),
            other => Err(format!(
                "unknown engine {other:?} (expected meter, pocketsphinx or counter)"
            )),
        }
    }
}

/// Per-connection engine parameters.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub kind: EngineKind,
    /// Rate and channel count of the incoming PCM16 (interleaved frames:
    /// one sample per channel).
    pub sample_rate: u32,
    pub channels: u16,
    /// With more than one channel: transcribe each channel on its own (one
    /// recogniser per channel, every result carrying its channel), as
    /// Deepgram's `multichannel=true` does; otherwise the channels are
    /// mixed down (averaged) into one recogniser, channel 0.
    pub per_channel: bool,
    /// JSGF grammar text (pocketsphinx only).
    pub grammar: Option<Arc<str>>,
    /// Stream position, in input frames, of the first frame this worker
    /// will see (the generic endpoint starts a stream's worker in the
    /// middle when the stream resumes). Times are `(base_frames + frames) /
    /// sample_rate`, so two workers meeting at a frame give it the same
    /// time, bit for bit.
    pub base_frames: u64,
    /// Emit [`EngineOut::UtteranceEnd`] once this many milliseconds of audio
    /// passed after the last word without a new one (Deepgram's
    /// `utterance_end_ms`).
    pub utterance_end_ms: Option<u32>,
}

/// Input to an engine worker.
#[derive(Debug)]
pub enum EngineIn {
    /// PCM16 little-endian bytes (any length; odd bytes carry over).
    Audio(Vec<u8>),
    /// Finalize everything received so far; answered with `Flushed` after
    /// the finals, the last of which ends at the last frame received.
    Flush,
    /// This many bytes of the stream will never come (the client dropped
    /// them and said so with `seek`): the clock moves on past them, so the
    /// times of what follows stay stream time.
    Skip(u64),
}

/// Output of an engine worker.
#[derive(Debug, Clone)]
pub enum EngineOut {
    Transcript(Transcript),
    /// Speech started at `at` (stream seconds) on `channel`.
    SpeechStarted {
        at: f64,
        channel: u16,
    },
    /// `utterance_end_ms` of audio passed since the last word on `channel`,
    /// which ended at `last_word_end` (stream seconds).
    UtteranceEnd {
        last_word_end: f64,
        channel: u16,
    },
    /// Every final for the audio sent before the flush has been emitted
    /// (on every channel: one `Flushed` per flush).
    Flushed,
    /// The engine could not start (e.g. the model failed to load).
    Failed(String),
}

/// A running engine worker. Dropping the sender ends the thread.
pub struct EngineHandle {
    pub tx: mpsc::UnboundedSender<EngineIn>,
    pub rx: mpsc::UnboundedReceiver<EngineOut>,
}

/// Starts a worker thread for one connection. The recogniser is created
/// lazily on the first audio, so connections that never send audio (most
/// handshake and fault tests) cost no model load.
pub fn spawn(spec: EngineSpec) -> EngineHandle {
    let (in_tx, mut in_rx) = mpsc::unbounded_channel::<EngineIn>();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<EngineOut>();
    let name = format!("engine-{}", spec.kind.name());
    let worker = move || {
        // One worker per channel when asked (each picks its channel out of
        // the interleaved frames), else one for the mix.
        let mut workers: Vec<Worker> = if spec.per_channel && spec.channels > 1 {
            (0..spec.channels)
                .map(|c| Worker::new(spec.clone()).on_channel(c))
                .collect()
        } else {
            vec![Worker::new(spec)]
        };
        while let Some(msg) = in_rx.blocking_recv() {
            let mut out = Vec::new();
            let flushed = matches!(msg, EngineIn::Flush);
            let handled = workers
                .iter_mut()
                .try_for_each(|w| w.handle(&msg, &mut out));
            if let Err(e) = handled {
                let _ = out_tx.send(EngineOut::Failed(e));
                // Keep answering flushes so sessions never wait forever.
                while let Some(m) = in_rx.blocking_recv() {
                    if matches!(m, EngineIn::Flush) {
                        let _ = out_tx.send(EngineOut::Flushed);
                    }
                }
                return;
            }
            for o in out {
                let _ = out_tx.send(o);
            }
            if flushed {
                let _ = out_tx.send(EngineOut::Flushed);
            }
        }
    };
    if let Err(e) = thread::Builder::new().name(name).spawn(worker) {
        // Thread exhaustion: report it instead of panicking the session.
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(EngineOut::Failed(format!(
            "cannot start engine thread: {e}"
        )));
        let (dead_tx, _) = mpsc::unbounded_channel();
        return EngineHandle { tx: dead_tx, rx };
    }
    EngineHandle {
        tx: in_tx,
        rx: out_rx,
    }
}

/// How a recogniser final is placed on the tiling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Ends where the recogniser says (clamped into what was received).
    AsReported,
    /// Produced by a flush (`from_finalize`), ending where reported.
    Flush,
    /// The flush's last final: extended to the last frame received.
    FlushLast,
    /// Cut by a gap in the stream (not asked for: not `from_finalize`).
    Cut,
    /// The last final before a gap: extended to where the gap starts.
    CutLast,
}

/// Adapts the incoming stream (any rate, any channel count, byte frames that
/// may split samples) to a recogniser, and turns what the recogniser says
/// into results that clients can confirm audio by:
///
/// - **Finals tile the stream.** All times are kept as integer input frames.
///   `final_end` is where the last final ended (0 at first); every final
///   covers `[final_end, its end]` and moves `final_end` there. A
///   recogniser's own utterance boundaries are only advice: a final's start
///   is moved back to `final_end` (covering the pause before it), and an end
///   before `final_end` or beyond the audio received is clamped. When speech
///   starts later than `final_end`, an empty final first covers the silence
///   up to it, so speech finals start where the speech does.
/// - **A result at least once per second of audio** (clients' liveness
///   watchdogs rely on it, as they do with the real Deepgram): outside an
///   utterance an empty final closes the gap, so silence is confirmed too;
///   inside one the latest interim is repeated, extended to the current
///   point, since the words of that audio are still to come.
/// - **Interims** cover `[final_end, current point]`.
/// - **A flush finalizes everything received:** the recogniser's pending
///   finals, the last of them extended to the last frame received (or an
///   empty final there), all `from_finalize`.
/// - **A gap** ([`EngineIn::Skip`]) finalizes what came before it the same
///   way (not `from_finalize`), then moves the clock on by the gap and
///   covers it with an empty final: the recogniser never hears the gap, so
///   its own times are shifted by the frames skipped so far.
struct Worker {
    spec: EngineSpec,
    /// The channel this worker hears; `None`: all of them, mixed down.
    channel: Option<u16>,
    rec: Option<Box<dyn Recognizer>>,
    carry: Vec<u8>,
    /// Input frames (one sample per channel) seen so far, gaps included.
    frames_in: u64,
    /// Frames of gaps ([`EngineIn::Skip`]): in `frames_in`, never given to
    /// the recogniser, whose times are that much behind the stream's.
    skipped: u64,
    /// Where the last final ended, in input frames: the next final starts here.
    final_end: u64,
    /// Input frame count at the last emitted result.
    last_result_frame: u64,
    /// The latest interim of the utterance in progress, re-sent (extended)
    /// by the once-per-second rule.
    interim: Option<Transcript>,
    /// End of the last word in any result (input frames), until
    /// `UtteranceEnd` reports it.
    last_word_end: Option<u64>,
    /// Fractional resampling position.
    resample_pos: f64,
    last_sample: i16,
}

impl Worker {
    fn new(spec: EngineSpec) -> Worker {
        Worker {
            spec,
            channel: None,
            rec: None,
            carry: Vec::new(),
            frames_in: 0,
            skipped: 0,
            final_end: 0,
            last_result_frame: 0,
            interim: None,
            last_word_end: None,
            resample_pos: 0.0,
            last_sample: 0,
        }
    }

    /// Hears only channel `c` of the interleaved frames; results say `c`.
    fn on_channel(mut self, c: u16) -> Worker {
        self.channel = Some(c);
        self
    }

    /// The channel results are tagged with.
    fn channel(&self) -> u16 {
        self.channel.unwrap_or(0)
    }

    fn rate(&self) -> u64 {
        u64::from(self.spec.sample_rate.max(1))
    }

    /// Stream seconds of an input frame count: the only place times are made.
    fn secs(&self, frames: u64) -> f64 {
        (self.spec.base_frames + frames) as f64 / self.rate() as f64
    }

    /// The input frame nearest to a recogniser time, within what was received.
    fn frame_of(&self, rec_secs: f64) -> u64 {
        let f = (rec_secs.max(0.0) * self.rate() as f64).round() as u64 + self.skipped;
        f.min(self.frames_in)
    }

    fn recognizer(&mut self) -> Result<&mut Box<dyn Recognizer>, String> {
        if self.rec.is_none() {
            let rec: Box<dyn Recognizer> = match self.spec.kind {
                EngineKind::Meter => Box::new(meter::Meter::new(self.spec.sample_rate)),
                EngineKind::Counter => Box::new(counter::Counter::new(self.spec.sample_rate)),
                EngineKind::Pocketsphinx => pocketsphinx::recognizer(self.spec.grammar.clone())?,
            };
            self.rec = Some(rec);
        }
        Ok(self.rec.as_mut().expect("recognizer was just created"))
    }

    fn handle(&mut self, msg: &EngineIn, out: &mut Vec<EngineOut>) -> Result<(), String> {
        match msg {
            EngineIn::Audio(bytes) => self.audio(bytes, out)?,
            EngineIn::Flush => self.flush(out),
            EngineIn::Skip(bytes) => self.skip(*bytes, out),
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<EngineOut>) {
        if self.rec.is_none() {
            // No audio ever arrived: nothing to finalize.
            return;
        }
        if !self.finalize(Place::Flush, Place::FlushLast, out) {
            // Silence (or nothing new) since the last final: an empty
            // final still answers the flush and ends at the last frame.
            let mut t = self.tile(None, self.frames_in, true);
            t.from_finalize = true;
            self.push(t, out);
        }
    }

    /// Ends the recogniser's utterance and places its finals, the last one
    /// extended to the last frame received. False when it had none.
    fn finalize(&mut self, each: Place, last: Place, out: &mut Vec<EngineOut>) -> bool {
        let mut raw = Vec::new();
        if let Some(rec) = self.rec.as_mut() {
            rec.flush(&mut raw);
        }
        let last_final = raw
            .iter()
            .rposition(|e| matches!(e, RecEvent::Transcript(t) if t.is_final));
        for (i, ev) in raw.into_iter().enumerate() {
            let place = if Some(i) == last_final { last } else { each };
            self.place(ev, place, out);
        }
        self.interim = None;
        self.last_result_frame = self.frames_in;
        last_final.is_some()
    }

    /// A gap of `bytes` in the stream: what came before is finalized (the
    /// recogniser will never hear its continuation), the clock moves on,
    /// and an empty final covers the gap, so finals still tile and the
    /// times of what follows are stream time.
    fn skip(&mut self, bytes: u64, out: &mut Vec<EngineOut>) {
        if !self.finalize(Place::Cut, Place::CutLast, out) && self.frames_in > self.final_end {
            let t = self.tile(None, self.frames_in, true);
            self.push(t, out);
        }
        // A sample split by the gap is completed by it: the bytes that
        // follow start where the gap ends.
        let frame = 2 * u64::from(self.spec.channels.max(1));
        let total = self.carry.len() as u64 + bytes;
        self.carry = vec![0; (total % frame) as usize];
        let frames = total / frame;
        self.frames_in += frames;
        self.skipped += frames;
        if frames > 0 {
            let t = self.tile(None, self.frames_in, true);
            self.push(t, out);
        }
    }

    fn audio(&mut self, bytes: &[u8], out: &mut Vec<EngineOut>) -> Result<(), String> {
        let channels = usize::from(self.spec.channels.max(1));
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        // Frames may split a sample (or a multi-channel frame): keep the
        // incomplete tail for the next message.
        let whole = data.len() - data.len() % (2 * channels);
        self.carry = data.split_off(whole);
        let sample = |f: &[u8], c: usize| i32::from(i16::from_le_bytes([f[2 * c], f[2 * c + 1]]));
        let mono: Vec<i16> = data
            .chunks_exact(2 * channels)
            .map(|f| match self.channel {
                Some(c) => sample(f, usize::from(c)) as i16,
                // The mix: the mean of the channels, which cannot clip.
                None => ((0..channels).map(|c| sample(f, c)).sum::<i32>() / channels as i32) as i16,
            })
            .collect();
        self.frames_in += mono.len() as u64;
        let target = self.recognizer()?.sample_rate();
        let samples = if target == self.spec.sample_rate {
            mono
        } else {
            self.resample(&mono, target)
        };
        let mut raw = Vec::new();
        self.recognizer()?.feed(&samples, &mut raw);
        for ev in raw {
            self.place(ev, Place::AsReported, out);
        }
        if self.frames_in - self.last_result_frame >= self.rate() {
            let in_utterance = self.rec.as_ref().is_some_and(|r| r.in_utterance());
            match self.interim.clone() {
                // Same words, longer span: the utterance goes on.
                Some(mut t) if in_utterance => {
                    t.end = self.secs(self.frames_in);
                    self.push(t, out);
                }
                // Speech without words yet: nothing may be finalized.
                None if in_utterance => {
                    let t = self.tile(None, self.frames_in, false);
                    self.push(t, out);
                }
                _ => {
                    self.interim = None;
                    let t = self.tile(None, self.frames_in, true);
                    self.push(t, out);
                }
            }
        }
        self.utterance_end(out);
        Ok(())
    }

    /// `UtteranceEnd` once `utterance_end_ms` of audio passed after the
    /// last word with no newer word (Deepgram's documented semantics: a gap
    /// in the word timings of interim and final results).
    fn utterance_end(&mut self, out: &mut Vec<EngineOut>) {
        let (Some(ms), Some(last)) = (self.spec.utterance_end_ms, self.last_word_end) else {
            return;
        };
        let gap = u64::from(ms) * self.rate() / 1000;
        if self.frames_in >= last + gap {
            out.push(EngineOut::UtteranceEnd {
                last_word_end: self.secs(last),
                channel: self.channel(),
            });
            self.last_word_end = None;
        }
    }

    /// Puts one recogniser event on the tiling.
    fn place(&mut self, ev: RecEvent, place: Place, out: &mut Vec<EngineOut>) {
        match ev {
            RecEvent::SpeechStarted(at) => {
                let f = self.frame_of(at);
                if f > self.final_end && place == Place::AsReported {
                    // The pause before the speech gets its own empty final,
                    // so the speech's final starts where the speech does.
                    let t = self.tile(None, f, true);
                    self.push(t, out);
                }
                out.push(EngineOut::SpeechStarted {
                    at: self.secs(f),
                    channel: self.channel(),
                });
            }
            RecEvent::Transcript(src) if src.is_final => {
                let end = match place {
                    Place::FlushLast | Place::CutLast => self.frames_in,
                    _ => self.frame_of(src.end).max(self.final_end),
                };
                let mut t = self.tile(Some(&src), end, true);
                t.from_finalize = matches!(place, Place::Flush | Place::FlushLast);
                self.interim = None;
                self.push(t, out);
            }
            RecEvent::Transcript(src) => {
                let end = self.frame_of(src.end).max(self.final_end);
                let t = self.tile(Some(&src), end, false);
                self.interim = Some(t.clone());
                self.push(t, out);
            }
        }
    }

    /// A result covering `[final_end, end]` with `src`'s text and words (or
    /// empty), moving `final_end` when it is a final. Word times are kept
    /// where the recogniser put them, clamped into the span.
    fn tile(&mut self, src: Option<&Transcript>, end: u64, is_final: bool) -> Transcript {
        let (s, e) = (self.final_end, end.max(self.final_end));
        let mut t = Transcript::new(String::new(), self.secs(s), self.secs(e), is_final, 0.0);
        if let Some(src) = src {
            t.text = src.text.clone();
            t.confidence = src.confidence;
            t.speech_final = src.speech_final && is_final;
            let mut last_word_end = None;
            t.words = src
                .words
                .iter()
                .map(|w| {
                    let ws = self.frame_of(w.start).clamp(s, e);
                    let we = self.frame_of(w.end).clamp(ws, e);
                    last_word_end = Some(we);
                    Word {
                        word: w.word.clone(),
                        start: self.secs(ws),
                        end: self.secs(we),
                        confidence: w.confidence,
                    }
                })
                .collect();
            if last_word_end.is_some() {
                self.last_word_end = last_word_end;
            }
        }
        if is_final {
            self.final_end = e;
        }
        t
    }

    fn push(&mut self, mut t: Transcript, out: &mut Vec<EngineOut>) {
        self.last_result_frame = self.frames_in;
        t.channel = self.channel();
        out.push(EngineOut::Transcript(t));
    }

    /// Linear-interpolation resampling: good enough for a development
    /// recogniser, and it keeps the crate free of DSP dependencies.
    fn resample(&mut self, input: &[i16], target: u32) -> Vec<i16> {
        if input.is_empty() {
            return Vec::new();
        }
        let step = f64::from(self.spec.sample_rate) / f64::from(target);
        let mut out = Vec::with_capacity((input.len() as f64 / step) as usize + 1);
        let mut pos = self.resample_pos;
        // Position -1 is the previous chunk's last sample, so interpolation
        // across a chunk boundary uses real neighbours.
        while pos < input.len() as f64 - 1.0 {
            let i = pos.floor() as isize;
            let frac = pos - i as f64;
            let a = if i < 0 {
                self.last_sample
            } else {
                input[i as usize]
            };
            let b = input[(i + 1) as usize];
            out.push((f64::from(a) + (f64::from(b) - f64::from(a)) * frac) as i16);
            pos += step;
        }
        self.resample_pos = pos - input.len() as f64;
        if let Some(&l) = input.last() {
            self.last_sample = l;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: u32, channels: u16) -> EngineSpec {
        EngineSpec {
            kind: EngineKind::Meter,
            sample_rate: rate,
            channels,
            per_channel: false,
            grammar: None,
            base_frames: 0,
            utterance_end_ms: None,
        }
    }

    /// PCM16 bytes: a loud tone (`amp` > 0) or silence.
    fn tone(secs: f64, amp: f64, rate: u32) -> Vec<u8> {
        (0..(f64::from(rate) * secs) as usize)
            .flat_map(|i| (((i as f64 * 0.2).sin() * amp * 32767.0) as i16).to_le_bytes())
            .collect()
    }

    fn feed(w: &mut Worker, bytes: &[u8], chunk: usize, out: &mut Vec<EngineOut>) {
        for c in bytes.chunks(chunk) {
            w.audio(c, out).unwrap();
        }
    }

    fn transcripts(out: &[EngineOut]) -> Vec<&Transcript> {
        out.iter()
            .filter_map(|o| match o {
                EngineOut::Transcript(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// Every final starts exactly where the previous one ended (the first
    /// at 0), none has negative length, and interims start at the last
    /// final's end. Returns the finals.
    fn assert_tiles(out: &[EngineOut]) -> Vec<&Transcript> {
        let mut end = 0.0;
        let mut finals = Vec::new();
        for t in transcripts(out) {
            assert_eq!(t.start, end, "{t:?} does not start at {end} in {out:?}");
            assert!(t.end >= t.start, "{t:?}");
            for w in &t.words {
                assert!(
                    t.start <= w.start && w.start <= w.end && w.end <= t.end,
                    "{t:?}"
                );
            }
            if t.is_final {
                end = t.end;
                finals.push(t);
            }
        }
        finals
    }

    #[test]
    fn frames_split_mid_sample_are_reassembled() {
        let mut w = Worker::new(spec(16_000, 2));
        let bytes: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        for piece in bytes.chunks(7) {
            w.audio(piece, &mut out).unwrap();
        }
        assert_eq!(
            w.frames_in, 1000,
            "4000 bytes of stereo PCM16 are 1000 frames"
        );
    }

    #[test]
    fn a_result_comes_at_least_every_second_of_audio() {
        let mut w = Worker::new(spec(48_000, 1));
        let mut out = Vec::new();
        for _ in 0..30 {
            w.audio(&vec![0u8; 9_600], &mut out).unwrap(); // 100 ms
        }
        let finals = assert_tiles(&out);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(finals.len(), 3, "silence is confirmed by empty finals");
        assert!(finals.iter().all(|t| t.text.is_empty()));
        assert_eq!(finals[2].end, 3.0);
    }

    /// The meter's empty final used to cover 0-1.0 s while the speech final
    /// started at 0.52 s, and the audio after the last final was never
    /// finalized. Now: silence, speech, silence tile the stream, and the
    /// flush ends at the last frame received.
    #[test]
    fn meter_finals_tile_the_stream_and_a_flush_ends_at_the_last_frame() {
        let mut w = Worker::new(spec(16_000, 1));
        let mut out = Vec::new();
        let mut audio = tone(0.52, 0.0, 16_000);
        audio.extend(tone(1.2, 0.5, 16_000));
        audio.extend(tone(2.3, 0.0, 16_000));
        audio.extend(tone(0.41, 0.5, 16_000));
        feed(&mut w, &audio, 3200, &mut out);
        w.flush(&mut out);
        let finals = assert_tiles(&out);
        let last = finals.last().unwrap();
        assert_eq!(last.end, (audio.len() / 2) as f64 / 16_000.0);
        assert!(last.from_finalize && last.text.starts_with("[meter] speech 0.4s"));
        assert!(finals[..finals.len() - 1].iter().all(|t| !t.from_finalize));
        // The pause before the speech has its own empty final, so the
        // speech's final starts where the speech does.
        assert_eq!(finals[0].text, "");
        assert!((finals[0].end - 0.52).abs() < 0.021, "{:?}", finals[0]);
        let speech = finals.iter().find(|t| !t.text.is_empty()).unwrap();
        assert_eq!(speech.start, finals[0].end);
        assert!(speech.text.starts_with("[meter] speech 1.2s"), "{speech:?}");
        let starts: Vec<f64> = out
            .iter()
            .filter_map(|o| match o {
                EngineOut::SpeechStarted { at, .. } => Some(*at),
                _ => None,
            })
            .collect();
        assert_eq!(starts.len(), 2, "{out:?}");
        assert_eq!(starts[0], speech.start);
    }

    #[test]
    fn a_flush_with_nothing_new_still_answers_with_a_final_at_the_end() {
        let mut w = Worker::new(spec(16_000, 1));
        let mut out = Vec::new();
        w.flush(&mut out);
        assert!(out.is_empty(), "no audio, nothing to finalize: {out:?}");
        feed(&mut w, &tone(1.0, 0.0, 16_000), 3200, &mut out);
        w.flush(&mut out);
        w.flush(&mut out);
        let finals = assert_tiles(&out);
        let n = finals.len();
        assert!(finals[n - 1].from_finalize && finals[n - 2].from_finalize);
        assert_eq!(finals[n - 1].start, 1.0);
        assert_eq!(finals[n - 1].end, 1.0);
        // Audio after a Finalize goes on tiling from there.
        feed(&mut w, &tone(0.3, 0.5, 16_000), 3200, &mut out);
        w.flush(&mut out);
        let finals = assert_tiles(&out);
        assert_eq!(finals.last().unwrap().end, 1.3);
    }

    /// Resampled engines (pocketsphinx at 16 kHz under 48 kHz input) report
    /// times that do not fall on input frames; the tiling is still exact.
    #[test]
    fn tiling_is_exact_at_any_input_rate() {
        for rate in [8_000, 44_100, 48_000] {
            let mut w = Worker::new(spec(rate, 1));
            let mut out = Vec::new();
            let mut audio = tone(0.7, 0.0, rate);
            audio.extend(tone(1.9, 0.5, rate));
            audio.extend(tone(1.3, 0.0, rate));
            feed(&mut w, &audio, 4410, &mut out);
            w.flush(&mut out);
            let finals = assert_tiles(&out);
            let frames = (audio.len() / 2) as u64;
            assert_eq!(finals.last().unwrap().end, w.secs(frames), "{rate}");
        }
    }

    #[test]
    fn utterance_end_comes_once_the_gap_after_the_last_word_is_long_enough() {
        let mut s = spec(16_000, 1);
        s.utterance_end_ms = Some(1000);
        let mut w = Worker::new(s);
        let mut out = Vec::new();
        let mut audio = tone(0.5, 0.0, 16_000);
        audio.extend(tone(0.6, 0.5, 16_000));
        feed(&mut w, &audio, 1600, &mut out);
        let before_gap = out.len();
        feed(&mut w, &tone(0.9, 0.0, 16_000), 1600, &mut out);
        let ends = |out: &[EngineOut]| -> Vec<f64> {
            out.iter()
                .filter_map(|o| match o {
                    EngineOut::UtteranceEnd { last_word_end, .. } => Some(*last_word_end),
                    _ => None,
                })
                .collect()
        };
        assert!(ends(&out).is_empty(), "0.9 s after the words is too early");
        feed(&mut w, &tone(2.0, 0.0, 16_000), 1600, &mut out);
        let got = ends(&out);
        assert_eq!(got.len(), 1, "once per gap: {out:?}");
        // The meter's words end where its speech final ends.
        let speech_final = transcripts(&out[before_gap..])
            .into_iter()
            .find(|t| t.is_final && !t.text.is_empty())
            .unwrap();
        assert_eq!(got[0], speech_final.end);
        assert!((got[0] - 1.1).abs() < 0.021, "{got:?}");
    }

    #[test]
    fn the_counter_engine_gets_the_input_unresampled() {
        let mut s = spec(44_100, 1);
        s.kind = EngineKind::Counter;
        let mut w = Worker::new(s);
        let mut out = Vec::new();
        feed(&mut w, &counter::encode_bytes(0, 50_000), 8820, &mut out);
        w.flush(&mut out);
        let finals = assert_tiles(&out);
        let texts: Vec<&str> = finals.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, vec!["pos 0-44100", "pos 44100-50000"]);
        assert_eq!(finals[1].end, 50_000.0 / 44_100.0);
    }

    fn counter_worker(base_frames: u64) -> Worker {
        let mut s = spec(16_000, 1);
        s.kind = EngineKind::Counter;
        s.base_frames = base_frames;
        Worker::new(s)
    }

    fn finals_of(out: &[EngineOut]) -> Vec<(String, f64, f64, bool)> {
        transcripts(out)
            .into_iter()
            .filter(|t| t.is_final)
            .map(|t| (t.text.clone(), t.start, t.end, t.from_finalize))
            .collect()
    }

    /// Before: the generic endpoint never told the worker about a `seek`
    /// gap, so every time after it lagged stream time by the gap (the
    /// second second of audio here came out as 1.5-2.5 s). Now the audio
    /// before the gap is finalized (not `from_finalize`: nobody asked), an
    /// empty final covers the gap, and what follows is at its stream time.
    #[test]
    fn a_gap_moves_the_clock_on_and_the_finals_still_tile() {
        let mut w = counter_worker(0);
        let mut out = Vec::new();
        feed(&mut w, &counter::encode_bytes(0, 24_000), 3200, &mut out);
        w.skip(2 * 16_000, &mut out);
        feed(
            &mut w,
            &counter::encode_bytes(40_000, 56_000),
            3200,
            &mut out,
        );
        w.flush(&mut out);
        assert_tiles(&out);
        let s = |t: &str| t.to_string();
        assert_eq!(
            finals_of(&out),
            vec![
                (s("pos 0-16000"), 0.0, 1.0, false),
                (s("pos 16000-24000"), 1.0, 1.5, false),
                (s(""), 1.5, 2.5, false),
                (s("pos 40000-56000"), 2.5, 3.5, false),
                (s(""), 3.5, 3.5, true),
            ]
        );
        let first_interim_after_gap = transcripts(&out)
            .into_iter()
            .find(|t| !t.is_final && t.start >= 2.5)
            .unwrap();
        assert_eq!(first_interim_after_gap.text, "pos 40000-44000");
        assert_eq!(first_interim_after_gap.end, 2.75);
    }

    /// A gap that splits a sample completes it; the bytes after the gap
    /// start a frame. A gap before any audio only moves the clock.
    #[test]
    fn a_gap_counts_in_bytes_and_may_come_first() {
        let mut w = counter_worker(0);
        let mut out = Vec::new();
        w.skip(2 * 8_000, &mut out);
        assert_eq!(finals_of(&out), vec![(String::new(), 0.0, 0.5, false)]);
        w.audio(&[0], &mut out).unwrap();
        w.skip(3, &mut out);
        assert_eq!((w.frames_in, w.carry.len()), (8_002, 0));
        feed(
            &mut w,
            &counter::encode_bytes(8_002, 16_002),
            3200,
            &mut out,
        );
        w.flush(&mut out);
        assert_tiles(&out);
        let last = finals_of(&out).pop().unwrap();
        assert_eq!(last.0, "pos 8002-16002");
        assert_eq!(last.2, 16_002.0 / 16_000.0);
    }

    /// A worker that starts in the middle of a stream (the generic
    /// endpoint's, resumed) gives the frame where it starts the same time,
    /// bit for bit, as the worker that ended there.
    #[test]
    fn a_worker_resumed_at_a_frame_continues_the_times_exactly() {
        let mut a = counter_worker(0);
        let mut out = Vec::new();
        feed(&mut a, &counter::encode_bytes(0, 16_016), 3200, &mut out);
        a.flush(&mut out);
        let end = finals_of(&out).last().unwrap().2;
        let mut b = counter_worker(16_016);
        let mut out = Vec::new();
        feed(
            &mut b,
            &counter::encode_bytes(16_016, 20_000),
            3200,
            &mut out,
        );
        b.flush(&mut out);
        assert_eq!(transcripts(&out)[0].start.to_bits(), end.to_bits());
    }

    /// A recogniser that is in an utterance for as long as `speaking`, says
    /// nothing until flushed, then gives one final for everything.
    struct Mute {
        speaking: bool,
        fed: u64,
    }

    impl Recognizer for Mute {
        fn sample_rate(&self) -> u32 {
            16_000
        }
        fn feed(&mut self, samples: &[i16], _out: &mut Vec<RecEvent>) {
            self.fed += samples.len() as u64;
        }
        fn flush(&mut self, out: &mut Vec<RecEvent>) {
            let end = self.fed as f64 / 16_000.0;
            out.push(RecEvent::Transcript(Transcript::new(
                "late words".into(),
                0.0,
                end,
                true,
                0.5,
            )));
            self.speaking = false;
        }
        fn in_utterance(&self) -> bool {
            self.speaking
        }
    }

    /// During an utterance whose words are still to come, the once-per-
    /// second rule keeps the client fed with interims and finalizes
    /// nothing: a final would confirm audio whose words had not come yet.
    #[test]
    fn inside_an_utterance_the_per_second_result_is_an_interim() {
        let mut w = Worker::new(spec(16_000, 1));
        w.rec = Some(Box::new(Mute {
            speaking: true,
            fed: 0,
        }));
        let mut out = Vec::new();
        feed(&mut w, &tone(2.5, 0.0, 16_000), 3200, &mut out);
        let ts = transcripts(&out);
        assert_eq!(ts.len(), 2, "{out:?}");
        assert!(ts.iter().all(|t| !t.is_final && t.start == 0.0), "{out:?}");
        w.flush(&mut out);
        let finals = assert_tiles(&out);
        assert_eq!(finals.len(), 1);
        assert_eq!((finals[0].start, finals[0].end), (0.0, 2.5));
        assert_eq!(finals[0].words.len(), 2);
    }

    /// Interleaves two mono PCM16 byte streams of equal length.
    fn interleave(a: &[u8], b: &[u8]) -> Vec<u8> {
        a.chunks_exact(2)
            .zip(b.chunks_exact(2))
            .flat_map(|(x, y)| [x[0], x[1], y[0], y[1]])
            .collect()
    }

    /// Runs a spawned engine over `bytes` (in `chunk`-byte messages), then
    /// a flush; returns what it said up to the `Flushed`.
    fn run_engine(spec: EngineSpec, bytes: &[u8], chunk: usize) -> Vec<EngineOut> {
        let mut h = spawn(spec);
        for c in bytes.chunks(chunk) {
            h.tx.send(EngineIn::Audio(c.to_vec())).unwrap();
        }
        h.tx.send(EngineIn::Flush).unwrap();
        let mut out = Vec::new();
        loop {
            match h.rx.blocking_recv().expect("the engine answers the flush") {
                EngineOut::Flushed => return out,
                o => out.push(o),
            }
        }
    }

    /// `per_channel`: one recogniser per channel, each hearing only its
    /// own samples of the interleaved frames, its finals tiling that
    /// channel in frames (not samples) and tagged with it; one `Flushed`.
    #[test]
    fn per_channel_engines_hear_their_own_channel_and_tile_it_in_frames() {
        let mut s = spec(16_000, 2);
        s.kind = EngineKind::Counter;
        s.per_channel = true;
        let pcm = interleave(
            &counter::encode_bytes(0, 20_000),
            &counter::encode_bytes(300_000, 320_000),
        );
        // Odd-sized messages split samples and frames.
        let out = run_engine(s, &pcm, 6_407);
        for (c, want) in [
            (0, ["pos 0-16000", "pos 16000-20000"]),
            (1, ["pos 300000-316000", "pos 316000-320000"]),
        ] {
            let mine: Vec<EngineOut> = out
                .iter()
                .filter(|o| matches!(o, EngineOut::Transcript(t) if t.channel == c))
                .cloned()
                .collect();
            let finals = assert_tiles(&mine);
            let texts: Vec<&str> = finals.iter().map(|t| t.text.as_str()).collect();
            assert_eq!(texts, want, "channel {c}: {mine:?}");
            assert_eq!(finals[1].end, 20_000.0 / 16_000.0, "frames, not samples");
            assert!(finals[1].from_finalize);
        }
        assert!(out
            .iter()
            .all(|o| matches!(o, EngineOut::Transcript(t) if t.channel < 2)));
    }

    /// Without `per_channel` the channels are mixed down: channels `v - d`
    /// and `v + d` mix to `v`, which neither channel is on its own.
    #[test]
    fn without_per_channel_the_channels_are_mixed_down() {
        let mut s = spec(16_000, 2);
        s.kind = EngineKind::Counter;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..20_000 {
            let v = counter::encode(i);
            let d = 100.min(i16::MAX - v.abs());
            a.extend((v - d).to_le_bytes());
            b.extend((v + d).to_le_bytes());
        }
        let out = run_engine(s, &interleave(&a, &b), 6_400);
        let finals = assert_tiles(&out);
        let texts: Vec<&str> = finals.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["pos 0-16000", "pos 16000-20000"], "{out:?}");
        assert!(finals.iter().all(|t| t.channel == 0));
        assert_eq!(finals[1].end, 1.25);
    }

    #[test]
    fn resampling_keeps_the_duration() {
        let mut w = Worker::new(spec(48_000, 1));
        let input: Vec<i16> = (0..48_000).map(|i| (i % 100) as i16).collect();
        let n: usize = input
            .chunks(4_801)
            .map(|c| w.resample(c, 16_000).len())
            .sum();
        assert!((15_990..=16_010).contains(&n), "{n}");
    }
}
