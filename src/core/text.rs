//! Strings built without `core::fmt`. Every `format!` pulls the formatting
//! machinery (kilobytes of WebAssembly for `Formatter`, padding, integer
//! and float rendering); the messages of this crate need only pieces and
//! numbers, so they are concatenated from those.

/// Decimal digits of `n`.
pub(crate) fn int(n: u64) -> String {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[i..].iter().map(|&b| b as char).collect()
}

/// `n` as 16 lowercase hex digits.
pub(crate) fn hex16(n: u64) -> String {
    (0..16)
        .rev()
        .map(|i| b"0123456789abcdef"[((n >> (i * 4)) & 15) as usize] as char)
        .collect()
}

/// A number for a person or a JSON document: integers as integers, others
/// with up to six decimals; `NaN` and `±Infinity` spelled out (callers
/// writing JSON never pass them).
pub(crate) fn num(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let a = x.abs();
    let whole = a.trunc();
    let mut frac = ((a - whole) * 1e6).round() as u64;
    let mut whole = whole as u64;
    if frac >= 1_000_000 {
        whole += 1;
        frac = 0;
    }
    let mut s = String::from(sign);
    s.push_str(&int(whole));
    if frac != 0 {
        // Six digits with leading zeros, trailing zeros cut.
        let mut digits = [b'0'; 6];
        let mut f = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        let len = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        s.push('.');
        s.extend(digits[..len].iter().map(|&d| d as char));
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_without_the_formatting_machinery() {
        assert_eq!(int(0), "0");
        assert_eq!(int(18_446_744_073_709_551_615), "18446744073709551615");
        assert_eq!(hex16(0x5EED), "0000000000005eed");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(-0.25), "-0.25");
        assert_eq!(num(100.0), "100");
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(0.000_001), "0.000001");
        assert_eq!(num(-0.000_000_1), "0");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::INFINITY), "Infinity");
        assert_eq!(num(2.999_999_9), "3");
    }
}
