//! Round trips and frame-structure behaviour of the codec (encoder + decoder).

mod common;

use codec_core::codec::{CodecConfig, CodecError, Decoder, Encoder, Structure, UnitKind};
use codec_core::entropy::EntropyMode;
use codec_core::motion::{MvSharing, SearchMethod};
use codec_core::quant::{QuantizerMode, TensorQuantizer};
use codec_core::{Shape, TensorData};
use common::*;

fn cfg(structure: Structure) -> CodecConfig {
    CodecConfig {
        structure,
        key_interval: 4,
        block_size: 4,
        search_range: 3,
        ..CodecConfig::default()
    }
}

#[test]
fn every_structure_entropy_and_quantizer_round_trips_bit_exactly() {
    let shape = Shape::new(3, 11, 13);
    let float_frames: Vec<_> = (0..7)
        .map(|i| two_tensor_frame(i, shape, (0.7, -1.2)))
        .collect();
    let u8_frames: Vec<_> = (0..7)
        .map(|i| moving_frame_u8(i, shape, (1.0, 0.5)))
        .collect();
    let mut combos = 0;
    for structure in Structure::ALL {
        for entropy in EntropyMode::ALL {
            for (quantizer, frames) in [
                (QuantizerMode::PerTensorMinMax, &float_frames),
                (QuantizerMode::PerChannelMinMax, &float_frames),
                (QuantizerMode::Model8bit, &u8_frames),
                (QuantizerMode::PerChannelMinMax, &u8_frames),
            ] {
                for mv_sharing in [MvSharing::PerChannel, MvSharing::Shared] {
                    for (bits, dead_zone) in [(8, 0), (4, 1)] {
                        let c = CodecConfig {
                            entropy,
                            quantizer: quantizer.clone(),
                            mv_sharing,
                            bits,
                            dead_zone,
                            ..cfg(structure)
                        };
                        assert_round_trip(&c, frames);
                        combos += 1;
                    }
                }
            }
        }
    }
    assert_eq!(combos, Structure::ALL.len() * 5 * 4 * 2 * 2);
}

#[test]
fn unit_kinds_follow_the_structure() {
    let shape = Shape::new(2, 8, 8);
    let frames: Vec<_> = (0..6).map(|i| moving_frame(i, shape, (1.0, 0.0))).collect();
    let kinds = |s: Structure| -> Vec<(u64, UnitKind)> {
        encode_all(&cfg(s), &frames)
            .iter()
            .map(|u| (u.frame_index, u.kind))
            .collect()
    };
    use UnitKind::*;
    assert!(kinds(Structure::Intra).iter().all(|&(_, k)| k == Intra));
    assert_eq!(
        kinds(Structure::Uni),
        vec![
            (0, Anchor),
            (1, Predicted),
            (2, Anchor),
            (3, Predicted),
            (4, Anchor),
            (5, Predicted)
        ]
    );
    assert_eq!(
        kinds(Structure::Bi),
        vec![
            (1, Anchor),
            (0, Predicted),
            (2, Predicted),
            (4, Anchor),
            (3, Predicted),
            (5, Predicted)
        ]
    );
    // key_interval 4
    assert_eq!(
        kinds(Structure::ClosedLoop),
        vec![
            (0, ClosedLoopKey),
            (1, ClosedLoopPredicted),
            (2, ClosedLoopPredicted),
            (3, ClosedLoopPredicted),
            (4, ClosedLoopKey),
            (5, ClosedLoopPredicted)
        ]
    );
    for s in Structure::ALL {
        for u in encode_all(&cfg(s), &frames) {
            assert_eq!(
                u.kind.is_sync_point(),
                matches!(u.kind, Intra | Anchor | ClosedLoopKey | AdaptiveKey)
            );
        }
    }
}

#[test]
fn bi_streams_of_every_length_decode_in_display_order() {
    let shape = Shape::new(2, 9, 7);
    use UnitKind::*;
    let expected_kinds: [&[(u64, UnitKind)]; 7] = [
        &[],
        &[(0, Anchor)],
        &[(1, Anchor), (0, Predicted)],
        &[(1, Anchor), (0, Predicted), (2, Predicted)],
        &[(1, Anchor), (0, Predicted), (2, Predicted), (3, Anchor)],
        &[
            (1, Anchor),
            (0, Predicted),
            (2, Predicted),
            (4, Anchor),
            (3, Predicted),
        ],
        &[
            (1, Anchor),
            (0, Predicted),
            (2, Predicted),
            (4, Anchor),
            (3, Predicted),
            (5, Predicted),
        ],
    ];
    for (n, expected) in expected_kinds.iter().enumerate() {
        // Indices with a gap and pts to check both are carried, not recomputed.
        let frames: Vec<_> = (0..n as u64)
            .map(|i| moving_frame(i, shape, (0.0, 1.0)))
            .collect();
        let units = encode_all(&cfg(Structure::Bi), &frames);
        let kinds: Vec<_> = units.iter().map(|u| (u.frame_index, u.kind)).collect();
        assert_eq!(&kinds, expected, "{n} frames");
        let decoded = decode_all(&units);
        let indices: Vec<_> = decoded.iter().map(|f| f.index).collect();
        assert_eq!(indices, (0..n as u64).collect::<Vec<_>>(), "{n} frames");
        for f in &decoded {
            assert_eq!(f.pts_ns, Some(f.index * 33_333_333));
        }
        assert_round_trip(&cfg(Structure::Bi), &frames);
    }
}

#[test]
fn bi_encoder_delay_and_decoder_holding() {
    let shape = Shape::new(2, 8, 8);
    let mut enc = Encoder::with_reconstructions(cfg(Structure::Bi)).unwrap();
    assert_eq!(enc.delay_frames(), 1);
    assert_eq!(Encoder::new(cfg(Structure::Uni)).unwrap().delay_frames(), 0);
    assert!(
        enc.push(&moving_frame(10, shape, (1.0, 1.0)))
            .unwrap()
            .is_empty()
    );
    let group = enc.push(&moving_frame(11, shape, (1.0, 1.0))).unwrap();
    assert_eq!(group.len(), 2);
    let after = enc.push(&moving_frame(12, shape, (1.0, 1.0))).unwrap();
    assert_eq!(after.len(), 1);
    assert!(
        enc.push(&moving_frame(13, shape, (1.0, 1.0)))
            .unwrap()
            .is_empty()
    );
    let tail = enc.finish().unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!((tail[0].frame_index, tail[0].kind), (13, UnitKind::Anchor));

    let mut dec = Decoder::new();
    assert!(
        dec.decode(&group[0].data).unwrap().is_empty(),
        "anchor waits for t-1"
    );
    let out = dec.decode(&group[1].data).unwrap();
    assert_eq!(
        out.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![10, 11]
    );
    assert_eq!(out[0], group[1].reconstruction.clone().unwrap());
    assert_eq!(out[1], group[0].reconstruction.clone().unwrap());
    let out = dec.decode(&after[0].data).unwrap();
    assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), vec![12]);
    let out = dec.decode(&tail[0].data).unwrap();
    assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), vec![13]);
    assert!(dec.finish().is_empty());

    // Lost t-1: the held anchor is released by the next unit, still in display order.
    let mut dec = Decoder::new();
    assert!(dec.decode(&group[0].data).unwrap().is_empty());
    let out = dec.decode(&after[0].data).unwrap();
    assert_eq!(
        out.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![11, 12]
    );
    // Or by finish().
    let mut dec = Decoder::new();
    assert!(dec.decode(&group[0].data).unwrap().is_empty());
    assert_eq!(dec.finish().len(), 1);
}

#[test]
fn closed_loop_without_dead_zone_has_no_drift() {
    let shape = Shape::new(4, 20, 24);
    for quantizer in [
        QuantizerMode::PerTensorMinMax,
        QuantizerMode::PerChannelMinMax,
    ] {
        for mv_sharing in [MvSharing::PerChannel, MvSharing::Shared] {
            let c = CodecConfig {
                structure: Structure::ClosedLoop,
                key_interval: 1000,
                dead_zone: 0,
                bits: 8,
                quantizer: quantizer.clone(),
                mv_sharing,
                ..CodecConfig::default()
            };
            let frames: Vec<_> = (0..20)
                .map(|i| moving_frame(i, shape, (0.6, 1.3)))
                .collect();
            let units = assert_round_trip(&c, &frames);
            assert_eq!(units.iter().filter(|u| u.kind.is_sync_point()).count(), 1);
            for (u, f) in units.iter().zip(&frames) {
                let t = &f.tensors[0];
                let q = TensorQuantizer::for_tensor(&quantizer, t, 8).unwrap();
                let plane = shape.plane_len();
                let TensorData::F32(rec) = &u.reconstruction.as_ref().unwrap().tensors[0].data
                else {
                    panic!("f32 output expected")
                };
                let TensorData::F32(orig) = &t.data else {
                    unreachable!()
                };
                for (i, (a, b)) in rec.iter().zip(orig).enumerate() {
                    let s = q.params_for_channel(i / plane).scale;
                    assert!(
                        (a - b).abs() <= s / 2.0 * 1.0001 + 1e-6,
                        "frame {} element {i}: |{a} - {b}| > s/2 = {}",
                        f.index,
                        s / 2.0
                    );
                }
            }
        }
    }
}

#[test]
fn closed_loop_repeated_frame_skips_every_block() {
    let shape = Shape::new(8, 24, 24);
    let c = CodecConfig {
        structure: Structure::ClosedLoop,
        entropy: EntropyMode::Zvc,
        ..CodecConfig::default()
    };
    let mut enc = Encoder::with_reconstructions(c.clone()).unwrap();
    let first = moving_frame(0, shape, (1.0, 1.0));
    let mut repeat = first.clone();
    repeat.index = 1;
    let mut moved = moving_frame(2, shape, (1.0, 1.0));
    moved.index = 2;
    let u0 = enc.push(&first).unwrap().remove(0);
    let u1 = enc.push(&repeat).unwrap().remove(0);
    let u2 = enc.push(&moved).unwrap().remove(0);
    assert_eq!(u1.kind, UnitKind::ClosedLoopPredicted);
    // Same content: the reconstruction is the previous one, and the residual payload is empty.
    assert_eq!(
        u1.reconstruction.as_ref().unwrap().tensors,
        u0.reconstruction.as_ref().unwrap().tensors
    );
    let skipped = codec_core::codec::inspect_unit(&u1.data).unwrap();
    assert_eq!(skipped.coded_blocks, 0, "{skipped:?}");
    assert_eq!(skipped.residual_symbols, 0);
    assert!(skipped.total_blocks > 0);
    let moving = codec_core::codec::inspect_unit(&u2.data).unwrap();
    assert!(moving.coded_blocks > 0, "{moving:?}");
    assert!(
        u1.data.len() < u2.data.len() / 4,
        "{} vs {}",
        u1.data.len(),
        u2.data.len()
    );
    let mut dec = Decoder::new();
    for u in [&u0, &u1, &u2] {
        assert_eq!(
            dec.decode(&u.data).unwrap(),
            vec![u.reconstruction.clone().unwrap()]
        );
    }
}

#[test]
fn uni_and_bi_predict_shifted_maps_with_low_error() {
    let shape = Shape::new(6, 32, 32);
    // Integer shifts: block motion can follow them exactly away from the edges.
    let frames: Vec<_> = (0..6)
        .map(|i| moving_frame(i, shape, (1.0, -2.0)))
        .collect();
    for structure in [Structure::Uni, Structure::Bi] {
        for search in [SearchMethod::ThreeStep, SearchMethod::Full] {
            let c = CodecConfig {
                structure,
                search,
                block_size: 8,
                search_range: 7,
                ..CodecConfig::default()
            };
            let units = assert_round_trip(&c, &frames);
            for u in units.iter().filter(|u| u.kind == UnitKind::Predicted) {
                let f = &frames[u.frame_index as usize];
                let anchor = units
                    .iter()
                    .find(|a| a.kind == UnitKind::Anchor && a.frame_index.abs_diff(f.index) == 1)
                    .unwrap();
                let predicted_error = mean_abs_error(u.reconstruction.as_ref().unwrap(), f);
                let no_motion_error = mean_abs_error(anchor.reconstruction.as_ref().unwrap(), f);
                let mean: f64 = f.tensors[0].to_f32().iter().map(|&v| v as f64).sum::<f64>()
                    / shape.len() as f64;
                assert!(
                    predicted_error < 0.35 * no_motion_error,
                    "{structure:?} {search:?} frame {}: {predicted_error} vs no motion {no_motion_error}",
                    f.index
                );
                assert!(
                    predicted_error < 0.05 * mean,
                    "{predicted_error} vs mean {mean}"
                );
            }
        }
    }
}

#[test]
fn u8_model_tensors_come_back_as_u8_with_the_model_parameters() {
    let shape = Shape::new(3, 10, 10);
    let frames: Vec<_> = (0..5)
        .map(|i| moving_frame_u8(i, shape, (1.0, 0.0)))
        .collect();
    for structure in Structure::ALL {
        let c = CodecConfig {
            quantizer: QuantizerMode::Model8bit,
            bits: 8,
            ..cfg(structure)
        };
        let units = assert_round_trip(&c, &frames);
        for u in &units {
            let TensorData::U8 {
                scale, zero_point, ..
            } = &u.reconstruction.as_ref().unwrap().tensors[0].data
            else {
                panic!("u8 output expected")
            };
            assert_eq!((*scale, *zero_point), (SCALE8, ZERO_POINT8));
        }
        if structure == Structure::Intra {
            // At 8 bits with the model's own quantizer the codes pass unchanged.
            for (u, f) in units.iter().zip(&frames) {
                assert_eq!(u.reconstruction.as_ref().unwrap().tensors, f.tensors);
            }
        }
    }
}

#[test]
fn missing_anchor_gives_missing_reference_then_resync() {
    let shape = Shape::new(2, 12, 12);
    let frames: Vec<_> = (0..8).map(|i| moving_frame(i, shape, (1.0, 1.0))).collect();

    // uni: A0 P1 A2 P3 A4 P5 ...; drop A2.
    let units = encode_all(&cfg(Structure::Uni), &frames);
    let mut dec = Decoder::new();
    for (i, u) in units.iter().enumerate() {
        match i {
            2 => continue,
            3 => assert_eq!(
                dec.decode(&u.data),
                Err(CodecError::MissingReference {
                    frame: 3,
                    reference: 2
                })
            ),
            _ => assert_eq!(
                dec.decode(&u.data).unwrap(),
                vec![u.reconstruction.clone().unwrap()]
            ),
        }
    }

    // bi: A1 P0 P2 A4 P3 P5 A7 P6; drop A4.
    let units = encode_all(&cfg(Structure::Bi), &frames);
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for u in &units {
        if u.frame_index == 4 {
            continue;
        }
        match dec.decode(&u.data) {
            Ok(frames) => out.extend(frames),
            Err(e) => {
                assert!(
                    matches!(e, CodecError::MissingReference { reference: 4, .. }),
                    "{e}"
                );
                assert!(u.frame_index == 3 || u.frame_index == 5);
            }
        }
    }
    out.extend(dec.finish());
    assert_eq!(
        out.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 6, 7]
    );

    // closed loop (key every 4): K0 P1 P2 P3 K4 P5 P6 P7; drop P1.
    let units = encode_all(&cfg(Structure::ClosedLoop), &frames);
    let mut dec = Decoder::new();
    for u in &units {
        match u.frame_index {
            1 => continue,
            2 => assert_eq!(
                dec.decode(&u.data),
                Err(CodecError::MissingReference {
                    frame: 2,
                    reference: 1
                })
            ),
            3 => assert_eq!(
                dec.decode(&u.data),
                Err(CodecError::MissingReference {
                    frame: 3,
                    reference: 2
                })
            ),
            _ => assert_eq!(
                dec.decode(&u.data).unwrap(),
                vec![u.reconstruction.clone().unwrap()]
            ),
        }
    }

    // A decoder that starts mid-stream (or after reset) waits for a sync point.
    let mut dec = Decoder::new();
    assert!(matches!(
        dec.decode(&units[1].data),
        Err(CodecError::MissingReference { .. })
    ));
    dec.decode(&units[0].data).unwrap();
    dec.reset();
    assert!(matches!(
        dec.decode(&units[1].data),
        Err(CodecError::MissingReference { .. })
    ));
}

#[test]
fn encoder_rejects_bad_configs_and_out_of_order_frames() {
    for bad in [
        CodecConfig {
            bits: 0,
            ..cfg(Structure::ClosedLoop)
        },
        CodecConfig {
            bits: 16,
            ..cfg(Structure::ClosedLoop)
        },
        // Within the bitstream's 15 bits but beyond the quantizer's 8: one validation says so.
        CodecConfig {
            bits: 9,
            ..cfg(Structure::Intra)
        },
        CodecConfig {
            block_size: 0,
            ..CodecConfig::default()
        },
        CodecConfig {
            block_size: 100_000,
            ..CodecConfig::default()
        },
        CodecConfig {
            search_range: 200,
            ..CodecConfig::default()
        },
        CodecConfig {
            key_interval: 0,
            ..CodecConfig::default()
        },
    ] {
        assert!(
            matches!(bad.validate(), Err(CodecError::Config(_))),
            "{bad:?}"
        );
        assert!(matches!(Encoder::new(bad), Err(CodecError::Config(_))));
    }
    let shape = Shape::new(1, 4, 4);
    let mut enc = Encoder::new(CodecConfig::default()).unwrap();
    enc.push(&moving_frame(5, shape, (0.0, 0.0))).unwrap();
    assert!(matches!(
        enc.push(&moving_frame(5, shape, (0.0, 0.0))),
        Err(CodecError::Invalid(_))
    ));
    // Model8bit needs u8 tensors (the adaptive mode has no N-bit quantizer).
    let mut enc = Encoder::new(CodecConfig {
        quantizer: QuantizerMode::Model8bit,
        ..cfg(Structure::ClosedLoop)
    })
    .unwrap();
    assert!(matches!(
        enc.push(&moving_frame(0, shape, (0.0, 0.0))),
        Err(CodecError::Config(_))
    ));
    for s in Structure::ALL {
        assert_eq!(Structure::from_name(s.name()), Some(s));
    }
}

#[test]
fn layout_change_starts_a_new_group() {
    let a = Shape::new(2, 8, 8);
    let b = Shape::new(2, 6, 10);
    let frames = vec![
        moving_frame(0, a, (1.0, 0.0)),
        moving_frame(1, b, (1.0, 0.0)),
        moving_frame(2, b, (1.0, 0.0)),
        moving_frame(3, a, (1.0, 0.0)),
        moving_frame(4, a, (1.0, 0.0)),
    ];
    for s in Structure::ALL {
        assert_round_trip(&cfg(s), &frames);
    }
}

#[test]
fn closed_loop_dead_zone_bounds_the_error_per_frame() {
    let shape = Shape::new(4, 16, 20);
    let frames: Vec<_> = (0..12)
        .map(|i| moving_frame(i, shape, (0.5, 1.5)))
        .collect();
    for dead_zone in [1u16, 2, 3] {
        let c = CodecConfig {
            structure: Structure::ClosedLoop,
            key_interval: 100,
            dead_zone,
            bits: 6,
            quantizer: QuantizerMode::PerChannelMinMax,
            ..CodecConfig::default()
        };
        let units = assert_round_trip(&c, &frames);
        let mut coded_sizes = Vec::new();
        for (u, f) in units.iter().zip(&frames) {
            let t = &f.tensors[0];
            let q = TensorQuantizer::for_tensor(&c.quantizer, t, 6).unwrap();
            let rec = u.reconstruction.as_ref().unwrap().tensors[0].to_f32();
            for (i, (a, b)) in rec.iter().zip(t.to_f32()).enumerate() {
                let s = q.params_for_channel(i / shape.plane_len()).scale;
                let bound = (dead_zone as f32 + 0.5) * s * 1.0001 + 1e-6;
                assert!(
                    (a - b).abs() <= bound,
                    "d={dead_zone} frame {} elem {i}",
                    f.index
                );
            }
            coded_sizes.push(u.data.len());
        }
        assert!(
            units[1..]
                .iter()
                .all(|u| u.kind == UnitKind::ClosedLoopPredicted)
        );
    }
}

#[test]
fn a_restarted_stream_never_predicts_from_the_old_streams_reference() {
    let shape = Shape::new(2, 8, 8);
    let frames: Vec<_> = (0..2).map(|i| moving_frame(i, shape, (1.0, 0.0))).collect();
    let first = Encoder::with_reconstructions(cfg(Structure::Uni)).unwrap();
    // Stream ids are random; pick a second encoder whose id differs (collisions are 1/65536).
    let second = (0..100)
        .map(|_| Encoder::with_reconstructions(cfg(Structure::Uni)).unwrap())
        .find(|e| e.stream_id() != first.stream_id())
        .unwrap();
    let mut units = Vec::new();
    for mut enc in [first, second] {
        let mut u = Vec::new();
        for f in &frames {
            u.extend(enc.push(f).unwrap());
        }
        units.push(u);
    }
    let mut dec = Decoder::new();
    dec.decode(&units[0][0].data).unwrap();
    // The restarted sender's anchor 0 was lost; its predicted frame 1 names reference 0, which
    // the decoder holds, but from the old stream.
    assert_eq!(
        dec.decode(&units[1][1].data),
        Err(CodecError::MissingReference {
            frame: 1,
            reference: 0
        })
    );
    dec.decode(&units[1][0].data).unwrap();
    assert_eq!(
        dec.decode(&units[1][1].data).unwrap(),
        vec![units[1][1].reconstruction.clone().unwrap()]
    );
}
