//! PALETTE COLOR: stored values are indices into red, green and blue lookup tables (PS3.3
//! C.7.6.3.1.5–6), given whole or as Segmented Palette Color LUTs (C.7.9.2). The raw array keeps the
//! indices; drawing looks them up.
//!
//! Tables come from the file, so every length and offset is checked: a table that does not fit its
//! descriptor, or segments that run past the data, point nowhere or loop, are errors.

use crate::{Error, Frame, Rescale};
use dicom_core::Tag;
use dicom_core::value::{DicomValueType, PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// The three tables of a PALETTE COLOR image, ready to look indices up.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Palette {
    /// Stored value that maps to the first entry of each table.
    first_mapped: i32,
    /// Bits per entry of the looked-up values: 8 or 16.
    bits: u16,
    /// Red, green, blue; never empty.
    tables: [Vec<u16>; 3],
}

/// A Palette Color Lookup Table Descriptor (PS3.3 C.7.6.3.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Descriptor {
    /// 1 to 65536 (a stored 0 means 65536).
    entries: usize,
    first_mapped: i32,
    /// 8 or 16.
    bits: u16,
}

/// One colour's table data as the file holds it: 16-bit words, in the data set's byte order already
/// undone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TableData {
    Whole(Vec<u16>),
    Segmented(Vec<u16>),
}

/// The most entries a table can have (a 16-bit descriptor value of 0).
const MAX_ENTRIES: usize = 1 << 16;
/// Indirect segments within indirect segments deeper than this are refused rather than recursed.
const MAX_INDIRECT_DEPTH: usize = 8;
/// Segments expanded per table, counting every copy an indirect segment makes: bounds the work a
/// hostile table of nested indirect segments can ask for.
const MAX_SEGMENTS_EXPANDED: usize = 1 << 20;

const CHANNELS: [(&str, Tag, Tag, Tag); 3] = [
    (
        "Red",
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ),
    (
        "Green",
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ),
    (
        "Blue",
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ),
];

fn invalid(detail: String) -> Error {
    Error::InvalidAttribute { attribute: "Palette Color Lookup Table", detail }
}

impl Palette {
    /// Reads the red, green and blue tables of a PALETTE COLOR data set. `signed` is Pixel
    /// Representation 1, which makes the descriptor's first mapped value signed. Alpha is ignored:
    /// the viewer draws opaque pixels.
    pub(crate) fn read(
        object: &DefaultDicomObject,
        signed: bool,
        big_endian: bool,
    ) -> Result<Palette, Error> {
        let mut descriptors = Vec::with_capacity(3);
        let mut data = Vec::with_capacity(3);
        for (colour, descriptor_tag, whole_tag, segmented_tag) in CHANNELS {
            let element = object
                .element_opt(descriptor_tag)
                .ok()
                .flatten()
                .ok_or_else(|| invalid(format!("the {colour} descriptor is missing")))?;
            let values = element
                .to_multi_int::<i64>()
                .map_err(|e| invalid(format!("the {colour} descriptor is not numeric: {e}")))?;
            descriptors.push(values);
            let words = |tag| object.element_opt(tag).ok().flatten().map(|e| words(e.value(), big_endian));
            let table = match (words(whole_tag), words(segmented_tag)) {
                (Some(w), _) => TableData::Whole(w.map_err(|e| invalid(format!("{colour} data: {e}")))?),
                (None, Some(w)) => {
                    TableData::Segmented(w.map_err(|e| invalid(format!("{colour} segmented data: {e}")))?)
                }
                (None, None) => return Err(invalid(format!("the {colour} table data is missing"))),
            };
            data.push(table);
        }
        let [red, green, blue]: [TableData; 3] = data.try_into().expect("three channels");
        // The three descriptors are identical by definition (C.7.6.3.1.5); red's governs, as in
        // pydicom and DCMTK.
        Palette::new(&descriptors[0], [red, green, blue], signed)
    }

    /// Builds the tables from a descriptor's three values and each colour's data.
    pub(crate) fn new(descriptor: &[i64], data: [TableData; 3], signed: bool) -> Result<Palette, Error> {
        let descriptor = parse_descriptor(descriptor, signed).map_err(invalid)?;
        let mut tables: [Vec<u16>; 3] = Default::default();
        for ((colour, ..), (table, data)) in CHANNELS.iter().zip(tables.iter_mut().zip(data)) {
            *table = match data {
                TableData::Whole(words) => whole_table(&words, descriptor),
                TableData::Segmented(words) => segmented_table(&words, descriptor),
            }
            .map_err(|e| invalid(format!("{colour}: {e}")))?;
            // Values past the descriptor's last entry take that entry, however long the table.
            table.truncate(descriptor.entries);
        }
        let max = tables.iter().flatten().copied().max().unwrap_or(0);
        // Some writers declare 16-bit entries but store 8-bit values (drawn as 16-bit they would be
        // black) or the reverse; DCMTK reads the values' range the same way.
        let bits = match (descriptor.bits, max) {
            (16, ..=255) => 8,
            (8, 256..) => 16,
            (bits, _) => bits,
        };
        Ok(Palette { first_mapped: descriptor.first_mapped, bits, tables })
    }

    /// The table entry for a stored value: values below the first mapped one take the first entry,
    /// values past the end the last (C.7.6.3.1.5).
    fn entry(&self, stored: i32) -> usize {
        (stored as i64 - self.first_mapped as i64).max(0) as usize
    }

    /// `[red, green, blue]` for one stored value, at [`Palette::bits`] per value.
    pub(crate) fn lookup(&self, stored: i32) -> [u16; 3] {
        let entry = self.entry(stored);
        self.tables.each_ref().map(|t| t[entry.min(t.len() - 1)])
    }

    /// A grey frame of indices → the RGB frame it shows, at the tables' depth.
    pub(crate) fn apply(&self, indices: &Frame) -> Frame {
        let mut stored: Vec<u16> = Vec::with_capacity(indices.stored.len() * 3);
        indices.stored.for_each(|index| stored.extend(self.lookup(index)));
        Frame {
            columns: indices.columns,
            rows: indices.rows,
            samples: 3,
            bits_stored: self.bits,
            invert: false,
            rescale: Rescale::IDENTITY,
            stored: stored.into(),
        }
    }
}

/// The words of a table's data element. dicom-rs has already undone the data set's byte order for
/// OW and US/SS values; data read as bytes (an unknown VR) is paired here.
fn words<I, P>(value: &Value<I, P>, big_endian: bool) -> Result<Vec<u16>, String> {
    let Value::Primitive(value) = value else { return Err("not a plain value".into()) };
    match value {
        PrimitiveValue::U16(words) => Ok(words.to_vec()),
        PrimitiveValue::I16(words) => Ok(words.iter().map(|&w| w as u16).collect()),
        PrimitiveValue::U8(bytes) => Ok(bytes
            .chunks(2)
            .map(|pair| {
                let pair = [pair[0], pair.get(1).copied().unwrap_or(0)];
                if big_endian { u16::from_be_bytes(pair) } else { u16::from_le_bytes(pair) }
            })
            .collect()),
        PrimitiveValue::Empty => Ok(Vec::new()),
        other => Err(format!("{:?} values, expected 16-bit words", other.value_type())),
    }
}

/// Number of entries, first mapped value, bits per entry. The first two are US or SS in the file;
/// either way only their 16 bits count.
fn parse_descriptor(values: &[i64], signed: bool) -> Result<Descriptor, String> {
    let &[entries, first_mapped, bits] = values else {
        return Err(format!("the descriptor has {} values, expected 3", values.len()));
    };
    let sixteen = |v: i64, what: &str| {
        if (i16::MIN as i64..=u16::MAX as i64).contains(&v) {
            Ok(v as u16)
        } else {
            Err(format!("the descriptor's {what} {v} does not fit 16 bits"))
        }
    };
    let entries = match sixteen(entries, "number of entries")? {
        0 => MAX_ENTRIES,
        n => n as usize,
    };
    let first_mapped = sixteen(first_mapped, "first mapped value")?;
    let first_mapped = if signed { first_mapped as i16 as i32 } else { first_mapped as i32 };
    if !matches!(bits, 8 | 16) {
        return Err(format!("{bits} bits per entry (expected 8 or 16)"));
    }
    Ok(Descriptor { entries, first_mapped, bits: bits as u16 })
}

/// Little-endian bytes of OW words: 8-bit entries are packed two to a word, the first in the low byte.
fn bytes_of(words: &[u16]) -> Vec<u16> {
    words.iter().flat_map(|w| w.to_le_bytes()).map(u16::from).collect()
}

/// A whole table: one word per entry, or 8-bit entries two to a word (C.7.6.3.1.6). As in pydicom,
/// the data's length decides, since 8-bit tables stored a word per entry are common.
fn whole_table(words: &[u16], descriptor: Descriptor) -> Result<Vec<u16>, String> {
    let entries = descriptor.entries;
    let packed = entries.div_ceil(2);
    let packed_is_meant = descriptor.bits == 8 && words.len() == packed;
    if words.len() == entries && !packed_is_meant {
        return Ok(words.to_vec());
    }
    if words.len() == packed {
        let mut table = bytes_of(words);
        table.truncate(entries);
        return Ok(table);
    }
    Err(format!(
        "{} bytes of table data for {entries} entries (expected {} or {})",
        2 * words.len(),
        2 * entries,
        2 * packed
    ))
}

/// One parsed segment of a segmented table (C.7.9.2), with where it starts in the data.
#[derive(Debug, Clone, Copy)]
enum Segment {
    /// Values `data[start..start + length]`.
    Discrete { start: usize, length: usize },
    /// `length` values from the previous value to `end`, linearly.
    Linear { length: usize, end: u16 },
    /// Expand `count` segments again, from the one at `offset` (in entries).
    Indirect { count: usize, offset: usize },
}

/// Expands a segmented table. With 8-bit entries the words hold two entries each.
fn segmented_table(words: &[u16], descriptor: Descriptor) -> Result<Vec<u16>, String> {
    let (data, entry_bytes) = if descriptor.bits == 8 { (bytes_of(words), 1) } else { (words.to_vec(), 2) };
    let segments = parse_segments(&data, entry_bytes)?;
    let mut expansion = Expansion { data: &data, segments: &segments, table: Vec::new(), expanded: 0 };
    expansion.expand(0, segments.len(), 0)?;
    if expansion.table.is_empty() {
        return Err("the segmented table expands to no entries".into());
    }
    Ok(expansion.table)
}

/// The segments in order, each with the entry it starts at. A lone trailing entry is padding.
fn parse_segments(data: &[u16], entry_bytes: usize) -> Result<Vec<(usize, Segment)>, String> {
    let mut segments = Vec::new();
    let mut at = 0;
    while at + 1 < data.len() {
        let (opcode, length) = (data[at], data[at + 1] as usize);
        let past_end = || format!("the segment at entry {at} runs past the end of the data");
        let (segment, size) = match opcode {
            0 => (Segment::Discrete { start: at + 2, length }, 2 + length),
            1 => (Segment::Linear { length, end: *data.get(at + 2).ok_or_else(past_end)? }, 3),
            // The offset is 32 bits, least significant half first: two words, or four bytes.
            2 if entry_bytes == 2 => {
                let half = |i: usize| data.get(at + i).map(|&w| w as usize).ok_or_else(past_end);
                (Segment::Indirect { count: length, offset: half(2)? | half(3)? << 16 }, 4)
            }
            2 => {
                let byte = |i: usize| data.get(at + i).map(|&b| b as usize).ok_or_else(past_end);
                let offset = byte(2)? | byte(3)? << 8 | byte(4)? << 16 | byte(5)? << 24;
                (Segment::Indirect { count: length, offset }, 6)
            }
            other => return Err(format!("unknown segment type {other} at entry {at}")),
        };
        if at + size > data.len() {
            return Err(past_end());
        }
        // The standard gives an indirect segment's offset in bytes (C.7.9.2.3), as GDCM and DCMTK
        // read it; pydicom counts entries instead, which differs for 16-bit tables.
        let segment = match segment {
            Segment::Indirect { count, offset } if offset % entry_bytes == 0 => {
                Segment::Indirect { count, offset: offset / entry_bytes }
            }
            Segment::Indirect { offset, .. } => {
                return Err(format!("indirect segment at entry {at}: byte offset {offset} splits an entry"));
            }
            other => other,
        };
        segments.push((at, segment));
        at += size;
    }
    Ok(segments)
}

/// The state of one table's expansion.
struct Expansion<'a> {
    data: &'a [u16],
    segments: &'a [(usize, Segment)],
    table: Vec<u16>,
    /// Segments expanded so far, copies included.
    expanded: usize,
}

impl Expansion<'_> {
    /// Appends segments `first..first + count` to the table.
    fn expand(&mut self, first: usize, count: usize, depth: usize) -> Result<(), String> {
        let chosen = first.checked_add(count).and_then(|end| self.segments.get(first..end));
        let chosen = chosen.ok_or_else(|| {
            format!("an indirect segment copies {count} segments from segment {first}, past the last")
        })?;
        for &(at, segment) in chosen {
            self.expanded += 1;
            if self.expanded > MAX_SEGMENTS_EXPANDED {
                return Err(format!("more than {MAX_SEGMENTS_EXPANDED} segments to expand"));
            }
            let length = match segment {
                Segment::Discrete { length, .. } | Segment::Linear { length, .. } => length,
                Segment::Indirect { .. } => 0,
            };
            if self.table.len() + length > MAX_ENTRIES {
                return Err(format!("the table expands past {MAX_ENTRIES} entries"));
            }
            match segment {
                Segment::Discrete { start, length } => {
                    // Checked by parse_segments: the values lie within the data.
                    self.table.extend_from_slice(&self.data[start..start + length]);
                }
                Segment::Linear { length, end } => {
                    let Some(&from) = self.table.last() else {
                        return Err(format!("the linear segment at entry {at} has no value before it"));
                    };
                    self.table.extend(linear(from, end, length));
                }
                Segment::Indirect { count, offset } => {
                    if depth >= MAX_INDIRECT_DEPTH {
                        return Err(format!(
                            "indirect segments nest deeper than {MAX_INDIRECT_DEPTH} (a loop?) at entry {at}"
                        ));
                    }
                    if self.table.is_empty() {
                        return Err(format!("the indirect segment at entry {at} has no value before it"));
                    }
                    let target = self.segments.binary_search_by_key(&offset, |&(start, _)| start);
                    let target = target.map_err(|_| {
                        format!("the indirect segment at entry {at} points at entry {offset}, where no segment starts")
                    })?;
                    self.expand(target, count, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// `length` values after `from`, evenly towards `to` and ending on it (C.7.9.2.2), rounded half to
/// even as numpy's `around`, which pydicom uses.
fn linear(from: u16, to: u16, length: usize) -> impl Iterator<Item = u16> {
    let (from, to) = (from as f64, to as f64);
    (1..=length).map(move |x| {
        let value = from + (to - from) * x as f64 / length as f64;
        value.round_ties_even().clamp(0.0, u16::MAX as f64) as u16
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(data: TableData) -> [TableData; 3] {
        [data.clone(), data.clone(), data]
    }

    fn grey(stored: Vec<i32>) -> Frame {
        Frame {
            columns: stored.len() as u32,
            rows: 1,
            samples: 1,
            bits_stored: 8,
            invert: false,
            rescale: Rescale::IDENTITY,
            stored: stored.into(),
        }
    }

    #[test]
    fn descriptor_zero_entries_means_65536_and_first_mapped_follows_pixel_representation() {
        let d = parse_descriptor(&[0, 0xFFFF, 16], true).unwrap();
        assert_eq!((d.entries, d.first_mapped, d.bits), (65536, -1, 16));
        let d = parse_descriptor(&[-1, -1, 8], false).unwrap();
        assert_eq!((d.entries, d.first_mapped), (65535, 65535), "SS read of US values");
        assert!(parse_descriptor(&[256, 0, 12], false).unwrap_err().contains("12 bits"));
        assert!(parse_descriptor(&[256, 0], false).is_err());
        assert!(parse_descriptor(&[70_000, 0, 16], false).is_err());
    }

    #[test]
    fn sixteen_bit_tables_map_indices_and_clamp_outside_the_range() {
        // Four entries starting at stored value 10.
        let red = TableData::Whole(vec![0, 1000, 2000, 65535]);
        let green = TableData::Whole(vec![10, 20, 30, 40]);
        let blue = TableData::Whole(vec![400, 300, 200, 100]);
        let palette = Palette::new(&[4, 10, 16], [red, green, blue], false).unwrap();
        assert_eq!(palette.bits, 16);
        assert_eq!(palette.lookup(11), [1000, 20, 300]);
        assert_eq!(palette.lookup(3), [0, 10, 400], "below the first mapped value: first entry");
        assert_eq!(palette.lookup(10_000), [65535, 40, 100], "past the end: last entry");
        let rgb = palette.apply(&grey(vec![10, 13]));
        assert_eq!((rgb.samples, rgb.bits_stored), (3, 16));
        assert_eq!(rgb.stored.to_i32(), [0, 10, 400, 65535, 40, 100]);
        assert_eq!(rgb.render_rgba(None), [0, 0, 1, 255, 255, 0, 0, 255]);
    }

    #[test]
    fn signed_indices_use_a_negative_first_mapped_value() {
        let table = TableData::Whole(vec![0, 128, 255]);
        let palette = Palette::new(&[3, 0xFFFF, 16], same(table), true).unwrap();
        assert_eq!(palette.first_mapped, -1);
        assert_eq!(palette.lookup(-1), [0; 3]);
        assert_eq!(palette.lookup(0), [128; 3]);
    }

    #[test]
    fn eight_bit_entries_come_packed_two_to_a_word() {
        // Entries 1, 2, 3 (low byte first), padded to a whole word.
        let palette = Palette::new(&[3, 0, 8], same(TableData::Whole(vec![0x0201, 0x0003])), false).unwrap();
        assert_eq!(palette.tables[0], [1, 2, 3]);
        assert_eq!(palette.bits, 8);
        // One word per entry under an 8-bit descriptor is read as words.
        let palette = Palette::new(&[3, 0, 8], same(TableData::Whole(vec![7, 8, 9])), false).unwrap();
        assert_eq!(palette.tables[0], [7, 8, 9]);
    }

    #[test]
    fn sixteen_bit_descriptors_over_eight_bit_values_draw_as_eight_bit() {
        let palette = Palette::new(&[2, 0, 16], same(TableData::Whole(vec![0, 255])), false).unwrap();
        assert_eq!(palette.bits, 8);
        assert_eq!(palette.apply(&grey(vec![1])).render_rgba(None), [255, 255, 255, 255]);
    }

    #[test]
    fn tables_that_do_not_fit_their_descriptor_are_errors() {
        let message =
            Palette::new(&[256, 0, 16], same(TableData::Whole(vec![0; 100])), false).unwrap_err().to_string();
        assert!(message.contains("200 bytes of table data for 256 entries"), "{message}");
        let red = TableData::Whole(vec![0; 4]);
        let short = TableData::Whole(vec![0; 3]);
        assert!(Palette::new(&[4, 0, 16], [red.clone(), red, short], false).is_err(), "blue too short");
    }

    #[test]
    fn discrete_and_linear_segments_expand() {
        // Discrete [0, 10], then a linear ramp of 4 to 50, then discrete [7].
        let data = [0, 2, 0, 10, 1, 4, 50, 0, 1, 7];
        let d = Descriptor { entries: 7, first_mapped: 0, bits: 16 };
        assert_eq!(segmented_table(&data, d).unwrap(), [0, 10, 20, 30, 40, 50, 7]);
    }

    #[test]
    fn linear_segments_round_half_to_even_as_pydicom() {
        // 0 → 5 over 2: 2.5 → 2, 5; 0 → 3 over 2: 1.5 → 2, 3.
        assert_eq!(linear(0, 5, 2).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(linear(0, 3, 2).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(linear(100, 100, 3).collect::<Vec<_>>(), [100; 3]);
        assert_eq!(linear(9, 0, 3).collect::<Vec<_>>(), [6, 3, 0], "downwards");
    }

    #[test]
    fn indirect_segments_copy_earlier_segments_by_byte_offset() {
        // Segment 0 at entry 0: discrete [1, 2]; segment 1 at entry 4: linear 2 to 6;
        // segment 2 at entry 7: indirect, 2 segments from byte offset 0 (entry 0).
        let data = [0, 2, 1, 2, 1, 2, 6, 2, 2, 0, 0];
        let d = Descriptor { entries: 10, first_mapped: 0, bits: 16 };
        // Copy: [1, 2] again, then the ramp from 2 to 6 again.
        assert_eq!(segmented_table(&data, d).unwrap(), [1, 2, 4, 6, 1, 2, 4, 6]);
        // Byte offset 8 is entry 4, the linear segment: it ramps from the last value (6) to 6.
        let data = [0, 2, 1, 2, 1, 2, 6, 2, 1, 8, 0];
        assert_eq!(segmented_table(&data, d).unwrap(), [1, 2, 4, 6, 6, 6]);
    }

    #[test]
    fn eight_bit_segments_are_bytes() {
        // fall.dcm's shape: discrete [0], then linear 255 entries to 255 — as bytes in words.
        let words = [u16::from_le_bytes([0, 1]), u16::from_le_bytes([0, 1]), u16::from_le_bytes([255, 255])];
        let table = segmented_table(&words, Descriptor { entries: 256, first_mapped: 0, bits: 8 }).unwrap();
        assert_eq!(table.len(), 256);
        assert_eq!((table[0], table[1], table[128], table[255]), (0, 1, 128, 255));
    }

    #[test]
    fn hostile_segments_are_errors_not_panics() {
        let d = Descriptor { entries: 16, first_mapped: 0, bits: 16 };
        let error = |data: &[u16]| segmented_table(data, d).unwrap_err();
        assert!(error(&[0, 5, 1, 2]).contains("past the end"), "discrete longer than the data");
        assert!(error(&[1, 4, 9]).contains("no value before it"), "linear first");
        assert!(error(&[2, 1, 0, 0]).contains("no value before it"), "indirect first");
        assert!(error(&[7, 1, 0]).contains("unknown segment type 7"));
        // An indirect segment that copies itself: segment 1 at entry 3 (byte 6) copies segment 1.
        assert!(error(&[0, 1, 5, 2, 1, 6, 0]).contains("nest deeper"), "a loop");
        assert!(error(&[0, 1, 5, 2, 1, 0xFFFE, 0xFFFF]).contains("no segment starts"), "offset out of range");
        assert!(error(&[0, 1, 5, 2, 1, 1, 0]).contains("splits an entry"), "odd byte offset");
        assert!(error(&[0, 1, 5, 2, 9, 0, 0]).contains("past the last"), "copies too many segments");
        // Indirect segments that each copy all the segments before them, 5000 empty ones first: the
        // work doubles with each, and is cut off rather than done.
        let mut doubling = vec![0, 1, 5];
        doubling.extend([0, 0].repeat(5000));
        for k in 1..=8u16 {
            doubling.extend([2, 4999 + k, 6, 0]); // from segment 1, at byte 6
        }
        assert!(error(&doubling).contains("segments to expand"), "{}", error(&doubling));
        assert!(error(&[0, 0]).contains("no entries"));
        // A linear ramp longer than any table.
        assert!(error(&[0, 1, 0, 1, 0xFFFF, 9, 1, 0xFFFF, 9]).contains("past 65536"));
    }
}
