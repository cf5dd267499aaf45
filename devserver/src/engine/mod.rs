//! Speech engines. An engine turns PCM16 into transcripts; each connection
//! gets its own worker thread, because pocketsphinx calls block for tens of
//! milliseconds and must not stall the async runtime.

pub mod meter;
pub mod pocketsphinx;

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
        }
    }

    /// Parses an engine name, refusing pocketsphinx when it is not built in.
    pub fn parse(s: &str) -> Result<EngineKind, String> {
        match s {
            "meter" => Ok(EngineKind::Meter),
            "pocketsphinx" if pocketsphinx::AVAILABLE => Ok(EngineKind::Pocketsphinx),
            "pocketsphinx" => Err(
                "engine pocketsphinx is unavailable: devserver was built without libpocketsphinx \
                 (install libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us pkg-config and rebuild)"
                    .into(),
            ),
            other => Err(format!("unknown engine {other:?} (expected meter or pocketsphinx)")),
        }
    }
}

/// One recognised word, times in seconds from the stream start.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub confidence: f64,
}

/// A transcript, interim or final. Times are seconds from the stream start.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub start: f64,
    pub end: f64,
    pub is_final: bool,
    /// The speaker stopped (end of an utterance detected in the audio).
    pub speech_final: bool,
    /// Produced by an explicit flush (Deepgram `Finalize`/`CloseStream`).
    pub from_finalize: bool,
    pub confidence: f64,
    pub words: Vec<Word>,
}

impl Transcript {
    /// A transcript whose words are spread evenly over `[start, end]`: the
    /// engines here do not report word timings, and clients only need
    /// plausible, ordered ones.
    pub fn new(text: String, start: f64, end: f64, is_final: bool, confidence: f64) -> Transcript {
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let step = if tokens.is_empty() {
            0.0
        } else {
            (end - start) / tokens.len() as f64
        };
        let words = tokens
            .iter()
            .enumerate()
            .map(|(i, w)| Word {
                word: w.to_lowercase(),
                start: start + step * i as f64,
                end: start + step * (i + 1) as f64,
                confidence,
            })
            .collect();
        Transcript {
            text,
            start,
            end,
            is_final,
            speech_final: false,
            from_finalize: false,
            confidence,
            words,
        }
    }
}

/// A recogniser fed with mono samples at its own rate.
pub trait Recognizer: Send {
    /// The sample rate it wants.
    fn sample_rate(&self) -> u32;
    /// Consumes samples; pushes any transcripts they produce.
    fn feed(&mut self, samples: &[i16], out: &mut Vec<Transcript>);
    /// Ends the current utterance now; pushes its final transcript, if any.
    fn flush(&mut self, out: &mut Vec<Transcript>);
}

/// Per-connection engine parameters.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub kind: EngineKind,
    /// Rate and channel count of the incoming PCM16.
    pub sample_rate: u32,
    pub channels: u16,
    /// JSGF grammar text (pocketsphinx only).
    pub grammar: Option<Arc<str>>,
    /// Stream time of the first byte this worker will see, in seconds (the
    /// generic endpoint resumes streams in the middle).
    pub base_secs: f64,
}

/// Input to an engine worker.
#[derive(Debug)]
pub enum EngineIn {
    /// PCM16 little-endian bytes (any length; odd bytes carry over).
    Audio(Vec<u8>),
    /// Finish the current utterance; answered with `Flushed` after its finals.
    Flush,
}

/// Output of an engine worker.
#[derive(Debug)]
pub enum EngineOut {
    Transcript(Transcript),
    /// Every final for the audio sent before the flush has been emitted.
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
        let mut w = Worker::new(spec);
        while let Some(msg) = in_rx.blocking_recv() {
            let mut out = Vec::new();
            let flushed = matches!(msg, EngineIn::Flush);
            if let Err(e) = w.handle(msg, &mut out) {
                let _ = out_tx.send(EngineOut::Failed(e));
                // Keep answering flushes so sessions never wait forever.
                while let Some(m) = in_rx.blocking_recv() {
                    if matches!(m, EngineIn::Flush) {
                        let _ = out_tx.send(EngineOut::Flushed);
                    }
                }
                return;
            }
            for t in out {
                let _ = out_tx.send(EngineOut::Transcript(t));
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

/// Adapts the incoming stream (any rate, any channel count, byte frames that
/// may split samples) to a recogniser, and guarantees a result at least once
/// per second of audio (clients' liveness watchdogs rely on it, as they do
/// with the real Deepgram).
struct Worker {
    spec: EngineSpec,
    rec: Option<Box<dyn Recognizer>>,
    carry: Vec<u8>,
    /// Input frames (one sample per channel) seen so far.
    frames_in: u64,
    /// Input frame count at the last emitted result.
    last_result_frame: u64,
    /// Fractional resampling position.
    resample_pos: f64,
    last_sample: i16,
}

impl Worker {
    fn new(spec: EngineSpec) -> Worker {
        Worker {
            spec,
            rec: None,
            carry: Vec::new(),
            frames_in: 0,
            last_result_frame: 0,
            resample_pos: 0.0,
            last_sample: 0,
        }
    }

    fn secs(&self, frames: u64) -> f64 {
        self.spec.base_secs + frames as f64 / f64::from(self.spec.sample_rate.max(1))
    }

    fn recognizer(&mut self) -> Result<&mut Box<dyn Recognizer>, String> {
        if self.rec.is_none() {
            let rec: Box<dyn Recognizer> = match self.spec.kind {
                EngineKind::Meter => Box::new(meter::Meter::new(self.spec.sample_rate)),
                EngineKind::Pocketsphinx => pocketsphinx::recognizer(self.spec.grammar.clone())?,
            };
            self.rec = Some(rec);
        }
        Ok(self.rec.as_mut().expect("recognizer was just created"))
    }

    fn handle(&mut self, msg: EngineIn, out: &mut Vec<Transcript>) -> Result<(), String> {
        match msg {
            EngineIn::Audio(bytes) => self.audio(&bytes, out)?,
            EngineIn::Flush => {
                if let Some(rec) = self.rec.as_mut() {
                    let mut raw = Vec::new();
                    rec.flush(&mut raw);
                    for mut t in raw {
                        t.from_finalize = true;
                        out.push(self.shift(t));
                    }
                    self.last_result_frame = self.frames_in;
                }
            }
        }
        Ok(())
    }

    fn audio(&mut self, bytes: &[u8], out: &mut Vec<Transcript>) -> Result<(), String> {
        let channels = usize::from(self.spec.channels.max(1));
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        // Frames may split a sample (or a multi-channel frame): keep the
        // incomplete tail for the next message.
        let whole = data.len() - data.len() % (2 * channels);
        self.carry = data.split_off(whole);
        // Only the first channel is recognised.
        let mono: Vec<i16> = data
            .chunks_exact(2 * channels)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
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
        if !raw.is_empty() {
            self.last_result_frame = self.frames_in;
        }
        for t in raw {
            out.push(self.shift(t));
        }
        let rate = u64::from(self.spec.sample_rate.max(1));
        if self.frames_in - self.last_result_frame >= rate {
            let start = self.secs(self.last_result_frame);
            let end = self.secs(self.frames_in);
            let mut t = Transcript::new(String::new(), start, end, true, 0.0);
            t.speech_final = false;
            out.push(t);
            self.last_result_frame = self.frames_in;
        }
        Ok(())
    }

    /// Moves a recogniser transcript (seconds since its own start, at its own
    /// rate) to stream time.
    fn shift(&self, mut t: Transcript) -> Transcript {
        let base = self.spec.base_secs;
        t.start += base;
        t.end += base;
        for w in &mut t.words {
            w.start += base;
            w.end += base;
        }
        t
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
            grammar: None,
            base_secs: 0.0,
        }
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
        assert_eq!(out.len(), 3, "{out:?}");
        assert!((out[2].end - 3.0).abs() < 1e-9);
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
