//! Fixed-size framing of a PCM16 stream.
//!
//! Transcription backends want audio frames of a steady size (e.g. 100 ms);
//! audio arrives in whatever block sizes the browser picks (128-frame worklet
//! quanta, resampler output of varying length). The chunker bridges the two
//! without losing or reordering a single sample.

/// Cuts a PCM16 stream into chunks of exactly `samples_per_chunk` samples.
///
/// Full chunks are emitted as soon as they are complete; whatever is left over
/// is held until more samples arrive or [`Chunker::take_partial`] drains it
/// (on stream close, so the tail is sent rather than dropped).
#[derive(Debug, Clone)]
pub struct Chunker {
    samples_per_chunk: usize,
    /// Samples of the chunk under construction; always `< samples_per_chunk`
    /// between calls.
    pending: Vec<i16>,
}

impl Chunker {
    /// Creates a chunker emitting chunks of `samples_per_chunk` samples.
    ///
    /// # Panics
    ///
    /// If `samples_per_chunk` is 0: a zero-sized chunk can never be filled,
    /// so this is a programming error rather than a runtime condition.
    pub fn new(samples_per_chunk: usize) -> Chunker {
        assert!(samples_per_chunk > 0, "Chunker needs samples_per_chunk > 0");
        Chunker {
            samples_per_chunk,
            pending: Vec::with_capacity(samples_per_chunk),
        }
    }

    /// The chunk size in samples.
    pub fn samples_per_chunk(&self) -> usize {
        self.samples_per_chunk
    }

    /// Adds samples and calls `emit` once per completed chunk, in stream
    /// order. Each emitted slice has exactly [`Self::samples_per_chunk`]
    /// samples; the remainder is kept for the next call.
    ///
    /// Chunks lying entirely inside `input` are passed straight from it,
    /// without copying.
    pub fn push(&mut self, mut input: &[i16], mut emit: impl FnMut(&[i16])) {
        let n = self.samples_per_chunk;
        if !self.pending.is_empty() {
            let take = (n - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < n {
                return;
            }
            emit(&self.pending);
            self.pending.clear();
        }
        let mut chunks = input.chunks_exact(n);
        for chunk in &mut chunks {
            emit(chunk);
        }
        self.pending.extend_from_slice(chunks.remainder());
    }

    /// Number of samples held back, waiting to complete a chunk.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Removes and returns the held samples (shorter than a chunk), e.g. to
    /// send the stream's tail when it closes. `None` when nothing is held.
    pub fn take_partial(&mut self) -> Option<Vec<i16>> {
        if self.pending.is_empty() {
            return None;
        }
        let fresh = Vec::with_capacity(self.samples_per_chunk);
        Some(std::mem::replace(&mut self.pending, fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunker: &mut Chunker, input: &[i16], chunks: &mut Vec<Vec<i16>>) {
        chunker.push(input, |c| chunks.push(c.to_vec()));
    }

    #[test]
    fn chunks_have_exact_size_and_keep_stream_order() {
        let mut c = Chunker::new(4);
        assert_eq!(c.samples_per_chunk(), 4);
        let mut chunks = Vec::new();
        collect(&mut c, &[0, 1, 2], &mut chunks);
        assert!(chunks.is_empty());
        assert_eq!(c.pending(), 3);
        collect(&mut c, &[3, 4, 5, 6, 7, 8, 9, 10, 11, 12], &mut chunks);
        assert_eq!(
            chunks,
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10, 11]]
        );
        assert_eq!(c.pending(), 1);
        assert_eq!(c.take_partial(), Some(vec![12]));
        assert_eq!(c.pending(), 0);
        assert_eq!(c.take_partial(), None);
    }

    #[test]
    fn no_sample_is_lost_or_duplicated_for_any_block_size() {
        // Seeded LCG: deterministic "random" block sizes.
        let mut seed = 0x1234_5678_u32;
        let stream: Vec<i16> = (0..10_000).map(|i| (i % 30_000) as i16).collect();
        for chunk_len in [1, 2, 7, 160, 1600] {
            let mut c = Chunker::new(chunk_len);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let n = ((seed >> 16) as usize % 500).min(rest.len());
                c.push(&rest[..n], |chunk| {
                    assert_eq!(chunk.len(), chunk_len);
                    got.extend_from_slice(chunk);
                });
                rest = &rest[n..];
                assert!(c.pending() < chunk_len);
            }
            assert_eq!(got.len() + c.pending(), stream.len());
            got.extend(c.take_partial().unwrap_or_default());
            assert_eq!(got, stream, "chunk_len {chunk_len}");
        }
    }

    #[test]
    fn empty_push_emits_nothing_and_keeps_pending() {
        let mut c = Chunker::new(3);
        c.push(&[1], |_| panic!("no chunk expected"));
        c.push(&[], |_| panic!("no chunk expected"));
        assert_eq!(c.pending(), 1);
    }

    #[test]
    fn chunker_is_reusable_after_taking_the_partial_tail() {
        let mut c = Chunker::new(2);
        c.push(&[1], |_| {});
        assert_eq!(c.take_partial(), Some(vec![1]));
        let mut chunks = Vec::new();
        collect(&mut c, &[2, 3, 4], &mut chunks);
        assert_eq!(chunks, [vec![2, 3]]);
        assert_eq!(c.take_partial(), Some(vec![4]));
    }

    #[test]
    #[should_panic(expected = "samples_per_chunk > 0")]
    fn zero_chunk_size_is_rejected_up_front() {
        let _ = Chunker::new(0);
    }
}
