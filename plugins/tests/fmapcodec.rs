//! fmapenc / fmapdec element tests with gst_check::Harness: every frame structure, bit-exact
//! agreement with codec-core, display order and timestamps restored, DTS/DELTA_UNIT/latency,
//! caps, loss handling, and property errors.

mod fmap_synthetic;

use codec_core::codec::{CodecConfig, CodedUnit, Structure, assemble_unit, unit_pieces};
use codec_core::entropy::EntropyMode;
use codec_core::quant::QuantizerMode;
use codec_core::{FeatureFrame, TensorData};
use fmap_synthetic::{FRAME_NS, frame, frame_u8, raw_buffer, raw_caps, reference_units, same_unit};
use gst::glib;
use gst::prelude::*;
use gst_check::Harness;

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstfmap::plugin_register_static().expect("register the fmap plugin");
    });
}

/// Runs `frames` through `fmapenc <props>`; returns the coded buffers and the output caps.
fn encode(props: &str, frames: &[FeatureFrame]) -> (Vec<gst::Buffer>, gst::Caps) {
    let mut h = Harness::new_parse(&format!("fmapenc {props}"));
    h.set_src_caps(raw_caps());
    let mut out = Vec::new();
    for f in frames {
        h.push(raw_buffer(f)).expect("fmapenc accepts the frame");
        while let Some(b) = h.try_pull() {
            out.push(b);
        }
    }
    assert!(h.push_event(gst::event::Eos::new()));
    while let Some(b) = h.try_pull() {
        out.push(b);
    }
    let caps = h
        .sinkpad()
        .unwrap()
        .current_caps()
        .expect("fmapenc set caps");
    (out, caps)
}

/// Runs coded buffers through `fmapdec`; returns the frames (parsed) with their buffers.
fn decode(
    caps: &gst::Caps,
    units: Vec<gst::Buffer>,
) -> (Vec<(FeatureFrame, gst::Buffer)>, Harness) {
    let mut h = Harness::new("fmapdec");
    h.set_src_caps(caps.clone());
    let mut out = Vec::new();
    let mut take = |h: &mut Harness| {
        while let Some(b) = h.try_pull() {
            let f = FeatureFrame::from_raw(&b.map_readable().unwrap()).expect("fmapdec emits FMRF");
            out.push((f, b));
        }
    };
    for u in units {
        h.push(u)
            .expect("fmapdec never fails the flow on bad units");
        take(&mut h);
    }
    assert!(h.push_event(gst::event::Eos::new()));
    take(&mut h);
    (out, h)
}

fn frames(n: u64) -> Vec<FeatureFrame> {
    (0..n).map(frame).collect()
}

/// The reference reconstructions, in display order.
fn display_order(units: &[CodedUnit]) -> Vec<FeatureFrame> {
    let mut r: Vec<FeatureFrame> = units
        .iter()
        .map(|u| u.reconstruction.clone().unwrap())
        .collect();
    r.sort_by_key(|f| f.index);
    r
}

fn stats(h: &Harness) -> gst::Structure {
    h.element().unwrap().property::<gst::Structure>("stats")
}

struct ModeCase {
    props: &'static str,
    cfg: CodecConfig,
}

fn mode_cases() -> Vec<ModeCase> {
    let base = CodecConfig::default();
    vec![
        ModeCase {
            props: "mode=intra bits=6 entropy=huffman",
            cfg: CodecConfig {
                structure: Structure::Intra,
                bits: 6,
                entropy: EntropyMode::Huffman,
                ..base.clone()
            },
        },
        ModeCase {
            props: "mode=uni bits=5 entropy=zvc quantizer=per-channel",
            cfg: CodecConfig {
                structure: Structure::Uni,
                bits: 5,
                entropy: EntropyMode::Zvc,
                quantizer: QuantizerMode::PerChannelMinMax,
                ..base.clone()
            },
        },
        ModeCase {
            props: "mode=bi bits=6 entropy=zvc-huffman mv-sharing=shared search=full",
            cfg: CodecConfig {
                structure: Structure::Bi,
                bits: 6,
                entropy: EntropyMode::ZvcHuffman,
                mv_sharing: codec_core::motion::MvSharing::Shared,
                search: codec_core::motion::SearchMethod::Full,
                ..base.clone()
            },
        },
        ModeCase {
            props: "mode=closed-loop key-interval=4 dead-zone=1 bits=8 entropy=rle block-size=4 search-range=3",
            cfg: CodecConfig {
                structure: Structure::ClosedLoop,
                key_interval: 4,
                dead_zone: 1,
                bits: 8,
                entropy: EntropyMode::Rle,
                block_size: 4,
                search_range: 3,
                ..base.clone()
            },
        },
        ModeCase {
            props: "mode=closed-loop key-interval=3 entropy=none bits=4",
            cfg: CodecConfig {
                structure: Structure::ClosedLoop,
                key_interval: 3,
                bits: 4,
                entropy: EntropyMode::None,
                ..base
            },
        },
    ]
}

#[test]
fn every_mode_round_trips_bit_exact_in_display_order() {
    init();
    let input = frames(10);
    for case in mode_cases() {
        let reference = reference_units(&case.cfg, &input);
        let (coded, caps) = encode(case.props, &input);
        assert_eq!(
            coded.len(),
            input.len(),
            "{}: one unit per frame",
            case.props
        );

        let mut last_dts = None;
        for (b, r) in coded.iter().zip(&reference) {
            let data = b.map_readable().unwrap();
            assert!(
                same_unit(data.as_slice(), &r.data),
                "{}: unit {} differs",
                case.props,
                r.frame_index
            );
            assert_eq!(
                b.pts(),
                Some(gst::ClockTime::from_nseconds(r.frame_index * FRAME_NS))
            );
            assert_eq!(
                b.flags().contains(gst::BufferFlags::DELTA_UNIT),
                !r.kind.is_sync_point(),
                "{}: DELTA_UNIT of unit {} ({:?})",
                case.props,
                r.frame_index,
                r.kind
            );
            let dts = b.dts().expect("DTS set");
            assert!(dts <= b.pts().unwrap(), "{}: DTS after PTS", case.props);
            assert!(
                last_dts.is_none_or(|l| dts >= l),
                "{}: DTS not monotonic",
                case.props
            );
            last_dts = Some(dts);
        }
        assert!(coded[0].flags().contains(gst::BufferFlags::DISCONT));
        if case.cfg.structure != Structure::Intra {
            assert!(
                coded
                    .iter()
                    .any(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT)),
                "{}: some units are predicted",
                case.props
            );
        }
        if case.cfg.structure == Structure::Bi {
            let pts: Vec<_> = coded.iter().map(|b| b.pts().unwrap()).collect();
            assert!(
                pts.windows(2).any(|w| w[1] < w[0]),
                "bi units leave in decode order"
            );
        }

        let (decoded, h) = decode(&caps, coded);
        let expected = display_order(&reference);
        assert_eq!(decoded.len(), expected.len(), "{}", case.props);
        for ((f, b), e) in decoded.iter().zip(&expected) {
            assert_eq!(
                f, e,
                "{}: frame {} is not the reconstruction",
                case.props, e.index
            );
            assert_eq!(
                b.pts(),
                Some(gst::ClockTime::from_nseconds(e.index * FRAME_NS))
            );
            assert_eq!(b.duration(), Some(gst::ClockTime::from_nseconds(FRAME_NS)));
        }
        let s = stats(&h);
        assert_eq!(s.get::<u64>("frames").unwrap(), input.len() as u64);
        assert_eq!(s.get::<u64>("dropped").unwrap(), 0);
    }
}

#[test]
fn bi_eos_inside_an_incomplete_group_flushes_every_frame() {
    init();
    let cfg = CodecConfig {
        structure: Structure::Bi,
        ..CodecConfig::default()
    };
    for n in 1..=6u64 {
        let input = frames(n);
        let reference = reference_units(&cfg, &input);
        let (coded, caps) = encode("mode=bi", &input);
        assert_eq!(coded.len(), n as usize, "{n} frames in, units out");
        for (b, r) in coded.iter().zip(&reference) {
            assert!(same_unit(b.map_readable().unwrap().as_slice(), &r.data));
        }
        let (decoded, _) = decode(&caps, coded);
        let indices: Vec<u64> = decoded.iter().map(|(f, _)| f.index).collect();
        assert_eq!(
            indices,
            (0..n).collect::<Vec<_>>(),
            "{n} frames: display order"
        );
        for ((f, b), e) in decoded.iter().zip(display_order(&reference)) {
            assert_eq!(*f, e);
            assert_eq!(
                b.pts(),
                Some(gst::ClockTime::from_nseconds(f.index * FRAME_NS))
            );
        }
    }
}

#[test]
fn latency_includes_the_bi_reordering_delay() {
    init();
    for (props, frames_of_delay) in [
        ("mode=bi", 1u64),
        ("mode=closed-loop", 0),
        ("mode=intra", 0),
    ] {
        let mut h = Harness::new_parse(&format!("fmapenc {props}"));
        h.set_src_caps(raw_caps());
        h.set_upstream_latency(gst::ClockTime::from_mseconds(20));
        h.push(raw_buffer(&frame(0))).unwrap();
        let latency = h.query_latency().expect("latency answered");
        assert_eq!(
            latency,
            gst::ClockTime::from_mseconds(20)
                + gst::ClockTime::from_nseconds(frames_of_delay * FRAME_NS),
            "{props}"
        );
    }
}

#[test]
fn coded_caps_carry_the_raw_fields_and_fmapdec_restores_them() {
    init();
    let (coded, caps) = encode("mode=bi bits=6 entropy=zvc", &frames(3));
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "application/x-fmap-coded");
    let raw = raw_caps();
    for (field, value) in raw.structure(0).unwrap().iter() {
        assert_eq!(
            s.value(field).unwrap().serialize().unwrap(),
            value.serialize().unwrap(),
            "field {field} carried"
        );
    }
    assert_eq!(s.get::<&str>("mode").unwrap(), "bi");
    assert_eq!(s.get::<i32>("bits").unwrap(), 6);
    assert_eq!(s.get::<&str>("entropy").unwrap(), "zvc");
    assert_eq!(s.get::<i32>("delay-frames").unwrap(), 1);
    assert_eq!(
        s.get::<i32>("codec-version").unwrap(),
        i32::from(codec_core::codec::UNIT_VERSION)
    );
    // What rtpgstpay sends is the caps' text form.
    let reparsed: gst::Caps = caps.to_string().parse().unwrap();
    assert_eq!(reparsed, caps);

    let (_, h) = decode(&reparsed, coded);
    let out = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(out, raw);
}

/// With `conceal=false`, corrupted, truncated and missing units are dropped (counted, warned),
/// the stream goes on, and every frame that does come out is exactly the encoder's
/// reconstruction of that frame.
#[test]
fn damaged_units_are_dropped_and_the_decoder_resynchronizes() {
    init();
    let cfg = CodecConfig {
        structure: Structure::ClosedLoop,
        key_interval: 4,
        ..CodecConfig::default()
    };
    let input = frames(16);
    let reference = reference_units(&cfg, &input);
    let (mut coded, caps) = encode("mode=closed-loop key-interval=4", &input);
    // Unit 2: one byte flipped in the middle. Unit 5: cut short. Unit 9: lost (the next unit
    // arrives with DISCONT, as rtpgstdepay marks it). Units before the next key (8, 12) that
    // depend on a damaged one cannot be decoded.
    {
        let b = coded[2].make_mut();
        let mut m = b.map_writable().unwrap();
        let mid = m.len() / 2;
        m[mid] ^= 0x5a;
    }
    let short = {
        let m = coded[5].map_readable().unwrap();
        gst::Buffer::from_mut_slice(m[..m.len() / 3].to_vec())
    };
    coded[5] = short;
    coded.remove(9);
    coded[9].make_mut().set_flags(gst::BufferFlags::DISCONT);

    let bus = gst::Bus::new();
    let (decoded, h) = {
        let mut h = Harness::new("fmapdec");
        h.element().unwrap().set_property("conceal", false);
        h.element().unwrap().set_bus(Some(&bus));
        h.set_src_caps(caps);
        let mut out = Vec::new();
        for u in coded {
            assert!(h.push(u).is_ok());
            while let Some(b) = h.try_pull() {
                let f = FeatureFrame::from_raw(&b.map_readable().unwrap()).unwrap();
                out.push((f, b));
            }
        }
        assert!(h.push_event(gst::event::Eos::new()));
        (out, h)
    };
    let indices: Vec<u64> = decoded.iter().map(|(f, _)| f.index).collect();
    // Keys at 0, 4, 8, 12. 2 corrupt -> 2,3 lost; 5 truncated -> 5,6,7 lost; 9 missing -> 9,10,11.
    assert_eq!(indices, vec![0, 1, 4, 8, 12, 13, 14, 15]);
    for (f, b) in &decoded {
        let r = reference.iter().find(|u| u.frame_index == f.index).unwrap();
        assert_eq!(
            Some(f),
            r.reconstruction.as_ref(),
            "frame {} after resync",
            f.index
        );
        let after_gap = [4, 8, 12].contains(&f.index) || f.index == 0;
        assert_eq!(
            b.flags().contains(gst::BufferFlags::DISCONT),
            after_gap,
            "frame {}",
            f.index
        );
    }
    let s = stats(&h);
    // 2, 3 (missing reference), 5, 6, 7, 10, 11 dropped; 9 never arrived.
    assert_eq!(s.get::<u64>("dropped").unwrap(), 7);
    assert_eq!(s.get::<u64>("units").unwrap(), 15);
    assert_eq!(s.get::<u64>("disconts").unwrap(), 1);
    let warnings: Vec<gst::Message> =
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning])).collect();
    assert_eq!(warnings.len(), 7, "one warning per dropped unit");
    assert!(bus.pop_filtered(&[gst::MessageType::Error]).is_none());
}

/// With concealment (the default), a lost slice costs its channels and a lost unit is repeated:
/// every frame comes out, the concealed ones flagged CORRUPTED, the others exact, and fmapdec
/// asks upstream for a key unit.
#[test]
fn lost_slices_and_units_are_concealed_and_every_frame_comes_out() {
    init();
    let cfg = CodecConfig {
        slice_channels: 2,
        ..CodecConfig::default()
    };
    let input = frames(10);
    let reference = reference_units(&cfg, &input);
    let (mut coded, caps) = encode("slice-channels=2", &input);
    assert_eq!(coded.len(), 10);
    // Unit 3 loses its second slice (tensor 0, channels 2..4); unit 6 is lost.
    {
        let unit = coded[3].map_readable().unwrap().to_vec();
        let pieces = unit_pieces(&unit).unwrap();
        assert_eq!(pieces.len(), 1 + 3 + 2, "head, 3 + 2 slices");
        let kept: Vec<&[u8]> = [0, 1, 3, 4, 5].iter().map(|&k| pieces[k]).collect();
        coded[3] = gst::Buffer::from_mut_slice(assemble_unit(&kept).unwrap());
    }
    coded.remove(6);
    coded[6].make_mut().set_flags(gst::BufferFlags::DISCONT);

    let mut h = Harness::new("fmapdec");
    h.set_src_caps(caps);
    let mut out = Vec::new();
    for u in coded {
        assert!(h.push(u).is_ok());
        while let Some(b) = h.try_pull() {
            let f = FeatureFrame::from_raw(&b.map_readable().unwrap()).unwrap();
            out.push((f, b.flags().contains(gst::BufferFlags::CORRUPTED)));
        }
    }
    assert_eq!(
        out.iter().map(|(f, _)| f.index).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    for (f, concealed) in &out {
        let exact = reference[f.index as usize].reconstruction.as_ref().unwrap();
        assert_eq!(*concealed, f.index >= 3, "frame {}", f.index);
        if f.index < 3 {
            assert_eq!(f, exact);
        } else if f.index < 6 {
            // Only tensor 0's channels 2..4 are concealed; tensor 1 is exact.
            assert_eq!(f.tensors[1], exact.tensors[1], "frame {}", f.index);
            let plane = f.tensors[0].shape.plane_len();
            let (got, want) = (f.tensors[0].to_f32(), exact.tensors[0].to_f32());
            assert_eq!(got[..2 * plane], want[..2 * plane]);
            assert_eq!(got[4 * plane..], want[4 * plane..]);
            assert_ne!(got[2 * plane..4 * plane], want[2 * plane..4 * plane]);
        }
    }
    // Frame 6 never arrived: frame 5 again, with its own index.
    assert_eq!(out[6].0.tensors, out[5].0.tensors);
    let s = stats(&h);
    assert_eq!(s.get::<u64>("lost-slices").unwrap(), 1);
    assert_eq!(s.get::<u64>("repeated").unwrap(), 1);
    assert_eq!(s.get::<u64>("concealed").unwrap(), 7);
    assert_eq!(s.get::<u64>("dropped").unwrap(), 0);
    assert!(s.get::<u64>("key-requests").unwrap() >= 1);
    let request = std::iter::from_fn(|| h.try_pull_upstream_event())
        .find(|e| gst_video::ForceKeyUnitEvent::is(e));
    assert!(request.is_some(), "a force-key-unit event went upstream");
}

/// fmapenc announces its caps downstream (a force-key-unit event with all-headers, on which
/// rtpgstpay and rtpfmappay resend them in-band) before the first unit and then once per
/// `config-interval`, so that a receiver that joins late gets them without asking.
#[test]
fn caps_are_announced_every_config_interval_for_late_receivers() {
    init();
    for (props, want) in [
        ("", vec![0u64, 1_000_000_000, 2_000_000_000]),
        ("config-interval=2", vec![0, 2_000_000_000]),
        ("config-interval=0", vec![0]),
    ] {
        let mut h = Harness::new_parse(&format!("fmapenc {props}"));
        h.set_src_caps(raw_caps());
        for i in 0..25 {
            h.push(raw_buffer(&frame(i))).unwrap();
        }
        let announced: Vec<u64> = std::iter::from_fn(|| h.try_pull_event())
            .filter_map(|e| {
                gst_video::DownstreamForceKeyUnitEvent::parse(&e)
                    .ok()
                    .map(|k| {
                        assert!(k.all_headers);
                        k.timestamp.unwrap().nseconds()
                    })
            })
            .collect();
        assert_eq!(announced, want, "fmapenc {props}");
    }
}

#[test]
fn garbage_never_stops_the_decoder() {
    init();
    let (coded, caps) = encode("mode=intra", &frames(2));
    let mut h = Harness::new("fmapdec");
    h.set_src_caps(caps);
    for junk in [vec![], vec![0u8; 3], b"FMCU".repeat(40), vec![0xff; 5000]] {
        assert!(h.push(gst::Buffer::from_mut_slice(junk)).is_ok());
    }
    for u in coded {
        h.push(u).unwrap();
    }
    assert_eq!(
        h.buffers_in_queue(),
        2,
        "valid units after junk still decode"
    );
    assert_eq!(stats(&h).get::<u64>("dropped").unwrap(), 4);
}

#[test]
fn model_int8_on_f32_maps_is_a_clear_error() {
    init();
    let mut h = Harness::new_parse("fmapenc quantizer=model-int8");
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.set_src_caps(raw_caps());
    assert!(h.push(raw_buffer(&frame(0))).is_err());
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    let text = e.error().to_string();
    assert!(
        text.contains("model-int8") && text.contains("per-tensor") && text.contains("per-channel"),
        "{text}"
    );
}

#[test]
fn model_int8_on_u8_maps_round_trips() {
    init();
    let input: Vec<FeatureFrame> = (0..6).map(frame_u8).collect();
    let cfg = CodecConfig {
        structure: Structure::ClosedLoop,
        quantizer: QuantizerMode::Model8bit,
        bits: 6,
        ..CodecConfig::default()
    };
    let reference = reference_units(&cfg, &input);
    let (coded, caps) = encode("quantizer=model-int8 bits=6 mode=closed-loop", &input);
    let (decoded, _) = decode(&caps, coded);
    assert_eq!(decoded.len(), input.len());
    for ((f, _), e) in decoded.iter().zip(display_order(&reference)) {
        assert_eq!(*f, e);
        assert!(
            f.tensors
                .iter()
                .all(|t| matches!(t.data, TensorData::U8 { .. })),
            "u8 out for u8 in"
        );
    }
}

#[test]
fn calibrated_quantizer_reads_its_ranges_file() {
    init();
    let dir = std::env::temp_dir().join(format!("fmapcodec-calib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ranges.json");
    std::fs::write(
        &path,
        r#"{"stage2/out:0": [0.0, 4.0], "stage3/out:0": [0.0, 5.0]}"#,
    )
    .unwrap();
    let input = frames(4);
    let mut ranges = std::collections::BTreeMap::new();
    ranges.insert("stage2/out:0".to_string(), (0.0f32, 4.0f32));
    ranges.insert("stage3/out:0".to_string(), (0.0f32, 5.0f32));
    let cfg = CodecConfig {
        quantizer: QuantizerMode::Calibrated(ranges),
        ..CodecConfig::default()
    };
    let reference = reference_units(&cfg, &input);
    let (coded, _) = encode(
        &format!("quantizer=calibrated calibration={}", path.display()),
        &input,
    );
    for (b, r) in coded.iter().zip(&reference) {
        assert!(same_unit(b.map_readable().unwrap().as_slice(), &r.data));
    }

    // Without a file, caps are refused with a message that says what to do.
    let error = start_error("quantizer=calibrated");
    assert!(error.contains("calibration"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first error message on the bus of an `fmapenc {props}` fed `frame(0)`.
fn start_error(props: &str) -> String {
    let mut h = Harness::new_parse(&format!("fmapenc {props}"));
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.set_src_caps(raw_caps());
    assert!(h.push(raw_buffer(&frame(0))).is_err(), "{props} must fail");
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    e.error().to_string()
}

#[test]
fn channel_weights_file_sets_each_channels_step_and_a_wrong_one_fails_at_start() {
    use codec_core::codec::ChannelWeights;
    use fmap_infer::calibration::{Calibration, TensorCalibration, channel_weights};
    init();
    let dir = std::env::temp_dir().join(format!("fmapcodec-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = frames(5);
    let tensor = &input[0].tensors[0];
    let sensitivity: Vec<f64> = (0..tensor.shape.channels)
        .map(|c| 4f64.powi(c as i32))
        .collect();
    let calibration = |channels: usize| Calibration {
        format: fmap_infer::calibration::FORMAT.into(),
        version: fmap_infer::calibration::VERSION,
        model: "synthetic.onnx".into(),
        split: "stage2".into(),
        frames: 1,
        noise: 0.3,
        tensors: vec![TensorCalibration {
            name: tensor.name.clone(),
            channels,
            sensitivity: sensitivity[..channels].to_vec(),
            transform: None,
        }],
    };
    let path = dir.join("weights.calib.json");
    calibration(tensor.shape.channels).save(&path).unwrap();
    let cfg = CodecConfig {
        channel_weights: vec![ChannelWeights {
            tensor: tensor.name.clone(),
            weights: channel_weights(&sensitivity, 0.5),
        }],
        ..CodecConfig::default()
    };
    let reference = reference_units(&cfg, &input);
    let (coded, caps) = encode(&format!("channel-weights={}", path.display()), &input);
    assert_eq!(coded.len(), reference.len());
    for (b, r) in coded.iter().zip(&reference) {
        assert!(same_unit(b.map_readable().unwrap().as_slice(), &r.data));
    }
    // fmapdec needs nothing: the units carry the weights.
    let (decoded, _) = decode(&caps, coded);
    for ((f, _), e) in decoded.iter().zip(display_order(&reference)) {
        assert_eq!(*f, e);
    }
    let (plain, _) = encode("", &input);
    let size = |b: &[gst::Buffer]| b.iter().map(|b| b.size()).sum::<usize>();
    assert_ne!(
        size(&plain),
        size(&encode(&format!("channel-weights={}", path.display()), &input).0)
    );

    // A missing file names the tool that makes one; a file for another layout says to
    // recalibrate.
    let missing = start_error(&format!(
        "channel-weights={}",
        dir.join("none.calib.json").display()
    ));
    assert!(missing.contains("fmap-calibrate"), "{missing}");
    let other = dir.join("other.calib.json");
    calibration(tensor.shape.channels - 1).save(&other).unwrap();
    let wrong = start_error(&format!("channel-weights={}", other.display()));
    assert!(
        wrong.contains("calibrate for this model and split"),
        "{wrong}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn channel_transform_codes_principal_components_and_the_decoder_checks_the_file() {
    use codec_core::transform::{forward_frame, inverse_frame};
    use fmap_infer::calibration::{Calibration, TensorCalibration, TensorTransform};
    init();
    let dir = std::env::temp_dir().join(format!("fmapcodec-klt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = frames(6);
    let tensor = &input[0].tensors[0];
    let c = tensor.shape.channels;
    // An orthonormal basis: channel pairs rotated by 45 degrees (c is even), strongest first.
    let h = std::f32::consts::FRAC_1_SQRT_2;
    let basis: Vec<Vec<f32>> = (0..c)
        .map(|r| {
            let mut row = vec![0.0; c];
            let (a, b) = (r / 2 * 2, r / 2 * 2 + 1);
            row[a] = h;
            row[b] = if r % 2 == 0 { h } else { -h };
            row
        })
        .collect();
    let file = |shift: f32, name: &str| {
        let rows = c;
        let path = dir.join(name);
        Calibration {
            format: fmap_infer::calibration::FORMAT.into(),
            version: fmap_infer::calibration::VERSION,
            model: "synthetic.onnx".into(),
            split: "stage2".into(),
            frames: 1,
            noise: 0.3,
            tensors: vec![TensorCalibration {
                name: tensor.name.clone(),
                channels: c,
                sensitivity: vec![1.0; c],
                transform: Some(TensorTransform {
                    mean: (0..c).map(|i| i as f32 * 0.1 + shift).collect(),
                    variances: (0..rows).map(|r| (rows - r) as f64).collect(),
                    basis: basis[..rows].to_vec(),
                }),
            }],
        }
        .save(&path)
        .unwrap();
        path
    };
    let path = file(0.0, "klt.calib.json");
    let k = c - 2;
    let props = format!(
        "channel-transform={} transform-components={k}",
        path.display()
    );
    let (coded, caps) = encode(&props, &input);
    let field = caps
        .structure(0)
        .unwrap()
        .get::<String>("channel-transform")
        .expect("the caps name the transform");
    assert!(field.ends_with(&format!(":{k}")), "{field}");

    // The units are what codec-core makes of the transformed frames, and fmapdec with the same
    // file outputs their inverse: the original layout.
    let transforms = fmap_infer::calibration::Calibration::load(&path)
        .unwrap()
        .tensors[0]
        .transform
        .as_ref()
        .unwrap()
        .to_codec(&tensor.name, k)
        .unwrap();
    let transforms = [transforms];
    let transformed: Vec<FeatureFrame> = input
        .iter()
        .map(|f| forward_frame(&transforms, f).unwrap())
        .collect();
    let reference = reference_units(&CodecConfig::default(), &transformed);
    for (b, r) in coded.iter().zip(&reference) {
        assert!(same_unit(b.map_readable().unwrap().as_slice(), &r.data));
    }
    let decoder_caps = |props: &str| {
        let mut h = Harness::new_parse(&format!("fmapdec {props}"));
        let bus = gst::Bus::new();
        h.element().unwrap().set_bus(Some(&bus));
        h.set_src_caps(caps.clone());
        let mut out = Vec::new();
        for b in &coded {
            match h.push(b.clone()) {
                Ok(_) => {
                    while let Some(o) = h.try_pull() {
                        out.push(FeatureFrame::from_raw(&o.map_readable().unwrap()).unwrap());
                    }
                }
                Err(_) => break,
            }
        }
        let error = bus.pop_filtered(&[gst::MessageType::Error]).map(|m| {
            let gst::MessageView::Error(e) = m.view() else {
                unreachable!()
            };
            e.error().to_string()
        });
        (out, error)
    };
    let (decoded, error) = decoder_caps(&format!("channel-transform={}", path.display()));
    assert_eq!(error, None);
    assert_eq!(decoded.len(), input.len());
    for ((d, e), original) in decoded.iter().zip(display_order(&reference)).zip(&input) {
        assert_eq!(*d, inverse_frame(&transforms, &e).unwrap());
        assert_eq!(d.tensors[0].shape, original.tensors[0].shape);
    }

    // Without the file, or with another one, fmapdec refuses the stream and says why.
    let (none, error) = decoder_caps("");
    assert!(none.is_empty());
    let error = error.expect("an error without the file");
    assert!(error.contains("set fmapdec's channel-transform"), "{error}");
    let other = file(0.5, "other.calib.json");
    let (_, error) = decoder_caps(&format!("channel-transform={}", other.display()));
    let error = error.expect("an error with another file");
    assert!(error.contains("use the sender's file"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gst_inspect_lists_the_enum_choices() {
    init();
    let enc = gst::ElementFactory::make("fmapenc").build().unwrap();
    let nicks = |prop: &str| -> Vec<String> {
        let pspec = enc.find_property(prop).unwrap();
        let class = glib::EnumClass::with_type(pspec.value_type()).unwrap();
        class
            .values()
            .iter()
            .map(|v| v.nick().to_string())
            .collect()
    };
    assert_eq!(
        nicks("mode"),
        ["intra", "uni", "bi", "closed-loop", "adaptive"]
    );
    assert_eq!(nicks("search"), ["tss", "full"]);
    assert_eq!(nicks("mv-sharing"), ["channel", "shared"]);
    assert_eq!(
        nicks("quantizer"),
        ["per-tensor", "per-channel", "calibrated", "model-int8"]
    );
    assert_eq!(
        nicks("entropy"),
        ["none", "huffman", "zvc", "zvc-huffman", "rle"]
    );
    // Defaults follow codec-core's.
    let d = CodecConfig::default();
    assert_eq!(enc.property::<u32>("bits"), u32::from(d.bits));
    assert_eq!(enc.property::<u32>("key-interval"), d.key_interval);
    assert_eq!(enc.property::<u32>("block-size"), d.block_size as u32);
    assert_eq!(enc.property::<f32>("quality"), d.quality);
    assert_eq!(enc.property::<f32>("lambda"), d.lambda);
    let mode = enc.property_value("mode");
    let (_, mode) = glib::EnumValue::from_value(&mode).unwrap();
    assert_eq!(mode.nick(), d.structure.name());
}
