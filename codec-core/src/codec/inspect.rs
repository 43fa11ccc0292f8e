//! Parsing a unit without a decoder state: what it holds and where its bytes go (for tools,
//! logs and rate measurements).

use super::bitstream::{Reader, mv_alphabet_bits, parse_envelope};
use super::decoder::DecoderLimits;
use super::reconstruct::{field_count, motion_error, residual_count};
use super::{CodecError, UnitKind};
use crate::entropy::EntropyMode;
use crate::frame::Shape;
use crate::motion::{BlockGrid, MvSharing};

/// Summary of one coded unit.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitInfo {
    pub kind: UnitKind,
    pub entropy: EntropyMode,
    pub frame_index: u64,
    pub ref_index: u64,
    pub pts_ns: Option<u64>,
    pub bits: u8,
    pub tensors: Vec<(String, Shape)>,
    pub total_bytes: usize,
    /// Entropy-coded quantizer codes (sync units).
    pub code_bytes: usize,
    pub mv_bytes: usize,
    pub flag_bytes: usize,
    pub residual_bytes: usize,
    /// Closed loop: block flags in the unit, and how many of them have a residual.
    pub total_blocks: usize,
    pub coded_blocks: usize,
    pub residual_symbols: usize,
}

/// Checks and parses every payload of `unit` (entropy decoding included) and reports sizes.
pub fn inspect_unit(unit: &[u8]) -> Result<UnitInfo, CodecError> {
    let (h, body, slice_bytes) = parse_envelope(unit)?;
    let mut info = UnitInfo {
        kind: h.kind,
        entropy: h.entropy,
        frame_index: h.frame_index,
        ref_index: h.ref_index,
        pts_ns: h.pts_ns,
        bits: h.bits,
        tensors: Vec::new(),
        total_bytes: unit.len(),
        code_bytes: 0,
        mv_bytes: 0,
        flag_bytes: 0,
        residual_bytes: 0,
        total_blocks: 0,
        coded_blocks: 0,
        residual_symbols: 0,
    };
    let mut r = Reader::new(body);
    let mut budget = DecoderLimits::default().max_elements;
    for _ in 0..h.tensor_count {
        let desc = r.desc(&mut budget)?;
        let shape = desc.shape;
        if h.kind.is_adaptive() {
            // Step, channel weights, channels per slice, then the range-coded motion field; the
            // channels' medians, block flags and residuals are in the slices after the head.
            r.f32()?;
            if h.refresh_step {
                r.f32()?;
            }
            if h.weighted {
                r.take(shape.channels)?;
            }
            r.u32()?;
            let len = r.u32()? as usize;
            r.take(len)?;
            info.mv_bytes += len;
            info.tensors.push((desc.name, shape));
            continue;
        }
        if h.kind == UnitKind::Predicted {
            if r.u32()? != 0 {
                return Err(CodecError::Invalid(
                    "predicted (motion-only) unit carries quantizer parameters".into(),
                ));
            }
        } else {
            r.params(h.bits, shape.channels)?;
        }
        let mut mark = r.remaining();
        let mut used = |r: &Reader<'_>| {
            let n = mark - r.remaining();
            mark = r.remaining();
            n
        };
        used(&r);
        if h.kind.is_sync_point() {
            r.payload(h.entropy, h.bits, shape.len())?;
            info.code_bytes += used(&r);
        } else {
            let grid =
                BlockGrid::new(h.block_size, shape.height, shape.width).map_err(motion_error)?;
            let fields = field_count(h.mv_sharing, shape);
            r.payload(
                h.entropy,
                mv_alphabet_bits(h.search_range),
                2 * grid.len() * fields,
            )?;
            info.mv_bytes += used(&r);
            if h.kind == UnitKind::ClosedLoopPredicted {
                let nflags = match h.mv_sharing {
                    MvSharing::PerChannel => shape.channels * grid.len(),
                    MvSharing::Shared => grid.len(),
                };
                let flags = r.payload(h.entropy, 1, nflags)?;
                info.flag_bytes += used(&r);
                let count = residual_count(&flags, &grid, shape, h.mv_sharing);
                r.payload(h.entropy, h.bits + 1, count)?;
                info.residual_bytes += used(&r);
                info.total_blocks += nflags;
                info.coded_blocks += flags.iter().filter(|&&f| f != 0).count();
                info.residual_symbols += count;
            }
        }
        info.tensors.push((desc.name, shape));
    }
    r.expect_end()?;
    if h.kind.is_sync_point() {
        info.code_bytes += slice_bytes.len();
    } else {
        info.residual_bytes += slice_bytes.len();
    }
    Ok(info)
}
