//! The engine's int8 arithmetic for pointwise and dense convolutions: weights quantised per output
//! channel (symmetric, 127 steps a side, as `bedside quantize` stores them), activations per pixel —
//! each pixel's channels (or each patch, for a dense convolution) in steps of its own range, measured
//! on the image: with 8 bits, 255 steps where the row is non-negative, as after ReLU6, 127 a side
//! otherwise (with 12 bits, 4095 and 2047: as fast, since values are held as i16 either way). A
//! pixel's step and a channel's step both factor out of its sum, so the products are summed exactly
//! in i32 and turned back into f32 with the bias and the two steps in one pass.
//!
//! Values are held as i16 so that one instruction multiplies pairs of input channels and adds the
//! pair: `_mm_madd_epi16` (SSE2, the x86-64 baseline), `_mm256_madd_epi16` (AVX2) and
//! `i32x4.dot_i16x8_s` (wasm simd128) — eight or sixteen multiply–adds where f32 does four or eight.
//! Integer sums are exact, so every target gives the same output bit for bit.

use crate::kernels::{ROWS, blocks};

/// A weight `[inputs][c_out]` quantised per output channel and packed for [`Lanes`]: for each block
/// of output channels ([`blocks`], `wide` channels then `wide / 2`), its `[inputs / 2][width][2]`
/// panel — each output channel's two consecutive inputs side by side, as a pair instruction reads
/// them. An odd input count is padded with a zero weight.
#[derive(Debug, Clone)]
pub(crate) struct QuantWeight {
    pub packed: Vec<i16>,
    /// Per output channel: the value of one weight step.
    pub step: Vec<f32>,
    pub inputs: usize,
    /// Bits each activation is quantised to (8 or 12).
    pub activation_bits: u32,
}

/// Adding 1.5 · 2²³ to an f32 below 2²² in magnitude rounds it to the nearest integer (ties to even)
/// and leaves that integer in the low bits of the sum: the same result on every target, in integer
/// operations that vectorise everywhere (`round` is a libm call on some targets, and a saturating
/// float-to-integer cast is slow in vectors).
const ROUND: f32 = 12_582_912.0;

#[inline(always)]
fn round_to_int(v: f32) -> i32 {
    (v + ROUND).to_bits() as i32 - ROUND.to_bits() as i32
}

/// Whether a sum over `inputs` products of a weight (±127) and an activation of `bits` bits fits i32
/// in every case.
pub(crate) fn sums_fit(inputs: usize, bits: u32) -> bool {
    (inputs.div_ceil(2) * 2) as u64 * 127 * ((1u64 << bits) - 1) <= i32::MAX as u64
}

pub(crate) fn quantise_weight(
    w: &[f32],
    inputs: usize,
    c_out: usize,
    wide: usize,
    activation_bits: u32,
) -> QuantWeight {
    let step: Vec<f32> = (0..c_out)
        .map(|o| {
            let max = (0..inputs).map(|i| w[i * c_out + o].abs()).fold(0.0f32, f32::max);
            if max > 0.0 { max / 127.0 } else { 1.0 }
        })
        .collect();
    let q = |i: usize, o: usize| -> i16 {
        if i >= inputs { 0 } else { round_to_int(w[i * c_out + o] / step[o]) as i16 }
    };
    let pairs = inputs.div_ceil(2);
    let mut packed = Vec::with_capacity(pairs * 2 * c_out);
    for (j, width) in blocks(c_out, wide) {
        for k in 0..pairs {
            for o in j..j + width {
                packed.push(q(2 * k, o));
                packed.push(q(2 * k + 1, o));
            }
        }
    }
    QuantWeight { packed, step, inputs, activation_bits }
}

/// One row of a map (a pixel's channels, or a patch) in steps of its own range, `bits` bits, into
/// `out` (as long as `x` or longer, the rest zeros); returns the value of one step. Inlined, so that it
/// is vectorised for the kernels' target features.
#[inline(always)]
pub(crate) fn quantise_row(x: &[f32], out: &mut [i16], bits: u32) -> f32 {
    // Eight running minima and maxima (compared, not `f32::min`, which must handle NaN): a loop the
    // compiler vectorises.
    let (mut lo, mut hi) = ([0.0f32; 8], [0.0f32; 8]);
    let chunks = x.chunks_exact(8);
    for &v in chunks.remainder() {
        lo[0] = if v < lo[0] { v } else { lo[0] };
        hi[0] = if v > hi[0] { v } else { hi[0] };
    }
    for c in chunks {
        for l in 0..8 {
            lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
            hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
        }
    }
    // Folded by comparison too: in Wasm, `f32::min` and `f32::max` are calls into libm, which on a
    // small layer's short rows took a fifth of the whole pass.
    let min = lo.into_iter().fold(0.0, |a, b| if b < a { b } else { a });
    let max = hi.into_iter().fold(0.0, |a, b| if b > a { b } else { a });
    let levels = if min >= 0.0 { (1 << bits) - 1 } else { (1 << (bits - 1)) - 1 } as f32;
    let range = if -min > max { -min } else { max };
    let step = if range > 0.0 { range / levels } else { 1.0 };
    let inverse = 1.0 / step;
    let (head, tail) = out.split_at_mut(x.len());
    for (q, &v) in head.iter_mut().zip(x) {
        *q = round_to_int(v * inverse) as i16;
    }
    tail.fill(0);
    step
}

/// Every row of `len` values in `x`, quantised by [`quantise_row`] into rows of `padded` values, and
/// each row's step.
#[inline(always)]
pub(crate) fn quantise_rows(x: &[f32], len: usize, padded: usize, bits: u32) -> (Vec<i16>, Vec<f32>) {
    let rows = x.len() / len;
    let mut q = vec![0i16; rows * padded];
    let steps =
        x.chunks_exact(len).zip(q.chunks_exact_mut(padded)).map(|(x, q)| quantise_row(x, q, bits)).collect();
    (q, steps)
}

/// Two i16 values as the i32 a pair instruction broadcasts (the first in the low half).
#[allow(dead_code)] // by the plain lanes only, which x86-64 and wasm32 builds do not use
#[inline(always)]
fn pair(a: i16, b: i16) -> i32 {
    (a as u16 as i32) | ((b as i32) << 16)
}

/// One register of i32 accumulators, `N` output channels, and the pair multiply–add into it.
pub(crate) trait Lanes {
    type V: Copy;
    const N: usize;
    /// # Safety
    /// The target feature the implementation names must be present.
    unsafe fn zero() -> Self::V;
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn splat(pair: i32) -> Self::V;
    /// `2 · N` i16 values from `w`.
    /// # Safety
    /// As [`Lanes::zero`], and `w` holds `2 · N` values.
    unsafe fn load(w: *const i16) -> Self::V;
    /// `acc + (x₀·w₀ + x₁·w₁)` per lane.
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn dot_add(acc: Self::V, x: Self::V, w: Self::V) -> Self::V;
    /// `out = bias + (sum as f32) · scale · step` per lane, multiplied left to right then added (no
    /// FMA) so that every target rounds alike.
    /// # Safety
    /// As [`Lanes::zero`], and each pointer holds `N` values.
    unsafe fn finish(sum: Self::V, bias: *const f32, scale: *const f32, step: f32, out: *mut f32);
}

/// Four lanes in plain Rust, for targets without a pair instruction.
#[allow(dead_code)]
pub(crate) struct Scalar;
impl Lanes for Scalar {
    type V = [i32; 4];
    const N: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> [i32; 4] {
        [0; 4]
    }
    #[inline(always)]
    unsafe fn splat(pair: i32) -> [i32; 4] {
        [pair; 4]
    }
    #[inline(always)]
    unsafe fn load(w: *const i16) -> [i32; 4] {
        // SAFETY: the caller gives 8 values; each lane holds its pair as `splat` does.
        std::array::from_fn(|l| unsafe { pair(*w.add(2 * l), *w.add(2 * l + 1)) })
    }
    #[inline(always)]
    unsafe fn dot_add(acc: [i32; 4], x: [i32; 4], w: [i32; 4]) -> [i32; 4] {
        let lo = |v: i32| v as i16 as i32;
        let hi = |v: i32| v >> 16;
        std::array::from_fn(|l| acc[l] + lo(x[l]) * lo(w[l]) + hi(x[l]) * hi(w[l]))
    }
    #[inline(always)]
    unsafe fn finish(sum: [i32; 4], bias: *const f32, scale: *const f32, step: f32, out: *mut f32) {
        for (l, s) in sum.into_iter().enumerate() {
            // SAFETY: the caller gives 4 values at each pointer.
            unsafe { *out.add(l) = *bias.add(l) + s as f32 * *scale.add(l) * step }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) struct Sse2;
#[cfg(target_arch = "x86_64")]
impl Lanes for Sse2 {
    type V = std::arch::x86_64::__m128i;
    const N: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        unsafe { std::arch::x86_64::_mm_setzero_si128() }
    }
    #[inline(always)]
    unsafe fn splat(pair: i32) -> Self::V {
        unsafe { std::arch::x86_64::_mm_set1_epi32(pair) }
    }
    #[inline(always)]
    unsafe fn load(w: *const i16) -> Self::V {
        unsafe { std::arch::x86_64::_mm_loadu_si128(w.cast()) }
    }
    #[inline(always)]
    unsafe fn dot_add(acc: Self::V, x: Self::V, w: Self::V) -> Self::V {
        use std::arch::x86_64::{_mm_add_epi32, _mm_madd_epi16};
        unsafe { _mm_add_epi32(acc, _mm_madd_epi16(x, w)) }
    }
    #[inline(always)]
    unsafe fn finish(sum: Self::V, bias: *const f32, scale: *const f32, step: f32, out: *mut f32) {
        use std::arch::x86_64::*;
        unsafe {
            let y = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(sum), _mm_loadu_ps(scale)), _mm_set1_ps(step));
            _mm_storeu_ps(out, _mm_add_ps(_mm_loadu_ps(bias), y))
        }
    }
}

/// Inlined only into functions compiled with the `avx2` feature.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;
#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    type V = std::arch::x86_64::__m256i;
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        unsafe { std::arch::x86_64::_mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn splat(pair: i32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_set1_epi32(pair) }
    }
    #[inline(always)]
    unsafe fn load(w: *const i16) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_loadu_si256(w.cast()) }
    }
    #[inline(always)]
    unsafe fn dot_add(acc: Self::V, x: Self::V, w: Self::V) -> Self::V {
        use std::arch::x86_64::{_mm256_add_epi32, _mm256_madd_epi16};
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)) }
    }
    #[inline(always)]
    unsafe fn finish(sum: Self::V, bias: *const f32, scale: *const f32, step: f32, out: *mut f32) {
        use std::arch::x86_64::*;
        unsafe {
            let y = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_loadu_ps(scale));
            let y = _mm256_mul_ps(y, _mm256_set1_ps(step));
            _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(bias), y))
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) struct Simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl Lanes for Simd128 {
    type V = std::arch::wasm32::v128;
    const N: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        std::arch::wasm32::i32x4_splat(0)
    }
    #[inline(always)]
    unsafe fn splat(pair: i32) -> Self::V {
        std::arch::wasm32::i32x4_splat(pair)
    }
    #[inline(always)]
    unsafe fn load(w: *const i16) -> Self::V {
        unsafe { std::arch::wasm32::v128_load(w.cast()) }
    }
    #[inline(always)]
    unsafe fn dot_add(acc: Self::V, x: Self::V, w: Self::V) -> Self::V {
        use std::arch::wasm32::{i32x4_add, i32x4_dot_i16x8};
        i32x4_add(acc, i32x4_dot_i16x8(x, w))
    }
    #[inline(always)]
    unsafe fn finish(sum: Self::V, bias: *const f32, scale: *const f32, step: f32, out: *mut f32) {
        use std::arch::wasm32::*;
        unsafe {
            let y = f32x4_mul(f32x4_convert_i32x4(sum), v128_load(scale.cast()));
            let y = f32x4_mul(y, f32x4_splat(step));
            v128_store(out.cast(), f32x4_add(v128_load(bias.cast()), y))
        }
    }
}

/// The plain lanes of this build: SSE2 on x86-64, simd128 on wasm32, plain Rust elsewhere.
#[cfg(target_arch = "x86_64")]
pub(crate) type Portable = Sse2;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) type Portable = Simd128;
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
pub(crate) type Portable = Scalar;

/// `out[p][o] = bias[o] + (Σᵢ a[p][i] · w[i][o]) · w.step[o] · steps[p]` for every pixel `p` of `a`
/// (`[pixels][w.inputs rounded up to even]`, the padding zero), the sums exact in i32, `ROWS` pixels at
/// a time (then one by one).
///
/// # Safety
/// `L`'s target feature must be present, and `w` packed with `wide = 2 · L::N`.
#[inline(always)]
pub(crate) unsafe fn gemm<L: Lanes>(
    a: &[i16],
    steps: &[f32],
    w: &QuantWeight,
    bias: &[f32],
    out: &mut [f32],
) {
    let c_out = bias.len();
    let pairs = w.inputs.div_ceil(2);
    let pixels = steps.len();
    assert!(a.len() == pixels * 2 * pairs && out.len() == pixels * c_out);
    let row = |p: usize| &a[p * 2 * pairs..][..2 * pairs];
    let mut p = 0;
    while p + ROWS <= pixels {
        let rows: [&[i16]; ROWS] = std::array::from_fn(|r| row(p + r));
        let steps: &[f32; ROWS] = steps[p..p + ROWS].try_into().unwrap();
        let out = &mut out[p * c_out..][..ROWS * c_out];
        // SAFETY: as the caller guarantees.
        unsafe { rows_out::<L, ROWS>(rows, *steps, pairs, w, bias, out) };
        p += ROWS;
    }
    for q in p..pixels {
        // SAFETY: as above.
        unsafe { rows_out::<L, 1>([row(q)], [steps[q]], pairs, w, bias, &mut out[q * c_out..][..c_out]) };
    }
}

/// Input pair `k` of a row: two i16 as the i32 a pair instruction broadcasts, read as one i32
/// (little-endian, as x86-64 and wasm32 are, puts the first in the low half).
///
/// # Safety
/// `row` holds at least `2 · k + 2` values.
#[inline(always)]
unsafe fn pair_at(row: &[i16], k: usize) -> i32 {
    debug_assert!(2 * k + 2 <= row.len());
    // SAFETY: as the caller guarantees; an unaligned read.
    unsafe { std::ptr::read_unaligned(row.as_ptr().add(2 * k).cast::<i32>()) }
}

#[cfg(not(target_endian = "little"))]
compile_error!("the integer kernels read pairs of i16 as little-endian i32");

/// `R` pixels' rows, every output channel, block by block.
#[inline(always)]
unsafe fn rows_out<L: Lanes, const R: usize>(
    rows: [&[i16]; R],
    steps: [f32; R],
    pairs: usize,
    w: &QuantWeight,
    bias: &[f32],
    out: &mut [f32],
) {
    let scale = &w.step;
    let c_out = bias.len();
    let mut offset = 0;
    for (j, width) in blocks(c_out, 2 * L::N) {
        let panel = &w.packed[offset..][..pairs * 2 * width];
        offset += pairs * 2 * width;
        // SAFETY: as the caller guarantees; the panel holds `pairs` steps of `2 · width` values.
        unsafe {
            if width == 2 * L::N {
                tile::<L, R, 2>(&rows, &steps, pairs, panel, j, scale, bias, out);
            } else if width == L::N {
                tile::<L, R, 1>(&rows, &steps, pairs, panel, j, scale, bias, out);
            } else {
                for (r, row) in rows.iter().enumerate() {
                    for l in 0..width {
                        let sum: i32 = (0..pairs)
                            .map(|k| {
                                let wv = &panel[k * 2 * width + 2 * l..][..2];
                                row[2 * k] as i32 * wv[0] as i32 + row[2 * k + 1] as i32 * wv[1] as i32
                            })
                            .sum();
                        out[r * c_out + j + l] = bias[j + l] + sum as f32 * scale[j + l] * steps[r];
                    }
                }
            }
        }
    }
}

/// `R` pixels × `B` registers of output channels from channel `j`, accumulated in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<L: Lanes, const R: usize, const B: usize>(
    rows: &[&[i16]; R],
    steps: &[f32; R],
    pairs: usize,
    panel: &[i16],
    j: usize,
    scale: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    let c_out = bias.len();
    // SAFETY (every block below): the caller guarantees the target feature; the panel holds
    // `2 · B · N` values per step, each row `2 · pairs` values, and each output row `B · N` values
    // from `o`.
    let mut acc = [[unsafe { L::zero() }; B]; R];
    for (k, wv) in panel.chunks_exact(2 * B * L::N).enumerate().take(pairs) {
        let ws: [L::V; B] = std::array::from_fn(|b| unsafe { L::load(wv.as_ptr().add(2 * b * L::N)) });
        for r in 0..R {
            let x = unsafe { L::splat(pair_at(rows[r], k)) };
            for b in 0..B {
                acc[r][b] = unsafe { L::dot_add(acc[r][b], x, ws[b]) };
            }
        }
    }
    for (r, regs) in acc.iter().enumerate() {
        for (b, &v) in regs.iter().enumerate() {
            let o = j + b * L::N;
            let row = &mut out[r * c_out + o..][..L::N];
            let (bias, scale) = (bias[o..o + L::N].as_ptr(), scale[o..o + L::N].as_ptr());
            unsafe { L::finish(v, bias, scale, steps[r], row.as_mut_ptr()) };
        }
    }
}

/// The pair instruction alone at its best: `steps` rounds of [`PEAK_CHAINS`] independent
/// [`Lanes::dot_add`]s on values held in registers, the build's plain lanes (simd128 in Wasm, SSE2
/// natively). Returns the multiply–accumulates done (each lane's pair counts two); the benchmark times
/// the call, for the roofline it sets a network's multiply–accumulates per second against.
pub fn peak_pairs(steps: usize) -> u64 {
    // SAFETY: the plain lanes need only the build's baseline target features.
    unsafe { peak::<Portable>(steps) }
}

/// Independent accumulators in [`peak_pairs`]: enough to cover the instruction's latency.
const PEAK_CHAINS: usize = 8;

#[inline(always)]
unsafe fn peak<L: Lanes>(steps: usize) -> u64 {
    // SAFETY (each block): as the caller guarantees.
    let w: [L::V; PEAK_CHAINS] =
        std::array::from_fn(|i| unsafe { L::splat(std::hint::black_box(i as i32 + 1)) });
    let mut acc = [unsafe { L::zero() }; PEAK_CHAINS];
    for step in 0..steps {
        // A value the compiler cannot know, so that the sums are computed rather than folded.
        let x = unsafe { L::splat(std::hint::black_box(step as i32 & 0x7fff)) };
        for (a, w) in acc.iter_mut().zip(&w) {
            *a = unsafe { L::dot_add(*a, x, *w) };
        }
    }
    std::hint::black_box(acc);
    (steps * PEAK_CHAINS * 2 * L::N) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Geometry, Kernels};

    fn values(n: usize, seed: u64, offset: f32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0 + offset
            })
            .collect()
    }

    fn kernel_sets() -> Vec<Kernels> {
        let mut sets = vec![Kernels::Portable];
        if Kernels::detect() != Kernels::Portable {
            sets.push(Kernels::detect());
        }
        sets
    }

    /// What each output should hold, from the quantised rows (`inputs` values each) summed in i64,
    /// the weights unpacked.
    fn reference(q: &[i16], steps: &[f32], w: &[f32], inputs: usize, c_out: usize, bias: &[f32]) -> Vec<f32> {
        let ws = &quantise_weight(w, inputs, c_out, 8, 8).step;
        let wq = |i: usize, o: usize| (w[i * c_out + o] / ws[o]).round_ties_even() as i64;
        let mut out = Vec::new();
        for (x, step) in q.chunks_exact(inputs).zip(steps) {
            for o in 0..c_out {
                let sum: i64 = (0..inputs).map(|i| x[i] as i64 * wq(i, o)).sum();
                out.push(bias[o] + sum as f32 * ws[o] * step);
            }
        }
        out
    }

    #[test]
    fn rounding_by_the_magic_sum_is_rounding_to_nearest_even() {
        for v in [-2.5f32, -1.5, -0.5, 0.5, 1.5, 2.5, 3.7, -3.7, 0.49999997, 4095.0, -2047.4, 0.0, -0.0] {
            assert_eq!(round_to_int(v), v.round_ties_even() as i32, "{v}");
        }
    }

    #[test]
    fn weights_and_rows_keep_their_values_to_half_a_step() {
        let (inputs, c_out) = (7, 5);
        let w = values(inputs * c_out, 3, 0.0);
        let qw = quantise_weight(&w, inputs, c_out, 8, 8);
        for o in 0..c_out {
            let largest = (0..inputs).map(|i| w[i * c_out + o].abs()).fold(0.0, f32::max);
            assert_eq!(qw.step[o], largest / 127.0);
        }
        let x = values(27, 5, 1.0); // in 0–2: non-negative, 255 steps
        let mut q = vec![-1; 28];
        let step = quantise_row(&x, &mut q, 8);
        assert!(x.iter().all(|&v| v >= 0.0));
        assert_eq!((*q.iter().max().unwrap(), q[27]), (255, 0), "the padding is zeroed");
        assert!(x.iter().zip(&q).all(|(&v, &q)| (v - q as f32 * step).abs() <= step / 2.0 * 1.0001));
        let (q, steps) = quantise_rows(&values(64, 5, 0.0), 16, 16, 8);
        assert_eq!(steps.len(), 4);
        for row in q.chunks_exact(16) {
            assert_eq!(row.iter().map(|v| v.abs()).max(), Some(127), "each row spans its own range");
        }
        // An all-zero row quantises to zeros rather than dividing by zero.
        assert_eq!(quantise_rows(&[0.0; 4], 4, 4, 8), (vec![0; 4], vec![1.0]));
    }

    #[test]
    fn the_integer_pointwise_kernel_sums_exactly_on_every_kernel_set() {
        // 37 outputs: a block of 16 (AVX2) or 8s, a block of half that, and a tail; 7 pixels: a tile
        // of 4 and three single ones; 13 inputs: an odd count, padded.
        let (pixels, inputs, c_out) = (7, 13, 37);
        let x = values(pixels * inputs, 11, 0.2);
        let w = values(inputs * c_out, 12, 0.0);
        let bias = values(c_out, 13, 0.0);
        for bits in [8, 12] {
            let (q, steps) = quantise_rows(&x, inputs, inputs, bits);
            let expected = reference(&q, &steps, &w, inputs, c_out, &bias);
            for k in kernel_sets() {
                let qw = quantise_weight(&w, inputs, c_out, k.wide(), bits);
                let mut out = vec![0.0; pixels * c_out];
                k.pointwise_int8(&x, &qw, &bias, &mut out);
                assert_eq!(out, expected, "{} with {bits}-bit activations", k.name());
            }
            // The plain-Rust lanes, which only other targets build into the kernels.
            let mut out = vec![0.0; pixels * c_out];
            let rows: Vec<i16> = q.chunks_exact(inputs).flat_map(|r| r.iter().copied().chain([0])).collect();
            let qw = quantise_weight(&w, inputs, c_out, 8, bits);
            // SAFETY: plain Rust needs no target feature; the weights are packed 8 wide.
            unsafe { gemm::<Scalar>(&rows, &steps, &qw, &bias, &mut out) };
            assert_eq!(out, expected, "plain lanes with {bits}-bit activations");
        }
    }

    #[test]
    fn twelve_bit_activations_are_sixteen_times_finer_and_sums_are_bounded() {
        let x = values(40, 7, 1.0);
        let (mut q8, mut q12) = (vec![0; 40], vec![0; 40]);
        let (s8, s12) = (quantise_row(&x, &mut q8, 8), quantise_row(&x, &mut q12, 12));
        assert_eq!(*q12.iter().max().unwrap(), 4095);
        assert!((s8 / s12 - 4095.0 / 255.0).abs() < 1e-3);
        // 4128 inputs × 127 × 4095 is the most an i32 holds; int8 activations allow far more.
        assert!(sums_fit(4128, 12) && !sums_fit(4130, 12));
        assert!(sums_fit(60_000, 8) && !sums_fit(70_000, 8));
    }

    #[test]
    fn the_integer_dense_kernel_reads_zeros_beyond_the_edges() {
        // A 3 × 3 convolution, stride 2, padding 1, over a 5 × 6 map of 3 channels.
        let (h, w_, c_in, c_out) = (5, 6, 3, 10);
        let g = Geometry { in_h: h, in_w: w_, out_h: 3, out_w: 3, kernel: 3, stride: 2, top: 1, left: 1 };
        let x = values(h * w_ * c_in, 21, 0.0);
        let w = values(9 * c_in * c_out, 22, 0.0);
        let bias = values(c_out, 23, 0.0);
        let mut patches = Vec::new();
        for oy in 0..3 {
            for ox in 0..3 {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                        for c in 0..c_in {
                            let inside = (0..h as isize).contains(&iy) && (0..w_ as isize).contains(&ix);
                            let at = || (iy * w_ as isize + ix) as usize * c_in + c;
                            patches.push(if inside { x[at()] } else { 0.0 });
                        }
                    }
                }
            }
        }
        let (q, steps) = quantise_rows(&patches, 9 * c_in, 9 * c_in, 8);
        let expected = reference(&q, &steps, &w, 9 * c_in, c_out, &bias);
        for k in kernel_sets() {
            let qw = quantise_weight(&w, 9 * c_in, c_out, k.wide(), 8);
            let mut out = vec![0.0; 9 * c_out];
            k.dense_int8(&x, &g, c_in, &qw, &bias, &mut out);
            assert_eq!(out, expected, "{}", k.name());
        }
    }
}
