//! Conversions between float samples, 16-bit PCM and its little-endian wire form.
//!
//! Every function appends to the caller's `Vec` so the hot path can reuse one
//! buffer per stream instead of allocating per audio block.

use std::fmt;

/// Scale used when quantizing floats: `x * 32767`, so that `+1.0` and `-1.0`
/// map to symmetric codes (`32767` / `-32767`) and a full-scale float sine
/// never wraps or clips asymmetrically.
const TO_PCM16: f32 = 32767.0;

/// Scale used when expanding PCM16: `x / 32768`, so every code (including
/// `-32768`) lands in `[-1.0, 1.0)`. A power of two, hence exact in `f32`.
const FROM_PCM16: f32 = 1.0 / 32768.0;

/// Quantizes float samples (nominally in `[-1.0, 1.0]`) to PCM16 and appends
/// them to `out`.
///
/// Values outside `[-1.0, 1.0]` (including infinities) are clipped, `NaN`
/// becomes silence (`0`), and the rest is `x * 32767` rounded to nearest
/// (ties to even). Never panics: microphone drivers and user-supplied
/// buffers do produce NaN/Inf, and a panic in WebAssembly aborts the client.
///
/// Note the scales are deliberately asymmetric (`* 32767` here, `/ 32768` in
/// [`pcm16_to_f32`]), so a PCM16 → f32 → PCM16 round trip may move a sample
/// by one LSB; [`super::AudioPipeline::push_i16`] avoids the round trip when
/// no resampling is needed.
pub fn f32_to_pcm16(input: &[f32], out: &mut Vec<i16>) {
    out.reserve(input.len());
    out.extend(input.iter().map(|&x| quantize(x)));
}

/// One sample of [`f32_to_pcm16`].
#[inline]
fn quantize(x: f32) -> i16 {
    // `clamp` passes NaN through, so map it first; `max`/`min` order keeps
    // infinities finite. `round_ties_even` lowers to a single `f32.nearest`
    // in WebAssembly, unlike `round`, which needs a libm call.
    let x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
    // In range by construction, so the saturating `as` never saturates.
    (x * TO_PCM16).round_ties_even() as i16
}

/// Expands PCM16 samples to floats in `[-1.0, 1.0)` (`x / 32768`) and appends
/// them to `out`.
pub fn pcm16_to_f32(input: &[i16], out: &mut Vec<f32>) {
    out.reserve(input.len());
    out.extend(input.iter().map(|&x| f32::from(x) * FROM_PCM16));
}

/// Serializes PCM16 samples as little-endian bytes (the wire format of the
/// streaming protocol) and appends them to `out`.
pub fn pcm16_to_le_bytes(input: &[i16], out: &mut Vec<u8>) {
    out.reserve(input.len() * 2);
    for &s in input {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Parses little-endian PCM16 bytes and appends the samples to `out`.
///
/// # Errors
///
/// An odd number of bytes cannot be whole samples: silently dropping the last
/// byte would shift every later sample by one byte and turn the rest of the
/// stream into noise, so it is reported as [`OddLength`] and nothing is
/// appended.
pub fn le_bytes_to_pcm16(input: &[u8], out: &mut Vec<i16>) -> Result<(), OddLength> {
    if input.len() % 2 != 0 {
        return Err(OddLength { len: input.len() });
    }
    out.reserve(input.len() / 2);
    out.extend(
        input
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]])),
    );
    Ok(())
}

/// Error from [`le_bytes_to_pcm16`]: the byte buffer does not hold a whole
/// number of 16-bit samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OddLength {
    /// The offending buffer length in bytes.
    pub len: usize,
}

impl fmt::Display for OddLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PCM16 byte buffer has odd length {} (samples are 2 bytes each)",
            self.len
        )
    }
}

impl std::error::Error for OddLength {}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: f32) -> i16 {
        let mut out = Vec::new();
        f32_to_pcm16(&[x], &mut out);
        out[0]
    }

    #[test]
    fn non_finite_and_out_of_range_floats_clip_instead_of_panicking() {
        assert_eq!(q(f32::NAN), 0);
        assert_eq!(q(-f32::NAN), 0);
        assert_eq!(q(f32::INFINITY), 32767);
        assert_eq!(q(f32::NEG_INFINITY), -32767);
        assert_eq!(q(2.0), 32767);
        assert_eq!(q(-2.0), -32767);
        assert_eq!(q(f32::MAX), 32767);
        assert_eq!(q(f32::MIN), -32767);
        assert_eq!(q(1.0), 32767);
        assert_eq!(q(-1.0), -32767);
        assert_eq!(q(0.0), 0);
        assert_eq!(q(-0.0), 0);
        assert_eq!(q(f32::MIN_POSITIVE), 0);
    }

    #[test]
    fn quantization_rounds_to_nearest_rather_than_truncating() {
        assert_eq!(q(0.5), 16384); // 16383.5 -> ties to even
        assert_eq!(q(1.4 / 32767.0), 1);
        assert_eq!(q(1.6 / 32767.0), 2);
        assert_eq!(q(-1.6 / 32767.0), -2);
    }

    #[test]
    fn conversions_append_instead_of_overwriting() {
        let mut out = vec![7i16];
        f32_to_pcm16(&[0.0, 1.0], &mut out);
        assert_eq!(out, [7, 0, 32767]);
        let mut f = vec![9.0f32];
        pcm16_to_f32(&[0, -32768], &mut f);
        assert_eq!(f, [9.0, 0.0, -1.0]);
        let mut b = vec![0xAAu8];
        pcm16_to_le_bytes(&[0x1234], &mut b);
        assert_eq!(b, [0xAA, 0x34, 0x12]);
    }

    #[test]
    fn pcm16_float_round_trip_moves_samples_by_at_most_one_lsb() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let mut f = Vec::new();
        pcm16_to_f32(&all, &mut f);
        assert!(f.iter().all(|x| (-1.0..1.0).contains(x)));
        let mut back = Vec::new();
        f32_to_pcm16(&f, &mut back);
        for (&a, &b) in all.iter().zip(&back) {
            assert!((i32::from(a) - i32::from(b)).abs() <= 1, "{a} -> {b}");
        }
    }

    #[test]
    fn float_pcm16_round_trip_error_is_within_half_a_step() {
        let mut pcm = Vec::new();
        let xs: Vec<f32> = (0..=2000).map(|i| i as f32 / 1000.0 - 1.0).collect();
        f32_to_pcm16(&xs, &mut pcm);
        for (&x, &s) in xs.iter().zip(&pcm) {
            let back = f32::from(s) / 32767.0;
            assert!((x - back).abs() <= 0.5 / 32767.0 + 1e-7, "{x} -> {s}");
        }
    }

    #[test]
    fn wire_bytes_round_trip_every_sample_value() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let mut bytes = Vec::new();
        pcm16_to_le_bytes(&all, &mut bytes);
        assert_eq!(bytes.len(), all.len() * 2);
        assert_eq!(&bytes[..2], &[0x00, 0x80]); // -32768, little-endian
        let mut back = Vec::new();
        le_bytes_to_pcm16(&bytes, &mut back).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn odd_byte_count_is_an_error_not_a_silent_truncation() {
        let mut out = vec![1i16];
        let err = le_bytes_to_pcm16(&[1, 2, 3], &mut out).unwrap_err();
        assert_eq!(err, OddLength { len: 3 });
        assert!(err.to_string().contains('3'));
        assert_eq!(out, [1], "nothing may be appended on error");
        le_bytes_to_pcm16(&[], &mut out).unwrap();
        assert_eq!(out, [1]);
    }
}
