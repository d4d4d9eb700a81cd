//! A JPEG 2000 / HTJ2K frame's size checked against the header before dicom-rs decodes it.
//!
//! dicom-rs's JPEG 2000 adapter sizes its output by Rows × Columns × Samples per Pixel and then
//! writes every sample of every component the codestream holds into it, so a stream larger than
//! the header says, or with more components, indexes past the buffer and panics (found by
//! fuzzing: a 512 × 512 frame's stream claiming more, `fuzz/artifacts/jpeg2000/`). The stream's
//! SIZ marker segment (T.800 A.5.1) says its size before any of it is decoded.

/// The transfer syntaxes decoded through dicom-rs's JPEG 2000 adapter: JPEG 2000 (lossless, lossy,
/// Part 2 multi-component) and HTJ2K.
pub(crate) const TRANSFER_SYNTAXES: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

/// Refuses a codestream (bare, or in a JP2 file) whose components do not fit a `columns` × `rows`
/// frame of `samples` samples per pixel. A stream without a readable SIZ is left to the decoder,
/// which refuses it.
pub(crate) fn check_size(stream: &[u8], columns: u32, rows: u32, samples: u16) -> Result<(), String> {
    // SOC followed at once by SIZ starts every codestream; in a JP2 file it follows the header boxes.
    let Some(at) = stream.windows(4).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) else { return Ok(()) };
    let siz = &stream[at + 4..];
    let u16_at = |i: usize| siz.get(i..i + 2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])));
    let u32_at = |i: usize| siz.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(x), Some(y), Some(x0), Some(y0), Some(components)) =
        (u32_at(4), u32_at(8), u32_at(12), u32_at(16), u16_at(36))
    else {
        return Ok(());
    };
    if components > u32::from(samples) {
        return Err(format!(
            "the JPEG 2000 stream holds {components} components where the header says {samples} sample(s) per pixel"
        ));
    }
    let frame = u64::from(columns) * u64::from(rows);
    for c in 0..components as usize {
        let (Some(&dx), Some(&dy)) = (siz.get(38 + 3 * c + 1), siz.get(38 + 3 * c + 2)) else {
            return Ok(());
        };
        if dx == 0 || dy == 0 {
            return Err(format!("the JPEG 2000 stream's component {c} has a subsampling of 0"));
        }
        // A component's size on the reference grid (T.800 B.2): ⌈x / dx⌉ − ⌈x0 / dx⌉ by the same in y.
        let side = |end: u32, start: u32, d: u8| {
            u64::from(end.div_ceil(d.into()).saturating_sub(start.div_ceil(d.into())))
        };
        let (width, height) = (side(x, x0, dx), side(y, y0, dy));
        if width * height > frame {
            return Err(format!(
                "the JPEG 2000 stream's component {c} is {width} × {height} where the header says {columns} × {rows}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOC and a SIZ segment for a `width` × `height` image of `components` 8-bit components.
    fn siz(width: u32, height: u32, components: u16, subsampling: u8) -> Vec<u8> {
        let mut out = vec![0xFF, 0x4F, 0xFF, 0x51];
        out.extend_from_slice(&(38 + 3 * components).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        for v in [width, height, 0, 0, width, height, 0, 0] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&components.to_be_bytes());
        for _ in 0..components {
            out.extend_from_slice(&[7, subsampling, subsampling]);
        }
        out.extend_from_slice(&[0xFF, 0x52]);
        out
    }

    #[test]
    fn a_stream_that_fits_its_frame_passes_and_a_larger_one_is_named() {
        assert_eq!(check_size(&siz(512, 512, 1, 1), 512, 512, 1), Ok(()));
        assert_eq!(check_size(&siz(640, 480, 3, 1), 640, 480, 3), Ok(()));
        // Subsampled chroma is smaller than the frame, not larger.
        assert_eq!(check_size(&siz(640, 480, 3, 2), 640, 480, 3), Ok(()));
        let larger = check_size(&siz(513, 512, 1, 1), 512, 512, 1).unwrap_err();
        assert!(larger.contains("513 × 512 where the header says 512 × 512"), "{larger}");
        let more = check_size(&siz(512, 512, 3, 1), 512, 512, 1).unwrap_err();
        assert!(more.contains("3 components where the header says 1"), "{more}");
        assert!(check_size(&siz(8, 8, 1, 0), 8, 8, 1).unwrap_err().contains("subsampling of 0"));
        // Inside a JP2 file the codestream follows the header boxes; without a SIZ, the decoder decides.
        let jp2 = [b"\x00\x00\x00\x0CjP  \x0D\x0A\x87\x0A".as_slice(), &siz(600, 600, 1, 1)].concat();
        assert!(check_size(&jp2, 512, 512, 1).is_err());
        assert_eq!(check_size(b"not a codestream", 512, 512, 1), Ok(()));
        assert_eq!(check_size(&siz(600, 600, 1, 1)[..20], 512, 512, 1), Ok(()), "a cut SIZ is the decoder's");
    }
}
