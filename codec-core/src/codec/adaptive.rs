//! fmap's own mode, `adaptive`: closed-loop prediction in the value domain with a uniform step,
//! rate–distortion decisions and context-adaptive range coding (`BITSTREAM.md`, version 4 units).
//!
//! - **Prediction.** A key unit predicts every value as 0; a predicted unit predicts it from the
//!   previous reconstruction, displaced by one motion field shared by all channels of the tensor
//!   (or not at all when the search range is 0).
//! - **Quantizer.** The residual `d = (x − pred) / step` becomes the integer
//!   `r = sign(d)·⌊|d| + rounding⌋`: a uniform step, zero-aligned, with no N-bit range (large
//!   values use escape codes). The reconstruction is `pred + r·step`. Because the encoder predicts
//!   from its own reconstruction, the error of every value stays below one step: there is no
//!   drift, on static or moving content.
//! - **Decisions.** A block of a channel whose residuals are worth fewer bits than the distortion
//!   they remove (Lagrangian cost, λ in units of step² per bit) is sent as "not coded".
//! - **Coding.** Every decision is a binary symbol coded with an adaptive context chosen from
//!   what the decoder already knows: the neighbours' residual magnitudes, the co-located
//!   residual of the previous unit, the neighbouring blocks' flags
//!   ([`crate::entropy::context`]).
//!
//! The syntax is written once ([`code_field`], [`code_residuals`]) and run by both the encoder and the decoder
//! through [`BinCoder`], so the two cannot disagree on the order or the contexts of symbols.

use super::CodecError;
use super::bitstream::TensorDesc;
use super::slices::{self, SliceRef};
use crate::entropy::EntropyError;
use crate::entropy::context::{Context, ContextDecoder, ContextEncoder, MAX_ESCAPE_BITS};
use crate::frame::{FeatureFrame, Shape, Tensor, TensorData};
use crate::motion::{self, BlockGrid, MotionField, MotionVector};
use crate::subpel;
use std::ops::Range;

/// Context-coded bins of a residual magnitude before the Exp-Golomb escape.
const MAGNITUDE_BINS: usize = 6;
/// Largest residual magnitude the syntax carries.
pub(crate) const MAX_RESIDUAL: u32 = (1 << MAX_ESCAPE_BITS) - 2 + MAGNITUDE_BINS as u32 + 1;

/// One reconstructed tensor of the adaptive mode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdaptiveTensor {
    pub desc: TensorDesc,
    /// Reconstructed values in the tensor's native unit: the value for f32 tensors, the code
    /// minus the zero point for 8-bit tensors.
    pub values: Vec<f32>,
    /// Per element, min(|residual|, 2) of the unit that made this reconstruction.
    pub activity: Vec<u8>,
    /// Per channel and block, whether the unit coded residuals there.
    pub coded: Vec<bool>,
}

/// One reconstructed frame of the adaptive mode: the reference of the next unit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdaptiveFrame {
    pub stream_id: u16,
    pub index: u64,
    pub pts_ns: Option<u64>,
    pub tensors: Vec<AdaptiveTensor>,
}

impl AdaptiveFrame {
    /// An all-zero frame of the given layouts: the reference of a receiver that joined late.
    pub fn blank(stream_id: u16, index: u64, descs: &[TensorDesc], block_size: usize) -> Self {
        AdaptiveFrame {
            stream_id,
            index,
            pts_ns: None,
            tensors: descs
                .iter()
                .map(|d| AdaptiveTensor {
                    desc: d.clone(),
                    values: vec![0.0; d.shape.len()],
                    activity: vec![0; d.shape.len()],
                    coded: vec![
                        false;
                        d.shape.channels
                            * BlockGrid::new(block_size, d.shape.height, d.shape.width)
                                .map_or(0, |g| g.len())
                    ],
                })
                .collect(),
        }
    }

    pub fn to_frame(&self) -> FeatureFrame {
        FeatureFrame::new(
            self.index,
            self.pts_ns,
            self.tensors.iter().map(AdaptiveTensor::to_tensor).collect(),
        )
    }
}

impl AdaptiveTensor {
    /// The decoder's output: f32 values, or the model's 8-bit codes (rounded and clamped).
    pub fn to_tensor(&self) -> Tensor {
        let data = match self.desc.model8 {
            None => TensorData::F32(self.values.clone()),
            Some((scale, zero_point)) => TensorData::U8 {
                codes: self
                    .values
                    .iter()
                    .map(|&v| (v.round() + zero_point as f32).clamp(0.0, 255.0) as u8)
                    .collect(),
                scale,
                zero_point,
            },
        };
        Tensor {
            name: self.desc.name.clone(),
            shape: self.desc.shape,
            data,
        }
    }
}

/// A tensor's values in its native unit (see [`AdaptiveTensor::values`]).
pub(crate) fn native_values(t: &Tensor) -> Vec<f32> {
    match &t.data {
        TensorData::F32(v) => v.clone(),
        TensorData::U8 {
            codes, zero_point, ..
        } => codes
            .iter()
            .map(|&c| (i32::from(c) - zero_point) as f32)
            .collect(),
    }
}

/// Standard deviation of `values` (0 for an empty or constant tensor).
pub(crate) fn spread(values: &[f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    var.sqrt() as f32
}

/// The step of a tensor: `quality` times its spread; for 8-bit tensors a whole number of codes
/// (at least 1, where the step 1 is lossless).
pub(crate) fn step_for(desc: &TensorDesc, quality: f32, spread: f32) -> f32 {
    let step = quality * spread.max(f32::MIN_POSITIVE);
    if desc.model8.is_some() {
        step.round().clamp(1.0, MAX_STEP)
    } else if step.is_finite() && step > 0.0 {
        step.min(MAX_STEP)
    } else {
        1.0
    }
}

/// Largest step a unit may carry.
const MAX_STEP: f32 = 1e29;

/// Checks a step read from a unit.
pub(crate) fn check_step(step: f32) -> Result<f32, CodecError> {
    if step.is_finite() && step > 0.0 && step <= MAX_STEP {
        Ok(step)
    } else {
        Err(CodecError::Invalid(format!(
            "adaptive step {step} is not finite and positive"
        )))
    }
}

/// Channel weight codes per octave: a weight code `k` multiplies the tensor's step by
/// 2^((k − [`UNIT_WEIGHT_CODE`]) / 16), from 1/256 to almost 256 in steps of 4.4%.
const WEIGHT_CODES_PER_OCTAVE: f32 = 16.0;
/// The weight code of a channel quantized with the tensor's own step.
pub(crate) const UNIT_WEIGHT_CODE: u8 = 128;

/// The weight code nearest to the step multiplier `weight` (finite and positive).
pub(crate) fn weight_code(weight: f32) -> u8 {
    let k = (weight.log2() * WEIGHT_CODES_PER_OCTAVE).round() + f32::from(UNIT_WEIGHT_CODE);
    k.clamp(0.0, 255.0) as u8
}

/// The step multiplier a weight code stands for.
pub(crate) fn code_weight(code: u8) -> f32 {
    ((f32::from(code) - f32::from(UNIT_WEIGHT_CODE)) / WEIGHT_CODES_PER_OCTAVE).exp2()
}

/// Per channel, the step in effect: the tensor's `step` (checked) times the channel's weight
/// (`None`: no weights, every channel at `step`), kept within the steps a unit may carry; for
/// 8-bit tensors a whole number of codes, at least 1. Both sides compute it from what the unit
/// carries.
pub(crate) fn channel_steps(desc: &TensorDesc, step: f32, weights: Option<&[u8]>) -> Vec<f32> {
    let channels = desc.shape.channels;
    let Some(codes) = weights else {
        return vec![step; channels];
    };
    codes
        .iter()
        .map(|&k| {
            let s = (step * code_weight(k)).clamp(f32::MIN_POSITIVE, MAX_STEP);
            if desc.model8.is_some() {
                s.round().max(1.0)
            } else {
                s
            }
        })
        .collect()
}

/// Per channel, the step in effect in one unit: [`channel_steps`] of `step`, except in the
/// channels of the slices `intra(k)` says are refresh slices, which take those of
/// `refresh_step` when the unit carries one. Both sides compute it from what the unit carries
/// (the decoder from the slices that arrived: a missing slice's channels code nothing).
pub(crate) fn unit_steps(
    desc: &TensorDesc,
    step: f32,
    refresh_step: Option<f32>,
    weights: Option<&[u8]>,
    slice_width: usize,
    intra: impl Fn(usize) -> bool,
) -> Vec<f32> {
    let mut steps = channel_steps(desc, step, weights);
    if let Some(refresh) = refresh_step {
        let finer = channel_steps(desc, refresh, weights);
        for (c, (s, f)) in steps.iter_mut().zip(finer).enumerate() {
            if intra(c / slice_width.max(1)) {
                *s = f;
            }
        }
    }
    steps
}

/// Encoder-side choices for one tensor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decisions<'a> {
    /// Predicted units: contexts that do not read the reference ([`code_residuals`]).
    pub resilient: bool,
    pub step: f32,
    /// Predicted units with refresh slices: the step of those slices (carried in the head when
    /// the unit's header says so), `None` to code them at `step`.
    pub refresh_step: Option<f32>,
    /// Per channel, the weight code of its step ([`channel_steps`]); `None` in units without
    /// weights.
    pub weights: Option<&'a [u8]>,
    /// Rounding offset of the quantizer (0.5 = nearest).
    pub rounding: f32,
    /// Lagrangian multiplier of the block decisions, in step² per bit; 0 keeps every block.
    pub lambda: f32,
    pub search_range: u8,
    pub search: motion::SearchMethod,
    /// Predicted units: vectors in quarters of a feature ([`subpel`]).
    pub fractional: bool,
}

/// The contexts of one range-coded payload (a motion field or a slice). Fresh for every
/// payload, so that each decodes from its reference alone.
struct Contexts {
    coded: [Context; 48],
    significant: [Context; 384],
    sign: [Context; 12],
    magnitude: [[Context; MAGNITUDE_BINS]; 6],
    mv_zero: [Context; 3],
    mv_sign: [Context; 2],
    mv_magnitude: [[Context; 4]; 2],
    mv_fraction: [[Context; 3]; 2],
}

impl Contexts {
    fn new() -> Self {
        Contexts {
            coded: [Context::default(); 48],
            significant: [Context::default(); 384],
            sign: [Context::default(); 12],
            magnitude: [[Context::default(); MAGNITUDE_BINS]; 6],
            mv_zero: [Context::default(); 3],
            mv_sign: [Context::default(); 2],
            mv_magnitude: [[Context::default(); 4]; 2],
            mv_fraction: [[Context::default(); 3]; 2],
        }
    }
}

/// One symbol interface for both directions: the encoder codes the value it is given and
/// returns it; the decoder ignores it and returns what it reads.
pub(crate) trait BinCoder {
    fn bit(&mut self, ctx: &mut Context, bit: bool) -> Result<bool, EntropyError>;
    fn unary_escape(&mut self, ctx: &mut [Context], value: u32) -> Result<u32, EntropyError>;
}

impl BinCoder for ContextEncoder {
    fn bit(&mut self, ctx: &mut Context, bit: bool) -> Result<bool, EntropyError> {
        ContextEncoder::bit(self, ctx, bit);
        Ok(bit)
    }
    fn unary_escape(&mut self, ctx: &mut [Context], value: u32) -> Result<u32, EntropyError> {
        ContextEncoder::unary_escape(self, ctx, value);
        Ok(value)
    }
}

impl BinCoder for ContextDecoder {
    fn bit(&mut self, ctx: &mut Context, _: bool) -> Result<bool, EntropyError> {
        ContextDecoder::bit(self, ctx)
    }
    fn unary_escape(&mut self, ctx: &mut [Context], _: u32) -> Result<u32, EntropyError> {
        ContextDecoder::unary_escape(self, ctx)
    }
}

/// What the syntax of one tensor carries: the motion field (predicted units with a search
/// range), the per-block coded flags and the residuals. The encoder fills it before coding;
/// the decoder fills it while decoding.
pub(crate) struct TensorSymbols {
    pub field: Option<MotionField>,
    pub coded: Vec<bool>,
    pub residuals: Vec<i32>,
}

/// Magnitude class of a prediction, in steps: the significance context's strongest clue (a
/// large activation moves more from frame to frame than a small one).
fn prediction_class(pred: f32, inv_step: f32) -> usize {
    let m = pred.abs() * inv_step;
    if m < 0.5 {
        0
    } else if m < 1.5 {
        1
    } else if m < 3.5 {
        2
    } else {
        3
    }
}

/// Cross-channel class of a position or a block: of the `seen` channels of the slice coded
/// before this one, how many (`hits`) had a nonzero residual there (or coded the block): none,
/// fewer than 1/16 of them, fewer than 1/4, more.
fn cross_class(hits: u16, seen: u32) -> usize {
    let h = u32::from(hits);
    if h == 0 {
        0
    } else if h * 16 < seen {
        1
    } else if h * 4 < seen {
        2
    } else {
        3
    }
}

/// The block flags and residuals of one slice (the channels `channels` of a tensor), in both
/// directions. `reference` is `None` for key-coded slices; `pred` is the prediction both sides
/// computed. Every context depends only on this slice's symbols and on the reference, so a
/// slice decodes without the others; with `resilient`, not on the reference either (no
/// co-located residual, block flag or prediction magnitude of a predicted slice), so that it
/// parses even when the decoder's reference differs from the encoder's (the sign context then
/// does not read the prediction either).
#[allow(clippy::too_many_arguments)]
fn code_residuals<C: BinCoder>(
    coder: &mut C,
    ctx: &mut Contexts,
    shape: Shape,
    grid: &BlockGrid,
    reference: Option<&AdaptiveTensor>,
    resilient: bool,
    pred: &[f32],
    steps: &[f32],
    channels: Range<usize>,
    symbols: &mut TensorSymbols,
) -> Result<(), CodecError> {
    let key = reference.is_none();
    let reads_reference = !key && !resilient;
    let reference = reference.filter(|_| !resilient);
    let width = shape.width;
    let plane = shape.plane_len();
    let cols = grid.cols();
    let blocks = grid.len();
    let key_offset = usize::from(key);
    // Per position (per block): in how many of the slice's channels coded so far its residual
    // was nonzero (the block was coded). Motion and new objects change every channel at the same
    // places, so these are the significance and block flags' cross-channel clues.
    let mut hits = vec![0u16; plane];
    let mut block_hits = vec![0u16; blocks];
    let first = channels.start;
    for c in channels {
        let inv_step = 1.0 / steps[c];
        let res = &mut symbols.residuals[c * plane..(c + 1) * plane];
        let pred = &pred[c * plane..(c + 1) * plane];
        let seen = (c - first) as u32;
        let coded = &mut symbols.coded[c * blocks..(c + 1) * blocks];
        let previous = reference.map(|r| {
            (
                &r.activity[c * plane..(c + 1) * plane],
                &r.coded[c * blocks..(c + 1) * blocks],
            )
        });
        for b in 0..blocks {
            let (by, bx) = (b / cols, b % cols);
            let left = bx > 0 && coded[b - 1];
            let above = by > 0 && coded[b - cols];
            let was = previous.is_some_and(|(_, pc)| pc[b]);
            let k = ((key_offset * 2 + usize::from(was)) * 4 + cross_class(block_hits[b], seen))
                * 3
                + usize::from(left)
                + usize::from(above);
            coded[b] = coder.bit(&mut ctx.coded[k], coded[b])?;
            if !coded[b] {
                continue;
            }
            block_hits[b] = block_hits[b].saturating_add(1);
            let rect = grid.rect(b);
            for y in rect.y..rect.y + rect.height {
                for x in rect.x..rect.x + rect.width {
                    let i = y * width + x;
                    let l = if x > 0 { res[i - 1] } else { 0 };
                    let a = if y > 0 { res[i - width] } else { 0 };
                    let n = (l.unsigned_abs().min(2) + a.unsigned_abs().min(2)).min(3) as usize;
                    let act = previous.map_or(0, |(pa, _)| usize::from(pa[i]));
                    let class = if key || reads_reference {
                        prediction_class(pred[i], inv_step)
                    } else {
                        0
                    };
                    let cross = cross_class(hits[i], seen);
                    let value = res[i];
                    let sig_ctx = (((key_offset * 3 + act) * 4 + class) * 4 + cross) * 4 + n;
                    if !coder.bit(&mut ctx.significant[sig_ctx], value != 0)? {
                        res[i] = 0;
                        continue;
                    }
                    hits[i] = hits[i].saturating_add(1);
                    let sign_ctx = (key_offset * 3 + (l.signum() + 1) as usize) * 2
                        + usize::from((key || reads_reference) && pred[i] > 0.0);
                    let negative = coder.bit(&mut ctx.sign[sign_ctx], value < 0)?;
                    let mag_ctx = key_offset * 3 + n.min(2);
                    let m = coder.unary_escape(
                        &mut ctx.magnitude[mag_ctx],
                        value.unsigned_abs().saturating_sub(1),
                    )? + 1;
                    let m = m as i32; // bounded by MAX_RESIDUAL < 2^25
                    res[i] = if negative { -m } else { m };
                }
            }
        }
    }
    Ok(())
}

/// The motion field of a predicted unit, in both directions. A component's magnitude is coded
/// as its whole features and, with `fractional`, its quarters; no component exceeds `range`
/// features.
fn code_field<C: BinCoder>(
    coder: &mut C,
    ctx: &mut Contexts,
    field: &mut MotionField,
    range: u8,
    fractional: bool,
) -> Result<(), CodecError> {
    let unit = if fractional { subpel::SUBPEL as u32 } else { 1 };
    let bound = u32::from(range) * unit;
    let cols = field.grid.cols();
    for b in 0..field.vectors.len() {
        let left_zero = b % cols == 0 || field.vectors[b - 1].is_zero();
        let above_zero = b < cols || field.vectors[b - cols].is_zero();
        let k = usize::from(!left_zero) + usize::from(!above_zero);
        let mv = field.vectors[b];
        let zero = coder.bit(&mut ctx.mv_zero[k], mv.is_zero())?;
        if zero {
            field.vectors[b] = MotionVector::ZERO;
            continue;
        }
        let mut parts = [mv.dy, mv.dx];
        for (axis, part) in parts.iter_mut().enumerate() {
            let magnitude = u32::from(part.unsigned_abs());
            let whole = coder.unary_escape(&mut ctx.mv_magnitude[axis], magnitude / unit)?;
            let fraction = if fractional {
                code_fraction(coder, &mut ctx.mv_fraction[axis], magnitude % unit)?
            } else {
                0
            };
            let m = whole.saturating_mul(unit).saturating_add(fraction);
            if m > bound {
                return Err(CodecError::Invalid(format!(
                    "motion vector component {m} beyond its bound {bound}"
                )));
            }
            let negative = m != 0 && coder.bit(&mut ctx.mv_sign[axis], *part < 0)?;
            let m = m as i8;
            *part = if negative { -m } else { m };
        }
        if parts == [0, 0] {
            return Err(CodecError::Invalid(
                "zero motion vector coded as nonzero".into(),
            ));
        }
        field.vectors[b] = MotionVector::new(parts[0], parts[1]);
    }
    Ok(())
}

/// The quarters of a fractional component's magnitude (0..=3), in both directions: "nonzero",
/// then "a half", then "three quarters".
fn code_fraction<C: BinCoder>(
    coder: &mut C,
    ctx: &mut [Context; 3],
    fraction: u32,
) -> Result<u32, CodecError> {
    const _: () = assert!(subpel::SUBPEL == 4, "the bins code quarters");
    if !coder.bit(&mut ctx[0], fraction != 0)? {
        return Ok(0);
    }
    if coder.bit(&mut ctx[1], fraction == 2)? {
        return Ok(2);
    }
    Ok(if coder.bit(&mut ctx[2], fraction == 3)? {
        3
    } else {
        1
    })
}

/// The prediction of every value: the channel's median (key) or the reference displaced by the
/// field (in quarters of a feature when `fractional`). It is written into `out`, whose old
/// contents do not matter: every value is overwritten. Reusing the buffer of a dropped
/// reconstruction there saves the page faults of a fresh allocation (at [256, 200, 272], a
/// fresh 56 MB plane cost ~10% of the encoder's time).
fn prediction(
    reference: Option<&AdaptiveTensor>,
    dc: &[f32],
    desc: &TensorDesc,
    field: Option<&MotionField>,
    fractional: bool,
    mut out: Vec<f32>,
) -> Result<Vec<f32>, CodecError> {
    let shape = desc.shape;
    let Some(reference) = reference else {
        // Key unit: each channel's median (what survives of a channel at coarse steps).
        let plane = shape.plane_len();
        out.clear();
        for c in 0..shape.channels {
            out.extend(std::iter::repeat_n(
                dc.get(c).copied().unwrap_or(0.0),
                plane,
            ));
        }
        return Ok(out);
    };
    let Some(field) = field else {
        out.clear();
        out.extend_from_slice(&reference.values);
        return Ok(out);
    };
    if out.len() != shape.len() {
        // Zeroed pages come from the allocator as they are; `resize` would write them all.
        out = vec![0.0; shape.len()];
    }
    let n = reference.values.len().min(out.len());
    let (anchor, out_n) = (&reference.values[..n], &mut out[..n]);
    if fractional {
        // 8-bit tensors stay on their code grid.
        subpel::compensate_planes(anchor, field, out_n, desc.model8.is_some())
    } else {
        motion::compensate_planes(anchor, field, out_n)
    }
    .map_err(super::reconstruct::motion_error)?;
    Ok(out)
}

/// The reconstruction both sides compute: `pred + r·step` (the channel's step).
fn reconstruct(
    desc: TensorDesc,
    mut pred: Vec<f32>,
    steps: &[f32],
    symbols: TensorSymbols,
) -> AdaptiveTensor {
    let activity = match &symbols.field {
        // Predicted units: residuals are zero outside the coded blocks, so only those are
        // visited. At [256, 200, 272] that leaves most of the residual and activity planes
        // untouched, which is most of their cost (each first touch of a page is a fault).
        Some(field) => {
            let grid = &field.grid;
            let (plane, blocks, width) = (grid.plane_len(), grid.len(), grid.width);
            let mut activity = vec![0u8; symbols.residuals.len()];
            for (i, _) in symbols.coded.iter().enumerate().filter(|(_, c)| **c) {
                let step = steps[i / blocks];
                let rect = grid.rect(i % blocks);
                let origin = (i / blocks) * plane + rect.y * width + rect.x;
                for row in (0..rect.height).map(|r| origin + r * width) {
                    let span = row..row + rect.width;
                    for ((p, a), &r) in pred[span.clone()]
                        .iter_mut()
                        .zip(&mut activity[span.clone()])
                        .zip(&symbols.residuals[span])
                    {
                        if r != 0 {
                            *p += r as f32 * step;
                        }
                        *a = r.unsigned_abs().min(2) as u8;
                    }
                }
            }
            activity
        }
        None => {
            let plane = desc.shape.plane_len().max(1);
            for ((p, r), &step) in pred
                .chunks_mut(plane)
                .zip(symbols.residuals.chunks(plane))
                .zip(steps)
            {
                for (p, &r) in p.iter_mut().zip(r) {
                    if r != 0 {
                        *p += r as f32 * step;
                    }
                }
            }
            symbols
                .residuals
                .iter()
                .map(|r| r.unsigned_abs().min(2) as u8)
                .collect()
        }
    };
    AdaptiveTensor {
        desc,
        values: pred,
        activity,
        coded: symbols.coded,
    }
}

/// Where a tensor's slices go: channels per slice, the tensor's index in the unit, the unit's
/// frame tag, and which slices of a predicted unit are refresh slices.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slicing<'a> {
    pub width: usize,
    pub tensor: u8,
    pub tag: u16,
    /// Per slice, whether it is a refresh slice (missing entries: no).
    pub refresh: &'a [bool],
}

/// Overwrites the prediction of `channels` with their medians (key-coded channels).
fn predict_medians(pred: &mut [f32], dc: &[f32], plane: usize, channels: Range<usize>) {
    for c in channels {
        pred[c * plane..(c + 1) * plane].fill(dc[c]);
    }
}

/// Encodes one tensor: its head fields (step, slice width, motion field) into `head` and its
/// slices into `slices`; returns its reconstruction and the bytes of its refresh slices. The
/// reconstruction's values are written into `recycled` (any contents, e.g. the values of a
/// reconstruction no longer needed; see [`prediction`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_tensor(
    desc: TensorDesc,
    current: &[f32],
    reference: Option<&AdaptiveTensor>,
    recycled: Vec<f32>,
    grid: &BlockGrid,
    d: &Decisions<'_>,
    slicing: Slicing<'_>,
    head: &mut Vec<u8>,
    slices: &mut Vec<u8>,
) -> Result<(AdaptiveTensor, usize), CodecError> {
    let shape = desc.shape;
    let plane = shape.plane_len();
    let key = reference.is_none();
    let width = slicing.width;
    let refreshed = |k: usize| !key && slicing.refresh.get(k).copied().unwrap_or(false);
    let slice_channels = |k: usize| k * width..((k + 1) * width).min(shape.channels);
    let field = match reference {
        Some(r) if d.search_range > 0 => {
            // Estimated on the planes with the most energy (motion::SHARED_PLANE_FRACTION).
            let b: Vec<&[f32]> = current.chunks(plane).collect();
            let keep = b.len().div_ceil(motion::SHARED_PLANE_FRACTION);
            let (a, b): (Vec<&[f32]>, Vec<&[f32]>) = motion::strongest_planes(&b, keep)
                .into_iter()
                .map(|c| (&r.values[c * plane..(c + 1) * plane], b[c]))
                .unzip();
            let whole = motion::estimate_shared(&a, &b, grid, d.search_range, d.search);
            let field = match whole {
                Ok(field) if d.fractional => subpel::refine(&a, &b, &field, d.search_range, d.step),
                other => other,
            };
            Some(field.map_err(super::reconstruct::motion_error)?)
        }
        _ => None,
    };
    let slice_count = shape.channels.div_ceil(width);
    let dc = if key || (0..slice_count).any(refreshed) {
        channel_medians(current, shape, desc.model8.is_some(), |c| {
            key || refreshed(c / width)
        })
    } else {
        Vec::new()
    };
    let mut pred = prediction(
        reference,
        &dc,
        &desc,
        field.as_ref(),
        d.fractional,
        recycled,
    )?;
    for k in (0..slice_count).filter(|&k| refreshed(k)) {
        predict_medians(&mut pred, &dc, plane, slice_channels(k));
    }
    let steps = unit_steps(&desc, d.step, d.refresh_step, d.weights, width, refreshed);
    let mut residuals = vec![0i32; shape.len()];
    let blocks = grid.len();
    let mut coded = vec![false; shape.channels * blocks];
    // Block row by block row: first every value's scaled residual d and a = |d| + rounding in
    // one loop over whole rows, which the compiler vectorizes; then the blocks, most of which
    // have no nonzero residual (a < 1 everywhere) on predicted units and are skipped after a
    // scan. In the others, m = min(⌊a⌋, MAX_RESIDUAL) with ⌊a⌋ computed as (a + 2^23) − 2^23
    // (a whole number nearest to a), less 1 if above a: exact for 0 ≤ a < 2^23, while larger
    // values and NaN are their own floor; f32::floor is a libm call on x86-64's baseline. The
    // decision sums the same terms in the same order as a block-by-block loop, and only kept
    // blocks write their residuals: the output is unchanged, and at [256, 200, 272] this loop
    // went from ~110 to ~40 ms per predicted frame.
    let width = shape.width;
    let cols = grid.cols();
    let mut scaled = vec![0.0f32; grid.block * width];
    let mut magnitude = vec![0.0f32; grid.block * width];
    for c in 0..shape.channels {
        let inv = 1.0 / steps[c];
        let rounding = if key || refreshed(c / slicing.width) {
            0.5
        } else {
            d.rounding
        };
        for by in 0..grid.rows() {
            let y0 = by * grid.block;
            let start = c * plane + y0 * width;
            let end = c * plane + (y0 + grid.block).min(shape.height) * width;
            let n = end - start;
            for (((d, m), &x), &p) in scaled[..n]
                .iter_mut()
                .zip(&mut magnitude[..n])
                .zip(&current[start..end])
                .zip(&pred[start..end])
            {
                let dv = (x - p) * inv;
                *d = dv;
                *m = dv.abs() + rounding;
            }
            for b in by * cols..(by + 1) * cols {
                let rect = grid.rect(b);
                let rows = (rect.y - y0..rect.y - y0 + rect.height).map(|r| r * width + rect.x);
                if rows
                    .clone()
                    .all(|o| magnitude[o..o + rect.width].iter().all(|&a| a < 1.0))
                {
                    continue;
                }
                let mut nonzero = 0u32;
                let mut gain = 0.0f32;
                for o in rows.clone() {
                    for j in o..o + rect.width {
                        let a = magnitude[j];
                        let m = if (0.0..8_388_608.0).contains(&a) {
                            let t = (a + 8_388_608.0) - 8_388_608.0;
                            if t > a { t - 1.0 } else { t }
                        } else {
                            a
                        }
                        .min(MAX_RESIDUAL as f32);
                        // From here on `magnitude` holds the residual r (0 where there is none).
                        magnitude[j] = 0.0;
                        if m > 0.0 {
                            let dv = scaled[j];
                            let r = if dv < 0.0 { -m } else { m };
                            magnitude[j] = r;
                            nonzero += 1;
                            // Distortion removed by sending r instead of 0, in step².
                            gain += dv * dv - (dv - r) * (dv - r);
                        }
                    }
                }
                // About 4 bits per nonzero residual (significance, sign, magnitude) and 2 for
                // the block flag: keep the block when it removes more distortion than it costs.
                let keep = nonzero > 0 && gain >= d.lambda * (4.0 * nonzero as f32 + 2.0);
                coded[c * blocks + b] = keep;
                // Only kept blocks are written: most pages of `residuals` are never touched.
                if keep {
                    for o in rows {
                        for (x, &r) in residuals[start + o..start + o + rect.width]
                            .iter_mut()
                            .zip(&magnitude[o..o + rect.width])
                        {
                            *x = r as i32;
                        }
                    }
                }
            }
        }
    }
    let mut symbols = TensorSymbols {
        field,
        coded,
        residuals,
    };
    let field_bytes = match symbols.field.as_mut() {
        Some(field) => {
            let mut coder = ContextEncoder::new();
            code_field(
                &mut coder,
                &mut Contexts::new(),
                field,
                d.search_range,
                d.fractional,
            )?;
            coder.finish()
        }
        None => Vec::new(),
    };
    head.extend_from_slice(&d.step.to_le_bytes());
    if let Some(refresh) = d.refresh_step {
        head.extend_from_slice(&refresh.to_le_bytes());
    }
    head.extend_from_slice(d.weights.unwrap_or_default());
    head.extend_from_slice(&(slicing.width as u32).to_le_bytes());
    head.extend_from_slice(&(field_bytes.len() as u32).to_le_bytes());
    head.extend_from_slice(&field_bytes);
    let mut body = Vec::new();
    let mut refresh_bytes = 0;
    for k in 0..slice_count {
        let channels = slice_channels(k);
        let refresh = refreshed(k);
        body.clear();
        if key || refresh {
            for m in &dc[channels.clone()] {
                body.extend_from_slice(&m.to_le_bytes());
            }
        }
        let mut coder = ContextEncoder::new();
        code_residuals(
            &mut coder,
            &mut Contexts::new(),
            shape,
            grid,
            if refresh { None } else { reference },
            d.resilient,
            &pred,
            &steps,
            channels,
            &mut symbols,
        )?;
        body.extend_from_slice(&coder.finish());
        let index = u16::try_from(k)
            .map_err(|_| CodecError::LimitExceeded(format!("slice {k} of a tensor")))?;
        let before = slices.len();
        slices::write_slice(slices, refresh, slicing.tag, slicing.tensor, index, &body)?;
        if refresh {
            refresh_bytes += slices.len() - before;
        }
    }
    Ok((reconstruct(desc, pred, &steps, symbols), refresh_bytes))
}

/// Per channel, the median of the finite values (0 without any): the value most of the channel
/// is closest to, which is what a coarse step leaves of it (the mean would move sparse,
/// skewed activation maps away from their common value). Whole numbers for 8-bit tensors, so
/// that their reconstruction stays on the code grid. Only the channels `wanted` are measured
/// (the others are 0): a predicted unit sends the medians of its refresh slices only.
fn channel_medians(
    values: &[f32],
    shape: Shape,
    whole: bool,
    wanted: impl Fn(usize) -> bool,
) -> Vec<f32> {
    let mut sorted = Vec::with_capacity(shape.plane_len());
    values
        .chunks(shape.plane_len().max(1))
        .take(shape.channels)
        .enumerate()
        .map(|(c, plane)| {
            if !wanted(c) {
                return 0.0;
            }
            sorted.clear();
            sorted.extend(plane.iter().copied().filter(|v| v.is_finite()));
            if sorted.is_empty() {
                return 0.0;
            }
            let mid = sorted.len() / 2;
            let (_, median, _) = sorted.select_nth_unstable_by(mid, f32::total_cmp);
            let median = *median;
            if whole { median.round() } else { median }
        })
        .collect()
}

/// Checks the channel medians read from a key unit.
pub(crate) fn check_medians(dc: &[f32]) -> Result<(), CodecError> {
    if dc.iter().all(|m| m.is_finite()) {
        Ok(())
    } else {
        Err(CodecError::Invalid(
            "adaptive key unit with a channel median that is not finite".into(),
        ))
    }
}

/// A tensor's fields in the head piece.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TensorHead<'a> {
    pub step: f32,
    /// The step of the unit's refresh slices (units whose header says they carry one).
    pub refresh_step: Option<f32>,
    /// Per channel, the weight code of its step (units with weights).
    pub weights: Option<&'a [u8]>,
    /// Channels per slice.
    pub slice_width: usize,
    /// The range-coded motion field (empty without one).
    pub field: &'a [u8],
}

/// What became of a tensor's channels in one unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Concealment {
    /// Channels whose slice was missing, damaged, or predicted from a concealed channel.
    pub channels: usize,
    /// Slices that were missing or damaged.
    pub slices: usize,
}

/// Decodes one tensor from its head fields and the slices that arrived (`slices[k]` is slice
/// k). The channels of a missing or undecodable slice are concealed: the prediction (the
/// motion-compensated reference; for a key unit the held `fallback` frame, else zero), and
/// marked in `tainted`. A predicted slice with a tainted channel is not parsed (its contexts
/// would read a reference the encoder never had) and stays concealed until a key unit or a
/// refresh slice brings the channel back; in a `resilient` unit it is parsed (its contexts do
/// not read the reference), and its channels, still off by what was lost, stay counted as
/// concealed until then. Errors only on a malformed head.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_tensor(
    desc: TensorDesc,
    head: &TensorHead<'_>,
    slices: &[Option<SliceRef<'_>>],
    reference: Option<&AdaptiveTensor>,
    resilient: bool,
    fallback: Option<&AdaptiveTensor>,
    grid: &BlockGrid,
    search_range: u8,
    fractional: bool,
    tainted: &mut [bool],
) -> Result<(AdaptiveTensor, Concealment), CodecError> {
    let shape = desc.shape;
    let step = check_step(head.step)?;
    let refresh_step = head.refresh_step.map(check_step).transpose()?;
    let width = head.slice_width;
    debug_assert_eq!(slices.len(), shape.channels.div_ceil(width));
    debug_assert_eq!(tainted.len(), shape.channels);
    let field = if reference.is_some() && search_range > 0 {
        let mut field = MotionField::zero(*grid);
        code_field(
            &mut ContextDecoder::new(head.field)?,
            &mut Contexts::new(),
            &mut field,
            search_range,
            fractional,
        )?;
        Some(field)
    } else if head.field.is_empty() {
        None
    } else {
        return Err(CodecError::Invalid(
            "motion field in a unit without motion".into(),
        ));
    };
    let key = reference.is_none();
    let ranges = |k: usize| k * width..((k + 1) * width).min(shape.channels);
    let plane = shape.plane_len();
    // Per slice: whether it is key-coded, and its payload after the medians.
    let mut usable: Vec<Option<(bool, &[u8])>> = Vec::with_capacity(slices.len());
    let mut dc = Vec::new();
    for (k, slot) in slices.iter().enumerate() {
        let Some(slice) = slot else {
            usable.push(None);
            continue;
        };
        let intra = key || slice.refresh;
        if !intra {
            usable.push(Some((false, slice.body)));
            continue;
        }
        let channels = ranges(k);
        let n = channels.len() * 4;
        let medians: Vec<f32> = slice
            .body
            .get(..n)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if slice.body.len() < n || check_medians(&medians).is_err() {
            usable.push(None);
            continue;
        }
        if dc.is_empty() {
            dc = vec![0.0; shape.channels];
        }
        dc[channels].copy_from_slice(&medians);
        usable.push(Some((true, &slice.body[n..])));
    }
    let steps = unit_steps(&desc, step, refresh_step, head.weights, width, |k| {
        !key && matches!(usable[k], Some((true, _)))
    });
    let mut pred = prediction(
        reference,
        &dc,
        &desc,
        field.as_ref(),
        fractional,
        Vec::new(),
    )?;
    let mut symbols = TensorSymbols {
        field,
        coded: vec![false; shape.channels * grid.len()],
        residuals: vec![0; shape.len()],
    };
    let mut concealment = Concealment::default();
    for (k, slot) in usable.iter().enumerate() {
        let channels = ranges(k);
        let values = channels.start * plane..channels.end * plane;
        let parsed = match *slot {
            Some((true, payload)) if !key => {
                // A refresh slice: key-coded channels inside a predicted unit.
                let kept = pred[values.clone()].to_vec();
                predict_medians(&mut pred, &dc, plane, channels.clone());
                let ok = decode_slice(
                    payload,
                    &mut symbols,
                    shape,
                    grid,
                    (None, false),
                    &pred,
                    &steps,
                    &channels,
                )
                .is_ok();
                if !ok {
                    pred[values.clone()].copy_from_slice(&kept);
                }
                ok
            }
            Some((intra, payload))
                if intra || resilient || !tainted[channels.clone()].contains(&true) =>
            {
                decode_slice(
                    payload,
                    &mut symbols,
                    shape,
                    grid,
                    (reference, resilient),
                    &pred,
                    &steps,
                    &channels,
                )
                .is_ok()
            }
            _ => false,
        };
        if parsed {
            if slot.is_some_and(|(intra, _)| intra) {
                tainted[channels].fill(false);
            } else {
                concealment.channels += tainted[channels].iter().filter(|&&t| t).count();
            }
            continue;
        }
        if slot.is_none() {
            concealment.slices += 1;
        }
        concealment.channels += channels.len();
        symbols.residuals[values.clone()].fill(0);
        symbols.coded[channels.start * grid.len()..channels.end * grid.len()].fill(false);
        if key && let Some(f) = fallback.filter(|f| f.desc.same_layout(&desc)) {
            pred[values.clone()].copy_from_slice(&f.values[values]);
        }
        tainted[channels].fill(true);
    }
    Ok((reconstruct(desc, pred, &steps, symbols), concealment))
}

/// Parses one slice's payload into `symbols`; on error the slice's channels hold garbage that
/// the caller clears.
#[allow(clippy::too_many_arguments)]
fn decode_slice(
    payload: &[u8],
    symbols: &mut TensorSymbols,
    shape: Shape,
    grid: &BlockGrid,
    (reference, resilient): (Option<&AdaptiveTensor>, bool),
    pred: &[f32],
    steps: &[f32],
    channels: &Range<usize>,
) -> Result<(), CodecError> {
    let mut coder = ContextDecoder::new(payload)?;
    code_residuals(
        &mut coder,
        &mut Contexts::new(),
        shape,
        grid,
        reference,
        resilient,
        pred,
        steps,
        channels.clone(),
        symbols,
    )
}
