//! The `counter` engine: names the stream positions it received.
//!
//! The client's fault-matrix tests stream *self-describing* PCM16: the
//! sample at absolute stream position `i` (in samples of the first channel)
//! is `(i >> 16) as i16` when `i` is even and `(i & 0xFFFF) as u16 as i16`
//! when `i` is odd, so two consecutive samples from an even position spell
//! out that position. This engine decodes the positions of what it receives
//! and says, in its transcripts, exactly which positions each result covers:
//! `pos 16000-32000` (first position inclusive, end exclusive). Where the
//! received audio jumps (a gap, or a resend going back) every contiguous
//! run is listed: `pos 0-8000 pos 6400-16000`. Samples that do not decode
//! (ordinary audio) are counted as `undecodable N`.
//!
//! Results: a final per second of received audio, an interim every 250 ms
//! naming the runs of the second so far, and on flush a final for the rest.
//! Their times are the socket's audio time like any engine's (the worker
//! tiles them); only the text speaks of stream positions. It works at the
//! input rate (resampling would destroy the codes).

use super::{RecEvent, Recognizer, Transcript};

/// The sample at stream position `i` of self-describing audio.
pub fn encode(i: u64) -> i16 {
    if i.is_multiple_of(2) {
        (i >> 16) as u16 as i16
    } else {
        (i & 0xFFFF) as u16 as i16
    }
}

/// Self-describing PCM16 little-endian bytes for positions `[from, to)`.
pub fn encode_bytes(from: u64, to: u64) -> Vec<u8> {
    (from..to).flat_map(|i| encode(i).to_le_bytes()).collect()
}

/// One piece of what was received, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Contiguous stream positions `[start, end)`.
    Run(u64, u64),
    /// This many samples that decode to no position.
    Undecodable(u64),
}

/// Turns received samples back into stream positions, sample by sample.
///
/// A continuation of the expected position is checked on whole pairs where
/// possible (an even position's high half and the next odd position's low
/// half identify a position exactly), so a jump back within the same 65 536
/// block is noticed at its first sample. Otherwise the decoder resyncs:
/// `(hi, odd lo)` may start a pair at an even position, `(odd lo, hi)` may
/// be an odd position followed by an even one; the two readings can both
/// fit two samples (`(0xFFFF, 1)`), never four, so up to four samples are
/// looked at before deciding.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Samples not yet attributed (at most three are kept between calls).
    pending: Vec<i16>,
    /// The position the next sample has if the stream is continuous.
    expect: Option<u64>,
    pieces: Vec<Piece>,
}

/// Whether `w` (as far as it goes) is the encoding of positions from `p`.
fn fits(w: &[i16], p: u64) -> bool {
    w.iter().zip(p..).all(|(&s, i)| s == encode(i))
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes `samples`, keeping the few it cannot decide yet.
    pub fn push(&mut self, samples: &[i16]) {
        self.pending.extend_from_slice(samples);
        self.run(false);
    }

    /// Decides every kept sample with what is there (no more is coming
    /// for now: a result is due).
    pub fn settle(&mut self) {
        self.run(true);
    }

    fn run(&mut self, settle: bool) {
        let pending = std::mem::take(&mut self.pending);
        let mut i = 0;
        while i < pending.len() {
            match self.step(&pending[i..], settle) {
                Some(n) => i += n,
                None => break,
            }
        }
        self.pending = pending[i..].to_vec();
    }

    /// Attributes the leading sample(s) of `w`; returns how many, or None
    /// when more samples are needed to decide.
    fn step(&mut self, w: &[i16], settle: bool) -> Option<usize> {
        if let Some(e) = self.expect {
            if e % 2 == 1 || w.len() >= 2 || settle {
                let n = if e.is_multiple_of(2) {
                    w.len().min(2)
                } else {
                    1
                };
                if fits(&w[..n], e) {
                    self.accept(e, n as u64);
                    return Some(n);
                }
            } else {
                return None;
            }
        }
        if w.len() < 4 && !settle {
            return None;
        }
        let look = &w[..w.len().min(4)];
        if look.len() >= 2 {
            let (ua, ub) = (u64::from(look[0] as u16), u64::from(look[1] as u16));
            if ub % 2 == 1 {
                // An even position p: its high half, then p + 1's low half.
                let p = (ua << 16) | (ub & !1);
                if fits(look, p) {
                    self.accept(p, 2);
                    return Some(2);
                }
            }
            if ua % 2 == 1 {
                // An odd position q, then q + 1's high half (one more than
                // q's when q's low half is 0xFFFF).
                let high = if ua == 0xFFFF {
                    ub.wrapping_sub(1) & 0xFFFF
                } else {
                    ub
                };
                let q = (high << 16) | ua;
                if fits(look, q) {
                    self.accept(q, 1);
                    return Some(1);
                }
            }
        }
        self.undecodable(1);
        Some(1)
    }

    fn accept(&mut self, p: u64, n: u64) {
        match self.pieces.last_mut() {
            Some(Piece::Run(_, end)) if *end == p && self.expect == Some(p) => *end += n,
            _ => self.pieces.push(Piece::Run(p, p + n)),
        }
        self.expect = Some(p + n);
    }

    fn undecodable(&mut self, n: u64) {
        self.expect = None;
        match self.pieces.last_mut() {
            Some(Piece::Undecodable(k)) => *k += n,
            _ => self.pieces.push(Piece::Undecodable(n)),
        }
    }

    /// The pieces decoded so far, without taking them.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Takes the pieces decoded so far (the next run continues the stream).
    pub fn take(&mut self) -> Vec<Piece> {
        std::mem::take(&mut self.pieces)
    }
}

/// `pos 0-8000 pos 6400-16000 undecodable 3`.
pub fn describe(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Run(s, e) => format!("pos {s}-{e}"),
            Piece::Undecodable(n) => format!("undecodable {n}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub struct Counter {
    rate: u64,
    dec: Decoder,
    /// Samples fed so far.
    fed: u64,
    /// Sample count at the last final / interim.
    last_final: u64,
    last_interim: u64,
}

impl Counter {
    pub fn new(rate: u32) -> Counter {
        Counter {
            rate: u64::from(rate.max(4)),
            dec: Decoder::new(),
            fed: 0,
            last_final: 0,
            last_interim: 0,
        }
    }

    fn secs(&self, n: u64) -> f64 {
        n as f64 / self.rate as f64
    }

    fn result(&self, pieces: &[Piece], is_final: bool) -> Transcript {
        let mut t = Transcript::new(
            describe(pieces),
            self.secs(self.last_final),
            self.secs(self.fed),
            is_final,
            1.0,
        );
        t.speech_final = false;
        t
    }

    fn boundary(&mut self, out: &mut Vec<RecEvent>) {
        if self.fed - self.last_final >= self.rate {
            // A second is complete: its samples are all attributed (the
            // kept one too), so the text names exactly this second's audio.
            self.dec.settle();
            let pieces = self.dec.take();
            out.push(RecEvent::Transcript(self.result(&pieces, true)));
            self.last_final = self.fed;
            self.last_interim = self.fed;
        } else if self.fed - self.last_interim >= self.rate / 4 {
            out.push(RecEvent::Transcript(self.result(self.dec.pieces(), false)));
            self.last_interim = self.fed;
        }
    }
}

impl Recognizer for Counter {
    fn sample_rate(&self) -> u32 {
        self.rate as u32
    }

    fn feed(&mut self, mut samples: &[i16], out: &mut Vec<RecEvent>) {
        while !samples.is_empty() {
            // Up to the next interim or final boundary, so results fall
            // exactly on 250 ms / 1 s of received audio.
            let next_final = self.last_final + self.rate;
            let next_interim = self.last_interim + self.rate / 4;
            let room = (next_final.min(next_interim) - self.fed) as usize;
            let n = room.clamp(1, samples.len());
            self.dec.push(&samples[..n]);
            self.fed += n as u64;
            samples = &samples[n..];
            self.boundary(out);
        }
    }

    fn flush(&mut self, out: &mut Vec<RecEvent>) {
        self.dec.settle();
        let pieces = self.dec.take();
        if self.fed > self.last_final || !pieces.is_empty() {
            out.push(RecEvent::Transcript(self.result(&pieces, true)));
        }
        self.last_final = self.fed;
        self.last_interim = self.fed;
    }

    fn in_utterance(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(from: u64, to: u64) -> Vec<i16> {
        (from..to).map(encode).collect()
    }

    fn decode(chunks: &[Vec<i16>]) -> Vec<Piece> {
        let mut d = Decoder::new();
        for c in chunks {
            d.push(c);
        }
        d.settle();
        d.take()
    }

    #[test]
    fn the_encoding_spells_out_even_positions() {
        let p: u64 = 0x0003_4A2C;
        assert_eq!(encode(p), 3);
        assert_eq!(encode(p + 1) as u16, 0x4A2D);
        assert_eq!(encode(0x1_0000_0000 - 2) as u16, 0xFFFF);
    }

    #[test]
    fn a_continuous_stream_is_one_run_whatever_the_chunking() {
        let all = samples(0, 200_000);
        for size in [1usize, 2, 3, 1600, 4801] {
            let chunks: Vec<Vec<i16>> = all.chunks(size).map(<[i16]>::to_vec).collect();
            assert_eq!(
                decode(&chunks),
                vec![Piece::Run(0, 200_000)],
                "chunks of {size}"
            );
        }
        // Starting mid-stream, and at an odd position.
        assert_eq!(
            decode(&[samples(70_001, 140_003)]),
            vec![Piece::Run(70_001, 140_003)]
        );
    }

    #[test]
    fn a_resend_going_back_starts_a_new_run() {
        // Back within the same 65 536 block: only the odd sample tells.
        let got = decode(&[samples(0, 8000), samples(6400, 16_000)]);
        assert_eq!(got, vec![Piece::Run(0, 8000), Piece::Run(6400, 16_000)]);
        assert_eq!(describe(&got), "pos 0-8000 pos 6400-16000");
        // Back across a block boundary, to an odd position.
        let got = decode(&[samples(140_000, 140_100), samples(131_071, 131_200)]);
        assert_eq!(
            got,
            vec![Piece::Run(140_000, 140_100), Piece::Run(131_071, 131_200)]
        );
    }

    #[test]
    fn a_gap_starts_a_new_run() {
        let got = decode(&[samples(0, 1600), samples(4800, 6400), samples(6400, 8000)]);
        assert_eq!(got, vec![Piece::Run(0, 1600), Piece::Run(4800, 8000)]);
        // A jump of exactly 65 536 (same low halves) is still seen.
        let got = decode(&[samples(10, 20), samples(65_556, 65_600)]);
        assert_eq!(got, vec![Piece::Run(10, 20), Piece::Run(65_556, 65_600)]);
    }

    /// `(0xFFFF, 1)` reads as the even position 0xFFFF_0000 or as the odd
    /// position 0xFFFF; the samples after it decide.
    #[test]
    fn an_ambiguous_pair_is_decided_by_the_samples_after_it() {
        let got = decode(&[samples(65_000, 70_000), samples(65_535, 66_000)]);
        assert_eq!(
            got,
            vec![Piece::Run(65_000, 70_000), Piece::Run(65_535, 66_000)]
        );
        let p = 0xFFFF_0000;
        assert_eq!(decode(&[samples(p, p + 10)]), vec![Piece::Run(p, p + 10)]);
    }

    #[test]
    fn odd_positions_whose_low_half_wraps_decode_right() {
        // 0x1FFFF is odd with low half 0xFFFF; the next sample is the high
        // half of 0x20000, one more than 0x1FFFF's.
        assert_eq!(
            decode(&[samples(0x1_FFFF, 0x2_0010)]),
            vec![Piece::Run(0x1_FFFF, 0x2_0010)]
        );
    }

    #[test]
    fn ordinary_audio_is_undecodable_not_invented_positions() {
        let silence = vec![0i16; 100];
        let got = decode(&[samples(0, 10), silence, samples(50, 60)]);
        assert_eq!(
            got,
            vec![
                Piece::Run(0, 10),
                Piece::Undecodable(100),
                Piece::Run(50, 60)
            ]
        );
        assert_eq!(describe(&got), "pos 0-10 undecodable 100 pos 50-60");
    }

    #[test]
    fn a_final_per_second_and_an_interim_every_quarter_second() {
        let mut c = Counter::new(16_000);
        let mut out = Vec::new();
        let all = samples(0, 40_000);
        for chunk in all.chunks(1600) {
            c.feed(chunk, &mut out);
        }
        c.flush(&mut out);
        let ts: Vec<&Transcript> = out
            .iter()
            .map(|e| match e {
                RecEvent::Transcript(t) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        let finals: Vec<(&str, f64, f64)> = ts
            .iter()
            .filter(|t| t.is_final)
            .map(|t| (t.text.as_str(), t.start, t.end))
            .collect();
        assert_eq!(
            finals,
            vec![
                ("pos 0-16000", 0.0, 1.0),
                ("pos 16000-32000", 1.0, 2.0),
                ("pos 32000-40000", 2.0, 2.5)
            ]
        );
        let interims: Vec<&str> = ts
            .iter()
            .filter(|t| !t.is_final)
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(
            &interims[..3],
            &["pos 0-4000", "pos 0-8000", "pos 0-12000"],
            "{interims:?}"
        );
        // 250 ms steps: three before each full second, two in the last half.
        assert_eq!(interims.len(), 3 + 3 + 2, "{interims:?}");
    }
}
