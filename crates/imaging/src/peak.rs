//! What decoding one frame allocates at its peak, path by path: the bytes [`Limits`](crate::Limits)
//! counts before anything is decoded. Each figure adds up the buffers alive at once, per sample
//! (`width`: bytes per stored sample, 1, 2 or 4); `tests/peak_memory.rs` measures every path
//! against the kernel's peak resident size.

/// How a frame's pixels are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Native pixel data, read in place: the stored samples alone.
    Native,
    /// `jpeg-decoder`: its component planes, its interleaved output, the stored samples.
    Jpeg,
    /// `jpeg_dct` (12-bit and 8-bit colour DCT): 32-bit component planes, its output, the stored
    /// samples.
    JpegDct,
    /// JPEG-LS: the decoder's lines and output, the stored samples.
    JpegLs,
    /// RLE: the frame's bytes, one segment unpacked (a byte per pixel), the stored samples.
    Rle,
    /// dicom-rs's codecs (JPEG 2000 and HTJ2K through openjp2): openjp2's 32-bit tile and image
    /// planes, dicom-rs's output, the stored samples.
    DicomRs,
}

impl Codec {
    /// Bytes per sample at the peak.
    fn per_sample(self, width: u64) -> u64 {
        match self {
            Codec::Native => width,
            Codec::Jpeg | Codec::JpegLs => 3 * width,
            Codec::JpegDct => 4 + 2 * width,
            Codec::Rle => 2 * width + 1,
            Codec::DicomRs => 8 + 2 * width,
        }
    }
}

/// A DICOM frame's peak: `codec`'s buffers, and the RGB (16 bits a sample) a PALETTE COLOR frame
/// is looked up into beside its indices.
pub(crate) fn dicom_frame(codec: Codec, pixels: u64, samples: u64, width: u64, palette: bool) -> u64 {
    let lookup = if palette { pixels * 3 * 2 } else { 0 };
    (pixels * samples * codec.per_sample(width)).saturating_add(lookup)
}

/// A photo's peak, decoded through `image`: the decoded buffer in the file's own layout
/// (`decoded_per_pixel` bytes, alpha included), `jpeg-decoder`'s 8-bit planes for a JPEG, the
/// stored samples where they differ from the decoded layout (alpha dropped, CMYK turned RGB), and
/// a second decoded buffer where the EXIF orientation turns or flips the picture.
pub(crate) fn photo(
    pixels: u64,
    decoded_per_pixel: u64,
    jpeg_planes: u64,
    stored_per_pixel: u64,
    turned: bool,
) -> u64 {
    let oriented = if turned { decoded_per_pixel } else { 0 };
    pixels.saturating_mul(decoded_per_pixel + jpeg_planes + stored_per_pixel + oriented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counted_buffers_add_up() {
        // 16-bit grey through openjp2: two 4-byte planes, dicom-rs's 2 bytes, the stored 2.
        assert_eq!(dicom_frame(Codec::DicomRs, 1000, 1, 2, false), 12_000);
        // Native samples are read in place; a palette adds 6 bytes of RGB per pixel.
        assert_eq!(dicom_frame(Codec::Native, 1000, 1, 1, true), 7_000);
        assert_eq!(dicom_frame(Codec::Rle, 10, 3, 2, false), 150);
        // An RGBA PNG: 4 bytes decoded, 3 stored; an upright RGB JPEG: 3 decoded, 3 planes.
        assert_eq!(photo(100, 4, 0, 3, false), 700);
        assert_eq!(photo(100, 3, 3, 0, false), 600);
        assert_eq!(photo(100, 3, 3, 0, true), 900);
        assert_eq!(photo(u64::MAX, 3, 0, 0, false), u64::MAX);
    }
}
