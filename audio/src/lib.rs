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
#![forbid(unsafe_code)]
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
