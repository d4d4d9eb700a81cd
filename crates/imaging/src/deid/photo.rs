//! Photos: decoded and written again as PNG, so nothing but the pixels leaves.

use super::{BurnedInRisk, Deidentified, Format, Summary};
use crate::error::one_line;
use crate::{Error, Limits};
use image::{DynamicImage, ImageFormat};
use std::io::Cursor;

/// The photo's pixels, upright, as a PNG with no metadata chunk: EXIF (GPS included), XMP, IPTC and
/// comments of the original are not carried over, since only the decoded pixels are.
pub(super) fn deidentify(bytes: &[u8], limits: &Limits) -> Result<Deidentified, Error> {
    let image = crate::photo::decode_upright(bytes, limits)?;
    let summary = Summary {
        attributes_removed: 0,
        attributes_emptied: 0,
        attributes_replaced: 0,
        uids_replaced: 0,
        private_tags_removed: 0,
        // A photo says nothing of burned-in text; a camera picture may show a label or a wristband.
        burned_in_risk: BurnedInRisk::Unknown,
        burned_in_warning: true,
    };
    Ok(Deidentified { bytes: png(&image)?, format: Format::Png, summary })
}

/// PNG of `image` (16-bit and alpha kept; PNG has no floating-point samples, which photos here
/// never decode to).
pub(super) fn png(image: &DynamicImage) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| Error::PhotoWrite(one_line(&e.to_string())))?;
    Ok(out)
}
