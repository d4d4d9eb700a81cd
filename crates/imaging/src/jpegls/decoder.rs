//! The JPEG-LS (ITU-T T.87) decoder: lossless and near-lossless, grey or colour, with the components
//! in one scan each (ILV 0), interleaved by line (ILV 1) or by sample (ILV 2), LSE preset parameters
//! and restart markers. It is written here because `pure_jpegls`, the other pure-Rust decoder,
//! decodes single-component streams only (DICOM's colour JPEG-LS is three components) and refuses
//! restart markers, and the others are C++ (CharLS) or do not implement T.87's interleave. It is
//! plain Rust with no dependencies, so it builds for wasm32. Where T.87 leaves room it does what
//! CharLS does: after a restart marker the lines above count as zero, and in sample interleave each
//! component of a run-interruption sample is coded in the RItype 0 context.
//!
//! Every length comes from the stream and is checked before use; the only allocations are the output
//! (the DICOM header's rows × columns × components, already within the crate's limits) and two
//! lines per component.

use std::fmt;

/// Why a stream could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Corrupt, truncated or inconsistent with the DICOM header.
    Invalid(String),
    /// Valid T.87 that is not implemented here (mapping tables, subsampling, …).
    Unsupported(String),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Invalid(s) | Fail::Unsupported(s) => f.write_str(s),
        }
    }
}

fn invalid<T>(detail: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Invalid(detail.into()))
}

fn unsupported<T>(detail: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Unsupported(detail.into()))
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DRI: u8 = 0xDD;
const APP8: u8 = 0xE8;
const SOF55: u8 = 0xF7;
const LSE: u8 = 0xF8;

/// T.87 A.2.1: the default RESET and the basic thresholds the defaults are scaled from.
const DEFAULT_RESET: i32 = 64;
const BASIC_T: [i32; 3] = [3, 7, 21];
/// T.87 A.7.1.2: run-length order per RUNindex.
const J: [u32; 32] =
    [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// No valid stream needs a Golomb parameter this large (k stays below the 16 bits of a sample).
const MAX_K: u32 = 24;
/// Error values beyond a 16-bit sample's range only come from corrupt data; CharLS refuses them too.
const MAX_ERROR: i32 = 65535;

/// Decodes `stream` into `rows × columns × components` samples, interleaved per pixel (the layout of
/// planar configuration 0), whatever the stream's interleave. The frame header must match the DICOM
/// header's size and component count.
pub(crate) fn decode(stream: &[u8], rows: u32, columns: u32, components: u16) -> Result<Vec<u16>, Fail> {
    Decoder { data: stream, pos: 0 }.decode(rows as usize, columns as usize, usize::from(components))
}

/// The frame header (SOF55).
struct Frame {
    precision: u32,
    height: usize,
    width: usize,
    ids: Vec<u8>,
}

/// LSE ID 1 values; 0 means the default.
#[derive(Default, Clone, Copy)]
struct Presets {
    maxval: i32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, Fail> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| Fail::Invalid("the stream ends inside a header".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, Fail> {
        Ok(u16::from(self.byte()?) << 8 | u16::from(self.byte()?))
    }

    /// The next marker's second byte, past any 0xFF fill bytes.
    fn marker(&mut self) -> Result<u8, Fail> {
        if self.byte()? != 0xFF {
            return invalid(format!("expected a marker at byte {}", self.pos - 1));
        }
        loop {
            match self.byte()? {
                0xFF => {}
                0 => return invalid(format!("expected a marker at byte {}", self.pos - 2)),
                m => return Ok(m),
            }
        }
    }

    /// A marker segment's payload (after its length field).
    fn segment(&mut self) -> Result<&[u8], Fail> {
        let length = usize::from(self.u16()?);
        if length < 2 || self.pos + length - 2 > self.data.len() {
            return invalid("a marker segment's length runs past the stream");
        }
        let data: &[u8] = self.data;
        let payload = &data[self.pos..self.pos + length - 2];
        self.pos += length - 2;
        Ok(payload)
    }

    fn decode(&mut self, rows: usize, columns: usize, components: usize) -> Result<Vec<u16>, Fail> {
        if self.byte()? != 0xFF || self.byte()? != SOI {
            return invalid("no SOI marker at the start of the stream");
        }
        let mut frame: Option<Frame> = None;
        let mut presets = Presets::default();
        let mut restart_interval = 0usize;
        let mut out = Vec::new();
        let mut done = Vec::new();
        loop {
            match self.marker()? {
                SOF55 => {
                    if frame.is_some() {
                        return invalid("more than one frame header");
                    }
                    let f = read_frame(self.segment()?)?;
                    if (f.width, f.height) != (columns, rows) {
                        return invalid(format!(
                            "the stream is {}×{} but the header says {columns}×{rows}",
                            f.width, f.height
                        ));
                    }
                    if f.ids.len() != components {
                        return invalid(format!(
                            "the stream has {} component(s) but the header says {components}",
                            f.ids.len()
                        ));
                    }
                    // Size already checked by the caller against the crate's limits.
                    out = vec![0u16; rows * columns * components];
                    done = vec![false; components];
                    frame = Some(f);
                }
                LSE => read_lse(self.segment()?, &mut presets)?,
                DRI => {
                    let payload = self.segment()?;
                    if !(2..=4).contains(&payload.len()) {
                        return invalid("a DRI segment of the wrong length");
                    }
                    restart_interval = payload.iter().fold(0usize, |v, &b| v << 8 | usize::from(b));
                }
                APP8 => {
                    // HP colour transforms (CharLS's "mrfx" segment): not allowed in DICOM.
                    let payload = self.segment()?;
                    if payload.len() >= 5 && &payload[..4] == b"mrfx" && payload[4] != 0 {
                        return unsupported(format!("JPEG-LS colour transform {}", payload[4]));
                    }
                }
                SOS => {
                    let Some(f) = frame.as_ref() else { return invalid("a scan before the frame header") };
                    let scan = read_scan(self.segment()?, f, &presets)?;
                    for &c in &scan.components {
                        if std::mem::replace(&mut done[c], true) {
                            return invalid("a component coded in two scans");
                        }
                    }
                    self.pos = decode_scan(self.data, self.pos, f, &scan, restart_interval, &mut out)?;
                }
                EOI => {
                    if frame.is_none() || done.iter().any(|d| !d) {
                        return invalid("the stream ends before every component is decoded");
                    }
                    return Ok(out);
                }
                m @ 0xC0..=0xCF if !matches!(m, 0xC4 | 0xC8 | 0xCC) => {
                    return unsupported("a JPEG (not JPEG-LS) frame in a JPEG-LS transfer syntax");
                }
                0x01 | 0xD0..=0xD7 => return invalid("a restart marker outside a scan"),
                _ => {
                    self.segment()?;
                }
            }
        }
    }
}

fn read_frame(p: &[u8]) -> Result<Frame, Fail> {
    if p.len() < 6 {
        return invalid("a short frame header");
    }
    let precision = u32::from(p[0]);
    if !(2..=16).contains(&precision) {
        return invalid(format!("sample precision {precision} (expected 2 to 16)"));
    }
    let height = usize::from(u16::from_be_bytes([p[1], p[2]]));
    let width = usize::from(u16::from_be_bytes([p[3], p[4]]));
    let count = usize::from(p[5]);
    if count == 0 || p.len() != 6 + 3 * count {
        return invalid("a frame header whose length does not match its component count");
    }
    let mut ids = Vec::with_capacity(count);
    for spec in p[6..].chunks_exact(3) {
        if spec[1] != 0x11 {
            return unsupported("subsampled JPEG-LS components");
        }
        if ids.contains(&spec[0]) {
            return invalid("two components with the same identifier");
        }
        ids.push(spec[0]);
    }
    Ok(Frame { precision, height, width, ids })
}

fn read_lse(p: &[u8], presets: &mut Presets) -> Result<(), Fail> {
    match p.first() {
        Some(1) if p.len() >= 11 => {
            let v = |i: usize| i32::from(u16::from_be_bytes([p[i], p[i + 1]]));
            *presets = Presets { maxval: v(1), t1: v(3), t2: v(5), t3: v(7), reset: v(9) };
            Ok(())
        }
        Some(1) => invalid("a short LSE preset segment"),
        Some(2..=4) => unsupported("JPEG-LS mapping tables or oversize dimensions (LSE)"),
        _ => invalid("an LSE segment of unknown type"),
    }
}

/// A scan header (SOS) with the coding parameters it implies.
struct Scan {
    /// Indices into the frame's components, in coding order.
    components: Vec<usize>,
    /// Sample interleave (ILV 2); otherwise each component's line is coded in turn.
    sample_interleave: bool,
    params: Params,
}

/// T.87 A.2.1 coding parameters.
#[derive(Clone, Copy)]
struct Params {
    maxval: i32,
    near: i32,
    range: i32,
    qbpp: u32,
    limit: u32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
}

fn read_scan(p: &[u8], frame: &Frame, presets: &Presets) -> Result<Scan, Fail> {
    let count = usize::from(*p.first().unwrap_or(&0));
    if count == 0 || p.len() != 4 + 2 * count {
        return invalid("a scan header whose length does not match its component count");
    }
    let mut components = Vec::with_capacity(count);
    for spec in p[1..1 + 2 * count].chunks_exact(2) {
        let Some(index) = frame.ids.iter().position(|&id| id == spec[0]) else {
            return invalid(format!("a scan of component {}, which the frame lacks", spec[0]));
        };
        if components.contains(&index) {
            return invalid("a component listed twice in one scan");
        }
        if spec[1] != 0 {
            return unsupported("JPEG-LS mapping tables");
        }
        components.push(index);
    }
    let (near, ilv, point_transform) = (i32::from(p[1 + 2 * count]), p[2 + 2 * count], p[3 + 2 * count]);
    if point_transform != 0 {
        return unsupported("a JPEG-LS point transform");
    }
    let sample_interleave = match (count, ilv) {
        (1, _) | (_, 1) => false,
        (2..=4, 2) => true,
        _ => return invalid(format!("interleave mode {ilv} for a scan of {count} components")),
    };
    let full = (1i32 << frame.precision) - 1;
    let maxval = if presets.maxval == 0 { full } else { presets.maxval };
    if maxval < 1 || maxval > full {
        return invalid(format!("MAXVAL {maxval} for {}-bit samples", frame.precision));
    }
    if near > (maxval / 2).min(255) {
        return invalid(format!("NEAR {near} for MAXVAL {maxval}"));
    }
    let range = (maxval + 2 * near) / (2 * near + 1) + 1;
    let bits = |v: i32| 32 - (v as u32 - 1).leading_zeros(); // ceil(log2 v) for v ≥ 1
    let qbpp = bits(range);
    let bpp = bits(maxval + 1).max(2);
    let limit = 2 * (bpp + bpp.max(8));
    let (t1, t2, t3) = thresholds(maxval, near, presets)?;
    let reset = match presets.reset {
        0 => DEFAULT_RESET,
        r if r >= 3 => r,
        r => return invalid(format!("RESET {r} (expected at least 3)")),
    };
    Ok(Scan {
        components,
        sample_interleave,
        params: Params { maxval, near, range, qbpp, limit, t1, t2, t3, reset },
    })
}

/// T.87 C.2.4.1.1: the default thresholds, where the presets leave them 0, and their order.
fn thresholds(maxval: i32, near: i32, presets: &Presets) -> Result<(i32, i32, i32), Fail> {
    let clamp = |i: i32, j: i32| if i > maxval || i < j { j } else { i };
    let (d1, d2, d3);
    if maxval >= 128 {
        let factor = (maxval.min(4095) + 128) >> 8;
        d1 = clamp(factor * (BASIC_T[0] - 2) + 2 + 3 * near, near + 1);
        d2 = clamp(factor * (BASIC_T[1] - 3) + 3 + 5 * near, d1);
        d3 = clamp(factor * (BASIC_T[2] - 4) + 4 + 7 * near, d2);
    } else {
        let factor = 256 / (maxval + 1);
        d1 = clamp((BASIC_T[0] / factor + 3 * near).max(2), near + 1);
        d2 = clamp((BASIC_T[1] / factor + 5 * near).max(3), d1);
        d3 = clamp((BASIC_T[2] / factor + 7 * near).max(4), d2);
    }
    let pick = |preset: i32, default: i32| if preset == 0 { default } else { preset };
    let (t1, t2, t3) = (pick(presets.t1, d1), pick(presets.t2, d2), pick(presets.t3, d3));
    if !(near < t1 && t1 <= t2 && t2 <= t3 && t3 <= maxval) {
        return invalid(format!("thresholds {t1}, {t2}, {t3} out of order for NEAR {near}, MAXVAL {maxval}"));
    }
    Ok((t1, t2, t3))
}

/// The start of the marker that ends the entropy-coded data beginning at `from`: in T.87 a 0xFF byte
/// inside coded data is followed by a byte below 0x80, so the first 0xFF that is not ends it.
fn marker_at(data: &[u8], from: usize) -> usize {
    (from..data.len().saturating_sub(1))
        .find(|&i| data[i] == 0xFF && data[i + 1] >= 0x80)
        .unwrap_or(data.len())
}

/// Decodes one scan, which begins at `start`, into `out`; returns where the marker after it begins.
fn decode_scan(
    data: &[u8],
    start: usize,
    frame: &Frame,
    scan: &Scan,
    restart_interval: usize,
    out: &mut [u16],
) -> Result<usize, Fail> {
    let (width, height) = (frame.width, frame.height);
    let stride = width + 2;
    let n = scan.components.len();
    let interval = if restart_interval == 0 { height } else { restart_interval };
    // Per component: the line above and the current line, with one sample of margin at each end.
    let mut prev = vec![0i32; n * stride];
    let mut cur = vec![0i32; n * stride];
    let mut pos = start;
    let mut line = 0;
    let mut restarts = 0u8;
    loop {
        let end = marker_at(data, pos);
        let mut state = State::new(scan.params, Bits::new(&data[pos..end]));
        let mut run_index = vec![0usize; n];
        let lines = interval.min(height - line);
        for _ in 0..lines {
            std::mem::swap(&mut prev, &mut cur);
            for c in 0..n {
                let (p, q) =
                    (&mut prev[c * stride..(c + 1) * stride], &mut cur[c * stride..(c + 1) * stride]);
                q[0] = p[1];
                p[width + 1] = p[width];
            }
            if scan.sample_interleave {
                state.run_index = run_index[0];
                state.sample_line(&prev, &mut cur, width, n)?;
                run_index[0] = state.run_index;
            } else {
                // Contexts are shared by the components, run indices are not (T.87 A.7.1.2).
                for (c, index) in run_index.iter_mut().enumerate() {
                    state.run_index = *index;
                    let range = c * stride..(c + 1) * stride;
                    state.line(&prev[range.clone()], &mut cur[range], width)?;
                    *index = state.run_index;
                }
            }
            let components = frame.ids.len();
            for (c, &component) in scan.components.iter().enumerate() {
                let row = &cur[c * stride + 1..c * stride + 1 + width];
                let first = line * width * components + component;
                for (x, &v) in row.iter().enumerate() {
                    out[first + x * components] = v as u16;
                }
            }
            line += 1;
        }
        pos = end;
        if line == height {
            return Ok(pos);
        }
        // A restart marker RSTm, m counting 0 to 7, then everything starts afresh.
        if data.get(pos..pos + 2) != Some(&[0xFF, 0xD0 + restarts]) {
            return invalid(format!("expected restart marker {restarts} after line {line}"));
        }
        restarts = (restarts + 1) % 8;
        pos += 2;
        prev.fill(0);
        cur.fill(0);
    }
}

/// An entropy-coded segment's bits, most significant first, with the stuffed bit after each 0xFF
/// removed (T.87 A.1).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// The low `count` bits are the next ones.
    acc: u64,
    count: u32,
    after_ff: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0, acc: 0, count: 0, after_ff: false }
    }

    fn fill(&mut self) {
        while self.count <= 56 {
            let Some(&b) = self.data.get(self.pos) else { return };
            self.pos += 1;
            if self.after_ff {
                self.acc = self.acc << 7 | u64::from(b & 0x7F);
                self.count += 7;
            } else {
                self.acc = self.acc << 8 | u64::from(b);
                self.count += 8;
            }
            self.after_ff = b == 0xFF;
        }
    }

    fn truncated<T>() -> Result<T, Fail> {
        invalid("the coded data ends early (truncated or corrupt)")
    }

    /// The next `n` (≤ 32) bits as a number.
    fn read(&mut self, n: u32) -> Result<u32, Fail> {
        if n == 0 {
            return Ok(0);
        }
        if self.count < n {
            self.fill();
            if self.count < n {
                return Self::truncated();
            }
        }
        self.count -= n;
        let value = (self.acc >> self.count) as u32 & (u32::MAX >> (32 - n));
        self.acc &= (1u64 << self.count) - 1;
        Ok(value)
    }

    fn bit(&mut self) -> Result<bool, Fail> {
        Ok(self.read(1)? == 1)
    }

    /// Counts 0 bits up to and past the next 1 bit; more than `max` zeros is corrupt data.
    fn zeros(&mut self, max: u32) -> Result<u32, Fail> {
        let mut zeros = 0;
        loop {
            if self.count == 0 {
                self.fill();
                if self.count == 0 {
                    return Self::truncated();
                }
            }
            let leading = (self.acc << (64 - self.count)).leading_zeros();
            if leading < self.count {
                zeros += leading;
                self.count -= leading + 1;
                self.acc &= (1u64 << self.count) - 1;
                return if zeros > max { invalid("an overlong Golomb code") } else { Ok(zeros) };
            }
            zeros += self.count;
            self.count = 0;
            self.acc = 0;
            if zeros > max {
                return invalid("an overlong Golomb code");
            }
        }
    }
}

/// A regular-mode context (T.87 A.2.1); wide enough that corrupt data cannot overflow it.
#[derive(Clone, Copy)]
struct Context {
    a: i64,
    b: i64,
    c: i32,
    n: i64,
}

/// A run-interruption context: RItype 0 and 1.
#[derive(Clone, Copy)]
struct RunContext {
    a: i64,
    n: i64,
    nn: i64,
}

/// The decoding state of one restart interval: contexts (shared by the components of a scan), the
/// run index in use, and the bits.
struct State<'a> {
    p: Params,
    contexts: [Context; 365],
    run: [RunContext; 2],
    run_index: usize,
    bits: Bits<'a>,
}

fn golomb_k(n: i64, a: i64) -> Result<u32, Fail> {
    let mut k = 0;
    while (n << k) < a {
        k += 1;
        if k > MAX_K {
            return invalid("a Golomb parameter out of range (corrupt data)");
        }
    }
    Ok(k)
}

impl<'a> State<'a> {
    fn new(p: Params, bits: Bits<'a>) -> Self {
        let a = i64::from(((p.range + 32) >> 6).max(2));
        State {
            p,
            contexts: [Context { a, b: 0, c: 0, n: 1 }; 365],
            run: [RunContext { a, n: 1, nn: 0 }; 2],
            run_index: 0,
            bits,
        }
    }

    fn quantize(&self, d: i32) -> i32 {
        let p = &self.p;
        match d {
            _ if d <= -p.t3 => -4,
            _ if d <= -p.t2 => -3,
            _ if d <= -p.t1 => -2,
            _ if d < -p.near => -1,
            _ if d <= p.near => 0,
            _ if d < p.t1 => 1,
            _ if d < p.t2 => 2,
            _ if d < p.t3 => 3,
            _ => 4,
        }
    }

    /// The signed context number of a sample from its neighbours; 0 means run mode.
    fn context(&self, ra: i32, rb: i32, rc: i32, rd: i32) -> i32 {
        (self.quantize(rd - rb) * 9 + self.quantize(rb - rc)) * 9 + self.quantize(rc - ra)
    }

    /// A mapped error value (T.87 A.5.3), `limit` being LIMIT or the run interruption's smaller one.
    fn mapped_error(&mut self, k: u32, limit: u32) -> Result<i32, Fail> {
        let escape = limit.saturating_sub(self.p.qbpp + 1);
        let high = self.bits.zeros(escape)?;
        let value = if high >= escape {
            i64::from(self.bits.read(self.p.qbpp)?) + 1
        } else {
            (i64::from(high) << k) + i64::from(self.bits.read(k)?)
        };
        if value > 2 * i64::from(MAX_ERROR) + 1 {
            return invalid("an error value out of range (corrupt data)");
        }
        Ok(value as i32)
    }

    /// Prediction plus quantised error, brought back into 0..=MAXVAL (T.87 A.4.4, A.5.4).
    fn reconstruct(&self, predicted: i32, error: i32) -> i32 {
        let p = &self.p;
        let step = 2 * p.near + 1;
        let mut value = predicted + error * step;
        if value < -p.near {
            value += p.range * step;
        } else if value > p.maxval + p.near {
            value -= p.range * step;
        }
        value.clamp(0, p.maxval)
    }

    /// One sample in regular mode (T.87 A.4–A.6).
    fn regular(&mut self, qs: i32, ra: i32, rb: i32, rc: i32) -> Result<i32, Fail> {
        let sign = if qs < 0 { -1 } else { 1 };
        let q = (qs * sign) as usize;
        let Context { a, b, c, n } = self.contexts[q];
        let predicted = if rc >= ra.max(rb) {
            ra.min(rb)
        } else if rc <= ra.min(rb) {
            ra.max(rb)
        } else {
            ra + rb - rc
        };
        let predicted = (predicted + sign * c).clamp(0, self.p.maxval);
        let k = golomb_k(n, a)?;
        let mapped = self.mapped_error(k, self.p.limit)?;
        let mut error = if mapped & 1 == 0 { mapped >> 1 } else { -((mapped + 1) >> 1) };
        if k == 0 && self.p.near == 0 && 2 * b <= -n {
            error = -error - 1;
        }
        self.update(q, error);
        Ok(self.reconstruct(predicted, sign * error))
    }

    /// T.87 A.6: context statistics and bias correction after a regular-mode sample.
    fn update(&mut self, q: usize, error: i32) {
        let reset = i64::from(self.p.reset);
        let step = i64::from(2 * self.p.near + 1);
        let ctx = &mut self.contexts[q];
        ctx.b += i64::from(error) * step;
        ctx.a += i64::from(error.abs());
        if ctx.n == reset {
            ctx.a >>= 1;
            ctx.b >>= 1;
            ctx.n >>= 1;
        }
        ctx.n += 1;
        if ctx.b <= -ctx.n {
            ctx.b += ctx.n;
            if ctx.c > -128 {
                ctx.c -= 1;
            }
            if ctx.b <= -ctx.n {
                ctx.b = -ctx.n + 1;
            }
        } else if ctx.b > 0 {
            ctx.b -= ctx.n;
            if ctx.c < 127 {
                ctx.c += 1;
            }
            if ctx.b > 0 {
                ctx.b = 0;
            }
        }
    }

    /// T.87 A.7.1.2: the length of a run starting with `left` samples left in the line.
    fn run_length(&mut self, left: usize) -> Result<usize, Fail> {
        let mut length = 0;
        while self.bits.bit()? {
            let full = 1usize << J[self.run_index];
            let count = full.min(left - length);
            length += count;
            if count == full {
                self.run_index = (self.run_index + 1).min(31);
            }
            if length == left {
                return Ok(length);
            }
        }
        length += self.bits.read(J[self.run_index])? as usize;
        if length >= left {
            return invalid("a run longer than its line (corrupt data)");
        }
        Ok(length)
    }

    /// T.87 A.7.2: the error of a run-interruption sample, with context `ri` (its RItype).
    fn interruption_error(&mut self, ri: usize) -> Result<i32, Fail> {
        let RunContext { a, n, nn } = self.run[ri];
        let temp = if ri == 0 { a } else { a + (n >> 1) };
        let k = golomb_k(n, temp)?;
        let limit = self.p.limit.saturating_sub(J[self.run_index] + 1);
        let mapped = self.mapped_error(k, limit)?;
        let t = mapped + ri as i32;
        let map = t & 1;
        let magnitude = (t + map) / 2;
        let error = if (k != 0 || 2 * nn >= n) == (map == 1) { -magnitude } else { magnitude };
        let ctx = &mut self.run[ri];
        if error < 0 {
            ctx.nn += 1;
        }
        ctx.a += i64::from((mapped + 1 - ri as i32) >> 1);
        if ctx.n == i64::from(self.p.reset) {
            ctx.a >>= 1;
            ctx.n >>= 1;
            ctx.nn >>= 1;
        }
        ctx.n += 1;
        Ok(error)
    }

    /// The sample that ends a run of `ra` before the end of a line, above it `rb`; `component_wise`
    /// for sample interleave, where each component is coded as RItype 0 (as CharLS does).
    fn interruption(&mut self, ra: i32, rb: i32, component_wise: bool) -> Result<i32, Fail> {
        if !component_wise && (ra - rb).abs() <= self.p.near {
            let error = self.interruption_error(1)?;
            Ok(self.reconstruct(ra, error))
        } else {
            let error = self.interruption_error(0)?;
            Ok(self.reconstruct(rb, if rb < ra { -error } else { error }))
        }
    }

    /// One line of one component; `prev` and `cur` hold the line with a sample of margin each side.
    fn line(&mut self, prev: &[i32], cur: &mut [i32], width: usize) -> Result<(), Fail> {
        let mut x = 1;
        while x <= width {
            let (ra, rb, rc, rd) = (cur[x - 1], prev[x], prev[x - 1], prev[x + 1]);
            let qs = self.context(ra, rb, rc, rd);
            if qs != 0 {
                cur[x] = self.regular(qs, ra, rb, rc)?;
                x += 1;
                continue;
            }
            let length = self.run_length(width + 1 - x)?;
            cur[x..x + length].fill(ra);
            x += length;
            if x <= width {
                cur[x] = self.interruption(ra, prev[x], false)?;
                self.run_index = self.run_index.saturating_sub(1);
                x += 1;
            }
        }
        Ok(())
    }

    /// One line of `n` sample-interleaved components, laid out as in [`Self::line`], one after another.
    fn sample_line(&mut self, prev: &[i32], cur: &mut [i32], width: usize, n: usize) -> Result<(), Fail> {
        let stride = width + 2;
        let mut qs = [0i32; 4];
        let mut x = 1;
        while x <= width {
            for (c, q) in qs.iter_mut().enumerate().take(n) {
                let o = c * stride + x;
                *q = self.context(cur[o - 1], prev[o], prev[o - 1], prev[o + 1]);
            }
            if qs[..n].iter().any(|&q| q != 0) {
                for (c, &q) in qs.iter().enumerate().take(n) {
                    let o = c * stride + x;
                    cur[o] = self.regular(q, cur[o - 1], prev[o], prev[o - 1])?;
                }
                x += 1;
                continue;
            }
            let length = self.run_length(width + 1 - x)?;
            for c in 0..n {
                let o = c * stride + x;
                let ra = cur[o - 1];
                cur[o..o + length].fill(ra);
            }
            x += length;
            if x <= width {
                for c in 0..n {
                    let o = c * stride + x;
                    cur[o] = self.interruption(cur[o - 1], prev[o], true)?;
                }
                self.run_index = self.run_index.saturating_sub(1);
                x += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    fn rgb(stream: &[u8]) -> Result<Vec<u16>, Fail> {
        decode(stream, 6, 8, 3)
    }

    fn wide(samples: &[u8]) -> Vec<u16> {
        samples.iter().map(|&s| u16::from(s)).collect()
    }

    /// The image below encoded by CharLS (pyjpegls 1.5.1), NEAR 0, ILV 1.
    const NEAR0_ILV1: &str = concat!(
        "ffd8fff70011080006000803011100021100031100ffda000c030100020003000001000795e00074af3bff17dc000004",
        "7b21cca000002efa77b60001ba6dd6fbbe800003817400efa440001a301010000003dc00000388003012000000ae05cb",
        "800992280f6f1b00f0b80640059fc3d2480013000001710000018d000072e9580000064800000780000005d8000006f4",
        "5e09800000603926969a300e831512c800000ec000000e0800000c58ffd9"
    );

    /// The image below encoded by CharLS (pyjpegls 1.5.1), NEAR 0, ILV 2.
    const NEAR0_ILV2: &str = concat!(
        "ffd8fff70011080006000803011100021100031100ffda000c03010002000300000200020003de4956ff7f257e3a79ff",
        "0000008f000000bb8000dd04106c1041d000902d22a0001a312f03d1078342800000d00e8001928000002b8000003885",
        "03f800c3c1e8126f24800b1900026000002e20000037a000003360000031a000002e03b12826190c2000003014c50000",
        "8ae554f000001d80002656000001c100000176680000062cffd9"
    );

    /// The image below encoded by CharLS (pyjpegls 1.5.1), NEAR 2, ILV 1.
    const NEAR2_ILV1: &str = concat!(
        "ffd8fff70011080006000803011100021100031100ffda000c030100020003000201003bf000afcbbfaee03a13900000",
        "058d2f8007adf77ddf40000066f402fae01450840000030000182000008000047700e4704c9c06381c000012a3db0014",
        "0040004063c00040006000003000001000011a0000800305f2040001000000389ec00c0000180000400040ffd9"
    );

    /// What CharLS decodes [`NEAR2_ILV1`] to.
    const NEAR2_ILV1_DECODED: [u8; 144] = [
        10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200,
        30, 10, 200, 30, 10, 200, 30, 250, 5, 60, 250, 4, 60, 250, 3, 60, 250, 7, 60, 10, 201, 30, 10, 201,
        30, 10, 200, 30, 10, 200, 30, 250, 5, 60, 250, 5, 60, 250, 5, 60, 250, 5, 60, 10, 201, 30, 10, 201,
        30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 90, 90, 95, 10, 201, 30, 10,
        201, 30, 240, 160, 175, 227, 148, 200, 214, 55, 16, 75, 71, 221, 235, 2, 126, 210, 33, 204, 30, 120,
        209, 79, 86, 71, 185, 65, 255, 115, 121, 130, 150, 140, 131, 255, 205, 200, 180, 161, 86, 255, 120,
        54, 215, 39, 219, 155, 29, 11,
    ];

    /// The image below encoded by CharLS (pyjpegls 1.5.1), NEAR 2, ILV 2.
    const NEAR2_ILV2: &str = concat!(
        "ffd8fff70011080006000803011100021100031100ffda000c030100020003000202001000d957ff7faaf14cff404000",
        "00160003d111b113a0040976028b78344c620000602800a40000100001b85c1083c00002cb6000025001400400002000",
        "08000800c000001c5a000081cf80078000104030003e80000300000190000008000004800080ffd9"
    );

    /// What CharLS decodes [`NEAR2_ILV2`] to.
    const NEAR2_ILV2_DECODED: [u8; 144] = [
        10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200,
        30, 10, 200, 30, 10, 200, 30, 250, 5, 60, 250, 5, 60, 250, 5, 60, 250, 5, 60, 10, 199, 30, 10, 199,
        30, 10, 200, 30, 10, 200, 30, 250, 5, 60, 250, 5, 60, 250, 5, 60, 250, 5, 60, 10, 199, 30, 10, 199,
        30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 90, 90, 95, 10, 199, 30, 10,
        199, 30, 240, 160, 175, 227, 148, 197, 215, 56, 15, 74, 71, 225, 234, 2, 125, 209, 33, 203, 29, 118,
        208, 78, 88, 69, 185, 65, 255, 115, 120, 130, 151, 141, 131, 255, 206, 204, 180, 157, 85, 255, 121,
        53, 215, 40, 218, 155, 30, 9,
    ];

    /// The image below encoded by CharLS (pyjpegls 1.5.1), lossless, one scan per component (ILV 0).
    const NEAR0_ILV0: &str = concat!(
        "ffd8fff70011080006000803011100021100031100ffda00080101000000000795f21d280000047ba6dd000007064100",
        "304000000f7000000e2000c0000038a000002b8000002e20000031a0000e00e9580000064800000780000005d8ffda00",
        "080102000000000000016d95f21cf00000178e9b7400001aca271a000004940000018d000080071b000001bd00000170",
        "000001a7000001800008000038740010ffda00080103000000000001e57c9df0000013be9b7400001410000d00f00070",
        "0007800000ae000000df000000cc052000640000066c7a745469800000ec000000e0800000c580ffd9"
    );

    /// A 8×6 RGB image: flat areas (runs), an edge, a lone pixel and two rows of noise.
    const IMAGE: [u8; 144] = [
        10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200,
        30, 10, 200, 30, 10, 200, 30, 250, 5, 60, 250, 5, 60, 250, 5, 60, 250, 5, 60, 10, 200, 30, 10, 200,
        30, 10, 200, 30, 10, 200, 30, 250, 5, 60, 250, 5, 60, 250, 5, 60, 250, 5, 60, 10, 200, 30, 10, 200,
        30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 10, 200, 30, 91, 92, 93, 10, 200, 30, 10,
        200, 30, 241, 160, 175, 229, 148, 198, 213, 57, 14, 76, 72, 223, 233, 1, 127, 210, 33, 204, 30, 119,
        209, 77, 87, 71, 184, 65, 253, 113, 122, 129, 149, 141, 130, 254, 206, 202, 179, 159, 87, 253, 119,
        55, 216, 41, 219, 156, 29, 11,
    ];

    #[test]
    fn lossless_colour_in_every_interleave_is_the_image() {
        for stream in [NEAR0_ILV0, NEAR0_ILV1, NEAR0_ILV2] {
            assert_eq!(rgb(&bytes(stream)).unwrap(), wide(&IMAGE));
        }
    }

    #[test]
    fn near_lossless_colour_is_what_charls_decodes() {
        for (stream, decoded) in [(NEAR2_ILV1, NEAR2_ILV1_DECODED), (NEAR2_ILV2, NEAR2_ILV2_DECODED)] {
            let samples = rgb(&bytes(stream)).unwrap();
            assert_eq!(samples, wide(&decoded));
            assert!(samples.iter().zip(IMAGE).all(|(&a, b)| a.abs_diff(u16::from(b)) <= 2));
        }
    }

    #[test]
    fn grey_matches_pure_jpegls_lossless_and_near_lossless() {
        let (width, height) = (37u32, 29u32);
        let mut seed = 12345u32;
        let pixels: Vec<u16> = (0..width * height)
            .map(|i| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                // Smooth with noise, and a flat band for run mode.
                if (i / width) % 7 == 3 { 900 } else { ((i % width) * 50 + (seed >> 20) % 64) as u16 }
            })
            .collect();
        for near in [0, 3] {
            let mut options = jpegls::EncodeOptions::default();
            options.near = near;
            let mut stream = Vec::new();
            jpegls::encode_with_options(&pixels, width, height, &options, &mut stream).unwrap();
            let expected = jpegls::decode(&stream, width, height).unwrap().0;
            assert_eq!(decode(&stream, height, width, 1).unwrap(), expected, "NEAR {near}");
        }
    }

    /// An all-zero 2×2 image of three components, line interleaved, with a restart marker after
    /// each line. Each component line is a run of two: bits 1, 1.
    fn restarted_zeros() -> Vec<u8> {
        let mut s = vec![0xFF, 0xD8, 0xFF, 0xF7, 0, 17, 8, 0, 2, 0, 2, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0];
        s.extend([0xFF, 0xDD, 0, 4, 0, 1]); // DRI: one line
        s.extend([0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0, 3, 0, 0, 1, 0]);
        s.extend([0xFC, 0xFF, 0xD0, 0xFC, 0xFF, 0xD9]);
        s
    }

    #[test]
    fn restart_markers_reset_the_state() {
        assert_eq!(decode(&restarted_zeros(), 2, 2, 3).unwrap(), [0; 12]);
        let mut wrong = restarted_zeros();
        let rst = wrong.iter().position(|&b| b == 0xD0).unwrap();
        wrong[rst] = 0xD1;
        assert!(decode(&wrong, 2, 2, 3).unwrap_err().to_string().contains("restart marker 0"));
    }

    #[test]
    fn lse_presets_are_read_and_checked() {
        let stream = bytes(NEAR0_ILV2);
        let sos = stream.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let with_lse = |fields: [u16; 5]| {
            let mut s = stream[..sos].to_vec();
            s.extend([0xFF, 0xF8, 0, 13, 1]);
            fields.iter().for_each(|f| s.extend(f.to_be_bytes()));
            s.extend(&stream[sos..]);
            s
        };
        // The defaults for 8 bits, spelled out: the same image.
        assert_eq!(rgb(&with_lse([255, 3, 7, 21, 64])).unwrap(), wide(&IMAGE));
        // Other thresholds: a different decoding, not an error or a panic.
        assert_ne!(rgb(&with_lse([0, 2, 3, 4, 0])).ok(), Some(wide(&IMAGE)));
        for bad in [[0, 9, 8, 21, 0], [256, 0, 0, 0, 0], [0, 0, 0, 0, 2], [200, 3, 7, 210, 0]] {
            assert!(matches!(rgb(&with_lse(bad)), Err(Fail::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn unsupported_features_say_so() {
        let stream = bytes(NEAR0_ILV1);
        let sos = stream.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut transform = stream[..sos].to_vec();
        transform.extend([0xFF, 0xE8, 0, 7, b'm', b'r', b'f', b'x', 1]);
        transform.extend(&stream[sos..]);
        assert!(matches!(rgb(&transform), Err(Fail::Unsupported(_))));
        let mut subsampled = stream.clone();
        subsampled[13] = 0x21; // first component 2×1
        assert!(matches!(rgb(&subsampled), Err(Fail::Unsupported(_))));
    }

    #[test]
    fn truncated_or_corrupt_streams_are_errors_not_panics() {
        for stream in [NEAR0_ILV0, NEAR0_ILV1, NEAR2_ILV2] {
            let stream = bytes(stream);
            for cut in 0..stream.len() {
                assert!(rgb(&stream[..cut]).is_err(), "cut at {cut}");
            }
            for at in 0..stream.len() {
                for flip in [0x01, 0x80, 0xFF] {
                    let mut corrupt = stream.clone();
                    corrupt[at] ^= flip;
                    let _ = rgb(&corrupt); // may decode to other pixels; must not panic
                }
            }
        }
        assert!(decode(&bytes(NEAR0_ILV1), 6, 9, 3).unwrap_err().to_string().contains("8×6"));
    }
}
