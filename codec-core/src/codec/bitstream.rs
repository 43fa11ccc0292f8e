//! Unit envelope (header, total length, CRC-32), tensor descriptors and quantizer parameters,
//! and the byte reader/writer. Layout: `codec-core/BITSTREAM.md`.

use super::{CodecError, UnitKind};
use crate::bytes::LeReader;
use crate::entropy::{self, EntropyMode};
use crate::frame::{MAX_NAME_LEN, MAX_TENSORS, Shape};
use crate::motion::MvSharing;
use crate::quant::QuantParams;

/// Magic bytes of a coded unit.
pub const UNIT_MAGIC: [u8; 4] = *b"FMCU";
/// Bitstream version of the thesis's modes and closed loop (unchanged since version 1, so those
/// units stay bit-exact).
pub const UNIT_VERSION: u8 = 1;
/// Bitstream version of the adaptive mode's units ([`UnitKind::is_adaptive`]): a head piece
/// followed by independently decodable slices. Versions 2 (the same mode without slices) and 3
/// (block flags with other contexts) are retired.
pub const ADAPTIVE_UNIT_VERSION: u8 = 4;
/// Fixed header length.
pub const HEADER_LEN: usize = 44;
/// Shortest possible unit: header + CRC (a real unit also has tensor sections).
pub const MIN_UNIT_LEN: usize = HEADER_LEN + 4;
/// Longest unit accepted.
pub const MAX_UNIT_BYTES: usize = 1 << 30;
/// Widest quantizer code (residuals need N + 1 <= 16 bits).
pub const MAX_BITS: u8 = 15;
/// Largest motion block.
pub const MAX_BLOCK_SIZE: usize = 256;
/// Largest motion vector component (the motion module's limit).
pub use crate::motion::MAX_SEARCH_RANGE;
/// Bound on quantizer zero points in the stream.
pub const MAX_ZERO_POINT_MAGNITUDE: i32 = 1 << 16;

const FLAG_PTS: u8 = 1;
const FLAG_PREVIOUS_FOLLOWS: u8 = 2;
const FLAG_RESILIENT: u8 = 4;
const FLAG_WEIGHTED: u8 = 8;
const FLAG_REFRESH_STEP: u8 = 16;
const FLAG_FRACTIONAL: u8 = 32;
const TOTAL_LEN_OFFSET: usize = 8;

/// Alphabet width of zig-zagged motion vector components bounded by `range`.
pub(crate) fn mv_alphabet_bits(range: u8) -> u8 {
    let max = 2 * range as u32;
    (32 - max.leading_zeros()).max(1) as u8
}

/// The fixed unit header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnitHeader {
    pub kind: UnitKind,
    pub previous_follows: bool,
    /// Adaptive predicted units: the slices' contexts do not read the reference, so a slice
    /// parses even when its reference is concealed.
    pub resilient: bool,
    /// Adaptive units: every tensor's head carries a weight code per channel, the channel's
    /// step multiplier (task-aware allocation).
    pub weighted: bool,
    /// Adaptive predicted units: every tensor's head carries a second step, the one of its
    /// refresh slices.
    pub refresh_step: bool,
    /// Adaptive predicted units: motion vector components in quarters of a feature
    /// ([`crate::subpel`]).
    pub fractional: bool,
    pub entropy: EntropyMode,
    pub frame_index: u64,
    pub pts_ns: Option<u64>,
    pub ref_index: u64,
    /// Identifies the encoder instance; a predicted unit only uses a reference of its stream.
    pub stream_id: u16,
    pub bits: u8,
    pub tensor_count: usize,
    /// Motion parameters; only meaningful for predicted kinds.
    pub block_size: usize,
    pub search_range: u8,
    pub mv_sharing: MvSharing,
}

/// Tensor descriptor: what the decoder outputs for one tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorDesc {
    pub name: String,
    pub shape: Shape,
    /// `Some((scale8, zero_point8))` for u8 tensors of an 8-bit model.
    pub model8: Option<(f32, i32)>,
}

impl TensorDesc {
    /// Same tensor layout (the condition for predicting one from the other).
    pub fn same_layout(&self, other: &TensorDesc) -> bool {
        self.name == other.name
            && self.shape == other.shape
            && match (self.model8, other.model8) {
                (None, None) => true,
                (Some((s, z)), Some((s2, z2))) => s.to_bits() == s2.to_bits() && z == z2,
                _ => false,
            }
    }
}

/// Builds one unit.
pub(crate) struct UnitWriter {
    buf: Vec<u8>,
}

impl UnitWriter {
    pub fn new(h: &UnitHeader) -> Self {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(&UNIT_MAGIC);
        buf.push(if h.kind.is_adaptive() {
            ADAPTIVE_UNIT_VERSION
        } else {
            UNIT_VERSION
        });
        buf.push(h.kind.id());
        let mut flags = 0;
        if h.pts_ns.is_some() {
            flags |= FLAG_PTS;
        }
        if h.previous_follows {
            flags |= FLAG_PREVIOUS_FOLLOWS;
        }
        if h.resilient {
            flags |= FLAG_RESILIENT;
        }
        if h.weighted {
            flags |= FLAG_WEIGHTED;
        }
        if h.refresh_step {
            flags |= FLAG_REFRESH_STEP;
        }
        if h.fractional {
            flags |= FLAG_FRACTIONAL;
        }
        buf.push(flags);
        buf.push(h.entropy.id());
        buf.extend_from_slice(&0u32.to_le_bytes()); // total_len, patched in finish()
        buf.extend_from_slice(&h.frame_index.to_le_bytes());
        buf.extend_from_slice(&h.pts_ns.unwrap_or(0).to_le_bytes());
        buf.extend_from_slice(&h.ref_index.to_le_bytes());
        let predicted = h.kind.is_predicted();
        buf.push(if h.kind.is_adaptive() { 0 } else { h.bits });
        buf.push(h.tensor_count as u8);
        let block = if predicted || h.kind.is_adaptive() {
            h.block_size as u16
        } else {
            0
        };
        buf.extend_from_slice(&block.to_le_bytes());
        buf.push(if predicted { h.search_range } else { 0 });
        buf.push(match (predicted, h.mv_sharing) {
            (true, MvSharing::Shared) => 1,
            _ => 0,
        });
        buf.extend_from_slice(&h.stream_id.to_le_bytes());
        debug_assert_eq!(buf.len(), HEADER_LEN);
        Self { buf }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn desc(&mut self, d: &TensorDesc) {
        self.u16(d.name.len() as u16);
        self.buf.extend_from_slice(d.name.as_bytes());
        self.u8(if d.model8.is_some() { 1 } else { 0 });
        for v in [d.shape.channels, d.shape.height, d.shape.width] {
            self.u32(v as u32);
        }
        if let Some((s8, z8)) = d.model8 {
            self.f32(s8);
            self.i32(z8);
        }
    }

    pub fn params(&mut self, params: &[QuantParams]) {
        self.u32(params.len() as u32);
        for p in params {
            self.f32(p.scale);
            self.i32(p.zero_point);
        }
    }

    /// Entropy-codes `symbols` as one length-prefixed payload.
    pub fn payload(
        &mut self,
        mode: EntropyMode,
        symbols: &[u16],
        alphabet_bits: u8,
    ) -> Result<(), CodecError> {
        let len_at = self.buf.len();
        self.u32(0);
        entropy::encode(mode, symbols, alphabet_bits, 0, &mut self.buf)?;
        let len = self.buf.len() - len_at - 4;
        let len = u32::try_from(len)
            .map_err(|_| CodecError::LimitExceeded(format!("payload of {len} bytes")))?;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    /// Patches the total length (of the envelope: an adaptive unit's head piece) and appends
    /// the CRC.
    pub fn finish(mut self) -> Result<Vec<u8>, CodecError> {
        let total = self.buf.len() + 4;
        if total > MAX_UNIT_BYTES {
            return Err(CodecError::LimitExceeded(format!(
                "coded unit of {total} bytes exceeds {MAX_UNIT_BYTES}"
            )));
        }
        self.buf[TOTAL_LEN_OFFSET..TOTAL_LEN_OFFSET + 4]
            .copy_from_slice(&(total as u32).to_le_bytes());
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        Ok(self.buf)
    }
}

/// Reads untrusted unit bytes: every length is checked against what is present.
pub(crate) type Reader<'a> = LeReader<'a, CodecError>;

impl<'a> LeReader<'a, CodecError> {
    pub fn new(bytes: &'a [u8]) -> Self {
        LeReader::with_error(bytes, |_, _| CodecError::Truncated)
    }

    /// A tensor descriptor; `elements_left` is the unit's remaining element budget.
    pub fn desc(&mut self, elements_left: &mut usize) -> Result<TensorDesc, CodecError> {
        let name_len = self.u16()? as usize;
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(CodecError::Invalid(format!(
                "tensor name length {name_len} outside 1..={MAX_NAME_LEN}"
            )));
        }
        let name = std::str::from_utf8(self.take(name_len)?)
            .map_err(|_| CodecError::Invalid("tensor name is not UTF-8".into()))?
            .to_owned();
        let dtype = self.u8()?;
        let shape = Shape::new(
            self.u32()? as usize,
            self.u32()? as usize,
            self.u32()? as usize,
        );
        shape.validate()?;
        let n = shape.len();
        if n > *elements_left {
            return Err(CodecError::LimitExceeded(format!(
                "tensor '{name}' {shape} exceeds the decoder's remaining element budget {elements_left}"
            )));
        }
        *elements_left -= n;
        let model8 = match dtype {
            0 => None,
            1 => {
                let s8 = self.f32()?;
                let z8 = self.i32()?;
                if !(s8.is_finite() && s8 > 0.0 && (0..=255).contains(&z8)) {
                    return Err(CodecError::Invalid(format!(
                        "tensor '{name}': 8-bit scale {s8} / zero point {z8} invalid"
                    )));
                }
                Some((s8, z8))
            }
            other => {
                return Err(CodecError::Invalid(format!(
                    "tensor '{name}': unknown dtype {other}"
                )));
            }
        };
        Ok(TensorDesc {
            name,
            shape,
            model8,
        })
    }

    /// Quantizer parameters: 1 (per tensor) or `channels` entries.
    pub fn params(&mut self, bits: u8, channels: usize) -> Result<Vec<QuantParams>, CodecError> {
        let count = self.u32()? as usize;
        if count != 1 && count != channels {
            return Err(CodecError::Invalid(format!(
                "{count} quantizer parameter sets for {channels} channels (must be 1 or {channels})"
            )));
        }
        if count.saturating_mul(8) > self.remaining() {
            return Err(CodecError::Truncated);
        }
        let mut params = Vec::with_capacity(count);
        for _ in 0..count {
            let scale = self.f32()?;
            let zero_point = self.i32()?;
            if !(scale.is_finite() && scale > 0.0) {
                return Err(CodecError::Invalid(format!(
                    "quantizer scale {scale} not finite and positive"
                )));
            }
            if zero_point.unsigned_abs() > MAX_ZERO_POINT_MAGNITUDE as u32 {
                return Err(CodecError::Invalid(format!(
                    "quantizer zero point {zero_point} outside ±{MAX_ZERO_POINT_MAGNITUDE}"
                )));
            }
            params.push(QuantParams {
                scale,
                zero_point,
                bits,
            });
        }
        Ok(params)
    }

    /// Decodes one length-prefixed payload of exactly `count` symbols, each checked to be
    /// below `2^alphabet_bits`.
    pub fn payload(
        &mut self,
        mode: EntropyMode,
        alphabet_bits: u8,
        count: usize,
    ) -> Result<Vec<u16>, CodecError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        let symbols = entropy::decode(mode, bytes, alphabet_bits, 0, count)?;
        if symbols.len() != count {
            return Err(CodecError::Invalid(format!(
                "entropy payload gave {} symbols, {count} expected",
                symbols.len()
            )));
        }
        let limit = 1u32 << alphabet_bits;
        if symbols.iter().any(|&s| s as u32 >= limit) {
            return Err(CodecError::Invalid(format!(
                "symbol outside the {alphabet_bits}-bit alphabet"
            )));
        }
        Ok(symbols)
    }

    pub fn expect_end(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(CodecError::Invalid(format!(
                "{n} unexpected bytes after the last tensor section"
            ))),
        }
    }
}

/// Checks magic, version, length and CRC, parses the fixed header and returns it with the
/// bytes of the tensor sections and what follows the envelope: the slices of an adaptive unit
/// (whose envelope is its head piece; `slices.rs`), nothing for the other kinds.
pub(crate) fn parse_envelope(unit: &[u8]) -> Result<(UnitHeader, &[u8], &[u8]), CodecError> {
    if unit.len() < 4 {
        return Err(CodecError::Truncated);
    }
    if unit[..4] != UNIT_MAGIC {
        return Err(CodecError::BadMagic);
    }
    if unit.len() < 5 {
        return Err(CodecError::Truncated);
    }
    let version = unit[4];
    if version != UNIT_VERSION && version != ADAPTIVE_UNIT_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    if unit.len() < MIN_UNIT_LEN {
        return Err(CodecError::Truncated);
    }
    let total = u32::from_le_bytes([unit[8], unit[9], unit[10], unit[11]]) as usize;
    if total > MAX_UNIT_BYTES {
        return Err(CodecError::LimitExceeded(format!(
            "unit claims {total} bytes, more than {MAX_UNIT_BYTES}"
        )));
    }
    if total > unit.len() {
        return Err(CodecError::Truncated);
    }
    if total < MIN_UNIT_LEN {
        return Err(CodecError::Invalid(format!(
            "unit claims {total} bytes, less than the minimum {MIN_UNIT_LEN}"
        )));
    }
    if total < unit.len() && version != ADAPTIVE_UNIT_VERSION {
        return Err(CodecError::Invalid(format!(
            "{} bytes after the unit's claimed end",
            unit.len() - total
        )));
    }
    let body_end = total - 4;
    let stored = u32::from_le_bytes([
        unit[body_end],
        unit[body_end + 1],
        unit[body_end + 2],
        unit[body_end + 3],
    ]);
    if crc32fast::hash(&unit[..body_end]) != stored {
        return Err(CodecError::Crc);
    }

    let mut r = Reader::new(&unit[..body_end]);
    r.take(5)?;
    let kind_id = r.u8()?;
    let kind = UnitKind::from_id(kind_id)
        .ok_or_else(|| CodecError::Invalid(format!("unknown unit kind {kind_id}")))?;
    let adaptive = kind.is_adaptive();
    if adaptive != (version == ADAPTIVE_UNIT_VERSION) {
        return Err(CodecError::Invalid(format!(
            "unit kind {} in a version {version} unit",
            kind.name()
        )));
    }
    let flags = r.u8()?;
    let known = FLAG_PTS
        | FLAG_PREVIOUS_FOLLOWS
        | FLAG_RESILIENT
        | FLAG_WEIGHTED
        | FLAG_REFRESH_STEP
        | FLAG_FRACTIONAL;
    if flags & !known != 0 {
        return Err(CodecError::Invalid(format!("unknown flags {flags:#04x}")));
    }
    let previous_follows = flags & FLAG_PREVIOUS_FOLLOWS != 0;
    let resilient = flags & FLAG_RESILIENT != 0;
    if resilient && kind != UnitKind::AdaptivePredicted {
        return Err(CodecError::Invalid(
            "resilient flag on a unit that is not adaptive-predicted".into(),
        ));
    }
    let weighted = flags & FLAG_WEIGHTED != 0;
    if weighted && !adaptive {
        return Err(CodecError::Invalid(
            "channel-weights flag on a unit that is not adaptive".into(),
        ));
    }
    let refresh_step = flags & FLAG_REFRESH_STEP != 0;
    if refresh_step && kind != UnitKind::AdaptivePredicted {
        return Err(CodecError::Invalid(
            "refresh-step flag on a unit that is not adaptive-predicted".into(),
        ));
    }
    let fractional = flags & FLAG_FRACTIONAL != 0;
    if fractional && kind != UnitKind::AdaptivePredicted {
        return Err(CodecError::Invalid(
            "fractional-motion flag on a unit that is not adaptive-predicted".into(),
        ));
    }
    if previous_follows && kind != UnitKind::Anchor {
        return Err(CodecError::Invalid(
            "previous-follows flag on a unit that is not an anchor".into(),
        ));
    }
    let entropy_id = r.u8()?;
    let entropy = EntropyMode::from_id(entropy_id)
        .ok_or_else(|| CodecError::Invalid(format!("unknown entropy mode {entropy_id}")))?;
    r.u32()?; // total length, checked above
    let frame_index = r.u64()?;
    let pts = r.u64()?;
    let ref_index = r.u64()?;
    let bits = r.u8()?;
    if adaptive {
        if bits != 0 || entropy != EntropyMode::None {
            return Err(CodecError::Invalid(
                "adaptive unit with quantizer bits or an entropy mode set".into(),
            ));
        }
    } else if !(1..=MAX_BITS).contains(&bits) {
        return Err(CodecError::Invalid(format!(
            "bits {bits} outside 1..={MAX_BITS}"
        )));
    }
    let tensor_count = r.u8()? as usize;
    if tensor_count == 0 || tensor_count > MAX_TENSORS {
        return Err(CodecError::Invalid(format!(
            "{tensor_count} tensors outside 1..={MAX_TENSORS}"
        )));
    }
    let block_size = r.u16()? as usize;
    let search_range = r.u8()?;
    let sharing = r.u8()?;
    let stream_id = r.u16()?;
    let mv_sharing = if kind.is_predicted() {
        if !(1..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(CodecError::Invalid(format!(
                "block size {block_size} outside 1..={MAX_BLOCK_SIZE}"
            )));
        }
        if search_range > MAX_SEARCH_RANGE {
            return Err(CodecError::Invalid(format!(
                "search range {search_range} outside 0..={MAX_SEARCH_RANGE}"
            )));
        }
        let fractional_max = crate::subpel::MAX_FRACTIONAL_SEARCH_RANGE;
        if fractional && !(1..=fractional_max).contains(&search_range) {
            return Err(CodecError::Invalid(format!(
                "fractional motion with search range {search_range} outside 1..={fractional_max}"
            )));
        }
        match sharing {
            0 => MvSharing::PerChannel,
            1 => MvSharing::Shared,
            other => {
                return Err(CodecError::Invalid(format!("unknown MV sharing {other}")));
            }
        }
    } else if adaptive {
        if !crate::motion::BLOCK_SIZES.contains(&block_size) {
            return Err(CodecError::Invalid(format!(
                "block size {block_size} not one of {:?}",
                crate::motion::BLOCK_SIZES
            )));
        }
        if search_range != 0 || sharing != 0 || ref_index != frame_index {
            return Err(CodecError::Invalid(
                "adaptive key unit with motion fields or another reference".into(),
            ));
        }
        MvSharing::PerChannel
    } else {
        if block_size != 0 || search_range != 0 || sharing != 0 {
            return Err(CodecError::Invalid(
                "motion fields set in a unit without motion".into(),
            ));
        }
        if ref_index != frame_index {
            return Err(CodecError::Invalid(
                "sync unit whose reference index differs from its frame index".into(),
            ));
        }
        MvSharing::PerChannel
    };
    debug_assert_eq!(r.position(), HEADER_LEN);
    Ok((
        UnitHeader {
            kind,
            previous_follows,
            resilient,
            weighted,
            refresh_step,
            fractional,
            entropy,
            frame_index,
            pts_ns: (flags & FLAG_PTS != 0).then_some(pts),
            ref_index,
            stream_id,
            bits,
            tensor_count,
            block_size,
            search_range,
            mv_sharing,
        },
        &unit[HEADER_LEN..body_end],
        &unit[total..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::zigzag;

    #[test]
    fn mv_alphabet_covers_the_range() {
        assert_eq!(mv_alphabet_bits(0), 1);
        assert_eq!(mv_alphabet_bits(1), 2);
        assert_eq!(mv_alphabet_bits(7), 4);
        assert_eq!(mv_alphabet_bits(8), 5);
        assert_eq!(mv_alphabet_bits(127), 8);
        for r in 0..=127u8 {
            assert!(u32::from(zigzag(-(r as i32))) < 1 << mv_alphabet_bits(r));
            assert!(u32::from(zigzag(r as i32)) < 1 << mv_alphabet_bits(r));
        }
    }
}
