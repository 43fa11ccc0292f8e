//! Hostile and damaged input: every error is typed, nothing panics.

mod common;

use codec_core::Shape;
use codec_core::codec::{
    ADAPTIVE_UNIT_VERSION, CodecConfig, CodecError, CodedUnit, Decoder, DecoderLimits, HEADER_LEN,
    Structure, UnitKind, inspect_unit,
};
use codec_core::entropy::EntropyMode;
use codec_core::motion::MvSharing;
use common::*;
use proptest::prelude::*;

/// One unit of every kind, each with the units that must precede it.
fn sample_units() -> Vec<(Vec<CodedUnit>, CodedUnit)> {
    let shape = Shape::new(2, 9, 10);
    let frames: Vec<_> = (0..3)
        .map(|i| two_tensor_frame(i, shape, (1.0, -1.0)))
        .collect();
    let mut out = Vec::new();
    for structure in Structure::ALL {
        let cfg = CodecConfig {
            structure,
            block_size: 4,
            search_range: 2,
            entropy: EntropyMode::Huffman,
            fractional_motion: true,
            ..CodecConfig::default()
        };
        let units = encode_all(&cfg, &frames);
        for i in 0..units.len() {
            out.push((units[..i].to_vec(), units[i].clone()));
        }
    }
    let kinds: std::collections::BTreeSet<u8> = out.iter().map(|(_, u)| u.kind.id()).collect();
    assert_eq!(kinds.len(), UnitKind::ALL.len());
    out
}

fn decoder_after(prefix: &[CodedUnit]) -> Decoder {
    let mut dec = Decoder::new();
    for u in prefix {
        dec.decode(&u.data).unwrap();
    }
    dec
}

/// Length of a unit's envelope (for adaptive units, the head piece; the slices follow).
fn envelope_len(unit: &[u8]) -> usize {
    u32::from_le_bytes([unit[8], unit[9], unit[10], unit[11]]) as usize
}

/// What a damaged or missing slice may do: cost its channels (concealed), or, in a key unit
/// with no earlier frame to conceal from, refuse the unit.
fn concealed_or_refused_key(
    unit: &CodedUnit,
    r: &Result<Vec<codec_core::FeatureFrame>, CodecError>,
    dec: &Decoder,
) -> bool {
    match r {
        Ok(_) => dec.concealed().0 > 0,
        Err(CodecError::Invalid(_)) => unit.kind == UnitKind::AdaptiveKey,
        Err(_) => false,
    }
}

#[test]
fn every_single_byte_corruption_is_an_error_or_a_concealed_slice() {
    for (prefix, unit) in sample_units() {
        let base = decoder_after(&prefix);
        let head = envelope_len(&unit.data);
        for pos in 0..unit.data.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = unit.data.clone();
                bad[pos] ^= flip;
                let mut dec = decoder_after(&prefix);
                let r = dec.decode(&bad);
                if pos >= head {
                    assert!(unit.kind.is_adaptive());
                    assert!(
                        concealed_or_refused_key(&unit, &r, &dec),
                        "byte {pos}: {r:?}"
                    );
                    continue;
                }
                assert!(r.is_err(), "{:?} byte {pos} ^ {flip:#x} decoded", unit.kind);
                let e = r.unwrap_err();
                match pos {
                    0..4 => assert_eq!(e, CodecError::BadMagic),
                    4 => assert!(matches!(e, CodecError::UnsupportedVersion(_))),
                    // An adaptive unit's envelope may end before the unit does (its slices
                    // follow), so a shorter claimed length moves the CRC.
                    8..12 => assert!(
                        matches!(
                            e,
                            CodecError::Truncated
                                | CodecError::Invalid(_)
                                | CodecError::LimitExceeded(_)
                        ) || (unit.kind.is_adaptive() && e == CodecError::Crc)
                    ),
                    _ => assert_eq!(e, CodecError::Crc, "{:?} byte {pos}", unit.kind),
                }
                assert!(inspect_unit(&bad).is_err());
            }
        }
        drop(base);
    }
}

#[test]
fn every_truncation_is_an_error_or_concealed_slices() {
    for (prefix, unit) in sample_units() {
        let head = envelope_len(&unit.data);
        for n in 0..unit.data.len() {
            let mut dec = decoder_after(&prefix);
            let r = dec.decode(&unit.data[..n]);
            if n >= head {
                assert!(
                    concealed_or_refused_key(&unit, &r, &dec),
                    "cut at {n}: {r:?}"
                );
            } else {
                assert_eq!(r, Err(CodecError::Truncated), "{:?} cut at {n}", unit.kind);
            }
        }
        let mut longer = unit.data.clone();
        longer.push(0);
        let r = decoder_after(&prefix).decode(&longer);
        if unit.kind.is_adaptive() {
            // Bytes after the last slice that do not frame a slice are ignored.
            assert_eq!(r.unwrap().last(), unit.reconstruction.as_ref());
        } else {
            assert!(matches!(r, Err(CodecError::Invalid(_))));
        }
        // The intact unit still decodes to its reconstruction.
        let out = decoder_after(&prefix).decode(&unit.data).unwrap();
        assert!(
            out.contains(unit.reconstruction.as_ref().unwrap()) || unit.kind == UnitKind::Anchor
        );
    }
}

#[test]
fn wrong_version_is_unsupported() {
    let (_, unit) = sample_units().remove(0);
    // 2 and 3: retired versions of the adaptive mode.
    for v in [0u8, 2, 3, 5, 255] {
        let mut bad = unit.data.clone();
        bad[4] = v;
        assert_eq!(
            Decoder::new().decode(&bad),
            Err(CodecError::UnsupportedVersion(v))
        );
    }
    // The adaptive mode's version: a thesis-mode unit relabelled with it is refused by kind.
    let mut relabelled = unit.data.clone();
    relabelled[4] = ADAPTIVE_UNIT_VERSION;
    fix_crc(&mut relabelled);
    assert!(matches!(
        Decoder::new().decode(&relabelled),
        Err(CodecError::Invalid(_))
    ));
    let mut bad = unit.data.clone();
    bad[0] = b'X';
    assert_eq!(Decoder::new().decode(&bad), Err(CodecError::BadMagic));
    assert_eq!(Decoder::new().decode(&[]), Err(CodecError::Truncated));
}

/// Rewrites the envelope's CRC so a mutation reaches the parser instead of being caught by the
/// checksum.
fn fix_crc(unit: &mut [u8]) {
    let n = envelope_len(unit).min(unit.len());
    if n < 4 {
        return;
    }
    let crc = crc32fast::hash(&unit[..n - 4]);
    unit[n - 4..n].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn huge_claimed_shapes_are_refused_before_allocation() {
    let shape = Shape::new(1, 4, 4);
    let frames = vec![moving_frame(0, shape, (0.0, 0.0))];
    let unit = encode_all(&CodecConfig::default(), &frames).remove(0);
    // Tensor section starts at HEADER_LEN: name_len(2) "feat"(4) dtype(1) c h w.
    let dims = HEADER_LEN + 2 + 4 + 1;
    let mut bad = unit.data.clone();
    for (i, d) in [65_536u32, 65_536, 65_536].iter().enumerate() {
        bad[dims + 4 * i..dims + 4 * i + 4].copy_from_slice(&d.to_le_bytes());
    }
    fix_crc(&mut bad);
    assert!(matches!(
        Decoder::new().decode(&bad),
        Err(CodecError::Frame(_))
    ));
    let mut bad = unit.data.clone();
    for (i, d) in [4096u32, 4096, 16].iter().enumerate() {
        bad[dims + 4 * i..dims + 4 * i + 4].copy_from_slice(&d.to_le_bytes());
    }
    fix_crc(&mut bad);
    assert!(matches!(
        Decoder::new().decode(&bad),
        Err(CodecError::LimitExceeded(_))
    ));
    // Within the budget but without the bytes: the entropy decoder fails on the payload.
    let mut dec = Decoder::with_limits(DecoderLimits {
        max_elements: 1 << 28,
    });
    assert!(dec.decode(&bad).is_err());
}

#[test]
fn key_unit_claiming_more_slices_than_its_bytes_hold_is_refused_fast() {
    let shape = Shape::new(1, 4, 4);
    let frames = vec![moving_frame(0, shape, (0.0, 0.0))];
    let unit = encode_all(&CodecConfig::default(), &frames).remove(0);
    assert_eq!(unit.kind, UnitKind::AdaptiveKey);
    // The real unit decodes.
    assert_eq!(
        Decoder::new().decode(&unit.data).unwrap(),
        vec![unit.reconstruction.clone().unwrap()]
    );
    // Its head now claims 65536 channels (one per slice: the head's slice width is 1) of
    // 64 x 4 values, 2^24 in all (the default element budget): 65536 slices of at least 18
    // bytes each, where one slice of a few dozen bytes follows.
    let dims = HEADER_LEN + 2 + 4 + 1;
    let mut bad = unit.data.clone();
    for (i, d) in [65_536u32, 64, 4].iter().enumerate() {
        bad[dims + 4 * i..dims + 4 * i + 4].copy_from_slice(&d.to_le_bytes());
    }
    fix_crc(&mut bad);
    let started = std::time::Instant::now();
    for _ in 0..100 {
        match Decoder::new().decode(&bad) {
            Err(CodecError::Invalid(msg)) => {
                assert!(msg.contains("bytes of slices"), "{msg}");
                assert!(msg.contains("need at least 1179648"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Refused from the head alone: nothing of the claimed size is allocated or zeroed (that
    // alone would take milliseconds per unit).
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // A decoder holding a frame of the claimed layout conceals missing slices instead, so the
    // bound does not apply there; with a frame of another layout held it does.
    let mut dec = Decoder::new();
    dec.decode(&unit.data).unwrap();
    assert!(matches!(dec.decode(&bad), Err(CodecError::Invalid(_))));
}

#[test]
fn refresh_step_flag_outside_predicted_adaptive_units_is_invalid() {
    for (_, unit) in sample_units() {
        if unit.kind == UnitKind::AdaptivePredicted {
            continue;
        }
        let mut bad = unit.data.clone();
        bad[6] |= 16;
        fix_crc(&mut bad);
        match Decoder::new().decode(&bad) {
            Err(CodecError::Invalid(msg)) => assert!(msg.contains("refresh-step"), "{msg}"),
            other => panic!("{:?}: {other:?}", unit.kind),
        }
    }
}

#[test]
fn fractional_motion_flag_outside_predicted_adaptive_units_is_invalid() {
    for (_, unit) in sample_units() {
        if unit.kind == UnitKind::AdaptivePredicted {
            continue;
        }
        let mut bad = unit.data.clone();
        bad[6] |= 32;
        fix_crc(&mut bad);
        match Decoder::new().decode(&bad) {
            Err(CodecError::Invalid(msg)) => assert!(msg.contains("fractional-motion"), "{msg}"),
            other => panic!("{:?}: {other:?}", unit.kind),
        }
    }
}

#[test]
fn fractional_motion_beyond_its_search_range_is_invalid() {
    let units = sample_units();
    let (prefix, unit) = units
        .iter()
        .find(|(_, u)| u.kind == UnitKind::AdaptivePredicted)
        .expect("an adaptive predicted unit");
    assert_ne!(unit.data[6] & 32, 0, "sample units code fractional motion");
    let max = codec_core::subpel::MAX_FRACTIONAL_SEARCH_RANGE;
    for range in [0, max + 1, u8::MAX] {
        let mut bad = unit.data.clone();
        // search_range u8 at byte 40 of the header.
        bad[40] = range;
        fix_crc(&mut bad);
        match decoder_after(prefix).decode(&bad) {
            Err(CodecError::Invalid(msg)) => assert!(msg.contains("search range"), "{msg}"),
            other => panic!("search range {range}: {other:?}"),
        }
    }
}

#[test]
fn predicted_unit_with_another_block_size_than_its_reference_is_invalid() {
    let shape = Shape::new(2, 16, 16);
    let frames: Vec<_> = (0..2).map(|i| moving_frame(i, shape, (1.0, 0.0))).collect();
    let cfg = CodecConfig {
        block_size: 8,
        ..CodecConfig::default()
    };
    let units = encode_all(&cfg, &frames);
    assert_eq!(units[1].kind, UnitKind::AdaptivePredicted);
    for block_size in [4u16, 16] {
        let mut bad = units[1].data.clone();
        // block_size u16 at byte 38 of the header.
        bad[38..40].copy_from_slice(&block_size.to_le_bytes());
        fix_crc(&mut bad);
        for conceal in [false, true] {
            let mut dec = Decoder::new();
            dec.set_concealment(conceal);
            dec.decode(&units[0].data).unwrap();
            match dec.decode(&bad) {
                Err(CodecError::Invalid(msg)) => {
                    assert!(msg.contains("differs from the reference's"), "{msg}")
                }
                other => panic!("block size {block_size}: {other:?}"),
            }
            // The decoder's state is unchanged: the real unit still decodes exactly.
            assert_eq!(
                dec.decode(&units[1].data).unwrap(),
                vec![units[1].reconstruction.clone().unwrap()]
            );
        }
    }
}

fn all_units_for_fuzz() -> Vec<(Vec<CodedUnit>, CodedUnit)> {
    let mut out = sample_units();
    // Adaptive units with refresh slices at their own step (header flag bit4).
    let frames: Vec<_> = (0..4)
        .map(|i| two_tensor_frame(i, Shape::new(4, 9, 10), (1.0, -1.0)))
        .collect();
    let cfg = CodecConfig {
        key_interval: 3,
        slice_channels: 2,
        key_step_ratio: 0.5,
        fractional_motion: true,
        ..CodecConfig::default()
    };
    let units = encode_all(&cfg, &frames);
    assert!(units[1..].iter().any(|u| u.data[6] & 16 != 0));
    // ... and fractional motion vectors (header flag bit5).
    assert!(units[1..].iter().any(|u| u.data[6] & 32 != 0));
    for i in 0..units.len() {
        out.push((units[..i].to_vec(), units[i].clone()));
    }
    let shape = Shape::new(3, 7, 6);
    let frames: Vec<_> = (0..3)
        .map(|i| moving_frame_u8(i, shape, (1.0, 0.0)))
        .collect();
    for entropy in EntropyMode::ALL {
        let cfg = CodecConfig {
            structure: Structure::ClosedLoop,
            entropy,
            mv_sharing: MvSharing::Shared,
            quantizer: codec_core::quant::QuantizerMode::Model8bit,
            block_size: 4,
            search_range: 2,
            ..CodecConfig::default()
        };
        let units = encode_all(&cfg, &frames);
        for i in 0..units.len() {
            out.push((units[..i].to_vec(), units[i].clone()));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Mutations behind a valid CRC exercise the parser itself: typed error or a valid frame.
    #[test]
    fn mutated_units_with_valid_crc_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let units = all_units_for_fuzz();
        let (prefix, unit) = &units[which.index(units.len())];
        let mut bad = unit.data.clone();
        let n = bad.len();
        for (pos, val) in &edits {
            // Keep magic, version and length intact so the CRC is what guards the unit.
            let p = 12 + pos.index(n - 16);
            bad[p] = *val;
        }
        fix_crc(&mut bad);
        let mut dec = decoder_after(prefix);
        if let Ok(frames) = dec.decode(&bad) {
            for f in frames {
                prop_assert!(f.validate().is_ok());
            }
        }
        let _ = inspect_unit(&bad);
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Decoder::new().decode(&bytes);
        if bytes.len() >= 48 {
            bytes[..4].copy_from_slice(b"FMCU");
            bytes[4] = 1;
            let n = bytes.len() as u32;
            bytes[8..12].copy_from_slice(&n.to_le_bytes());
            fix_crc(&mut bytes);
            let _ = Decoder::new().decode(&bytes);
            let _ = inspect_unit(&bytes);
        }
    }
}
