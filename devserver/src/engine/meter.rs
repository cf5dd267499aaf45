//! The `meter` engine: no recognition, only energy-based speech activity.
//!
//! It exists so everything except the words can be tested without a model:
//! interim results while someone speaks, a final at the end of each speech
//! run, and the same message shapes as a real engine. Its text always starts
//! with `[meter]` so nobody mistakes it for a transcript.
//!
//! The run boundaries it reports are advice to the worker, which tiles the
//! stream with finals (`engine::Worker`): the pause before a run and the
//! hangover after it end up in empty finals around the run's final.

use super::{RecEvent, Recognizer, Transcript};

/// Frames at or above this level count as speech.
const THRESHOLD_DBFS: f64 = -45.0;
/// A speech run ends after this much audio below the threshold.
const HANGOVER_SECS: f64 = 0.3;
/// Interim results while speech goes on.
const INTERIM_EVERY_SECS: f64 = 0.5;
/// Analysis frame.
const FRAME_SECS: f64 = 0.02;
/// A longer run is finalized here and goes on as a new run (no new
/// SpeechStarted), like pocketsphinx's utterance cap: clients confirm audio
/// by finals, so continuous sound must not keep all of it unconfirmed.
const MAX_RUN_SECS: f64 = 5.0;

pub struct Meter {
    rate: u32,
    frame_len: usize,
    frame: Vec<i16>,
    /// Frames analysed so far.
    frames: u64,
    run: Option<Run>,
    /// The last run was cut by MAX_RUN_SECS while still loud.
    continuing: bool,
}

struct Run {
    start_frame: u64,
    /// Last frame at or above the threshold.
    last_loud_frame: u64,
    energy_sum: f64,
    loud_frames: u64,
    last_interim_frame: u64,
}

impl Meter {
    pub fn new(rate: u32) -> Meter {
        let frame_len = ((f64::from(rate) * FRAME_SECS) as usize).max(1);
        Meter {
            rate,
            frame_len,
            frame: Vec::with_capacity(frame_len),
            frames: 0,
            run: None,
            continuing: false,
        }
    }

    fn frame_secs(&self) -> f64 {
        self.frame_len as f64 / f64::from(self.rate.max(1))
    }

    fn transcript(&self, run: &Run, end_frame: u64, is_final: bool) -> Transcript {
        let fs = self.frame_secs();
        let start = run.start_frame as f64 * fs;
        let end = end_frame as f64 * fs;
        let mean = run.energy_sum / run.loud_frames.max(1) as f64;
        let dbfs = 10.0 * mean.max(1e-12).log10();
        let text = format!("[meter] speech {:.1}s {:.0} dBFS", end - start, dbfs);
        let mut t = Transcript::new(text, start, end, is_final, 1.0);
        t.speech_final = is_final;
        t
    }

    fn analyse(&mut self, out: &mut Vec<RecEvent>) {
        let energy = self
            .frame
            .iter()
            .map(|&s| {
                let x = f64::from(s) / 32768.0;
                x * x
            })
            .sum::<f64>()
            / self.frame.len().max(1) as f64;
        self.frame.clear();
        let loud = 10.0 * energy.max(1e-12).log10() >= THRESHOLD_DBFS;
        let n = self.frames;
        self.frames += 1;
        let fs = self.frame_secs();
        match (&mut self.run, loud) {
            (None, true) => {
                self.run = Some(Run::new(n, energy));
                if !std::mem::take(&mut self.continuing) {
                    out.push(RecEvent::SpeechStarted(n as f64 * fs));
                }
            }
            (None, false) => self.continuing = false,
            (Some(run), true) => {
                run.last_loud_frame = n;
                run.energy_sum += energy;
                run.loud_frames += 1;
                if (n + 1 - run.start_frame) as f64 * fs >= MAX_RUN_SECS - 1e-9 {
                    let run = self.run.take().expect("run is active");
                    let mut t = self.transcript(&run, n + 1, true);
                    t.speech_final = false;
                    out.push(RecEvent::Transcript(t));
                    // Still loud: the next frame opens the continuation.
                    self.continuing = true;
                } else if (n - run.last_interim_frame) as f64 * fs >= INTERIM_EVERY_SECS {
                    run.last_interim_frame = n;
                    let t =
                        self.transcript(self.run.as_ref().expect("run is active"), n + 1, false);
                    out.push(RecEvent::Transcript(t));
                }
            }
            (Some(run), false) => {
                if (n - run.last_loud_frame) as f64 * fs >= HANGOVER_SECS {
                    let run = self.run.take().expect("run is active");
                    out.push(RecEvent::Transcript(self.transcript(
                        &run,
                        run.last_loud_frame + 1,
                        true,
                    )));
                }
            }
        }
    }
}

impl Run {
    fn new(n: u64, energy: f64) -> Run {
        Run {
            start_frame: n,
            last_loud_frame: n,
            energy_sum: energy,
            loud_frames: 1,
            last_interim_frame: n,
        }
    }
}

impl Recognizer for Meter {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn feed(&mut self, samples: &[i16], out: &mut Vec<RecEvent>) {
        for &s in samples {
            self.frame.push(s);
            if self.frame.len() == self.frame_len {
                self.analyse(out);
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<RecEvent>) {
        self.continuing = false;
        if let Some(run) = self.run.take() {
            out.push(RecEvent::Transcript(self.transcript(
                &run,
                run.last_loud_frame + 1,
                true,
            )));
        }
    }

    fn in_utterance(&self) -> bool {
        self.run.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(secs: f64, amp: f64) -> Vec<i16> {
        (0..(16_000.0 * secs) as usize)
            .map(|i| ((i as f64 * 0.2).sin() * amp * 32767.0) as i16)
            .collect()
    }

    fn transcripts(out: &[RecEvent]) -> Vec<&Transcript> {
        out.iter()
            .filter_map(|e| match e {
                RecEvent::Transcript(t) => Some(t),
                RecEvent::SpeechStarted(_) => None,
            })
            .collect()
    }

    fn speech_starts(out: &[RecEvent]) -> Vec<f64> {
        out.iter()
            .filter_map(|e| match e {
                RecEvent::SpeechStarted(at) => Some(*at),
                RecEvent::Transcript(_) => None,
            })
            .collect()
    }

    #[test]
    fn one_speech_run_gives_speech_started_interims_then_one_final() {
        let mut m = Meter::new(16_000);
        let mut out = Vec::new();
        m.feed(&tone(0.5, 0.0), &mut out);
        m.feed(&tone(1.2, 0.5), &mut out);
        assert!(m.in_utterance());
        m.feed(&tone(0.6, 0.0), &mut out);
        assert!(!m.in_utterance());
        let starts = speech_starts(&out);
        assert_eq!(starts.len(), 1, "{out:?}");
        assert!((starts[0] - 0.5).abs() < 0.03, "{starts:?}");
        assert!(
            matches!(out[0], RecEvent::SpeechStarted(_)),
            "SpeechStarted precedes the run's results: {out:?}"
        );
        let ts = transcripts(&out);
        let finals: Vec<_> = ts.iter().filter(|t| t.is_final).collect();
        assert_eq!(finals.len(), 1, "{out:?}");
        assert!(ts.iter().any(|t| !t.is_final));
        let f = finals[0];
        assert!(f.text.starts_with("[meter] speech 1.2s"), "{}", f.text);
        assert!(
            (f.start - 0.5).abs() < 0.05 && (f.end - 1.7).abs() < 0.05,
            "{f:?}"
        );
    }

    #[test]
    fn flush_ends_a_run_in_progress() {
        let mut m = Meter::new(16_000);
        let mut out = Vec::new();
        m.feed(&tone(0.3, 0.5), &mut out);
        m.flush(&mut out);
        assert_eq!(transcripts(&out).iter().filter(|t| t.is_final).count(), 1);
        assert!(!m.in_utterance());
        out.clear();
        m.flush(&mut out);
        assert!(out.is_empty());
    }

    /// Continuous sound is finalized every 5 s, so a client confirming audio
    /// by finals is not left holding all of it; speech did not restart, so
    /// there is one SpeechStarted only.
    #[test]
    fn a_long_run_is_cut_every_five_seconds_without_a_new_speech_start() {
        let mut m = Meter::new(16_000);
        let mut out = Vec::new();
        m.feed(&tone(12.0, 0.5), &mut out);
        let finals: Vec<_> = transcripts(&out)
            .into_iter()
            .filter(|t| t.is_final)
            .collect();
        assert_eq!(finals.len(), 2, "{finals:?}");
        assert!((finals[0].end - 5.0).abs() < 1e-9, "{:?}", finals[0]);
        assert!((finals[1].start - 5.0).abs() < 1e-9, "{:?}", finals[1]);
        assert!((finals[1].end - 10.0).abs() < 1e-9, "{:?}", finals[1]);
        assert!(!finals[0].speech_final, "a cut is not the speaker stopping");
        assert_eq!(speech_starts(&out).len(), 1);
        assert!(m.in_utterance());
    }
}
