//! Declared value lengths checked against the bytes that are there, before dicom-rs parses a file.
//! Its parser reserves a value's declared length before reading the value, so a few hundred bytes
//! claiming a 4 GiB value allocated 4 GiB (found by fuzzing, `fuzz/artifacts/dicom/`).
//!
//! The walk reads element headers as dicom-rs 0.10 does (unknown VRs as UN; an undefined-length UN
//! as a sequence in the file's own encoding, not the implicit VR PS3.5 6.2.2 asks for, which made
//! pydicom's `UN_sequence.dcm` claim 3.7 GB), follows them into sequences and items and skips
//! encapsulated fragments. It fails on a length that runs past the end of the bytes, on an element
//! that runs past the end of the item or sequence holding it, on a binary value that is no whole
//! number of values and on a delimiter with a length; anything else wrong is dicom-rs's to report.
//! A deflated data set is walked as it inflates ([`check_stream`]).

/// How a data set is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoding {
    pub explicit_vr: bool,
    pub big_endian: bool,
}

impl Encoding {
    pub const EXPLICIT_LE: Encoding = Encoding { explicit_vr: true, big_endian: false };
}

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

const UNDEFINED: u32 = u32::MAX;
const ITEM_GROUP: u16 = 0xFFFE;
const ITEM: u16 = 0xE000;
const ITEM_DELIMITER: u16 = 0xE00D;
const SEQUENCE_DELIMITER: u16 = 0xE0DD;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// Explicit VRs whose length is 2 bytes (PS3.5 7.1.2). dicom-rs reads every other VR, and bytes
/// that are no VR at all (as UN), with 2 reserved bytes and a 4-byte length; so does this walk.
fn short_length(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Bytes per value of the binary VRs. dicom-rs reads `length / size` values of these but moves its
/// position on by `length`, so a length that is no multiple of the size shifts every later header
/// (found by fuzzing: a 2-byte UL made the next element claim 4 GiB); such an element is refused.
fn value_size(vr: &[u8]) -> Option<u32> {
    match vr {
        b"US" | b"SS" | b"OW" => Some(2),
        b"AT" | b"FL" | b"OF" | b"SL" | b"UL" | b"OL" => Some(4),
        b"FD" | b"OD" | b"SV" | b"OV" | b"UV" => Some(8),
        _ => None,
    }
}

/// The value size of an implicit-VR element, by the dictionary dicom-rs reads it with.
fn implicit_value_size(tag: (u16, u16)) -> Option<u32> {
    match StandardDataDictionary.by_tag(Tag(tag.0, tag.1))?.vr() {
        VirtualVr::Exact(vr) => value_size(vr.to_string().as_bytes()),
        VirtualVr::Xs => Some(2),
        _ => None,
    }
}

/// Whether dicom-rs reads an implicit-VR element as a sequence: its dictionary VR is SQ.
fn implicit_is_sequence(tag: (u16, u16)) -> bool {
    StandardDataDictionary
        .by_tag(Tag(tag.0, tag.1))
        .is_some_and(|entry| matches!(entry.vr(), VirtualVr::Exact(VR::SQ)))
}

/// Checks the file meta group at the start of `bytes` (after `DICM`). dicom-rs reads elements, of any
/// group, until it has read as many bytes as the group length says, so this walk does the same.
pub(crate) fn check_meta(bytes: &[u8]) -> Result<(), String> {
    // Anything but a group length is dicom-rs's to refuse.
    let Some((group_length, start)) = group_length(bytes) else { return Ok(()) };
    walk(&mut Slice { bytes: &bytes[start..], at: 0 }, Encoding::EXPLICIT_LE, Some(u64::from(group_length)))
}

/// The File Meta Information Group Length at the start of `bytes`, and where its value ends.
/// dicom-rs asks for the tag (0002,0000) and a length of 4, whatever the VR says (found by fuzzing:
/// with "TM" in place of "UL" the group was read, unchecked, and its transfer syntax claimed 2.6 GB).
fn group_length(bytes: &[u8]) -> Option<(u32, usize)> {
    if bytes.get(..6)?[..4] != [0x02, 0x00, 0x00, 0x00] {
        return None;
    }
    let le = |at: usize, n: usize| {
        Some(bytes.get(at..at + n)?.iter().rev().fold(0, |v, &b| v << 8 | u32::from(b)))
    };
    let (length, value) = if short_length([bytes[4], bytes[5]]) { (le(6, 2)?, 8) } else { (le(8, 4)?, 12) };
    (length == 4).then_some(())?;
    Some((le(value, 4)?, value + 4))
}

/// File meta elements whose length dicom-rs's meta reader caps (AE titles and the implementation
/// version name at 16 bytes, the private information creator UID at 64), refusing the file when a
/// writer went past it.
const META_CAPS: [((u16, u16), usize); 5] = [
    ((0x0002, 0x0013), 16),
    ((0x0002, 0x0016), 16),
    ((0x0002, 0x0017), 16),
    ((0x0002, 0x0018), 16),
    ((0x0002, 0x0100), 64),
];

/// `body` (from the `DICM` magic on) with any file meta value longer than dicom-rs accepts cut to
/// that length and the group length adjusted, so that a file other readers open (an 18-byte AE
/// title, a 22-byte version name: longer than PS3.5 allows, but lengths that fit the file) opens
/// here too; only those names lose their tail. Anything unexpected leaves the bytes as they are.
pub(crate) fn lenient_meta(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    // "DICM", then (0002,0000) of length 4 and its value.
    let Some((group_length, start)) = body.get(4..).and_then(group_length) else {
        return Cow::Borrowed(body);
    };
    let (group_length, start) = (group_length as usize, start + 4);
    // Checked: on wasm32 a claimed length near 4 GiB would overflow.
    let Some(end) = group_length.checked_add(start).filter(|&end| end <= body.len()) else {
        return Cow::Borrowed(body);
    };
    let mut at = start;
    let mut cuts = Vec::new(); // (value start, value length, kept, length field at, field width)
    while at + 8 <= end {
        let tag =
            (u16::from_le_bytes([body[at], body[at + 1]]), u16::from_le_bytes([body[at + 2], body[at + 3]]));
        let vr = [body[at + 4], body[at + 5]];
        let (field, width, value) = if short_length(vr) { (at + 6, 2, at + 8) } else { (at + 8, 4, at + 12) };
        if value > end {
            return Cow::Borrowed(body);
        }
        let length = if width == 2 {
            u16::from_le_bytes([body[field], body[field + 1]]) as usize
        } else {
            u32::from_le_bytes([body[field], body[field + 1], body[field + 2], body[field + 3]]) as usize
        };
        if length == UNDEFINED as usize || value.checked_add(length).is_none_or(|stop| stop > end) {
            return Cow::Borrowed(body);
        }
        if let Some(&(_, cap)) = META_CAPS.iter().find(|(t, _)| *t == tag)
            && length > cap
        {
            cuts.push((value, length, cap, field, width));
        }
        at = value + length;
    }
    if cuts.is_empty() {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut copied = 0;
    let mut removed = 0;
    for &(value, length, kept, field, width) in &cuts {
        out.extend_from_slice(&body[copied..field]);
        if width == 2 {
            out.extend_from_slice(&(kept as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(kept as u32).to_le_bytes());
        }
        out.extend_from_slice(&body[field + width..value + kept]);
        copied = value + length;
        removed += length - kept;
    }
    out.extend_from_slice(&body[copied..]);
    out[start - 4..start].copy_from_slice(&((group_length - removed) as u32).to_le_bytes());
    Cow::Owned(out)
}

/// Checks every element of a data set; the error names the element whose length does not fit.
pub(crate) fn check(bytes: &[u8], encoding: Encoding) -> Result<(), String> {
    walk(&mut Slice { bytes, at: 0 }, encoding, None)
}

/// [`check`] of a data set as `reader` gives it (a deflated one as it inflates), reading at most
/// `max` bytes: only a small buffer is held, never the whole data set.
pub(crate) fn check_stream(reader: impl std::io::Read, encoding: Encoding, max: u64) -> Result<(), String> {
    let mut stream =
        Stream { reader: reader.take(max.saturating_add(1)), buffer: Vec::new(), at: 0, position: 0 };
    let walked = walk(&mut stream, encoding, None);
    // Cut off at `max`, its last value would seem to end early: the size is the reason to give.
    if stream.position > max {
        return Err(format!("the data set inflates past {max} bytes"));
    }
    walked
}

/// What the walk reads: all the bytes at once, or a stream whose length is known only at its end.
trait Source {
    /// The next `n` bytes, without moving on; `None` where fewer are left.
    fn peek(&mut self, n: usize) -> Option<&[u8]>;
    /// Moves on by up to `n` bytes and says by how many.
    fn skip(&mut self, n: u64) -> u64;
    fn position(&self) -> u64;
    /// Bytes left after the position, where known before reading them.
    fn left(&self) -> Option<u64>;
}

struct Slice<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Source for Slice<'_> {
    fn peek(&mut self, n: usize) -> Option<&[u8]> {
        self.bytes.get(self.at..self.at.checked_add(n)?)
    }
    fn skip(&mut self, n: u64) -> u64 {
        let n = n.min((self.bytes.len() - self.at) as u64);
        self.at += n as usize;
        n
    }
    fn position(&self) -> u64 {
        self.at as u64
    }
    fn left(&self) -> Option<u64> {
        Some((self.bytes.len() - self.at) as u64)
    }
}

/// A reader behind a buffer of at most a header's bytes plus one read; skipped values are read
/// and dropped. A read error ends the stream here, as the end of the bytes would: the parser that
/// reads it afterwards reports the error itself.
struct Stream<R> {
    reader: R,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    at: usize,
    position: u64,
}

impl<R: std::io::Read> Source for Stream<R> {
    fn peek(&mut self, n: usize) -> Option<&[u8]> {
        if self.buffer.len() - self.at < n {
            self.buffer.drain(..self.at);
            self.at = 0;
            let mut chunk = [0u8; 64];
            while self.buffer.len() < n {
                match self.reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return None,
                    Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                }
            }
        }
        Some(&self.buffer[self.at..self.at + n])
    }
    fn skip(&mut self, n: u64) -> u64 {
        let buffered = n.min((self.buffer.len() - self.at) as u64);
        self.at += buffered as usize;
        let mut rest = <&mut R as std::io::Read>::take(&mut self.reader, n - buffered);
        let read = std::io::copy(&mut rest, &mut std::io::sink()).unwrap_or(0);
        self.position += buffered + read;
        buffered + read
    }
    fn position(&self) -> u64 {
        self.position
    }
    fn left(&self) -> Option<u64> {
        None
    }
}

fn too_long(tag: (u16, u16), length: u32, left: u64) -> String {
    format!(
        "the file ends early: element ({:04X},{:04X}) claims {length} bytes but only {left} follow",
        tag.0, tag.1
    )
}

/// The walk, over all of `bytes` or (the meta group) until `meta_length` bytes are read; the meta
/// group's reader reads values its own way, so their sizes are not checked there.
///
/// A value's length is checked against the bytes left where they are known (a slice); in a stream,
/// a skipped value must be there to skip, and the values walked into (sequences, items) are
/// checked at its end, where its length is known.
fn walk(bytes: &mut dyn Source, encoding: Encoding, meta_length: Option<u64>) -> Result<(), String> {
    let u16_at = |b: &[u8], at: usize| {
        let b = [b[at], b[at + 1]];
        if encoding.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
    };
    let u32_at = |b: &[u8], at: usize| {
        let b = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if encoding.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    };
    // Values walked into (items, sequences of a defined length) whose end the walk has not reached
    // yet: (tag, length, where the value starts).
    let mut open: Vec<((u16, u16), u32, u64)> = Vec::new();
    // A value that is walked into: its length must fit in what is left, where that is known.
    let enter = |bytes: &mut dyn Source, open: &mut Vec<_>, tag: (u16, u16), length: u32| {
        if let Some(left) = bytes.left().filter(|&left| u64::from(length) > left) {
            return Err(too_long(tag, length, left));
        }
        open.push((tag, length, bytes.position()));
        Ok(())
    };
    // A value that is skipped: it must be there to skip.
    let skip = |bytes: &mut dyn Source, tag: (u16, u16), length: u32| {
        if let Some(left) = bytes.left().filter(|&left| u64::from(length) > left) {
            return Err(too_long(tag, length, left));
        }
        let skipped = bytes.skip(u64::from(length));
        if skipped < u64::from(length) { Err(too_long(tag, length, skipped)) } else { Ok(()) }
    };
    // Inside encapsulated pixel data, items hold fragments of a compressed stream, not elements.
    let mut fragments = false;
    loop {
        // What is walked into must end where an element ends. dicom-rs reads an item outside a
        // sequence as one value of its length, and a sequence's items past the sequence's length,
        // so an element running across such an end is read from another byte there than here
        // (found by fuzzing: an item of 51 bytes holding 52 put dicom-rs's next header one byte
        // early, where it claimed 1.9 GB).
        let at = bytes.position();
        if let Some(&(tag, length, _)) = open.iter().find(|&&(_, l, start)| start + u64::from(l) < at) {
            return Err(format!(
                "an element runs past the end of ({:04X},{:04X}), whose value is {length} bytes",
                tag.0, tag.1
            ));
        }
        open.retain(|&(_, l, start)| start + u64::from(l) > at);
        let Some(head) = bytes.peek(8) else { break };
        let tag = (u16_at(head, 0), u16_at(head, 2));
        let length = u32_at(head, 4);
        let vr = [head[4], head[5]];
        let short = u32::from(u16_at(head, 6));
        if meta_length.is_some_and(|length| bytes.position() >= length) {
            break;
        }
        if tag.0 == ITEM_GROUP {
            bytes.skip(8);
            match tag.1 {
                ITEM if length != UNDEFINED => {
                    if fragments {
                        skip(bytes, tag, length)?;
                    } else {
                        enter(bytes, &mut open, tag, length)?;
                    }
                }
                // A delimiter has no value (PS3.5 7.5). Inside a sequence dicom-rs ignores its
                // length, but outside one it reads it as an element and allocates that length
                // (found by fuzzing: a meta element running past its group left a (FFFE,E0DD)
                // claiming 4 GB first in the data set). Which of the two a delimiter is depends on
                // nesting this walk does not follow, so any length is refused.
                SEQUENCE_DELIMITER | ITEM_DELIMITER if length != 0 => {
                    return Err(format!(
                        "delimiter ({:04X},{:04X}) has a length of {length}; delimiters have none",
                        tag.0, tag.1
                    ));
                }
                SEQUENCE_DELIMITER => fragments = false,
                ITEM_DELIMITER => {}
                // dicom-rs reads any other (FFFE,xxxx) as a UN element with this length (found by
                // fuzzing: an (FFFE,020D) in an item claimed 3.7 GB).
                _ if length != UNDEFINED => skip(bytes, tag, length)?,
                _ => {}
            }
            continue;
        }
        let (vr, length, header) = if !encoding.explicit_vr {
            (None, length, 8)
        } else if short_length(vr) {
            (Some(vr), short, 8)
        } else if let Some(head) = bytes.peek(12) {
            (Some(vr), u32_at(head, 8), 12)
        } else {
            break;
        };
        bytes.skip(header);
        if length == UNDEFINED {
            // Encapsulated pixel data; any other undefined-length value is a sequence, walked on.
            fragments |= tag == PIXEL_DATA;
            continue;
        }
        if let Some(left) = bytes.left().filter(|&left| u64::from(length) > left) {
            return Err(too_long(tag, length, left));
        }
        let size = match vr {
            Some(vr) => value_size(&vr),
            None => implicit_value_size(tag),
        };
        if let Some(size) = size.filter(|size| length % size != 0 && meta_length.is_none()) {
            return Err(format!(
                "element ({:04X},{:04X}) has {length} bytes, not a whole number of {size}-byte values",
                tag.0, tag.1
            ));
        }
        // A sequence's items are walked; any other value is skipped. dicom-rs reads a sequence's
        // items without bounding them by its length, so one inside it may claim more (found by
        // fuzzing: in implicit VR, where the dictionary says what is a sequence, an item inside a
        // 116-byte sequence claimed 4 MB and an element after it 4 GB).
        let sequence = match vr {
            Some(vr) => vr == *b"SQ",
            None => implicit_is_sequence(tag),
        };
        if sequence {
            enter(bytes, &mut open, tag, length)?;
        } else {
            skip(bytes, tag, length)?;
        }
    }
    // A stream's end is known now: the values walked into must end by it.
    let end = bytes.position() + bytes.skip(u64::MAX);
    match open.into_iter().find(|&(_, length, start)| start + u64::from(length) > end) {
        Some((tag, length, start)) => Err(too_long(tag, length, end - start)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = [tag.0.to_le_bytes(), tag.1.to_le_bytes()].concat();
        out.extend_from_slice(vr);
        if !short_length(*vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn lengths_that_fit_pass_and_one_that_does_not_is_named() {
        let rows = element((0x0028, 0x0010), b"US", &[2, 0]);
        let pixels = element(PIXEL_DATA, b"OW", &[0; 8]);
        let good = [rows.clone(), pixels.clone()].concat();
        assert_eq!(check(&good, Encoding::EXPLICIT_LE), Ok(()));
        let mut bomb = good.clone();
        let at = rows.len() + 8;
        bomb[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        let message = check(&bomb, Encoding::EXPLICIT_LE).unwrap_err();
        assert!(message.contains("(7FE0,0010) claims 4294967040 bytes but only 8 follow"), "{message}");
    }

    /// Gives its bytes three at a time, as a decompressor may.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(3).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_stream_is_walked_as_its_bytes_are_without_holding_them() {
        let stream = |bytes: &[u8], max: u64| check_stream(Trickle(bytes), Encoding::EXPLICIT_LE, max);
        let rows = element((0x0028, 0x0010), b"US", &[2, 0]);
        let pixels = element(PIXEL_DATA, b"OW", &[0; 8]);
        let good = [rows.clone(), pixels.clone()].concat();
        assert_eq!(stream(&good, 1 << 20), Ok(()));
        // A skipped value that is not all there.
        let mut bomb = good.clone();
        let at = rows.len() + 8;
        bomb[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        let message = stream(&bomb, 1 << 20).unwrap_err();
        assert!(message.contains("(7FE0,0010) claims 4294967040 bytes but only 8 follow"), "{message}");
        // A sequence walked into that claims more than the stream turns out to hold: found at its end.
        let item = element((0x0008, 0x0100), b"LO", b"ab");
        let mut item =
            [[0xFE, 0xFF, 0x00, 0xE0].as_slice(), &(item.len() as u32).to_le_bytes(), &item].concat();
        let sequence = element((0x0040, 0x0260), b"SQ", &item);
        assert_eq!(stream(&sequence, 1 << 20), Ok(()));
        item[4..8].copy_from_slice(&5000u32.to_le_bytes());
        let claims = element((0x0040, 0x0260), b"SQ", &item);
        let message = stream(&claims, 1 << 20).unwrap_err();
        assert!(message.contains("(FFFE,E000) claims 5000 bytes but only 10 follow"), "{message}");
        assert_eq!(check(&claims, Encoding::EXPLICIT_LE).unwrap_err(), message, "the same as the slice's");
        // Past the most it may hold: refused for its size, whatever its lengths say.
        let message = stream(&good, good.len() as u64 - 1).unwrap_err();
        assert!(message.contains(&format!("inflates past {} bytes", good.len() - 1)), "{message}");
        assert_eq!(stream(&good, good.len() as u64), Ok(()));
    }

    #[test]
    fn an_element_running_past_the_end_of_its_item_is_refused() {
        // An item (outside any sequence, as dicom-rs then reads it: one value of its length) whose
        // declared length ends one byte inside its last element.
        let inner = element((0x0008, 0x0104), b"LO", b"Lossy Compression ");
        let item =
            |length: u32| [[0xFE, 0xFF, 0x00, 0xE0].as_slice(), &length.to_le_bytes(), &inner].concat();
        let after = element((0x0010, 0x0010), b"PN", b"Lestrade^G");
        let fits = [item(inner.len() as u32), after.clone()].concat();
        assert_eq!(check(&fits, Encoding::EXPLICIT_LE), Ok(()));
        let short = [item(inner.len() as u32 - 1), after].concat();
        for message in [
            check(&short, Encoding::EXPLICIT_LE).unwrap_err(),
            check_stream(Trickle(&short), Encoding::EXPLICIT_LE, 1 << 20).unwrap_err(),
        ] {
            assert!(
                message.contains("runs past the end of (FFFE,E000), whose value is 25 bytes"),
                "{message}"
            );
        }
    }

    #[test]
    fn fragments_are_skipped_and_sequences_entered() {
        let mut encapsulated = [PIXEL_DATA.0.to_le_bytes(), PIXEL_DATA.1.to_le_bytes()].concat();
        encapsulated.extend_from_slice(b"OB\0\0");
        encapsulated.extend_from_slice(&UNDEFINED.to_le_bytes());
        for fragment in [&[][..], &[0xFF, 0xD8, 0x28, 0x00, 0x10, 0x00, b'O', b'B'][..]] {
            encapsulated.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            encapsulated.extend_from_slice(&(fragment.len() as u32).to_le_bytes());
            encapsulated.extend_from_slice(fragment);
        }
        encapsulated.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(check(&encapsulated, Encoding::EXPLICIT_LE), Ok(()), "fragment bytes are not elements");
        // A sequence of one item holding an element that claims too much.
        let inner = element((0x0008, 0x0100), b"LO", b"ab");
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        item.extend_from_slice(&inner);
        let mut sequence = element((0x0040, 0x0260), b"SQ", &item);
        let last = sequence.len() - 4;
        sequence[last..last + 2].copy_from_slice(&900u16.to_le_bytes());
        assert!(check(&sequence, Encoding::EXPLICIT_LE).unwrap_err().contains("(0008,0100) claims 900"));
    }

    #[test]
    fn other_item_group_tags_are_values_whose_length_must_fit() {
        let tail = element((0x0008, 0x0100), b"LO", b"ab");
        let mut stray = vec![0xFE, 0xFF, 0x0D, 0x02];
        stray.extend_from_slice(&2u32.to_le_bytes());
        stray.extend_from_slice(&[0, 0]);
        let good = [stray.clone(), tail.clone()].concat();
        assert_eq!(check(&good, Encoding::EXPLICIT_LE), Ok(()), "the value is skipped, not read as a header");
        let mut bomb = good;
        bomb[4..8].copy_from_slice(&0xE000_0000u32.to_le_bytes());
        let message = check(&bomb, Encoding::EXPLICIT_LE).unwrap_err();
        assert!(message.contains("(FFFE,020D) claims 3758096384"), "{message}");
    }

    #[test]
    fn delimiters_with_a_length_are_refused() {
        let tail = element((0x0008, 0x0100), b"LO", b"ab");
        for delimiter in [SEQUENCE_DELIMITER, ITEM_DELIMITER] {
            let mut bytes = [ITEM_GROUP.to_le_bytes(), delimiter.to_le_bytes()].concat();
            bytes.extend_from_slice(&[0; 4]);
            bytes.extend_from_slice(&tail);
            assert_eq!(check(&bytes, Encoding::EXPLICIT_LE), Ok(()), "a length of 0 is a delimiter");
            bytes[4..8].copy_from_slice(&0xFFFF_0000u32.to_le_bytes());
            let message = check(&bytes, Encoding::EXPLICIT_LE).unwrap_err();
            assert!(message.contains("has a length of 4294901760; delimiters have none"), "{message}");
        }
    }

    #[test]
    fn implicit_sequences_are_entered_by_the_dictionary() {
        let implicit = Encoding { explicit_vr: false, big_endian: false };
        let implicit_element = |tag: (u16, u16), value: &[u8]| {
            let mut out = [tag.0.to_le_bytes(), tag.1.to_le_bytes()].concat();
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
            out
        };
        // Dose Reference Sequence (300A,0010) is SQ: its item claims more than the whole file.
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        item.extend_from_slice(&0x0040_006Cu32.to_le_bytes());
        item.extend_from_slice(&implicit_element((0x300A, 0x0012), b"1 "));
        let sequence = implicit_element((0x300A, 0x0010), &item);
        let message = check(&sequence, implicit).unwrap_err();
        assert!(message.contains("(FFFE,E000) claims 4194412"), "{message}");
        // The same bytes under a tag the dictionary calls LO are a value, skipped whole.
        let text = implicit_element((0x0008, 0x0070), &item);
        assert_eq!(check(&text, implicit), Ok(()));
    }

    #[test]
    fn binary_values_must_be_whole() {
        let ul = element((0x0028, 0x0103), b"UL", &[0, 0]);
        let message = check(&ul, Encoding::EXPLICIT_LE).unwrap_err();
        assert!(
            message.contains("(0028,0103) has 2 bytes, not a whole number of 4-byte values"),
            "{message}"
        );
        // Implicit VR: Rows is US in the dictionary.
        let mut rows = [0x28u8, 0, 0x10, 0, 3, 0, 0, 0].to_vec();
        rows.extend_from_slice(&[1, 2, 3]);
        let implicit = Encoding { explicit_vr: false, big_endian: false };
        assert!(check(&rows, implicit).unwrap_err().contains("2-byte values"));
        rows[4] = 2;
        rows.pop();
        assert_eq!(check(&rows, implicit), Ok(()));
    }

    #[test]
    fn the_meta_group_is_walked_as_far_as_its_length_says() {
        let group_length =
            |n: u32| [&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00][..], &n.to_le_bytes()].concat();
        let ts = element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2\0");
        // An element of another group inside the declared length is still read by dicom-rs.
        let mut stray = element((0x0049, 0x0001), b"OB", &[0; 4]);
        let at = stray.len() - 8;
        stray[at..at + 4].copy_from_slice(&0x5500_00A8u32.to_le_bytes());
        let meta = [group_length((ts.len() + stray.len()) as u32), ts.clone(), stray.clone()].concat();
        assert!(check_meta(&meta).unwrap_err().contains("(0049,0001) claims 1426063528"));
        let short = [group_length(ts.len() as u32), ts.clone(), stray.clone()].concat();
        assert_eq!(check_meta(&short), Ok(()), "past the group length is the data set's");
        // dicom-rs reads the group length whatever its VR, with a 2- or a 4-byte length field.
        let mut as_time = meta.clone();
        as_time[4..6].copy_from_slice(b"TM");
        assert!(check_meta(&as_time).unwrap_err().contains("(0049,0001) claims"));
        let as_bytes = [
            &[0x02, 0x00, 0x00, 0x00, b'O', b'B', 0, 0, 4, 0, 0, 0][..],
            &((ts.len() + stray.len()) as u32).to_le_bytes(),
            &ts,
            &stray,
        ]
        .concat();
        assert!(check_meta(&as_bytes).unwrap_err().contains("(0049,0001) claims"));
    }
}
