//! JPEG-LS frames, lossless and near-lossless (ITU-T T.87), grey or colour, through our own decoder
//! (the `decoder` submodule says why it is ours).

mod decoder;

use crate::Error;

/// The transfer syntaxes decoded here.
pub(crate) const TRANSFER_SYNTAXES: [&str; 2] = [
    "1.2.840.10008.1.2.4.80", // lossless
    "1.2.840.10008.1.2.4.81", // near-lossless
];

/// Decodes one frame's stream into little-endian samples of `bits_allocated` (8 or 16) bits,
/// interleaved per pixel when there are several `components` (as pydicom returns them, whatever
/// the stream's interleave). The stream must be `columns × rows` with that many components, which
/// is checked before the decoder allocates its buffer.
pub(crate) fn decode_frame(
    stream: &[u8],
    index: u32,
    rows: u32,
    columns: u32,
    components: u16,
    bits_allocated: u16,
) -> Result<Vec<u8>, Error> {
    let fail = |detail: String| Error::PixelData { frame: index, detail: format!("JPEG-LS: {detail}") };
    let samples = decoder::decode(stream, rows, columns, components).map_err(|e| match e {
        decoder::Fail::Unsupported(what) => Error::Unsupported { what: format!("JPEG-LS with {what}") },
        decoder::Fail::Invalid(detail) => fail(detail),
    })?;
    match bits_allocated {
        8 => samples
            .iter()
            .map(|&s| u8::try_from(s).map_err(|_| fail(format!("sample {s} does not fit 8 bits allocated"))))
            .collect(),
        16 => Ok(samples.iter().flat_map(|s| s.to_le_bytes()).collect()),
        other => Err(Error::Unsupported { what: format!("JPEG-LS with {other} bits allocated") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pixels: &[u16], width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        jpegls::encode(pixels, width, height, &mut out).unwrap();
        out
    }

    #[test]
    fn sixteen_bit_samples_come_out_little_endian() {
        let stream = encoded(&[0x0102, 0xFFFF, 0, 300], 2, 2);
        assert_eq!(decode_frame(&stream, 0, 2, 2, 1, 16).unwrap(), [2, 1, 0xFF, 0xFF, 0, 0, 44, 1]);
    }

    #[test]
    fn eight_bit_samples_are_bytes_and_wider_values_are_an_error() {
        let stream = encoded(&[0, 17, 255, 4], 2, 2);
        assert_eq!(decode_frame(&stream, 0, 2, 2, 1, 8).unwrap(), [0, 17, 255, 4]);
        let wide = encoded(&[0, 256, 0, 0], 2, 2);
        assert!(decode_frame(&wide, 0, 2, 2, 1, 8).unwrap_err().to_string().contains("sample 256"));
    }

    #[test]
    fn hostile_streams_are_errors() {
        let stream = encoded(&[5; 64], 8, 8);
        let message = decode_frame(&stream, 3, 9, 8, 1, 16).unwrap_err().to_string();
        assert!(message.contains("frame 3") && message.contains("8×9"), "{message}");
        let message = decode_frame(&stream, 0, 8, 8, 3, 8).unwrap_err().to_string();
        assert!(message.contains("1 component(s)") && message.contains("says 3"), "{message}");
        for cut in 0..stream.len() {
            assert!(decode_frame(&stream[..cut], 0, 8, 8, 1, 16).is_err(), "cut at {cut}");
        }
        assert!(decode_frame(b"not JPEG-LS", 0, 8, 8, 1, 16).is_err());
    }

    #[test]
    fn mapping_tables_are_unsupported() {
        let mut stream = encoded(&[5; 4], 2, 2);
        // An LSE ID 2 (mapping table) segment before the scan header.
        let sos = stream.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        stream.splice(sos..sos, [0xFF, 0xF8, 0, 6, 2, 1, 1, 0]);
        let error = decode_frame(&stream, 0, 2, 2, 1, 8).unwrap_err();
        assert!(matches!(error, Error::Unsupported { .. }), "{error}");
    }
}
