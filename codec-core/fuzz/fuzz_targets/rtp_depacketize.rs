//! `codec_core::rtp::Depacketizer` on hostile RTP packets. Two input forms, chosen by bit 7 of
//! byte 0:
//!
//! * raw (bit 7 clear): a sequence of packets `[seq: u16 LE][ts step: u8][flags: u8][len: u8]
//!   [len bytes of payload]` (flags bit 0: marker; bit 1: the payload's first byte gets the
//!   right version, so the type-specific parsing is reached). Fed to a depacketizer with the
//!   codec's assembler and to one with a plain concatenating assembler.
//! * structured (bit 7 set): pieces of sizes taken from the input, packetized by the real
//!   packetizer at a payload size taken from the input, then the packets are dropped,
//!   duplicated, swapped or have a byte flipped as the input says. Without such changes the
//!   depacketizer must give back exactly the pieces; with them, whatever comes out must be the
//!   head followed by some of the slices, in order.
//!
//! In both forms the depacketizer must never panic, whatever the bytes.
#![no_main]

use codec_core::CodecError;
use codec_core::rtp::{
    Depacketized, Depacketizer, DepacketizerLimits, PAYLOAD_VERSION, RtpPacket, packetize_pieces,
};
use libfuzzer_sys::fuzz_target;

/// Small enough that hostile streams hit the limits often.
const LIMITS: DepacketizerLimits = DepacketizerLimits {
    max_unit_bytes: 1 << 16,
    max_config_bytes: 1 << 10,
};

fn concat(pieces: &[&[u8]]) -> Result<Vec<u8>, CodecError> {
    Ok(pieces.concat())
}

fn raw_form(data: &[u8]) {
    let mut codec = Depacketizer::new(LIMITS);
    let mut plain = Depacketizer::with_assembler(LIMITS, concat);
    let mut rest = data;
    let mut ts = 0u32;
    while rest.len() >= 5 {
        let seq = u16::from_le_bytes([rest[0], rest[1]]);
        ts = ts.wrapping_add(u32::from(rest[2]));
        let flags = rest[3];
        let len = usize::from(rest[4]).min(rest.len() - 5);
        let mut payload = rest[5..5 + len].to_vec();
        rest = &rest[5 + len..];
        if flags & 2 != 0
            && let Some(b) = payload.first_mut()
        {
            *b = (*b & 0x3f) | (PAYLOAD_VERSION << 6);
        }
        let packet = RtpPacket {
            seq,
            timestamp: ts,
            marker: flags & 1 != 0,
            pts_ns: None,
            payload: &payload,
        };
        let _ = codec.push(packet);
        let _ = plain.push(packet);
    }
    let _ = codec.flush();
    let _ = plain.flush();
}

/// Piece `i` of `size` bytes: its index, then filler, so any output shows which pieces it holds.
fn piece(i: usize, size: usize) -> Vec<u8> {
    let mut p = vec![(i as u8) ^ 0x5a; size];
    p[0] = i as u8;
    p
}

fn structured_form(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let max_payload = 16 + usize::from(u16::from_le_bytes([data[1], data[2]]) % 2000);
    let count = 1 + usize::from(data[3] % 24);
    let sizes = data.get(4..4 + 2 * count).unwrap_or(&[]);
    if sizes.len() < 2 * count {
        return;
    }
    let pieces: Vec<Vec<u8>> = sizes
        .chunks_exact(2)
        .enumerate()
        .map(|(i, s)| piece(i, 1 + usize::from(u16::from_le_bytes([s[0], s[1]]) % 5000)))
        .collect();
    let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
    let payloads = packetize_pieces(&refs, true, max_payload).expect("valid pieces");
    assert!(payloads.iter().all(|p| p.len() <= max_payload));

    // (seq, marker, payload), then the changes: [op][index][byte].
    let n = payloads.len();
    let mut packets: Vec<(u16, bool, Vec<u8>)> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i as u16, i + 1 == n, p))
        .collect();
    let sent: usize = packets.iter().map(|p| p.2.len()).sum();
    let changes = &data[4 + 2 * count..];
    for c in changes.chunks_exact(3) {
        if packets.is_empty() {
            break;
        }
        let i = usize::from(c[1]) % packets.len();
        match c[0] % 4 {
            0 => {
                packets.remove(i);
            }
            1 => {
                let p = packets[i].clone();
                packets.push(p);
            }
            2 => {
                let j = usize::from(c[2]) % packets.len();
                packets.swap(i, j);
            }
            _ => {
                let p = &mut packets[i].2;
                let at = usize::from(c[2]) % p.len();
                p[at] ^= c[2] | 1;
            }
        }
    }
    let changed = changes.len() >= 3;

    let mut d = Depacketizer::with_assembler(LIMITS, concat);
    let mut out = Vec::new();
    for (seq, marker, payload) in &packets {
        out.extend(d.push(RtpPacket {
            seq: *seq,
            timestamp: 1,
            marker: *marker,
            pts_ns: None,
            payload,
        }));
    }
    out.extend(d.flush());
    let units: Vec<_> = out
        .into_iter()
        .filter_map(|o| match o {
            Depacketized::Unit(u) => Some(u),
            Depacketized::Config(_) => None,
        })
        .collect();
    let whole = pieces.concat();
    if !changed {
        if sent <= LIMITS.max_unit_bytes {
            assert_eq!(units.len(), 1, "one unit out");
            assert!(units[0].complete);
            assert!(units[0].data == whole, "the pieces, exactly");
        }
        return;
    }
    // Whatever came out of intact packets starts with the head; a flipped byte may change
    // anything, so only check streams without flips.
    if changes.chunks_exact(3).all(|c| c[0] % 4 != 3) {
        for u in &units {
            assert!(u.data.starts_with(&pieces[0]), "the head comes first");
            assert!(u.pieces_received <= u.pieces);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.first() {
        Some(b) if b & 0x80 != 0 => structured_form(data),
        Some(_) => raw_form(&data[1..]),
        None => {}
    }
});
