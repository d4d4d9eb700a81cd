//! One decoded frame of stored sample values, and drawing it through a window.

use crate::Rescale;
use serde::Serialize;
use std::sync::Arc;

/// A VOI window in modality units (after rescale), as DICOM's linear VOI LUT function defines it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

impl Window {
    /// The window that draws `bits`-bit values as they are stored (0 → 0, the largest → 255): a
    /// photo's, since a photo has no window of its own and is shown, and seen by the models, as saved.
    pub fn identity(bits: u16) -> Window {
        let full = 2f64.powi(i32::from(bits.clamp(1, 31)));
        Window { center: full / 2.0, width: full }
    }

    /// Maps a modality value to a display level in 0..=255 (PS3.3 C.11.2.1.2.1, linear).
    pub fn level(&self, x: f64) -> u8 {
        let width = self.width.max(1.0);
        let t = (x - (self.center - 0.5)) / (width - 1.0).max(f64::MIN_POSITIVE) + 0.5;
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Stored values of one frame, interleaved by sample (RGBRGB… for colour), before any LUT — except
/// that a PALETTE COLOR frame comes looked up, as RGB at its tables' depth (8 or 16 bits), since the
/// colours are what it shows; its indices are [`crate::Study::raw_frame`].
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub columns: u32,
    pub rows: u32,
    /// 1 for grey, 3 for RGB.
    pub samples: u8,
    pub bits_stored: u16,
    /// MONOCHROME1: the lowest value is drawn white.
    pub invert: bool,
    pub rescale: Rescale,
    pub stored: Samples,
}

/// A frame's stored values in the width the data has — a byte per sample for 8-bit data, two for
/// 16-bit — rather than four for every file: on a tablet the decoded frame is most of the memory a
/// file takes. Shared, not copied, when a frame is cloned (a photo's one frame is handed out on
/// every [`crate::Study::frame`] call).
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    U8(Arc<Vec<u8>>),
    /// Signed 8- and 16-bit data.
    I16(Arc<Vec<i16>>),
    U16(Arc<Vec<u16>>),
    /// 32-bit data (unsigned values above `i32::MAX` as the decoder chose, see `Unsigned32`).
    I32(Arc<Vec<i32>>),
}

/// Runs `$body` with `$v` bound to the samples' slice, whatever their width.
macro_rules! each {
    ($samples:expr, $v:ident => $body:expr) => {
        match $samples {
            Samples::U8($v) => $body,
            Samples::I16($v) => $body,
            Samples::U16($v) => $body,
            Samples::I32($v) => $body,
        }
    };
}

impl Samples {
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the values take in memory.
    pub fn bytes(&self) -> usize {
        each!(self, v => std::mem::size_of_val(v.as_slice()))
    }

    /// Value `i`, widened.
    pub fn get(&self, i: usize) -> i32 {
        each!(self, v => i32::from(v[i]))
    }

    /// `f` of every value in order, widened, collected: one loop per width, no per-value dispatch.
    pub fn map<T>(&self, mut f: impl FnMut(i32) -> T) -> Vec<T> {
        each!(self, v => v.iter().map(|&x| f(i32::from(x))).collect())
    }

    /// `f` of every value in order, widened.
    pub fn for_each(&self, mut f: impl FnMut(i32)) {
        each!(self, v => v.iter().for_each(|&x| f(i32::from(x))))
    }

    /// Planes (RRR…GGG…BBB, `pixels` each) → interleaved samples (RGBRGB…), in the same width.
    pub(crate) fn interleaved(&self, pixels: usize) -> Samples {
        fn interleave<T: Copy>(planes: &[T], pixels: usize) -> Vec<T> {
            (0..pixels).flat_map(|i| [planes[i], planes[pixels + i], planes[2 * pixels + i]]).collect()
        }
        each!(self, v => interleave(v, pixels).into())
    }

    /// Every value widened to `i32` (a copy four bytes a value: for tests and small frames).
    pub fn to_i32(&self) -> Vec<i32> {
        self.map(|v| v)
    }

    /// Smallest and largest value; `None` when empty.
    pub fn min_max(&self) -> Option<(i32, i32)> {
        each!(self, v => {
            let mut it = v.iter().copied();
            let first = it.next()?;
            let (lo, hi) = it.fold((first, first), |(lo, hi), x| (lo.min(x), hi.max(x)));
            Some((i32::from(lo), i32::from(hi)))
        })
    }
}

impl From<Vec<u8>> for Samples {
    fn from(v: Vec<u8>) -> Samples {
        Samples::U8(Arc::new(v))
    }
}

impl From<Vec<i16>> for Samples {
    fn from(v: Vec<i16>) -> Samples {
        Samples::I16(Arc::new(v))
    }
}

impl From<Vec<u16>> for Samples {
    fn from(v: Vec<u16>) -> Samples {
        Samples::U16(Arc::new(v))
    }
}

impl From<Vec<i32>> for Samples {
    fn from(v: Vec<i32>) -> Samples {
        Samples::I32(Arc::new(v))
    }
}

// Above this many distinct stored values a lookup table costs more than it saves.
const MAX_LUT: i64 = 1 << 17;

impl Frame {
    pub fn is_grey(&self) -> bool {
        self.samples == 1
    }

    /// Smallest and largest stored value (over all samples); `(0, 0)` for an empty frame.
    pub fn min_max(&self) -> (i32, i32) {
        self.stored.min_max().unwrap_or((0, 0))
    }

    /// Lowest and highest modality value (the rescale may have a negative slope).
    pub fn modality_range(&self) -> (f64, f64) {
        let (lo, hi) = self.min_max();
        let (a, b) = (self.rescale.apply(lo as f64), self.rescale.apply(hi as f64));
        (a.min(b), a.max(b))
    }

    /// A window spanning every modality value of the frame.
    pub fn full_window(&self) -> Window {
        let (lo, hi) = self.modality_range();
        Window { center: (lo + hi) / 2.0 + 0.5, width: (hi - lo + 1.0).max(1.0) }
    }

    /// Draws the frame as 8-bit display values: one byte per pixel for grey frames (through the
    /// rescale, `window` — the full range if `None` — and MONOCHROME1 inversion), three for colour
    /// frames (as stored, scaled to 8 bits). What a model sees and what the screen shows are the same.
    pub fn render_display(&self, window: Option<Window>) -> Vec<u8> {
        if self.is_grey() {
            self.stored.map(self.grey_level(window))
        } else {
            self.stored.map(self.colour_level())
        }
    }

    /// Draws the frame as RGBA8 (row-major, `4 × columns × rows` bytes), as [`Frame::render_display`]
    /// does, straight from the stored values (no display copy in between: on a large photo that
    /// copy alone is as large as the decoded frame).
    pub fn render_rgba(&self, window: Option<Window>) -> Vec<u8> {
        let pixels = self.columns as usize * self.rows as usize;
        let mut out = Vec::with_capacity(pixels * 4);
        if self.is_grey() {
            let level = self.grey_level(window);
            self.stored.for_each(|v| {
                let l = level(v);
                out.extend_from_slice(&[l, l, l, 255]);
            });
        } else {
            let level = self.colour_level();
            let mut k = 0;
            self.stored.for_each(|v| {
                out.push(level(v));
                k += 1;
                if k == 3 {
                    out.push(255);
                    k = 0;
                }
            });
        }
        out
    }

    /// A colour sample as an 8-bit level (its top 8 stored bits).
    fn colour_level(&self) -> impl Fn(i32) -> u8 + use<> {
        let shift = self.bits_stored.saturating_sub(8).min(24);
        move |v| (v >> shift).clamp(0, 255) as u8
    }

    /// A grey stored value's display level: through the rescale, `window` (the full range if
    /// `None`) and MONOCHROME1 inversion; by lookup table where the frame's range is small enough.
    fn grey_level(&self, window: Option<Window>) -> impl Fn(i32) -> u8 + use<> {
        let window = window.unwrap_or_else(|| self.full_window());
        let (rescale, invert) = (self.rescale, self.invert);
        let level = move |v: i32| {
            let l = window.level(rescale.apply(v as f64));
            if invert { 255 - l } else { l }
        };
        let (lo, hi) = self.min_max();
        let lut: Option<Vec<u8>> =
            ((hi as i64 - lo as i64) < MAX_LUT).then(|| (lo..=hi).map(level).collect());
        move |v| match &lut {
            Some(lut) => lut[(v - lo) as usize],
            None => level(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(stored: Vec<i32>, invert: bool) -> Frame {
        Frame {
            columns: stored.len() as u32,
            rows: 1,
            samples: 1,
            bits_stored: 16,
            invert,
            rescale: Rescale::IDENTITY,
            stored: stored.into(),
        }
    }

    #[test]
    fn linear_window_follows_the_dicom_formula() {
        let w = Window { center: 40.0, width: 400.0 };
        assert_eq!(w.level(-160.0), 0); // at and below the bottom edge
        assert_eq!(w.level(240.0), 255); // at and above the top edge
        assert_eq!(w.level(39.5), 128); // the centre maps to the middle
        assert!(w.level(100.0) > w.level(0.0));
    }

    #[test]
    fn identity_window_draws_values_as_stored() {
        let eight = Window::identity(8);
        assert!((0..=255).all(|v| eight.level(f64::from(v)) == v as u8));
        let sixteen = Window::identity(16);
        assert_eq!((sixteen.level(0.0), sixteen.level(65535.0)), (0, 255));
        assert_eq!(sixteen.level(257.0 * 100.0), 100);
    }

    #[test]
    fn full_window_spans_min_to_max() {
        let rgba = grey(vec![100, 150, 200], false).render_rgba(None);
        assert_eq!(rgba[0], 0);
        assert_eq!(rgba[8], 255);
        assert!((120..136).contains(&rgba[4]), "middle value drawn as {}", rgba[4]);
        assert_eq!(rgba[3], 255, "opaque");
    }

    #[test]
    fn monochrome1_is_inverted() {
        let normal = grey(vec![0, 1000], false).render_rgba(None);
        let inverted = grey(vec![0, 1000], true).render_rgba(None);
        assert_eq!((normal[0], normal[4]), (0, 255));
        assert_eq!((inverted[0], inverted[4]), (255, 0));
    }

    #[test]
    fn rescale_moves_the_window_into_modality_units() {
        let mut f = grey(vec![0, 1024, 2048], false);
        f.rescale = Rescale { slope: 1.0, intercept: -1024.0 };
        assert_eq!(f.modality_range(), (-1024.0, 1024.0));
        // A narrow window around 0 HU: stored 1024 is the middle, the others clip.
        let rgba = f.render_rgba(Some(Window { center: 0.5, width: 10.0 }));
        assert_eq!((rgba[0], rgba[8]), (0, 255));
        assert!((120..136).contains(&rgba[4]));
    }

    #[test]
    fn wide_ranges_skip_the_lookup_table_and_agree() {
        let stored = vec![-2_000_000, 0, 2_000_000];
        let rgba = grey(stored, false).render_rgba(None);
        assert_eq!((rgba[0], rgba[8]), (0, 255));
        assert!((120..136).contains(&rgba[4]));
    }

    #[test]
    fn colour_of_more_than_8_bits_is_scaled() {
        let f = Frame {
            columns: 1,
            rows: 1,
            samples: 3,
            bits_stored: 16,
            invert: false,
            rescale: Rescale::IDENTITY,
            stored: vec![65535u16, 32768, 0].into(),
        };
        assert_eq!(f.render_rgba(None), vec![255, 128, 0, 255]);
    }

    #[test]
    fn every_width_draws_the_same() {
        let values = [0i32, 7, 200, 255];
        let wide = grey(values.to_vec(), false);
        let mut narrow = wide.clone();
        narrow.stored = values.map(|v| v as u8).to_vec().into();
        assert_eq!(narrow.stored.bytes(), 4, "a byte a sample");
        assert_eq!(wide.stored.bytes(), 16);
        assert_eq!(narrow.render_rgba(None), wide.render_rgba(None));
        assert_eq!(narrow.min_max(), (0, 255));
        let signed: Samples = vec![-5i16, 3].into();
        assert_eq!((signed.min_max(), signed.get(0), signed.to_i32()), (Some((-5, 3)), -5, vec![-5, 3]));
    }

    #[test]
    fn a_cloned_frame_shares_its_samples() {
        let a = grey(vec![1, 2, 3], false);
        let b = a.clone();
        let (Samples::I32(x), Samples::I32(y)) = (&a.stored, &b.stored) else { unreachable!() };
        assert!(Arc::ptr_eq(x, y));
    }
}
