//! Slices: the independently decodable parts of an adaptive unit, and the pieces a transport
//! may lose one at a time (`BITSTREAM.md`, "Version 4").
//!
//! An adaptive unit is a **head piece** (the envelope: fixed header, tensor descriptors, steps,
//! motion fields, CRC) followed by **slices**, each a group of consecutive channels of one
//! tensor with its own range coder, contexts and CRC. A decoder that has the head and some of
//! the slices decodes the channels it has and conceals the others. [`unit_pieces`] splits a unit
//! into its pieces for a packetizer; [`assemble_unit`] rebuilds a decodable unit from whatever
//! pieces arrived.

use super::CodecError;
use super::bitstream::{UNIT_MAGIC, UnitHeader, parse_envelope};

/// First byte of a slice coded like the rest of its unit (a head piece starts with
/// [`UNIT_MAGIC`]).
pub const SLICE_TYPE: u8 = b'S';
/// First byte of a refresh slice: coded as in a key unit (its channels' medians, key contexts,
/// no reference) inside a predicted unit, so that its channels recover from a loss without a
/// key unit.
pub const REFRESH_SLICE_TYPE: u8 = b'R';

fn is_slice_type(b: u8) -> bool {
    b == SLICE_TYPE || b == REFRESH_SLICE_TYPE
}
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

/// Writes one slice: `body` is the medians (key units and refresh slices) followed by the
/// range-coded payload.
pub(crate) fn write_slice(
    out: &mut Vec<u8>,
    refresh: bool,
    tag: u16,
    tensor: u8,
    index: u16,
    body: &[u8],
) -> Result<(), CodecError> {
    let len = u32::try_from(body.len() + SLICE_OVERHEAD)
        .map_err(|_| CodecError::LimitExceeded(format!("slice of {} bytes", body.len())))?;
    let start = out.len();
    out.push(if refresh {
        REFRESH_SLICE_TYPE
    } else {
        SLICE_TYPE
    });
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
    /// A refresh slice ([`REFRESH_SLICE_TYPE`]).
    pub refresh: bool,
    pub tag: u16,
    pub tensor: u8,
    pub index: u16,
    /// Medians (key units) and payload.
    pub body: &'a [u8],
}

/// Length of the well-framed slice at the start of `bytes`: a slice type and a length within
/// what is there (the CRC is not checked).
fn framed_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < SLICE_OVERHEAD || !is_slice_type(bytes[0]) {
        return None;
    }
    let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    (SLICE_OVERHEAD..=bytes.len()).contains(&len).then_some(len)
}

/// The well-framed slices at the start of `bytes`, and what follows the last of them (empty
/// when every byte belongs to one): a broken length ends the walk, since nothing after it can
/// be found.
fn split_framed(mut bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut out = Vec::new();
    while let Some(len) = framed_len(bytes) {
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    (out, bytes)
}

/// The slice a well-framed `piece` holds ([`split_framed`]), if its CRC matches.
fn check_slice(piece: &[u8]) -> Option<SliceRef<'_>> {
    let crc_at = piece.len() - 4;
    let stored = u32::from_le_bytes([
        piece[crc_at],
        piece[crc_at + 1],
        piece[crc_at + 2],
        piece[crc_at + 3],
    ]);
    (crc32fast::hash(&piece[..crc_at]) == stored).then(|| SliceRef {
        refresh: piece[0] == REFRESH_SLICE_TYPE,
        tag: u16::from_le_bytes([piece[5], piece[6]]),
        tensor: piece[7],
        index: u16::from_le_bytes([piece[8], piece[9]]),
        body: &piece[SLICE_HEADER_LEN..crc_at],
    })
}

/// The slices after a head piece, in order, and how many could not be used. A slice that
/// fails its CRC is left out (the decoder conceals its channels); a broken length ends the
/// walk.
pub(crate) fn parse_slices(bytes: &[u8]) -> (Vec<SliceRef<'_>>, usize) {
    let (pieces, rest) = split_framed(bytes);
    let slices: Vec<SliceRef<'_>> = pieces.iter().filter_map(|p| check_slice(p)).collect();
    let damaged = pieces.len() - slices.len() + usize::from(!rest.is_empty());
    (slices, damaged)
}

/// Splits a complete unit into the pieces a transport may lose one at a time: the head piece
/// first, then the slices in order. A unit of the thesis's modes is one piece.
pub fn unit_pieces(unit: &[u8]) -> Result<Vec<&[u8]>, CodecError> {
    let (header, _, tail) = parse_envelope(unit)?;
    let mut pieces = vec![&unit[..unit.len() - tail.len()]];
    if !header.kind.is_adaptive() {
        return Ok(pieces);
    }
    let (slices, rest) = split_framed(tail);
    let damaged = slices
        .iter()
        .position(|p| check_slice(p).is_none())
        .or((!rest.is_empty()).then_some(slices.len()));
    if let Some(k) = damaged {
        return Err(CodecError::Invalid(format!(
            "slice {k} of the unit is damaged"
        )));
    }
    pieces.extend(slices);
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
        .flat_map(|p| split_framed(p).0)
        .chain(split_framed(tail).0);
    for piece in candidates {
        let Some(slice) = check_slice(piece) else {
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
            write_slice(&mut bytes, i == 1, 7, 0, i, &[i as u8; 5]).unwrap();
        }
        let (all, damaged) = parse_slices(&bytes);
        assert_eq!((all.len(), damaged), (3, 0));
        assert_eq!(all[2].body, &[2u8; 5]);
        assert_eq!(
            all.iter().map(|s| s.refresh).collect::<Vec<_>>(),
            [false, true, false]
        );
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
