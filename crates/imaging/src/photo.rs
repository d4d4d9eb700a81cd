//! Photos (JPEG, PNG, WebP) through `image`, upright per their EXIF orientation.

use crate::error::one_line;
use crate::{Error, Frame, Info, Limits, Rescale, Samples, Source, Study, Window, peak};
use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;

pub(crate) fn is_photo(bytes: &[u8]) -> bool {
    matches!(image::guess_format(bytes), Ok(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP))
}

fn photo_error(e: impl std::fmt::Display) -> Error {
    Error::Photo(one_line(&e.to_string()))
}

/// The photo's pixels, upright per its EXIF orientation; sizes checked against `limits` first. A
/// large JPEG comes at a reduced scale where `limits.photo_side` asks for it: see [`reduced_jpeg`].
pub(crate) fn decode_upright(bytes: &[u8], limits: &Limits) -> Result<DynamicImage, Error> {
    decode(bytes, limits).map(|decoded| decoded.image)
}

struct Decoded {
    image: DynamicImage,
    /// The file's own `[columns, rows]`, as shown upright.
    original: [u32; 2],
    /// What decoding held at its peak, as the `peak` module counts it.
    peak: u64,
}

fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded, Error> {
    use image::metadata::Orientation::*;
    let format = image::guess_format(bytes).ok();
    let jpeg = format == Some(ImageFormat::Jpeg);
    // A JPEG `jpeg-decoder` cannot read at a reduced scale is still a photo `image` may: then at its
    // own size.
    if let Some(side) = limits.photo_side.filter(|_| jpeg)
        && let Ok(Some(reduced)) = reduced_jpeg(bytes, side, limits)
    {
        return Ok(reduced);
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(photo_error)?;
    let mut decoder = reader.into_decoder().map_err(photo_error)?;
    // The header's size is checked before any pixel is decoded: a 1 kB file may claim 60000×60000.
    let (width, height) = decoder.dimensions();
    limits.check_sides(height, width)?;
    limits.check_ratio(height, width, bytes.len())?;
    let orientation = decoder.orientation().unwrap_or(NoTransforms);
    let turned = matches!(orientation, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH);
    let original = if turned { [height, width] } else { [width, height] };
    let color = decoder.color_type();
    let decoded = u64::from(color.bytes_per_pixel());
    let stored = if matches!(color, ColorType::L8 | ColorType::L16 | ColorType::Rgb8 | ColorType::Rgb16) {
        0
    } else {
        let samples = if color.has_color() { 3 } else { 1 };
        samples * decoded / u64::from(color.channel_count())
    };
    let pixels = u64::from(width) * u64::from(height);
    let planes = if jpeg { decoded } else { 0 };
    // `image`'s JPEG decoder holds a copy of the whole file.
    let copy = if jpeg { bytes.len() as u64 } else { 0 };
    let peak = peak::photo(pixels, decoded, planes, stored, orientation != NoTransforms).saturating_add(copy);
    limits.check(height, width, peak)?;
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_decode_bytes);
    decoder.set_limits(image_limits).map_err(photo_error)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(photo_error)?;
    image.apply_orientation(orientation);
    Ok(Decoded { image, original, peak })
}

/// A JPEG's EXIF orientation read as `image` reads it for the full-size path (zune-jpeg's headers,
/// then `Orientation::from_exif_chunk`; none where the headers fail), but in place: `image`'s own
/// decoder copies the whole file first. `jpeg-decoder`'s EXIF can differ on a damaged file (found by
/// fuzzing: the page turned a photo the command line did not).
fn jpeg_orientation(bytes: &[u8]) -> image::metadata::Orientation {
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder =
        zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), options);
    let exif = decoder.decode_headers().ok().and_then(|()| decoder.exif());
    exif.and_then(|exif| image::metadata::Orientation::from_exif_chunk(exif))
        .unwrap_or(image::metadata::Orientation::NoTransforms)
}

/// A JPEG whose longest side is at least twice `side`, decoded at 1/2, 1/4 or 1/8 of its size, the
/// smallest that keeps its longest side at least `side`: `jpeg-decoder` runs a smaller inverse DCT
/// per block, so memory and time follow the reduced size, not the file's (a 9000 × 9000 photo:
/// 15 MB of RGB at 1/4 instead of 243 MB), and it reads the file in place. `None` for a smaller
/// JPEG; an error (or a stream with no DCT) leaves the photo to be decoded at its own size.
fn reduced_jpeg(bytes: &[u8], side: u32, limits: &Limits) -> Result<Option<Decoded>, Error> {
    use image::metadata::Orientation::*;
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(photo_error)?;
    let info = decoder.info().ok_or_else(|| photo_error("no frame header"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    limits.check_sides(height, width)?;
    limits.check_ratio(height, width, bytes.len())?;
    if width.max(height) < side.saturating_mul(2) {
        return Ok(None);
    }
    let orientation = jpeg_orientation(bytes);
    let turned = matches!(orientation, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH);
    let original = if turned { [height, width] } else { [width, height] };
    let wanted = u16::try_from(side).unwrap_or(u16::MAX);
    let (width, height) = decoder.scale(wanted, wanted).map_err(photo_error)?;
    let (width, height) = (u32::from(width), u32::from(height));
    let format = info.pixel_format;
    let decoded = format.pixel_bytes() as u64;
    let cmyk = if format == jpeg_decoder::PixelFormat::CMYK32 { 3 } else { 0 };
    let pixels = u64::from(width) * u64::from(height);
    // Planes counted twice over: at a reduced scale `jpeg-decoder` was measured holding about 7 bytes
    // per RGB pixel out, not 6 (`tests/peak_memory.rs`).
    let peak = peak::photo(pixels, decoded, 2 * decoded, cmyk, orientation != NoTransforms);
    limits.check(height, width, peak)?;
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_decode_bytes).unwrap_or(usize::MAX));
    let pixels = decoder.decode().map_err(photo_error)?;
    let image = match format {
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::from)
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            image::RgbImage::from_raw(width, height, pixels).map(DynamicImage::from)
        }
        // CMYK as `image` turned `jpeg-decoder`'s into RGB: (255 − C) × (255 − K) / 255.
        jpeg_decoder::PixelFormat::CMYK32 => {
            let rgb = pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - u16::from(p[3]);
                    [0, 1, 2].map(|i| ((255 - u16::from(p[i])) * k / 255) as u8)
                })
                .collect();
            image::RgbImage::from_raw(width, height, rgb).map(DynamicImage::from)
        }
        // Lossless 16-bit JPEG has no DCT to scale: decoded at its own size instead.
        jpeg_decoder::PixelFormat::L16 => None,
    };
    let mut image = image.ok_or_else(|| photo_error("the decoded JPEG is shorter than its header says"))?;
    image.apply_orientation(orientation);
    Ok(Some(Decoded { image, original, peak }))
}

pub(crate) fn open(bytes: &[u8], limits: &Limits) -> Result<Study, Error> {
    let Decoded { image, original, peak: decode_peak } = decode(bytes, limits)?;
    let color = image.color();
    let bytes_per_sample = color.bytes_per_pixel() as u32 / color.channel_count() as u32;
    let samples = if color.has_color() { 3 } else { 1 };
    let (columns, rows) = (image.width(), image.height());

    let sixteen = bytes_per_sample > 1;
    let bits_stored: u16 = if sixteen { 16 } else { 8 };
    let stored: Samples = match (samples, sixteen) {
        (1, false) => image.into_luma8().into_raw().into(),
        (1, true) => image.into_luma16().into_raw().into(),
        (_, false) => image.into_rgb8().into_raw().into(),
        (_, true) => image.into_rgb16().into_raw().into(),
    };
    let photometric = if samples == 3 { "RGB" } else { "MONOCHROME2" };
    let info = Info {
        rows,
        columns,
        frames: 1,
        modality: Some("photo".into()),
        photometric_interpretation: photometric.into(),
        transfer_syntax: None,
        bits_stored,
        pixel_spacing: None,
        original_size: (original != [columns, rows]).then_some(original),
    };
    let format = image::guess_format(bytes).map_or("photo", |f| f.extensions_str()[0]);
    let size = match info.original_size {
        Some([c, r]) => format!("{c} × {r}, shown at {columns} × {rows}"),
        None => format!("{columns} × {rows}"),
    };
    let attributes = vec![
        ("Format".to_string(), format.to_uppercase()),
        ("Size".to_string(), size),
        ("Colour".to_string(), if samples == 3 { "RGB" } else { "grey" }.to_string()),
        ("Bits per sample".to_string(), bits_stored.to_string()),
    ];
    let frame = Frame {
        columns,
        rows,
        samples: samples as u8,
        bits_stored,
        invert: false,
        rescale: Rescale::IDENTITY,
        stored,
    };
    Ok(Study {
        info,
        attributes,
        rescale: Rescale::IDENTITY,
        // 8-bit grey photos are drawn as stored, not stretched to their own range: that is how every
        // other viewer shows them and how the models were trained on them. A 16-bit grey PNG often
        // holds 10- or 12-bit data that would look black as stored: it keeps the full-range window.
        window: (samples == 1 && !sixteen).then(|| Window::identity(bits_stored)),
        source: Source::Photo(frame),
        limits: *limits,
        decode_peak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, color: image::ColorType) -> Vec<u8> {
        let mut out = Vec::new();
        let pixels = vec![90u8; (width * height) as usize * color.bytes_per_pixel() as usize];
        image::write_buffer_with_format(
            &mut Cursor::new(&mut out),
            &pixels,
            width,
            height,
            color,
            ImageFormat::Png,
        )
        .unwrap();
        out
    }

    /// Rewrites the IHDR size of a PNG (and its CRC) so the header claims far more than the data holds.
    fn claim_size(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn grey_and_colour_photos_keep_their_samples() {
        let grey = open(&png(5, 3, image::ColorType::L8), &Limits::default()).unwrap();
        assert_eq!(grey.info().photometric_interpretation, "MONOCHROME2");
        assert_eq!((grey.info().columns, grey.info().rows), (5, 3));
        let frame = grey.frame(0).unwrap();
        assert_eq!(frame.min_max(), (90, 90));
        // Drawn as stored (a flat 90, not stretched to its own range), as the models were trained.
        assert_eq!(frame.render_display(grey.default_window(&frame)), vec![90; 15]);
        // 16 bits: the full range, since 12-bit data in a 16-bit file would look black as stored.
        let sixteen = open(&png(5, 3, image::ColorType::L16), &Limits::default()).unwrap();
        let frame = sixteen.frame(0).unwrap();
        assert_eq!(sixteen.default_window(&frame), Some(frame.full_window()));
        let rgba = open(&png(2, 2, image::ColorType::Rgba16), &Limits::default()).unwrap();
        assert_eq!(rgba.info().photometric_interpretation, "RGB");
        assert_eq!(rgba.info().bits_stored, 16);
        assert_eq!(rgba.frame(0).unwrap().stored.len(), 2 * 2 * 3);
    }

    /// A smooth colour gradient, saved as JPEG at quality 90.
    fn gradient_jpeg(width: u32, height: u32) -> Vec<u8> {
        let rgb = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, ((x + y) % 256) as u8 / 2])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&rgb).unwrap();
        out
    }

    #[test]
    fn a_large_jpeg_is_decoded_at_the_smallest_scale_the_page_needs() {
        let jpeg = gradient_jpeg(4200, 304);
        let full = open(&jpeg, &Limits::default()).unwrap();
        assert_eq!((full.info().columns, full.info().original_size), (4200, None));
        assert_eq!(full.info().pixel_size(), crate::PixelSize::Pixels(1.0));
        // 4200 is at least twice 2048, 2100 (1/2) keeps at least 2048, 1050 (1/4) would not.
        let page = open(&jpeg, &Limits::page()).unwrap();
        let info = page.info();
        assert_eq!((info.columns, info.rows, info.original_size), (2100, 152, Some([4200, 304])));
        assert_eq!(info.pixel_size(), crate::PixelSize::Pixels(2.0));
        assert!(page.attributes().contains(&("Size".into(), "4200 × 304, shown at 2100 × 152".into())));
        // The same picture: each reduced pixel within a few levels of the 2 × 2 mean at full size.
        let (small, big) = (page.frame(0).unwrap().stored, full.frame(0).unwrap().stored);
        let mut worst = 0i32;
        for y in 0..152usize {
            for x in 0..2100usize {
                for c in 0..3 {
                    let at = |xx: usize, yy: usize| big.get((yy * 4200 + xx) * 3 + c);
                    let mean = (at(2 * x, 2 * y)
                        + at(2 * x + 1, 2 * y)
                        + at(2 * x, 2 * y + 1)
                        + at(2 * x + 1, 2 * y + 1))
                        / 4;
                    worst = worst.max((small.get((y * 2100 + x) * 3 + c) - mean).abs());
                }
            }
        }
        assert!(worst <= 12, "largest difference from the full-size mean: {worst}");
        // Below twice the side a photo keeps its own size.
        let phone = open(&gradient_jpeg(4000, 64), &Limits::page()).unwrap();
        assert_eq!((phone.info().columns, phone.info().original_size), (4000, None));
    }

    #[test]
    fn a_header_claiming_60000_squared_is_refused_before_decoding() {
        let bomb = claim_size(png(1, 1, image::ColorType::Rgb8), 60_000, 60_000);
        let err = Study::open(&bomb, &Limits::default()).err().expect("refused");
        assert!(matches!(err, Error::SideTooLong { rows: 60_000, columns: 60_000, .. }), "{err}");
        assert!(err.to_string().contains("60000×60000"), "{err}");
    }

    #[test]
    fn a_small_file_claiming_millions_of_pixels_is_refused() {
        // 2048×2048 of one grey compresses to a few kB, under the ratio; 16000×16000 (within the
        // size limits) claimed by the same bytes is not.
        let honest = png(2048, 2048, image::ColorType::L8);
        assert!(open(&honest, &Limits::default()).is_ok());
        let claim = claim_size(honest, 16_000, 16_000);
        let err = Study::open(&claim, &Limits::default()).err().expect("refused");
        assert!(matches!(err, Error::ImplausibleSize { rows: 16_000, columns: 16_000, .. }), "{err}");
    }

    #[test]
    fn a_corrupt_photo_is_an_error() {
        let mut bytes = png(4, 4, image::ColorType::L8);
        let len = bytes.len();
        bytes.truncate(len - 20);
        assert!(matches!(Study::open(&bytes, &Limits::default()), Err(Error::Photo(_))));
    }
}
