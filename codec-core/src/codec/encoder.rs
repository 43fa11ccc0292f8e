//! The streaming encoder.

use super::adaptive::{self, AdaptiveFrame, Decisions, Slicing};
use super::bitstream::MAX_UNIT_BYTES;
use super::bitstream::{TensorDesc, UnitHeader, UnitWriter, mv_alphabet_bits};
use super::reconstruct::{
    self, RefFrame, RefTensor, apply_residuals, compensate_codes, estimate, mv_symbols,
    predict_codes, residuals, rotate,
};
use super::slices;
use super::{CodecConfig, CodecError, CodedUnit, Structure, UnitKind};
use crate::frame::{FeatureFrame, Tensor, TensorData};
use crate::motion::{BlockGrid, MvSharing};
use crate::quant::{self, TensorQuantizer};
use std::borrow::Cow;

/// Encodes feature frames pushed in display order into coded units (in decode order).
///
/// Every [`CodedUnit`] carries the reconstruction the [`super::Decoder`] will output for it; the
/// encoder's references are built from exactly those reconstructions.
#[derive(Debug)]
pub struct Encoder {
    cfg: CodecConfig,
    /// Uni/bi: the current group's anchor. Closed loop: the previous reconstruction.
    reference: Option<RefFrame>,
    /// Bi: frame t−1 waiting for t.
    held: Option<FeatureFrame>,
    /// Uni: the next frame is the group's predicted frame. Bi: the next frame is t+1.
    expect_predicted: bool,
    /// Closed loop: frames since the last key frame.
    since_key: u32,
    last_index: Option<u64>,
    stream_id: u16,
    /// Adaptive: the previous reconstruction.
    adaptive_reference: Option<AdaptiveFrame>,
    /// Adaptive: per tensor, the values buffer of the reconstruction before the previous one,
    /// which the next unit's reconstruction is written into (no fresh allocation per frame).
    recycled: Vec<Vec<f32>>,
    /// Adaptive: each tensor's standard deviation, measured on the last key frame.
    spreads: Vec<f32>,
    /// Adaptive: multiplier of `quality` set by a rate controller (1 = as configured).
    quality_scale: f32,
    /// The next frame starts with a sync unit (a receiver asked for one).
    force_key: bool,
    /// Fill [`CodedUnit::reconstruction`].
    keep_reconstructions: bool,
}

impl Encoder {
    pub fn new(cfg: CodecConfig) -> Result<Encoder, CodecError> {
        cfg.validate()?;
        Ok(Encoder {
            cfg,
            reference: None,
            held: None,
            expect_predicted: false,
            since_key: 0,
            last_index: None,
            stream_id: new_stream_id(),
            adaptive_reference: None,
            recycled: Vec::new(),
            spreads: Vec::new(),
            quality_scale: 1.0,
            force_key: false,
            keep_reconstructions: false,
        })
    }

    /// An encoder whose units carry the decoder's output ([`CodedUnit::reconstruction`]).
    pub fn with_reconstructions(cfg: CodecConfig) -> Result<Encoder, CodecError> {
        let mut encoder = Encoder::new(cfg)?;
        encoder.keep_reconstructions = true;
        Ok(encoder)
    }

    pub fn config(&self) -> &CodecConfig {
        &self.cfg
    }

    /// Random identifier written in every unit of this encoder, so that a decoder never predicts
    /// from a reference of another stream that happens to have the same frame index (e.g. after
    /// the sender restarted).
    pub fn stream_id(&self) -> u16 {
        self.stream_id
    }

    /// Frames of reordering delay: units for frame k may only come out after frame k + delay
    /// was pushed (bi: 1; otherwise 0).
    pub fn delay_frames(&self) -> u32 {
        self.cfg.structure.delay_frames()
    }

    /// The adaptive mode's step factor in effect: `quality` times the rate controller's scale.
    pub fn quality(&self) -> f32 {
        self.cfg.quality * self.quality_scale
    }

    /// Sets the adaptive mode's step factor for the next frames (a rate controller's output),
    /// clamped to the configuration's valid range.
    pub fn set_quality(&mut self, quality: f32) {
        let q = quality.clamp(
            *super::config::QUALITY_RANGE.start(),
            *super::config::QUALITY_RANGE.end(),
        );
        self.quality_scale = q / self.cfg.quality;
    }

    /// Makes the next pushed frame a sync unit (closed loop and adaptive: a key; uni: an
    /// anchor; intra and bi units already are or soon are), as a video encoder answers a
    /// force-key-unit request.
    pub fn force_key(&mut self) {
        self.force_key = true;
    }

    /// Codes `frame` (display order, strictly increasing indices). Returns the units that are
    /// ready, in decode order.
    pub fn push(&mut self, frame: &FeatureFrame) -> Result<Vec<CodedUnit>, CodecError> {
        frame.validate()?;
        if let Some(last) = self.last_index
            && frame.index <= last
        {
            return Err(CodecError::Invalid(format!(
                "frame index {} after {last}: frames must be pushed in display order",
                frame.index
            )));
        }
        self.last_index = Some(frame.index);
        let forced = std::mem::take(&mut self.force_key);
        if forced {
            // Forget the reference: whatever the structure, the frame starts afresh.
            self.since_key = self.cfg.key_interval;
            self.expect_predicted = false;
        }
        match self.cfg.structure {
            Structure::Intra => Ok(vec![self.sync_unit(frame, UnitKind::Intra, false)?]),
            Structure::Uni => {
                if self.expect_predicted && self.can_predict(frame) {
                    self.expect_predicted = false;
                    Ok(vec![self.predicted_unit(frame)?])
                } else {
                    self.expect_predicted = true;
                    Ok(vec![self.sync_unit(frame, UnitKind::Anchor, false)?])
                }
            }
            Structure::Bi => {
                if self.expect_predicted {
                    self.expect_predicted = false;
                    if self.can_predict(frame) {
                        // t+1 of the current group.
                        return Ok(vec![self.predicted_unit(frame)?]);
                    }
                }
                let Some(previous) = self.held.take() else {
                    self.held = Some(frame.clone());
                    return Ok(Vec::new());
                };
                if same_layout(&previous, frame) {
                    // Anchor t, then t−1 predicted from it; t+1 may follow.
                    let anchor = self.sync_unit(frame, UnitKind::Anchor, true)?;
                    let before = self.predicted_unit(&previous)?;
                    self.expect_predicted = true;
                    Ok(vec![anchor, before])
                } else {
                    // The tensor layout changed: t−1 cannot be predicted from t. Send it alone
                    // and start a new group with t.
                    let alone = self.sync_unit(&previous, UnitKind::Anchor, false)?;
                    self.held = Some(frame.clone());
                    Ok(vec![alone])
                }
            }
            Structure::Adaptive => {
                // With gradual refresh, key units only start the stream, follow a layout change
                // or answer a request; refresh slices take their place.
                let interval_open =
                    self.since_key < self.cfg.key_interval || self.cfg.gradual_refresh;
                let predict = !forced
                    && interval_open
                    && self
                        .adaptive_reference
                        .as_ref()
                        .is_some_and(|r| layout_matches(r.tensors.iter().map(|t| &t.desc), frame));
                let refresh_phase = if predict {
                    // Frames since the key unit, this one included, in the refresh cycle.
                    let phase = self.since_key % self.cfg.key_interval;
                    self.since_key = self.since_key.saturating_add(1);
                    self.cfg.gradual_refresh.then_some(phase)
                } else {
                    self.since_key = 1;
                    None
                };
                Ok(vec![self.adaptive_unit(frame, predict, refresh_phase)?])
            }
            Structure::ClosedLoop => {
                if self.since_key < self.cfg.key_interval && self.can_predict(frame) {
                    self.since_key += 1;
                    Ok(vec![self.closed_loop_unit(frame)?])
                } else {
                    self.since_key = 1;
                    Ok(vec![self.sync_unit(
                        frame,
                        UnitKind::ClosedLoopKey,
                        false,
                    )?])
                }
            }
        }
    }

    /// End of stream: codes what an incomplete group still holds (bi: a lone t−1 is sent as an
    /// anchor). The encoder can be reused afterwards; the next frame starts a new group.
    pub fn finish(&mut self) -> Result<Vec<CodedUnit>, CodecError> {
        self.expect_predicted = false;
        match self.held.take() {
            Some(previous) => Ok(vec![self.sync_unit(&previous, UnitKind::Anchor, false)?]),
            None => Ok(Vec::new()),
        }
    }

    fn can_predict(&self, frame: &FeatureFrame) -> bool {
        self.reference
            .as_ref()
            .is_some_and(|r| layout_matches(r.tensors.iter().map(|t| &t.desc), frame))
    }

    fn header(&self, frame: &FeatureFrame, kind: UnitKind, ref_index: u64) -> UnitHeader {
        UnitHeader {
            kind,
            previous_follows: false,
            resilient: false,
            weighted: false,
            refresh_step: false,
            fractional: false,
            entropy: self.cfg.entropy,
            frame_index: frame.index,
            pts_ns: frame.pts_ns,
            ref_index,
            stream_id: self.stream_id,
            bits: self.cfg.bits,
            tensor_count: frame.tensors.len(),
            block_size: self.cfg.block_size,
            search_range: self.cfg.search_range,
            mv_sharing: self.cfg.mv_sharing,
        }
    }

    fn finish_unit(
        &mut self,
        frame: &FeatureFrame,
        kind: UnitKind,
        w: UnitWriter,
        recon: RefFrame,
    ) -> Result<CodedUnit, CodecError> {
        let data = w.finish()?;
        let intra = if kind.is_sync_point() { data.len() } else { 0 };
        let unit = self.coded_unit(frame, kind, data, intra, || recon.to_frame());
        if kind.becomes_reference() {
            self.reference = Some(recon);
        }
        Ok(unit)
    }

    /// A unit of `frame`, with the decoder's output when this encoder keeps it.
    fn coded_unit(
        &self,
        frame: &FeatureFrame,
        kind: UnitKind,
        data: Vec<u8>,
        intra_bytes: usize,
        reconstruction: impl FnOnce() -> FeatureFrame,
    ) -> CodedUnit {
        CodedUnit {
            frame_index: frame.index,
            pts_ns: frame.pts_ns,
            kind,
            data,
            intra_bytes,
            reconstruction: self.keep_reconstructions.then(reconstruction),
        }
    }

    /// Intra / anchor / key: every tensor quantized and entropy coded.
    fn sync_unit(
        &mut self,
        frame: &FeatureFrame,
        kind: UnitKind,
        previous_follows: bool,
    ) -> Result<CodedUnit, CodecError> {
        let mut header = self.header(frame, kind, frame.index);
        header.previous_follows = previous_follows;
        let mut w = UnitWriter::new(&header);
        let mut tensors = Vec::with_capacity(frame.tensors.len());
        for t in &frame.tensors {
            let tq = self.quantizer(t)?;
            let codes = current_codes(&tq, t);
            let desc = desc_of(t);
            w.desc(&desc);
            w.params(&tq.params);
            let symbols = rotate(&codes, &tq.params, t.shape, self.cfg.bits);
            w.payload(self.cfg.entropy, &symbols, self.cfg.bits)?;
            tensors.push(RefTensor {
                desc,
                params: tq.params,
                codes,
            });
        }
        let recon = RefFrame {
            stream_id: self.stream_id,
            index: frame.index,
            pts_ns: frame.pts_ns,
            tensors,
        };
        self.finish_unit(frame, kind, w, recon)
    }

    /// Uni/bi predicted frame: motion vectors only, against the dequantized anchor.
    fn predicted_unit(&mut self, frame: &FeatureFrame) -> Result<CodedUnit, CodecError> {
        let reference = self
            .reference
            .as_ref()
            .ok_or_else(|| CodecError::Invalid("predicted frame without an anchor".into()))?;
        let mut w = UnitWriter::new(&self.header(frame, UnitKind::Predicted, reference.index));
        let mut tensors = Vec::with_capacity(frame.tensors.len());
        for (t, r) in frame.tensors.iter().zip(&reference.tensors) {
            let grid = BlockGrid::new(self.cfg.block_size, t.shape.height, t.shape.width)
                .map_err(reconstruct::motion_error)?;
            let fields = estimate(
                &r.dequantized(),
                &t.to_f32(),
                t.shape,
                &grid,
                self.cfg.search_range,
                self.cfg.search,
                self.cfg.mv_sharing,
            )?;
            w.desc(&r.desc);
            w.params(&[]);
            w.payload(
                self.cfg.entropy,
                &mv_symbols(&fields),
                mv_alphabet_bits(self.cfg.search_range),
            )?;
            tensors.push(RefTensor {
                desc: r.desc.clone(),
                params: r.params.clone(),
                codes: compensate_codes(r, &fields)?,
            });
        }
        let recon = RefFrame {
            stream_id: self.stream_id,
            index: frame.index,
            pts_ns: frame.pts_ns,
            tensors,
        };
        self.finish_unit(frame, UnitKind::Predicted, w, recon)
    }

    /// Closed-loop predicted frame: motion vectors, block flags and code-domain residuals
    /// against the previous reconstruction; the reconstruction is computed exactly as the
    /// decoder does.
    fn closed_loop_unit(&mut self, frame: &FeatureFrame) -> Result<CodedUnit, CodecError> {
        let reference = self
            .reference
            .as_ref()
            .ok_or_else(|| CodecError::Invalid("predicted frame without a reference".into()))?;
        let header = self.header(frame, UnitKind::ClosedLoopPredicted, reference.index);
        let mut w = UnitWriter::new(&header);
        let mut tensors = Vec::with_capacity(frame.tensors.len());
        for (t, r) in frame.tensors.iter().zip(&reference.tensors) {
            let shape = t.shape;
            let grid = BlockGrid::new(self.cfg.block_size, shape.height, shape.width)
                .map_err(reconstruct::motion_error)?;
            let reference_values = r.dequantized();
            let fields = estimate(
                &reference_values,
                &t.to_f32(),
                shape,
                &grid,
                self.cfg.search_range,
                self.cfg.search,
                self.cfg.mv_sharing,
            )?;
            let tq = self.quantizer(t)?;
            let current = current_codes(&tq, t);
            let mut codes = predict_codes(&reference_values, shape, &fields, &tq.params)?;
            let (flags, residual_symbols) = residuals(
                &current,
                &codes,
                &grid,
                shape,
                self.cfg.mv_sharing,
                self.cfg.dead_zone,
            );
            apply_residuals(
                &mut codes,
                &flags,
                &residual_symbols,
                &grid,
                shape,
                self.cfg.mv_sharing,
                reconstruct::params_for(&tq.params, 0).max_code(),
            );
            let desc = desc_of(t);
            w.desc(&desc);
            w.params(&tq.params);
            w.payload(
                self.cfg.entropy,
                &mv_symbols(&fields),
                mv_alphabet_bits(self.cfg.search_range),
            )?;
            w.payload(self.cfg.entropy, &flags, 1)?;
            w.payload(self.cfg.entropy, &residual_symbols, self.cfg.bits + 1)?;
            tensors.push(RefTensor {
                desc,
                params: tq.params,
                codes,
            });
        }
        let recon = RefFrame {
            stream_id: self.stream_id,
            index: frame.index,
            pts_ns: frame.pts_ns,
            tensors,
        };
        self.finish_unit(frame, UnitKind::ClosedLoopPredicted, w, recon)
    }

    /// Adaptive mode: a key unit (`predict` false) or a unit predicted from the previous
    /// reconstruction. With gradual refresh, `refresh_phase` is the frame's place in the
    /// refresh cycle of `key_interval` frames: slice k of a tensor of S slices is refreshed at
    /// phase ⌊k · key_interval / S⌋, so every slice once per cycle, and the tensors' spreads are
    /// measured again at phase 0 (as at a key unit).
    fn adaptive_unit(
        &mut self,
        frame: &FeatureFrame,
        predict: bool,
        refresh_phase: Option<u32>,
    ) -> Result<CodedUnit, CodecError> {
        let reference = if predict {
            self.adaptive_reference.take()
        } else {
            None
        };
        let kind = if reference.is_some() {
            UnitKind::AdaptivePredicted
        } else {
            UnitKind::AdaptiveKey
        };
        let ref_index = reference.as_ref().map_or(frame.index, |r| r.index);
        let mut header = self.header(frame, kind, ref_index);
        header.mv_sharing = MvSharing::Shared;
        header.entropy = crate::entropy::EntropyMode::None;
        header.resilient = self.cfg.resilient && kind == UnitKind::AdaptivePredicted;
        let weights = self.weight_codes(frame)?;
        header.weighted = weights.is_some();
        // Per tensor, its channels per slice and which of its slices this unit refreshes.
        let widths: Vec<usize> = frame
            .tensors
            .iter()
            .map(|t| slices::slice_width(t.shape.channels, self.cfg.slice_channels))
            .collect();
        let interval = u64::from(self.cfg.key_interval);
        let refresh: Vec<Vec<bool>> = frame
            .tensors
            .iter()
            .zip(&widths)
            .map(|(t, &width)| {
                let count = t.shape.channels.div_ceil(width) as u64;
                match refresh_phase {
                    Some(phase) => (0..count)
                        .map(|k| k * interval / count == u64::from(phase))
                        .collect(),
                    None => Vec::new(),
                }
            })
            .collect();
        let key_ratio = self.cfg.key_step_ratio;
        header.refresh_step = kind == UnitKind::AdaptivePredicted
            && key_ratio != 1.0
            && refresh.iter().flatten().any(|&r| r);
        header.fractional = kind == UnitKind::AdaptivePredicted
            && self.cfg.fractional_motion
            && self.cfg.search_range > 0;
        let mut w = UnitWriter::new(&header);
        // f32 tensors are coded from the frame's own values (a copy of a [256, 200, 272] tensor
        // costs ~10% of its encode time).
        let values: Vec<Cow<'_, [f32]>> = frame
            .tensors
            .iter()
            .map(|t| match &t.data {
                TensorData::F32(v) => Cow::Borrowed(v.as_slice()),
                TensorData::U8 { .. } => Cow::Owned(adaptive::native_values(t)),
            })
            .collect();
        if reference.is_none() || refresh_phase == Some(0) {
            self.spreads = values.iter().map(|v| adaptive::spread(v)).collect();
        }
        let quality = self.quality();
        let mut tensors = Vec::with_capacity(frame.tensors.len());
        let mut slice_bytes = Vec::new();
        let mut refresh_bytes = 0;
        for (i, (t, current)) in frame.tensors.iter().zip(&values).enumerate() {
            let desc = desc_of(t);
            let grid = BlockGrid::new(self.cfg.block_size, t.shape.height, t.shape.width)
                .map_err(reconstruct::motion_error)?;
            let key_step = adaptive::step_for(&desc, quality * key_ratio, self.spreads[i]);
            let decisions = Decisions {
                resilient: header.resilient,
                step: if kind == UnitKind::AdaptiveKey {
                    key_step
                } else {
                    adaptive::step_for(&desc, quality, self.spreads[i])
                },
                refresh_step: header.refresh_step.then_some(key_step),
                weights: weights.as_ref().map(|w| w[i].as_slice()),
                rounding: self.cfg.rounding,
                lambda: self.cfg.lambda,
                search_range: self.cfg.search_range,
                search: self.cfg.search,
                fractional: header.fractional,
            };
            w.desc(&desc);
            let mut head = Vec::new();
            let slicing = Slicing {
                width: widths[i],
                tensor: i as u8, // at most MAX_TENSORS
                tag: slices::frame_tag(frame.index),
                refresh: &refresh[i],
            };
            let (tensor, refreshed) = adaptive::encode_tensor(
                desc,
                current,
                reference.as_ref().map(|r| &r.tensors[i]),
                self.recycled
                    .get_mut(i)
                    .map(std::mem::take)
                    .unwrap_or_default(),
                &grid,
                &decisions,
                slicing,
                &mut head,
                &mut slice_bytes,
            )?;
            tensors.push(tensor);
            refresh_bytes += refreshed;
            w.bytes(&head);
        }
        let recon = AdaptiveFrame {
            stream_id: self.stream_id,
            index: frame.index,
            pts_ns: frame.pts_ns,
            tensors,
        };
        let mut data = w.finish()?;
        if data.len() + slice_bytes.len() > MAX_UNIT_BYTES {
            return Err(CodecError::LimitExceeded(format!(
                "coded unit of {} bytes exceeds {MAX_UNIT_BYTES}",
                data.len() + slice_bytes.len()
            )));
        }
        data.extend_from_slice(&slice_bytes);
        let intra = if kind == UnitKind::AdaptiveKey {
            data.len()
        } else {
            refresh_bytes
        };
        let unit = self.coded_unit(frame, kind, data, intra, || recon.to_frame());
        self.adaptive_reference = Some(recon);
        self.recycled = reference
            .map(|r| r.tensors.into_iter().map(|t| t.values).collect())
            .unwrap_or_default();
        Ok(unit)
    }

    /// Adaptive: per tensor of `frame`, the weight codes of its channels' steps (unit weight for
    /// tensors the configuration does not name); `None` without configured weights.
    fn weight_codes(&self, frame: &FeatureFrame) -> Result<Option<Vec<Vec<u8>>>, CodecError> {
        let configured = &self.cfg.channel_weights;
        if configured.is_empty() {
            return Ok(None);
        }
        if let Some(w) = configured
            .iter()
            .find(|w| !frame.tensors.iter().any(|t| t.name == w.tensor))
        {
            let names: Vec<&str> = frame.tensors.iter().map(|t| t.name.as_str()).collect();
            return Err(CodecError::Config(format!(
                "channel weights are for tensor '{}', which the stream does not have \
                 (its tensors: {names:?}); calibrate for this model and split",
                w.tensor
            )));
        }
        frame
            .tensors
            .iter()
            .map(|t| match configured.iter().find(|w| w.tensor == t.name) {
                None => Ok(vec![adaptive::UNIT_WEIGHT_CODE; t.shape.channels]),
                Some(w) if w.weights.len() == t.shape.channels => Ok(w
                    .weights
                    .iter()
                    .map(|&v| adaptive::weight_code(v))
                    .collect()),
                Some(w) => Err(CodecError::Config(format!(
                    "channel weights for tensor '{}' have {} values for its {} channels; \
                     calibrate for this model and split",
                    t.name,
                    w.weights.len(),
                    t.shape.channels
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn quantizer(&self, t: &Tensor) -> Result<TensorQuantizer, CodecError> {
        TensorQuantizer::for_tensor(&self.cfg.quantizer, t, self.cfg.bits)
            .map_err(|e| CodecError::Config(e.to_string()))
    }
}

/// The N-bit codes of the current tensor (for u8 tensors: requantized from the model's codes).
fn current_codes(tq: &TensorQuantizer, t: &Tensor) -> Vec<u16> {
    let mut out = Vec::with_capacity(t.shape.len());
    match &t.data {
        TensorData::F32(values) => tq.quantize_tensor(t.shape, values, &mut out),
        TensorData::U8 {
            codes,
            scale,
            zero_point,
        } => {
            let plane = t.shape.plane_len().max(1);
            let mut chunk_codes = Vec::with_capacity(plane);
            for (c, chunk) in codes.chunks(plane).enumerate() {
                quant::codes_from_8bit(
                    chunk,
                    *scale,
                    *zero_point,
                    tq.params_for_channel(c),
                    &mut chunk_codes,
                );
                out.extend_from_slice(&chunk_codes);
            }
        }
    }
    out
}

/// A per-instance random value from the standard library's randomly seeded hasher keys.
fn new_stream_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() as u16
}

pub(crate) fn desc_of(t: &Tensor) -> TensorDesc {
    TensorDesc {
        name: t.name.clone(),
        shape: t.shape,
        model8: match &t.data {
            TensorData::F32(_) => None,
            TensorData::U8 {
                scale, zero_point, ..
            } => Some((*scale, *zero_point)),
        },
    }
}

fn same_layout(a: &FeatureFrame, b: &FeatureFrame) -> bool {
    layout_matches(a.tensors.iter().map(desc_of).collect::<Vec<_>>().iter(), b)
}

/// Whether `frame`'s tensors have the layouts of `reference` (names, order, shapes, dtypes):
/// the condition for predicting the frame from that reference.
fn layout_matches<'a>(
    reference: impl ExactSizeIterator<Item = &'a TensorDesc>,
    frame: &FeatureFrame,
) -> bool {
    reference.len() == frame.tensors.len()
        && reference
            .zip(&frame.tensors)
            .all(|(a, b)| a.same_layout(&desc_of(b)))
}
