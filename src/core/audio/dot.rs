//! The resampler's inner loop: a dot product of a filter row and the input.

/// Number of independent accumulator lanes in [`dot`]; filter lengths are
/// padded to a multiple of it.
pub(super) const LANES: usize = 16;

/// Dot product of two equal-length slices whose length is a multiple of
/// [`LANES`].
///
/// Sixteen independent accumulators become four 4-lane SIMD registers
/// (LLVM's SLP vectorizer maps them onto SSE, or onto `simd128` when the
/// WebAssembly build enables it): four independent add chains, so add
/// latency does not serialize the loop. The summation order depends only on
/// the index, never on the slice's address, so results are bit-identical
/// however the stream is split into calls.
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        // Fixed-size views: no per-lane bounds checks, so LLVM vectorizes.
        let (x, y) = (lanes(x), lanes(y));
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    // Tree reduction in register order: halves, then quarters, ...
    let mut width = LANES / 2;
    while width > 0 {
        for k in 0..width {
            acc[k] += acc[k + width];
        }
        width /= 2;
    }
    acc[0]
}

/// A `chunks_exact(LANES)` item as an array reference (the length check
/// folds away, as the chunk length is known).
#[inline(always)]
fn lanes(chunk: &[f32]) -> &[f32; LANES] {
    chunk.try_into().expect("chunks_exact yields LANES items")
}
