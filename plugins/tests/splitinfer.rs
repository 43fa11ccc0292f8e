//! splitinfer-front / splitinfer-back in real pipelines, with the real models, ONNX Runtime,
//! images and footage. Needs ORT_DYLIB_PATH (or the project .venv), FMAP_IMAGES and
//! FMAP_FOOTAGE (`source .cache/env.sh`), falling back to `<workspace>/.cache/...`.
//! Run in release: `cargo test -p gst-fmap --release --test splitinfer`.
//!
//! Detections are checked against `models/expected/*.json` with the matching rule written in
//! those files (class, IoU and score tolerance; weak "near threshold" detections may differ).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};

use fmap_infer::decode::Detection;
use fmap_infer::detection::parse_detections_line;
use gst::prelude::*;

const NANODET: &str = "nanodet";
const SSD: &str = "ssd_mobilenet_v2_coco_quant";
/// A hung pipeline fails the test instead of blocking it.
const PIPELINE_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(900);
const ERROR_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(120);
/// Frames 0..=100 of vtest.avi: the first 100 frames and frame 100 of the expected file.
const VTEST_FRAMES: u32 = 101;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstfmap::plugin_register_static().unwrap();
    });
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn data_dir(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".cache").join(fallback))
}

fn image(name: &str) -> String {
    let p = data_dir("FMAP_IMAGES", "images").join(name);
    assert!(
        p.is_file(),
        "missing {} (run scripts/setup.sh)",
        p.display()
    );
    p.display().to_string()
}

fn footage(name: &str) -> String {
    let p = data_dir("FMAP_FOOTAGE", "footage").join(name);
    assert!(
        p.is_file(),
        "missing {} (run scripts/setup.sh)",
        p.display()
    );
    p.display().to_string()
}

fn model(name: &str) -> String {
    let p = workspace().join("models").join(format!("{name}.onnx"));
    assert!(p.is_file(), "missing model {}", p.display());
    p.display().to_string()
}

fn image_source(name: &str) -> String {
    format!("filesrc location={} ! jpegdec ! videoconvert", image(name))
}

/// The decoded footage, cut after `frames` frames by [`limit_frames`] (identity's eos-after
/// is unreliable after a threaded decoder: it lets a late-drained frame through).
fn vtest_source(frames: u32) -> String {
    format!(
        "filesrc location={} ! decodebin ! identity name=limit-{frames} ! videoconvert",
        footage("vtest.avi")
    )
}

fn split_chain(model_name: &str, split: &str) -> String {
    let m = model(model_name);
    // An empty split-at means the profile's default split.
    let split = if split.is_empty() {
        String::new()
    } else {
        format!("split-at={split}")
    };
    format!(
        "splitinfer-front name=front model={m} {split} threads=2 ! \
         splitinfer-back name=back model={m} threads=2"
    )
}

/// Runs `<desc> ! appsink` and returns every buffer as text, or the first error message
/// (with the name of the element that posted it).
fn run_lines(desc: &str) -> Result<Vec<String>, String> {
    init();
    let pipeline = gst::parse::launch(&format!("{desc} ! appsink name=sink sync=false"))
        .map_err(|e| format!("parse: {e}"))?
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                l.lock()
                    .unwrap()
                    .push(String::from_utf8(map.to_vec()).expect("detections are UTF-8"));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    limit_frames(&pipeline);
    let bus = pipeline.bus().unwrap();
    // A failing start() makes set_state fail; the error message is on the bus either way.
    let _ = pipeline.set_state(gst::State::Playing);
    let timeout = if desc.contains("vtest") {
        PIPELINE_TIMEOUT
    } else {
        ERROR_TIMEOUT
    };
    let result =
        match bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error]) {
            None => Err("no EOS or error within the timeout: the pipeline hung".to_string()),
            Some(msg) => match msg.view() {
                gst::MessageView::Error(e) => Err(format!(
                    "{}: {}",
                    e.src().map(|s| s.name().to_string()).unwrap_or_default(),
                    e.error()
                )),
                _ => Ok(()),
            },
        };
    pipeline.set_state(gst::State::Null).unwrap();
    result.map(|_| std::mem::take(&mut *lines.lock().unwrap()))
}

/// For an `identity name=limit-<N>`: passes N buffers, then answers EOS upstream so the
/// source stops and EOS flows down.
fn limit_frames(pipeline: &gst::Pipeline) {
    let Some(limit) = pipeline
        .iterate_elements()
        .into_iter()
        .flatten()
        .find(|e| e.name().starts_with("limit-"))
    else {
        return;
    };
    let max: u64 = limit.name()["limit-".len()..].parse().unwrap();
    let seen = std::sync::atomic::AtomicU64::new(0);
    limit
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < max {
                gst::PadProbeReturn::Ok
            } else {
                // Handled (not Drop, which always answers OK upstream): consume the buffer
                // and return EOS so the source stops.
                drop(info.take_buffer());
                info.flow_res = Err(gst::FlowError::Eos);
                gst::PadProbeReturn::Handled
            }
        });
}

fn parse(lines: &[String]) -> Vec<fmap_infer::detection::DetectionsLine> {
    lines
        .iter()
        .map(|l| {
            assert!(
                l.ends_with('\n') && l.matches('\n').count() == 1,
                "one line: {l:?}"
            );
            parse_detections_line(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))
        })
        .collect()
}

/// The expected detections of `model_name` on `source` (dog, bus, vtest) and the matching rule.
struct Expected {
    score_threshold: f32,
    score_abs: f32,
    min_iou: f32,
    margin: f32,
    /// (frame index, detections with their near-threshold flag)
    frames: Vec<(u64, Vec<(Detection, bool)>)>,
}

fn expected(model_name: &str, source: &str) -> Expected {
    let path = workspace()
        .join("models/expected")
        .join(format!("{model_name}.{source}.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let f = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
    let frames = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fr| {
            let dets = fr["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let b = d["box"].as_array().unwrap();
                    (
                        Detection {
                            label: d["label"].as_str().unwrap().to_string(),
                            class_id: d["class_id"].as_u64().unwrap() as u32,
                            score: f(&d["score"]),
                            bbox: [f(&b[0]), f(&b[1]), f(&b[2]), f(&b[3])],
                        },
                        d["near_threshold"].as_bool().unwrap(),
                    )
                })
                .collect();
            (fr["frame"].as_u64().unwrap(), dets)
        })
        .collect();
    Expected {
        score_threshold: f(&v["decode"]["score_threshold"]),
        score_abs: f(&v["tolerance"]["score_abs"]),
        min_iou: f(&v["tolerance"]["min_iou"]),
        margin: f(&v["tolerance"]["near_threshold_margin"]),
        frames,
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

impl Expected {
    /// Applies the rule of the expected files to one frame.
    fn check(&self, frame: u64, actual: &[Detection]) {
        let (_, want) = self
            .frames
            .iter()
            .find(|(f, _)| *f == frame)
            .unwrap_or_else(|| panic!("no expected detections for frame {frame}"));
        let matches = |e: &Detection, a: &Detection| {
            e.class_id == a.class_id
                && (e.score - a.score).abs() <= self.score_abs
                && iou(&e.bbox, &a.bbox) >= self.min_iou
        };
        let mut used = vec![false; actual.len()];
        // Firm expectations first, then the near-threshold ones (which may be missing).
        for near_pass in [false, true] {
            for (e, near) in want.iter().filter(|(_, n)| *n == near_pass) {
                match actual
                    .iter()
                    .enumerate()
                    .find(|(i, a)| !used[*i] && matches(e, a))
                {
                    Some((i, _)) => used[i] = true,
                    None if *near => {}
                    None => panic!(
                        "frame {frame}: expected {} {:.3} at {:?} not found in {actual:?}",
                        e.label, e.score, e.bbox
                    ),
                }
            }
        }
        for (a, _) in actual.iter().zip(&used).filter(|(_, u)| !**u) {
            assert!(
                a.score < self.score_threshold + self.margin,
                "frame {frame}: unexpected confident detection {a:?}"
            );
        }
    }
}

fn labels(dets: &[Detection]) -> Vec<&str> {
    dets.iter().map(|d| d.label.as_str()).collect()
}

#[test]
fn nanodet_finds_the_dog_and_the_bicycle() {
    let lines = run_lines(&format!(
        "{} ! {}",
        image_source("dog.jpg"),
        split_chain(NANODET, "stage2")
    ))
    .unwrap();
    let parsed = parse(&lines);
    assert_eq!(parsed.len(), 1);
    let l = &parsed[0];
    assert_eq!((l.width, l.height, l.frame), (768, 576, 0));
    let names = labels(&l.detections);
    assert!(
        names.contains(&"dog") && names.contains(&"bicycle"),
        "{names:?}"
    );
    expected(NANODET, "dog").check(0, &l.detections);
}

#[test]
fn nanodet_finds_the_bus_and_the_people() {
    let lines = run_lines(&format!(
        "{} ! {}",
        image_source("bus.jpg"),
        split_chain(NANODET, "backbone")
    ))
    .unwrap();
    let parsed = parse(&lines);
    assert_eq!(parsed.len(), 1);
    let l = &parsed[0];
    assert_eq!((l.width, l.height), (810, 1080));
    let names = labels(&l.detections);
    assert!(names.contains(&"bus"), "{names:?}");
    assert!(
        names.iter().filter(|n| **n == "person").count() >= 3,
        "{names:?}"
    );
    expected(NANODET, "bus").check(0, &l.detections);
}

#[test]
fn ssd_generic_decoder_on_images_and_footage() {
    // uint8 model, default split (8-bit cut tensors with scale and zero point).
    let lines = run_lines(&format!(
        "{} ! {}",
        image_source("bus.jpg"),
        split_chain(SSD, "")
    ))
    .unwrap();
    let l = &parse(&lines)[0];
    expected(SSD, "bus").check(0, &l.detections);
    let lines = run_lines(&format!(
        "{} ! {}",
        image_source("dog.jpg"),
        split_chain(SSD, "expanded_conv_12")
    ))
    .unwrap();
    let l = &parse(&lines)[0];
    assert!(labels(&l.detections).contains(&"dog"));
    expected(SSD, "dog").check(0, &l.detections);

    let lines = run_lines(&format!(
        "{} ! {}",
        vtest_source(VTEST_FRAMES),
        split_chain(SSD, "")
    ))
    .unwrap();
    let parsed = parse(&lines);
    assert_eq!(parsed.len(), VTEST_FRAMES as usize);
    let exp = expected(SSD, "vtest");
    for l in &parsed {
        let people = l.detections.iter().filter(|d| d.label == "person").count();
        assert!(
            people >= 1,
            "frame {}: no person in {:?}",
            l.frame,
            l.detections
        );
        if l.frame == 0 || l.frame == 100 {
            exp.check(l.frame, &l.detections);
        }
    }
    let total: usize = parsed.iter().map(|l| l.detections.len()).sum();
    println!(
        "SSD vtest frames 0..={}: {:.2} detections/frame",
        VTEST_FRAMES - 1,
        total as f64 / parsed.len() as f64
    );
}

#[test]
fn split_runs_give_exactly_the_detections_of_the_whole_network() {
    let reference = run_lines(&format!(
        "{} ! {}",
        vtest_source(VTEST_FRAMES),
        split_chain(NANODET, "none")
    ))
    .unwrap();
    assert_eq!(reference.len(), VTEST_FRAMES as usize);
    let parsed = parse(&reference);
    for (i, l) in parsed.iter().enumerate() {
        assert_eq!(l.frame, i as u64);
        assert_eq!(
            l.pts_ns,
            Some(i as u64 * 100_000_000),
            "10 fps timestamps pass through"
        );
        assert_eq!((l.width, l.height), (768, 576));
    }
    let exp = expected(NANODET, "vtest");
    exp.check(0, &parsed[0].detections);
    exp.check(100, &parsed[100].detections);
    let total: usize = parsed.iter().map(|l| l.detections.len()).sum();
    println!(
        "NanoDet vtest frames 0..={}: {:.2} detections/frame",
        VTEST_FRAMES - 1,
        total as f64 / parsed.len() as f64
    );
    for split in ["stage2", "backbone"] {
        let lines = run_lines(&format!(
            "{} ! {}",
            vtest_source(VTEST_FRAMES),
            split_chain(NANODET, split)
        ))
        .unwrap();
        assert_eq!(lines.len(), reference.len(), "split {split}");
        for (i, (a, b)) in lines.iter().zip(&reference).enumerate() {
            assert_eq!(a, b, "split {split}, frame {i}");
        }
    }
}

#[test]
fn caps_describe_the_stream() {
    init();
    let desc = format!(
        "{} ! splitinfer-front name=front model={} split-at=backbone ! fakesink name=sink",
        image_source("dog.jpg"),
        model(NANODET)
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let caps_seen = Arc::new(Mutex::new(None));
    let c = caps_seen.clone();
    let sink_pad = pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap();
    sink_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(ev)) = &info.data
            && let gst::EventView::Caps(caps) = ev.view()
        {
            *c.lock().unwrap() = Some(caps.caps_owned());
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline.bus().unwrap().timed_pop_filtered(
        ERROR_TIMEOUT,
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.unwrap().view(), gst::MessageView::Eos(_)));
    let caps = caps_seen
        .lock()
        .unwrap()
        .clone()
        .expect("caps reached the sink");
    let f = gstfmap::common::caps::FmapCaps::from_caps(&caps).unwrap();
    assert_eq!(f.split, "backbone");
    assert_eq!(f.cut.len(), 3);
    assert_eq!(
        (f.width, f.height, f.input_width, f.input_height),
        (768, 576, 416, 416)
    );
    assert_eq!(f.resize, gstfmap::common::caps::ResizeMode::Stretch);
    // The model identity is the SHA-256 prefix of the file.
    let bytes = std::fs::read(model(NANODET)).unwrap();
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(hex.starts_with(&f.model), "{} vs {hex}", f.model);
    // Serializable: the caps string parses back (what rtpgstpay carries).
    let again: gst::Caps = caps.to_string().parse().unwrap();
    assert_eq!(
        gstfmap::common::caps::FmapCaps::from_caps(&again).unwrap(),
        f
    );
}

fn expect_error(desc: &str, from: &str, needles: &[&str]) {
    let err = run_lines(desc).expect_err("the pipeline must fail");
    assert!(
        err.starts_with(&format!("{from}:")),
        "error from {from}: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "'{n}' in: {err}");
    }
}

#[test]
fn bad_model_path_is_an_element_error() {
    expect_error(
        &format!(
            "{} ! splitinfer-front name=front model=/nonexistent/model.onnx",
            image_source("dog.jpg")
        ),
        "front",
        &["/nonexistent/model.onnx", "model="],
    );
    expect_error(
        &format!(
            "{} ! splitinfer-front model={m} ! splitinfer-back name=back model=/nope.onnx",
            image_source("dog.jpg"),
            m = model(NANODET)
        ),
        "back",
        &["/nope.onnx"],
    );
}

#[test]
fn unknown_split_name_lists_the_valid_ones() {
    expect_error(
        &format!(
            "{} ! splitinfer-front name=front model={} split-at=stage7",
            image_source("dog.jpg"),
            model(NANODET)
        ),
        "front",
        &["stage7", "none, backbone, stage1, stage2"],
    );
    expect_error(
        &format!(
            "{} ! splitinfer-front name=front model={} split-at=\"no/such:0\"",
            image_source("dog.jpg"),
            model(NANODET)
        ),
        "front",
        &["no/such:0", "unknown tensor"],
    );
}

#[test]
fn front_and_back_from_different_models_is_an_element_error() {
    expect_error(
        &format!(
            "{} ! splitinfer-front model={} ! splitinfer-back name=back model={}",
            image_source("dog.jpg"),
            model(NANODET),
            model(SSD)
        ),
        "back",
        &["different model", "same model file"],
    );
}

/// ONNX Runtime is loaded once per process, so the missing-library case runs in a child
/// process: this test binary again, running only the ignored `missing_ort_library_child`.
#[test]
fn missing_ort_library_is_an_element_error() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "missing_ort_library_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FMAP_MISSING_ORT_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "child ran:\n{text}");
}

#[test]
#[ignore = "run by missing_ort_library_is_an_element_error in a fresh process"]
fn missing_ort_library_child() {
    assert!(
        std::env::var_os("FMAP_MISSING_ORT_CHILD").is_some(),
        "needs a process where ONNX Runtime was never loaded: run \
         missing_ort_library_is_an_element_error instead"
    );
    expect_error(
        &format!(
            "{} ! splitinfer-front name=front model={} ort-library=/nonexistent/libonnxruntime.so",
            image_source("dog.jpg"),
            model(NANODET)
        ),
        "front",
        &["/nonexistent/libonnxruntime.so", "ORT_DYLIB_PATH"],
    );
}

/// SHA-256 hex prefix as splitinfer elements put it in caps.
fn model_hash(path: &str) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..16]
        .to_string()
}

/// NanoDet outputs with a single confident cell: class 16 (dog) at stride-8 cell (row 20,
/// col 30), side distances of 5, 3, 6 and 4 bins (x 8 px).
fn synthetic_nanodet_outputs() -> Vec<codec_core::Tensor> {
    use codec_core::{Shape, Tensor};
    let mut tensors = Vec::new();
    for (level, n) in [(0usize, 52 * 52), (1, 26 * 26), (2, 13 * 13)] {
        let mut scores = vec![0f32; n * 80];
        let mut boxes = vec![0f32; n * 44];
        if level == 0 {
            let p = 20 * 52 + 30;
            scores[p * 80 + 16] = 0.9;
            for (side, bin) in [5usize, 3, 6, 4].into_iter().enumerate() {
                boxes[p * 44 + side * 11 + bin] = 100.0;
            }
        }
        let scores_name = ["Identity:0", "Identity_1:0", "Identity_2:0"][level];
        let boxes_name = ["Identity_3:0", "Identity_4:0", "Identity_5:0"][level];
        tensors.push(Tensor::from_f32(scores_name, Shape::new(1, n, 80), scores).unwrap());
        tensors.push(Tensor::from_f32(boxes_name, Shape::new(1, n, 44), boxes).unwrap());
    }
    tensors
}

fn none_split_caps(model_path: &str, cut: Vec<String>) -> gst::Caps {
    gstfmap::common::caps::FmapCaps {
        model: model_hash(model_path),
        cut,
        split: "none".into(),
        width: 832,
        height: 624,
        framerate: gst::Fraction::new(10, 1),
        resize: gstfmap::common::caps::ResizeMode::Stretch,
        input_width: 416,
        input_height: 416,
    }
    .to_caps()
}

#[test]
fn back_decodes_a_reference_stream_in_a_harness() {
    init();
    let m = model(NANODET);
    let tensors = synthetic_nanodet_outputs();
    let cut: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    let mut h = gst_check::Harness::new_parse(&format!("splitinfer-back model={m}"));
    h.set_src_caps(none_split_caps(&m, cut));
    let raw = codec_core::FeatureFrame::new(7, Some(500_000_000), tensors)
        .to_raw()
        .unwrap();
    let mut buf = gst::Buffer::from_mut_slice(raw);
    buf.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(500));
    let out = h.push_and_pull(buf).unwrap();
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(500)));
    let text = String::from_utf8(out.map_readable().unwrap().to_vec()).unwrap();
    let line = parse_detections_line(&text).unwrap();
    assert_eq!((line.frame, line.pts_ns), (7, Some(500_000_000)));
    assert_eq!((line.width, line.height), (832, 624));
    assert_eq!(line.detections.len(), 1, "{text}");
    let d = &line.detections[0];
    assert_eq!((d.label.as_str(), d.class_id), ("dog", 16));
    assert!((d.score - 0.9).abs() < 1e-3);
    // Network box: centre (244, 164) -/+ (40, 24, 48, 32) = [204, 140, 292, 196]; the video
    // is 2x wider and 1.5x taller than the 416x416 input.
    let want = [408.0, 210.0, 584.0, 294.0];
    for (got, want) in d.bbox.iter().zip(want) {
        assert!((got - want).abs() < 0.2, "{:?} vs {want:?}", d.bbox);
    }
}

#[test]
fn back_drops_damaged_frames_and_rejects_foreign_ones_without_panicking() {
    init();
    let m = model(NANODET);
    let tensors = synthetic_nanodet_outputs();
    let cut: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    let valid = codec_core::FeatureFrame::new(0, None, tensors)
        .to_raw()
        .unwrap();
    let damaged: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        Vec::new(),
        valid[..valid.len() / 2].to_vec(),
        {
            let mut v = valid.clone();
            v[0] ^= 0xff;
            v
        },
    ];
    // A damaged frame is dropped with a warning; the next good frame still gets its line.
    for (i, bytes) in damaged.into_iter().enumerate() {
        let mut h = gst_check::Harness::new_parse(&format!("splitinfer-back model={m}"));
        h.set_src_caps(none_split_caps(&m, cut.clone()));
        assert_eq!(
            h.push(gst::Buffer::from_mut_slice(bytes)),
            Ok(gst::FlowSuccess::Ok),
            "damaged case {i}"
        );
        assert!(h.try_pull().is_none(), "damaged case {i} produced output");
        let out = h
            .push_and_pull(gst::Buffer::from_slice(valid.clone()))
            .unwrap_or_else(|e| panic!("damaged case {i}: the stream stopped: {e:?}"));
        let text = String::from_utf8(out.map_readable().unwrap().to_vec()).unwrap();
        parse_detections_line(&text).unwrap();
    }
    // A well-formed frame whose tensors are not the announced cut cannot be fixed by waiting:
    // an element error.
    let cases = vec![
        codec_core::FeatureFrame::new(
            0,
            None,
            vec![
                codec_core::Tensor::from_f32("x:0", codec_core::Shape::new(1, 1, 4), vec![0.0; 4])
                    .unwrap(),
            ],
        )
        .to_raw()
        .unwrap(),
    ];
    for (i, bytes) in cases.into_iter().enumerate() {
        let mut h = gst_check::Harness::new_parse(&format!("splitinfer-back model={m}"));
        h.set_src_caps(none_split_caps(&m, cut.clone()));
        assert_eq!(
            h.push(gst::Buffer::from_mut_slice(bytes)),
            Err(gst::FlowError::Error),
            "case {i}"
        );
    }
}
