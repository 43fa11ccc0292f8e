//! Fractional motion: vectors in quarters of a feature, with 8-tap interpolated prediction (the
//! adaptive mode's predicted units with header flag bit5, `BITSTREAM.md`).
//!
//! A moving camera shifts the whole feature map by a fraction of a feature per frame (a pan of
//! 3 pixels per frame is 0.36 of a feature at stride 8), which whole-feature vectors cannot
//! follow: on 20 frames of a panning crop of vtest.avi (NanoDet stage2, 8×8 blocks, one field
//! shared by the channels) the best whole-feature vectors left 36% of the frame's energy as
//! prediction error, half-feature vectors 25% and quarter-feature vectors 23%; on the static
//! camera of vtest.avi itself 8.3%, 6.8% and 6.3%.
//!
//! A component `q` of a [`MotionVector`] then means `q / SUBPEL` features: the prediction of
//! `(y, x)` is the anchor at `(y + qy/4, x + qx/4)`, interpolated with `FILTERS` (HEVC's
//! 8-tap luma filters), horizontally then vertically, every source position clamped to the
//! plane as in [`motion::compensate_plane`]. `predict_block` is the one interpolation,
//! evaluated in the same order on every machine (IEEE f32, no fused multiply-add), so that the
//! encoder predicts exactly what the decoder reconstructs. A block whose vector is a whole
//! number of features is a plain copy, bit for bit.
//!
//! **Why 8 taps and not bilinear.** Bilinear interpolation is a low-pass filter, and in closed
//! loop a block left uncoded is interpolated again in every frame, so the features blur frame
//! after frame. The back network reads that blur as lost detail: on a panning crop of vtest.avi
//! (300 frames, NanoDet stage2, `fmap-eval`) bilinear prediction cut the rate by 40% but person
//! AP@0.5 fell from 0.981 to 0.942 at quality 2 (BD-rate against x264 at 416x416 +348%, against
//! +136% for whole-feature vectors). The 8-tap filters pass detail up to about ¾ of the Nyquist
//! frequency: 827 kbit/s at 0.979 (whole vectors: 1234 at 0.981), BD-rate +55%.

use crate::motion::{self, BlockGrid, BlockRect, MotionError, MotionField, MotionVector};

/// How much a fractional vector must gain over the whole one, in quantizer steps per value of
/// the block ([`refine`]): on a still scene a fractional vector can look a little better than
/// the copy by matching the reference's coding noise, and then costs vector bits for nothing.
/// On 40 recorded NanoDet stage2 frames at quality 2 (`examples/recorded.rs`), predicted units:
///
/// | margin | panning crop: bytes, SNR | vtest.avi: bytes, SNR |
/// |---|---|---|
/// | whole vectors | 13733, 7.33 dB | 2548, 9.84 dB |
/// | 0 | 8895, 7.01 dB | 2428, 9.73 dB |
/// | 0.005 | 9014, 7.01 dB | 2415, 9.66 dB |
/// | **0.01** | 9312, 7.01 dB | 2419, 9.64 dB |
/// | 0.02 | 9942, 6.97 dB | 2442, 9.66 dB |
///
/// In detection accuracy (`fmap-eval`, qualities 1.4–4), margin 0 against 0.01: on the panning
/// crop BD-rate against x264 at 416x416 +49% against +55%; on the whole of vtest.avi, against
/// whole-feature vectors, −3.8% against −1.2% at equal person AP@0.5 but +10% against +3.6% at
/// equal person+vehicle mAP. 0.01 keeps the static scene's vehicles.
pub const FRACTIONAL_MARGIN: f32 = 0.01;

/// The most values [`refine`] reads (the strongest planes it is given, whole planes): it filters
/// each of them 16 ways. NanoDet's stage2 hands it 32 planes of 52×52 (87 K values, all read);
/// at [256, 200, 272] it reads 19 of the 64, which kept the encoder at ~5 frames/s
/// (`examples/speed.rs`).
pub const REFINE_VALUES: usize = 1 << 20;

/// Steps of a feature: vector components count quarters of a feature.
pub const SUBPEL: i32 = 4;
/// The largest search range with fractional vectors: components are `i8` and reach
/// `SUBPEL · range`.
pub const MAX_FRACTIONAL_SEARCH_RANGE: u8 = (i8::MAX as i32 / SUBPEL) as u8;

/// The largest block edge (a block's taps live on the stack).
const MAX_BLOCK: usize = motion::BLOCK_SIZES[motion::BLOCK_SIZES.len() - 1];

/// Whole part and fraction (0..SUBPEL) of a component (`q = SUBPEL · whole + fraction`).
#[inline]
fn split(q: i8) -> (isize, usize) {
    let q = i32::from(q);
    (q.div_euclid(SUBPEL) as isize, q.rem_euclid(SUBPEL) as usize)
}

/// The whole-feature part of every vector of a fractional field.
fn whole_parts(field: &MotionField) -> MotionField {
    MotionField {
        grid: field.grid,
        vectors: field
            .vectors
            .iter()
            .map(|v| {
                let (y, x) = (split(v.dy).0, split(v.dx).0);
                MotionVector::new(y as i8, x as i8)
            })
            .collect(),
    }
}

/// Taps of the interpolation filter.
const TAPS: usize = 8;
/// Offset of the first tap from the whole position.
const FIRST_TAP: isize = -(TAPS as isize / 2 - 1);
/// Interpolation filters per quarter (HEVC's luma filters, in 64ths).
const FILTERS: [[f32; TAPS]; 4] = [
    [0.0, 0.0, 0.0, 64.0, 0.0, 0.0, 0.0, 0.0],
    [-1.0, 4.0, -10.0, 58.0, 17.0, -5.0, 1.0, 0.0],
    [-1.0, 4.0, -11.0, 40.0, 40.0, -11.0, 4.0, -1.0],
    [0.0, 1.0, -5.0, 17.0, 58.0, -10.0, 4.0, -1.0],
];

/// Rows of a block's horizontal pass: the block's rows and the vertical filter's margin.
const PASS_ROWS: usize = MAX_BLOCK + TAPS - 1;

/// Predicts one block of one plane: the anchor at the block displaced by `v` (in quarters),
/// interpolated with [`FILTERS`] (horizontal pass, then vertical, every source position
/// clamped to the plane as in [`motion::compensate_plane`]) into `out`, row by row
/// (`rect.height × rect.width`). An axis whose fraction is zero is copied, not filtered. The
/// one interpolation of the codec: compensation and the search both call it.
fn predict_block(
    src: &[f32],
    grid: &BlockGrid,
    rect: BlockRect,
    v: MotionVector,
    out: &mut [f32; MAX_BLOCK * MAX_BLOCK],
) {
    let ((iy, fy), (ix, fx)) = (split(v.dy), split(v.dx));
    let (h, w) = (grid.height as isize, grid.width as isize);
    let width = grid.width;
    let margin = |f: usize| {
        if f == 0 {
            (0, 0)
        } else {
            (FIRST_TAP, TAPS - 1)
        }
    };
    let ((y_off, extra_rows), (x_off, extra_cols)) = (margin(fy), margin(fx));
    let y_base = rect.y as isize + iy + y_off;
    let x_base = rect.x as isize + ix + x_off;
    let rows = rect.height + extra_rows;
    let mut pass = [0.0f32; PASS_ROWS * MAX_BLOCK];
    let mut segment = [0.0f32; MAX_BLOCK + TAPS - 1];
    let columns = rect.width + extra_cols;
    // Whether the segment's columns lie inside the plane (no clamping: a plain copy).
    let inside = x_base >= 0 && x_base + columns as isize <= w;
    for k in 0..rows {
        let y = (y_base + k as isize).clamp(0, h - 1) as usize;
        let row = &src[y * width..(y + 1) * width];
        let segment = &mut segment[..columns];
        if inside {
            segment.copy_from_slice(&row[x_base as usize..x_base as usize + columns]);
        } else {
            for (m, s) in segment.iter_mut().enumerate() {
                *s = row[(x_base + m as isize).clamp(0, w - 1) as usize];
            }
        }
        let dst = &mut pass[k * MAX_BLOCK..k * MAX_BLOCK + rect.width];
        if fx == 0 {
            dst.copy_from_slice(segment);
        } else {
            filter_block(dst, |t| &segment[t..], &FILTERS[fx]);
        }
    }
    for r in 0..rect.height {
        let dst = &mut out[r * rect.width..(r + 1) * rect.width];
        if fy == 0 {
            dst.copy_from_slice(&pass[r * MAX_BLOCK..r * MAX_BLOCK + rect.width]);
        } else {
            filter_block(dst, |t| &pass[(r + t) * MAX_BLOCK..], &FILTERS[fy]);
        }
    }
}

/// [`tap_sum`] for the values of one row of a block, `dst[j]` from `tap(t)[j]`: through
/// [`filter_lanes`] for the block widths (4, 8, 16). With it (and a plain copy of rows that need
/// no clamping) [`compensate_planes`] runs 0.87 G instructions instead of 1.84 G on two
/// predicted [256, 200, 272] frames, encoder and decoder (`valgrind --tool=callgrind`,
/// `examples/speed.rs 3`), with identical output.
#[inline]
fn filter_block<'a>(dst: &mut [f32], tap: impl Fn(usize) -> &'a [f32], filter: &[f32; TAPS]) {
    match dst.len() {
        4 => filter_lanes::<4>(dst, tap, filter),
        8 => filter_lanes::<8>(dst, tap, filter),
        16 => filter_lanes::<16>(dst, tap, filter),
        _ => {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = tap_sum(filter, |t| tap(t)[j]);
            }
        }
    }
}

/// [`tap_sum`] for `N` values at once, `dst[j]` from `tap(t)[j]`, summed in registers over the
/// taps: the same operations in the same order per value, vectorized across the values.
#[inline]
fn filter_lanes<'a, const N: usize>(
    dst: &mut [f32],
    tap: impl Fn(usize) -> &'a [f32],
    filter: &[f32; TAPS],
) {
    let mut acc = [0.0f32; N];
    for (t, &c) in filter.iter().enumerate() {
        for (a, &s) in acc.iter_mut().zip(&tap(t)[..N]) {
            *a += c * s;
        }
    }
    for (d, a) in dst.iter_mut().zip(acc) {
        *d = a / 64.0;
    }
}

/// `(Σ_t filter[t] · tap(t)) / 64`, summed from 0 in the order t = 0, 1, …: the arithmetic of
/// every interpolated value. [`filter_into`] computes the same for a whole row at once.
#[inline]
fn tap_sum(filter: &[f32; TAPS], tap: impl Fn(usize) -> f32) -> f32 {
    let mut acc = 0.0f32;
    for (t, &c) in filter.iter().enumerate() {
        acc += c * tap(t);
    }
    acc / 64.0
}

/// [`tap_sum`] for every value of a whole row of the search (`Phases`), `dst[j]` from
/// `tap(t)[j]`: runs of [`FILTER_LANES`] values through [`filter_lanes`], the rest one by one.
/// Summing each run in registers, rather than adding each tap into `dst` in turn, took the
/// search ([`refine`], criterion's `motion/256x200x272/subpel-refine-b4-p7`) from 41.4 to
/// 38.7 ms.
#[inline]
fn filter_into<'a>(dst: &mut [f32], tap: impl Fn(usize) -> &'a [f32], filter: &[f32; TAPS]) {
    let n = dst.len();
    let taps: [&[f32]; TAPS] = std::array::from_fn(|t| &tap(t)[..n]);
    let runs = n / FILTER_LANES * FILTER_LANES;
    for (j, out) in dst[..runs].chunks_exact_mut(FILTER_LANES).enumerate() {
        filter_lanes::<FILTER_LANES>(out, |t| &taps[t][j * FILTER_LANES..], filter);
    }
    for (j, d) in dst.iter_mut().enumerate().skip(runs) {
        *d = tap_sum(filter, |t| taps[t][j]);
    }
}

/// Values per run of [`filter_into`].
const FILTER_LANES: usize = 16;

/// [`motion::compensate_planes`] with a fractional field: every plane of `anchor` predicted
/// into the same plane of `out`. Blocks with a whole-feature vector are copied (through
/// `motion::compensate_planes_except`, which most blocks of a mostly static field take, and
/// which leaves the other blocks alone); the others are interpolated, and with `whole` rounded
/// to whole numbers (half away from zero), so that the values of an 8-bit tensor stay on its
/// code grid.
pub fn compensate_planes(
    anchor: &[f32],
    field: &MotionField,
    out: &mut [f32],
    whole: bool,
) -> Result<(), MotionError> {
    // Blocks with a fractional part are interpolated below; the others are copied.
    let fractional: Vec<bool> = field
        .vectors
        .iter()
        .map(|v| split(v.dy).1 != 0 || split(v.dx).1 != 0)
        .collect();
    motion::compensate_planes_except(anchor, &whole_parts(field), out, &fractional)?;
    let grid = &field.grid;
    let (plane, width) = (grid.plane_len(), grid.width);
    let moving: Vec<(BlockRect, MotionVector)> = field
        .vectors
        .iter()
        .zip(&fractional)
        .enumerate()
        .filter(|(_, (_, f))| **f)
        .map(|(b, (&v, _))| (grid.rect(b), v))
        .collect();
    if moving.is_empty() {
        return Ok(());
    }
    let mut block = [0.0f32; MAX_BLOCK * MAX_BLOCK];
    for (src, dst) in anchor.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for &(rect, v) in &moving {
            predict_block(src, grid, rect, v, &mut block);
            for r in 0..rect.height {
                let start = (rect.y + r) * width + rect.x;
                let predicted = &block[r * rect.width..(r + 1) * rect.width];
                for (d, &p) in dst[start..start + rect.width].iter_mut().zip(predicted) {
                    *d = if whole { p.round() } else { p };
                }
            }
        }
    }
    Ok(())
}

/// Refines a whole-feature field (as [`motion::estimate_shared`] finds it) to quarter
/// features: per block, the 8 half-feature neighbours of the whole vector, then the 8
/// quarter-feature neighbours of the best of those, by the SAD summed over the planes (the
/// prediction as [`compensate_planes`] makes it). A candidate replaces the best only with a
/// strictly lower cost, in a fixed order, so the result is deterministic; components stay
/// within `SUBPEL · range`. Returns the field in quarters.
///
/// A fractional vector must lower the SAD below the whole vector's by [`FRACTIONAL_MARGIN`]
/// `· step` per value (`step`: the quantizer step of the tensor). Of the planes given, only the
/// strongest [`REFINE_VALUES`] values' worth are read.
pub fn refine(
    anchor_planes: &[&[f32]],
    current_planes: &[&[f32]],
    field: &MotionField,
    range: u8,
    step: f32,
) -> Result<MotionField, MotionError> {
    field.validate()?;
    if range > MAX_FRACTIONAL_SEARCH_RANGE {
        return Err(MotionError::SearchRange(range));
    }
    let grid = &field.grid;
    motion::check_plane_pairs(grid, anchor_planes, current_planes)?;
    // At most REFINE_VALUES values: the strongest planes of those given.
    let keep = (REFINE_VALUES / grid.plane_len().max(1)).max(1);
    let (anchor_planes, current_planes): (Vec<&[f32]>, Vec<&[f32]>) = if keep < current_planes.len()
    {
        motion::strongest_planes(current_planes, keep)
            .into_iter()
            .map(|c| (anchor_planes[c], current_planes[c]))
            .unzip()
    } else {
        (anchor_planes.to_vec(), current_planes.to_vec())
    };
    let (anchor_planes, current_planes) = (&anchor_planes[..], &current_planes[..]);
    let bound = SUBPEL * i32::from(range);
    let scaled = |c: i8| (i32::from(c) * SUBPEL).clamp(-bound, bound);
    let inside = |(dy, dx): (i32, i32)| dy.abs() <= bound && dx.abs() <= bound;
    let mut phases = Phases::new(grid, field);
    // Stage 1: the whole vector and its half-feature neighbours; stage 2: the quarter-feature
    // neighbours of the best of those. Each stage sums its candidates' SADs plane by plane.
    let mut best: Vec<((i32, i32), f32)> = field
        .vectors
        .iter()
        .map(|v| ((scaled(v.dy), scaled(v.dx)), f32::INFINITY))
        .collect();
    for (stage, spacing) in [SUBPEL / 2, 1].into_iter().enumerate() {
        let candidates: Vec<Vec<(i32, i32)>> = best
            .iter()
            .map(|&(centre, _)| {
                let around = NEIGHBOURS
                    .iter()
                    .map(|&(ny, nx)| (centre.0 + ny * spacing, centre.1 + nx * spacing))
                    .filter(|&c| inside(c));
                // The first stage also measures the whole vector itself.
                (stage == 0)
                    .then_some(centre)
                    .into_iter()
                    .chain(around)
                    .collect()
            })
            .collect();
        let costs = phases.sads(anchor_planes, current_planes, &candidates);
        for (b, (best, costs)) in best.iter_mut().zip(costs).enumerate() {
            let mut cs = candidates[b].iter().zip(costs);
            if stage == 0 {
                // The whole vector's cost, less the margin a fractional vector must beat.
                let (_, whole) = cs.next().expect("the whole vector is a candidate");
                let rect = grid.rect(b);
                let values = (rect.height * rect.width * anchor_planes.len()) as f32;
                let whole = if whole.is_nan() { f32::INFINITY } else { whole };
                best.1 = whole - FRACTIONAL_MARGIN * step * values;
            }
            for (&c, cost) in cs {
                if cost < best.1 {
                    *best = (c, cost);
                }
            }
        }
    }
    Ok(MotionField {
        grid: *grid,
        vectors: best
            .into_iter()
            .map(|((dy, dx), _)| MotionVector::new(dy as i8, dx as i8))
            .collect(),
    })
}

/// Every interpolation phase of one plane at once, for the search: the value of phase
/// `(fy, fx)` at `(Y, X)` is what [`predict_block`] computes for a displaced source position
/// `(Y, X)` with fractions `(fy, fx)`, by the same operations in the same order, over every
/// position the candidates reach (the plane extended by `margin` on each side). Filtering
/// whole rows this way takes ~3× fewer operations than filtering block by block, and the
/// loops vectorize.
struct Phases {
    grid: BlockGrid,
    /// Rows above, rows below, columns left and columns right of the plane.
    margin: [usize; 4],
    /// Extended width and height.
    width: usize,
    height: usize,
    /// Per horizontal fraction, the horizontal pass of every row of the plane.
    rows: Vec<f32>,
    /// Per phase `SUBPEL · fy + fx`, the extended plane (wanted phases only).
    values: Vec<f32>,
}

impl Phases {
    /// Phases over the positions `field`'s vectors reach, give or take a feature.
    fn new(grid: &BlockGrid, field: &MotionField) -> Phases {
        let (mut lo, mut hi) = ([0isize; 2], [0isize; 2]);
        for v in &field.vectors {
            for (axis, q) in [v.dy, v.dx].into_iter().enumerate() {
                lo[axis] = lo[axis].min(isize::from(q));
                hi[axis] = hi[axis].max(isize::from(q));
            }
        }
        // A whole vector w moves to at most w ± 3/4 of a feature: whole parts w − 1 ..= w.
        let margin = [
            (1 - lo[0]) as usize,
            hi[0] as usize,
            (1 - lo[1]) as usize,
            hi[1] as usize,
        ];
        let (width, height) = (
            grid.width + margin[2] + margin[3],
            grid.height + margin[0] + margin[1],
        );
        let phases = (SUBPEL * SUBPEL) as usize;
        Phases {
            grid: *grid,
            margin,
            width,
            height,
            rows: vec![0.0; SUBPEL as usize * grid.height * width],
            values: vec![0.0; phases * height * width],
        }
    }

    /// Fills the phases `wanted` (indexed `SUBPEL · fy + fx`) of `src`.
    fn fill(&mut self, src: &[f32], wanted: &[bool]) {
        let (top, left) = (self.margin[0] as isize, self.margin[2] as isize);
        let (pw, ph) = (self.width, self.height);
        let (h, w) = (self.grid.height as isize, self.grid.width as isize);
        let sub = SUBPEL as usize;
        let mut segment = vec![0.0f32; pw + TAPS - 1];
        for fx in (0..sub).filter(|&fx| (0..sub).any(|fy| wanted[sub * fy + fx])) {
            for y in 0..self.grid.height {
                let row = &src[y * self.grid.width..(y + 1) * self.grid.width];
                let dst = &mut self.rows[(fx * self.grid.height + y) * pw..][..pw];
                if fx == 0 {
                    for (x, d) in dst.iter_mut().enumerate() {
                        *d = row[(x as isize - left).clamp(0, w - 1) as usize];
                    }
                    continue;
                }
                for (m, s) in segment.iter_mut().enumerate() {
                    let x = m as isize - left + FIRST_TAP;
                    *s = row[x.clamp(0, w - 1) as usize];
                }
                filter_into(dst, |t| &segment[t..], &FILTERS[fx]);
            }
        }
        let row_of = |y: isize| y.clamp(0, h - 1) as usize;
        for (phase, _) in wanted.iter().enumerate().filter(|(_, w)| **w) {
            let (fy, fx) = (phase / sub, phase % sub);
            let rows = &self.rows[fx * self.grid.height * pw..(fx + 1) * self.grid.height * pw];
            let plane = &mut self.values[phase * ph * pw..(phase + 1) * ph * pw];
            for (yp, dst) in plane.chunks_exact_mut(pw).enumerate() {
                let y = yp as isize - top;
                if fy == 0 {
                    dst.copy_from_slice(&rows[row_of(y) * pw..][..pw]);
                    continue;
                }
                let tap = |t: usize| &rows[row_of(y + FIRST_TAP + t as isize) * pw..][..pw];
                filter_into(dst, tap, &FILTERS[fy]);
            }
        }
    }

    /// Per block, the SAD of each of its candidate vectors (in quarters) summed over the
    /// planes.
    fn sads(
        &mut self,
        anchor_planes: &[&[f32]],
        current_planes: &[&[f32]],
        candidates: &[Vec<(i32, i32)>],
    ) -> Vec<Vec<f32>> {
        let sub = SUBPEL as usize;
        let (pw, ph) = (self.width, self.height);
        let grid = self.grid;
        let mut wanted = vec![false; sub * sub];
        // Per block its rectangle, and per candidate where its prediction starts in the phases.
        let reads: Vec<(BlockRect, Vec<usize>)> = candidates
            .iter()
            .enumerate()
            .map(|(b, cands)| {
                let rect = grid.rect(b);
                let starts = cands
                    .iter()
                    .map(|&(dy, dx)| {
                        let (iy, fy) = split(dy as i8);
                        let (ix, fx) = split(dx as i8);
                        wanted[sub * fy + fx] = true;
                        let y = (rect.y + self.margin[0]) as isize + iy;
                        let x = (rect.x + self.margin[2]) as isize + ix;
                        (sub * fy + fx) * ph * pw + y as usize * pw + x as usize
                    })
                    .collect();
                (rect, starts)
            })
            .collect();
        let mut costs: Vec<Vec<f32>> = candidates.iter().map(|c| vec![0.0; c.len()]).collect();
        for (a, c) in anchor_planes.iter().zip(current_planes) {
            self.fill(a, &wanted);
            for ((rect, starts), costs) in reads.iter().zip(&mut costs) {
                // The block SADs go through motion's kernel, lanes summed pairwise: they can
                // differ from a raster-order sum in their last bits, which only the encoder's
                // choice of vector sees. With the raster-order sum this search ran 1.29 G
                // instructions on two predicted [256, 200, 272] frames, with the kernel 0.98 G
                // (callgrind); on the 40 recorded NanoDet maps of vtest.avi and of the panning
                // crop (qualities 1.4, 2, 4) and on `examples/speed.rs`'s stream, not one choice
                // changed.
                let q = &c[rect.y * grid.width + rect.x..];
                for (&start, cost) in starts.iter().zip(costs.iter_mut()) {
                    *cost += motion::block_sad(
                        &self.values[start..],
                        pw,
                        q,
                        grid.width,
                        *rect,
                        0.0,
                        f32::INFINITY,
                    );
                }
            }
        }
        costs
    }
}

/// The 8 neighbours tested around a centre, in raster order.
const NEIGHBOURS: [(i32, i32); 8] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(block: usize, h: usize, w: usize) -> BlockGrid {
        BlockGrid::new(block, h, w).unwrap()
    }

    /// A linear ramp, shifted.
    fn ramp(h: usize, w: usize, shift_y: f32, shift_x: f32) -> Vec<f32> {
        (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f32 + shift_y, (i % w) as f32 + shift_x);
                0.75 * y + 0.5 * x
            })
            .collect()
    }

    #[test]
    fn whole_vectors_copy_exactly_as_the_integer_compensation() {
        let g = grid(4, 13, 11);
        let anchor: Vec<f32> = (0..2 * 13 * 11).map(|i| (i as f32 * 0.37).sin()).collect();
        let vectors: Vec<MotionVector> = (0..g.len())
            .map(|b| MotionVector::new((b as i8 % 3 - 1) * 4, (b as i8 % 5 - 2) * 4))
            .collect();
        let fractional = MotionField { grid: g, vectors };
        let mut out = vec![0.0; anchor.len()];
        compensate_planes(&anchor, &fractional, &mut out, false).unwrap();
        let mut expected = vec![0.0; anchor.len()];
        motion::compensate_planes(&anchor, &whole_parts(&fractional), &mut expected).unwrap();
        assert_eq!(out, expected);
        assert!(
            whole_parts(&fractional)
                .vectors
                .iter()
                .any(|v| !v.is_zero())
        );
    }

    #[test]
    fn a_half_vector_interpolates_a_ramp_exactly_inside_the_plane() {
        let g = grid(4, 16, 16);
        let anchor = ramp(16, 16, 0.0, 0.0);
        // (dy, dx) = (0.5, -0.5) features: where every tap is inside the plane, the symmetric
        // half-feature filter reproduces the shifted ramp.
        let field = MotionField {
            grid: g,
            vectors: vec![MotionVector::new(2, -2); g.len()],
        };
        let mut out = vec![0.0; anchor.len()];
        compensate_planes(&anchor, &field, &mut out, false).unwrap();
        let shifted = ramp(16, 16, 0.5, -0.5);
        for y in 3..=11 {
            for x in 4..=12 {
                let (a, b) = (out[y * 16 + x], shifted[y * 16 + x]);
                assert!((a - b).abs() < 1e-4, "({y}, {x}): {a} vs {b}");
            }
        }
    }

    #[test]
    fn quarter_vectors_keep_detail_that_bilinear_interpolation_smooths_away() {
        // A pattern with detail at a third of the sampling rate, moved by (0.25, 0.75).
        let n = 24;
        let g = grid(4, n, n);
        let f = |y: f32, x: f32| (2.1 * y).sin() * (1.9 * x).cos();
        let anchor: Vec<f32> = (0..n * n)
            .map(|i| f((i / n) as f32, (i % n) as f32))
            .collect();
        let field = MotionField {
            grid: g,
            vectors: vec![MotionVector::new(1, 3); g.len()],
        };
        let mut out = vec![0.0; anchor.len()];
        compensate_planes(&anchor, &field, &mut out, false).unwrap();
        let at = |y: usize, x: usize| anchor[y * n + x];
        let (mut filtered, mut bilinear) = (0.0f32, 0.0f32);
        for y in 4..n - 5 {
            for x in 4..n - 5 {
                let truth = f(y as f32 + 0.25, x as f32 + 0.75);
                let top = 0.25 * at(y, x) + 0.75 * at(y, x + 1);
                let bottom = 0.25 * at(y + 1, x) + 0.75 * at(y + 1, x + 1);
                let linear = 0.75 * top + 0.25 * bottom;
                filtered += (out[y * n + x] - truth).powi(2);
                bilinear += (linear - truth).powi(2);
            }
        }
        assert!(
            filtered < 0.25 * bilinear,
            "squared error {filtered} against bilinear {bilinear}"
        );
    }

    #[test]
    fn refinement_finds_a_sub_feature_shift() {
        let (h, w) = (16, 16);
        let g = grid(8, h, w);
        // A smooth two-dimensional pattern, and the same pattern moved by (0.5, 0.25) features.
        let f = |y: f32, x: f32| (0.4 * y).sin() + (0.3 * x).cos() + 0.05 * x * y;
        let anchor: Vec<f32> = (0..h * w)
            .map(|i| f((i / w) as f32, (i % w) as f32))
            .collect();
        let current: Vec<f32> = (0..h * w)
            .map(|i| f((i / w) as f32 + 0.5, (i % w) as f32 + 0.25))
            .collect();
        let whole = MotionField::zero(g);
        let refined = refine(&[&anchor], &[&current], &whole, 7, 0.0).unwrap();
        // The top-left block is away from the clamped bottom and right edges.
        assert_eq!(refined.vectors[0], MotionVector::new(2, 1));
        // Its prediction error is far below the whole-feature one.
        let sad = |field: &MotionField| {
            let mut out = vec![0.0; h * w];
            compensate_planes(&anchor, field, &mut out, false).unwrap();
            (0..8)
                .flat_map(|y| (0..8).map(move |x| y * w + x))
                .map(|i| (out[i] - current[i]).abs())
                .sum::<f32>()
        };
        let whole_quarters = MotionField::zero(g);
        assert!(sad(&refined) * 4.0 < sad(&whole_quarters));
    }

    #[test]
    fn refinement_keeps_components_within_the_range() {
        let g = grid(4, 8, 8);
        let anchor: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let current: Vec<f32> = (0..64).map(|i| 100.0 - i as f32).collect();
        let whole = MotionField {
            grid: g,
            vectors: vec![MotionVector::new(1, -1); g.len()],
        };
        let refined = refine(&[&anchor], &[&current], &whole, 1, 0.0).unwrap();
        for v in &refined.vectors {
            assert!(v.dy.abs() <= 4 && v.dx.abs() <= 4, "{v:?}");
        }
        assert!(
            refine(
                &[&anchor],
                &[&current],
                &whole,
                MAX_FRACTIONAL_SEARCH_RANGE + 1,
                0.0
            )
            .is_err()
        );
    }

    #[test]
    fn a_nan_reference_never_wins_and_never_panics() {
        let g = grid(4, 8, 8);
        let mut anchor: Vec<f32> = (0..64).map(|i| i as f32).collect();
        anchor[9] = f32::NAN;
        let current = anchor.clone();
        let refined = refine(&[&anchor], &[&current], &MotionField::zero(g), 3, 0.0).unwrap();
        let mut out = vec![0.0; 64];
        compensate_planes(&anchor, &refined, &mut out, false).unwrap();
        assert_eq!(refined.vectors.len(), g.len());
    }
}
