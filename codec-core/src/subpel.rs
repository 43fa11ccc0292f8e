//! Fractional motion: vectors in quarters of a feature, with bilinear prediction (the adaptive
//! mode's predicted units with header flag bit5, `BITSTREAM.md`).
//!
//! A moving camera shifts the whole feature map by a fraction of a feature per frame (a pan of
//! 3 pixels per frame is 0.36 of a feature at stride 8), which whole-feature vectors cannot
//! follow: on 20 frames of a panning crop of vtest.avi (NanoDet stage2, 8×8 blocks, one field
//! shared by the channels) the best whole-feature vectors left 36% of the frame's energy as
//! prediction error, half-feature vectors 25% and quarter-feature vectors 23%; on the static
//! camera of vtest.avi itself 8.3%, 6.8% and 6.3% (the interpolation also averages out noise).
//!
//! A component `q` of a [`MotionVector`] then means `q / SUBPEL` features: the prediction of
//! `(y, x)` is the anchor at `(y + qy/4, x + qx/4)`, interpolated bilinearly between the four
//! surrounding features (each clamped to the plane as in [`motion::compensate_plane`]).
//! [`bilinear`] is the one formula, shared by compensation and the search, evaluated in the
//! same order on every machine (IEEE f32, no fused multiply-add), so that the encoder predicts
//! exactly what the decoder reconstructs. A block whose vector is a whole number of features
//! is a plain copy, bit for bit.

use crate::motion::{self, BlockGrid, BlockRect, MotionError, MotionField, MotionVector};

/// How much a fractional vector must gain over the whole one, in quantizer steps per value of
/// the block ([`refine`]). Interpolation also smooths the reference's coding noise, so on a
/// still scene a fractional vector looks a little better than the copy, costs vector bits and
/// blurs the reference frame after frame. On 40 recorded NanoDet stage2 frames at quality 2
/// (`examples/recorded.rs`), predicted units against whole-feature vectors:
///
/// | margin | panning crop: bytes, SNR | vtest.avi: bytes, SNR |
/// |---|---|---|
/// | whole vectors | 13733, 7.33 dB | 2548, 9.84 dB |
/// | 0 | 7878, 6.91 dB | 2113, 9.68 dB |
/// | 0.005 | 8124, 6.99 dB | 2093, 9.77 dB |
/// | **0.01** | 8404, 7.06 dB | 2107, 9.78 dB |
/// | 0.03 | 9748, 7.25 dB | 2216, 9.73 dB |
/// | 0.06 | 11624, 7.31 dB | 2394, 9.80 dB |
pub const FRACTIONAL_MARGIN: f32 = 0.01;

/// Steps of a feature: vector components count quarters of a feature.
pub const SUBPEL: i32 = 4;
/// The largest search range with fractional vectors: components are `i8` and reach
/// `SUBPEL · range`.
pub const MAX_FRACTIONAL_SEARCH_RANGE: u8 = (i8::MAX as i32 / SUBPEL) as u8;

/// The largest block edge (a block's taps live on the stack).
const MAX_BLOCK: usize = motion::BLOCK_SIZES[motion::BLOCK_SIZES.len() - 1];

/// Interpolates between four neighbours with weights `wx`, `wy` in [0, 1): horizontal first,
/// then vertical. A zero weight returns its first operand exactly.
#[inline]
pub fn bilinear(a00: f32, a01: f32, a10: f32, a11: f32, wx: f32, wy: f32) -> f32 {
    let top = if wx == 0.0 {
        a00
    } else {
        a00 * (1.0 - wx) + a01 * wx
    };
    if wy == 0.0 {
        return top;
    }
    let bottom = if wx == 0.0 {
        a10
    } else {
        a10 * (1.0 - wx) + a11 * wx
    };
    top * (1.0 - wy) + bottom * wy
}

/// Whole part and weight of a fractional component (`q = SUBPEL · whole + fraction`).
#[inline]
fn split(q: i8) -> (isize, f32) {
    let q = i32::from(q);
    (
        q.div_euclid(SUBPEL) as isize,
        q.rem_euclid(SUBPEL) as f32 / SUBPEL as f32,
    )
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

/// Where one block's prediction reads: per row its two source rows, per column its two source
/// columns (clamped to the plane), and the weights.
struct Taps {
    rows: [(usize, usize); MAX_BLOCK],
    cols: [(usize, usize); MAX_BLOCK],
    wy: f32,
    wx: f32,
}

impl Taps {
    fn new(grid: &BlockGrid, rect: BlockRect, v: MotionVector) -> Taps {
        let ((iy, wy), (ix, wx)) = (split(v.dy), split(v.dx));
        let (h, w) = (grid.height as isize, grid.width as isize);
        let mut taps = Taps {
            rows: [(0, 0); MAX_BLOCK],
            cols: [(0, 0); MAX_BLOCK],
            wy,
            wx,
        };
        for r in 0..rect.height {
            let y = rect.y as isize + r as isize + iy;
            taps.rows[r] = (y.clamp(0, h - 1) as usize, (y + 1).clamp(0, h - 1) as usize);
        }
        for j in 0..rect.width {
            let x = rect.x as isize + j as isize + ix;
            taps.cols[j] = (x.clamp(0, w - 1) as usize, (x + 1).clamp(0, w - 1) as usize);
        }
        taps
    }

    #[inline]
    fn sample(&self, anchor: &[f32], width: usize, r: usize, j: usize) -> f32 {
        let ((y0, y1), (x0, x1)) = (self.rows[r], self.cols[j]);
        bilinear(
            anchor[y0 * width + x0],
            anchor[y0 * width + x1],
            anchor[y1 * width + x0],
            anchor[y1 * width + x1],
            self.wx,
            self.wy,
        )
    }
}

/// [`motion::compensate_planes`] with a fractional field: every plane of `anchor` predicted
/// into the same plane of `out`. Blocks with a whole-feature vector are copied (through
/// `compensate_planes`, which most blocks of a mostly static field take); the others are
/// interpolated, and with `whole` rounded to whole numbers (half away from zero), so that the
/// values of an 8-bit tensor stay on its code grid.
pub fn compensate_planes(
    anchor: &[f32],
    field: &MotionField,
    out: &mut [f32],
    whole: bool,
) -> Result<(), MotionError> {
    motion::compensate_planes(anchor, &whole_parts(field), out)?;
    let grid = &field.grid;
    let (plane, width) = (grid.plane_len(), grid.width);
    let moving: Vec<(BlockRect, Taps)> = field
        .vectors
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            i32::from(v.dy).rem_euclid(SUBPEL) != 0 || i32::from(v.dx).rem_euclid(SUBPEL) != 0
        })
        .map(|(b, &v)| {
            let rect = grid.rect(b);
            (rect, Taps::new(grid, rect, v))
        })
        .collect();
    if moving.is_empty() {
        return Ok(());
    }
    for (src, dst) in anchor.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for (rect, taps) in &moving {
            for r in 0..rect.height {
                let start = (rect.y + r) * width + rect.x;
                for (j, d) in dst[start..start + rect.width].iter_mut().enumerate() {
                    let v = taps.sample(src, width, r, j);
                    *d = if whole { v.round() } else { v };
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
/// `· step` per value (`step`: the quantizer step of the tensor).
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
    let bound = SUBPEL * i32::from(range);
    let width = grid.width;
    let cost = |rect: BlockRect, v: MotionVector, limit: f32| {
        let taps = Taps::new(grid, rect, v);
        let mut total = 0.0f32;
        for (a, c) in anchor_planes.iter().zip(current_planes) {
            for r in 0..rect.height {
                let start = (rect.y + r) * width + rect.x;
                for (j, &x) in c[start..start + rect.width].iter().enumerate() {
                    total += (x - taps.sample(a, width, r, j)).abs();
                }
            }
            if total > limit {
                break;
            }
        }
        total
    };
    let mut vectors = Vec::with_capacity(field.vectors.len());
    for (b, v) in field.vectors.iter().enumerate() {
        let rect = grid.rect(b);
        let scaled = |c: i8| (i32::from(c) * SUBPEL).clamp(-bound, bound);
        let mut best = (scaled(v.dy), scaled(v.dx));
        let mut best_cost = cost(
            rect,
            MotionVector::new(best.0 as i8, best.1 as i8),
            f32::MAX,
        );
        if best_cost.is_nan() {
            best_cost = f32::INFINITY;
        }
        let values = (rect.height * rect.width * anchor_planes.len()) as f32;
        best_cost -= FRACTIONAL_MARGIN * step * values;
        for step in [SUBPEL / 2, 1] {
            let centre = best;
            for (ny, nx) in NEIGHBOURS {
                let (dy, dx) = (centre.0 + ny * step, centre.1 + nx * step);
                if dy.abs() > bound || dx.abs() > bound {
                    continue;
                }
                let c = cost(rect, MotionVector::new(dy as i8, dx as i8), best_cost);
                if c < best_cost {
                    (best, best_cost) = ((dy, dx), c);
                }
            }
        }
        vectors.push(MotionVector::new(best.0 as i8, best.1 as i8));
    }
    Ok(MotionField {
        grid: *grid,
        vectors,
    })
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

    /// A smooth plane: bilinear interpolation of a linear ramp is exact.
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
    fn a_quarter_vector_interpolates_a_ramp_exactly_inside_the_plane() {
        let g = grid(4, 12, 12);
        let anchor = ramp(12, 12, 0.0, 0.0);
        // (dy, dx) = (0.25, -0.75) features: inside the plane the prediction is the ramp shifted.
        let field = MotionField {
            grid: g,
            vectors: vec![MotionVector::new(1, -3); g.len()],
        };
        let mut out = vec![0.0; anchor.len()];
        compensate_planes(&anchor, &field, &mut out, false).unwrap();
        let shifted = ramp(12, 12, 0.25, -0.75);
        for y in 0..11 {
            for x in 1..12 {
                let (a, b) = (out[y * 12 + x], shifted[y * 12 + x]);
                assert!((a - b).abs() < 1e-5, "({y}, {x}): {a} vs {b}");
            }
        }
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
