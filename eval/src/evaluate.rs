//! The rate–accuracy evaluation of feature-map settings on a video clip.
//!
//! For one video, model and split point: record the cut tensors once with the real
//! `splitinfer-front`, get the reference detections of the unsplit model (`split-at=none`) at
//! the profile's score threshold, then for every setting replay the recorded frames through the
//! real `fmapenc` and `fmapdec`, run the real `splitinfer-back` at score threshold 0.05 (as COCO
//! evaluation does) and score its detections against the reference.
//!
//! Settings that differ only in their entropy coder decode to identical feature maps (entropy
//! coding is lossless), and many frames of different settings decode identically (e.g. the
//! anchors of prediction groups and intra frames at the same bit depth): the back network runs
//! once per distinct decoded frame ([`DetectionCache`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use codec_core::{FeatureFrame, TensorData};
use fmap_infer::detection::parse_detections_line;

use crate::map::{ImageEval, MapSummary, ScoredBox, summarize};
use crate::runner::limiter;
use crate::stream::{Recording, run_recording};

/// Score threshold of the detections that are scored (COCO evaluates down to 0.05).
pub const EVAL_SCORE_THRESHOLD: f64 = 0.05;
/// Classes need this many reference boxes to count in the robust mAP.
pub const ROBUST_MIN_INSTANCES: usize = 100;
/// The classes the robust mAP averages (COCO labels): people and vehicles, what surveillance
/// looks for. Over a whole clip, a detector's rare spurious classes (traffic light, bird, …)
/// would otherwise enter and leave the average from one setting to the next.
pub const ROBUST_LABELS: [&str; 6] = ["person", "bicycle", "car", "motorcycle", "bus", "truck"];

/// The robust mAP's class filter for a reference: a class counts when its label is one of
/// [`ROBUST_LABELS`] and the reference has at least [`ROBUST_MIN_INSTANCES`] boxes of it.
pub fn robust_filter(reference: &[FrameDetections]) -> impl Fn(u32, usize) -> bool + use<> {
    let ids: BTreeSet<u32> = reference
        .iter()
        .flat_map(|f| f.labels.iter())
        .filter(|(_, l)| ROBUST_LABELS.contains(&l.as_str()))
        .map(|(id, _)| *id)
        .collect();
    move |id, boxes| ids.contains(&id) && boxes >= ROBUST_MIN_INSTANCES
}
const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// What to evaluate on.
#[derive(Debug, Clone)]
pub struct Clip {
    pub video: PathBuf,
    pub model: PathBuf,
    /// Frames from the start of the video; 0 = all.
    pub frames: u64,
    pub threads: u32,
}

impl Clip {
    /// The decoded clip as BGRx, ending in the frame limiter (see [`limiter`]).
    pub fn source(&self) -> String {
        self.source_as("BGRx")
    }

    /// The decoded clip in a raw video format, ending in the frame limiter.
    pub fn source_as(&self, format: &str) -> String {
        format!(
            "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format={format} ! {}",
            self.video.display(),
            limiter(self.frames)
        )
    }

    pub fn model(&self) -> String {
        format!(
            "model=\"{}\" threads={}",
            self.model.display(),
            self.threads
        )
    }
}

/// One way of sending the split: `encoder` holds `fmapenc` properties, or `None` for raw float.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub method: String,
    pub encoder: Option<String>,
}

impl Setting {
    pub fn raw() -> Self {
        Setting {
            method: "raw float".into(),
            encoder: None,
        }
    }

    pub fn coded(method: &str, encoder: &str) -> Self {
        Setting {
            method: method.into(),
            encoder: Some(encoder.into()),
        }
    }

    /// Name of the reconstruction this setting decodes to: its encoder properties without the
    /// entropy coder.
    fn reconstruction_key(&self) -> String {
        match &self.encoder {
            None => "raw".into(),
            Some(props) => props
                .split_whitespace()
                .filter(|p| !p.starts_with("entropy="))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// The settings of the thesis's experiments on one split (Figs. 4.14–4.21: quantization alone,
/// with ZVC, with Huffman, with both, at 2..8 bits; uni and bi prediction with TSS alone, with
/// ZVC, with Huffman), and the closed-loop mode beyond it.
pub fn full_settings() -> Vec<Setting> {
    let mut s = vec![Setting::raw()];
    for bits in 2..=8 {
        for (method, entropy) in [
            ("quantization", "none"),
            ("quantization + ZVC", "zvc"),
            ("quantization + Huffman", "huffman"),
            ("quantization + ZVC + Huffman", "zvc-huffman"),
        ] {
            s.push(Setting::coded(
                method,
                &format!("mode=intra bits={bits} entropy={entropy}"),
            ));
        }
    }
    for bits in [4, 6, 8] {
        for mode in ["uni", "bi"] {
            for (suffix, entropy) in [("", "none"), (" + ZVC", "zvc"), (" + Huffman", "huffman")] {
                s.push(Setting::coded(
                    &format!("{mode} TSS{suffix}"),
                    &format!(
                        "mode={mode} search=tss bits={bits} entropy={entropy} {THESIS_MOTION}"
                    ),
                ));
            }
        }
    }
    for (bits, dz) in [(4, 0), (6, 0), (4, 1), (6, 1)] {
        s.push(Setting::coded(
            &format!(
                "closed-loop{} + ZVC + Huffman",
                if dz > 0 { " dz1" } else { "" }
            ),
            &format!(
                "mode=closed-loop bits={bits} dead-zone={dz} entropy=zvc-huffman \
                 {THESIS_MOTION} key-interval=30"
            ),
        ));
    }
    s.extend(adaptive_settings());
    s
}

/// Motion settings of the thesis's modes and of closed loop as first measured (fmapenc's
/// defaults before the adaptive mode), so their numbers stay comparable.
const THESIS_MOTION: &str = "block-size=8 search-range=7";

/// Quality ladder of the adaptive mode in the full report: steps of √2, and 2.4 between 2 and
/// 2.8, where NanoDet's person AP@0.5 crosses the report's 0.98 bar.
const ADAPTIVE_LADDER: [&str; 8] = ["0.5", "0.7", "1", "1.4", "2", "2.4", "2.8", "4"];

/// Rate-control targets of the adaptive mode (and of the tiled mosaic under x265's rate
/// control) in the full report, kbit/s.
pub const RATE_TARGETS: [u32; 3] = [100, 200, 400];

/// The adaptive mode's quality ladder at the defaults, and rate control at a few targets.
pub fn adaptive_settings() -> Vec<Setting> {
    ADAPTIVE_LADDER
        .iter()
        .map(|q| Setting::coded("adaptive", &format!("mode=adaptive quality={q}")))
        .chain(RATE_TARGETS.iter().map(|kbps| {
            Setting::coded(
                "adaptive, rate control",
                &format!("mode=adaptive bitrate={kbps}"),
            )
        }))
        .collect()
}

/// In a setting's properties, the channel-sensitivity file of the model and split measured
/// (`fmap-calibrate`'s default output path, [`fmap_infer::calibration::Calibration::sidecar_path`]).
pub const CALIBRATION_PLACEHOLDER: &str = "{calibration}";

/// The levers of the adaptive mode, each switched from its default in turn: (method name,
/// properties). Task-aware channel weights and the channel transform are off by default (they
/// need `fmap-calibrate`'s file for the model and split, made with `--klt` for the transform),
/// so their variants turn them on.
pub const ADAPTIVE_LEVERS: [(&str, &str); 10] = [
    ("adaptive, key step = predicted step", "key-step-ratio=1"),
    ("adaptive, whole-feature motion", "fractional-motion=false"),
    ("adaptive, channel weights", "channel-weights={calibration}"),
    (
        "adaptive, KLT 64 components",
        "channel-transform={calibration} transform-components=64",
    ),
    ("adaptive, no RD decisions", "lambda=0"),
    ("adaptive, no motion", "search-range=0"),
    ("adaptive, refresh every 30", "key-interval=30"),
    ("adaptive, periodic key units", "gradual-refresh=false"),
    ("adaptive, one slice per tensor", "slice-channels=0"),
    ("adaptive, block 8", "block-size=8"),
];

/// `--settings ablation`: the middle of the adaptive ladder (quality 1.4–2.8) with every lever
/// on, then with each lever off, so that each lever gets a curve and a BD-rate.
pub fn ablation_settings() -> Vec<Setting> {
    let ladder = &ADAPTIVE_LADDER[3..7];
    let mut s = vec![Setting::raw()];
    for q in ladder {
        s.push(Setting::coded(
            "adaptive",
            &format!("mode=adaptive quality={q}"),
        ));
    }
    for (method, off) in ADAPTIVE_LEVERS {
        for q in ladder {
            s.push(Setting::coded(
                method,
                &format!("mode=adaptive quality={q} {off}"),
            ));
        }
    }
    s
}

/// A few settings for the smoke test: lossless, a bit-depth ladder, and each structure.
pub fn quick_settings() -> Vec<Setting> {
    vec![
        Setting::raw(),
        Setting::coded("quantization", "mode=intra bits=8 entropy=none"),
        Setting::coded("quantization", "mode=intra bits=5 entropy=none"),
        Setting::coded("quantization", "mode=intra bits=3 entropy=none"),
        Setting::coded(
            "quantization + ZVC + Huffman",
            "mode=intra bits=5 entropy=zvc-huffman",
        ),
        Setting::coded(
            "uni TSS + Huffman",
            "mode=uni search=tss bits=6 entropy=huffman",
        ),
        Setting::coded(
            "bi TSS + Huffman",
            "mode=bi search=tss bits=6 entropy=huffman",
        ),
        Setting::coded(
            "closed-loop + ZVC + Huffman",
            "mode=closed-loop bits=6 entropy=zvc-huffman",
        ),
        Setting::coded("adaptive", "mode=adaptive quality=1"),
    ]
}

/// The settings named on a command line: `quick`, `full`, or one or more `fmapenc` property
/// lists separated by `;` (measured after raw float, the lossless reference point).
pub fn settings_by_name(name: &str) -> Result<Vec<Setting>, String> {
    match name {
        "quick" => Ok(quick_settings()),
        "full" => Ok(full_settings()),
        "ablation" => Ok(ablation_settings()),
        custom if custom.contains('=') => Ok(std::iter::once(Setting::raw())
            .chain(
                custom
                    .split(';')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Setting::coded("custom", p)),
            )
            .collect()),
        other => Err(format!(
            "--settings '{other}' is not quick, full, ablation, or fmapenc properties such as \
             \"mode=closed-loop bits=4; mode=bi bits=6\""
        )),
    }
}

/// One line of `splitinfer-back` output, reduced to what scoring needs.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameDetections {
    pub pts_ns: Option<u64>,
    pub boxes: Vec<ScoredBox>,
    pub labels: BTreeMap<u32, String>,
}

/// Parses the detection lines a pipeline produced (one buffer = one JSON line, read strictly
/// with [`parse_detections_line`]).
pub fn parse_detections(rec: &Recording) -> Result<Vec<FrameDetections>, String> {
    rec.buffers
        .iter()
        .map(|b| {
            let map = b.map_readable().map_err(|_| "unreadable buffer")?;
            let text = std::str::from_utf8(&map)
                .map_err(|e| format!("detections line is not UTF-8: {e}"))?;
            let line = parse_detections_line(text)
                .map_err(|e| format!("detections line is not valid: {e}"))?;
            let mut labels = BTreeMap::new();
            let boxes = line
                .detections
                .into_iter()
                .map(|d| {
                    let bbox = d.bbox.map(f64::from);
                    labels.insert(d.class_id, d.label);
                    ScoredBox {
                        class_id: d.class_id,
                        score: f64::from(d.score),
                        bbox,
                    }
                })
                .collect();
            Ok(FrameDetections {
                pts_ns: line.pts_ns,
                boxes,
                labels,
            })
        })
        .collect()
}

/// Pairs reference and test detections frame by frame (by timestamp) for scoring. Every
/// reference frame is kept: a frame the test run lost counts as all its boxes missed.
pub fn pair_frames(reference: &[FrameDetections], test: &[FrameDetections]) -> Vec<ImageEval> {
    let by_pts: BTreeMap<Option<u64>, &FrameDetections> =
        test.iter().map(|f| (f.pts_ns, f)).collect();
    reference
        .iter()
        .map(|r| ImageEval {
            reference: r.boxes.clone(),
            detections: by_pts
                .get(&r.pts_ns)
                .map(|t| t.boxes.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// Feature-map distortion of decoded frames against the originals.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Distortion {
    pub mse: f64,
    /// 10·log10(mean square of the original / MSE); infinite when lossless.
    pub snr_db: f64,
}

/// MSE and SNR over all tensors of all frames, matched by timestamp.
pub fn distortion(original: &Recording, decoded: &Recording) -> Result<Distortion, String> {
    let parse = |b: &gst::Buffer| -> Result<FeatureFrame, String> {
        let map = b.map_readable().map_err(|_| "unreadable buffer")?;
        FeatureFrame::from_raw(&map).map_err(|e| e.to_string())
    };
    let decoded: BTreeMap<Option<u64>, &gst::Buffer> = decoded
        .buffers
        .iter()
        .map(|b| (b.pts().map(|p| p.nseconds()), b))
        .collect();
    let (mut err, mut power, mut n) = (0f64, 0f64, 0u64);
    let mut add = |x: f32, y: f32| {
        let (x, y) = (x as f64, y as f64);
        err += (x - y) * (x - y);
        power += x * x;
        n += 1;
    };
    for b in &original.buffers {
        let Some(d) = decoded.get(&b.pts().map(|p| p.nseconds())) else {
            continue;
        };
        let (o, d) = (parse(b)?, parse(d)?);
        for (to, td) in o.tensors.iter().zip(&d.tensors) {
            match (&to.data, &td.data) {
                (TensorData::F32(x), TensorData::F32(y)) => {
                    x.iter().zip(y).for_each(|(&x, &y)| add(x, y));
                }
                _ => to
                    .to_f32()
                    .into_iter()
                    .zip(td.to_f32())
                    .for_each(|(x, y)| add(x, y)),
            }
        }
    }
    if n == 0 {
        return Err("no decoded frame matches an original frame".into());
    }
    let mse = err / n as f64;
    Ok(Distortion {
        mse,
        snr_db: if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (power / n as f64 / mse).log10()
        },
    })
}

/// Length of the windows of [`SettingResult::kbit_per_s_10s_range`], seconds.
const RATE_WINDOW_S: f64 = 10.0;

/// Lowest and highest kbit/s over consecutive, non-overlapping windows of `window_s` seconds.
pub fn window_rates(sizes: &[u64], fps: f64, window_s: f64) -> Option<(f64, f64)> {
    let n = (fps * window_s).round() as usize;
    if n == 0 || sizes.len() < n {
        return None;
    }
    let rates: Vec<f64> = sizes
        .chunks_exact(n)
        .map(|w| w.iter().sum::<u64>() as f64 * 8.0 / 1000.0 / window_s)
        .collect();
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    Some((lo, hi))
}

/// Everything measured for one setting at one split point.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SettingResult {
    pub split: String,
    pub method: String,
    pub encoder: Option<String>,
    /// Quantizer bits (`None` for raw float).
    pub bits: Option<u32>,
    pub frames: usize,
    /// Frames with a detections line (fewer than `frames` only if some could not be decoded).
    pub frames_detected: usize,
    /// Frames the back network actually ran on (the others were known, see [`DetectionCache`]).
    pub network_frames: usize,
    pub bytes_per_frame_mean: f64,
    pub bytes_per_frame_p95: u64,
    pub bytes_per_frame_max: u64,
    pub kbit_per_s: f64,
    /// Lowest and highest rate over consecutive 10 s windows of the clip (`None` when the clip
    /// is shorter than one window): how steady the rate is on the wire.
    pub kbit_per_s_10s_range: Option<(f64, f64)>,
    pub ratio_vs_raw_float: f64,
    pub ratio_vs_source_video: f64,
    pub encode_ms_per_frame: Option<f64>,
    pub decode_ms_per_frame: Option<f64>,
    pub distortion: Option<Distortion>,
    pub person_ap50: Option<f64>,
    pub accuracy: MapSummary,
}

/// The recorded cut of one split point, with what every setting is measured against.
pub struct SplitRun {
    pub split: String,
    pub features: Recording,
    pub fps: f64,
    /// Raw float32 bytes of the cut tensors per frame (4 bytes an element).
    pub raw_float_bytes_per_frame: f64,
    pub source_kbit_per_s: f64,
    /// The cut is an 8-bit model's codes (its uncompressed form is 1 byte an element).
    pub eight_bit: bool,
}

/// Runs the unsplit model on the clip: the reference detections.
pub fn reference_detections(clip: &Clip) -> Result<Vec<FrameDetections>, String> {
    let desc = format!(
        "{}splitinfer-front {m} split-at=none ! splitinfer-back {m} ! appsink name=sink",
        clip.source(),
        m = clip.model()
    );
    let (rec, _) = run_recording(&desc, None, RUN_LIMIT)?;
    parse_detections(&rec)
}

/// Records the cut tensors of one split point.
pub fn record_split(clip: &Clip, split: &str) -> Result<SplitRun, String> {
    let desc = format!(
        "{}splitinfer-front {} split-at={split} ! appsink name=sink",
        clip.source(),
        clip.model()
    );
    let (features, _) = run_recording(&desc, None, RUN_LIMIT)?;
    let s = features.caps.structure(0).ok_or("feature caps are empty")?;
    let fps = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| f.numer() as f64 / f.denom() as f64)
        .ok_or("feature caps carry no frame rate")?;
    let first = features
        .buffers
        .first()
        .ok_or("no feature frames recorded")?;
    let frame = FeatureFrame::from_raw(&first.map_readable().map_err(|_| "unreadable")?)
        .map_err(|e| e.to_string())?;
    let elements: usize = frame.tensors.iter().map(|t| t.shape.len()).sum();
    Ok(SplitRun {
        split: split.into(),
        raw_float_bytes_per_frame: elements as f64 * 4.0,
        source_kbit_per_s: source_kbit_per_s(&clip.video)?,
        eight_bit: frame
            .tensors
            .iter()
            .all(|t| matches!(t.data, TensorData::U8 { .. })),
        features,
        fps,
    })
}

/// The class id the reference detections label "person", if any.
pub fn person_class(reference: &[FrameDetections]) -> Option<u32> {
    reference
        .iter()
        .flat_map(|f| f.labels.iter())
        .find(|(_, l)| l.as_str() == "person")
        .map(|(id, _)| *id)
}

/// What GStreamer's discoverer finds in a video file (streams, duration).
pub fn discover(video: &Path) -> Result<gst_pbutils::DiscovererInfo, String> {
    let uri = gst::glib::filename_to_uri(video.canonicalize().map_err(|e| e.to_string())?, None)
        .map_err(|e| e.to_string())?;
    gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(30))
        .map_err(|e| e.to_string())?
        .discover_uri(&uri)
        .map_err(|e| format!("cannot read {}: {e}", video.display()))
}

/// Bit rate of the source video file over its whole duration.
pub fn source_kbit_per_s(video: &Path) -> Result<f64, String> {
    let bytes = std::fs::metadata(video)
        .map_err(|e| format!("{}: {e}", video.display()))?
        .len();
    let info = discover(video)?;
    let secs = info
        .duration()
        .map(|d| d.nseconds() as f64 / 1e9)
        .filter(|s| *s > 0.0)
        .ok_or("the video has no duration")?;
    Ok(bytes as f64 * 8.0 / secs / 1000.0)
}

/// Detections already computed, per decoded frame. `splitinfer-back` is a function of the frame
/// it is given (one ONNX Runtime session, one intra-op thread, no state between frames), so a
/// frame whose raw bytes (header with index and timestamp, and every tensor value) equal a frame
/// seen before gets the same detections without running the network again. Settings that differ
/// only in their entropy coder decode to identical frames, and so do, for example, the anchors of
/// a `uni` group and the same frames coded `intra` at the same bit depth. The feature-map
/// distortion of a whole decoded sequence is kept the same way.
///
/// Frames are keyed by a 64-bit SipHash of their bytes and their length (with ~10^5 distinct
/// frames in a report the chance of any collision is ~10^-9).
#[derive(Debug, Default)]
pub struct DetectionCache {
    frames: Mutex<HashMap<FrameKey, FrameDetections>>,
    distortions: Mutex<HashMap<u64, Distortion>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hash and length of a frame's bytes.
type FrameKey = (u64, usize);

impl DetectionCache {
    /// Frames answered from the cache, and frames the network ran on.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The distortion of the sequence with these frame keys, computed by `compute` only the
    /// first time.
    fn distortion(
        &self,
        keys: &[FrameKey],
        compute: impl FnOnce() -> Result<Distortion, String>,
    ) -> Result<Distortion, String> {
        let mut h = std::hash::DefaultHasher::new();
        keys.hash(&mut h);
        let seq = h.finish();
        if let Some(d) = self.distortions.lock().expect("distortion cache").get(&seq) {
            return Ok(*d);
        }
        let d = compute()?;
        self.distortions
            .lock()
            .expect("distortion cache")
            .insert(seq, d);
        Ok(d)
    }
}

fn frame_keys(rec: &Recording) -> Result<Vec<FrameKey>, String> {
    rec.buffers
        .iter()
        .map(|b| {
            let map = b.map_readable().map_err(|_| "unreadable buffer")?;
            let mut h = std::hash::DefaultHasher::new();
            h.write(&map);
            Ok((h.finish(), map.len()))
        })
        .collect()
}

/// Detections of `splitinfer-back` (score threshold [`EVAL_SCORE_THRESHOLD`]) on feature frames
/// (raw or decoded), in frame order; the network runs only on frames `cache` has not seen.
/// A frame the element drops (undecodable) has no entry. Also returns how many frames the
/// network ran on.
pub fn detect(
    clip: &Clip,
    frames: &Recording,
    cache: &DetectionCache,
) -> Result<(Vec<FrameDetections>, usize), String> {
    detect_keyed(clip, frames, &frame_keys(frames)?, cache)
}

fn detect_keyed(
    clip: &Clip,
    frames: &Recording,
    keys: &[FrameKey],
    cache: &DetectionCache,
) -> Result<(Vec<FrameDetections>, usize), String> {
    let missing: Vec<usize> = {
        let known = cache.frames.lock().expect("detection cache");
        let mut queued = HashSet::new();
        (0..keys.len())
            .filter(|&i| !known.contains_key(&keys[i]) && queued.insert(keys[i]))
            .collect()
    };
    if !missing.is_empty() {
        let input = Recording {
            caps: frames.caps.clone(),
            buffers: missing.iter().map(|&i| frames.buffers[i].clone()).collect(),
        };
        let desc = format!(
            "appsrc name=src ! splitinfer-back {} score-threshold={EVAL_SCORE_THRESHOLD} ! appsink name=sink",
            clip.model()
        );
        let out = parse_detections(&run_recording(&desc, Some(&input), RUN_LIMIT)?.0)?;
        let by_pts: HashMap<Option<u64>, FrameDetections> =
            out.into_iter().map(|f| (f.pts_ns, f)).collect();
        let mut known = cache.frames.lock().expect("detection cache");
        for &i in &missing {
            let pts = frames.buffers[i].pts().map(|p| p.nseconds());
            if let Some(d) = by_pts.get(&pts) {
                known.insert(keys[i], d.clone());
            }
        }
    }
    cache
        .misses
        .fetch_add(missing.len() as u64, Ordering::Relaxed);
    cache
        .hits
        .fetch_add((keys.len() - missing.len()) as u64, Ordering::Relaxed);
    let known = cache.frames.lock().expect("detection cache");
    Ok((
        keys.iter().filter_map(|k| known.get(k).cloned()).collect(),
        missing.len(),
    ))
}

/// Nearest-rank percentile of sorted values (`p` in 0..=1).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The quantizer bit depth of a setting: `bits=N` of fmapenc properties (8, fmapenc's
/// default, when coded without it), `None` for raw float.
pub fn setting_bits(encoder: Option<&str>) -> Option<u32> {
    let props = encoder?;
    // The adaptive mode (fmapenc's default) has a step, not a bit depth.
    if !props.split_whitespace().any(|p| p.starts_with("mode=")) || props.contains("mode=adaptive")
    {
        return None;
    }
    Some(
        props
            .split_whitespace()
            .find_map(|p| p.strip_prefix("bits=")?.parse().ok())
            .unwrap_or(8),
    )
}

/// What one coded (or raw) run of a split produced, before scoring.
pub struct Measured<'a> {
    pub method: String,
    pub encoder: Option<String>,
    pub bits: Option<u32>,
    /// Coded bytes of each frame.
    pub sizes: Vec<u64>,
    pub encode: Option<Duration>,
    pub decode: Option<Duration>,
    /// The frames `splitinfer-back` received (`None`: the recording itself, uncoded).
    pub decoded: Option<&'a Recording>,
}

/// Scores a measured run: rate statistics, distortion against the recording, detections (through
/// `cache`) and accuracy against `reference`.
pub fn score(
    clip: &Clip,
    run: &SplitRun,
    reference: &[FrameDetections],
    m: Measured<'_>,
    cache: &DetectionCache,
) -> Result<SettingResult, String> {
    let frames = run.features.buffers.len();
    let input = m.decoded.unwrap_or(&run.features);
    let keys = frame_keys(input)?;
    let (test, network_frames) = detect_keyed(clip, input, &keys, cache)?;
    let accuracy = summarize(&pair_frames(reference, &test), robust_filter(reference));
    let mut sorted = m.sizes.clone();
    sorted.sort_unstable();
    let mean = m.sizes.iter().sum::<u64>() as f64 / m.sizes.len().max(1) as f64;
    let kbit_per_s = mean * 8.0 * run.fps / 1000.0;
    let per_frame_ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0 / frames as f64);
    Ok(SettingResult {
        split: run.split.clone(),
        method: m.method,
        encoder: m.encoder,
        bits: m.bits,
        frames,
        frames_detected: test.len(),
        network_frames,
        bytes_per_frame_mean: mean,
        bytes_per_frame_p95: percentile(&sorted, 0.95),
        bytes_per_frame_max: sorted.last().copied().unwrap_or(0),
        kbit_per_s,
        kbit_per_s_10s_range: window_rates(&m.sizes, run.fps, RATE_WINDOW_S),
        ratio_vs_raw_float: run.raw_float_bytes_per_frame / mean,
        ratio_vs_source_video: run.source_kbit_per_s / kbit_per_s,
        encode_ms_per_frame: per_frame_ms(m.encode),
        decode_ms_per_frame: per_frame_ms(m.decode),
        distortion: m
            .decoded
            .map(|d| cache.distortion(&keys, || distortion(&run.features, d)))
            .transpose()?,
        person_ap50: person_class(reference).and_then(|p| accuracy.ap50_per_class.get(&p).copied()),
        accuracy,
    })
}

/// The `fmapdec` properties that `fmapenc` properties `props` need at the receiver: the same
/// `channel-transform` file (fmapdec checks it against the digest in the caps).
pub fn decoder_props(props: &str) -> String {
    props
        .split_whitespace()
        .filter(|p| p.starts_with("channel-transform="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Measures one setting on a recorded split: the recording through the real `fmapenc` and
/// `fmapdec` (coded sizes, wall times), then [`score`].
pub fn evaluate_setting(
    clip: &Clip,
    run: &SplitRun,
    reference: &[FrameDetections],
    setting: &Setting,
    cache: &DetectionCache,
) -> Result<SettingResult, String> {
    let Some(props) = &setting.encoder else {
        let m = Measured {
            // An 8-bit model's cut is sent as its codes (and scale/zero point), not as floats.
            method: if run.eight_bit && setting.method == Setting::raw().method {
                "raw 8-bit".into()
            } else {
                setting.method.clone()
            },
            encoder: None,
            bits: None,
            sizes: run
                .features
                .buffers
                .iter()
                .map(|b| b.size() as u64)
                .collect(),
            encode: None,
            decode: None,
            decoded: None,
        };
        return score(clip, run, reference, m, cache);
    };
    let calibration = fmap_infer::calibration::Calibration::sidecar_path(&clip.model, &run.split);
    let props = props.replace(
        CALIBRATION_PLACEHOLDER,
        &format!("\"{}\"", calibration.display()),
    );
    let (coded, enc_t) = run_recording(
        &format!("appsrc name=src ! fmapenc {props} ! appsink name=sink"),
        Some(&run.features),
        RUN_LIMIT,
    )?;
    let (decoded, dec_t) = run_recording(
        &format!(
            "appsrc name=src ! fmapdec {} ! appsink name=sink",
            decoder_props(&props)
        ),
        Some(&coded),
        RUN_LIMIT,
    )?;
    let m = Measured {
        method: setting.method.clone(),
        encoder: setting.encoder.clone(),
        bits: setting_bits(Some(&props)),
        sizes: coded.buffers.iter().map(|b| b.size() as u64).collect(),
        encode: Some(enc_t),
        decode: Some(dec_t),
        decoded: Some(&decoded),
    };
    score(clip, run, reference, m, cache)
}

/// Settings grouped by the reconstruction they decode to (entropy coders are lossless), in order
/// of first appearance: a group is measured in one job, so its back network runs once.
pub fn group_by_reconstruction(settings: &[Setting]) -> Vec<Vec<Setting>> {
    let mut groups: Vec<(String, Vec<Setting>)> = Vec::new();
    for s in settings {
        let key = s.reconstruction_key();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(s.clone()),
            None => groups.push((key, vec![s.clone()])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// CSV with one row per result (the JSON output has every field).
pub fn to_csv(results: &[SettingResult]) -> String {
    let mut out = String::from(
        "split,method,encoder,bits,frames,bytes_per_frame_mean,bytes_per_frame_p95,bytes_per_frame_max,\
         kbit_per_s,ratio_vs_raw_float,ratio_vs_source_video,encode_ms_per_frame,decode_ms_per_frame,\
         feature_mse,feature_snr_db,person_ap50,map50_robust,map50_all,map50_95_all\n",
    );
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for r in results {
        out.push_str(&format!(
            "{},{},\"{}\",{},{},{:.1},{},{},{:.3},{:.2},{:.3},{},{},{},{},{},{},{},{}\n",
            r.split,
            r.method,
            r.encoder.as_deref().unwrap_or("raw"),
            r.bits.map(|b| b.to_string()).unwrap_or_default(),
            r.frames,
            r.bytes_per_frame_mean,
            r.bytes_per_frame_p95,
            r.bytes_per_frame_max,
            r.kbit_per_s,
            r.ratio_vs_raw_float,
            r.ratio_vs_source_video,
            opt(r.encode_ms_per_frame),
            opt(r.decode_ms_per_frame),
            opt(r.distortion.map(|d| d.mse)),
            opt(r.distortion.map(|d| d.snr_db)),
            opt(r.person_ap50),
            opt(r.accuracy.map50_robust),
            opt(r.accuracy.map50_all),
            opt(r.accuracy.map50_95_all),
        ));
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_decoder_gets_the_encoders_channel_transform() {
        assert_eq!(
            decoder_props("mode=adaptive channel-transform=a.json transform-components=64"),
            "channel-transform=a.json"
        );
        assert_eq!(decoder_props("mode=adaptive quality=2"), "");
    }

    use super::*;

    #[test]
    fn settings_group_by_what_they_decode_to() {
        let groups = group_by_reconstruction(&full_settings());
        // raw, 7 intra bit depths, uni and bi at 3 depths, 4 closed-loop settings, the
        // adaptive ladder.
        assert_eq!(
            groups.len(),
            1 + 7 + 6 + 4 + ADAPTIVE_LADDER.len() + RATE_TARGETS.len()
        );
        for g in &groups {
            let key = g[0].reconstruction_key();
            assert!(g.iter().all(|s| s.reconstruction_key() == key), "{g:?}");
        }
        let intra5: Vec<&str> = groups
            .iter()
            .find(|g| g[0].encoder.as_deref() == Some("mode=intra bits=5 entropy=none"))
            .unwrap()
            .iter()
            .map(|s| s.encoder.as_deref().unwrap())
            .collect();
        assert_eq!(
            intra5,
            [
                "mode=intra bits=5 entropy=none",
                "mode=intra bits=5 entropy=zvc",
                "mode=intra bits=5 entropy=huffman",
                "mode=intra bits=5 entropy=zvc-huffman"
            ]
        );
        // Different structures or bit depths never share a group.
        assert_ne!(
            Setting::coded("", "mode=uni bits=6 entropy=none").reconstruction_key(),
            Setting::coded("", "mode=bi bits=6 entropy=none").reconstruction_key()
        );
    }

    #[test]
    fn bits_come_from_the_properties() {
        assert_eq!(setting_bits(None), None);
        assert_eq!(
            setting_bits(Some("mode=intra bits=3 entropy=none")),
            Some(3)
        );
        assert_eq!(
            setting_bits(Some("mode=closed-loop")),
            Some(8),
            "fmapenc's default bits"
        );
        assert_eq!(setting_bits(Some("mode=adaptive quality=2")), None);
        assert_eq!(
            setting_bits(Some("quality=2")),
            None,
            "adaptive is the default"
        );
    }

    #[test]
    fn rates_over_windows() {
        // 10 fps: windows of 100 frames; the tail that does not fill a window is left out.
        let sizes: Vec<u64> = (0..250)
            .map(|i| if i < 100 { 1000 } else { 2000 })
            .collect();
        assert_eq!(window_rates(&sizes, 10.0, 10.0), Some((80.0, 160.0)));
        assert_eq!(window_rates(&sizes[..99], 10.0, 10.0), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 0.95), 19);
        assert_eq!(percentile(&v, 1.0), 20);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.95), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn settings_by_name_knows_its_names_and_property_lists() {
        assert_eq!(settings_by_name("quick").unwrap(), quick_settings());
        let custom = settings_by_name("mode=uni bits=4; mode=bi bits=6 ;").unwrap();
        assert_eq!(custom.len(), 3, "raw first, then each list");
        assert_eq!(custom[0], Setting::raw());
        assert_eq!(custom[2].encoder.as_deref(), Some("mode=bi bits=6"));
        let err = settings_by_name("fast").unwrap_err();
        assert!(err.contains("quick, full"), "{err}");
        // Every full setting of a thesis mode names its bit depth and a known entropy coder.
        for s in full_settings().iter().skip(1) {
            let e = s.encoder.as_deref().unwrap();
            if e.contains("mode=adaptive") {
                continue;
            }
            assert!(
                setting_bits(Some(e)).is_some_and(|b| (2..=8).contains(&b)),
                "{e}"
            );
            assert!(e.contains("entropy="), "{e}");
        }
    }
}
