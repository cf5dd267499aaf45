//! Interleaved multi-channel audio → interleaved PCM16 at the target rate.

use super::pcm::pcm16_to_f32;
use super::pipeline::AudioPipeline;
use super::resample::ResampleError;

/// An [`AudioPipeline`] per channel: interleaved input (frame after frame,
/// `channels` samples each) is split, each channel resampled on its own
/// (identical filters fed identical lengths, so the channels stay
/// sample-aligned), and interleaved again. One channel is the plain
/// pipeline, without the copies.
#[derive(Debug, Clone)]
pub struct InterleavedPipeline {
    lanes: Vec<AudioPipeline>,
    lane_in: Vec<f32>,
    lane_out: Vec<Vec<i16>>,
    scratch: Vec<f32>,
}

/// Interleaved input whose length is not a whole number of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialFrame {
    /// Samples given.
    pub samples: usize,
    /// Channels per frame.
    pub channels: usize,
}

/// Why interleaved audio could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterleavedError {
    /// See [`ResampleError`].
    Rate(ResampleError),
    /// See [`PartialFrame`].
    PartialFrame(PartialFrame),
}

impl InterleavedError {
    /// A sentence for error messages.
    pub fn message(&self) -> String {
        match self {
            InterleavedError::Rate(e) => e.message(),
            InterleavedError::PartialFrame(p) => [
                "interleaved audio must hold whole frames of ",
                &super::int(p.channels as u64),
                " samples, got ",
                &super::int(p.samples as u64),
                " samples",
            ]
            .concat(),
        }
    }
}

impl From<ResampleError> for InterleavedError {
    fn from(e: ResampleError) -> Self {
        InterleavedError::Rate(e)
    }
}

impl InterleavedPipeline {
    /// `channels` (≥ 1) interleaved channels to PCM16 at `target_rate`.
    ///
    /// # Errors
    ///
    /// As [`AudioPipeline::new`].
    pub fn new(target_rate: u32, channels: usize) -> Result<Self, ResampleError> {
        let lane = AudioPipeline::new(target_rate)?;
        let channels = channels.max(1);
        Ok(InterleavedPipeline {
            lanes: vec![lane; channels],
            lane_in: Vec::new(),
            lane_out: vec![Vec::new(); channels],
            scratch: Vec::new(),
        })
    }

    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.lanes.len()
    }

    /// Converts interleaved float frames at `input_rate` and appends the
    /// interleaved PCM16 result to `out`.
    ///
    /// # Errors
    ///
    /// A rate out of range, or a partial frame; nothing is appended then.
    pub fn push_f32(
        &mut self,
        input: &[f32],
        input_rate: u32,
        out: &mut Vec<i16>,
    ) -> Result<(), InterleavedError> {
        let n = self.lanes.len();
        if n == 1 {
            return Ok(self.lanes[0].push_f32(input, input_rate, out)?);
        }
        if input.len() % n != 0 {
            return Err(InterleavedError::PartialFrame(PartialFrame {
                samples: input.len(),
                channels: n,
            }));
        }
        // A bad rate fails on the first lane before any lane changes.
        for c in 0..n {
            self.lane_in.clear();
            self.lane_in.extend(input.iter().skip(c).step_by(n));
            self.lane_out[c].clear();
            self.lanes[c].push_f32(&self.lane_in, input_rate, &mut self.lane_out[c])?;
        }
        self.interleave(out);
        Ok(())
    }

    /// As [`InterleavedPipeline::push_f32`], for PCM16 (copied unchanged at
    /// the target rate).
    ///
    /// # Errors
    ///
    /// As [`InterleavedPipeline::push_f32`].
    pub fn push_i16(
        &mut self,
        input: &[i16],
        input_rate: u32,
        out: &mut Vec<i16>,
    ) -> Result<(), InterleavedError> {
        let n = self.lanes.len();
        if n == 1 {
            return Ok(self.lanes[0].push_i16(input, input_rate, out)?);
        }
        if input_rate == self.lanes[0].target_rate() {
            if input.len() % n != 0 {
                return Err(InterleavedError::PartialFrame(PartialFrame {
                    samples: input.len(),
                    channels: n,
                }));
            }
            // Flush a previous rate's tails (aligned: same lengths).
            self.flush(out);
            out.extend_from_slice(input);
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        pcm16_to_f32(input, &mut scratch);
        let r = self.push_f32(&scratch, input_rate, out);
        self.scratch = scratch;
        r
    }

    /// Emits what every lane's resampler holds (interleaved) and ends the
    /// stream.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        if self.lanes.len() == 1 {
            return self.lanes[0].flush(out);
        }
        for (lane, o) in self.lanes.iter_mut().zip(&mut self.lane_out) {
            o.clear();
            lane.flush(o);
        }
        self.interleave(out);
    }

    fn interleave(&self, out: &mut Vec<i16>) {
        let frames = self.lane_out.iter().map(Vec::len).min().unwrap_or(0);
        debug_assert!(
            self.lane_out.iter().all(|o| o.len() == frames),
            "identical lanes produce identical lengths"
        );
        out.reserve(frames * self.lanes.len());
        for i in 0..frames {
            for o in &self.lane_out {
                out.push(o[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two different tones, interleaved at 48 kHz, come out at 16 kHz as
    /// the same two tones resampled alone: each channel bit-identical to
    /// its own mono pipeline, frame for frame.
    #[test]
    fn each_channel_is_what_its_own_pipeline_makes() {
        let tone =
            |hz: f32, i: usize| (i as f32 * hz * std::f32::consts::TAU / 48_000.0).sin() * 0.5;
        let frames = 48_000;
        let mut inter = Vec::with_capacity(frames * 2);
        for i in 0..frames {
            inter.push(tone(440.0, i));
            inter.push(tone(1_000.0, i));
        }
        let mut p = InterleavedPipeline::new(16_000, 2).unwrap();
        let mut out = Vec::new();
        for block in inter.chunks(960 * 2) {
            p.push_f32(block, 48_000, &mut out).unwrap();
        }
        p.flush(&mut out);
        for (c, hz) in [(0, 440.0), (1, 1_000.0)] {
            let mono: Vec<f32> = (0..frames).map(|i| tone(hz, i)).collect();
            let mut alone = AudioPipeline::new(16_000).unwrap();
            let mut want = Vec::new();
            for block in mono.chunks(960) {
                alone.push_f32(block, 48_000, &mut want).unwrap();
            }
            alone.flush(&mut want);
            let got: Vec<i16> = out.iter().skip(c).step_by(2).copied().collect();
            assert_eq!(got, want, "channel {c}");
        }
        assert_eq!(out.len(), 16_000 * 2);
    }

    #[test]
    fn partial_frames_and_bad_rates_are_refused_and_change_nothing() {
        let mut p = InterleavedPipeline::new(16_000, 2).unwrap();
        let mut out = Vec::new();
        let e = p.push_f32(&[0.0; 3], 48_000, &mut out).unwrap_err();
        assert!(
            e.message().contains("frames of 2 samples, got 3"),
            "{}",
            e.message()
        );
        let e = p.push_i16(&[0; 5], 16_000, &mut out).unwrap_err();
        assert!(matches!(e, InterleavedError::PartialFrame(_)));
        let e = p.push_f32(&[0.0; 4], 1_000_000, &mut out).unwrap_err();
        assert_eq!(
            e,
            InterleavedError::Rate(ResampleError::UnsupportedInputRate(1_000_000))
        );
        assert!(out.is_empty());
        p.push_i16(&[1, 2, 3, 4], 16_000, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4]);
    }
}
