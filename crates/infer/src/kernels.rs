//! The engine's three convolution kernels on channels-last maps, written once as plain Rust that
//! the compiler vectorises, and compiled twice on x86-64: for the baseline target (SSE2; the wasm32
//! build is the same code with simd128 where the build enables it) and for AVX2 + FMA, picked at run
//! time. The arithmetic differs between the two only in FMA's single rounding.

use crate::quant::{self, QuantWeight};

/// A multiply–add: `a · b + c`, rounded twice (portable) or once (FMA).
trait Madd {
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

struct Plain;
impl Madd for Plain {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Only inlined into functions compiled with the `fma` feature: elsewhere `mul_add` is a libm call.
#[cfg(target_arch = "x86_64")]
struct Fused;
#[cfg(target_arch = "x86_64")]
impl Madd for Fused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// Where a convolution reads from: the input's and output's sides, the kernel, stride and the
/// padding before the first row and column.
pub(crate) struct Geometry {
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub top: usize,
    pub left: usize,
}

impl Geometry {
    /// The input row (or column) a kernel tap reads for an output row, if inside the input.
    #[inline(always)]
    fn source(out: usize, tap: usize, stride: usize, before: usize, size: usize) -> Option<usize> {
        (out * stride + tap).checked_sub(before).filter(|&i| i < size)
    }
}

/// The widest block of output channels a tile holds ([`Kernels::wide`]): the weights are packed
/// with it, and the kernels are instantiated with it.
const PORTABLE_WIDE: usize = 8;
#[cfg(target_arch = "x86_64")]
const AVX2_WIDE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernels {
    pub fn detect() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Kernels::Avx2Fma;
        }
        Kernels::Portable
    }

    /// The widest block of output channels a tile holds: two registers' worth (SSE2 and simd128
    /// have 16 registers of 4 lanes, AVX2 16 of 8), so that a 4-pixel tile's accumulators fit.
    pub fn wide(self) -> usize {
        match self {
            Kernels::Portable => PORTABLE_WIDE,
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => AVX2_WIDE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => "avx2+fma",
        }
    }

    /// `out[p][o] = bias[o] + Σ_i x[p][i] · w[i][o]` for every pixel `p`, `w` packed by
    /// [`pack_pointwise`].
    pub fn pointwise(self, x: &[f32], c_in: usize, w: &[f32], bias: &[f32], c_out: usize, out: &mut [f32]) {
        match self {
            Kernels::Portable => {
                pointwise::<Plain, PORTABLE_WIDE, { PORTABLE_WIDE / 2 }>(x, c_in, w, bias, c_out, out)
            }
            // SAFETY: chosen only where `detect` saw AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { avx2::pointwise(x, c_in, w, bias, c_out, out) },
        }
    }

    /// One `k × k` filter per channel: `w[ky][kx][c]`.
    pub fn depthwise(self, x: &[f32], g: &Geometry, c: usize, w: &[f32], bias: &[f32], out: &mut [f32]) {
        match self {
            Kernels::Portable => depthwise::<Plain, 16>(x, g, c, w, bias, out),
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { avx2::depthwise(x, g, c, w, bias, out) },
        }
    }

    /// A full convolution: `w[ky][kx][i][o]`, packed by [`pack_pointwise`] with `k² · c_in` inputs.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(
        self,
        x: &[f32],
        g: &Geometry,
        c_in: usize,
        w: &[f32],
        bias: &[f32],
        c_out: usize,
        out: &mut [f32],
    ) {
        match self {
            Kernels::Portable => {
                dense::<Plain, PORTABLE_WIDE, { PORTABLE_WIDE / 2 }>(x, g, c_in, w, bias, c_out, out)
            }
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { avx2::dense(x, g, c_in, w, bias, c_out, out) },
        }
    }

    /// [`Kernels::pointwise`] in int8 arithmetic (`crate::quant`): `x` quantised with its own range,
    /// `w` by [`quant::quantise_weight`] with [`Kernels::wide`].
    pub fn pointwise_int8(self, x: &[f32], w: &QuantWeight, bias: &[f32], out: &mut [f32]) {
        match self {
            // SAFETY: the portable lanes need only the build's baseline.
            Kernels::Portable => unsafe { pointwise_int8::<quant::Portable>(x, w, bias, out) },
            // SAFETY: chosen only where `detect` saw AVX2.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { avx2::pointwise_int8(x, w, bias, out) },
        }
    }

    /// [`Kernels::dense`] in int8 arithmetic, `w` quantised with `k² · c_in` inputs.
    pub fn dense_int8(
        self,
        x: &[f32],
        g: &Geometry,
        c_in: usize,
        w: &QuantWeight,
        bias: &[f32],
        out: &mut [f32],
    ) {
        match self {
            // SAFETY: as above.
            Kernels::Portable => unsafe { dense_int8::<quant::Portable>(x, g, c_in, w, bias, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { avx2::dense_int8(x, g, c_in, w, bias, out) },
        }
    }
}

/// # Safety
/// `L`'s target feature must be present.
#[inline(always)]
unsafe fn pointwise_int8<L: quant::Lanes>(x: &[f32], w: &QuantWeight, bias: &[f32], out: &mut [f32]) {
    // Each pixel in steps of its own range, in rows of an even length as the pair instructions read.
    let (q, steps) = quant::quantise_rows(x, w.inputs, w.inputs.div_ceil(2) * 2, w.activation_bits);
    // SAFETY: as the caller guarantees.
    unsafe { quant::gemm::<L>(&q, &steps, w, bias, out) }
}

/// # Safety
/// As [`pointwise_int8`].
#[inline(always)]
unsafe fn dense_int8<L: quant::Lanes>(
    x: &[f32],
    g: &Geometry,
    c_in: usize,
    w: &QuantWeight,
    bias: &[f32],
    out: &mut [f32],
) {
    let k = g.kernel;
    // Every output pixel's patch (zeros over the edges) in steps of its own range.
    let padded = w.inputs.div_ceil(2) * 2;
    let pixels = g.out_h * g.out_w;
    let mut patch = vec![0.0f32; w.inputs];
    let mut q = vec![0i16; pixels * padded];
    let mut steps = Vec::with_capacity(pixels);
    let inside = |o: usize, before: usize, size: usize| {
        (o * g.stride).checked_sub(before).filter(|&first| first + k <= size)
    };
    for (pixel, dst) in q.chunks_exact_mut(padded).enumerate() {
        let (oy, ox) = (pixel / g.out_w, pixel % g.out_w);
        if let (Some(iy), Some(ix)) = (inside(oy, g.top, g.in_h), inside(ox, g.left, g.in_w)) {
            // Away from the edges a patch row is one run of the input row: k pixels' channels.
            for ky in 0..k {
                let from = &x[((iy + ky) * g.in_w + ix) * c_in..][..k * c_in];
                patch[ky * k * c_in..][..k * c_in].copy_from_slice(from);
            }
            steps.push(quant::quantise_row(&patch, dst, w.activation_bits));
            continue;
        }
        for ky in 0..k {
            let iy = Geometry::source(oy, ky, g.stride, g.top, g.in_h);
            for kx in 0..k {
                let ix = Geometry::source(ox, kx, g.stride, g.left, g.in_w);
                let to = &mut patch[(ky * k + kx) * c_in..][..c_in];
                match iy.zip(ix) {
                    Some((iy, ix)) => to.copy_from_slice(&x[(iy * g.in_w + ix) * c_in..][..c_in]),
                    None => to.fill(0.0),
                }
            }
        }
        steps.push(quant::quantise_row(&patch, dst, w.activation_bits));
    }
    // SAFETY: as the caller guarantees.
    unsafe { quant::gemm::<L>(&q, &steps, w, bias, out) }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{AVX2_WIDE, Fused, Geometry, QuantWeight, quant};

    #[target_feature(enable = "avx2")]
    pub fn pointwise_int8(x: &[f32], w: &QuantWeight, bias: &[f32], out: &mut [f32]) {
        // SAFETY: this function is compiled with AVX2.
        unsafe { super::pointwise_int8::<quant::Avx2>(x, w, bias, out) }
    }

    #[target_feature(enable = "avx2")]
    pub fn dense_int8(x: &[f32], g: &Geometry, c_in: usize, w: &QuantWeight, bias: &[f32], out: &mut [f32]) {
        // SAFETY: as above.
        unsafe { super::dense_int8::<quant::Avx2>(x, g, c_in, w, bias, out) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn pointwise(x: &[f32], c_in: usize, w: &[f32], bias: &[f32], c_out: usize, out: &mut [f32]) {
        super::pointwise::<Fused, AVX2_WIDE, { AVX2_WIDE / 2 }>(x, c_in, w, bias, c_out, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn depthwise(x: &[f32], g: &Geometry, c: usize, w: &[f32], bias: &[f32], out: &mut [f32]) {
        super::depthwise::<Fused, 32>(x, g, c, w, bias, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn dense(
        x: &[f32],
        g: &Geometry,
        c_in: usize,
        w: &[f32],
        bias: &[f32],
        c_out: usize,
        out: &mut [f32],
    ) {
        super::dense::<Fused, AVX2_WIDE, { AVX2_WIDE / 2 }>(x, g, c_in, w, bias, c_out, out)
    }
}

/// Pixels per register tile of the pointwise kernel.
pub(crate) const ROWS: usize = 4;

/// The output-channel blocks a pointwise weight is packed in: `wide` channels, then `wide / 2`,
/// then what is left.
pub(crate) fn blocks(c_out: usize, wide: usize) -> impl Iterator<Item = (usize, usize)> {
    let narrow = wide / 2;
    let end_wide = c_out / wide * wide;
    let end_narrow = end_wide + (c_out - end_wide) / narrow * narrow;
    let starts = (0..end_wide).step_by(wide).map(move |j| (j, wide));
    let starts = starts.chain((end_wide..end_narrow).step_by(narrow).map(move |j| (j, narrow)));
    starts.chain((end_narrow < c_out).then_some((end_narrow, c_out - end_narrow)))
}

/// A pointwise weight `[c_in][c_out]` packed for [`Kernels::pointwise`] with blocks `wide`
/// channels wide ([`Kernels::wide`]): for each block of output channels ([`blocks`]), its
/// `[c_in][width]` panel, so that the kernel reads weights in order.
pub(crate) fn pack_pointwise(w: &[f32], c_in: usize, c_out: usize, wide: usize) -> Vec<f32> {
    let mut packed = Vec::with_capacity(w.len());
    for (j, width) in blocks(c_out, wide) {
        for i in 0..c_in {
            packed.extend_from_slice(&w[i * c_out + j..][..width]);
        }
    }
    packed
}

/// Tiles of `ROWS` pixels × 16 (or 8) output channels held in registers while the input channels
/// stream by; `w` is packed ([`pack_pointwise`]).
#[inline(always)]
fn pointwise<M: Madd, const W: usize, const N: usize>(
    x: &[f32],
    c_in: usize,
    w: &[f32],
    bias: &[f32],
    c_out: usize,
    out: &mut [f32],
) {
    let pixels = x.len() / c_in;
    tiled::<M, W, N>(pixels, c_in, w, bias, c_out, out, |pixel, r, rows, buffer| {
        for (i, &v) in x[pixel * c_in..][..c_in].iter().enumerate() {
            buffer[i * rows + r] = v;
        }
    });
}

/// Every pixel's output channels, `ROWS` pixels at a time (then one by one): `fill(pixel, r, rows,
/// buffer)` writes the pixel's `inputs` values as row `r` of `rows` rows interleaved in `buffer`
/// (`[inputs][rows]`, so that one step of the tile reads one chunk).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiled<M: Madd, const W: usize, const N: usize>(
    pixels: usize,
    inputs: usize,
    w: &[f32],
    bias: &[f32],
    c_out: usize,
    out: &mut [f32],
    mut fill: impl FnMut(usize, usize, usize, &mut [f32]),
) {
    let mut buffer = vec![0.0f32; inputs * ROWS];
    let mut p = 0;
    while p + ROWS <= pixels {
        for r in 0..ROWS {
            fill(p + r, r, ROWS, &mut buffer);
        }
        pointwise_rows::<M, ROWS, W, N>(
            &buffer,
            inputs,
            w,
            bias,
            c_out,
            &mut out[p * c_out..][..ROWS * c_out],
        );
        p += ROWS;
    }
    for q in p..pixels {
        fill(q, 0, 1, &mut buffer[..inputs]);
        pointwise_rows::<M, 1, W, N>(
            &buffer[..inputs],
            inputs,
            w,
            bias,
            c_out,
            &mut out[q * c_out..][..c_out],
        );
    }
}

/// `R` pixels (interleaved `[c_in][R]`), every output channel, block by block.
#[inline(always)]
fn pointwise_rows<M: Madd, const R: usize, const W: usize, const N: usize>(
    xs: &[f32],
    c_in: usize,
    w: &[f32],
    bias: &[f32],
    c_out: usize,
    out: &mut [f32],
) {
    let mut offset = 0;
    for (j, width) in blocks(c_out, W) {
        let panel = &w[offset..][..c_in * width];
        offset += c_in * width;
        match width {
            _ if width == W => pointwise_tile::<M, R, W>(xs, panel, &bias[j..j + W], j, c_out, out),
            _ if width == N => pointwise_tile::<M, R, N>(xs, panel, &bias[j..j + N], j, c_out, out),
            _ => {
                for r in 0..R {
                    let row = &mut out[r * c_out + j..][..width];
                    row.copy_from_slice(&bias[j..]);
                    for (a, wv) in xs.iter().skip(r).step_by(R).zip(panel.chunks_exact(width)) {
                        row.iter_mut().zip(wv).for_each(|(o, &wv)| *o = M::madd(*a, wv, *o));
                    }
                }
            }
        }
    }
}

/// `R` pixels × `L` output channels from channel `j`, accumulated in registers.
#[inline(always)]
fn pointwise_tile<M: Madd, const R: usize, const L: usize>(
    xs: &[f32],
    panel: &[f32],
    bias: &[f32],
    j: usize,
    c_out: usize,
    out: &mut [f32],
) {
    let bias: &[f32; L] = bias.try_into().unwrap();
    let mut acc = [*bias; R];
    for (a, wv) in xs.chunks_exact(R).zip(panel.chunks_exact(L)) {
        let a: &[f32; R] = a.try_into().unwrap();
        let wv: &[f32; L] = wv.try_into().unwrap();
        for r in 0..R {
            for l in 0..L {
                acc[r][l] = M::madd(a[r], wv[l], acc[r][l]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        out[r * c_out + j..][..L].copy_from_slice(row);
    }
}

/// Per output pixel, `W` channels at a time held in registers while the `k²` taps stream by.
#[inline(always)]
fn depthwise<M: Madd, const W: usize>(
    x: &[f32],
    g: &Geometry,
    c: usize,
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    let k = g.kernel;
    let full = c / W * W;
    // The taps inside the input for one output pixel: (input pixel, tap).
    let mut taps = Vec::with_capacity(k * k);
    // Away from the edges every tap is inside, each at a fixed offset from the window's first input
    // pixel: those pixels take the offsets as they are rather than testing each tap (which on a small
    // layer's few channels cost as much as the multiply–adds).
    let window: Vec<(usize, usize)> = (0..k * k).map(|t| (((t / k) * g.in_w + t % k) * c, t * c)).collect();
    let inside = |o: usize, before: usize, size: usize| {
        (o * g.stride).checked_sub(before).filter(|&first| first + k <= size)
    };
    for oy in 0..g.out_h {
        let row = inside(oy, g.top, g.in_h);
        for ox in 0..g.out_w {
            taps.clear();
            if let (Some(iy), Some(ix)) = (row, inside(ox, g.left, g.in_w)) {
                let first = (iy * g.in_w + ix) * c;
                taps.extend(window.iter().map(|&(xi, wi)| (first + xi, wi)));
            } else {
                for ky in 0..k {
                    let Some(iy) = Geometry::source(oy, ky, g.stride, g.top, g.in_h) else { continue };
                    for kx in 0..k {
                        let Some(ix) = Geometry::source(ox, kx, g.stride, g.left, g.in_w) else { continue };
                        taps.push(((iy * g.in_w + ix) * c, (ky * k + kx) * c));
                    }
                }
            }
            let out = &mut out[(oy * g.out_w + ox) * c..][..c];
            for j in (0..full).step_by(W) {
                let mut acc: [f32; W] = bias[j..j + W].try_into().unwrap();
                for &(xi, wi) in &taps {
                    let xs: &[f32; W] = x[xi + j..][..W].try_into().unwrap();
                    let ws: &[f32; W] = w[wi + j..][..W].try_into().unwrap();
                    for l in 0..W {
                        acc[l] = M::madd(xs[l], ws[l], acc[l]);
                    }
                }
                out[j..j + W].copy_from_slice(&acc);
            }
            let tail = &mut out[full..];
            tail.copy_from_slice(&bias[full..]);
            for &(xi, wi) in &taps {
                let (xs, ws) = (&x[xi + full..xi + c], &w[wi + full..wi + c]);
                for ((a, &xv), &wv) in tail.iter_mut().zip(xs).zip(ws) {
                    *a = M::madd(xv, wv, *a);
                }
            }
        }
    }
}

/// Each output pixel's `k × k × c_in` patch gathered (zeros where it hangs over the edge), then
/// multiplied by the weight packed as a pointwise one with `k² · c_in` inputs.
#[inline(always)]
fn dense<M: Madd, const W: usize, const N: usize>(
    x: &[f32],
    g: &Geometry,
    c_in: usize,
    w: &[f32],
    bias: &[f32],
    c_out: usize,
    out: &mut [f32],
) {
    let k = g.kernel;
    let patch = k * k * c_in;
    let pixels = g.out_h * g.out_w;
    // Writes pixel `pixel`'s patch as row `r` of `rows` interleaved rows.
    let gather = |pixel: usize, r: usize, rows: usize, patches: &mut [f32]| {
        let (oy, ox) = (pixel / g.out_w, pixel % g.out_w);
        for ky in 0..k {
            let iy = Geometry::source(oy, ky, g.stride, g.top, g.in_h);
            for kx in 0..k {
                let ix = Geometry::source(ox, kx, g.stride, g.left, g.in_w);
                let base = (ky * k + kx) * c_in;
                match iy.zip(ix) {
                    Some((iy, ix)) => {
                        let src = &x[(iy * g.in_w + ix) * c_in..][..c_in];
                        for (i, &v) in src.iter().enumerate() {
                            patches[(base + i) * rows + r] = v;
                        }
                    }
                    None => (0..c_in).for_each(|i| patches[(base + i) * rows + r] = 0.0),
                }
            }
        }
    };
    tiled::<M, W, N>(pixels, patch, w, bias, c_out, out, gather);
}
