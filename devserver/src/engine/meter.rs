//! The `meter` engine: no recognition, only energy-based speech activity.
//!
//! It exists so everything except the words can be tested without a model:
//! interim results while someone speaks, a final at the end of each speech
//! run, and the same message shapes as a real engine. Its text always starts
//! with `[meter]` so nobody mistakes it for a transcript.

use super::{Recognizer, Transcript};

/// Frames at or above this level count as speech.
const THRESHOLD_DBFS: f64 = -45.0;
/// A speech run ends after this much audio below the threshold.
const HANGOVER_SECS: f64 = 0.3;
/// Interim results while speech goes on.
const INTERIM_EVERY_SECS: f64 = 0.5;
/// Analysis frame.
const FRAME_SECS: f64 = 0.02;

pub struct Meter {
    rate: u32,
    frame_len: usize,
    frame: Vec<i16>,
    /// Frames analysed so far.
    frames: u64,
    run: Option<Run>,
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

    fn analyse(&mut self, out: &mut Vec<Transcript>) {
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
                self.run = Some(Run {
                    start_frame: n,
                    last_loud_frame: n,
                    energy_sum: energy,
                    loud_frames: 1,
                    last_interim_frame: n,
                });
            }
            (None, false) => {}
            (Some(run), true) => {
                run.last_loud_frame = n;
                run.energy_sum += energy;
                run.loud_frames += 1;
                if (n - run.last_interim_frame) as f64 * fs >= INTERIM_EVERY_SECS {
                    run.last_interim_frame = n;
                    let t =
                        self.transcript(self.run.as_ref().expect("run is active"), n + 1, false);
                    out.push(t);
                }
            }
            (Some(run), false) => {
                if (n - run.last_loud_frame) as f64 * fs >= HANGOVER_SECS {
                    let run = self.run.take().expect("run is active");
                    out.push(self.transcript(&run, run.last_loud_frame + 1, true));
                }
            }
        }
    }
}

impl Recognizer for Meter {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn feed(&mut self, samples: &[i16], out: &mut Vec<Transcript>) {
        for &s in samples {
            self.frame.push(s);
            if self.frame.len() == self.frame_len {
                self.analyse(out);
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<Transcript>) {
        if let Some(run) = self.run.take() {
            out.push(self.transcript(&run, run.last_loud_frame + 1, true));
        }
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

    #[test]
    fn one_speech_run_gives_interims_then_one_final() {
        let mut m = Meter::new(16_000);
        let mut out = Vec::new();
        m.feed(&tone(0.5, 0.0), &mut out);
        m.feed(&tone(1.2, 0.5), &mut out);
        m.feed(&tone(0.6, 0.0), &mut out);
        let finals: Vec<_> = out.iter().filter(|t| t.is_final).collect();
        assert_eq!(finals.len(), 1, "{out:?}");
        assert!(out.iter().any(|t| !t.is_final));
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
        assert_eq!(out.iter().filter(|t| t.is_final).count(), 1);
        out.clear();
        m.flush(&mut out);
        assert!(out.is_empty());
    }
}
