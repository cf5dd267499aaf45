//! Any capture format → PCM16 at the backend's rate.

use super::pcm::{f32_to_pcm16, pcm16_to_f32};
use super::resample::{ResampleError, Resampler};

/// Converts captured audio (float or PCM16, at any supported rate) to PCM16
/// at a fixed target rate, ready for a [`super::Chunker`].
///
/// The input rate may change mid-stream (e.g. the user switches
/// microphones): the converter for the old rate is flushed first, so the
/// audio still inside its filter is emitted rather than lost.
#[derive(Debug, Clone)]
pub struct AudioPipeline {
    target_rate: u32,
    /// Converter for the current input rate; `None` before the first push
    /// and after a flush.
    resampler: Option<Resampler>,
    /// Reused float buffers, so steady-state pushes don't allocate.
    scratch_in: Vec<f32>,
    scratch_out: Vec<f32>,
}

impl AudioPipeline {
    /// Creates a pipeline producing PCM16 at `target_rate` Hz.
    ///
    /// # Errors
    ///
    /// [`ResampleError::UnsupportedOutputRate`] if `target_rate` is outside
    /// [`super::MIN_RATE`]`..=`[`super::MAX_RATE`].
    pub fn new(target_rate: u32) -> Result<Self, ResampleError> {
        // Validates the rate with the same rules as the resampler.
        Resampler::new(target_rate, target_rate)
            .map_err(|_| ResampleError::UnsupportedOutputRate(target_rate))?;
        Ok(AudioPipeline {
            target_rate,
            resampler: None,
            scratch_in: Vec::new(),
            scratch_out: Vec::new(),
        })
    }

    /// The output rate in Hz.
    pub fn target_rate(&self) -> u32 {
        self.target_rate
    }

    /// The input rate of the stream in progress, if any.
    pub fn input_rate(&self) -> Option<u32> {
        self.resampler.as_ref().map(Resampler::input_rate)
    }

    /// Converts float samples captured at `input_rate` Hz and appends the
    /// PCM16 result to `out` (see [`super::f32_to_pcm16`] for clipping).
    ///
    /// # Errors
    ///
    /// [`ResampleError::UnsupportedInputRate`] if `input_rate` is out of
    /// range; the pipeline is then left unchanged and nothing is appended.
    pub fn push_f32(
        &mut self,
        input: &[f32],
        input_rate: u32,
        out: &mut Vec<i16>,
    ) -> Result<(), ResampleError> {
        self.switch_rate(input_rate, out)?;
        let Some(r) = self.resampler.as_mut() else {
            unreachable!("switch_rate installs a resampler");
        };
        if input_rate == self.target_rate {
            f32_to_pcm16(input, out);
            return Ok(());
        }
        self.scratch_out.clear();
        r.process(input, &mut self.scratch_out);
        f32_to_pcm16(&self.scratch_out, out);
        Ok(())
    }

    /// Converts PCM16 samples captured at `input_rate` Hz and appends the
    /// result to `out`. At the target rate the samples are copied unchanged
    /// (no float round trip, which could move a sample by one LSB).
    ///
    /// # Errors
    ///
    /// As [`AudioPipeline::push_f32`].
    pub fn push_i16(
        &mut self,
        input: &[i16],
        input_rate: u32,
        out: &mut Vec<i16>,
    ) -> Result<(), ResampleError> {
        if input_rate == self.target_rate {
            self.switch_rate(input_rate, out)?;
            out.extend_from_slice(input);
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch_in);
        scratch.clear();
        pcm16_to_f32(input, &mut scratch);
        let result = self.push_f32(&scratch, input_rate, out);
        self.scratch_in = scratch;
        result
    }

    /// Emits the audio still held in the resampler (its look-ahead, a few
    /// milliseconds) and ends the stream; the next push starts a fresh one.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        if let Some(mut r) = self.resampler.take() {
            self.scratch_out.clear();
            r.flush(&mut self.scratch_out);
            f32_to_pcm16(&self.scratch_out, out);
        }
    }

    /// Makes sure the resampler matches `input_rate`, flushing a previous
    /// one for another rate into `out` first.
    fn switch_rate(&mut self, input_rate: u32, out: &mut Vec<i16>) -> Result<(), ResampleError> {
        if self.input_rate() == Some(input_rate) {
            return Ok(());
        }
        // Validate before touching the old stream, so an error changes nothing.
        let fresh = Resampler::new(input_rate, self.target_rate)?;
        self.flush(out);
        self.resampler = Some(fresh);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_at_target_rate_passes_through_bit_exact() {
        let mut p = AudioPipeline::new(16_000).unwrap();
        let input: Vec<i16> = (i16::MIN..=i16::MAX).step_by(7).collect();
        let mut out = Vec::new();
        p.push_i16(&input, 16_000, &mut out).unwrap();
        p.flush(&mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn rate_change_flushes_the_old_tail_instead_of_dropping_it() {
        let mut p = AudioPipeline::new(16_000).unwrap();
        let mut out = Vec::new();
        p.push_f32(&[0.25; 4_800], 48_000, &mut out).unwrap();
        let before = out.len();
        assert!(before < 1_600, "look-ahead holds some samples back");
        p.push_f32(&[0.25; 4_410], 44_100, &mut out).unwrap();
        p.push_i16(&[100; 160], 16_000, &mut out).unwrap();
        p.push_i16(&[100; 800], 8_000, &mut out).unwrap();
        p.flush(&mut out);
        assert_eq!(out.len(), 1_600 + 1_600 + 160 + 1_600);
        assert!(out[1_600 + 1_600..1_600 + 1_600 + 160]
            .iter()
            .all(|&s| s == 100));
    }

    #[test]
    fn bad_rate_is_rejected_without_disturbing_the_stream() {
        assert_eq!(
            AudioPipeline::new(4_000).unwrap_err(),
            ResampleError::UnsupportedOutputRate(4_000)
        );
        let mut p = AudioPipeline::new(16_000).unwrap();
        let mut out = Vec::new();
        p.push_f32(&[0.5; 480], 48_000, &mut out).unwrap();
        let n = out.len();
        assert_eq!(
            p.push_f32(&[0.5; 480], 1_000_000, &mut out),
            Err(ResampleError::UnsupportedInputRate(1_000_000))
        );
        assert_eq!(
            p.push_i16(&[1; 10], 7_000, &mut out),
            Err(ResampleError::UnsupportedInputRate(7_000))
        );
        assert_eq!(out.len(), n);
        assert_eq!(p.input_rate(), Some(48_000));
        p.flush(&mut out);
        assert_eq!(out.len(), 160);
    }

    #[test]
    fn float_input_is_resampled_and_quantized() {
        let mut p = AudioPipeline::new(16_000).unwrap();
        let mut out = Vec::new();
        p.push_f32(&[0.5; 4_800], 48_000, &mut out).unwrap();
        p.flush(&mut out);
        assert_eq!(out.len(), 1_600);
        // Away from the edges (silence before/after), DC passes at unity.
        assert!(out[200..1_400].iter().all(|&s| (s - 16_384).abs() <= 1));
    }
}
