//! What a recogniser is and what it says: the interface between the engine
//! worker (`engine/mod.rs`) and the recognisers (`counter`, `meter`,
//! `pocketsphinx`). A leaf, so the worker can use the recognisers and the
//! recognisers these types without importing each other.

/// One recognised word, times in seconds from the stream start.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub confidence: f64,
}

/// A transcript, interim or final. Times are seconds from the stream start.
///
/// Out of the worker, finals tile the stream: the first starts at the
/// worker's start, each next one where the previous ended, and the flush
/// final ends at the last frame received. Every `start`/`end` is computed
/// from an integer frame count by one function (`Worker::secs`), so equal
/// frames give bit-identical times.
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
    /// The audio channel transcribed (0 unless the channels of the stream
    /// are transcribed one by one, see `EngineSpec::per_channel`).
    pub channel: u16,
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
            channel: 0,
        }
    }
}

/// What a recogniser reports. Times are seconds of the recogniser's own
/// audio (at its own rate, from its first sample).
#[derive(Debug, Clone, PartialEq)]
pub enum RecEvent {
    Transcript(Transcript),
    /// Speech began at this time (meter: a speech run starts; pocketsphinx:
    /// its in-speech flag goes true).
    SpeechStarted(f64),
}

/// A recogniser fed with mono samples at its own rate.
///
/// Its utterance times are only advice: the worker maps them onto a tiling
/// of the stream (see `engine::Worker`), moving boundaries where needed.
pub trait Recognizer: Send {
    /// The sample rate it wants.
    fn sample_rate(&self) -> u32;
    /// Consumes samples; pushes any events they produce, in order.
    fn feed(&mut self, samples: &[i16], out: &mut Vec<RecEvent>);
    /// Ends the current utterance now; pushes its final transcript, if any.
    fn flush(&mut self, out: &mut Vec<RecEvent>);
    /// Whether an utterance is in progress, i.e. its final is still to
    /// come. While it is, the worker keeps clients fed with interims rather
    /// than closing the gap with an empty final.
    fn in_utterance(&self) -> bool;
}
