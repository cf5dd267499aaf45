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
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
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

/// [`dot`] written with `simd128` itself, for the WebAssembly build: the
/// package is built at `opt-level = "z"` for size, where LLVM's SLP
/// vectorizer does not run, so the scalar loop above would stay scalar
/// (~180x real time instead of ~2000x for 48 kHz -> 16 kHz). The four
/// vectors are the sixteen accumulators, lane for lane; multiplication,
/// addition and the reduction happen in exactly the scalar version's order
/// (no fused multiply-add), so both give bit-identical results.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    use core::arch::wasm32::{f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat};
    let mut v = [f32x4_splat(0.0); LANES / 4];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        let (x, y) = (lanes(x), lanes(y));
        for (j, acc) in v.iter_mut().enumerate() {
            *acc = f32x4_add(*acc, f32x4_mul(four(x, 4 * j), four(y, 4 * j)));
        }
    }
    // acc[k] += acc[k + 8], then acc[k] += acc[k + 4]: whole vectors.
    let v = f32x4_add(f32x4_add(v[0], v[2]), f32x4_add(v[1], v[3]));
    // acc[k] += acc[k + 2], then acc[0] += acc[1].
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<2>(v))
        + (f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<3>(v))
}

/// Four lanes of `s` from `i`, in one `v128.load`. Built lane by lane
/// (`f32x4(s[i], ..)`) they cost four loads each in this build: the link-time
/// code generation runs at the package's opt-level "z", whatever this
/// crate's own level, and does not merge them (measured with the bench
/// page, 48 kHz -> 16 kHz: 445-562x real time lane by lane, 1,136-1,613x
/// with whole loads).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
#[allow(unsafe_code)]
fn four(s: &[f32; LANES], i: usize) -> core::arch::wasm32::v128 {
    let quad: &[f32] = &s[i..i + 4];
    // SAFETY: `quad` is four f32s (16 bytes) of a live borrow, the slice
    // index above checks the range, and `v128_load` has no alignment
    // requirement (it emits an align=1 load).
    unsafe { core::arch::wasm32::v128_load(quad.as_ptr().cast()) }
}

/// A `chunks_exact(LANES)` item as an array reference (the length check
/// folds away, as the chunk length is known).
#[inline(always)]
fn lanes(chunk: &[f32]) -> &[f32; LANES] {
    match chunk.try_into() {
        Ok(a) => a,
        // `chunks_exact(LANES)` yields LANES items; no Debug of the error
        // (it would pull the formatting machinery into the bundle).
        Err(_) => unreachable!(),
    }
}
