//! The state of a generic-protocol stream (`/v1/stream`) that outlives its
//! connections: the high-water mark and the deduplicated audio.

/// One stream's stored audio, across all its connections.
#[derive(Debug, Default)]
pub struct StreamStore {
    /// Bytes stored (the high-water mark `H`).
    pub hwm: u64,
    pub pcm: Vec<u8>,
    pub sample_rate: u32,
    pub channels: u16,
    pub duplicate_bytes: u64,
    pub gap_bytes: u64,
    /// True once the kept audio hit the cap (the mark still advances).
    pub truncated: bool,
}

/// How a frame `[off, off+len)` relates to the stream's high-water mark.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    /// Leading bytes already held.
    pub duplicate: u64,
    /// Bytes missing between `H` and `off`.
    pub gap: u64,
    /// Index in the frame of the first new byte.
    pub skip: usize,
}

impl StreamStore {
    /// Applies a frame at `off`; returns its placement.
    pub fn put(&mut self, off: u64, data: &[u8], cap: usize) -> Placement {
        let len = data.len() as u64;
        let end = off + len;
        let p = if end <= self.hwm {
            Placement {
                duplicate: len,
                gap: 0,
                skip: data.len(),
            }
        } else if off < self.hwm {
            let d = self.hwm - off;
            Placement {
                duplicate: d,
                gap: 0,
                skip: d as usize,
            }
        } else {
            Placement {
                duplicate: 0,
                gap: off - self.hwm,
                skip: 0,
            }
        };
        self.duplicate_bytes += p.duplicate;
        self.gap_bytes += p.gap;
        if end > self.hwm {
            // A gap is audio the client reported as dropped; it is stored as
            // silence so the WAV keeps its timeline.
            if p.gap > 0 && self.pcm.len() as u64 == self.hwm && self.hwm + p.gap <= cap as u64 {
                self.pcm.resize((self.hwm + p.gap) as usize, 0);
            }
            let new = &data[p.skip..];
            if self.pcm.len() as u64 == off.max(self.hwm) && self.pcm.len() + new.len() <= cap {
                self.pcm.extend_from_slice(new);
            } else {
                self.truncated = true;
            }
            self.hwm = end;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_resend_is_deduplicated() {
        let mut s = StreamStore::default();
        let data: Vec<u8> = (0..100u8).collect();
        s.put(0, &data[..60], 1000);
        let p = s.put(40, &data[40..], 1000);
        assert_eq!(
            p,
            Placement {
                duplicate: 20,
                gap: 0,
                skip: 20
            }
        );
        let p = s.put(10, &data[10..30], 1000);
        assert_eq!(p.duplicate, 20);
        assert_eq!(s.pcm, data);
        assert_eq!((s.hwm, s.duplicate_bytes, s.gap_bytes), (100, 40, 0));
    }

    #[test]
    fn gap_is_recorded_and_filled_with_silence() {
        let mut s = StreamStore::default();
        s.put(0, &[1, 1], 1000);
        let p = s.put(6, &[2, 2], 1000);
        assert_eq!(p.gap, 4);
        assert_eq!(s.pcm, vec![1, 1, 0, 0, 0, 0, 2, 2]);
        assert_eq!(s.hwm, 8);
    }
}
