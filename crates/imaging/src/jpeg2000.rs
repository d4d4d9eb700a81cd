//! A JPEG 2000 / HTJ2K frame's size checked against the header, and its quantisation against what
//! openjp2 can compute, before dicom-rs decodes it.
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

/// Refuses a codestream whose quantisation leaves a subband with no magnitude bit planes: T.800 E.1
/// gives a subband `Mb = G + ε_b − 1` of them, so zero guard bits (G) with an exponent (ε_b) of 0 —
/// listed, derived or, where a QCD or QCC lists fewer subbands than the decomposition levels make,
/// missing (openjp2 leaves those at 0) — makes it −1. openjp2 computes `Mb + 1` in unsigned
/// arithmetic, which overflows (found by fuzzing: a QCD of reserved style with 8 of the 16
/// exponents five levels need, `fuzz/artifacts/jpeg2000/`). Main and tile-part headers are read,
/// by one walk; the most decomposition levels any COD or COC names stand for every component.
pub(crate) fn check_quantisation(stream: &[u8]) -> Result<(), String> {
    let Some(soc) = stream.windows(4).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) else { return Ok(()) };
    let u16_at = |i: usize| stream.get(i..i + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let components = u16_at(soc + 4 + 36).unwrap_or(0);
    let (mut levels, mut quantisations) = (0usize, Vec::new());
    let qcc = if components < 257 { 1 } else { 2 };
    // Where the tile-part whose header is being read ends (`Psot` bytes from its SOT); `None` in
    // the main header, and in a last tile-part (`Psot` 0).
    let mut tile_part_end = None;
    let mut at = soc + 2;
    loop {
        // Marker segments: FFxx, a 2-byte length counting itself, then the parameters. A header ends
        // at SOD, EOC or anything unreadable: a tile-part's data runs on to the next tile-part.
        let segment = match (stream.get(at..at + 2), u16_at(at + 2)) {
            (Some(&[0xFF, code]), Some(length)) if code != 0x93 && code != 0xD9 => {
                stream.get(at + 4..at + 2 + length.max(2)).map(|segment| (code, length, segment))
            }
            _ => None,
        };
        let Some((code, length, segment)) = segment else {
            match tile_part_end.take() {
                Some(end) => {
                    at = end;
                    continue;
                }
                None => break,
            }
        };
        match code {
            // COD: Scod, progression (1), layers (2), MCT (1), then the levels. COC: Ccoc, Scoc, levels.
            0x52 => levels = levels.max(usize::from(segment.get(5).copied().unwrap_or(0))),
            0x53 => levels = levels.max(usize::from(segment.get(qcc + 1).copied().unwrap_or(0))),
            0x5C => quantisations.push(segment),
            0x5D => quantisations.push(segment.get(qcc..).unwrap_or(&[])),
            // SOT: its tile-part's header follows.
            0x90 => {
                let psot = segment.get(2..6).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                tile_part_end = (psot != 0).then(|| at + psot as usize);
            }
            _ => {}
        }
        at += 2 + length.max(2);
    }
    let bands = 3 * levels + 1;
    for quantisation in quantisations {
        let Some((&style, steps)) = quantisation.split_first() else { continue };
        if style >> 5 != 0 {
            continue;
        }
        let exponent = |band: usize| match style & 0x1F {
            0 => steps.get(band).map_or(0, |&b| b >> 3),
            // Derived from the first: ε_b = ε_0 − (the subband's level below the top), floored at 0.
            1 => steps.first().map_or(0, |&b| (b >> 3).saturating_sub((band.saturating_sub(1) / 3) as u8)),
            _ => steps.get(2 * band).map_or(0, |&b| b >> 3),
        };
        if let Some(band) = (0..bands).find(|&band| exponent(band) == 0) {
            return Err(format!(
                "the JPEG 2000 stream's quantisation leaves subband {band} no bit planes (no guard bits and an exponent of 0)"
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

    /// A main header: SIZ (one component), COD with `levels`, QCD `qcd` (Sqcd and the step sizes).
    fn header(levels: u8, qcd: &[u8]) -> Vec<u8> {
        let mut out = siz(64, 64, 1, 1);
        out.pop();
        out.pop();
        out.extend_from_slice(&[0xFF, 0x52, 0, 12, 0, 0, 0, 1, 0, levels, 4, 4, 0, 1]);
        out.extend_from_slice(&[0xFF, 0x5C]);
        out.extend_from_slice(&(qcd.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(qcd);
        out
    }

    #[test]
    fn a_subband_without_bit_planes_is_refused() {
        // Two levels make 7 subbands. No quantisation: an exponent per byte (top 5 bits).
        let full = [0x00, 8 << 3, 9 << 3, 9 << 3, 10 << 3, 9 << 3, 9 << 3, 10 << 3];
        assert_eq!(check_quantisation(&header(2, &full)), Ok(()));
        // With guard bits a zero exponent still leaves bit planes; without, it does not.
        let mut zero = full;
        zero[4] = 0;
        assert!(check_quantisation(&header(2, &zero)).unwrap_err().contains("subband 3"));
        zero[0] = 1 << 5;
        assert_eq!(check_quantisation(&header(2, &zero)), Ok(()));
        // Fewer subbands listed than the levels make: the missing ones are 0 in openjp2.
        let short = check_quantisation(&header(2, &full[..5])).unwrap_err();
        assert!(short.contains("subband 4"), "{short}");
        // Derived (style 1): ε0 = 2 lasts three levels (subbands 1–3 at 2, 4–6 at 1), not four.
        assert_eq!(check_quantisation(&header(2, &[0x01, 2 << 3, 0])), Ok(()));
        assert!(check_quantisation(&header(3, &[0x01, 2 << 3, 0])).unwrap_err().contains("subband 7"));
        // Expounded, or a reserved style openjp2 reads as expounded: two bytes a subband.
        let expounded: Vec<u8> = [0x02].into_iter().chain((0..7).flat_map(|_| [8 << 3, 0])).collect();
        assert_eq!(check_quantisation(&header(2, &expounded)), Ok(()));
        let reserved = [&[0x1D][..], &expounded[1..9]].concat();
        assert!(check_quantisation(&header(2, &reserved)).unwrap_err().contains("subband 4"));
        // A QCD in a tile-part header counts too.
        let mut tiled = header(2, &full);
        let tile_part =
            [&[0xFF, 0x90, 0, 10, 0, 0, 0, 0, 0, 0, 0, 1][..], &[0xFF, 0x5C, 0, 5, 0x00, 8 << 3, 0]].concat();
        tiled.extend_from_slice(&tile_part);
        tiled.extend_from_slice(&[0xFF, 0x93]);
        assert!(check_quantisation(&tiled).unwrap_err().contains("subband 1"));
    }
}
