//! The filter design: a Kaiser-windowed sinc low-pass, tabulated per phase.

pub(super) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The continuous Kaiser-windowed sinc low-pass, in input-sample units.
pub(super) struct Kernel {
    /// Cutoff in cycles per input sample.
    cutoff: f64,
    beta: f64,
    taps: usize,
    /// `1 / I0(beta)`, the window's normalization.
    inv_i0_beta: f64,
}

impl Kernel {
    pub(super) fn new(cutoff: f64, beta: f64, taps: usize) -> Kernel {
        Kernel {
            cutoff,
            beta,
            taps,
            inv_i0_beta: 1.0 / bessel_i0(beta),
        }
    }

    /// Kernel value at `x` input samples from the centre.
    pub(super) fn at(&self, x: f64) -> f64 {
        let half = (self.taps / 2) as f64;
        let z = x / half;
        if z.abs() >= 1.0 {
            return 0.0;
        }
        let window = bessel_i0(self.beta * (1.0 - z * z).sqrt()) * self.inv_i0_beta;
        let u = 2.0 * self.cutoff * x;
        let sinc = if u == 0.0 {
            1.0
        } else {
            let pu = std::f64::consts::PI * u;
            sin(pu) / pu
        };
        2.0 * self.cutoff * sinc * window
    }

    /// One row per fractional position `phi` in `[0, 1]`: row entry `k` weighs
    /// padded input `i + k` for an output at `i + phi` (input index
    /// `i + k - (taps/2 - 1)`). Each row is normalized to unit sum so every
    /// phase has exactly unity gain at DC; otherwise the small per-phase gain
    /// differences would modulate the signal with the phase pattern.
    pub(super) fn table(&self, phis: impl Iterator<Item = f64>) -> Vec<f32> {
        let half = (self.taps / 2) as f64;
        let mut out = Vec::new();
        let mut row = vec![0.0f64; self.taps];
        for phi in phis {
            for (k, c) in row.iter_mut().enumerate() {
                *c = self.at(phi + half - 1.0 - k as f64);
            }
            let sum: f64 = row.iter().sum();
            out.extend(row.iter().map(|&c| (c / sum) as f32));
        }
        out
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; runs
/// only while building tables).
/// `sin(x)` for the filter design, without libm: on wasm32 `f64::sin`
/// links ~7 KB of range reduction built for arguments up to 1e300, while the
/// kernel's arguments stay within a few hundred radians. Reduce to
/// `[-π/2, π/2]`, then an odd Taylor series to x^21 (error < 1e-16 there).
fn sin(x: f64) -> f64 {
    use std::f64::consts::{FRAC_PI_2, PI, TAU};
    let mut r = x - (x / TAU).round() * TAU; // [-π, π]
    if r > FRAC_PI_2 {
        r = PI - r;
    } else if r < -FRAC_PI_2 {
        r = -PI - r;
    }
    let r2 = r * r;
    let mut term = r;
    let mut sum = r;
    let mut n = 1.0;
    for _ in 0..10 {
        term *= -r2 / ((n + 1.0) * (n + 2.0));
        sum += term;
        n += 2.0;
    }
    sum
}

fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_sin_matches_libm_over_the_kernel_range() {
        let mut worst = 0.0f64;
        let mut x = -2000.0;
        while x < 2000.0 {
            worst = worst.max((sin(x) - x.sin()).abs());
            x += 0.0137;
        }
        assert!(worst < 1e-12, "worst error {worst}");
    }
}
