//! Self-describing audio: every sample encodes its position in the stream,
//! so loss, duplication and reordering show up in the server's copy, and
//! every result the fake server sends names the positions it covers.

/// The target sample rate of every scenario.
pub const RATE: u64 = 16_000;

/// Milliseconds of audio in `bytes` of PCM16 at [`RATE`].
pub fn audio_ms(bytes: u64) -> f64 {
    bytes as f64 / (RATE as f64 * 2.0 / 1000.0)
}

/// The sample at absolute stream position `i`: even positions carry the high
/// 16 bits of `i`, odd ones the low 16 bits, so any two samples starting at
/// an even position spell out where they are (for 74 hours at 16 kHz).
pub fn sample_at(i: u64) -> i16 {
    let v = if i % 2 == 0 { i >> 16 } else { i & 0xFFFF };
    v as u16 as i16
}

/// The samples at positions `from..from + n`.
pub fn samples(from: u64, n: u64) -> Vec<i16> {
    (from..from + n).map(sample_at).collect()
}

/// PCM16 little-endian bytes of positions `from..from + n`.
pub fn pcm_bytes(from: u64, n: u64) -> Vec<u8> {
    samples(from, n)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

/// Decodes a binary audio frame: the position of its first sample and its
/// length in samples. Panics if the frame is not a contiguous run of the
/// stream (a corrupted, reordered or spliced frame). Frames start on chunk
/// boundaries, which are even positions.
pub fn decode_frame(bytes: &[u8]) -> (u64, u64) {
    assert!(bytes.len() % 2 == 0, "odd-length audio frame");
    let s: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(s.len() >= 2, "audio frame of {} samples", s.len());
    let first = ((u64::from(s[0]) << 16) | u64::from(s[1])) - 1;
    assert_eq!(first % 2, 0, "frame starts at odd position {first}");
    for (k, &v) in s.iter().enumerate() {
        let want = sample_at(first + k as u64) as u16;
        assert_eq!(
            v, want,
            "frame starting at {first}: sample {k} is {v}, expected {want}"
        );
    }
    (first, s.len() as u64)
}

/// The stream position ranges a transcript's text names (`audio A..B`,
/// as the fake server writes them).
pub fn named_ranges(text: &str) -> Vec<(u64, u64)> {
    text.split("audio ")
        .skip(1)
        .filter_map(|r| {
            let r = r.split_whitespace().next()?;
            let (a, b) = r.split_once("..")?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}
