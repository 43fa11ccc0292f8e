//! Slices: the independently decodable parts of an adaptive unit, and the pieces a transport
//! may lose one at a time (`BITSTREAM.md`, "Version 3").
//!
//! An adaptive unit is a **head piece** (the envelope: fixed header, tensor descriptors, steps,
//! motion fields, CRC) followed by **slices**, each a group of consecutive channels of one
//! tensor with its own range coder, contexts and CRC. A decoder that has the head and some of
//! the slices decodes the channels it has and conceals the others. [`unit_pieces`] splits a unit
//! into its pieces for a packetizer; [`assemble_unit`] rebuilds a decodable unit from whatever
//! pieces arrived.

use super::CodecError;
use super::bitstream::{UNIT_MAGIC, UnitHeader, parse_envelope};
use crate::bytes::LeReader;

/// First byte of every slice (a head piece starts with [`UNIT_MAGIC`]).
pub const SLICE_TYPE: u8 = b'S';
/// Bytes of a slice before its body: type, length, frame tag, tensor, slice index.
pub const SLICE_HEADER_LEN: usize = 10;
/// Bytes a slice adds to its body: header and CRC.
pub const SLICE_OVERHEAD: usize = SLICE_HEADER_LEN + 4;
/// Most slices one tensor may have (the slice index is 16 bits).
pub const MAX_SLICES_PER_TENSOR: usize = u16::MAX as usize + 1;

/// The frame tag of a unit's slices: the low 16 bits of its frame index. It keeps a slice of
/// one unit from being assembled into another.
pub(crate) fn frame_tag(frame_index: u64) -> u16 {
    frame_index as u16
}

/// Channels per slice actually used for a tensor of `channels` channels when the encoder asks
/// for `requested` (0 = the whole tensor in one slice).
pub(crate) fn slice_width(channels: usize, requested: usize) -> usize {
    let at_least = channels.div_ceil(MAX_SLICES_PER_TENSOR).max(1);
    if requested == 0 {
        channels.max(1)
    } else {
        requested.max(at_least).min(channels.max(1))
    }
}

/// Writes one slice: `body` is the key unit's medians followed by the range-coded payload.
pub(crate) fn write_slice(
    out: &mut Vec<u8>,
    tag: u16,
    tensor: u8,
    index: u16,
    body: &[u8],
) -> Result<(), CodecError> {
    let len = u32::try_from(body.len() + SLICE_OVERHEAD)
        .map_err(|_| CodecError::LimitExceeded(format!("slice of {} bytes", body.len())))?;
    let start = out.len();
    out.push(SLICE_TYPE);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.push(tensor);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One slice as found in a unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SliceRef<'a> {
    pub tag: u16,
    pub tensor: u8,
    pub index: u16,
    /// Medians (key units) and payload.
    pub body: &'a [u8],
}

/// Why a slice could not be used.
enum SliceFault {
    /// Its length cannot be trusted: nothing after it can be found either.
    Framing,
    /// Well framed but damaged (CRC): skip it alone.
    Damaged,
}

/// Reads the slice at the start of `bytes`; returns it and its length.
fn read_slice(bytes: &[u8]) -> Result<(SliceRef<'_>, usize), SliceFault> {
    let mut r: LeReader<'_, ()> = LeReader::with_error(bytes, |_, _| ());
    let kind = r.u8().map_err(|_| SliceFault::Framing)?;
    let len = r.u32().map_err(|_| SliceFault::Framing)? as usize;
    if kind != SLICE_TYPE || len < SLICE_OVERHEAD || len > bytes.len() {
        return Err(SliceFault::Framing);
    }
    let crc_at = len - 4;
    let stored = u32::from_le_bytes([
        bytes[crc_at],
        bytes[crc_at + 1],
        bytes[crc_at + 2],
        bytes[crc_at + 3],
    ]);
    if crc32fast::hash(&bytes[..crc_at]) != stored {
        return Err(SliceFault::Damaged);
    }
    let tag = u16::from_le_bytes([bytes[5], bytes[6]]);
    let tensor = bytes[7];
    let index = u16::from_le_bytes([bytes[8], bytes[9]]);
    Ok((
        SliceRef {
            tag,
            tensor,
            index,
            body: &bytes[SLICE_HEADER_LEN..crc_at],
        },
        len,
    ))
}

/// The slices after a head piece, in order. A slice that fails its CRC is left out (the
/// decoder conceals its channels); a broken length ends the walk.
pub(crate) fn parse_slices(mut bytes: &[u8]) -> (Vec<SliceRef<'_>>, usize) {
    let mut out = Vec::new();
    let mut damaged = 0;
    while !bytes.is_empty() {
        match read_slice(bytes) {
            Ok((slice, len)) => {
                out.push(slice);
                bytes = &bytes[len..];
            }
            Err(SliceFault::Damaged) => {
                damaged += 1;
                let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
                bytes = &bytes[len..];
            }
            Err(SliceFault::Framing) => {
                damaged += 1;
                break;
            }
        }
    }
    (out, damaged)
}

/// Splits a complete unit into the pieces a transport may lose one at a time: the head piece
/// first, then the slices in order. A unit of the thesis's modes is one piece.
pub fn unit_pieces(unit: &[u8]) -> Result<Vec<&[u8]>, CodecError> {
    let (header, _, mut tail) = parse_envelope(unit)?;
    let mut pieces = vec![&unit[..unit.len() - tail.len()]];
    if !header.kind.is_adaptive() {
        return Ok(pieces);
    }
    while !tail.is_empty() {
        let (_, len) = read_slice(tail).map_err(|_| {
            CodecError::Invalid(format!("slice {} of the unit is damaged", pieces.len() - 1))
        })?;
        pieces.push(&tail[..len]);
        tail = &tail[len..];
    }
    Ok(pieces)
}

/// Rebuilds a decodable unit from the pieces that arrived, in any order: the head piece (which
/// must be there) and any subset of its slices. Slices that are damaged, belong to another unit
/// (frame tag) or repeat one already taken are left out; the decoder conceals the channels of
/// every slice that is missing.
pub fn assemble_unit(pieces: &[&[u8]]) -> Result<Vec<u8>, CodecError> {
    let mut heads = pieces.iter().filter(|p| p.starts_with(&UNIT_MAGIC));
    let head = heads.next().ok_or_else(|| {
        CodecError::Invalid("the unit's head piece is missing; the unit cannot be decoded".into())
    })?;
    if heads.next().is_some() {
        return Err(CodecError::Invalid(
            "more than one head piece for one unit".into(),
        ));
    }
    let (header, _, tail) = parse_envelope(head)?;
    if !header.kind.is_adaptive() {
        if pieces.len() > 1 {
            return Err(CodecError::Invalid(format!(
                "a {} unit has no slices, but {} pieces came with it",
                header.kind.name(),
                pieces.len() - 1
            )));
        }
        return Ok(head.to_vec());
    }
    let head = &head[..head.len() - tail.len()];
    let mut slices: Vec<(SliceRef<'_>, &[u8])> = Vec::with_capacity(pieces.len());
    let candidates = pieces
        .iter()
        .filter(|p| !p.starts_with(&UNIT_MAGIC))
        .flat_map(|p| split_concatenated(p))
        .chain(split_concatenated(tail));
    for piece in candidates {
        let Ok((slice, _)) = read_slice(piece) else {
            continue;
        };
        if accepts(&header, &slice)
            && !slices
                .iter()
                .any(|(s, _)| (s.tensor, s.index) == (slice.tensor, slice.index))
        {
            slices.push((slice, piece));
        }
    }
    slices.sort_by_key(|(s, _)| (s.tensor, s.index));
    let mut unit =
        Vec::with_capacity(head.len() + slices.iter().map(|(_, p)| p.len()).sum::<usize>());
    unit.extend_from_slice(head);
    for (_, piece) in slices {
        unit.extend_from_slice(piece);
    }
    Ok(unit)
}

/// The well-framed slices at the start of `bytes` (a piece is normally exactly one slice).
fn split_concatenated(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while bytes.len() >= SLICE_OVERHEAD && bytes[0] == SLICE_TYPE {
        let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if len < SLICE_OVERHEAD || len > bytes.len() {
            break;
        }
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    out
}

/// Whether `slice` can belong to the unit of `header`.
fn accepts(header: &UnitHeader, slice: &SliceRef<'_>) -> bool {
    slice.tag == frame_tag(header.frame_index) && usize::from(slice.tensor) < header.tensor_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_width_bounds_the_slice_count() {
        assert_eq!(slice_width(128, 0), 128);
        assert_eq!(slice_width(128, 32), 32);
        assert_eq!(slice_width(16, 32), 16);
        assert_eq!(slice_width(0, 0), 1);
        assert!(200_000usize.div_ceil(slice_width(200_000, 1)) <= MAX_SLICES_PER_TENSOR);
    }

    #[test]
    fn a_damaged_slice_is_skipped_and_a_broken_length_ends_the_walk() {
        let mut bytes = Vec::new();
        for i in 0..3u16 {
            write_slice(&mut bytes, 7, 0, i, &[i as u8; 5]).unwrap();
        }
        let (all, damaged) = parse_slices(&bytes);
        assert_eq!((all.len(), damaged), (3, 0));
        assert_eq!(all[2].body, &[2u8; 5]);
        let mut flipped = bytes.clone();
        flipped[SLICE_OVERHEAD + 5 + SLICE_HEADER_LEN] ^= 1; // body of slice 1
        let (some, damaged) = parse_slices(&flipped);
        assert_eq!(some.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(damaged, 1);
        let mut broken = bytes.clone();
        broken[SLICE_OVERHEAD + 5 + 1] = 0xFF; // length of slice 1
        let (first, damaged) = parse_slices(&broken);
        assert_eq!((first.len(), damaged), (1, 1));
    }
}
