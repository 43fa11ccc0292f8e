//! `fmap-calibrate` on real components: vtest.avi decoded by GStreamer, the real
//! `splitinfer-front`, ONNX Runtime running the real models of models/. Needs the release plugin
//! (target/release/libgstfmap.so, found through GST_PLUGIN_PATH or in target/release), ONNX
//! Runtime and the sample footage (scripts/test.sh provides all three).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use codec_core::TensorData;
use common::workspace;
use fmap_eval::calibrate::{
    BackNetwork, MeasureAt, Options, Report, Spread, calibrate, record_frames,
};
use fmap_infer::calibration::Calibration;

const NANODET: &str = "models/nanodet.onnx";
const SSD: &str = "models/ssd_mobilenet_v2_coco_quant.onnx";

fn init() {
    gst::init().expect("GStreamer initializes");
    if gst::ElementFactory::find("splitinfer-front").is_none() {
        gst::Registry::get().scan_path(workspace().join("target/release"));
    }
    assert!(
        gst::ElementFactory::find("splitinfer-front").is_some(),
        "splitinfer-front not found: build the plugin (cargo build --release) and set \
         GST_PLUGIN_PATH to target/release"
    );
}

fn video() -> PathBuf {
    std::env::var_os("FMAP_FOOTAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".cache/footage"))
        .join("vtest.avi")
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fmap-calibrate-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(model: &str, split: &str, frames: usize) -> Options {
    let mut o = Options::new(workspace().join(model), split, video());
    o.frames = frames;
    o
}

/// Every sensitivity finite and positive; saved, the file loads back with the same values.
fn check_and_round_trip(r: &Report, dir: &Path) -> Calibration {
    let c = &r.calibration;
    for t in &c.tensors {
        assert_eq!(t.sensitivity.len(), t.channels);
        for (ch, s) in t.sensitivity.iter().enumerate() {
            assert!(s.is_finite() && *s > 0.0, "{} channel {ch}: {s}", t.name);
        }
    }
    let path = dir.join("c.calib.json");
    c.save(&path).unwrap();
    let back = Calibration::load(&path).unwrap();
    assert_eq!(
        (&back.model, &back.split, back.frames, back.noise),
        (&c.model, &c.split, c.frames, c.noise)
    );
    for (a, b) in back.tensors.iter().zip(&c.tensors) {
        assert_eq!((&a.name, a.channels), (&b.name, b.channels));
        for (x, y) in a.sensitivity.iter().zip(&b.sensitivity) {
            assert!((x - y).abs() <= 2.0 * f64::EPSILON * y.abs(), "{x} vs {y}");
        }
    }
    back
}

#[test]
fn nanodet_stage2_two_frames() {
    init();
    let dir = temp_dir("nanodet");
    let o = options(NANODET, "stage2", 2);
    let r = calibrate(&o, |_| {}).unwrap();
    let c = &r.calibration;
    assert_eq!(
        (c.model.as_str(), c.split.as_str()),
        ("nanodet.onnx", "stage2")
    );
    assert_eq!(c.frames, 2);
    // Two frames spread over the first 300 of vtest.avi's 795.
    assert_eq!(r.source_frames, vec![0, 150]);
    assert_eq!(c.tensors.len(), 1);
    let t = &c.tensors[0];
    assert_eq!(
        (t.name.as_str(), t.channels),
        ("PartitionedCall/onnx_tf_prefix_Concat_27:0", 128)
    );
    assert_eq!(r.back_runs, 256);
    // No NMS inside NanoDet: measured at its six outputs (scores and box distributions).
    assert_eq!(r.measured.len(), 6, "{:?}", r.measured);
    check_and_round_trip(&r, &dir);
    let s = Spread::of(&t.sensitivity).unwrap();
    assert!(s.max / s.min > 2.0, "channels hardly differ: {s}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ssd_expanded_conv_5_eight_bit() {
    init();
    let dir = temp_dir("ssd");
    let model = workspace().join(SSD);
    // The cut of this model is 8-bit codes: the noise goes in code units.
    let frames = record_frames(&video(), &model, "expanded_conv_5", 1, 1, 2).unwrap();
    let t = &frames[0].tensors[0];
    assert!(
        matches!(t.data, TensorData::U8 { .. }),
        "{}",
        t.data.dtype_name()
    );

    let o = options(SSD, "expanded_conv_5", 2);
    let r = calibrate(&o, |_| {}).unwrap();
    let c = check_and_round_trip(&r, &dir);
    assert_eq!(c.tensors.len(), 1);
    assert_eq!(c.tensors[0].channels, 32);
    // Measured before the model's own NMS, not on its top-20 detections.
    assert!(!r.measured.is_empty());
    assert!(
        r.measured
            .iter()
            .all(|m| !m.starts_with("TFLite_Detection_PostProcess")),
        "{:?}",
        r.measured
    );
    let s = Spread::of(&c.tensors[0].sensitivity).unwrap();
    assert!(s.max > s.min, "every channel measured the same: {s}");
    // Deterministic: the same noise, hence the same numbers, on a second run.
    let again = calibrate(&o, |_| {}).unwrap();
    assert_eq!(again.calibration, r.calibration);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn frames_are_picked_at_the_stride() {
    init();
    // Frames 0, 7 and 14 of a 10 fps clip.
    let frames =
        record_frames(&video(), &workspace().join(SSD), "expanded_conv_5", 3, 7, 2).unwrap();
    let pts: Vec<Option<u64>> = frames.iter().map(|f| f.pts_ns).collect();
    assert_eq!(
        pts,
        vec![Some(0), Some(700_000_000), Some(1_400_000_000)],
        "{pts:?}"
    );
}

#[test]
fn measure_at_tensors_outputs_and_unknown_names() {
    let model = std::fs::read(workspace().join(SSD)).unwrap();
    let cut = vec!["FeatureExtractor/MobilenetV2/expanded_conv_5/add".to_string()];
    let e = BackNetwork::open(&model, &cut, &MeasureAt::Tensors(vec!["nope:0".into()]), 2)
        .err()
        .expect("an error");
    assert!(
        e.contains("nope:0") && e.contains("measured tensors"),
        "{e}"
    );
    // One of the model's outputs is measured on the unsplit back part; mixed with an inner
    // tensor it cannot be.
    let scores = "TFLite_Detection_PostProcess:2".to_string();
    let back =
        BackNetwork::open(&model, &cut, &MeasureAt::Tensors(vec![scores.clone()]), 2).unwrap();
    assert_eq!(back.measured, vec![scores.clone()]);
    let inner = "Concat__1060:0".to_string();
    let e = BackNetwork::open(&model, &cut, &MeasureAt::Tensors(vec![inner, scores]), 2)
        .err()
        .expect("an error");
    assert!(
        e.contains("can be measured only without other tensors"),
        "{e}"
    );
    let back = BackNetwork::open(&model, &cut, &MeasureAt::Outputs, 2).unwrap();
    assert_eq!(back.measured.len(), 4, "{:?}", back.measured);
}

#[test]
fn command_line() {
    let root = workspace();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fmap-calibrate"));
        cmd.env("FMAP_ROOT", &root).current_dir(&root).args(args);
        if std::env::var_os("GST_PLUGIN_PATH").is_none() {
            cmd.env("GST_PLUGIN_PATH", root.join("target/release"));
        }
        cmd.output().unwrap()
    };
    let out = run(&["--model", SSD]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--split are required"));

    let dir = temp_dir("cli");
    let path = dir.join("ssd.calib.json");
    let out = run(&[
        "--model",
        SSD,
        "--split",
        "expanded_conv_5",
        "--frames",
        "1",
        "--out",
        path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("wrote {}", path.display())),
        "{stdout}"
    );
    assert!(stdout.contains("[32 channels]: min"), "{stdout}");
    assert!(
        stderr.contains("calibrating channel 32/32, frame 1/1"),
        "{stderr}"
    );
    let c = Calibration::load(&path).unwrap();
    assert_eq!((c.frames, c.noise), (1, 0.3));
    std::fs::remove_dir_all(&dir).ok();
}
