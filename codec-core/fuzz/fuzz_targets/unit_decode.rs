//! `codec_core::Decoder` on hostile coded units. Two input forms, chosen by bit 7 of byte 0:
//!
//! * raw (bit 7 clear): a sequence of chunks `[len: u16 LE][op: u8][len bytes]`, each decoded
//!   as one unit by the same decoder. `op` bit 0 repairs the envelope first (magic, version,
//!   total_len and CRC-32 made valid, so mutations reach the body parser); bit 1 resets the
//!   decoder before the chunk.
//! * structured (bit 7 set): real units from the `Encoder` (structure, entropy mode, bits and
//!   frame contents taken from the input), then byte mutations `[unit][pos: u16 LE][xor]` with
//!   the CRC repaired (the head's and every slice's). Without mutations the decoder must output
//!   exactly the encoder's reconstructions, bit for bit.
//!
//! In both forms decoding must never panic, whatever the bytes.
//!
//! Speed: encoding the structured form's frames costs several times what decoding them does
//! (motion search, Huffman tables; 80–120 µs uninstrumented, over 1 ms under ASan and coverage),
//! and it is not what this target tests. The encodings are therefore taken from a small set (the
//! frame seed is taken mod [`SEEDS`], and fields the structure ignores are normalised) and
//! cached per process, so that most executions only decode.
#![no_main]

use codec_core::codec::Structure;
use codec_core::codec::{ADAPTIVE_UNIT_VERSION, ChannelWeights, DecoderLimits, SLICE_OVERHEAD};
use codec_core::entropy::EntropyMode;
use codec_core::test_support::Rng;
use codec_core::{CodecConfig, Decoder, Encoder, FeatureFrame, Shape, Tensor};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::OnceLock;

/// Byte offset of total_len and the header length covered by the repair (see BITSTREAM.md).
const TOTAL_LEN_AT: usize = 8;
const MIN_REPAIRABLE: usize = 16;

/// Makes the envelope of `unit` valid: magic and version from a real unit, and CRC-32s
/// recomputed. Version 1: total_len = the chunk length, the trailing CRC. Adaptive units
/// (version 4): the head piece keeps its total_len when it fits in the chunk (else it becomes
/// the whole chunk), and every well-framed slice after it gets its CRC recomputed too, so that
/// mutations reach the slice parser.
fn repair(unit: &mut [u8], template: &[u8]) {
    if unit.len() < MIN_REPAIRABLE || template.len() < 5 {
        return;
    }
    unit[..5].copy_from_slice(&template[..5]);
    let claimed = u32::from_le_bytes(unit[TOTAL_LEN_AT..TOTAL_LEN_AT + 4].try_into().unwrap());
    let head = match claimed as usize {
        n if unit[4] == ADAPTIVE_UNIT_VERSION && (MIN_REPAIRABLE..=unit.len()).contains(&n) => n,
        _ => unit.len(),
    };
    unit[TOTAL_LEN_AT..TOTAL_LEN_AT + 4].copy_from_slice(&(head as u32).to_le_bytes());
    fix_crc(&mut unit[..head]);
    let mut at = head;
    while unit.len() - at >= SLICE_OVERHEAD {
        let len = u32::from_le_bytes(unit[at + 1..at + 5].try_into().unwrap()) as usize;
        if len < SLICE_OVERHEAD || len > unit.len() - at {
            break;
        }
        fix_crc(&mut unit[at..at + len]);
        at += len;
    }
}

/// Recomputes the CRC-32 in the last 4 bytes of `piece`.
fn fix_crc(piece: &mut [u8]) {
    let end = piece.len() - 4;
    let crc = crc32fast::hash(&piece[..end]);
    piece[end..].copy_from_slice(&crc.to_le_bytes());
}

/// A short sequence of time-correlated, ReLU-like frames with two tensors.
fn frames(seed: u64, count: usize) -> Vec<FeatureFrame> {
    let mut rng = Rng(seed);
    let shapes = [("a", Shape::new(2, 8, 8)), ("b", Shape::new(3, 4, 5))];
    let bases: Vec<Vec<f32>> = shapes
        .iter()
        .map(|(_, s)| {
            (0..s.channels * s.height * s.width)
                .map(|_| {
                    let v = rng.below(1000) as f32 / 100.0 - 4.0;
                    v.max(0.0)
                })
                .collect()
        })
        .collect();
    (0..count)
        .map(|t| {
            let tensors = shapes
                .iter()
                .zip(&bases)
                .map(|((name, shape), base)| {
                    // Shift by one element per frame: motion the encoder can find.
                    let n = base.len();
                    let data = (0..n).map(|i| base[(i + t) % n]).collect();
                    Tensor::from_f32(*name, *shape, data).expect("valid tensor")
                })
                .collect();
            FeatureFrame::new(t as u64, Some(t as u64 * 100_000_000), tensors)
        })
        .collect()
}

/// A real unit (encoded once) whose magic and version the repair copies.
fn template_unit() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(encode_template)
}

fn encode_template() -> Vec<u8> {
    let mut enc = Encoder::new(CodecConfig {
        structure: Structure::Intra,
        ..CodecConfig::default()
    })
    .expect("intra config");
    let mut units = enc.push(&frames(1, 1)[0]).expect("encode");
    units.extend(enc.finish().expect("finish"));
    units.swap_remove(0).data
}

/// Small enough that hostile units claiming huge tensors are rejected quickly (fuzzing the
/// logic, not the allocator), large enough for the structured frames (2*8*8 + 3*4*5).
const FUZZ_LIMITS: DecoderLimits = DecoderLimits {
    max_elements: 1 << 16,
};

fn raw_form(data: &[u8]) {
    let template = template_unit();
    let mut dec = Decoder::with_limits(FUZZ_LIMITS);
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let op = rest[2];
        rest = &rest[3..];
        let len = len.min(rest.len());
        let mut unit = rest[..len].to_vec();
        rest = &rest[len..];
        if op & 2 != 0 {
            dec.reset();
        }
        if op & 1 != 0 {
            repair(&mut unit, template);
        }
        let _ = dec.decode(&unit);
    }
    let _ = dec.finish();
}

/// Frame contents per configuration: the seed is taken mod this, so that encodings repeat.
const SEEDS: u64 = 4;
/// Most cached encodings; the cache is emptied when it is full.
const CACHE_CAPACITY: usize = 8192;

/// What the structured form decodes: the encoder's units (coded bytes) and the raw
/// serialization of each reconstruction, by frame index.
struct Encoded {
    units: Vec<Vec<u8>>,
    reconstructions: Vec<(u64, Vec<u8>)>,
}

/// The encoder's configuration and frame count taken from the structured form's first 14
/// bytes, with what the structure ignores normalised (so that equal encodings share a key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct EncodingKey {
    structure: usize,
    entropy: usize,
    bits: u8,
    count: usize,
    key_interval: u32,
    seed: u64,
    /// Byte 0 when the channel weights apply (adaptive, bit 0 set), else 0.
    weights: u8,
}

impl EncodingKey {
    fn new(data: &[u8]) -> Self {
        let structure = usize::from(data[1]) % Structure::ALL.len();
        let adaptive = Structure::ALL[structure] == Structure::Adaptive;
        let uses_key_interval = matches!(
            Structure::ALL[structure],
            Structure::Adaptive | Structure::ClosedLoop
        );
        EncodingKey {
            structure,
            // The adaptive mode has its own coder and no N-bit quantizer.
            entropy: if adaptive {
                0
            } else {
                usize::from(data[2]) % EntropyMode::ALL.len()
            },
            bits: if adaptive { 8 } else { 1 + data[3] % 8 },
            count: 1 + usize::from(data[4] % 5),
            key_interval: if uses_key_interval {
                1 + u32::from(data[5] % 4)
            } else {
                1
            },
            seed: u64::from_le_bytes(data[6..14].try_into().expect("8 bytes")) % SEEDS,
            weights: if adaptive && data[0] & 1 != 0 {
                data[0]
            } else {
                0
            },
        }
    }

    /// Encodes the frames; `None` when the encoder rejects the configuration.
    fn encode(&self) -> Option<Encoded> {
        // Bit 0 of byte 0: adaptive units carry channel weights (tensor "a": 2 channels).
        let w = self.weights;
        let channel_weights = if w & 1 != 0 {
            vec![ChannelWeights {
                tensor: "a".into(),
                weights: vec![0.5 + f32::from(w >> 4), 1.0 / (1.0 + f32::from(w >> 1 & 7))],
            }]
        } else {
            Vec::new()
        };
        let cfg = CodecConfig {
            structure: Structure::ALL[self.structure],
            entropy: EntropyMode::ALL[self.entropy],
            bits: self.bits,
            key_interval: self.key_interval,
            channel_weights,
            ..CodecConfig::default()
        };
        let mut enc = Encoder::with_reconstructions(cfg).ok()?;
        let mut units = Vec::new();
        for frame in frames(self.seed, self.count) {
            units.extend(enc.push(&frame).expect("encoder accepts a valid frame"));
        }
        units.extend(enc.finish().expect("encoder finishes"));
        let raw = |f: &FeatureFrame| (f.index, f.to_raw().expect("serializes"));
        let mut reconstructions: Vec<_> = units
            .iter()
            .filter_map(|u| u.reconstruction.as_ref().map(raw))
            .collect();
        reconstructions.sort();
        Some(Encoded {
            units: units.into_iter().map(|u| u.data).collect(),
            reconstructions,
        })
    }
}

/// The encoding of `key`, from the cache (libFuzzer runs inputs on one thread).
fn encoded(key: EncodingKey) -> Option<Rc<Encoded>> {
    thread_local! {
        static CACHE: RefCell<HashMap<EncodingKey, Option<Rc<Encoded>>>> =
            RefCell::new(HashMap::new());
    }
    CACHE.with_borrow_mut(|cache| {
        if let Some(hit) = cache.get(&key) {
            return hit.clone();
        }
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        let value = key.encode().map(Rc::new);
        cache.insert(key, value.clone());
        value
    })
}

fn structured_form(data: &[u8]) {
    if data.len() < 14 {
        return;
    }
    let Some(encoding) = encoded(EncodingKey::new(data)) else {
        return;
    };
    let mutations = &data[14..];

    let mut coded = encoding.units.clone();
    for m in mutations.chunks_exact(4) {
        let n = coded.len();
        let unit = &mut coded[usize::from(m[0]) % n];
        let pos = usize::from(u16::from_le_bytes([m[1], m[2]])) % unit.len();
        unit[pos] ^= m[3];
    }
    let mutated = mutations.len() >= 4;
    let template = &encoding.units[0];

    let mut dec = Decoder::with_limits(FUZZ_LIMITS);
    // Byte 5's top bit: decode lost references from what is held (fmapdec's default).
    dec.set_concealment(data[5] & 0x80 != 0);
    let mut out = Vec::new();
    for unit in &mut coded {
        if mutated {
            repair(unit, template);
            if let Ok(frames) = dec.decode(unit) {
                out.extend(frames);
            }
        } else {
            out.extend(
                dec.decode(unit)
                    .expect("decoder accepts the encoder's units"),
            );
        }
    }
    out.extend(dec.finish());
    if mutated {
        return;
    }
    // Unmutated: the decoder's output is exactly the encoder's reconstructions.
    let mut got: Vec<_> = out
        .iter()
        .map(|f| (f.index, f.to_raw().expect("serializes")))
        .collect();
    got.sort();
    assert_eq!(
        got.len(),
        EncodingKey::new(data).count,
        "one output frame per input frame"
    );
    assert!(
        got == encoding.reconstructions,
        "decoder output differs from the encoder's reconstructions"
    );
}

fuzz_target!(|data: &[u8]| {
    match data.first() {
        Some(b) if b & 0x80 != 0 => structured_form(data),
        Some(_) => raw_form(&data[1..]),
        None => {}
    }
});
