//! RLE Lossless frames (PS3.5 Annex G) at 8, 16 and 32 bits allocated; dicom-rs's RLE decoder stops
//! at 16, and RT dose grids store 32.
//!
//! A frame is a 64-byte header (segment count, then up to 15 segment offsets) and PackBits segments:
//! one per byte of each sample, most significant byte first, sample by sample. The output is
//! interleaved little-endian samples, as the rest of the pixel pipeline reads them.

use crate::Error;

/// RLE Lossless.
pub(crate) const TRANSFER_SYNTAX: &str = "1.2.840.10008.1.2.5";

/// Decodes one frame's encoded bytes into `pixels × samples` little-endian samples of
/// `bits_allocated / 8` bytes each.
pub(crate) fn decode_frame(
    stream: &[u8],
    index: u32,
    pixels: usize,
    samples: u16,
    bits_allocated: u16,
) -> Result<Vec<u8>, Error> {
    let fail = |detail: String| Error::PixelData { frame: index, detail: format!("RLE: {detail}") };
    let bytes_per_sample = match bits_allocated {
        8 | 16 | 32 => bits_allocated as usize / 8,
        other => return Err(fail(format!("Bits Allocated {other} cannot be run-length encoded"))),
    };
    let header =
        stream.get(..64).ok_or_else(|| fail("the frame is shorter than its 64-byte header".into()))?;
    let word = |i: usize| {
        u32::from_le_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]])
    };
    let count = word(0) as usize;
    let expected = samples as usize * bytes_per_sample;
    if count != expected {
        return Err(fail(format!("{count} segments, expected {expected}")));
    }
    let mut segments = Vec::with_capacity(count);
    for segment in 0..count {
        let start = word(1 + segment) as usize;
        let end = if segment + 1 < count { word(2 + segment) as usize } else { stream.len() };
        let encoded = stream
            .get(start..end.min(stream.len()))
            .ok_or_else(|| fail(format!("segment {segment} lies outside the frame")))?;
        // A PackBits run is two bytes for at most 128: a frame too short for its size is refused
        // before its buffer is allocated (a few bytes must not claim 256 MiB).
        if encoded.len().saturating_mul(64) < pixels {
            return Err(fail(format!("segment {segment} of {} bytes cannot hold {pixels}", encoded.len())));
        }
        segments.push(encoded);
    }
    let mut out = vec![0u8; pixels * expected];
    for (segment, encoded) in segments.into_iter().enumerate() {
        let decoded = unpack_bits(encoded, pixels);
        if decoded.len() < pixels {
            return Err(fail(format!("segment {segment} holds {} of {pixels} bytes", decoded.len())));
        }
        // Segment `segment` is byte `significance` (0 = most significant) of sample `sample`.
        let (sample, significance) = (segment / bytes_per_sample, segment % bytes_per_sample);
        let byte = bytes_per_sample - 1 - significance;
        for (pixel, &value) in decoded.iter().enumerate() {
            out[(pixel * samples as usize + sample) * bytes_per_sample + byte] = value;
        }
    }
    Ok(out)
}

/// PackBits, stopping once `limit` bytes are out (encoders pad segments to an even length).
fn unpack_bits(encoded: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(limit);
    let mut at = 0;
    while at < encoded.len() && out.len() < limit {
        let n = encoded[at] as i8;
        at += 1;
        match n {
            0.. => {
                let run = &encoded[at..(at + n as usize + 1).min(encoded.len())];
                out.extend_from_slice(run);
                at += run.len();
            }
            -127..=-1 => {
                let Some(&value) = encoded.get(at) else { break };
                out.extend(std::iter::repeat_n(value, 1 + n.unsigned_abs() as usize));
                at += 1;
            }
            -128 => {}
        }
    }
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame header for these segments, followed by the segments.
    fn frame(segments: &[&[u8]]) -> Vec<u8> {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        let mut body = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            let offset = 64 + body.len() as u32;
            header[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
            body.extend_from_slice(segment);
        }
        [header, body].concat()
    }

    #[test]
    fn packbits_literals_runs_and_no_ops() {
        assert_eq!(unpack_bits(&[2, 1, 2, 3, 0xFE, 9, 0x80, 0, 7], 10), [1, 2, 3, 9, 9, 9, 7]);
        assert_eq!(unpack_bits(&[0xFD, 5], 2), [5, 5], "stops at the limit");
        assert_eq!(unpack_bits(&[5, 1], 10), [1], "a literal cut short");
    }

    #[test]
    fn sixteen_bit_segments_are_high_byte_first() {
        // Two pixels 0x0102 and 0x0304: high bytes [1, 3], low bytes [2, 4].
        let f = frame(&[&[1, 1, 3], &[1, 2, 4]]);
        assert_eq!(decode_frame(&f, 0, 2, 1, 16).unwrap(), [2, 1, 4, 3]);
    }

    #[test]
    fn thirty_two_bit_colour_interleaves_samples() {
        // One pixel: R = 0x01020304, G = 0, B = 0xFFFFFFFF.
        let segments: Vec<Vec<u8>> =
            [1u8, 2, 3, 4, 0, 0, 0, 0, 255, 255, 255, 255].iter().map(|&b| vec![0, b]).collect();
        let refs: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        let out = decode_frame(&frame(&refs), 0, 1, 3, 32).unwrap();
        assert_eq!(out, [4, 3, 2, 1, 0, 0, 0, 0, 255, 255, 255, 255]);
    }

    #[test]
    fn hostile_frames_are_errors() {
        assert!(decode_frame(&[0; 10], 0, 1, 1, 8).is_err(), "no header");
        assert!(decode_frame(&frame(&[&[0, 1]]), 0, 4, 1, 8).is_err(), "segment too short");
        assert!(decode_frame(&frame(&[&[0, 1]]), 0, 1, 1, 16).is_err(), "too few segments");
        let bomb = decode_frame(&frame(&[&[0x81, 0]]), 0, 16384 * 16384, 1, 8).unwrap_err();
        assert!(bomb.to_string().contains("cannot hold"), "refused before allocating: {bomb}");
        let mut wild = frame(&[&[0, 1]]);
        wild[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_frame(&wild, 0, 1, 1, 8).is_err(), "offset past the end");
    }
}
