//! Streaming sample-rate conversion with a windowed-sinc polyphase FIR.
//!
//! # Design
//!
//! The ideal converter evaluates the band-limited input at output instants
//! `t_n = n * from / to` (in input samples). We approximate the band limit
//! with a Kaiser-windowed sinc kernel `g` of `taps` input samples, so each
//! output is one dot product of `taps` consecutive inputs with a *phase* of
//! the kernel (the kernel sampled at the fractional part of `t_n`):
//!
//! * When `to / gcd` (the number of distinct fractional positions) is small,
//!   every phase is precomputed ("exact" mode): one dot product per output.
//! * Otherwise (awkward ratios such as 47 999 → 16 000) a table of a few
//!   hundred phases is precomputed; each output linearly interpolates the
//!   two neighbouring rows into a scratch row, then takes one dot product.
//!
//! The kernel is centred on `t_n` (linear phase, zero group delay), and input
//! before the stream start is treated as silence, so output sample `n`
//! represents input time `n * from / to` exactly: no alignment offset to
//! undo, and after [`Resampler::flush`] the output holds exactly
//! `ceil(input_len * to / from)` samples. The price is look-ahead: an output
//! is only emitted once `taps / 2` inputs past its instant have arrived
//! ([`Resampler::lookahead_input_samples`]).
//!
//! Position bookkeeping is exact integer arithmetic (no accumulated float
//! drift), and the arithmetic for a given output depends only on the input
//! values, never on how the input was split into calls: block sizes cannot
//! change a single bit of the output.

use super::dot::{dot, LANES};
use super::kernel::{gcd, Kernel};
use super::{MAX_RATE, MIN_RATE};
use std::fmt;

/// Cutoff (−6 dB point) as a fraction of the lower of the two rates.
/// Together with [`TRANSITION`] this puts the stopband edge exactly at the
/// lower Nyquist frequency (0.46 + 0.04 = 0.5), so nothing that could alias
/// survives, while the passband stays flat to 0.42 × rate (6.7 kHz at 16 kHz,
/// above the bulk of speech energy).
const CUTOFF: f64 = 0.46;

/// Full transition band width as a fraction of the lower rate.
const TRANSITION: f64 = 0.08;

/// Stopband attenuation the Kaiser design targets, in dB. 90 dB puts
/// aliases of full-scale content near the 16-bit quantization floor
/// (~98 dB below full scale), so the filter is never the weakest link.
const ATTENUATION_DB: f64 = 90.0;

/// Upper bound on exact mode's table (f32 coefficients), i.e. 1 MiB:
/// WebAssembly memory never shrinks, so ratios with many distinct phases
/// and long filters fall back to interpolated mode instead.
const TABLE_BUDGET: usize = 1 << 18;

/// Most phases exact mode stores (one per distinct output position).
const MAX_PHASES: usize = 1024;

/// Coefficient budget of interpolated mode (256 KiB). Linear interpolation
/// needs far fewer phases than exact mode stores: the ~290 phases this
/// allows a 224-tap filter keep the error around −120 dB (measured: 1 kHz
/// tone SNR 120 dB at 47 999 → 16 000 Hz), so a bigger table buys nothing.
const INTERPOLATED_BUDGET: usize = 1 << 16;

/// Input samples [`Resampler::process`] takes at a time.
const PIECE: usize = 4096;

/// Fewest phases interpolated mode uses even for very long filters; long
/// filters are narrow (small cutoff relative to the input rate), so the
/// kernel is smooth and few phases suffice.
const MIN_PHASES: usize = 64;

/// Error creating a [`Resampler`] (or an [`super::AudioPipeline`]): a rate
/// outside [`MIN_RATE`]`..=`[`MAX_RATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleError {
    /// The input (source) rate in Hz is not supported.
    UnsupportedInputRate(u32),
    /// The output (target) rate in Hz is not supported.
    UnsupportedOutputRate(u32),
}

impl ResampleError {
    /// The message, as [`Display`](fmt::Display) writes it, built without
    /// the formatting machinery.
    pub fn message(&self) -> String {
        use super::int;
        let (which, rate) = match *self {
            ResampleError::UnsupportedInputRate(r) => ("input", r),
            ResampleError::UnsupportedOutputRate(r) => ("output", r),
        };
        [
            "unsupported ",
            which,
            " sample rate ",
            &int(rate.into()),
            " Hz (supported: ",
            &int(MIN_RATE.into()),
            "..=",
            &int(MAX_RATE.into()),
            " Hz)",
        ]
        .concat()
    }
}

impl fmt::Display for ResampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ResampleError {}

/// How outputs are computed from the coefficient table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `from == to`: input is copied through untouched.
    PassThrough,
    /// One table row per distinct fractional position (`up` rows).
    Exact,
    /// `phases + 1` rows on a uniform grid; neighbours are interpolated.
    Interpolated { phases: u64 },
}

/// Streaming sample-rate converter for mono `f32` audio.
///
/// Keeps its filter history across [`Resampler::process`] calls, so a stream
/// can be fed in blocks of any size, including one sample at a time, with
/// bit-identical results. See the module docs for the filter design.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Output instants advance by `down / up` input samples (reduced ratio
    /// `from / to`), split into whole and fractional steps.
    up: u64,
    step_whole: u64,
    step_frac: u64,
    mode: Mode,
    /// Filter length in input samples; a multiple of [`LANES`] so the dot
    /// product needs no remainder loop.
    taps: usize,
    /// Row-major coefficient table, `taps` per row.
    coeffs: Vec<f32>,
    /// Interpolated mode's per-output coefficient row (`taps` long), kept
    /// here so the hot loop never allocates.
    row: Vec<f32>,
    /// Input history. Indices are "padded": padded index `p` is input sample
    /// `p - (taps/2 - 1)`, the first `taps/2 - 1` padded samples being the
    /// silence before the stream start. `buf[0]` has padded index `buf_base`.
    buf: Vec<f32>,
    buf_base: u64,
    /// Next output instant `t = next_i + next_r / up` (input samples). The
    /// window of that output starts at padded index `next_i`.
    next_i: u64,
    next_r: u64,
    /// Input samples received since creation or the last reset.
    received: u64,
}

impl Resampler {
    /// Creates a converter from `from_hz` to `to_hz`.
    ///
    /// Both rates must lie in [`MIN_RATE`]`..=`[`MAX_RATE`]; equal rates give
    /// a pass-through that copies samples unchanged. All filter tables are
    /// computed here, so [`Resampler::process`] never does more than append
    /// to its output.
    ///
    /// # Errors
    ///
    /// [`ResampleError::UnsupportedInputRate`] or
    /// [`ResampleError::UnsupportedOutputRate`], naming the offending rate.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        if !(MIN_RATE..=MAX_RATE).contains(&from_hz) {
            return Err(ResampleError::UnsupportedInputRate(from_hz));
        }
        if !(MIN_RATE..=MAX_RATE).contains(&to_hz) {
            return Err(ResampleError::UnsupportedOutputRate(to_hz));
        }
        let g = gcd(from_hz, to_hz);
        let up = u64::from(to_hz / g);
        let down = u64::from(from_hz / g);

        let (mode, taps, coeffs) = if from_hz == to_hz {
            (Mode::PassThrough, 0, Vec::new())
        } else {
            let min_rate = f64::from(from_hz.min(to_hz));
            let from = f64::from(from_hz);
            // Kernel parameters in cycles per *input* sample.
            let cutoff = CUTOFF * min_rate / from;
            let transition = TRANSITION * min_rate / from;
            // Kaiser's formulas for window shape and length.
            let beta = 0.1102 * (ATTENUATION_DB - 8.7);
            let len = (ATTENUATION_DB - 8.0) / (2.285 * 2.0 * std::f64::consts::PI * transition);
            let taps = ((len.ceil() as usize + 1).div_ceil(LANES) * LANES).max(LANES);
            let kernel = Kernel::new(cutoff, beta, taps);

            let up_rows = up as usize;
            if up_rows <= MAX_PHASES && up_rows * taps <= TABLE_BUDGET {
                let coeffs = kernel.table((0..up_rows).map(|r| r as f64 / up as f64));
                (Mode::Exact, taps, coeffs)
            } else {
                let phases = (INTERPOLATED_BUDGET / taps).clamp(MIN_PHASES, MAX_PHASES);
                let coeffs = kernel.table((0..=phases).map(|p| p as f64 / phases as f64));
                let phases = phases as u64;
                (Mode::Interpolated { phases }, taps, coeffs)
            }
        };

        let row_len = match mode {
            Mode::Interpolated { .. } => taps,
            _ => 0,
        };
        let mut r = Resampler {
            from: from_hz,
            to: to_hz,
            up,
            step_whole: down / up,
            step_frac: down % up,
            mode,
            taps,
            row: vec![0.0; row_len],
            coeffs,
            // Never reallocated: between calls fewer than `2 * taps` samples
            // are kept (see `compact`), `process` adds at most one `PIECE`,
            // `flush` half a filter. Pass-through keeps no history.
            buf: Vec::with_capacity(if taps == 0 {
                0
            } else {
                2 * taps + taps / 2 + PIECE
            }),
            buf_base: 0,
            next_i: 0,
            next_r: 0,
            received: 0,
        };
        r.reset();
        Ok(r)
    }

    /// The input sample rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// The output sample rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Group delay in output samples: how far the output is shifted relative
    /// to the input. Always 0, because the filter is centred on each output
    /// instant (output sample `n` is the input at time `n * from / to`), so
    /// callers can align input and output indices directly. The *streaming*
    /// latency (samples held back waiting for look-ahead) is
    /// [`Resampler::lookahead_input_samples`].
    pub fn latency_samples(&self) -> usize {
        0
    }

    /// How many input samples beyond an output instant must arrive before
    /// that output is emitted (half the filter length; 0 for pass-through).
    /// This is the streaming latency: at 48 kHz → 16 kHz about 2.3 ms.
    /// [`Resampler::flush`] releases the held outputs.
    pub fn lookahead_input_samples(&self) -> usize {
        self.taps / 2
    }

    /// Filter length in input samples (0 for pass-through); each output
    /// costs this many multiply-adds (plus interpolating a coefficient row
    /// of this length, for awkward ratios).
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// Converts `input` and appends every output sample that can be computed
    /// so far to `out`. The rest waits for more input or [`Self::flush`].
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.mode == Mode::PassThrough {
            out.extend_from_slice(input);
            return;
        }
        // Piecewise, so a huge block (seconds of audio at once) never grows
        // the history buffer beyond `taps + PIECE`, and the samples a piece
        // brings in are still in cache when the dot products read them.
        // Splitting cannot change the output (see the module docs).
        for piece in input.chunks(PIECE) {
            self.buf.extend_from_slice(piece);
            self.received += piece.len() as u64;
            self.run(u64::MAX, out);
            self.compact();
        }
    }

    /// Emits the outputs still held back, as if the input were followed by
    /// silence, then resets to a fresh stream. After this, the total output
    /// since the last reset is exactly `ceil(input_len * to / from)` samples.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        if self.mode != Mode::PassThrough {
            // Half a filter of silence completes the window of every output
            // whose instant lies inside the input.
            self.buf.resize(self.buf.len() + self.taps / 2, 0.0);
            self.run(self.received, out);
        }
        self.reset();
    }

    /// Drops all history and held samples, returning to the state right
    /// after [`Resampler::new`].
    pub fn reset(&mut self) {
        self.buf.clear();
        // The silence before the stream start, so the first outputs need no
        // special case (see the padded indexing on `buf`).
        self.buf.resize((self.taps / 2).saturating_sub(1), 0.0);
        self.buf_base = 0;
        self.next_i = 0;
        self.next_r = 0;
        self.received = 0;
    }

    /// Computes outputs while their window is in `buf` and their integer
    /// input position is below `limit`.
    fn run(&mut self, limit: u64, out: &mut Vec<f32>) {
        let taps = self.taps;
        let avail = self.buf.len() as u64 + self.buf_base;
        // Outputs whose window ends inside the buffer.
        let Some(last_start) = avail.checked_sub(taps as u64) else {
            return;
        };
        let end_i = (last_start + 1).min(limit);
        if self.next_i >= end_i {
            return;
        }
        // Upper bound on outputs, so `out` grows at most once per call.
        let estimate =
            ((end_i - self.next_i) * self.up).div_ceil(self.step_whole * self.up + self.step_frac);
        out.reserve(estimate as usize + 1);

        let buf = &self.buf[..];
        let coeffs = &self.coeffs[..];
        let row_buf = &mut self.row[..];
        let (up, whole, frac, base) = (self.up, self.step_whole, self.step_frac, self.buf_base);
        let (mut i, mut r) = (self.next_i, self.next_r);
        match self.mode {
            Mode::PassThrough => {}
            Mode::Exact => {
                while i < end_i {
                    let start = (i - base) as usize;
                    let x = &buf[start..start + taps];
                    let row = r as usize * taps;
                    out.push(dot(&coeffs[row..row + taps], x));
                    (i, r) = advance(i, r, whole, frac, up);
                }
            }
            Mode::Interpolated { phases } => {
                let scale = 1.0 / up as f32;
                // Grid position r · phases / up as row + rem / up, advanced
                // with additions only (no 64-bit division per output).
                let (mut row, mut rem) = ((r * phases) / up, (r * phases) % up);
                let (row_step, rem_step) = ((frac * phases) / up, (frac * phases) % up);
                while i < end_i {
                    let start = (i - base) as usize;
                    let x = &buf[start..start + taps];
                    let at = row as usize * taps;
                    let t = rem as f32 * scale;
                    // Interpolate the coefficients, then one dot product:
                    // an element-wise loop plus the same dot as exact mode
                    // vectorizes reliably, where LLVM vectorized two fused
                    // dots only two lanes wide (seen on x86-64).
                    let (lo, hi) = coeffs[at..at + 2 * taps].split_at(taps);
                    for ((c, &l), &h) in row_buf.iter_mut().zip(lo).zip(hi) {
                        *c = l + t * (h - l);
                    }
                    out.push(dot(row_buf, x));
                    (i, r) = advance(i, r, whole, frac, up);
                    row += row_step;
                    rem += rem_step;
                    if rem >= up {
                        rem -= up;
                        row += 1;
                    }
                    if row >= phases {
                        // `r` wrapped past `up`: the grid position wraps too.
                        row -= phases;
                    }
                }
            }
        }
        self.next_i = i;
        self.next_r = r;
    }

    /// Discards history no future output needs. Done only once at least half
    /// the buffer is dead, so the copying is amortized O(1) per sample even
    /// when called with one sample at a time.
    fn compact(&mut self) {
        let dead = (self.next_i - self.buf_base) as usize;
        if dead > 0 && dead >= self.buf.len() / 2 {
            let dead = dead.min(self.buf.len());
            self.buf.copy_within(dead.., 0);
            self.buf.truncate(self.buf.len() - dead);
            self.buf_base += dead as u64;
        }
    }
}

/// Advances an output instant `i + r / up` by `whole + frac / up`.
#[inline(always)]
fn advance(i: u64, r: u64, whole: u64, frac: u64, up: u64) -> (u64, u64) {
    let r = r + frac;
    if r >= up {
        (i + whole + 1, r - up)
    } else {
        (i + whole, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_all(r: &mut Resampler, input: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        r.process(input, &mut out);
        r.flush(&mut out);
        out
    }

    #[test]
    fn rates_outside_the_supported_range_are_rejected_by_name() {
        for bad in [0, 7_999, 192_001, u32::MAX] {
            let e = Resampler::new(bad, 16_000).unwrap_err();
            assert_eq!(e, ResampleError::UnsupportedInputRate(bad));
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
            let e = Resampler::new(48_000, bad).unwrap_err();
            assert_eq!(e, ResampleError::UnsupportedOutputRate(bad));
            assert!(e.to_string().contains("output"), "{e}");
        }
    }

    #[test]
    fn equal_rates_pass_samples_through_bit_exact() {
        let mut r = Resampler::new(16_000, 16_000).unwrap();
        let input = [0.1, -0.2, f32::MIN_POSITIVE, 1.0];
        assert_eq!(run_all(&mut r, &input), input);
        assert_eq!(r.taps(), 0);
        assert_eq!(r.lookahead_input_samples(), 0);
    }

    #[test]
    fn flushed_output_length_matches_duration_so_no_audio_is_dropped() {
        for (from, to) in [
            (48_000, 16_000),
            (44_100, 16_000),
            (8_000, 16_000),
            (47_999, 16_000),
            (16_000, 44_100),
        ] {
            for n in [0usize, 1, 2, 3, 100, 4_801] {
                let mut r = Resampler::new(from, to).unwrap();
                let out = run_all(&mut r, &vec![0.25; n]);
                let expect = (n as u64 * u64::from(to)).div_ceil(u64::from(from));
                assert_eq!(out.len() as u64, expect, "{from}->{to} n={n}");
            }
        }
    }

    #[test]
    fn dc_gain_is_unity_for_every_phase() {
        for (from, to) in [(44_100, 16_000), (8_000, 16_000), (47_999, 16_000)] {
            let mut r = Resampler::new(from, to).unwrap();
            let mut out = Vec::new();
            r.process(&vec![0.5; from as usize], &mut out);
            // Skip the onset (the stream starts from silence).
            for &y in &out[100..] {
                assert!((y - 0.5).abs() < 1e-5, "{from}->{to}: {y}");
            }
        }
    }

    #[test]
    fn flush_resets_so_the_next_stream_starts_fresh() {
        let input: Vec<f32> = (0..1000).map(|i| ((i * 7) % 13) as f32 / 13.0).collect();
        let mut r = Resampler::new(44_100, 16_000).unwrap();
        let a = run_all(&mut r, &input);
        let b = run_all(&mut r, &input);
        assert_eq!(a, b);
        r.process(&input, &mut Vec::new());
        r.reset();
        assert_eq!(run_all(&mut r, &input), a);
    }

    #[test]
    fn huge_or_tiny_blocks_never_reallocate_the_history_buffer() {
        for (from, to) in [(48_000, 16_000), (47_999, 16_000), (8_000, 16_000)] {
            let mut r = Resampler::new(from, to).unwrap();
            let capacity = r.buf.capacity();
            let mut out = Vec::new();
            r.process(&vec![0.1; 10 * from as usize], &mut out);
            for n in [1, 1, 2, 3, 127, 128, 5_000, 1, 0, 4_097] {
                r.process(&vec![0.1; n], &mut out);
            }
            r.flush(&mut out);
            assert_eq!(r.buf.capacity(), capacity, "{from}->{to}");
        }
    }

    #[test]
    fn awkward_ratios_use_a_bounded_table() {
        let r = Resampler::new(192_000, 8_001).unwrap();
        assert!(matches!(r.mode, Mode::Interpolated { .. }));
        assert!(r.coeffs.len() <= INTERPOLATED_BUDGET + r.taps * (MIN_PHASES + 1));
        let r = Resampler::new(44_100, 16_000).unwrap();
        assert_eq!(r.mode, Mode::Exact);
    }
}
