//! Lossy JPEG as the reference decoder (libjpeg, via pylibjpeg) computes it: ISO 10918-1 sequential
//! DCT with Huffman coding (processes 1, 2 and 4: SOF0, SOF1), 8- or 12-bit. `jpeg-decoder` refuses
//! DCT streams of any precision but 8, so the JPEG Extended transfer syntax's 12-bit form is decoded
//! here; `jpeg` also sends 8-bit colour streams here, where `jpeg-decoder`'s rounding, amplified by
//! the YBR→RGB conversion, strays past the conformance tolerance. One to three components with any
//! integral sampling factors, 8- or 16-bit quantisation tables, restart intervals, interleaved or
//! one scan per component. Progressive, arithmetic-coded and hierarchical streams are refused.
//!
//! Samples come out as the stream holds them (no colour transform: the photometric interpretation
//! decides, as in `jpeg`), level-shifted by 128 or 2048 and clamped to 0..=255 or 0..=4095: 8-bit
//! samples as bytes, 12-bit ones as little-endian u16. To get libjpeg's values rather than values
//! within rounding of them, its arithmetic is followed: the integer IDCT (LLM, 9 fractional bits),
//! samples kept in 1/16 units until after upsampling, and chroma halved across or down interpolated
//! with its filter and rounding (see [`Upsampler`]). On the corpus, 8- and 12-bit, its values are
//! then the reference's exactly. Other sampling ratios are replicated, where libjpeg interpolates.
//!
//! Every length and index read from the stream is checked; the frame must have the size the DICOM
//! header gives (already within [`crate::Limits`]) before anything is allocated, and entropy-coded
//! data that ends before the last block is an error rather than decoded from padding.

use crate::Error;

/// Natural (row-major) position of the `k`-th coefficient in zigzag order.
const UNZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
    14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39,
    46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Huffman codes up to this length are looked up in one step; longer ones walk the code lengths.
const FAST_BITS: u32 = 9;

/// Samples are kept in 1/16 units between the IDCT and the end of upsampling, and rounded once at the
/// end, as libjpeg keeps them (its `COLOR_BITS`).
const FRACTION_BITS: u32 = 4;
const FRACTION: i32 = 1 << FRACTION_BITS;

/// Whether a frame header (its marker and sample precision) is one decoded here: sequential Huffman
/// DCT (SOF0 or SOF1) with 12-bit precision.
pub(crate) fn is_twelve_bit_dct(sof: Option<(u8, u8)>) -> bool {
    matches!(sof, Some((0xC0 | 0xC1, 12)))
}

/// Whether a frame header (its marker and precision, and its components' sampling factors) is an
/// 8-bit sequential Huffman DCT colour frame whose chroma is full size or halved across, down or
/// both: decoded here rather than by `jpeg-decoder`, whose IDCT and upsampling round differently
/// from the reference decoder's. Other sampling ratios are left to `jpeg-decoder`, since this decoder
/// would replicate where libjpeg interpolates.
pub(crate) fn is_eight_bit_colour_dct(sof: Option<(u8, u8)>, sampling: &[u8]) -> bool {
    let (h, v): (Vec<u8>, Vec<u8>) = sampling.iter().map(|&hv| (hv >> 4, hv & 15)).unzip();
    let (hmax, vmax) = (h.iter().copied().max().unwrap_or(1), v.iter().copied().max().unwrap_or(1));
    let ratio = |max: u8, f: u8| if f != 0 && max.is_multiple_of(f) { max / f } else { 0 };
    matches!(sof, Some((0xC0 | 0xC1, 8)))
        && sampling.len() == 3
        && h.iter().zip(&v).all(|(&h, &v)| matches!((ratio(hmax, h), ratio(vmax, v)), (1 | 2, 1 | 2)))
}

/// Decodes `stream` (frame `frame` of the file) to interleaved little-endian u16 samples; it must be
/// `columns`×`rows` with `samples` components.
pub(crate) fn decode(
    stream: &[u8],
    frame: u32,
    rows: u32,
    columns: u32,
    samples: u16,
) -> Result<Vec<u8>, Error> {
    Decoder::default().decode(stream, rows, columns, samples).map_err(|failure| match failure {
        Failure::Unsupported(what) => Error::Unsupported { what },
        Failure::Corrupt(detail) => Error::PixelData { frame, detail: format!("JPEG: {detail}") },
    })
}

enum Failure {
    /// A valid stream this decoder does not handle; the text completes "… is not supported yet".
    Unsupported(String),
    Corrupt(String),
}

fn corrupt<T>(detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Corrupt(detail.into()))
}

#[derive(Default)]
struct Decoder {
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: usize,
    frame: Option<Frame>,
}

struct Frame {
    precision: u8,
    width: usize,
    height: usize,
    hmax: usize,
    vmax: usize,
    /// MCUs across and down when all components are interleaved.
    mcus_x: usize,
    mcus_y: usize,
    components: Vec<Component>,
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant_table: usize,
    /// Decoded samples in 1/16 units (`FRACTION`), level-shifted but not clamped, padded to whole
    /// interleaved MCUs; `stride` wide.
    plane: Vec<i32>,
    stride: usize,
    decoded: bool,
}

/// One component of a scan: its index in the frame and its DC and AC tables.
struct ScanComponent<'a> {
    index: usize,
    dc: &'a Huffman,
    ac: &'a Huffman,
    quant: [f64; 64],
}

impl Decoder {
    fn decode(mut self, stream: &[u8], rows: u32, columns: u32, samples: u16) -> Result<Vec<u8>, Failure> {
        if !stream.starts_with(&[0xFF, 0xD8]) {
            return corrupt("no start-of-image marker");
        }
        let mut at = 2;
        // Without an end-of-image marker, whatever was decoded is checked below.
        while let Some((marker, after)) = next_marker(stream, at) {
            match marker {
                0xD9 => break,
                0xD0..=0xD7 | 0x01 => at = after, // stray restart markers, TEM: no segment
                _ => {
                    let segment = segment(stream, after)?;
                    at = after + 2 + segment.len();
                    match marker {
                        0xDB => self.read_quant(segment)?,
                        0xC4 => self.read_huffman(segment)?,
                        0xDD => self.restart_interval = usize::from(be16(segment, 0)?),
                        0xC0 | 0xC1 => self.read_frame(segment, rows, columns, samples)?,
                        0xC2 | 0xC6 | 0xCA | 0xCE => {
                            return Err(Failure::Unsupported("progressive 12-bit JPEG".into()));
                        }
                        0xC3 | 0xC7 | 0xCB | 0xCF => {
                            return corrupt("a lossless frame header in a lossy stream");
                        }
                        0xC5 | 0xC9 | 0xCD => {
                            return Err(Failure::Unsupported("arithmetic-coded JPEG".into()));
                        }
                        0xDA => at = self.read_scan(segment, stream, at)?,
                        _ => {} // APPn, COM, DNL and the like
                    }
                }
            }
        }
        let Some(frame) = self.frame else { return corrupt("no frame header") };
        if let Some(missing) = frame.components.iter().find(|c| !c.decoded) {
            return corrupt(format!("component {} is in no scan", missing.id));
        }
        Ok(frame.interleave())
    }

    /// DQT: one or more tables, 8- or 16-bit, in zigzag order.
    fn read_quant(&mut self, mut segment: &[u8]) -> Result<(), Failure> {
        while let Some((&pq_tq, rest)) = segment.split_first() {
            let (precision, index) = (pq_tq >> 4, usize::from(pq_tq & 15));
            let size = match precision {
                0 => 64,
                1 => 128,
                _ => return corrupt(format!("quantisation table precision {precision}")),
            };
            let Some(values) = rest.get(..size) else { return corrupt("truncated quantisation table") };
            let table = std::array::from_fn(|k| match precision {
                0 => u16::from(values[k]),
                _ => u16::from_be_bytes([values[2 * k], values[2 * k + 1]]),
            });
            *self.quant.get_mut(index).ok_or(Failure::Corrupt(format!("quantisation table {index}")))? =
                Some(table);
            segment = &rest[size..];
        }
        Ok(())
    }

    /// DHT: one or more tables.
    fn read_huffman(&mut self, mut segment: &[u8]) -> Result<(), Failure> {
        while let Some((&tc_th, rest)) = segment.split_first() {
            let Some(counts) = rest.get(..16) else { return corrupt("truncated Huffman table") };
            let total: usize = counts.iter().map(|&n| usize::from(n)).sum();
            let Some(values) = rest.get(16..16 + total) else { return corrupt("truncated Huffman table") };
            let table = Some(Huffman::new(counts, values)?);
            let index = usize::from(tc_th & 15);
            let slot = match tc_th >> 4 {
                0 => self.dc.get_mut(index),
                1 => self.ac.get_mut(index),
                _ => None,
            };
            *slot.ok_or(Failure::Corrupt(format!("Huffman table class and index {tc_th:#04x}")))? = table;
            segment = &rest[16 + total..];
        }
        Ok(())
    }

    /// SOF0/SOF1: checked against the DICOM header before the sample planes are allocated.
    fn read_frame(&mut self, segment: &[u8], rows: u32, columns: u32, samples: u16) -> Result<(), Failure> {
        if self.frame.is_some() {
            return Err(Failure::Unsupported("hierarchical JPEG (several frames)".into()));
        }
        let precision = byte(segment, 0)?;
        if precision != 8 && precision != 12 {
            return Err(Failure::Unsupported(format!("{precision}-bit lossy JPEG")));
        }
        let (height, width, count) = (be16(segment, 1)?, be16(segment, 3)?, byte(segment, 5)?);
        if (u32::from(width), u32::from(height)) != (columns, rows) {
            return corrupt(format!("the stream is {width}×{height} but the header says {columns}×{rows}"));
        }
        if u16::from(count) != samples || !(1..=3).contains(&count) {
            return corrupt(format!(
                "the stream has {count} component(s) but Samples per Pixel is {samples}"
            ));
        }
        let mut components = Vec::new();
        for i in 0..usize::from(count) {
            let (id, hv, tq) =
                (byte(segment, 6 + 3 * i)?, byte(segment, 7 + 3 * i)?, byte(segment, 8 + 3 * i)?);
            let (h, v) = (usize::from(hv >> 4), usize::from(hv & 15));
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) || tq > 3 {
                return corrupt(format!("component {id} has sampling {h}×{v} and table {tq}"));
            }
            let quant_table = usize::from(tq);
            components.push(Component {
                id,
                h,
                v,
                quant_table,
                plane: Vec::new(),
                stride: 0,
                decoded: false,
            });
        }
        let hmax = components.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = components.iter().map(|c| c.v).max().unwrap_or(1);
        if components.iter().any(|c| hmax % c.h != 0 || vmax % c.v != 0) {
            return Err(Failure::Unsupported("JPEG with non-integral sampling ratios".into()));
        }
        let (width, height) = (usize::from(width), usize::from(height));
        let (mcus_x, mcus_y) = (width.div_ceil(8 * hmax), height.div_ceil(8 * vmax));
        for c in &mut components {
            // Sizes are those of the header's rows × columns (checked against the limits), padded by
            // under one MCU.
            c.stride = mcus_x * c.h * 8;
            c.plane = vec![0; c.stride * mcus_y * c.v * 8];
        }
        self.frame = Some(Frame { precision, width, height, hmax, vmax, mcus_x, mcus_y, components });
        Ok(())
    }

    /// SOS and its entropy-coded data, which starts at `data`; returns where the data ends.
    fn read_scan(&mut self, segment: &[u8], stream: &[u8], data: usize) -> Result<usize, Failure> {
        let Some(frame) = self.frame.as_mut() else { return corrupt("a scan before the frame header") };
        let count = usize::from(byte(segment, 0)?);
        if !(1..=frame.components.len()).contains(&count) {
            return corrupt(format!("a scan of {count} components"));
        }
        let mut scan = Vec::with_capacity(count);
        for i in 0..count {
            let (id, tables) = (byte(segment, 1 + 2 * i)?, byte(segment, 2 + 2 * i)?);
            let Some(index) = frame.components.iter().position(|c| c.id == id) else {
                return corrupt(format!("the scan names component {id}, which the frame lacks"));
            };
            let (dc, ac) = (usize::from(tables >> 4), usize::from(tables & 15));
            let (Some(Some(dc)), Some(Some(ac))) = (self.dc.get(dc), self.ac.get(ac)) else {
                return corrupt(format!("component {id} uses an undefined Huffman table"));
            };
            let component = &frame.components[index];
            let Some(Some(quant)) = self.quant.get(component.quant_table) else {
                return corrupt(format!("component {id} uses an undefined quantisation table"));
            };
            // Dequantised in natural order, ready for the IDCT.
            let mut natural = [0.0; 64];
            for (k, &q) in quant.iter().enumerate() {
                natural[UNZIGZAG[k]] = f64::from(q);
            }
            scan.push(ScanComponent { index, dc, ac, quant: natural });
        }
        // Spectral selection and successive approximation (3 bytes) mean nothing in a sequential
        // scan; libjpeg warns and ignores them, and so does this decoder (JPEG-lossy.dcm says 0..0).
        byte(segment, 3 + 2 * count)?;
        let mut bits = Bits::new(stream, data);
        frame.decode_scan(&scan, &mut bits, self.restart_interval)?;
        for s in &scan {
            frame.components[s.index].decoded = true;
        }
        Ok(bits.pos)
    }
}

impl Frame {
    fn decode_scan(
        &mut self,
        scan: &[ScanComponent],
        bits: &mut Bits,
        restart_interval: usize,
    ) -> Result<(), Failure> {
        // One component alone is coded block by block over its own size (A.2.2); several are coded
        // in MCUs of h×v blocks each (A.2.3).
        let (across, down) = match scan {
            [only] => {
                let c = &self.components[only.index];
                let width = (self.width * c.h).div_ceil(self.hmax);
                let height = (self.height * c.v).div_ceil(self.vmax);
                (width.div_ceil(8), height.div_ceil(8))
            }
            _ => (self.mcus_x, self.mcus_y),
        };
        let blocks: usize =
            scan.iter().map(|s| self.components[s.index].h * self.components[s.index].v).sum();
        if scan.len() > 1 && blocks > 10 {
            return corrupt(format!("an MCU of {blocks} blocks"));
        }
        let shift = 1i64 << (self.precision - 1);
        let mut predictions = [0i32; 3];
        let total = across * down;
        for mcu in 0..total {
            if restart_interval > 0 && mcu > 0 && mcu.is_multiple_of(restart_interval) {
                bits.restart()?;
                predictions = [0; 3];
            }
            let (mx, my) = (mcu % across, mcu / across);
            for (slot, s) in scan.iter().enumerate() {
                let component = &mut self.components[s.index];
                let (h, v) = if scan.len() == 1 { (1, 1) } else { (component.h, component.v) };
                for by in 0..v {
                    for bx in 0..h {
                        let mut block = [0.0; 64];
                        let flat = decode_block(bits, s, &mut predictions[slot], &mut block)?;
                        let (x, y) = ((mx * h + bx) * 8, (my * v + by) * 8);
                        let stride = component.stride;
                        let out = component.plane.get_mut(y * stride + x..).unwrap_or(&mut []);
                        inverse_dct(&block, flat, shift, out, stride);
                    }
                }
            }
            if bits.overrun {
                return corrupt("the entropy-coded data ends before the last block (truncated or corrupt)");
            }
        }
        Ok(())
    }

    /// All components at full size, pixel-interleaved: 8-bit samples as bytes, 12-bit ones as
    /// little-endian u16.
    fn interleave(&self) -> Vec<u8> {
        let wide = self.precision > 8;
        let max = (1i32 << self.precision) - 1;
        let bytes = if wide { 2 } else { 1 };
        let mut out = Vec::with_capacity(self.width * self.height * self.components.len() * bytes);
        let upsamplers: Vec<Upsampler> = self.components.iter().map(|c| Upsampler::new(self, c)).collect();
        let mut lines: Vec<Vec<i32>> = upsamplers.iter().map(|up| Vec::with_capacity(up.width)).collect();
        for y in 0..self.height {
            for ((c, up), line) in self.components.iter().zip(&upsamplers).zip(&mut lines) {
                up.line(c, y, line);
            }
            for x in 0..self.width {
                for (up, line) in upsamplers.iter().zip(&lines) {
                    let sample = ((up.across(line, x) + FRACTION / 2) >> FRACTION_BITS).clamp(0, max);
                    if wide {
                        out.extend_from_slice(&(sample as u16).to_le_bytes());
                    } else {
                        out.push(sample as u8);
                    }
                }
            }
        }
        out
    }
}

/// How one component's samples are brought to full size. Ratios of 2 are interpolated as the
/// reference decoder's libjpeg (not IJG's) does: each output sample is 3/4 of the nearer input
/// sample and 1/4 of the further one, vertically and then horizontally, in 1/16 units with rounding
/// that alternates between +1 and +2 by position; edges repeat. Other ratios replicate.
struct Upsampler {
    /// Full-size pixels per component sample, across and down.
    sx: usize,
    sy: usize,
    /// The component's own size, in samples.
    width: usize,
    height: usize,
}

impl Upsampler {
    fn new(frame: &Frame, c: &Component) -> Self {
        Upsampler {
            sx: frame.hmax / c.h,
            sy: frame.vmax / c.v,
            width: (frame.width * c.h).div_ceil(frame.hmax).max(1),
            height: (frame.height * c.v).div_ceil(frame.vmax).max(1),
        }
    }

    /// The component's samples for full-size row `y`, filtered vertically, into `line`.
    fn line(&self, c: &Component, y: usize, line: &mut Vec<i32>) {
        line.clear();
        line.extend((0..self.width).map(|s| self.column(c, s, y)));
    }

    /// The full-size sample at column `x` of a row whose `line` is filtered vertically, in 1/16
    /// units.
    fn across(&self, line: &[i32], x: usize) -> i32 {
        let column = |s: usize| line.get(s.min(self.width - 1)).copied().unwrap_or(0);
        let s = x / self.sx;
        if self.sx != 2 {
            return column(s);
        }
        match x % 8 {
            0 | 2 | 4 | 6 => interpolate(column(s.saturating_sub(1)), column(s), 2),
            // libjpeg filters each run of 8 output samples in place, and has overwritten the input
            // sample right of the second output sample with the third output sample by then.
            1 => interpolate(interpolate(column(s), column(s + 1), 2), column(s), 1),
            _ => interpolate(column(s + 1), column(s), 1),
        }
    }

    /// Column `s` of the component at full-size row `y`, filtered vertically.
    fn column(&self, c: &Component, s: usize, y: usize) -> i32 {
        let at = |row: usize| c.plane.get(row.min(self.height - 1) * c.stride + s).copied().unwrap_or(0);
        let row = y / self.sy;
        if self.sy != 2 {
            return at(row);
        }
        // libjpeg's rounding alternates along the row of its buffer, which starts one sample to the
        // left when the component is also subsampled across.
        let even = (s + usize::from(self.sx == 2)).is_multiple_of(2);
        if y.is_multiple_of(2) {
            interpolate(at(row.saturating_sub(1)), at(row), if even { 2 } else { 1 })
        } else {
            interpolate(at(row + 1), at(row), if even { 1 } else { 2 })
        }
    }
}

/// (`further` + 3·`nearer` + `rounding`) / 4, rounded down.
fn interpolate(further: i32, nearer: i32, rounding: i32) -> i32 {
    (further + 3 * nearer + rounding) >> 2
}

/// One block's coefficients, dequantised, into `block` (natural order); whether it has DC only.
fn decode_block(
    bits: &mut Bits,
    s: &ScanComponent,
    prediction: &mut i32,
    block: &mut [f64; 64],
) -> Result<bool, Failure> {
    let size = u32::from(s.dc.decode(bits)?);
    if size > 15 {
        return corrupt(format!("DC difference of {size} bits"));
    }
    *prediction = prediction.wrapping_add(bits.receive_extend(size));
    block[0] = f64::from(*prediction) * s.quant[0];
    let mut flat = true;
    let mut k = 1;
    while k < 64 {
        let rs = s.ac.decode(bits)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 {
            if run != 15 {
                break; // end of block
            }
            k += 16;
            continue;
        }
        k += run;
        let Some(&at) = UNZIGZAG.get(k) else { return corrupt("more than 64 coefficients in a block") };
        block[at] = f64::from(bits.receive_extend(size)) * s.quant[at];
        flat = false;
        k += 1;
    }
    Ok(flat)
}

/// A canonical Huffman table (C.2, F.2.2.3).
struct Huffman {
    /// By the next `FAST_BITS` bits: code length << 8 | value, or 0 for a longer code.
    fast: Vec<u16>,
    /// Largest code of each length (index 1..=16), or -1 if there is none.
    max_code: [i32; 17],
    /// What to add to a code of each length for its index in `values`.
    offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8], values: &[u8]) -> Result<Self, Failure> {
        let mut table = Huffman {
            fast: vec![0; 1 << FAST_BITS],
            max_code: [-1; 17],
            offset: [0; 17],
            values: values.to_vec(),
        };
        let (mut code, mut k) = (0u32, 0usize);
        for length in 1..=16u32 {
            let n = counts.get(length as usize - 1).copied().map_or(0, usize::from);
            table.offset[length as usize] = k as i32 - code as i32;
            for _ in 0..n {
                if code >= 1 << length {
                    return corrupt("a Huffman table with more codes than fit their lengths");
                }
                if length <= FAST_BITS {
                    let spread = FAST_BITS - length;
                    let entry = (length as u16) << 8 | u16::from(values.get(k).copied().unwrap_or(0));
                    for low in 0..1u32 << spread {
                        table.fast[((code << spread) | low) as usize] = entry;
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                table.max_code[length as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        Ok(table)
    }

    fn decode(&self, bits: &mut Bits) -> Result<u8, Failure> {
        bits.fill();
        let entry = self.fast[bits.peek(FAST_BITS) as usize];
        if entry != 0 {
            bits.consume(u32::from(entry >> 8));
            return Ok(entry as u8);
        }
        for length in FAST_BITS + 1..=16 {
            let code = bits.peek(length) as i32;
            if code <= self.max_code[length as usize] {
                let value = self.values.get((code + self.offset[length as usize]) as usize).copied();
                bits.consume(length);
                return value.ok_or(Failure::Corrupt("a Huffman code without a value".into()));
            }
        }
        corrupt("an invalid Huffman code")
    }
}

/// Entropy-coded bits, MSB first, with stuffed zero bytes removed. Past a marker or the end of the
/// data it reads zeros and notes whether any were consumed (`overrun`).
struct Bits<'a> {
    data: &'a [u8],
    /// Next byte to read.
    pos: usize,
    /// Bits not yet consumed, from the top.
    acc: u64,
    count: u32,
    /// How many of the bits in `acc` came from the data rather than padding.
    real: u32,
    at_marker: bool,
    overrun: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits { data, pos, acc: 0, count: 0, real: 0, at_marker: false, overrun: false }
    }

    /// Tops the buffer up to at least 57 bits (enough for a code and its extra bits).
    fn fill(&mut self) {
        while self.count <= 56 {
            let byte = self.next_byte();
            self.acc |= u64::from(byte.unwrap_or(0)) << (56 - self.count);
            self.count += 8;
            if byte.is_some() {
                self.real += 8;
            }
        }
    }

    fn next_byte(&mut self) -> Option<u8> {
        if self.at_marker {
            return None;
        }
        let byte = *self.data.get(self.pos)?;
        if byte == 0xFF {
            if self.data.get(self.pos + 1) != Some(&0) {
                self.at_marker = true;
                return None;
            }
            self.pos += 2;
        } else {
            self.pos += 1;
        }
        Some(byte)
    }

    /// The next `n` bits (1..=16), after a `fill`.
    fn peek(&self, n: u32) -> u32 {
        (self.acc >> (64 - n)) as u32
    }

    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.count = self.count.saturating_sub(n);
        self.overrun |= n > self.real;
        self.real = self.real.saturating_sub(n);
    }

    /// RECEIVE and EXTEND (F.2.2.1): `size` bits as a signed difference.
    fn receive_extend(&mut self, size: u32) -> i32 {
        if size == 0 {
            return 0;
        }
        self.fill();
        let value = self.peek(size) as i32;
        self.consume(size);
        if value < 1 << (size - 1) { value - (1 << size) + 1 } else { value }
    }

    /// Drops the rest of the current interval and steps over the restart marker that ends it.
    fn restart(&mut self) -> Result<(), Failure> {
        if self.overrun {
            return corrupt("the entropy-coded data ends before a restart marker");
        }
        match next_marker(self.data, self.pos) {
            Some((0xD0..=0xD7, after)) => {
                *self = Bits::new(self.data, after);
                Ok(())
            }
            Some((marker, _)) => corrupt(format!("marker FF{marker:02X} where a restart marker belongs")),
            None => corrupt("the data ends before a restart marker"),
        }
    }
}

/// The 8×8 inverse DCT (A.3.3) as libjpeg computes it, so that its rounding is the reference's:
/// the Loeffler–Ligtenberg–Moschytz factorisation in fixed point with 9 fractional bits, rows then
/// columns, on coefficients scaled by 16. Writes the block's samples, level-shifted by `shift`, in 1/16
/// units (`FRACTION`) and bounded far outside any valid range, to the 8×8 area of `out` (rows
/// `stride` apart) that starts at its beginning. `i64` throughout, so hostile coefficients cannot
/// overflow.
fn inverse_dct(block: &[f64; 64], flat: bool, shift: i64, out: &mut [i32], stride: usize) {
    let bound = 1i64 << 24;
    // Dequantised coefficients are integers; the level shift joins the DC term, pre-multiplied by 8.
    let coefficient = |k: usize| block[k] as i64 * i64::from(FRACTION);
    let dc = coefficient(0) + ((shift * i64::from(FRACTION)) << 3);
    let mut samples = [0i32; 64];
    if flat {
        samples = [((dc + 4) >> 3).clamp(-bound, bound) as i32; 64];
    } else {
        let mut rows = [0i64; 64];
        for v in 0..8 {
            let input: [i64; 8] =
                std::array::from_fn(|u| if v == 0 && u == 0 { dc } else { coefficient(v * 8 + u) });
            let output = llm_1d(input, FIX_BITS);
            rows[v * 8..v * 8 + 8].copy_from_slice(&output);
        }
        for x in 0..8 {
            let output = llm_1d(std::array::from_fn(|v| rows[v * 8 + x]), FIX_BITS + 3);
            for (y, value) in output.into_iter().enumerate() {
                samples[y * 8 + x] = value.clamp(-bound, bound) as i32;
            }
        }
    }
    for (row, chunk) in samples.chunks_exact(8).enumerate() {
        if let Some(line) = out.get_mut(row * stride..row * stride + 8) {
            line.copy_from_slice(chunk);
        }
    }
}

/// Fractional bits of the fixed-point IDCT constants.
const FIX_BITS: u32 = 9;

/// `x` in fixed point with `FIX_BITS` fractional bits, rounded.
const fn fix(x: f64) -> i64 {
    (x * (1 << FIX_BITS) as f64 + 0.5) as i64
}

/// One 8-point inverse DCT of `input` (frequencies) in fixed point, rounded and shifted down by
/// `down` bits. Values saturate rather than overflow.
fn llm_1d(input: [i64; 8], down: u32) -> [i64; 8] {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = input.map(|v| v.clamp(-(1 << 40), 1 << 40));
    // Even part.
    let z1 = (s2 + s6) * fix(0.541196100);
    let tmp2 = z1 + s6 * -fix(1.847759065);
    let tmp3 = z1 + s2 * fix(0.765366865);
    let tmp0 = (s0 + s4) << FIX_BITS;
    let tmp1 = (s0 - s4) << FIX_BITS;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
    // Odd part.
    let (t0, t1, t2, t3) = (s7, s5, s3, s1);
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * fix(1.175875602);
    let z1 = z1 * -fix(0.899976223);
    let z2 = z2 * -fix(2.562915447);
    let z3 = z3 * -fix(1.961570560) + z5;
    let z4 = z4 * -fix(0.390180644) + z5;
    let odd0 = t0 * fix(0.298631336) + z1 + z3;
    let odd1 = t1 * fix(2.053119869) + z2 + z4;
    let odd2 = t2 * fix(3.072711026) + z2 + z3;
    let odd3 = t3 * fix(1.501321110) + z1 + z4;
    let round = |v: i64| (v + (1 << (down - 1))) >> down;
    [
        round(tmp10 + odd3),
        round(tmp11 + odd2),
        round(tmp12 + odd1),
        round(tmp13 + odd0),
        round(tmp13 - odd0),
        round(tmp12 - odd1),
        round(tmp11 - odd2),
        round(tmp10 - odd3),
    ]
}

/// The next marker at or after `at` (skipping any bytes that are not one, and fill bytes) and the
/// position after it.
fn next_marker(stream: &[u8], mut at: usize) -> Option<(u8, usize)> {
    while let (Some(&first), Some(&second)) = (stream.get(at), stream.get(at + 1)) {
        if first == 0xFF && second != 0 && second != 0xFF {
            return Some((second, at + 2));
        }
        at += 1;
    }
    None
}

/// The payload of the marker segment whose length field is at `at`.
fn segment(stream: &[u8], at: usize) -> Result<&[u8], Failure> {
    let length = usize::from(be16(stream, at)?);
    if length < 2 {
        return corrupt(format!("a marker segment of length {length}"));
    }
    stream.get(at + 2..at + length).ok_or(Failure::Corrupt("truncated marker segment".into()))
}

fn byte(data: &[u8], at: usize) -> Result<u8, Failure> {
    data.get(at).copied().ok_or(Failure::Corrupt("truncated marker segment".into()))
}

fn be16(data: &[u8], at: usize) -> Result<u16, Failure> {
    Ok(u16::from_be_bytes([byte(data, at)?, byte(data, at + 1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entropy-coded bytes of `(value, length)` codes, padded with 1-bits, 0xFF stuffed.
    fn pack(codes: &[(u32, u32)]) -> Vec<u8> {
        let mut bits: Vec<bool> =
            codes.iter().flat_map(|&(v, n)| (0..n).rev().map(move |i| v >> i & 1 == 1)).collect();
        while !bits.len().is_multiple_of(8) {
            bits.push(true);
        }
        let mut out = Vec::new();
        for chunk in bits.chunks(8) {
            let byte = chunk.iter().fold(0u8, |b, &bit| b << 1 | u8::from(bit));
            out.push(byte);
            if byte == 0xFF {
                out.push(0);
            }
        }
        out
    }

    /// A 12-bit grey `width`×8 stream, one block per 8 columns, restart interval 1.
    fn stream(width: u8, blocks: &[Vec<u8>]) -> Vec<u8> {
        build(width, &[(1, 0x11)], 1, blocks)
    }

    /// A 12-bit `width`×8 stream of `components` (ID, sampling factors), all in one scan. Quantisation
    /// table: 2 for DC, 1 for the rest, 16-bit. DC table: the 1-bit code 0 for category 10 and the
    /// 2-bit code 10 for category 0; AC table: the 1-bit code 0 for end-of-block and the 2-bit code
    /// 10 for run 0, size 4. `intervals` are the scan data of each restart interval.
    fn build(width: u8, components: &[(u8, u8)], restart: u8, intervals: &[Vec<u8>]) -> Vec<u8> {
        let mut s = vec![0xFF, 0xD8, 0xFF, 0xDB, 0, 131, 0x10, 0, 2];
        s.extend([0, 1].repeat(63));
        s.extend([0xFF, 0xC4, 0, 21, 0x00, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0]);
        s.extend([0xFF, 0xC4, 0, 21, 0x10, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x04]);
        s.extend([0xFF, 0xDD, 0, 4, 0, restart]);
        let count = components.len() as u8;
        s.extend([0xFF, 0xC1, 0, 8 + 3 * count, 12, 0, 8, 0, width, count]);
        for &(id, sampling) in components {
            s.extend([id, sampling, 0]);
        }
        s.extend([0xFF, 0xDA, 0, 6 + 2 * count, count]);
        for &(id, _) in components {
            s.extend([id, 0x00]);
        }
        s.extend([0, 63, 0]);
        for (i, interval) in intervals.iter().enumerate() {
            if i > 0 {
                s.extend([0xFF, 0xD0 + (i as u8 - 1) % 8]);
            }
            s.extend(interval);
        }
        s.extend([0xFF, 0xD9]);
        s
    }

    fn samples(bytes: &[u8]) -> Vec<u16> {
        bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
    }

    /// DC code, then a 10-bit DC difference, then end of block.
    fn dc_only(difference: u32) -> Vec<u8> {
        pack(&[(0, 1), (difference, 10), (0, 1)])
    }

    #[test]
    fn a_dc_only_block_is_flat_at_dc_over_8_plus_2048() {
        let mut block = [0.0; 64];
        block[0] = 800.0;
        for flat in [true, false] {
            let mut out = [0; 64];
            inverse_dct(&block, flat, 2048, &mut out, 8);
            assert_eq!(out, [2148 * 16; 64], "flat: {flat}");
        }
    }

    #[test]
    fn one_ac_coefficient_gives_a_cosine_in_sixteenths() {
        let mut block = [0.0; 64];
        block[1] = 64.0; // horizontal frequency 1: 64 · C(0)·C(1)/4 · cos((2x+1)π/16) = 8√2·cos(…)
        let mut out = [0; 64];
        inverse_dct(&block, false, 2048, &mut out, 8);
        // The fixed-point constants put it within 1/16 of 16 · (2048 + 8√2·cos(…)), rounded.
        let exact = [32946, 32919, 32869, 32803, 32733, 32667, 32617, 32590];
        let row: Vec<i32> = out[..8].to_vec();
        assert!(row.iter().zip(exact).all(|(&a, b)| (a - b).abs() <= 1), "{row:?}");
        assert!(out.chunks_exact(8).all(|r| r == row), "{out:?}");
    }

    #[test]
    fn a_hand_built_stream_decodes_to_known_values() {
        // DC ±600 (category 10), dequantised by 2: ±1200, over 8: ±150. The restart resets the DC
        // prediction, so the second block's −600 is its own DC rather than a difference from 600.
        let minus_600 = 1023 - 600; // EXTEND: a leading 0 bit means negative
        let s = stream(16, &[dc_only(600), dc_only(minus_600)]);
        let out = samples(&decode(&s, 0, 8, 16, 1).unwrap());
        let row: Vec<u16> = [2198; 8].into_iter().chain([1898; 8]).collect();
        assert_eq!(out, row.repeat(8));
    }

    #[test]
    fn interleaved_components_are_laid_out_by_mcu_and_upsampled() {
        // 32×8, Y sampled 2×1 and Cb, Cr 1×1: two MCUs of Y, Y, Cb, Cr, each component predicting
        // its DC from its own previous block. ±600 → ±150 from 2048, as above. Chroma is
        // interpolated across the step between its two blocks (x = 15, 16) and flat elsewhere.
        let (plus, minus) = ((0, 1, 600), (0, 1, 1023 - 600));
        let blocks = [plus, minus, plus, minus, plus, minus, minus, plus];
        let codes: Vec<(u32, u32)> =
            blocks.iter().flat_map(|&(dc, len, v)| [(dc, len), (v, 10), (0, 1)]).collect();
        let s = build(32, &[(1, 0x21), (2, 0x11), (3, 0x11)], 0, &[pack(&codes)]);
        let out = samples(&decode(&s, 0, 8, 32, 3).unwrap());
        let row: Vec<u16> = (0..32)
            .flat_map(|x| {
                let y = if (x / 8) % 2 == 0 { 2198 } else { 2048 }; // 600, 0, 600, 0
                let (cb, cr) = match x {
                    ..15 => (2198, 1898), // Cb 600, Cr −600
                    15 => (2161, 1936),   // ¾ of the left block, ¼ of the right
                    16 => (2086, 2011),   // ¼ of the left block, ¾ of the right
                    _ => (2048, 2048),    // Cb 0, Cr 0
                };
                [y, cb, cr]
            })
            .collect();
        assert_eq!(out, row.repeat(8));
    }

    /// A frame `width`×`height` whose one component, `h`×`v` of `hmax`×`vmax`, holds `plane`.
    fn subsampled(
        width: usize,
        height: usize,
        (hmax, vmax): (usize, usize),
        plane: Vec<i32>,
    ) -> (Frame, Component) {
        let frame =
            Frame { precision: 8, width, height, hmax, vmax, mcus_x: 1, mcus_y: 1, components: Vec::new() };
        let stride = width.div_ceil(hmax);
        let component = Component { id: 2, h: 1, v: 1, quant_table: 0, plane, stride, decoded: true };
        (frame, component)
    }

    #[test]
    fn chroma_halved_across_is_interpolated_as_libjpeg_does() {
        // In 1/16 units. Each output is (further + 3·nearer + 2 or 1) / 4, except the second of each
        // run of 8, which libjpeg computes from the third output rather than the second input:
        // x = 1 is (28 + 3·16 + 1) / 4 = 19, where (32 + 3·16 + 1) / 4 would be 20.
        let (frame, c) = subsampled(16, 1, (2, 1), vec![16, 32, 48, 64, 80, 96, 112, 128]);
        let up = Upsampler::new(&frame, &c);
        let mut line = Vec::new();
        up.line(&c, 0, &mut line);
        let row: Vec<i32> = (0..16).map(|x| up.across(&line, x)).collect();
        assert_eq!(row, [16, 19, 28, 36, 44, 52, 60, 68, 76, 83, 92, 100, 108, 116, 124, 128]);
    }

    #[test]
    fn chroma_halved_down_is_interpolated_with_alternating_rounding() {
        // Two columns of 16, 34; rounding +2 then +1 down even columns, +1 then +2 down odd ones.
        let (frame, c) = subsampled(2, 4, (1, 2), vec![16, 16, 34, 34]);
        let up = Upsampler::new(&frame, &c);
        let mut line = Vec::new();
        let mut column = |x| {
            let mut values = Vec::new();
            for y in 0..4 {
                up.line(&c, y, &mut line);
                values.push(up.across(&line, x));
            }
            values
        };
        assert_eq!(column(0), [16, 20, 30, 34]);
        assert_eq!(column(1), [16, 21, 29, 34]);
    }

    #[test]
    fn only_8_bit_colour_dct_with_chroma_full_or_halved_goes_here() {
        let sof = Some((0xC0, 8));
        assert!(is_eight_bit_colour_dct(sof, &[0x11, 0x11, 0x11]), "4:4:4");
        assert!(is_eight_bit_colour_dct(sof, &[0x21, 0x11, 0x11]), "4:2:2");
        assert!(is_eight_bit_colour_dct(sof, &[0x22, 0x11, 0x11]), "4:2:0");
        assert!(is_eight_bit_colour_dct(Some((0xC1, 8)), &[0x22, 0x11, 0x11]), "extended, 8-bit");
        assert!(!is_eight_bit_colour_dct(sof, &[0x41, 0x11, 0x11]), "4:1:1");
        assert!(!is_eight_bit_colour_dct(sof, &[0x31, 0x21, 0x11]), "not integral");
        assert!(!is_eight_bit_colour_dct(sof, &[0x20, 0x11, 0x11]), "a zero factor");
        assert!(!is_eight_bit_colour_dct(sof, &[0x11]), "grey");
        assert!(!is_eight_bit_colour_dct(Some((0xC2, 8)), &[0x21, 0x11, 0x11]), "progressive");
        assert!(!is_eight_bit_colour_dct(Some((0xC1, 12)), &[0x21, 0x11, 0x11]), "12-bit");
    }

    #[test]
    fn ac_coefficients_are_placed_in_zigzag_order() {
        // DC 512 (dequantised 1024, over 8: 128), then AC run 0, size 4, value 8 at zigzag 1
        // (natural 1): 8 on the first horizontal frequency.
        let block = pack(&[(0, 1), (512, 10), (0b10, 2), (8, 4), (0, 1)]);
        let out = samples(&decode(&stream(8, &[block]), 0, 8, 8, 1).unwrap());
        let expected = |x: usize| {
            let cos = ((2 * x + 1) as f64 * std::f64::consts::PI / 16.0).cos();
            (2048.0 + 128.0 + 8.0 * std::f64::consts::FRAC_1_SQRT_2 / 4.0 * cos).round() as u16
        };
        let row: Vec<u16> = (0..8).map(expected).collect();
        assert_eq!(out, row.repeat(8));
    }

    #[test]
    fn bad_streams_give_errors() {
        let good = stream(16, &[dc_only(600), dc_only(600)]);
        assert!(decode(&good, 0, 8, 16, 1).is_ok());
        let message = |s: &[u8], rows, columns| decode(s, 3, rows, columns, 1).unwrap_err().to_string();
        let scan_start = good.len() - 2 - 2 - 2 * 2; // two 2-byte blocks, a restart marker, EOI
        assert!(message(&good[..scan_start + 1], 8, 16).contains("ends before"), "truncated in a block");
        assert!(message(&good, 8, 24).contains("the stream is 16×8 but the header says 24×8"));
        assert!(message(&good[..40], 8, 16).contains("frame 3"), "truncated in a table");
        assert!(message(&[0xFF, 0xD8, 0xFF, 0xD9], 8, 16).contains("no frame header"));
        let mut progressive = good.clone();
        let sof = progressive.windows(2).position(|w| w == [0xFF, 0xC1]).unwrap();
        progressive[sof + 1] = 0xC2;
        assert_eq!(message(&progressive, 8, 16), "progressive 12-bit JPEG is not supported yet");
        // Three codes of length 1 do not fit.
        assert!(Huffman::new(&[3], &[1, 2, 3]).is_err());
    }

    #[test]
    fn hostile_variants_never_panic() {
        let grey = (stream(16, &[dc_only(600), dc_only(600)]), 16, 1);
        let block = [(0, 1), (600, 10), (0b10, 2), (8, 4), (0, 1)];
        let colour = (build(16, &[(1, 0x22), (2, 0x11), (3, 0x11)], 0, &[pack(&block.repeat(6))]), 16, 3);
        for (good, columns, samples) in [grey, colour] {
            assert!(decode(&good, 0, 8, columns, samples).is_ok());
            for end in 0..good.len() {
                let _ = decode(&good[..end], 0, 8, columns, samples);
            }
            for at in 0..good.len() {
                for value in [0x00, 0x01, 0x0F, 0x7F, 0xC1, 0xD0, 0xFF] {
                    let mut bad = good.clone();
                    bad[at] = value;
                    let _ = decode(&bad, 0, 8, columns, samples);
                }
            }
        }
    }
}
