//! The decoder: treats every byte as untrusted.

use super::adaptive::{self, AdaptiveFrame, Concealment, TensorHead};
use super::bitstream::{Reader, TensorDesc, UnitHeader, mv_alphabet_bits, parse_envelope};
use super::reconstruct::{
    RefFrame, RefTensor, apply_residuals, compensate_codes, field_count, fields_from_symbols,
    motion_error, params_for, predict_codes, residual_count, unrotate,
};
use super::slices::{self, MAX_SLICES_PER_TENSOR, SLICE_OVERHEAD, SliceRef};
use super::{CodecError, UnitKind};
use crate::frame::FeatureFrame;
use crate::motion::{BlockGrid, MvSharing};

/// Resource limits of the decoder (beyond the bitstream's fixed limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Most tensor elements one unit may describe (sum over its tensors).
    pub max_elements: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        Self {
            max_elements: 1 << 24,
        }
    }
}

/// Decodes coded units (in decode order) into feature frames (in display order).
#[derive(Debug, Default)]
pub struct Decoder {
    limits: DecoderLimits,
    reference: Option<RefFrame>,
    /// A bi anchor waiting for its predicted t−1, with its stream id.
    pending_anchor: Option<(u16, FeatureFrame)>,
    /// Adaptive mode: the previous reconstruction.
    adaptive_reference: Option<AdaptiveFrame>,
    /// Adaptive mode: per tensor and channel, whether the held reference is concealed there.
    taint: Vec<Vec<bool>>,
    /// Adaptive mode: predict from the held reference when a unit's own reference was lost.
    conceal: bool,
    last_concealment: Concealment,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn with_limits(limits: DecoderLimits) -> Decoder {
        Decoder {
            limits,
            ..Decoder::default()
        }
    }

    /// Decodes one unit; returns the frames that became ready, in display order. On error the
    /// decoder's state is unchanged (a held anchor stays held).
    pub fn decode(&mut self, unit: &[u8]) -> Result<Vec<FeatureFrame>, CodecError> {
        let (header, body, slice_bytes) = parse_envelope(unit)?;
        let mut r = Reader::new(body);
        self.last_concealment = Concealment::default();
        if header.kind.is_adaptive() {
            let (recon, tainted, concealment) =
                self.decode_adaptive(&header, &mut r, slice_bytes)?;
            let frame = recon.to_frame();
            self.adaptive_reference = Some(recon);
            self.taint = tainted;
            self.last_concealment = concealment;
            return Ok(self
                .pending_anchor
                .take()
                .map(|(_, a)| a)
                .into_iter()
                .chain([frame])
                .collect());
        }
        let recon = match header.kind {
            UnitKind::Intra | UnitKind::Anchor | UnitKind::ClosedLoopKey => {
                self.decode_sync(&header, &mut r)?
            }
            UnitKind::AdaptiveKey | UnitKind::AdaptivePredicted => {
                unreachable!("adaptive units are decoded above")
            }
            UnitKind::Predicted | UnitKind::ClosedLoopPredicted => {
                let reference = match &self.reference {
                    Some(reference)
                        if reference.index == header.ref_index
                            && reference.stream_id == header.stream_id =>
                    {
                        reference
                    }
                    _ => {
                        return Err(CodecError::MissingReference {
                            frame: header.frame_index,
                            reference: header.ref_index,
                        });
                    }
                };
                if header.kind == UnitKind::Predicted {
                    decode_predicted(&header, &mut r, reference)?
                } else {
                    decode_closed_loop(&header, &mut r, reference)?
                }
            }
        };
        r.expect_end()?;

        let frame = recon.to_frame();
        let mut out = Vec::with_capacity(2);
        if header.kind == UnitKind::Predicted
            && let Some(anchor) = self.pending_anchor.take_if(|(stream, a)| {
                *stream == header.stream_id
                    && a.index == header.ref_index
                    && header.frame_index < a.index
            })
        {
            out.push(frame);
            out.push(anchor.1);
        } else {
            out.extend(self.pending_anchor.take().map(|(_, a)| a));
            if header.previous_follows {
                self.pending_anchor = Some((header.stream_id, frame));
            } else {
                out.push(frame);
            }
        }
        if header.kind.becomes_reference() {
            self.reference = Some(recon);
        }
        Ok(out)
    }

    /// Adaptive mode: when a predicted unit's reference was lost (a whole unit missing), decode
    /// it from the frame held instead, and when nothing is held (a receiver that joined late)
    /// from zeros, with every channel concealed until a key unit or its refresh slice, rather
    /// than failing with [`CodecError::MissingReference`]. Missing slices are always concealed.
    pub fn set_concealment(&mut self, conceal: bool) {
        self.conceal = conceal;
    }

    /// Channels of the last decoded unit that are concealed (their slice was lost or damaged,
    /// or they are predicted from a concealed channel) and slices missing from it; (0, 0) for
    /// a unit decoded exactly as the encoder reconstructed it.
    pub fn concealed(&self) -> (usize, usize) {
        (self.last_concealment.channels, self.last_concealment.slices)
    }

    /// End of stream: returns a held anchor whose t−1 never arrived.
    pub fn finish(&mut self) -> Vec<FeatureFrame> {
        self.pending_anchor
            .take()
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    }

    /// Drops all state (reference and any held anchor) after a loss; decoding resumes at the
    /// next sync point.
    pub fn reset(&mut self) {
        self.reference = None;
        self.pending_anchor = None;
        self.adaptive_reference = None;
        self.taint.clear();
    }

    /// Decodes an adaptive unit: its head piece (`r`) and the slices after it. Returns the
    /// reconstruction, the channels still concealed afterwards per tensor, and what this unit
    /// concealed.
    fn decode_adaptive(
        &self,
        header: &UnitHeader,
        r: &mut Reader<'_>,
        slice_bytes: &[u8],
    ) -> Result<(AdaptiveFrame, Vec<Vec<bool>>, Concealment), CodecError> {
        let held = self
            .adaptive_reference
            .as_ref()
            .filter(|f| f.stream_id == header.stream_id && f.tensors.len() == header.tensor_count);
        let mut budget = self.limits.max_elements;
        let mut heads = Vec::with_capacity(header.tensor_count);
        let mut descs: Vec<TensorDesc> = Vec::with_capacity(header.tensor_count);
        for _ in 0..header.tensor_count {
            let desc = r.desc(&mut budget)?;
            check_unique(descs.iter(), &desc)?;
            let step = r.f32()?;
            let refresh_step = if header.refresh_step {
                Some(r.f32()?)
            } else {
                None
            };
            let channels = desc.shape.channels;
            let weights = if header.weighted {
                Some(r.take(channels)?)
            } else {
                None
            };
            let slice_width = r.u32()? as usize;
            if slice_width == 0
                || slice_width > channels.max(1)
                || channels.div_ceil(slice_width) > MAX_SLICES_PER_TENSOR
            {
                return Err(CodecError::Invalid(format!(
                    "tensor '{}': {slice_width} channels per slice for {channels} channels",
                    desc.name
                )));
            }
            let len = r.u32()? as usize;
            let field = r.take(len)?;
            heads.push(TensorHead {
                step,
                refresh_step,
                weights,
                slice_width,
                field,
            });
            descs.push(desc);
        }
        let mut lost_sync = false;
        let blank;
        let reference = if header.kind == UnitKind::AdaptivePredicted {
            match held {
                Some(reference) if reference.index == header.ref_index => Some(reference),
                // The reference was lost: predict from what is held, every channel concealed
                // until a key unit or its refresh slice.
                Some(reference) if self.conceal => {
                    lost_sync = true;
                    Some(reference)
                }
                // Nothing held (a receiver that joined late): start from zeros, every channel
                // concealed until its refresh slice (gradual refresh) or a key unit.
                None if self.conceal => {
                    lost_sync = true;
                    blank = AdaptiveFrame::blank(
                        header.stream_id,
                        header.ref_index,
                        &descs,
                        header.block_size,
                    );
                    Some(&blank)
                }
                _ => {
                    return Err(CodecError::MissingReference {
                        frame: header.frame_index,
                        reference: header.ref_index,
                    });
                }
            }
        } else {
            None
        };
        if let Some(reference) = reference {
            for (desc, rt) in descs.iter().zip(&reference.tensors) {
                if !desc.same_layout(&rt.desc) {
                    return Err(CodecError::Invalid(format!(
                        "tensor '{}' {} does not match the reference's '{}' {}",
                        desc.name, desc.shape, rt.desc.name, rt.desc.shape
                    )));
                }
                // The contexts read the reference's block flags block by block: its grid must
                // be this unit's.
                let grid = BlockGrid::new(header.block_size, desc.shape.height, desc.shape.width)
                    .map_err(motion_error)?;
                if rt.coded.len() != desc.shape.channels * grid.len() {
                    return Err(CodecError::Invalid(format!(
                        "tensor '{}': block size {} differs from the reference's",
                        desc.name, header.block_size
                    )));
                }
            }
        }
        r.expect_end()?;
        if reference.is_none() {
            check_key_slice_bytes(header, &descs, &heads, held, slice_bytes.len())?;
        }
        // Slice k of tensor t goes to slots[t][k]; strays and repeats are dropped.
        let mut slots: Vec<Vec<Option<SliceRef<'_>>>> = descs
            .iter()
            .zip(&heads)
            .map(|(d, h)| vec![None; d.shape.channels.div_ceil(h.slice_width)])
            .collect();
        let (found, _damaged) = slices::parse_slices(slice_bytes);
        for slice in found {
            if slice.tag != slices::frame_tag(header.frame_index) {
                continue;
            }
            if let Some(slot) = slots
                .get_mut(usize::from(slice.tensor))
                .and_then(|t| t.get_mut(usize::from(slice.index)))
                && slot.is_none()
            {
                *slot = Some(slice);
            }
        }
        if reference.is_none() {
            for (i, (desc, slots)) in descs.iter().zip(&slots).enumerate() {
                let fallback = held.is_some_and(|f| f.tensors[i].desc.same_layout(desc));
                if !fallback && slots.iter().any(Option::is_none) {
                    return Err(CodecError::Invalid(format!(
                        "key unit {} lacks slices of tensor '{}' and no earlier frame can \
                         conceal them",
                        header.frame_index, desc.name
                    )));
                }
            }
        }
        let mut concealment = Concealment::default();
        let mut tainted = Vec::with_capacity(header.tensor_count);
        let mut tensors: Vec<adaptive::AdaptiveTensor> = Vec::with_capacity(header.tensor_count);
        for (i, ((desc, head), slots)) in descs.into_iter().zip(&heads).zip(&slots).enumerate() {
            let channels = desc.shape.channels;
            let mut taint = match (reference, self.taint.get(i)) {
                (Some(_), Some(t)) if t.len() == channels && !lost_sync => t.clone(),
                (Some(_), _) => vec![true; channels],
                (None, _) => vec![false; channels],
            };
            let grid = BlockGrid::new(header.block_size, desc.shape.height, desc.shape.width)
                .map_err(motion_error)?;
            let (tensor, c) = adaptive::decode_tensor(
                desc,
                head,
                slots,
                reference.map(|f| &f.tensors[i]),
                header.resilient,
                held.map(|f| &f.tensors[i]),
                &grid,
                header.search_range,
                header.fractional,
                &mut taint,
            )?;
            concealment.channels += c.channels;
            concealment.slices += c.slices;
            tensors.push(tensor);
            tainted.push(taint);
        }
        Ok((
            AdaptiveFrame {
                stream_id: header.stream_id,
                index: header.frame_index,
                pts_ns: header.pts_ns,
                tensors,
            },
            tainted,
            concealment,
        ))
    }

    fn decode_sync(&self, header: &UnitHeader, r: &mut Reader<'_>) -> Result<RefFrame, CodecError> {
        let mut budget = self.limits.max_elements;
        let mut tensors: Vec<RefTensor> = Vec::with_capacity(header.tensor_count);
        for _ in 0..header.tensor_count {
            let desc = r.desc(&mut budget)?;
            check_unique(tensors.iter().map(|t| &t.desc), &desc)?;
            let params = r.params(header.bits, desc.shape.channels)?;
            let mut codes = r.payload(header.entropy, header.bits, desc.shape.len())?;
            unrotate(&mut codes, &params, desc.shape, header.bits);
            tensors.push(RefTensor {
                desc,
                params,
                codes,
            });
        }
        Ok(RefFrame {
            stream_id: header.stream_id,
            index: header.frame_index,
            pts_ns: header.pts_ns,
            tensors,
        })
    }
}

/// Bytes of one channel median in a key-coded slice.
const MEDIAN_BYTES: usize = std::mem::size_of::<f32>();

/// Bytes every slice of a key unit holds at least: its header and CRC, and one median (f32)
/// per channel (`BITSTREAM.md`, version 4).
fn key_slices_min_bytes(channels: usize, slice_width: usize) -> usize {
    channels
        .div_ceil(slice_width)
        .saturating_mul(SLICE_OVERHEAD)
        .saturating_add(channels.saturating_mul(MEDIAN_BYTES))
}

/// A key unit must bring every slice of a tensor that no held frame can conceal, and each such
/// slice holds its header, CRC and its channels' medians: slice bytes fewer than that sum make
/// the unit `Invalid` before anything of its size is allocated (the element budget alone would
/// let a head of a few bytes claim `DecoderLimits::max_elements` values).
fn check_key_slice_bytes(
    header: &UnitHeader,
    descs: &[TensorDesc],
    heads: &[TensorHead<'_>],
    held: Option<&AdaptiveFrame>,
    slice_bytes: usize,
) -> Result<(), CodecError> {
    let mut needed = 0usize;
    for (i, (desc, head)) in descs.iter().zip(heads).enumerate() {
        if held.is_some_and(|f| f.tensors[i].desc.same_layout(desc)) {
            // Missing or damaged slices are concealed from the held frame.
            continue;
        }
        needed = needed.saturating_add(key_slices_min_bytes(desc.shape.channels, head.slice_width));
        if needed > slice_bytes {
            return Err(CodecError::Invalid(format!(
                "key unit {}: {slice_bytes} bytes of slices, but its slices up to tensor '{}' \
                 ({} channels in slices of {}) need at least {needed} (slice headers, CRCs \
                 and 4-byte medians)",
                header.frame_index, desc.name, desc.shape.channels, head.slice_width
            )));
        }
    }
    Ok(())
}

/// A tensor name must not repeat within a unit; `seen` are the descriptors already read.
fn check_unique<'a>(
    mut seen: impl Iterator<Item = &'a TensorDesc>,
    desc: &TensorDesc,
) -> Result<(), CodecError> {
    if seen.any(|d| d.name == desc.name) {
        return Err(CodecError::Invalid(format!(
            "tensor name '{}' appears twice",
            desc.name
        )));
    }
    Ok(())
}

/// The tensor descriptor of a predicted unit must repeat the reference's.
fn matching_reference<'a>(
    header: &UnitHeader,
    r: &mut Reader<'_>,
    reference: &'a RefFrame,
    i: usize,
) -> Result<(TensorDesc, &'a RefTensor), CodecError> {
    if header.tensor_count != reference.tensors.len() {
        return Err(CodecError::Invalid(format!(
            "predicted unit has {} tensors, its reference {}",
            header.tensor_count,
            reference.tensors.len()
        )));
    }
    let reference_tensor = &reference.tensors[i];
    // The reference already fits the budget; its size bounds what this unit allocates.
    let mut budget = reference_tensor.desc.shape.len();
    let desc = r.desc(&mut budget)?;
    if !desc.same_layout(&reference_tensor.desc) {
        return Err(CodecError::Invalid(format!(
            "tensor '{}' {} does not match the reference's '{}' {}",
            desc.name, desc.shape, reference_tensor.desc.name, reference_tensor.desc.shape
        )));
    }
    Ok((desc, reference_tensor))
}

fn read_fields(
    header: &UnitHeader,
    r: &mut Reader<'_>,
    grid: &BlockGrid,
    count: usize,
) -> Result<Vec<crate::motion::MotionField>, CodecError> {
    let symbols = r.payload(
        header.entropy,
        mv_alphabet_bits(header.search_range),
        2 * grid.len() * count,
    )?;
    fields_from_symbols(&symbols, grid, count, header.search_range)
}

fn decode_predicted(
    header: &UnitHeader,
    r: &mut Reader<'_>,
    reference: &RefFrame,
) -> Result<RefFrame, CodecError> {
    let mut tensors = Vec::with_capacity(reference.tensors.len());
    for i in 0..header.tensor_count {
        let (desc, reference_tensor) = matching_reference(header, r, reference, i)?;
        if r.u32()? != 0 {
            return Err(CodecError::Invalid(
                "predicted (motion-only) unit carries quantizer parameters".into(),
            ));
        }
        if reference_tensor
            .params
            .iter()
            .any(|p| p.bits != header.bits)
        {
            return Err(CodecError::Invalid(
                "predicted unit's bits differ from its anchor's".into(),
            ));
        }
        let shape = desc.shape;
        let grid =
            BlockGrid::new(header.block_size, shape.height, shape.width).map_err(motion_error)?;
        let fields = read_fields(header, r, &grid, field_count(header.mv_sharing, shape))?;
        tensors.push(RefTensor {
            codes: compensate_codes(reference_tensor, &fields)?,
            desc,
            params: reference_tensor.params.clone(),
        });
    }
    Ok(RefFrame {
        stream_id: header.stream_id,
        index: header.frame_index,
        pts_ns: header.pts_ns,
        tensors,
    })
}

fn decode_closed_loop(
    header: &UnitHeader,
    r: &mut Reader<'_>,
    reference: &RefFrame,
) -> Result<RefFrame, CodecError> {
    let mut tensors = Vec::with_capacity(reference.tensors.len());
    for i in 0..header.tensor_count {
        let (desc, reference_tensor) = matching_reference(header, r, reference, i)?;
        let shape = desc.shape;
        let params = r.params(header.bits, shape.channels)?;
        let grid =
            BlockGrid::new(header.block_size, shape.height, shape.width).map_err(motion_error)?;
        let fields = read_fields(header, r, &grid, field_count(header.mv_sharing, shape))?;
        let nflags = match header.mv_sharing {
            MvSharing::PerChannel => shape.channels * grid.len(),
            MvSharing::Shared => grid.len(),
        };
        let flags = r.payload(header.entropy, 1, nflags)?;
        let count = residual_count(&flags, &grid, shape, header.mv_sharing);
        let residual_symbols = r.payload(header.entropy, header.bits + 1, count)?;
        let mut codes = predict_codes(&reference_tensor.dequantized(), shape, &fields, &params)?;
        apply_residuals(
            &mut codes,
            &flags,
            &residual_symbols,
            &grid,
            shape,
            header.mv_sharing,
            params_for(&params, 0).max_code(),
        );
        tensors.push(RefTensor {
            desc,
            params,
            codes,
        });
    }
    Ok(RefFrame {
        stream_id: header.stream_id,
        index: header.frame_index,
        pts_ns: header.pts_ns,
        tensors,
    })
}
