//! Reconstruction shared by the encoder and the decoder. The encoder computes every
//! reconstruction with these same functions, which is what makes its references identical to
//! the decoder's by construction.

use super::CodecError;
use super::bitstream::TensorDesc;
use crate::entropy::{unzigzag, zigzag};
use crate::frame::{FeatureFrame, Shape, Tensor, TensorData};
use crate::motion::MotionError;
use crate::motion::{self, BlockGrid, MotionField, MotionVector, MvSharing};
use crate::quant::{self, QuantParams};
use std::ops::Range;

/// One reconstructed tensor: its descriptor, its quantizer and its N-bit codes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefTensor {
    pub desc: TensorDesc,
    /// 1 (per tensor) or C (per channel) entries.
    pub params: Vec<QuantParams>,
    /// C·H·W codes, channel-major.
    pub codes: Vec<u16>,
}

impl RefTensor {
    pub fn params_for(&self, c: usize) -> &QuantParams {
        params_for(&self.params, c)
    }

    /// The dequantized values, (q − z)·s per channel.
    pub fn dequantized(&self) -> Vec<f32> {
        dequantize(&self.codes, &self.params, self.desc.shape)
    }

    /// The decoder's output tensor: f32 values, or the model's 8-bit codes.
    pub fn to_tensor(&self) -> Tensor {
        let shape = self.desc.shape;
        let data = match self.desc.model8 {
            None => TensorData::F32(self.dequantized()),
            Some((scale8, zero_point8)) => {
                let plane = shape.plane_len().max(1);
                let mut codes8 = Vec::with_capacity(self.codes.len());
                let mut chunk8 = Vec::with_capacity(plane);
                for (c, chunk) in self.codes.chunks(plane).enumerate() {
                    let p = self.params_for(c);
                    if chunk.len() > p.max_code() as usize {
                        // Table lookup pays off only when the plane is larger than the table.
                        quant::codes_to_8bit(chunk, p, scale8, zero_point8, &mut chunk8);
                        codes8.extend_from_slice(&chunk8);
                    } else {
                        codes8.extend(chunk.iter().map(|&q| {
                            quant::requantize_to_8bit(q.min(p.max_code()), p, scale8, zero_point8)
                        }));
                    }
                }
                TensorData::U8 {
                    codes: codes8,
                    scale: scale8,
                    zero_point: zero_point8,
                }
            }
        };
        Tensor {
            name: self.desc.name.clone(),
            shape,
            data,
        }
    }
}

pub(crate) fn params_for(params: &[QuantParams], c: usize) -> &QuantParams {
    if params.len() == 1 {
        &params[0]
    } else {
        &params[c]
    }
}

pub(crate) fn dequantize(codes: &[u16], params: &[QuantParams], shape: Shape) -> Vec<f32> {
    let plane = shape.plane_len().max(1);
    let mut out = Vec::with_capacity(codes.len());
    for (c, chunk) in codes.chunks(plane).enumerate() {
        let p = params_for(params, c);
        out.extend(chunk.iter().map(|&q| p.dequantize(q)));
    }
    out
}

/// A reconstructed frame; the reference of later units.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefFrame {
    pub stream_id: u16,
    pub index: u64,
    pub pts_ns: Option<u64>,
    pub tensors: Vec<RefTensor>,
}

impl RefFrame {
    pub fn to_frame(&self) -> FeatureFrame {
        FeatureFrame::new(
            self.index,
            self.pts_ns,
            self.tensors.iter().map(RefTensor::to_tensor).collect(),
        )
    }
}

/// Code → symbol with the quantized zero at symbol 0: (q − z) mod 2^N.
pub(crate) fn rotate(codes: &[u16], params: &[QuantParams], shape: Shape, bits: u8) -> Vec<u16> {
    let modulus = 1i64 << bits;
    let plane = shape.plane_len().max(1);
    let mut out = Vec::with_capacity(codes.len());
    for (c, chunk) in codes.chunks(plane).enumerate() {
        let z = params_for(params, c).zero_point as i64;
        out.extend(
            chunk
                .iter()
                .map(|&q| (q as i64 - z).rem_euclid(modulus) as u16),
        );
    }
    out
}

/// Inverse of [`rotate`]: (symbol + z) mod 2^N.
pub(crate) fn unrotate(symbols: &mut [u16], params: &[QuantParams], shape: Shape, bits: u8) {
    let modulus = 1i64 << bits;
    let plane = shape.plane_len().max(1);
    for (c, chunk) in symbols.chunks_mut(plane).enumerate() {
        let z = params_for(params, c).zero_point as i64;
        for s in chunk {
            *s = (*s as i64 + z).rem_euclid(modulus) as u16;
        }
    }
}

/// Number of motion fields of a tensor: C per channel, 1 shared.
pub(crate) fn field_count(sharing: MvSharing, shape: Shape) -> usize {
    match sharing {
        MvSharing::PerChannel => shape.channels,
        MvSharing::Shared => 1,
    }
}

pub(crate) fn field_for(fields: &[MotionField], c: usize) -> &MotionField {
    if fields.len() == 1 {
        &fields[0]
    } else {
        &fields[c]
    }
}

/// Motion vector symbols: per field, per block, zigzag(dy) then zigzag(dx).
pub(crate) fn mv_symbols(fields: &[MotionField]) -> Vec<u16> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| 2 * f.vectors.len()).sum());
    for f in fields {
        for v in &f.vectors {
            out.push(zigzag(i32::from(v.dy)));
            out.push(zigzag(i32::from(v.dx)));
        }
    }
    out
}

/// Inverse of [`mv_symbols`]; every component must lie within ±`range`.
pub(crate) fn fields_from_symbols(
    symbols: &[u16],
    grid: &BlockGrid,
    count: usize,
    range: u8,
) -> Result<Vec<MotionField>, CodecError> {
    let per_field = 2 * grid.len();
    if symbols.len() != per_field * count {
        return Err(CodecError::Invalid("motion vector count mismatch".into()));
    }
    let mut fields = Vec::with_capacity(count);
    for chunk in symbols.chunks(per_field.max(1)).take(count) {
        let mut vectors = Vec::with_capacity(grid.len());
        for pair in chunk.chunks_exact(2) {
            let dy = unzigzag(pair[0]);
            let dx = unzigzag(pair[1]);
            if dy.unsigned_abs() > range as u32 || dx.unsigned_abs() > range as u32 {
                return Err(CodecError::Invalid(format!(
                    "motion vector ({dy}, {dx}) outside the search range {range}"
                )));
            }
            vectors.push(MotionVector {
                dy: dy as i8,
                dx: dx as i8,
            });
        }
        fields.push(MotionField {
            grid: *grid,
            vectors,
        });
    }
    Ok(fields)
}

/// Motion estimation of one tensor: compares the dequantized reference with the current float
/// map (thesis Fig. 3.2, steps 4–7).
pub(crate) fn estimate(
    reference: &[f32],
    current: &[f32],
    shape: Shape,
    grid: &BlockGrid,
    range: u8,
    method: motion::SearchMethod,
    sharing: MvSharing,
) -> Result<Vec<MotionField>, CodecError> {
    let plane = shape.plane_len();
    let fields = match sharing {
        MvSharing::PerChannel => reference
            .chunks(plane)
            .zip(current.chunks(plane))
            .map(|(a, b)| motion::estimate_plane(a, b, grid, range, method))
            .collect::<Result<Vec<_>, _>>(),
        MvSharing::Shared => {
            let a: Vec<&[f32]> = reference.chunks(plane).collect();
            let b: Vec<&[f32]> = current.chunks(plane).collect();
            motion::estimate_shared(&a, &b, grid, range, method).map(|f| vec![f])
        }
    };
    fields.map_err(motion_error)
}

/// Motion arguments are validated when units are parsed; an error here means a unit (or a
/// frame) the motion module refuses, reported as an invalid unit.
pub(crate) fn motion_error(e: MotionError) -> CodecError {
    CodecError::Invalid(format!("motion: {e}"))
}

/// Uni/bi prediction: the anchor's codes moved by the vectors (compensation copies values, so
/// it is exact in the code domain).
pub(crate) fn compensate_codes(
    reference: &RefTensor,
    fields: &[MotionField],
) -> Result<Vec<u16>, CodecError> {
    let plane = reference.desc.shape.plane_len();
    let mut out = Vec::with_capacity(reference.codes.len());
    let mut src = vec![0f32; plane];
    let mut dst = vec![0f32; plane];
    for (c, chunk) in reference.codes.chunks(plane).enumerate() {
        for (s, &q) in src.iter_mut().zip(chunk) {
            *s = q as f32;
        }
        motion::compensate_plane(&src, field_for(fields, c), &mut dst).map_err(motion_error)?;
        out.extend(dst.iter().map(|&v| v as u16));
    }
    Ok(out)
}

/// Closed-loop prediction in the code domain: q_p = quantize(compensate(reference values))
/// with the current unit's quantizer.
pub(crate) fn predict_codes(
    reference_values: &[f32],
    shape: Shape,
    fields: &[MotionField],
    params: &[QuantParams],
) -> Result<Vec<u16>, CodecError> {
    let plane = shape.plane_len();
    let mut out = Vec::with_capacity(reference_values.len());
    let mut dst = vec![0f32; plane];
    for (c, chunk) in reference_values.chunks(plane).enumerate() {
        motion::compensate_plane(chunk, field_for(fields, c), &mut dst).map_err(motion_error)?;
        let start = out.len();
        out.resize(start + plane, 0);
        params_for(params, c).quantize_slice(&dst, &mut out[start..]);
    }
    Ok(out)
}

/// Rows and columns of block `b` of the grid (edge blocks are partial).
pub(crate) fn block_ranges(grid: &BlockGrid, b: usize) -> (Range<usize>, Range<usize>) {
    let r = grid.rect(b);
    (r.y..r.y + r.height, r.x..r.x + r.width)
}

/// Index of the block flag of (channel, block).
pub(crate) fn flag_index(sharing: MvSharing, blocks: usize, c: usize, b: usize) -> usize {
    match sharing {
        MvSharing::PerChannel => c * blocks + b,
        MvSharing::Shared => b,
    }
}

/// Residual symbols expected for the given block flags.
pub(crate) fn residual_count(
    flags: &[u16],
    grid: &BlockGrid,
    shape: Shape,
    sharing: MvSharing,
) -> usize {
    let blocks = grid.len();
    let mut n = 0;
    for c in 0..shape.channels {
        for b in 0..blocks {
            if flags[flag_index(sharing, blocks, c, b)] != 0 {
                let (ys, xs) = block_ranges(grid, b);
                n += ys.len() * xs.len();
            }
        }
    }
    n
}

/// Adds the residuals of the coded blocks to the prediction: q = clamp(q_p + r, 0, 2^N − 1).
/// Order: channel, block (row-major), element (row-major).
pub(crate) fn apply_residuals(
    predicted: &mut [u16],
    flags: &[u16],
    residual_symbols: &[u16],
    grid: &BlockGrid,
    shape: Shape,
    sharing: MvSharing,
    max_code: u16,
) {
    let blocks = grid.len();
    let plane = shape.plane_len();
    let mut next = residual_symbols.iter();
    for c in 0..shape.channels {
        for b in 0..blocks {
            if flags[flag_index(sharing, blocks, c, b)] == 0 {
                continue;
            }
            let (ys, xs) = block_ranges(grid, b);
            for y in ys {
                for x in xs.clone() {
                    let i = c * plane + y * shape.width + x;
                    let r = next.next().map_or(0, |&s| unzigzag(s));
                    predicted[i] = (predicted[i] as i32 + r).clamp(0, max_code as i32) as u16;
                }
            }
        }
    }
}

/// Encoder side: residual r = q_x − q_p with the dead zone, the block flags and the residual
/// symbols in bitstream order.
pub(crate) fn residuals(
    current: &[u16],
    predicted: &[u16],
    grid: &BlockGrid,
    shape: Shape,
    sharing: MvSharing,
    dead_zone: u16,
) -> (Vec<u16>, Vec<u16>) {
    let blocks = grid.len();
    let plane = shape.plane_len();
    let r: Vec<i32> = current
        .iter()
        .zip(predicted)
        .map(|(&x, &p)| {
            let r = x as i32 - p as i32;
            if r.unsigned_abs() <= dead_zone as u32 {
                0
            } else {
                r
            }
        })
        .collect();
    let nflags = match sharing {
        MvSharing::PerChannel => shape.channels * blocks,
        MvSharing::Shared => blocks,
    };
    let mut flags = vec![0u16; nflags];
    for c in 0..shape.channels {
        for b in 0..blocks {
            let (ys, xs) = block_ranges(grid, b);
            let nonzero = ys
                .clone()
                .any(|y| xs.clone().any(|x| r[c * plane + y * shape.width + x] != 0));
            if nonzero {
                flags[flag_index(sharing, blocks, c, b)] = 1;
            }
        }
    }
    let mut symbols = Vec::new();
    for c in 0..shape.channels {
        for b in 0..blocks {
            if flags[flag_index(sharing, blocks, c, b)] == 0 {
                continue;
            }
            let (ys, xs) = block_ranges(grid, b);
            for y in ys {
                for x in xs.clone() {
                    symbols.push(zigzag(r[c * plane + y * shape.width + x]));
                }
            }
        }
    }
    (flags, symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(scale: f32, zero_point: i32, bits: u8) -> QuantParams {
        QuantParams {
            scale,
            zero_point,
            bits,
        }
    }

    #[test]
    fn rotation_is_a_bijection_with_zero_point_at_symbol_zero() {
        let shape = Shape::new(3, 1, 16);
        for bits in [2u8, 4] {
            let params = vec![qp(1.0, 0, bits), qp(1.0, 3, bits), qp(1.0, 1 << bits, bits)];
            let codes: Vec<u16> = (0..48).map(|i| (i % (1 << bits)) as u16).collect();
            let mut symbols = rotate(&codes, &params, shape, bits);
            assert!(symbols.iter().all(|&s| s < 1 << bits));
            assert_eq!(symbols[16 + 3], 0, "channel 1's zero point is symbol 0");
            unrotate(&mut symbols, &params, shape, bits);
            assert_eq!(symbols, codes);
        }
    }

    #[test]
    fn residuals_without_dead_zone_restore_the_current_codes() {
        let shape = Shape::new(2, 7, 9);
        let grid = BlockGrid::new(4, 7, 9).unwrap();
        let current: Vec<u16> = (0..shape.len()).map(|i| ((i * 7) % 256) as u16).collect();
        let mut predicted: Vec<u16> = (0..shape.len()).map(|i| ((i * 3) % 256) as u16).collect();
        // Make one block of channel 1 exact so it is skipped.
        for y in 0..4 {
            for x in 0..4 {
                let i = 63 + y * 9 + x;
                predicted[i] = current[i];
            }
        }
        for sharing in [MvSharing::PerChannel, MvSharing::Shared] {
            let (flags, symbols) = residuals(&current, &predicted, &grid, shape, sharing, 0);
            assert_eq!(residual_count(&flags, &grid, shape, sharing), symbols.len());
            if sharing == MvSharing::PerChannel {
                assert_eq!(flags[grid.len()], 0, "exact block skipped");
                assert_eq!(flags.iter().filter(|&&f| f == 0).count(), 1);
            }
            let mut rec = predicted.clone();
            apply_residuals(&mut rec, &flags, &symbols, &grid, shape, sharing, 255);
            assert_eq!(rec, current);
        }
    }
}
