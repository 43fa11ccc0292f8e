//! End-to-end detection with the real models, real ONNX Runtime and real images/footage:
//! profile → `Preprocessor` → ONNX Runtime `Session` → `OutputDecoder` → detections JSON line,
//! compared with the reference detections of the Python tooling in `models/expected/*.json`
//! using the matching rule recorded in those files.
//!
//! Needs ONNX Runtime (`ORT_DYLIB_PATH`, see `.cache/env.sh`), `FMAP_IMAGES` (dog.jpg, bus.jpg)
//! and `FMAP_FOOTAGE` (vtest.avi, decoded with `gst-launch-1.0` exactly as the reference did).
//! Each falls back to `<workspace>/.cache/...`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use fmap_infer::decode::{Detection, OutputDecoder, outputs_from_tensors};
use fmap_infer::detection::{detections_json_line, parse_detections_line};
use fmap_infer::nms::iou;
use fmap_infer::preprocess::{PixelFormat, Preprocessor, VideoFrameRef};
use fmap_infer::profile::Profile;
use fmap_infer::runtime::{Session, init_runtime};
use serde::Deserialize;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate inside the workspace")
        .to_path_buf()
}

fn data_dir(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".cache").join(fallback))
}

/// An RGB image with its row stride.
struct RgbImage {
    width: u32,
    height: u32,
    stride: usize,
    data: Vec<u8>,
}

impl RgbImage {
    fn frame(&self) -> VideoFrameRef<'_> {
        VideoFrameRef {
            width: self.width,
            height: self.height,
            stride: self.stride,
            format: PixelFormat::Rgb,
            data: &self.data,
        }
    }
}

fn load_jpeg(name: &str) -> RgbImage {
    let path = data_dir("FMAP_IMAGES", "images").join(name);
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set FMAP_IMAGES)", path.display()))
        .to_rgb8();
    RgbImage {
        width: img.width(),
        height: img.height(),
        stride: img.width() as usize * 3,
        data: img.into_raw(),
    }
}

/// vtest.avi frames (0-based decode order), decoded like the reference:
/// `filesrc ! decodebin ! videoconvert ! video/x-raw,format=RGB`.
fn vtest_frame(index: u32) -> RgbImage {
    // Decoded frames are shared by the tests of this binary; the lock is held while decoding so
    // that two tests never decode (or write the temporary file of) the same frame at once.
    static FRAMES: OnceLock<Mutex<BTreeMap<u32, Vec<u8>>>> = OnceLock::new();
    let mut cache = FRAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let data = match cache.get(&index) {
        Some(d) => d.clone(),
        None => {
            let d = decode_vtest_frame(index);
            cache.insert(index, d.clone());
            d
        }
    };
    RgbImage {
        width: 768,
        height: 576,
        stride: 768 * 3,
        data,
    }
}

fn decode_vtest_frame(index: u32) -> Vec<u8> {
    let video = data_dir("FMAP_FOOTAGE", "footage").join("vtest.avi");
    assert!(
        video.exists(),
        "{} missing (set FMAP_FOOTAGE)",
        video.display()
    );
    // Stop a few frames after frame N and keep the last files: when EOS arrives right after
    // the wanted frame, avdec_msmpeg4 drains early and that last frame differs slightly from
    // run to run; frames followed by 3 more are bit-identical to a full decode. Six files, not
    // four: a buffer past `eos-after` can still reach the sink. Even so, CI twice found the
    // wanted file missing after a successful run (frame 0, of 4 written); the cause is not
    // known, so a decode that leaves no file is retried, and the last failure lists the files.
    let mut found = Vec::new();
    for _ in 0..3 {
        // Unique per call: tests run in parallel threads of one process and may decode the
        // same frame (a shared directory would be removed under the other test's feet).
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "fmap-infer-detect-{}-{index}-{call}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(["filesrc", &format!("location={}", video.display())])
            .args([
                "!",
                "decodebin",
                "!",
                "videoconvert",
                "!",
                "video/x-raw,format=RGB",
            ])
            .args(["!", "identity", &format!("eos-after={}", index + 4)])
            .args(["!", "multifilesink", "max-files=6"])
            .arg(format!("location={}/%05d.rgb", dir.display()))
            .status()
            .expect("gst-launch-1.0 (gstreamer1.0-tools) is needed to decode vtest.avi");
        assert!(status.success(), "gst-launch-1.0 failed for frame {index}");
        let data = std::fs::read(dir.join(format!("{index:05}.rgb")));
        found = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        std::fs::remove_dir_all(&dir).ok();
        if let Ok(data) = data {
            // 768 * 3 is a multiple of 4, so GStreamer's RGB rows are unpadded.
            assert_eq!(data.len(), 768 * 576 * 3, "vtest.avi is 768x576");
            return data;
        }
    }
    panic!("frame {index} of vtest.avi was not written in 3 decodes (last: {found:?})");
}

struct Model {
    profile: Profile,
    pre: Preprocessor,
    decoder: OutputDecoder,
    session: Session,
}

impl Model {
    fn load(name: &str) -> Model {
        init_runtime(None).expect("ONNX Runtime (source .cache/env.sh for ORT_DYLIB_PATH)");
        let model = workspace().join("models").join(format!("{name}.onnx"));
        let profile = Profile::load_for_model(&model).unwrap();
        Model {
            pre: Preprocessor::new(&profile.input).unwrap(),
            decoder: OutputDecoder::from_profile(&profile).unwrap(),
            session: Session::from_file(&model, 2).unwrap(),
            profile,
        }
    }

    /// Detections of one frame, passed through the JSON line and parsed back (so the line
    /// format is exercised on real data).
    fn detect(&mut self, img: &RgbImage, params: &DecodeParams) -> Vec<Detection> {
        let (input, mapping) = self.pre.prepare(&img.frame()).unwrap();
        let outputs = self.session.run(vec![input.into_named_value()]).unwrap();
        let dets = self
            .decoder
            .decode(
                &outputs_from_tensors(outputs),
                &mapping,
                params.score_threshold,
                params.nms_iou,
                params.max_detections,
            )
            .unwrap();
        let line = detections_json_line(Some(7), 3, img.width, img.height, false, &dets);
        let parsed = parse_detections_line(&line).unwrap();
        assert_eq!(
            (parsed.width, parsed.height, parsed.frame),
            (img.width, img.height, 3)
        );
        assert_eq!(parsed.detections.len(), dets.len());
        for d in &parsed.detections {
            assert_eq!(self.profile.labels[d.class_id as usize], d.label);
            let [x1, y1, x2, y2] = d.bbox;
            assert!(0.0 <= x1 && x1 <= x2 && x2 <= img.width as f32, "{d:?}");
            assert!(0.0 <= y1 && y1 <= y2 && y2 <= img.height as f32, "{d:?}");
        }
        parsed.detections
    }
}

#[derive(Deserialize)]
struct ExpectedFile {
    width: u32,
    height: u32,
    decode: DecodeParams,
    tolerance: Tolerance,
    frames: Vec<ExpectedFrame>,
}

#[derive(Deserialize)]
struct DecodeParams {
    score_threshold: f32,
    nms_iou: f32,
    max_detections: usize,
}

#[derive(Deserialize)]
struct Tolerance {
    score_abs: f32,
    min_iou: f32,
    near_threshold_margin: f32,
}

#[derive(Deserialize)]
struct ExpectedFrame {
    frame: u32,
    detections: Vec<ExpectedDetection>,
}

#[derive(Deserialize, Debug)]
struct ExpectedDetection {
    label: String,
    class_id: u32,
    score: f32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    near_threshold: bool,
}

fn load_expected(model: &str, source: &str) -> ExpectedFile {
    let path = workspace()
        .join("models/expected")
        .join(format!("{model}.{source}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rule of `models/expected/*.json`: every expected detection that is not near the
/// threshold is matched (same class, |Δscore| ≤ score_abs, IoU ≥ min_iou); an actual detection
/// matching no expected one scores below threshold + margin. Returns the violations.
fn compare(
    actual: &[Detection],
    expected: &[ExpectedDetection],
    params: &DecodeParams,
    tol: &Tolerance,
) -> Vec<String> {
    let matches = |a: &Detection, e: &ExpectedDetection| {
        a.class_id == e.class_id
            && (a.score - e.score).abs() <= tol.score_abs
            && iou(&a.bbox, &e.bbox) >= tol.min_iou
    };
    let mut problems = Vec::new();
    for e in expected.iter().filter(|e| !e.near_threshold) {
        if !actual.iter().any(|a| matches(a, e)) {
            problems.push(format!("expected {e:?} not found"));
        }
    }
    for a in actual {
        if !expected.iter().any(|e| matches(a, e))
            && a.score >= params.score_threshold + tol.near_threshold_margin
        {
            problems.push(format!("unexpected {a:?}"));
        }
    }
    problems
}

fn print_detections(what: &str, dets: &[Detection]) {
    eprintln!("{what}: {} detections", dets.len());
    for d in dets {
        eprintln!("  {:<12} {:.4} {:?}", d.label, d.score, d.bbox);
    }
}

/// Runs `model` on every frame of `models/expected/<model>.<source>.json` and applies its rule.
/// Returns the detections per frame for additional checks.
fn check_expected(
    model: &mut Model,
    model_name: &str,
    source: &str,
    image: impl Fn(u32) -> RgbImage,
) -> Vec<Vec<Detection>> {
    let exp = load_expected(model_name, source);
    let mut all = Vec::new();
    let mut problems = Vec::new();
    let (mut worst_iou, mut worst_dscore) = (1.0f32, 0.0f32);
    for f in &exp.frames {
        for e in &f.detections {
            // The reference and the profile agree on class names.
            assert_eq!(model.profile.labels[e.class_id as usize], e.label);
        }
        let img = image(f.frame);
        assert_eq!((img.width, img.height), (exp.width, exp.height));
        let dets = model.detect(&img, &exp.decode);
        print_detections(&format!("{model_name} {source} frame {}", f.frame), &dets);
        // How close the match is (for the log): best same-class IoU and its score difference.
        for e in f.detections.iter().filter(|e| !e.near_threshold) {
            if let Some(a) = dets
                .iter()
                .filter(|a| a.class_id == e.class_id)
                .max_by(|a, b| iou(&a.bbox, &e.bbox).total_cmp(&iou(&b.bbox, &e.bbox)))
            {
                worst_iou = worst_iou.min(iou(&a.bbox, &e.bbox));
                worst_dscore = worst_dscore.max((a.score - e.score).abs());
            }
        }
        for p in compare(&dets, &f.detections, &exp.decode, &exp.tolerance) {
            problems.push(format!("{source} frame {}: {p}", f.frame));
        }
        all.push(dets);
    }
    eprintln!(
        "{model_name} {source}: vs reference, lowest IoU {worst_iou:.4}, largest |score diff| \
         {worst_dscore:.4} (over the detections not near the threshold)"
    );
    assert!(
        problems.is_empty(),
        "{model_name}:\n{}",
        problems.join("\n")
    );
    all
}

fn has(dets: &[Detection], label: &str) -> bool {
    dets.iter().any(|d| d.label == label)
}

fn count(dets: &[Detection], label: &str) -> usize {
    dets.iter().filter(|d| d.label == label).count()
}

fn centre_inside(d: &Detection, region: [f32; 4]) -> bool {
    let cx = (d.bbox[0] + d.bbox[2]) / 2.0;
    let cy = (d.bbox[1] + d.bbox[3]) / 2.0;
    region[0] <= cx && cx <= region[2] && region[1] <= cy && cy <= region[3]
}

#[test]
fn nanodet_finds_dog_bicycle_truck_and_bus_people() {
    let mut m = Model::load("nanodet");
    let dog = check_expected(&mut m, "nanodet", "dog", |_| load_jpeg("dog.jpg"));
    let dog = &dog[0];
    // dog.jpg (768x576): a bicycle across the middle, the dog at the lower left, a pickup truck
    // at the top right.
    assert!(has(dog, "dog") && has(dog, "bicycle"), "{dog:?}");
    assert!(has(dog, "truck") || has(dog, "car"), "{dog:?}");
    let find = |l: &str| dog.iter().find(|d| d.label == l).unwrap();
    assert!(
        centre_inside(find("dog"), [100.0, 250.0, 400.0, 576.0]),
        "{dog:?}"
    );
    assert!(
        centre_inside(find("bicycle"), [200.0, 150.0, 600.0, 450.0]),
        "{dog:?}"
    );
    let vehicle = dog
        .iter()
        .find(|d| d.label == "truck" || d.label == "car")
        .unwrap();
    assert!(
        centre_inside(vehicle, [450.0, 50.0, 768.0, 200.0]),
        "{dog:?}"
    );

    let bus = check_expected(&mut m, "nanodet", "bus", |_| load_jpeg("bus.jpg"));
    let bus = &bus[0];
    assert!(has(bus, "bus") && count(bus, "person") >= 3, "{bus:?}");
}

#[test]
fn nanodet_finds_people_in_vtest() {
    let mut m = Model::load("nanodet");
    let frames = check_expected(&mut m, "nanodet", "vtest", vtest_frame);
    for dets in &frames {
        assert!(count(dets, "person") >= 3, "{dets:?}");
    }
}

#[test]
fn ssd_boxes_decoder_on_images() {
    let mut m = Model::load("ssd_mobilenet_v2_coco_quant");
    let dog = check_expected(&mut m, "ssd_mobilenet_v2_coco_quant", "dog", |_| {
        load_jpeg("dog.jpg")
    });
    let dog = &dog[0];
    assert!(
        has(dog, "dog") && has(dog, "bicycle") && has(dog, "car"),
        "{dog:?}"
    );
    let find = |l: &str| dog.iter().find(|d| d.label == l).unwrap();
    assert!(
        centre_inside(find("dog"), [100.0, 250.0, 400.0, 576.0]),
        "{dog:?}"
    );
    assert!(
        centre_inside(find("car"), [450.0, 50.0, 768.0, 200.0]),
        "{dog:?}"
    );
    let bus = check_expected(&mut m, "ssd_mobilenet_v2_coco_quant", "bus", |_| {
        load_jpeg("bus.jpg")
    });
    assert!(
        has(&bus[0], "bus") && count(&bus[0], "person") >= 2,
        "{:?}",
        bus[0]
    );
}

#[test]
fn ssd_finds_people_in_vtest() {
    let mut m = Model::load("ssd_mobilenet_v2_coco_quant");
    let frames = check_expected(&mut m, "ssd_mobilenet_v2_coco_quant", "vtest", vtest_frame);
    for dets in &frames {
        assert!(count(dets, "person") >= 3, "{dets:?}");
    }
}

#[test]
fn committed_profiles_load_and_resolve_their_splits() {
    for name in ["nanodet", "ssd_mobilenet_v2_coco_quant"] {
        let p = Profile::load_for_model(workspace().join("models").join(format!("{name}.onnx")))
            .unwrap();
        let default = p
            .default_split
            .clone()
            .expect("profiles name a default split");
        match p.resolve_split(&default) {
            fmap_infer::profile::SplitSpec::Tensors(t) => {
                assert_eq!(t, p.split_points[&default]);
                assert!(t.iter().all(|n| fmap_infer::profile::is_tensor_name(n)));
            }
            other => panic!("{name}: default split resolved to {other:?}"),
        }
        assert_eq!(
            p.decoder.output_names().len(),
            if name == "nanodet" { 6 } else { 4 }
        );
    }
}
