//! Uniform affine quantization of feature maps to N = 2..=8 bits (thesis eq. 3.1, 3.6–3.7, 3.16).
//!
//! `q = clamp(round(x / s) + z, 0, 2^N - 1)`, `x̂ = (q - z) · s`, with an *integer* zero point `z`
//! so that 0.0 (the most frequent activation after a ReLU, and what padding and empty regions
//! are made of) is represented exactly: a grid without an exact zero turns every zero into a
//! small nonzero value, which the detector head reads as faint evidence everywhere.
//!
//! Parameters come from
//! - a MinMax observer over the tensor or over each channel ([`QuantizerMode::PerTensorMinMax`],
//!   [`QuantizerMode::PerChannelMinMax`]),
//! - caller-supplied calibrated ranges keyed by tensor name ([`QuantizerMode::Calibrated`]),
//! - or, for the u8 tensors of an 8-bit quantized model, the model's own scale and zero point
//!   requantized to N bits ([`QuantizerMode::Model8bit`]). The thesis derives this with the
//!   exponent the wrong way round (eq. 3.12–3.15); fewer bits means a coarser step:
//!   `s_N = s_8 · 2^(8−N)`, `z_N = round(z_8 · 2^(N−8))`.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::frame::{Shape, Tensor, TensorData};

/// Fewest bits per code the quantizer accepts.
pub const MIN_BITS: u8 = 2;
/// Most bits per code the quantizer accepts (the codes of 8-bit models are the upper bound).
pub const MAX_BITS: u8 = 8;
/// Most bits per code of the mosaic quantizer (`crate::tile`, the `picture_*` constructors):
/// the samples of 10-bit video (HEVC Main 10, H.264 High 10), the depth MPEG FCM codes
/// features at. The codec's own quantizers stop at [`MAX_BITS`].
pub const MAX_PICTURE_BITS: u8 = 10;

/// Smallest scale a MinMax or calibrated range produces (PyTorch's observers use the same
/// float32 epsilon): keeps `1/scale` finite for all-zero and near-constant tensors.
pub const MIN_SCALE: f32 = f32::EPSILON;

/// Range bounds are clamped to ±this before computing a scale, so that `max - min` and the
/// scale stay finite even for infinite inputs.
const RANGE_LIMIT: f32 = f32::MAX / 4.0;

/// Errors from choosing quantization parameters.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    #[error("unsupported quantizer bit depth {0} (valid: {MIN_BITS}..={MAX_BITS})")]
    UnsupportedBits(u8),
    #[error("unsupported picture bit depth {0} (valid: {MIN_BITS}..={MAX_PICTURE_BITS})")]
    UnsupportedPictureBits(u8),
    #[error("no calibrated range for tensor '{tensor}'")]
    MissingCalibration { tensor: String },
    #[error("invalid calibrated range for tensor '{tensor}': {detail}")]
    InvalidCalibration { tensor: String, detail: String },
    #[error(
        "tensor '{tensor}' is f32: the model8bit quantizer needs the u8 codes of an 8-bit quantized model"
    )]
    NotQuantized { tensor: String },
    #[error("invalid 8-bit model quantization parameters: {0}")]
    InvalidModelParams(String),
}

fn check_bits(bits: u8) -> Result<(), QuantError> {
    if (MIN_BITS..=MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(QuantError::UnsupportedBits(bits))
    }
}

fn check_picture_bits(bits: u8) -> Result<(), QuantError> {
    if (MIN_BITS..=MAX_PICTURE_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(QuantError::UnsupportedPictureBits(bits))
    }
}

/// Parameters of one uniform affine quantizer. Codes are `0..=2^bits - 1`; `zero_point` is one
/// of them, so 0.0 quantizes to `zero_point` and dequantizes to exactly 0.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
    pub bits: u8,
}

impl QuantParams {
    /// Affine MinMax parameters (eq. 3.6–3.7) for values in `[min, max]`.
    ///
    /// The range is first widened to include 0.0 and the zero point rounded to an integer, so
    /// 0.0 is exactly representable; every value inside the range is then within `scale / 2` of
    /// its reconstruction. Degenerate ranges give valid finite parameters: NaN bounds count as
    /// 0.0, infinite bounds are clamped, and a zero-width range gets [`MIN_SCALE`].
    pub fn from_min_max(min: f32, max: f32, bits: u8) -> Result<QuantParams, QuantError> {
        check_bits(bits)?;
        Ok(Self::min_max(min, max, bits))
    }

    /// [`QuantParams::from_min_max`] for the codes of a video picture: up to
    /// [`MAX_PICTURE_BITS`].
    pub fn picture_from_min_max(min: f32, max: f32, bits: u8) -> Result<QuantParams, QuantError> {
        check_picture_bits(bits)?;
        Ok(Self::min_max(min, max, bits))
    }

    fn min_max(min: f32, max: f32, bits: u8) -> QuantParams {
        let sanitize = |v: f32| {
            if v.is_nan() {
                0.0
            } else {
                v.clamp(-RANGE_LIMIT, RANGE_LIMIT)
            }
        };
        let (a, b) = (sanitize(min), sanitize(max));
        // Accept swapped bounds rather than producing a negative scale.
        let lo = a.min(b).min(0.0);
        let hi = a.max(b).max(0.0);
        let qmax = max_code_for(bits) as f64;
        let raw = (hi as f64 - lo as f64) / qmax;
        let scale = (raw as f32).max(MIN_SCALE);
        let zero_point = (-(lo as f64) / scale as f64).round().clamp(0.0, qmax) as i32;
        QuantParams {
            scale,
            zero_point,
            bits,
        }
    }

    /// N-bit parameters derived from an 8-bit model's scale and zero point (the corrected
    /// eq. 3.14–3.15): `s_N = s_8 · 2^(8−N)`, `z_N = round(z_8 · 2^(N−8))`, clamped to the codes.
    pub fn from_8bit(scale8: f32, zero_point8: i32, bits: u8) -> Result<QuantParams, QuantError> {
        check_bits(bits)?;
        Self::model_8bit(scale8, zero_point8, bits)
    }

    /// [`QuantParams::from_8bit`] for the codes of a video picture: up to [`MAX_PICTURE_BITS`];
    /// above 8 bits the model's codes are scaled exactly (`q_N = q_8 · 2^(N−8)`).
    pub fn picture_from_8bit(
        scale8: f32,
        zero_point8: i32,
        bits: u8,
    ) -> Result<QuantParams, QuantError> {
        check_picture_bits(bits)?;
        Self::model_8bit(scale8, zero_point8, bits)
    }

    fn model_8bit(scale8: f32, zero_point8: i32, bits: u8) -> Result<QuantParams, QuantError> {
        if !(scale8.is_finite() && scale8 > 0.0) {
            return Err(QuantError::InvalidModelParams(format!(
                "scale {scale8} must be finite and > 0"
            )));
        }
        if !(0..=255).contains(&zero_point8) {
            return Err(QuantError::InvalidModelParams(format!(
                "zero point {zero_point8} outside 0..=255"
            )));
        }
        // A power of two: exact in both directions.
        let factor = 2f64.powi(8 - bits as i32);
        let scale = (scale8 as f64 * factor) as f32;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(QuantError::InvalidModelParams(format!(
                "scale {scale8} overflows at {bits} bits"
            )));
        }
        let qmax = max_code_for(bits) as f64;
        let zero_point = (zero_point8 as f64 / factor).round().clamp(0.0, qmax) as i32;
        Ok(QuantParams {
            scale,
            zero_point,
            bits,
        })
    }

    /// Largest code, `2^bits - 1`.
    pub fn max_code(&self) -> u16 {
        max_code_for(self.bits)
    }

    /// Quantizes one value: `clamp(round(x / s) + z, 0, max_code)`; NaN maps to the zero point.
    #[inline]
    pub fn quantize(&self, x: f32) -> u16 {
        self.kernel().quantize(x)
    }

    /// Reconstructs a code: `(q - z) · s`.
    #[inline]
    pub fn dequantize(&self, q: u16) -> f32 {
        (q as i32 - self.zero_point) as f32 * self.scale
    }

    /// Quantizes `values` into `out` (same length; extra elements of either are left alone).
    pub fn quantize_slice(&self, values: &[f32], out: &mut [u16]) {
        let k = self.kernel();
        for (o, &x) in out.iter_mut().zip(values) {
            *o = k.quantize(x);
        }
    }

    /// Dequantizes `codes` into `out` (same length; extra elements of either are left alone).
    pub fn dequantize_slice(&self, codes: &[u16], out: &mut [f32]) {
        let z = self.zero_point;
        let s = self.scale;
        for (o, &q) in out.iter_mut().zip(codes) {
            *o = (q as i32 - z) as f32 * s;
        }
    }

    fn kernel(&self) -> QuantKernel {
        QuantKernel {
            inv_scale: 1.0 / self.scale,
            // Adding 0.5 and truncating rounds half up; cheaper than f32::round (a libm call
            // without SSE4.1) and exact for the zero point: trunc(z + 0.5) = z.
            offset: self.zero_point as f32 + 0.5,
            zero_point: self.zero_point.clamp(0, self.max_code() as i32) as u16,
            max_code: self.max_code() as i32,
        }
    }
}

/// Precomputed per-element quantization: one multiply, one add, one saturating cast.
#[derive(Clone, Copy)]
struct QuantKernel {
    inv_scale: f32,
    offset: f32,
    zero_point: u16,
    max_code: i32,
}

impl QuantKernel {
    #[inline(always)]
    fn quantize(&self, x: f32) -> u16 {
        let t = x * self.inv_scale + self.offset;
        // `as i32` saturates (±inf included); below 0 the truncation toward zero is clamped
        // away anyway.
        let q = (t as i32).clamp(0, self.max_code) as u16;
        if x.is_nan() { self.zero_point } else { q }
    }
}

fn max_code_for(bits: u8) -> u16 {
    ((1u32 << bits.min(16)) - 1) as u16
}

/// Where quantization parameters come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum QuantizerMode {
    /// One MinMax range over the whole tensor, recomputed for every frame.
    #[default]
    PerTensorMinMax,
    /// One MinMax range per channel, recomputed for every frame.
    PerChannelMinMax,
    /// Fixed `(min, max)` per tensor name, e.g. from a calibration run.
    Calibrated(BTreeMap<String, (f32, f32)>),
    /// For u8 tensors of an 8-bit quantized model: that model's scale and zero point, requantized
    /// to N bits.
    Model8bit,
}

impl QuantizerMode {
    /// Name as used by properties and command lines.
    pub fn name(&self) -> &'static str {
        match self {
            QuantizerMode::PerTensorMinMax => "per-tensor",
            QuantizerMode::PerChannelMinMax => "per-channel",
            QuantizerMode::Calibrated(_) => "calibrated",
            QuantizerMode::Model8bit => "model-int8",
        }
    }

    /// One-line description, as `gst-inspect-1.0 fmapenc` shows it.
    pub fn description(&self) -> &'static str {
        match self {
            QuantizerMode::PerTensorMinMax => "Per-tensor min/max of each frame",
            QuantizerMode::PerChannelMinMax => "Per-channel min/max of each frame",
            QuantizerMode::Calibrated(_) => {
                "Calibrated per-tensor ranges from the JSON file in the calibration property"
            }
            QuantizerMode::Model8bit => {
                "The model's own 8-bit scale and zero point (needs u8 feature maps)"
            }
        }
    }
}

/// Quantizer for one tensor: one parameter set (per tensor) or one per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorQuantizer {
    pub params: Vec<QuantParams>,
}

impl TensorQuantizer {
    /// Chooses parameters for `tensor` according to `mode`.
    ///
    /// MinMax modes on u8 tensors observe the dequantized values. Non-finite values are ignored
    /// by the observers (they still quantize: ±inf clamp to the end codes, NaN to the zero point).
    pub fn for_tensor(
        mode: &QuantizerMode,
        tensor: &Tensor,
        bits: u8,
    ) -> Result<TensorQuantizer, QuantError> {
        check_bits(bits)?;
        let params = match mode {
            QuantizerMode::PerTensorMinMax => {
                let (lo, hi) = observe_range(&tensor.data, 0, tensor.data.len());
                vec![QuantParams::from_min_max(lo, hi, bits)?]
            }
            QuantizerMode::PerChannelMinMax => {
                let plane = tensor.shape.plane_len();
                let n = tensor.data.len();
                let channels = n.checked_div(plane).unwrap_or(0);
                let mut params = Vec::with_capacity(channels.max(1));
                for c in 0..channels {
                    let (lo, hi) = observe_range(&tensor.data, c * plane, (c + 1) * plane);
                    params.push(QuantParams::from_min_max(lo, hi, bits)?);
                }
                if params.is_empty() {
                    params.push(QuantParams::from_min_max(0.0, 0.0, bits)?);
                }
                params
            }
            QuantizerMode::Calibrated(ranges) => {
                let &(lo, hi) =
                    ranges
                        .get(&tensor.name)
                        .ok_or_else(|| QuantError::MissingCalibration {
                            tensor: tensor.name.clone(),
                        })?;
                if !(lo.is_finite() && hi.is_finite()) || lo > hi {
                    return Err(QuantError::InvalidCalibration {
                        tensor: tensor.name.clone(),
                        detail: format!("({lo}, {hi}) must be finite with min <= max"),
                    });
                }
                vec![QuantParams::from_min_max(lo, hi, bits)?]
            }
            QuantizerMode::Model8bit => match &tensor.data {
                TensorData::U8 {
                    scale, zero_point, ..
                } => vec![QuantParams::from_8bit(*scale, *zero_point, bits)?],
                TensorData::F32(_) => {
                    return Err(QuantError::NotQuantized {
                        tensor: tensor.name.clone(),
                    });
                }
            },
        };
        Ok(TensorQuantizer { params })
    }

    /// Parameters of channel `c` (the single set for a per-tensor quantizer; the last set for a
    /// channel past the end, so a mismatched shape never panics).
    pub fn params_for_channel(&self, c: usize) -> &QuantParams {
        &self.params[c.min(self.params.len().saturating_sub(1))]
    }

    /// Quantizes a (C, H, W) tensor's values; `out` is cleared and refilled with one code per
    /// value.
    pub fn quantize_tensor(&self, shape: Shape, values: &[f32], out: &mut Vec<u16>) {
        out.clear();
        out.resize(values.len(), 0);
        if self.params.is_empty() {
            return;
        }
        let plane = shape.plane_len().max(1);
        for (c, (v, o)) in values.chunks(plane).zip(out.chunks_mut(plane)).enumerate() {
            self.params_for_channel(c).quantize_slice(v, o);
        }
    }

    /// Dequantizes a (C, H, W) tensor's codes; `out` is cleared and refilled with one value per
    /// code.
    pub fn dequantize_tensor(&self, shape: Shape, codes: &[u16], out: &mut Vec<f32>) {
        out.clear();
        out.resize(codes.len(), 0.0);
        if self.params.is_empty() {
            return;
        }
        let plane = shape.plane_len().max(1);
        for (c, (q, o)) in codes.chunks(plane).zip(out.chunks_mut(plane)).enumerate() {
            self.params_for_channel(c).dequantize_slice(q, o);
        }
    }
}

/// MinMax observer over `data[start..end]`, ignoring non-finite values (they are replaced by
/// 0.0, which the widened range includes anyway).
fn observe_range(data: &TensorData, start: usize, end: usize) -> (f32, f32) {
    match data {
        TensorData::F32(v) => {
            let end = end.min(v.len());
            min_max_finite(&v[start.min(end)..end])
        }
        TensorData::U8 {
            codes,
            scale,
            zero_point,
        } => {
            let end = end.min(codes.len());
            let codes = &codes[start.min(end)..end];
            let (mut lo, mut hi) = (u8::MAX, u8::MIN);
            for &c in codes {
                lo = lo.min(c);
                hi = hi.max(c);
            }
            if codes.is_empty() {
                return (0.0, 0.0);
            }
            let deq = |c: u8| (c as i32 - zero_point) as f32 * scale;
            min_max_finite(&[deq(lo), deq(hi)])
        }
    }
}

/// Minimum and maximum of the finite values of `v` together with 0.0. Eight independent lanes
/// so the compiler can keep them in vector registers.
pub fn min_max_finite(v: &[f32]) -> (f32, f32) {
    const LANES: usize = 8;
    let mut lo = [0.0f32; LANES];
    let mut hi = [0.0f32; LANES];
    let mut chunks = v.chunks_exact(LANES);
    for chunk in &mut chunks {
        for i in 0..LANES {
            let x = chunk[i];
            let x = if x.abs() < f32::INFINITY { x } else { 0.0 };
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
        }
    }
    for &x in chunks.remainder() {
        let x = if x.abs() < f32::INFINITY { x } else { 0.0 };
        lo[0] = if x < lo[0] { x } else { lo[0] };
        hi[0] = if x > hi[0] { x } else { hi[0] };
    }
    let lo = lo.iter().copied().fold(0.0f32, f32::min);
    let hi = hi.iter().copied().fold(0.0f32, f32::max);
    (lo, hi)
}

/// The N-bit code of an 8-bit model code: `clamp(round((q8 - z8) · s8 / s_N + z_N))`.
pub fn requantize_from_8bit(q8: u8, scale8: f32, zero_point8: i32, params: &QuantParams) -> u16 {
    let x = (q8 as i32 - zero_point8) as f32 * scale8;
    params.quantize(x)
}

/// The 8-bit model code of an N-bit code, for the decoder's u8 output:
/// `clamp(round((q_N - z_N) · s_N / s8 + z8), 0, 255)`.
pub fn requantize_to_8bit(q: u16, params: &QuantParams, scale8: f32, zero_point8: i32) -> u8 {
    let t = (q as i32 - params.zero_point) as f32 * params.scale / scale8 + zero_point8 as f32;
    if t.is_nan() {
        return zero_point8.clamp(0, 255) as u8;
    }
    // Round half away from zero via the sign-aware offset, then saturate.
    let r = if t >= 0.0 { t + 0.5 } else { t - 0.5 };
    (r as i32).clamp(0, 255) as u8
}

/// [`requantize_from_8bit`] over a slice, through a 256-entry table. `out` is cleared and
/// refilled.
pub fn codes_from_8bit(
    codes8: &[u8],
    scale8: f32,
    zero_point8: i32,
    params: &QuantParams,
    out: &mut Vec<u16>,
) {
    let mut table = [0u16; 256];
    for (q8, t) in table.iter_mut().enumerate() {
        *t = requantize_from_8bit(q8 as u8, scale8, zero_point8, params);
    }
    out.clear();
    out.extend(codes8.iter().map(|&c| table[c as usize]));
}

/// [`requantize_to_8bit`] over a slice, through a table of all N-bit codes (codes above the
/// largest one map like the largest one). `out` is cleared and refilled.
pub fn codes_to_8bit(
    codes: &[u16],
    params: &QuantParams,
    scale8: f32,
    zero_point8: i32,
    out: &mut Vec<u8>,
) {
    let max = params.max_code() as usize;
    let table: Vec<u8> = (0..=max)
        .map(|q| requantize_to_8bit(q as u16, params, scale8, zero_point8))
        .collect();
    out.clear();
    out.extend(codes.iter().map(|&q| table[(q as usize).min(max)]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tensor_f32(name: &str, shape: Shape, data: Vec<f32>) -> Tensor {
        Tensor::from_f32(name, shape, data).unwrap()
    }

    #[test]
    fn table_4_2_known_answer() {
        // Thesis Table 4.2, layer-1-block-2: 8-bit scale 0.024894, zero point 41.
        let p = QuantParams::from_8bit(0.024894, 41, 4).unwrap();
        assert!((p.scale - 0.39830).abs() < 1e-5, "scale {}", p.scale);
        assert_eq!(p.zero_point, 3);
        assert_eq!(p.bits, 4);
        assert_eq!(p.max_code(), 15);
        // 8 bits is the identity.
        let p8 = QuantParams::from_8bit(0.024894, 41, 8).unwrap();
        assert_eq!(p8.scale, 0.024894);
        assert_eq!(p8.zero_point, 41);
    }

    #[test]
    fn from_8bit_clamps_zero_point_and_rejects_bad_params() {
        let p = QuantParams::from_8bit(0.1, 255, 4).unwrap();
        assert_eq!(p.zero_point, 15); // round(255/16) = 16 clamped to 15
        assert!(matches!(
            QuantParams::from_8bit(0.0, 0, 4),
            Err(QuantError::InvalidModelParams(_))
        ));
        assert!(matches!(
            QuantParams::from_8bit(f32::NAN, 0, 4),
            Err(QuantError::InvalidModelParams(_))
        ));
        assert!(matches!(
            QuantParams::from_8bit(0.1, 256, 4),
            Err(QuantError::InvalidModelParams(_))
        ));
        assert!(matches!(
            QuantParams::from_8bit(0.1, -1, 4),
            Err(QuantError::InvalidModelParams(_))
        ));
    }

    #[test]
    fn rejects_unsupported_bit_depths() {
        for bits in [0u8, 1, 9, 16, 255] {
            assert_eq!(
                QuantParams::from_min_max(-1.0, 1.0, bits),
                Err(QuantError::UnsupportedBits(bits))
            );
            assert_eq!(
                QuantParams::from_8bit(0.1, 10, bits),
                Err(QuantError::UnsupportedBits(bits))
            );
            let t = tensor_f32("x", Shape::new(1, 1, 2), vec![0.0, 1.0]);
            assert_eq!(
                TensorQuantizer::for_tensor(&QuantizerMode::PerTensorMinMax, &t, bits),
                Err(QuantError::UnsupportedBits(bits))
            );
        }
        let msg = QuantError::UnsupportedBits(9).to_string();
        assert!(msg.contains("2..=8"), "{msg}");
        for bits in MIN_BITS..=MAX_BITS {
            assert!(QuantParams::from_min_max(-1.0, 1.0, bits).is_ok());
        }
    }

    #[test]
    fn picture_quantizers_reach_10_bits_and_scale_8bit_codes_exactly() {
        for bits in [0u8, 1, 11, 16] {
            assert_eq!(
                QuantParams::picture_from_min_max(-1.0, 1.0, bits),
                Err(QuantError::UnsupportedPictureBits(bits))
            );
            assert_eq!(
                QuantParams::picture_from_8bit(0.1, 10, bits),
                Err(QuantError::UnsupportedPictureBits(bits))
            );
        }
        let p = QuantParams::picture_from_min_max(-1.0, 3.0, 10).unwrap();
        assert_eq!((p.max_code(), p.quantize(0.0) as i32), (1023, p.zero_point));
        assert_eq!(
            QuantParams::picture_from_min_max(-1.0, 3.0, 8),
            QuantParams::from_min_max(-1.0, 3.0, 8)
        );
        // At 8 bits and below they are the codec's quantizers.
        for bits in MIN_BITS..=MAX_BITS {
            assert_eq!(
                QuantParams::picture_from_8bit(0.02, 37, bits),
                QuantParams::from_8bit(0.02, 37, bits)
            );
        }
        // At 10 bits an 8-bit model's code q becomes 4q, and back.
        let (s8, z8) = (0.0235f32, 131);
        let p = QuantParams::picture_from_8bit(s8, z8, 10).unwrap();
        assert_eq!((p.scale, p.zero_point), (s8 / 4.0, z8 * 4));
        let all: Vec<u8> = (0..=255).collect();
        let mut codes = Vec::new();
        codes_from_8bit(&all, s8, z8, &p, &mut codes);
        assert!(codes.iter().zip(&all).all(|(&q, &q8)| q == q8 as u16 * 4));
        let mut back = Vec::new();
        codes_to_8bit(&codes, &p, s8, z8, &mut back);
        assert_eq!(back, all);
    }

    #[test]
    fn zero_is_exact_for_every_bit_depth_and_range() {
        let ranges = [
            (-1.0, 1.0),
            (0.3, 7.9), // positive-only: widened to include 0
            (-5.2, -0.1),
            (-0.013, 13.7),
            (0.0, 0.0),
            (2.5, 2.5),
        ];
        for bits in MIN_BITS..=MAX_BITS {
            for &(lo, hi) in &ranges {
                let p = QuantParams::from_min_max(lo, hi, bits).unwrap();
                let q = p.quantize(0.0);
                assert_eq!(q as i32, p.zero_point, "bits {bits} range {lo}..{hi}");
                assert_eq!(p.dequantize(q), 0.0);
                assert_eq!(p.quantize(-0.0), q);
                assert!(p.zero_point >= 0 && p.zero_point <= p.max_code() as i32);
            }
        }
        // A positive-only range has zero point 0; a negative-only one the top code.
        assert_eq!(
            QuantParams::from_min_max(0.3, 7.9, 4).unwrap().zero_point,
            0
        );
        assert_eq!(
            QuantParams::from_min_max(-5.2, -0.1, 4).unwrap().zero_point,
            15
        );
    }

    #[test]
    fn degenerate_ranges_give_finite_params() {
        let cases = [
            (0.0, 0.0),
            (3.0, 3.0),
            (-3.0, -3.0),
            (f32::NAN, f32::NAN),
            (f32::NAN, 1.0),
            (f32::NEG_INFINITY, f32::INFINITY),
            (f32::INFINITY, f32::NEG_INFINITY),
            (-f32::MAX, f32::MAX),
            (1.0, -1.0),
            (0.0, 1e-30),
        ];
        for bits in MIN_BITS..=MAX_BITS {
            for &(lo, hi) in &cases {
                let p = QuantParams::from_min_max(lo, hi, bits).unwrap();
                assert!(
                    p.scale.is_finite() && p.scale > 0.0,
                    "{lo}..{hi}: scale {}",
                    p.scale
                );
                assert!((1.0 / p.scale).is_finite());
                assert!(p.zero_point >= 0 && p.zero_point <= p.max_code() as i32);
                for x in [0.0, 1.0, -1.0, f32::MAX, f32::MIN, f32::INFINITY, f32::NAN] {
                    let q = p.quantize(x);
                    assert!(q <= p.max_code());
                    assert!(p.dequantize(q).is_finite());
                }
                assert_eq!(p.quantize(f32::NAN) as i32, p.zero_point);
            }
        }
        // Swapped bounds behave like ordered ones.
        assert_eq!(
            QuantParams::from_min_max(1.0, -1.0, 6),
            QuantParams::from_min_max(-1.0, 1.0, 6)
        );
    }

    #[test]
    fn degenerate_tensors_quantize_without_panicking() {
        let shape = Shape::new(2, 2, 3);
        let datas = [
            vec![0.0f32; 12],
            vec![4.25; 12],
            vec![-1.5; 12],
            vec![f32::NAN; 12],
            {
                let mut v = vec![1.0f32; 12];
                v[0] = f32::INFINITY;
                v[1] = f32::NEG_INFINITY;
                v[2] = f32::NAN;
                v[3] = -2.0;
                v
            },
        ];
        for data in datas {
            let t = tensor_f32("t", shape, data.clone());
            for mode in [
                QuantizerMode::PerTensorMinMax,
                QuantizerMode::PerChannelMinMax,
            ] {
                let tq = TensorQuantizer::for_tensor(&mode, &t, 4).unwrap();
                let mut codes = Vec::new();
                tq.quantize_tensor(shape, &data, &mut codes);
                assert_eq!(codes.len(), 12);
                assert!(codes.iter().all(|&q| q <= 15));
                let mut back = Vec::new();
                tq.dequantize_tensor(shape, &codes, &mut back);
                assert!(back.iter().all(|v| v.is_finite()));
                // Finite values inside the observed range reconstruct within s/2.
                for (c, (x, y)) in data.iter().zip(&back).enumerate() {
                    if x.is_finite() {
                        let s = tq.params_for_channel(c / 6).scale;
                        assert!((x - y).abs() <= s * 0.5 + 1e-6, "{x} -> {y}, s {s}");
                    }
                }
            }
        }
        // The observer ignores non-finite values: range is [-2, 1] widened with 0.
        let (lo, hi) = min_max_finite(&[1.0, f32::INFINITY, f32::NAN, -2.0, f32::NEG_INFINITY]);
        assert_eq!((lo, hi), (-2.0, 1.0));
    }

    #[test]
    fn constant_tensor_reconstructs_exactly_when_on_grid() {
        // A constant positive tensor: range [0, c], so c is the top code and exact up to
        // rounding of the scale.
        let p = QuantParams::from_min_max(3.0, 3.0, 4).unwrap();
        assert_eq!(p.zero_point, 0);
        assert_eq!(p.quantize(3.0), 15);
        assert!((p.dequantize(15) - 3.0).abs() < 1e-6);
    }

    #[test]
    fn per_channel_params_differ_per_channel() {
        let shape = Shape::new(3, 2, 2);
        let data = vec![
            0.0, 1.0, 0.5, 0.25, // channel 0: [0, 1]
            -4.0, 4.0, 2.0, -1.0, // channel 1: [-4, 4]
            0.0, 0.0, 0.0, 0.0, // channel 2: all zero
        ];
        let t = tensor_f32("feat", shape, data.clone());
        let tq = TensorQuantizer::for_tensor(&QuantizerMode::PerChannelMinMax, &t, 8).unwrap();
        assert_eq!(tq.params.len(), 3);
        let p0 = tq.params_for_channel(0);
        let p1 = tq.params_for_channel(1);
        let p2 = tq.params_for_channel(2);
        assert!((p0.scale - 1.0 / 255.0).abs() < 1e-9);
        assert_eq!(p0.zero_point, 0);
        assert!((p1.scale - 8.0 / 255.0).abs() < 1e-7);
        assert!((127..=128).contains(&p1.zero_point));
        assert_eq!(p2.scale, MIN_SCALE);
        assert_ne!(p0, p1);
        // Each channel is quantized with its own params.
        let mut codes = Vec::new();
        tq.quantize_tensor(shape, &data, &mut codes);
        assert_eq!(codes[1], 255); // 1.0 is channel 0's top
        assert_eq!(codes[5], 255); // 4.0 is channel 1's top
        for (i, (&x, &q)) in data.iter().zip(&codes).enumerate() {
            let p = tq.params_for_channel(i / 4);
            assert!((p.dequantize(q) - x).abs() <= p.scale * 0.5 + 1e-6);
        }
        assert!(codes[8..].iter().all(|&q| q == 0));

        let per_tensor =
            TensorQuantizer::for_tensor(&QuantizerMode::PerTensorMinMax, &t, 8).unwrap();
        assert_eq!(per_tensor.params.len(), 1);
        assert_eq!(
            per_tensor.params_for_channel(2),
            per_tensor.params_for_channel(0)
        );
        assert!((per_tensor.params[0].scale - 8.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn calibrated_ranges_and_missing_tensor_error() {
        let shape = Shape::new(1, 1, 4);
        let t = tensor_f32("backbone.stage2", shape, vec![0.0, 1.0, 2.0, 100.0]);
        let mut ranges = BTreeMap::new();
        ranges.insert("backbone.stage2".to_string(), (0.0f32, 3.0f32));
        let tq =
            TensorQuantizer::for_tensor(&QuantizerMode::Calibrated(ranges.clone()), &t, 2).unwrap();
        assert_eq!(tq.params.len(), 1);
        assert!((tq.params[0].scale - 1.0).abs() < 1e-7);
        let mut codes = Vec::new();
        tq.quantize_tensor(shape, &[0.0, 1.0, 2.0, 100.0], &mut codes);
        assert_eq!(codes, vec![0, 1, 2, 3]); // 100.0 is clamped to the calibrated top

        let other = tensor_f32("head.p3", shape, vec![0.0; 4]);
        let err =
            TensorQuantizer::for_tensor(&QuantizerMode::Calibrated(ranges.clone()), &other, 4)
                .unwrap_err();
        assert_eq!(
            err,
            QuantError::MissingCalibration {
                tensor: "head.p3".into()
            }
        );
        assert!(err.to_string().contains("head.p3"), "{err}");

        ranges.insert("head.p3".to_string(), (f32::NAN, 1.0));
        let err =
            TensorQuantizer::for_tensor(&QuantizerMode::Calibrated(ranges.clone()), &other, 4)
                .unwrap_err();
        assert!(
            matches!(err, QuantError::InvalidCalibration { ref tensor, .. } if tensor == "head.p3")
        );
        ranges.insert("head.p3".to_string(), (2.0, 1.0));
        assert!(matches!(
            TensorQuantizer::for_tensor(&QuantizerMode::Calibrated(ranges), &other, 4),
            Err(QuantError::InvalidCalibration { .. })
        ));
    }

    #[test]
    fn model8bit_uses_the_tensor_params_and_rejects_f32() {
        let shape = Shape::new(1, 1, 6);
        let codes8 = vec![0u8, 41, 42, 57, 200, 255];
        let t = Tensor::from_u8("q", shape, codes8.clone(), 0.024894, 41).unwrap();
        let tq = TensorQuantizer::for_tensor(&QuantizerMode::Model8bit, &t, 4).unwrap();
        assert_eq!(tq.params.len(), 1);
        let p = tq.params[0];
        assert!((p.scale - 0.39830).abs() < 1e-5);
        assert_eq!(p.zero_point, 3);

        let mut codes = Vec::new();
        codes_from_8bit(&codes8, 0.024894, 41, &p, &mut codes);
        assert_eq!(codes.len(), 6);
        for (&q8, &q) in codes8.iter().zip(&codes) {
            assert_eq!(q, requantize_from_8bit(q8, 0.024894, 41, &p));
            assert!(q <= 15);
            // The N-bit reconstruction is within s_N / 2 of the 8-bit value unless clamped.
            let x8 = (q8 as i32 - 41) as f32 * 0.024894;
            let lo = p.dequantize(0);
            let hi = p.dequantize(15);
            if x8 >= lo && x8 <= hi {
                assert!((p.dequantize(q) - x8).abs() <= p.scale * 0.5 + 1e-5);
            }
        }
        // The 8-bit zero point maps to the N-bit zero point and back.
        assert_eq!(requantize_from_8bit(41, 0.024894, 41, &p), 3);
        assert_eq!(requantize_to_8bit(3, &p, 0.024894, 41), 41);
        // Back to 8-bit codes: q8 = round((q - 3) * 16 + 41) clamped.
        let mut back = Vec::new();
        codes_to_8bit(&codes, &p, 0.024894, 41, &mut back);
        for (&q, &b) in codes.iter().zip(&back) {
            let expect = ((q as i32 - 3) * 16 + 41).clamp(0, 255) as u8;
            assert_eq!(b, expect);
        }
        // Codes above the top code behave like the top code.
        let mut b2 = Vec::new();
        codes_to_8bit(&[15, 16, u16::MAX], &p, 0.024894, 41, &mut b2);
        assert_eq!(b2[0], b2[1]);
        assert_eq!(b2[0], b2[2]);

        let f = tensor_f32("float_map", shape, vec![0.0; 6]);
        let err = TensorQuantizer::for_tensor(&QuantizerMode::Model8bit, &f, 4).unwrap_err();
        assert_eq!(
            err,
            QuantError::NotQuantized {
                tensor: "float_map".into()
            }
        );
        assert!(err.to_string().contains("float_map"));
    }

    #[test]
    fn model8bit_at_8_bits_round_trips_codes() {
        let codes8: Vec<u8> = (0..=255).collect();
        let p = QuantParams::from_8bit(0.05, 128, 8).unwrap();
        let mut n = Vec::new();
        codes_from_8bit(&codes8, 0.05, 128, &p, &mut n);
        let mut back = Vec::new();
        codes_to_8bit(&n, &p, 0.05, 128, &mut back);
        assert_eq!(back, codes8);
    }

    #[test]
    fn minmax_on_u8_tensor_observes_dequantized_values() {
        let shape = Shape::new(1, 1, 3);
        let t = Tensor::from_u8("q", shape, vec![10, 20, 30], 0.5, 20).unwrap();
        let tq = TensorQuantizer::for_tensor(&QuantizerMode::PerTensorMinMax, &t, 8).unwrap();
        // values -5, 0, 5
        assert!((tq.params[0].scale - 10.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn mismatched_lengths_never_panic() {
        let tq = TensorQuantizer {
            params: vec![QuantParams::from_min_max(-1.0, 1.0, 4).unwrap(); 2],
        };
        let mut codes = Vec::new();
        tq.quantize_tensor(Shape::new(2, 2, 2), &[0.5; 20], &mut codes);
        assert_eq!(codes.len(), 20);
        let mut out = Vec::new();
        tq.dequantize_tensor(Shape::new(2, 2, 2), &codes[..3], &mut out);
        assert_eq!(out.len(), 3);
        let empty = TensorQuantizer { params: vec![] };
        empty.quantize_tensor(Shape::new(1, 1, 1), &[1.0], &mut codes);
        assert_eq!(codes, vec![0]);
    }

    proptest! {
        #[test]
        fn error_within_half_step_inside_range(
            a in -1000.0f32..1000.0,
            b in -1000.0f32..1000.0,
            bits in MIN_BITS..=MAX_BITS,
            ts in proptest::collection::vec(0.0f32..=1.0, 1..64),
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            let p = QuantParams::from_min_max(lo, hi, bits).unwrap();
            let (wlo, whi) = (lo.min(0.0), hi.max(0.0));
            let values: Vec<f32> = ts.iter().map(|t| wlo + (whi - wlo) * t).collect();
            let mut codes = vec![0u16; values.len()];
            p.quantize_slice(&values, &mut codes);
            for (&x, &q) in values.iter().zip(&codes) {
                prop_assert!(q <= p.max_code());
                prop_assert_eq!(q, p.quantize(x));
                let err = (p.dequantize(q) - x).abs();
                // s/2 plus float rounding of x/s and of the reconstruction.
                let tol = p.scale * 0.5 * (1.0 + 1e-4) + x.abs() * 4.0 * f32::EPSILON;
                prop_assert!(err <= tol, "x {} q {} err {} s {}", x, q, err, p.scale);
            }
            prop_assert_eq!(p.quantize(0.0) as i32, p.zero_point);
            prop_assert_eq!(p.dequantize(p.zero_point as u16), 0.0);
        }

        #[test]
        fn codes_always_in_range(
            lo in -1e6f32..1e6,
            hi in -1e6f32..1e6,
            bits in MIN_BITS..=MAX_BITS,
            x in proptest::num::f32::ANY,
        ) {
            let p = QuantParams::from_min_max(lo, hi, bits).unwrap();
            let q = p.quantize(x);
            prop_assert!(q <= p.max_code());
            prop_assert!(p.dequantize(q).is_finite());
        }

        #[test]
        fn from_8bit_matches_formula(
            s8 in 1e-4f32..10.0,
            z8 in 0i32..=255,
            bits in MIN_BITS..=MAX_BITS,
        ) {
            let p = QuantParams::from_8bit(s8, z8, bits).unwrap();
            let k = (1u32 << (8 - bits)) as f32;
            prop_assert!((p.scale - s8 * k).abs() <= s8 * k * 1e-6);
            let z = ((z8 as f32 / k).round() as i32).min(p.max_code() as i32);
            prop_assert_eq!(p.zero_point, z);
        }
    }
}
