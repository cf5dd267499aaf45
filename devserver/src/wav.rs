//! Minimal 16-bit PCM WAV writing and reading (fixtures, recordings).

/// Wraps little-endian PCM16 bytes in a canonical 44-byte WAV header.
pub fn wav_bytes(pcm: &[u8], sample_rate: u32, channels: u16) -> Vec<u8> {
    let data_len = pcm.len() as u32;
    let block_align = channels * 2;
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// A decoded PCM16 WAV file.
#[derive(Debug, Clone)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Raw little-endian PCM16 bytes of the `data` chunk.
    pub pcm: Vec<u8>,
}

/// Parses a PCM16 WAV file, walking the chunks (espeak/sox files may carry
/// extra chunks before `data`).
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        let end = body.saturating_add(len).min(bytes.len());
        match id {
            b"fmt " if end - body >= 16 => {
                let b = &bytes[body..end];
                fmt = Some((
                    u16::from_le_bytes([b[0], b[1]]),
                    u16::from_le_bytes([b[2], b[3]]),
                    u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                    u16::from_le_bytes([b[14], b[15]]),
                ));
            }
            b"data" => {
                let (format, channels, sample_rate, bits) = fmt.ok_or("data chunk before fmt")?;
                if format != 1 || bits != 16 {
                    return Err(format!("unsupported WAV format {format} with {bits} bits"));
                }
                return Ok(Wav {
                    sample_rate,
                    channels,
                    pcm: bytes[body..end].to_vec(),
                });
            }
            _ => {}
        }
        pos = body + len + (len & 1);
    }
    Err("no data chunk".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pcm: Vec<u8> = (0..200u8).collect();
        let w = parse_wav(&wav_bytes(&pcm, 16_000, 1)).unwrap();
        assert_eq!((w.sample_rate, w.channels), (16_000, 1));
        assert_eq!(w.pcm, pcm);
    }
}
