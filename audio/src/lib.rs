//! Audio preparation: whatever the browser captures (float or 16-bit, any
//! rate from 8 to 192 kHz) becomes 16-bit PCM at the backend's rate, cut
//! into fixed-size chunks.
//!
//! Pure Rust with no dependencies and no allocation in the steady state:
//! it runs inside an AudioWorklet-fed WebAssembly module.
//!
//! A crate of its own so it can be optimised for speed while the rest of
//! the WebAssembly package is optimised for size (`opt-level = 3` here,
//! `"z"` there: see the workspace `Cargo.toml`), and re-exported as
//! `resilient_transcriber::core::audio`.
// One audited exception: the simd128 load in dot.rs (`four`).
#![deny(unsafe_code)]
#![deny(missing_docs)]
//!
//! * [`pcm`] conversions: float ↔ PCM16 ↔ little-endian bytes.
//! * [`Resampler`]: streaming windowed-sinc polyphase sample-rate converter.
//! * [`AudioPipeline`]: any input → PCM16 at the target rate.
//! * [`InterleavedPipeline`]: the same per channel, for interleaved frames.
//! * [`Chunker`]: PCM16 stream → fixed-size chunks.

pub mod chunker;
mod dot;
pub mod interleaved;
mod kernel;
pub mod pcm;
pub mod pipeline;
pub mod resample;

pub use chunker::Chunker;
pub use interleaved::{InterleavedError, InterleavedPipeline, PartialFrame};
pub use pcm::{f32_to_pcm16, le_bytes_to_pcm16, pcm16_to_f32, pcm16_to_le_bytes, OddLength};
pub use pipeline::AudioPipeline;
pub use resample::{ResampleError, Resampler};

/// Lowest input (and output) sample rate accepted, in Hz: telephony audio.
pub const MIN_RATE: u32 = 8_000;

/// Highest input (and output) sample rate accepted, in Hz: the top rate
/// browsers report for audio interfaces.
pub const MAX_RATE: u32 = 192_000;

/// Decimal digits of `n`, without the formatting machinery.
fn int(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().map(|&b| b as char).collect()
}

/// A fingerprint of what [`AudioPipeline`] makes of two seconds of a
/// two-tone signal at 48 kHz (44.1 kHz for the second second, so both
/// resampler modes run) at 16 kHz: FNV-1a over the PCM16 output. The
/// scalar dot product (native) and the simd128 one (the WebAssembly build)
/// are bit-identical by design, so both builds must give
/// [`FINGERPRINT`]; the browser suite checks the WebAssembly side
/// (tests/web.rs), this crate's tests the native one.
#[doc(hidden)]
pub fn fingerprint() -> u64 {
    // Parabolic waves, from + - * / only (IEEE-exact on every target, unlike
    // a libm `sin`), so both builds start from the same input bits.
    let wave = |phase: f32| {
        let p = phase - (phase as u32) as f32;
        let q = if p < 0.5 { p * 2.0 } else { (p - 0.5) * 2.0 };
        let v = 4.0 * q * (1.0 - q);
        if p < 0.5 {
            v
        } else {
            -v
        }
    };
    let tone = |rate: u32, n: usize| {
        let t = n as f32 / rate as f32;
        0.4 * wave(440.0 * t) + 0.3 * wave(3_150.0 * t)
    };
    let mut p = AudioPipeline::new(16_000).unwrap_or_else(|_| unreachable!());
    let mut out = Vec::new();
    for rate in [48_000u32, 44_100] {
        let input: Vec<f32> = (0..rate as usize).map(|n| tone(rate, n)).collect();
        for block in input.chunks(480) {
            if p.push_f32(block, rate, &mut out).is_err() {
                unreachable!("both rates are in range");
            }
        }
    }
    p.flush(&mut out);
    out.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &s| {
        let [a, b] = s.to_le_bytes();
        ((h ^ u64::from(a)).wrapping_mul(0x100_0000_01b3) ^ u64::from(b))
            .wrapping_mul(0x100_0000_01b3)
    })
}

/// What [`fingerprint`] returns on every build.
#[doc(hidden)]
pub const FINGERPRINT: u64 = 0xaa01_eddb_b43b_7926;

#[cfg(test)]
mod fingerprint_tests {
    #[test]
    fn the_native_build_gives_the_fingerprint() {
        assert_eq!(
            super::fingerprint(),
            super::FINGERPRINT,
            "{:#x}",
            super::fingerprint()
        );
    }
}
