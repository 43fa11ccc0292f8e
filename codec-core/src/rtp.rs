//! The RTP payload format of coded units (`codec-core/RTP-PAYLOAD.md`): a GStreamer-free
//! packetizer and depacketizer, used by the `rtpfmappay` / `rtpfmapdepay` elements and fuzzed
//! on its own.
//!
//! A coded unit is a sequence of *pieces* (a head, then independently decodable slices; a unit
//! without slices is one piece). The packetizer puts each piece in a **single** packet, several
//! small pieces in one **aggregation** packet, or a piece larger than a packet in **fragment**
//! packets; **config** packets carry the stream's caps for receivers that joined late. The
//! depacketizer groups packets by RTP timestamp, rebuilds what it can, and assembles the unit
//! from the head plus whatever slices arrived: a lost packet costs the pieces it carried, not
//! the unit.
//!
//! Every byte the depacketizer reads is untrusted: malformed packets are counted and skipped,
//! never a panic, and memory is bounded by [`DepacketizerLimits`].
//!
//! ```
//! use codec_core::rtp::{Depacketized, Depacketizer, RtpPacket, packetize_pieces};
//!
//! let pieces: [&[u8]; 3] = [b"head", b"small slice", &[7u8; 3000]];
//! let payloads = packetize_pieces(&pieces, true, 1388)?;
//! assert_eq!(payloads.len(), 4); // head + small slice aggregated, then 3 fragments
//! # let mut d = Depacketizer::with_assembler(Default::default(), |p| Ok(p.concat()));
//! # let n = payloads.len();
//! # let mut out = Vec::new();
//! # for (i, p) in payloads.iter().enumerate() {
//! #     out.extend(d.push(RtpPacket { seq: i as u16, timestamp: 9, marker: i + 1 == n, pts_ns: None, payload: p }));
//! # }
//! # assert!(matches!(&out[..], [Depacketized::Unit(u)] if u.complete));
//! # Ok::<(), codec_core::rtp::RtpError>(())
//! ```

use std::collections::BTreeMap;

use thiserror::Error;

use crate::codec::{CodecError, assemble_unit, unit_pieces};

/// `encoding-name` of the format (SDP `a=rtpmap:<pt> X-FMAP/90000`).
pub const ENCODING_NAME: &str = "X-FMAP";
/// RTP clock rate: the RTP timestamp is the unit's presentation time at 90 kHz.
pub const CLOCK_RATE: u32 = 90_000;
/// Name of the media-type parameter (SDP `a=fmtp`, RTP caps field) that carries the stream
/// configuration: the `application/x-fmap-coded` caps as text, base64-encoded.
pub const CONFIG_PARAMETER: &str = "config";

/// Version in the top two bits of every payload header.
pub const PAYLOAD_VERSION: u8 = 1;
/// Bytes of the single-piece and fragment payload headers.
pub const PIECE_HEADER_LEN: usize = 5;
/// Bytes of the aggregation payload header (before its entries).
pub const AGGREGATION_HEADER_LEN: usize = 3;
/// Bytes before each piece inside an aggregation packet (piece index, length).
pub const AGGREGATED_ENTRY_LEN: usize = 4;
/// Bytes of the config payload header.
pub const CONFIG_HEADER_LEN: usize = 1;
/// Smallest RTP payload size the packetizer works with.
pub const MIN_PAYLOAD_SIZE: usize = 16;
/// Most pieces a unit can have (piece indices are 16 bits).
pub const MAX_PIECES: usize = u16::MAX as usize;

const FLAG_START: u8 = 0b100;
const FLAG_END: u8 = 0b010;
const FLAG_KEY: u8 = 0b001;
/// RFC 3550 (A.1): a forward jump this large, or a step back this large, is a restart of the
/// sequence rather than loss or reordering.
const MAX_DROPOUT: i32 = 3000;
const MAX_MISORDER: i32 = 100;

/// Packet types (bits 5..3 of the first payload byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// One whole piece.
    Single = 0,
    /// Several whole pieces, each with its index and length.
    Aggregation = 1,
    /// Part of one piece; S marks the first part, E the last.
    Fragment = 2,
    /// (Part of) the stream configuration; S and E as for fragments.
    Config = 3,
}

impl PacketType {
    fn from_bits(bits: u8) -> Option<PacketType> {
        match bits {
            0 => Some(PacketType::Single),
            1 => Some(PacketType::Aggregation),
            2 => Some(PacketType::Fragment),
            3 => Some(PacketType::Config),
            _ => None,
        }
    }
}

/// Errors of the packetizer (the depacketizer counts bad input instead of failing).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RtpError {
    #[error("RTP payload size {0} is below the minimum of {MIN_PAYLOAD_SIZE} bytes")]
    PayloadTooSmall(usize),
    #[error("a coded unit has {0} pieces, more than {MAX_PIECES}")]
    TooManyPieces(usize),
    #[error("a coded unit has no pieces, or an empty piece")]
    EmptyPiece,
    #[error("the configuration is empty")]
    EmptyConfig,
    #[error("not a coded unit: {0}")]
    Unit(#[from] CodecError),
}

fn first_byte(kind: PacketType, flags: u8) -> u8 {
    (PAYLOAD_VERSION << 6) | ((kind as u8) << 3) | flags
}

/// RTP payloads for one coded unit, in sending order (the last one gets the marker bit). `key`:
/// the unit is a sync point (the K bit). `max_payload`: the RTP payload size limit (MTU minus
/// the RTP header).
pub fn packetize_unit(
    unit: &[u8],
    key: bool,
    max_payload: usize,
) -> Result<Vec<Vec<u8>>, RtpError> {
    let pieces = unit_pieces(unit)?;
    packetize_pieces(&pieces, key, max_payload)
}

/// RTP payloads for the pieces of one unit (head first), in sending order.
///
/// Each piece is sent alone when it fits a packet and the next one does not fit with it; runs
/// of pieces that fit together are aggregated; a piece larger than a packet is fragmented.
pub fn packetize_pieces(
    pieces: &[&[u8]],
    key: bool,
    max_payload: usize,
) -> Result<Vec<Vec<u8>>, RtpError> {
    if max_payload < MIN_PAYLOAD_SIZE {
        return Err(RtpError::PayloadTooSmall(max_payload));
    }
    if pieces.len() > MAX_PIECES {
        return Err(RtpError::TooManyPieces(pieces.len()));
    }
    if pieces.is_empty() || pieces.iter().any(|p| p.is_empty()) {
        return Err(RtpError::EmptyPiece);
    }
    let count = pieces.len() as u16;
    let key = if key { FLAG_KEY } else { 0 };
    let mut out = Vec::new();
    // Pieces waiting to be sent together: (index, bytes).
    let mut batch: Vec<(u16, &[u8])> = Vec::new();
    let mut batch_len = AGGREGATION_HEADER_LEN;
    let flush = |batch: &mut Vec<(u16, &[u8])>, batch_len: &mut usize, out: &mut Vec<Vec<u8>>| {
        match batch.as_slice() {
            [] => {}
            [(index, piece)] => {
                out.push(piece_packet(PacketType::Single, key, *index, count, piece))
            }
            entries => {
                let mut p = Vec::with_capacity(*batch_len);
                p.push(first_byte(PacketType::Aggregation, key));
                p.extend_from_slice(&count.to_be_bytes());
                for (index, piece) in entries {
                    p.extend_from_slice(&index.to_be_bytes());
                    p.extend_from_slice(&(piece.len() as u16).to_be_bytes());
                    p.extend_from_slice(piece);
                }
                out.push(p);
            }
        }
        batch.clear();
        *batch_len = AGGREGATION_HEADER_LEN;
    };
    for (index, piece) in pieces.iter().enumerate() {
        let index = index as u16;
        if PIECE_HEADER_LEN + piece.len() > max_payload {
            flush(&mut batch, &mut batch_len, &mut out);
            let chunk = max_payload - PIECE_HEADER_LEN;
            let parts = piece.len().div_ceil(chunk);
            for (i, part) in piece.chunks(chunk).enumerate() {
                let mut flags = key;
                if i == 0 {
                    flags |= FLAG_START;
                }
                if i + 1 == parts {
                    flags |= FLAG_END;
                }
                out.push(piece_packet(
                    PacketType::Fragment,
                    flags,
                    index,
                    count,
                    part,
                ));
            }
            continue;
        }
        let entry = AGGREGATED_ENTRY_LEN + piece.len();
        if !batch.is_empty() && batch_len + entry > max_payload {
            flush(&mut batch, &mut batch_len, &mut out);
        }
        batch.push((index, piece));
        batch_len += entry;
    }
    flush(&mut batch, &mut batch_len, &mut out);
    Ok(out)
}

fn piece_packet(kind: PacketType, flags: u8, index: u16, count: u16, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(PIECE_HEADER_LEN + data.len());
    p.push(first_byte(kind, flags));
    p.extend_from_slice(&index.to_be_bytes());
    p.extend_from_slice(&count.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// Config packets carrying `config` (the caps as text), in sending order. They take the RTP
/// timestamp of the unit they precede and no marker bit.
pub fn packetize_config(config: &str, max_payload: usize) -> Result<Vec<Vec<u8>>, RtpError> {
    if max_payload < MIN_PAYLOAD_SIZE {
        return Err(RtpError::PayloadTooSmall(max_payload));
    }
    if config.is_empty() {
        return Err(RtpError::EmptyConfig);
    }
    let chunk = max_payload - CONFIG_HEADER_LEN;
    let parts = config.len().div_ceil(chunk);
    Ok(config
        .as_bytes()
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut flags = 0;
            if i == 0 {
                flags |= FLAG_START;
            }
            if i + 1 == parts {
                flags |= FLAG_END;
            }
            let mut p = Vec::with_capacity(CONFIG_HEADER_LEN + part.len());
            p.push(first_byte(PacketType::Config, flags));
            p.extend_from_slice(part);
            p
        })
        .collect())
}

/// A parsed payload header and what follows it.
#[derive(Debug)]
enum Payload<'a> {
    Single {
        key: bool,
        index: u16,
        count: u16,
        data: &'a [u8],
    },
    Aggregation {
        key: bool,
        count: u16,
        entries: Vec<(u16, &'a [u8])>,
    },
    Fragment {
        key: bool,
        start: bool,
        end: bool,
        index: u16,
        count: u16,
        data: &'a [u8],
    },
    Config {
        start: bool,
        end: bool,
        data: &'a [u8],
    },
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Parses one payload; `None` for anything not following `RTP-PAYLOAD.md`.
fn parse_payload(payload: &[u8]) -> Option<Payload<'_>> {
    let (&b0, rest) = payload.split_first()?;
    if b0 >> 6 != PAYLOAD_VERSION {
        return None;
    }
    let kind = PacketType::from_bits((b0 >> 3) & 0b111)?;
    let (start, end, key) = (b0 & FLAG_START != 0, b0 & FLAG_END != 0, b0 & FLAG_KEY != 0);
    let piece = |rest: &'_ [u8]| -> Option<(u16, u16)> {
        if rest.len() < PIECE_HEADER_LEN - 1 {
            return None;
        }
        let (index, count) = (be16(rest), be16(&rest[2..]));
        (count > 0 && index < count).then_some((index, count))
    };
    match kind {
        PacketType::Single => {
            let (index, count) = piece(rest)?;
            let data = &rest[4..];
            (!start && !end && !data.is_empty()).then_some(Payload::Single {
                key,
                index,
                count,
                data,
            })
        }
        PacketType::Fragment => {
            let (index, count) = piece(rest)?;
            let data = &rest[4..];
            // A piece that fits one fragment is a single packet.
            let whole = start && end;
            (!whole && !data.is_empty()).then_some(Payload::Fragment {
                key,
                start,
                end,
                index,
                count,
                data,
            })
        }
        PacketType::Aggregation => {
            if start || end || rest.len() < 2 {
                return None;
            }
            let count = be16(rest);
            let mut r = &rest[2..];
            let mut entries = Vec::new();
            while !r.is_empty() {
                if r.len() < AGGREGATED_ENTRY_LEN {
                    return None;
                }
                let (index, len) = (be16(r), usize::from(be16(&r[2..])));
                r = &r[AGGREGATED_ENTRY_LEN..];
                if index >= count || len == 0 || len > r.len() {
                    return None;
                }
                entries.push((index, &r[..len]));
                r = &r[len..];
            }
            (entries.len() >= 2).then_some(Payload::Aggregation {
                key,
                count,
                entries,
            })
        }
        PacketType::Config => (!key && !rest.is_empty()).then_some(Payload::Config {
            start,
            end,
            data: rest,
        }),
    }
}

/// One received RTP packet, as the depacketizer needs it.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<'a> {
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// The receiver's own time for the packet (e.g. the GStreamer PTS), handed back with the
    /// unit the packet belongs to.
    pub pts_ns: Option<u64>,
    pub payload: &'a [u8],
}

/// What the depacketizer gives back.
#[derive(Debug, Clone, PartialEq)]
pub enum Depacketized {
    /// A complete in-band configuration (the caps as text; checked to be UTF-8 only).
    Config(String),
    /// A unit, whole or with some slices missing.
    Unit(ReceivedUnit),
}

/// A coded unit rebuilt from the pieces that arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedUnit {
    pub timestamp: u32,
    /// `pts_ns` of the unit's first packet in sequence order.
    pub pts_ns: Option<u64>,
    /// A sync point (the sender set K).
    pub key: bool,
    /// Every piece arrived.
    pub complete: bool,
    /// Pieces the unit has, and how many of them arrived.
    pub pieces: u16,
    pub pieces_received: u16,
    /// A decodable unit (the assembler's output).
    pub data: Vec<u8>,
}

/// Bounds on what the depacketizer holds for one unit.
#[derive(Debug, Clone, Copy)]
pub struct DepacketizerLimits {
    /// Payload bytes buffered for one RTP timestamp; more drops the unit.
    pub max_unit_bytes: usize,
    /// Bytes of one configuration.
    pub max_config_bytes: usize,
}

impl Default for DepacketizerLimits {
    fn default() -> Self {
        DepacketizerLimits {
            max_unit_bytes: 64 << 20,
            max_config_bytes: 64 << 10,
        }
    }
}

/// Counters of the depacketizer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DepacketizerStats {
    pub packets: u64,
    /// Sequence numbers never seen (gaps, less the late arrivals that filled them).
    pub packets_lost: u64,
    /// Packets of a unit already assembled, and duplicates.
    pub packets_late: u64,
    /// Packets that do not follow the payload format (or contradict their unit's others).
    pub packets_invalid: u64,
    /// Complete configurations received.
    pub configs: u64,
    /// Units with every piece.
    pub units_complete: u64,
    /// Units assembled with some slices missing.
    pub units_partial: u64,
    /// Units of which packets arrived but that could not be assembled (head missing or
    /// damaged, or over the limits). Units none of whose packets arrived show in
    /// `packets_lost` only.
    pub units_lost: u64,
    /// Pieces of received units that did not arrive.
    pub pieces_lost: u64,
}

/// Builds a unit from its pieces (head first); [`assemble_unit`] unless a test or fuzz target
/// says otherwise.
///
/// [`assemble_unit`]: crate::codec::assemble_unit
pub type Assembler = fn(&[&[u8]]) -> Result<Vec<u8>, CodecError>;

/// The packets of one RTP timestamp, kept until the unit ends.
struct Group {
    timestamp: u32,
    /// Sequence number of the first packet, the origin of `packets`' keys.
    base_seq: u16,
    /// Payloads by sequence offset from `base_seq`.
    packets: BTreeMap<i32, (Vec<u8>, Option<u64>)>,
    bytes: usize,
    overflow: bool,
}

/// A config being reassembled from fragments.
struct ConfigParts {
    next_seq: u16,
    bytes: Vec<u8>,
}

/// Packets in, units and configurations out.
pub struct Depacketizer {
    limits: DepacketizerLimits,
    assemble: Assembler,
    group: Option<Group>,
    /// Highest sequence number seen.
    highest_seq: Option<u16>,
    /// Last sequence number of the unit assembled last (older packets are late).
    done_seq: Option<u16>,
    config: Option<ConfigParts>,
    stats: DepacketizerStats,
}

impl Default for Depacketizer {
    fn default() -> Self {
        Depacketizer::new(DepacketizerLimits::default())
    }
}

fn seq_diff(a: u16, b: u16) -> i32 {
    i32::from(a.wrapping_sub(b) as i16)
}

impl Depacketizer {
    pub fn new(limits: DepacketizerLimits) -> Depacketizer {
        Depacketizer::with_assembler(limits, assemble_unit)
    }

    /// A depacketizer that builds units with `assemble` (tests and fuzzing of the packet logic
    /// with synthetic pieces).
    pub fn with_assembler(limits: DepacketizerLimits, assemble: Assembler) -> Depacketizer {
        Depacketizer {
            limits,
            assemble,
            group: None,
            highest_seq: None,
            done_seq: None,
            config: None,
            stats: DepacketizerStats::default(),
        }
    }

    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// Forgets every packet held (after a flush); the counters stay.
    pub fn reset(&mut self) {
        self.group = None;
        self.highest_seq = None;
        self.done_seq = None;
        self.config = None;
    }

    /// Takes one packet. A unit comes out when its marker packet arrives, or when a packet of
    /// a later unit shows that the marker was lost.
    pub fn push(&mut self, packet: RtpPacket<'_>) -> Vec<Depacketized> {
        self.stats.packets += 1;
        let mut out = Vec::new();
        let seq = packet.seq;
        // Where the packet stands in the sequence.
        let newer = match self.highest_seq {
            None => true,
            Some(h) => {
                let d = seq_diff(seq, h);
                if d > 0 && d < MAX_DROPOUT {
                    self.stats.packets_lost += (d - 1) as u64;
                    true
                } else if d <= 0 && d > -MAX_MISORDER {
                    false
                } else {
                    // The sender restarted its sequence: start afresh.
                    out.extend(self.finish());
                    self.done_seq = None;
                    self.config = None;
                    true
                }
            }
        };
        if newer {
            self.highest_seq = Some(seq);
        } else if self.done_seq.is_some_and(|d| seq_diff(seq, d) <= 0) {
            self.stats.packets_late += 1;
            return out;
        }

        let Some(parsed) = parse_payload(packet.payload) else {
            self.stats.packets_invalid += 1;
            return out;
        };
        if let Payload::Config { start, end, data } = parsed {
            out.extend(self.config_part(seq, start, end, data));
            return out;
        }
        // A packet of another timestamp, later in sequence: the open unit lost its marker.
        if newer
            && self
                .group
                .as_ref()
                .is_some_and(|g| g.timestamp != packet.timestamp)
        {
            out.extend(self.finish());
        }
        let group = self.group.get_or_insert_with(|| Group {
            timestamp: packet.timestamp,
            base_seq: seq,
            packets: BTreeMap::new(),
            bytes: 0,
            overflow: false,
        });
        if group.timestamp != packet.timestamp {
            // An older packet of another unit, arriving inside this one.
            self.stats.packets_late += 1;
            return out;
        }
        let offset = seq_diff(seq, group.base_seq);
        if group.packets.contains_key(&offset) {
            self.stats.packets_late += 1;
            return out;
        }
        if !newer {
            // Reordered, filling a gap counted as loss.
            self.stats.packets_lost = self.stats.packets_lost.saturating_sub(1);
        }
        if !group.overflow {
            group.bytes += packet.payload.len();
            if group.bytes > self.limits.max_unit_bytes {
                group.overflow = true;
                group.packets.clear();
            } else {
                group
                    .packets
                    .insert(offset, (packet.payload.to_vec(), packet.pts_ns));
            }
        }
        if packet.marker {
            out.extend(self.finish());
        }
        out
    }

    /// Assembles the open unit, if any (end of stream).
    pub fn flush(&mut self) -> Vec<Depacketized> {
        self.finish().into_iter().collect()
    }

    fn config_part(
        &mut self,
        seq: u16,
        start: bool,
        end: bool,
        data: &[u8],
    ) -> Option<Depacketized> {
        if start {
            self.config = Some(ConfigParts {
                next_seq: seq,
                bytes: Vec::new(),
            });
        }
        let parts = match self.config.take() {
            Some(c) if c.next_seq == seq => c,
            // A middle part without its beginning: useless.
            _ => return None,
        };
        let mut bytes = parts.bytes;
        if bytes.len() + data.len() > self.limits.max_config_bytes {
            self.stats.packets_invalid += 1;
            return None;
        }
        bytes.extend_from_slice(data);
        if !end {
            self.config = Some(ConfigParts {
                next_seq: seq.wrapping_add(1),
                bytes,
            });
            return None;
        }
        match String::from_utf8(bytes) {
            Ok(text) => {
                self.stats.configs += 1;
                Some(Depacketized::Config(text))
            }
            Err(_) => {
                self.stats.packets_invalid += 1;
                None
            }
        }
    }

    fn finish(&mut self) -> Option<Depacketized> {
        let group = self.group.take()?;
        let last = group.packets.keys().next_back().copied().unwrap_or(0);
        let last_seq = group.base_seq.wrapping_add(last as u16);
        if self.done_seq.is_none_or(|d| seq_diff(last_seq, d) > 0) {
            self.done_seq = Some(last_seq);
        }
        if group.overflow {
            self.stats.units_lost += 1;
            return None;
        }
        let mut pieces: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        let mut count: Option<u16> = None;
        let mut key = false;
        let mut pts_ns = None;
        // The piece being defragmented: (index, offset its next fragment must have, bytes).
        let mut fragment: Option<(u16, i32, Vec<u8>)> = None;
        for (offset, (payload, pts)) in group.packets {
            let Some(parsed) = parse_payload(&payload) else {
                self.stats.packets_invalid += 1;
                continue;
            };
            let packet_count = match &parsed {
                Payload::Single { count, .. }
                | Payload::Aggregation { count, .. }
                | Payload::Fragment { count, .. } => *count,
                Payload::Config { .. } => continue,
            };
            if *count.get_or_insert(packet_count) != packet_count {
                self.stats.packets_invalid += 1;
                continue;
            }
            if pts_ns.is_none() {
                pts_ns = pts;
            }
            match parsed {
                Payload::Single {
                    key: k,
                    index,
                    data,
                    ..
                } => {
                    key |= k;
                    pieces.entry(index).or_insert_with(|| data.to_vec());
                }
                Payload::Aggregation {
                    key: k, entries, ..
                } => {
                    key |= k;
                    for (index, data) in entries {
                        pieces.entry(index).or_insert_with(|| data.to_vec());
                    }
                }
                Payload::Fragment {
                    key: k,
                    start,
                    end,
                    index,
                    data,
                    ..
                } => {
                    key |= k;
                    let mut bytes = if start {
                        Vec::new()
                    } else {
                        match fragment.take() {
                            Some((i, next, bytes)) if i == index && next == offset => bytes,
                            // A fragment before it is missing: the piece is lost.
                            _ => continue,
                        }
                    };
                    bytes.extend_from_slice(data);
                    if end {
                        pieces.entry(index).or_insert(bytes);
                    } else {
                        fragment = Some((index, offset + 1, bytes));
                    }
                }
                Payload::Config { .. } => {}
            }
        }
        let count = count?;
        let received = pieces.len() as u16;
        self.stats.pieces_lost += u64::from(count - received);
        if !pieces.contains_key(&0) {
            self.stats.units_lost += 1;
            return None;
        }
        let refs: Vec<&[u8]> = pieces.values().map(Vec::as_slice).collect();
        match (self.assemble)(&refs) {
            Ok(data) => {
                let complete = received == count;
                if complete {
                    self.stats.units_complete += 1;
                } else {
                    self.stats.units_partial += 1;
                }
                Some(Depacketized::Unit(ReceivedUnit {
                    timestamp: group.timestamp,
                    pts_ns,
                    key,
                    complete,
                    pieces: count,
                    pieces_received: received,
                    data,
                }))
            }
            Err(_) => {
                self.stats.units_lost += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Rng;

    const MAX: usize = 1388; // MTU 1400 minus the 12-byte RTP header

    /// Pieces are "index byte, then filler", so the concatenation shows which arrived.
    fn pieces(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut p = vec![i as u8; n];
                p[0] = i as u8;
                p
            })
            .collect()
    }

    fn concat(pieces: &[&[u8]]) -> Result<Vec<u8>, CodecError> {
        if pieces.iter().any(|p| p.is_empty()) {
            return Err(CodecError::Truncated);
        }
        Ok(pieces.concat())
    }

    fn depacketizer() -> Depacketizer {
        Depacketizer::with_assembler(DepacketizerLimits::default(), concat)
    }

    fn packets(payloads: &[Vec<u8>], first_seq: u16, ts: u32) -> Vec<(u16, u32, bool, Vec<u8>)> {
        let n = payloads.len();
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (first_seq.wrapping_add(i as u16), ts, i + 1 == n, p.clone()))
            .collect()
    }

    fn run(d: &mut Depacketizer, packets: &[(u16, u32, bool, Vec<u8>)]) -> Vec<Depacketized> {
        let mut out = Vec::new();
        for (seq, timestamp, marker, payload) in packets {
            out.extend(d.push(RtpPacket {
                seq: *seq,
                timestamp: *timestamp,
                marker: *marker,
                pts_ns: Some(u64::from(*timestamp)),
                payload,
            }));
        }
        out
    }

    fn units(out: &[Depacketized]) -> Vec<&ReceivedUnit> {
        out.iter()
            .filter_map(|o| match o {
                Depacketized::Unit(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn small_pieces_are_aggregated_and_large_ones_fragmented() {
        let p = pieces(&[60, 3000, 100, 200, 1380, 1384]);
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        let out = packetize_pieces(&refs, true, MAX).unwrap();
        let kinds: Vec<u8> = out.iter().map(|p| (p[0] >> 3) & 7).collect();
        // 60 alone (3000 follows), 3000 in 3 fragments, 100+200 aggregated, 1380 single
        // (5 + 1380 <= 1388), 1384 fragmented (5 + 1384 > 1388).
        assert_eq!(kinds, [0, 2, 2, 2, 1, 0, 2, 2]);
        assert!(
            out.iter()
                .all(|p| p.len() <= MAX && p[0] >> 6 == PAYLOAD_VERSION)
        );
        assert!(out.iter().all(|p| p[0] & FLAG_KEY != 0));
        let mut d = depacketizer();
        let got = run(&mut d, &packets(&out, 65530, 7));
        let u = units(&got);
        assert_eq!(u.len(), 1);
        assert!(u[0].complete && u[0].key);
        assert_eq!(u[0].data, p.concat());
        assert_eq!((u[0].pieces, u[0].pieces_received), (6, 6));
        assert_eq!(d.stats().units_complete, 1);
        assert_eq!(d.stats().packets_lost, 0);
    }

    #[test]
    fn a_unit_without_slices_is_one_piece_in_one_packet_or_fragments() {
        let unit = sliced_units_of(crate::codec::Structure::Intra).swap_remove(0);
        assert_eq!(unit_pieces(&unit.data).unwrap().len(), 1);
        let out = packetize_unit(&unit.data, true, MAX).unwrap();
        assert_eq!(out.len(), unit.data.len().div_ceil(MAX - PIECE_HEADER_LEN));
        assert!(out.len() > 1);
        let mut d = Depacketizer::default();
        let got = run(&mut d, &packets(&out, 0, 1));
        assert_eq!(units(&got)[0].data, unit.data);
        assert!(units(&got)[0].key);
        let small = packetize_pieces(&[&[5u8; 1000][..]], false, MAX).unwrap();
        assert_eq!(small.len(), 1);
        assert_eq!(small[0].len(), PIECE_HEADER_LEN + 1000);
    }

    #[test]
    fn reordered_packets_within_a_unit_are_put_back_in_order() {
        let p = pieces(&[40, 4000, 700, 900]);
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        let out = packetize_pieces(&refs, false, MAX).unwrap();
        let mut list = packets(&out, 100, 3);
        let marker = list.pop().unwrap();
        list.reverse();
        list.push(marker);
        let mut d = depacketizer();
        let got = run(&mut d, &list);
        assert_eq!(units(&got)[0].data, p.concat());
        assert!(units(&got)[0].complete);
        assert_eq!(
            d.stats().packets_lost,
            0,
            "gaps filled by late packets are not loss"
        );
    }

    #[test]
    fn a_lost_fragment_costs_only_its_piece() {
        let p = pieces(&[50, 4000, 1200, 1300]);
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        let out = packetize_pieces(&refs, false, MAX).unwrap();
        // head, 3 fragments of piece 1, piece 2, piece 3.
        assert_eq!(out.len(), 6);
        let mut list = packets(&out, 10, 5);
        list.remove(2); // the middle fragment of piece 1
        let mut d = depacketizer();
        let got = run(&mut d, &list);
        let u = units(&got);
        assert_eq!(u.len(), 1);
        assert!(!u[0].complete);
        assert_eq!((u[0].pieces, u[0].pieces_received), (4, 3));
        assert_eq!(u[0].data, [&p[0][..], &p[2], &p[3]].concat());
        let s = d.stats();
        assert_eq!((s.units_partial, s.pieces_lost, s.packets_lost), (1, 1, 1));
    }

    #[test]
    fn losing_the_head_loses_the_unit_and_the_marker_loss_is_noticed() {
        let p = pieces(&[50, 4000]);
        let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
        let out = packetize_pieces(&refs, false, MAX).unwrap();
        let mut d = depacketizer();
        // Unit 1 without its head; unit 2 without its marker packet; unit 3 whole.
        let mut list = packets(&out, 0, 1);
        list.remove(0);
        let mut second = packets(&out, 4, 2);
        second.pop();
        list.extend(second);
        list.extend(packets(&out, 8, 3));
        let got = run(&mut d, &list);
        let u = units(&got);
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].timestamp, u[0].complete), (2, false));
        assert_eq!((u[1].timestamp, u[1].complete), (3, true));
        let s = d.stats();
        assert_eq!((s.units_lost, s.units_partial, s.units_complete), (1, 1, 1));
        assert_eq!(s.pieces_lost, 2);
        // The marker packet of unit 2; a loss before the first packet received is invisible.
        assert_eq!(s.packets_lost, 1);
    }

    #[test]
    fn config_precedes_units_and_is_reassembled() {
        let caps =
            "application/x-fmap-coded, model=(string)abc, cut=(string)\"a:0,b:0\"".repeat(40);
        let cfg = packetize_config(&caps, 200).unwrap();
        assert!(cfg.len() > 1 && cfg.iter().all(|p| p.len() <= 200));
        let unit = packetize_pieces(&[&b"unit bytes"[..]], true, 200).unwrap();
        let mut list = packets(&cfg, 40, 9);
        for p in &mut list {
            p.2 = false;
        }
        list.extend(packets(&unit, 40 + cfg.len() as u16, 9));
        let mut d = depacketizer();
        let got = run(&mut d, &list);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Depacketized::Config(caps.clone()));
        assert!(matches!(&got[1], Depacketized::Unit(u) if u.data == b"unit bytes" && u.key));
        // A config missing a part is not output.
        let mut d = depacketizer();
        let mut list = packets(&cfg, 0, 9);
        list.remove(1);
        assert!(run(&mut d, &list).is_empty());
    }

    #[test]
    fn late_and_duplicate_packets_are_counted_not_used() {
        let out = packetize_pieces(&[&[1u8; 3000][..]], false, MAX).unwrap();
        let list = packets(&out, 500, 1);
        let mut d = depacketizer();
        let mut all = list.clone();
        all.push(list[1].clone()); // after the marker: late
        all.extend(packets(&out, 503, 2));
        all.insert(5, list[0].clone()); // a duplicate inside the next unit
        let got = run(&mut d, &all);
        assert_eq!(units(&got).len(), 2);
        assert!(units(&got).iter().all(|u| u.complete));
        assert_eq!(d.stats().packets_late, 2);
    }

    #[test]
    fn sequence_restart_is_not_counted_as_loss() {
        let out = packetize_pieces(&[&[1u8; 100][..]], false, MAX).unwrap();
        let mut d = depacketizer();
        let mut list = packets(&out, 10, 1);
        list.extend(packets(&out, 40_000, 2));
        let got = run(&mut d, &list);
        assert_eq!(units(&got).len(), 2);
        assert_eq!(d.stats().packets_lost, 0);
    }

    #[test]
    fn packetizer_rejects_what_it_cannot_send() {
        assert_eq!(
            packetize_pieces(&[b"x"], false, 8),
            Err(RtpError::PayloadTooSmall(8))
        );
        assert_eq!(packetize_pieces(&[], false, MAX), Err(RtpError::EmptyPiece));
        assert_eq!(
            packetize_pieces(&[b"x", b""], false, MAX),
            Err(RtpError::EmptyPiece)
        );
        assert!(packetize_unit(&[], false, MAX).is_err());
        assert_eq!(packetize_config("", MAX), Err(RtpError::EmptyConfig));
    }

    #[test]
    fn garbage_is_counted_never_a_panic() {
        let mut rng = Rng(11);
        let mut d = depacketizer();
        for i in 0..20_000u32 {
            let len = rng.below(40) as usize;
            let mut payload: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            if let Some(b) = payload.first_mut() {
                // Mostly the right version, so the type-specific parsing is reached.
                *b = (*b & 0x3f)
                    | if rng.below(8) == 0 {
                        0
                    } else {
                        PAYLOAD_VERSION << 6
                    };
            }
            let _ = d.push(RtpPacket {
                seq: rng.below(64) as u16,
                timestamp: i / 5 + rng.below(3) as u32,
                marker: rng.below(4) == 0,
                pts_ns: None,
                payload: &payload,
            });
        }
        let _ = d.flush();
        let s = d.stats();
        assert_eq!(s.packets, 20_000);
        assert!(s.packets_invalid > 0);
    }

    #[test]
    fn limits_bound_what_is_held() {
        let limits = DepacketizerLimits {
            max_unit_bytes: 2000,
            max_config_bytes: 100,
        };
        let mut d = Depacketizer::with_assembler(limits, concat);
        let out = packetize_pieces(&[&[1u8; 5000][..]], false, MAX).unwrap();
        assert!(units(&run(&mut d, &packets(&out, 0, 1))).is_empty());
        assert_eq!(d.stats().units_lost, 1);
        let cfg = packetize_config(&"c".repeat(300), 64).unwrap();
        let mut list = packets(&cfg, 10, 2);
        for p in &mut list {
            p.2 = false;
        }
        assert!(run(&mut d, &list).is_empty());
        assert_eq!(d.stats().configs, 0);
    }

    #[test]
    fn random_loss_never_loses_a_unit_whose_head_arrived() {
        let mut rng = Rng(5);
        let mut d = depacketizer();
        let mut seq = 0u16;
        let mut sent_heads = 0;
        for ts in 0..200u32 {
            // A head that fits the first packet, then slices of any size.
            let mut sizes = vec![1 + rng.below(500) as usize];
            sizes.extend((0..rng.below(12)).map(|_| 1 + rng.below(2500) as usize));
            let p = pieces(&sizes);
            let refs: Vec<&[u8]> = p.iter().map(Vec::as_slice).collect();
            let out = packetize_pieces(&refs, ts % 10 == 0, MAX).unwrap();
            let mut list = packets(&out, seq, ts);
            seq = seq.wrapping_add(out.len() as u16);
            list.retain(|_| rng.below(10) != 0);
            // The head is in the first packet.
            sent_heads += u64::from(
                list.first()
                    .is_some_and(|p| p.0 == seq.wrapping_sub(out.len() as u16)),
            );
            let _ = run(&mut d, &list);
        }
        let _ = d.flush();
        let s = d.stats();
        assert_eq!(s.units_complete + s.units_partial, sent_heads);
        assert!(s.units_partial > 0 && s.pieces_lost > 0);
    }

    /// Adaptive units of an 8-channel tensor with one slice per channel, large enough to need
    /// several packets.
    fn sliced_units() -> Vec<crate::CodedUnit> {
        sliced_units_of(crate::codec::Structure::Adaptive)
    }

    /// Units of `structure` for 4 frames of noise (adaptive: one slice per channel).
    fn sliced_units_of(structure: crate::codec::Structure) -> Vec<crate::CodedUnit> {
        use crate::codec::{CodecConfig, Encoder};
        use crate::{FeatureFrame, Shape, Tensor};
        let mut rng = Rng(3);
        let shape = Shape::new(8, 24, 24);
        let mut enc = Encoder::new(CodecConfig {
            structure,
            slice_channels: 1,
            quality: 0.02,
            ..CodecConfig::default()
        })
        .unwrap();
        let mut units = Vec::new();
        for t in 0..4u64 {
            let data = (0..shape.len()).map(|_| rng.unit() * 4.0).collect();
            let frame = FeatureFrame::new(
                t,
                Some(t * 100_000_000),
                vec![Tensor::from_f32("x", shape, data).unwrap()],
            );
            units.extend(enc.push(&frame).unwrap());
        }
        units.extend(enc.finish().unwrap());
        units
    }

    #[test]
    fn real_units_round_trip_and_a_lost_slice_costs_only_that_slice() {
        let units = sliced_units();
        let mut d = Depacketizer::default();
        let mut seq = 0u16;
        let mut lossy = Depacketizer::default();
        let mut partial = Vec::new();
        for (i, unit) in units.iter().enumerate() {
            let pieces = unit_pieces(&unit.data).unwrap();
            assert_eq!(pieces.len(), 9, "head + one slice per channel");
            let out = packetize_unit(&unit.data, unit.kind.is_sync_point(), MAX).unwrap();
            assert!(out.len() > 2, "{} packets", out.len());
            let list = packets(&out, seq, i as u32);
            seq = seq.wrapping_add(out.len() as u16);
            let got = run(&mut d, &list);
            assert_eq!(
                units_of(&got),
                std::slice::from_ref(&unit.data),
                "unit {i} bit-identical"
            );
            // Without the second packet (slices only: the head is in the first), except for
            // the first unit (a key unit's lost slices need an earlier frame to conceal them).
            let mut list = list;
            if i > 0 {
                list.remove(1);
            }
            partial.extend(units_of(&run(&mut lossy, &list)));
        }
        assert_eq!(d.stats().units_complete, units.len() as u64);
        let s = lossy.stats();
        assert_eq!(s.units_partial, units.len() as u64 - 1, "{s:?}");
        assert!(s.pieces_lost >= units.len() as u64 - 1);
        // The decoder takes every partial unit and conceals the missing channels.
        let mut dec = crate::Decoder::new();
        let frames: usize = partial.iter().map(|u| dec.decode(u).unwrap().len()).sum();
        assert_eq!(frames, units.len());
    }

    fn units_of(out: &[Depacketized]) -> Vec<Vec<u8>> {
        units(out).into_iter().map(|u| u.data.clone()).collect()
    }
}
