//! Cloud-only anchors: instead of splitting the network, the camera codes the video itself
//! (x264, x265, or JPEG frame by frame) and the server runs the whole model on the decoded
//! frames. Each point of the ladder is coded once (the bitstream is recorded), then decoded and
//! run through the unsplit model (`splitinfer-front split-at=none ! splitinfer-back`) at the
//! evaluation's score threshold and scored against the same reference as the feature methods.
//!
//! Two sizes: the source resolution, and downscaled to the model's input size before coding
//! (the model stretches every frame to that size anyway, so a camera could send no more). Boxes
//! detected on downscaled frames are scaled back to source coordinates before scoring.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::evaluate::{
    Clip, EVAL_SCORE_THRESHOLD, FrameDetections, ROBUST_MIN_INSTANCES, discover, pair_frames,
    parse_detections, person_class,
};
use crate::map::{MapSummary, summarize};
use crate::stream::run_recording;
use crate::tiling::X265_PRESET;

const RUN_LIMIT: Duration = Duration::from_secs(3600);
/// Key-frame interval of the video anchors in seconds (a camera-like GOP).
pub const GOP_SECONDS: f64 = 2.0;

/// The codec of one anchor point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorCodec {
    /// x264 at a constant quantizer, no B-frames.
    X264 { qp: u32 },
    /// x265 at a constant QP, no B-frames.
    X265 { qp: u32 },
    /// Every frame a JPEG on its own.
    Jpeg { quality: u32 },
}

impl AnchorCodec {
    pub fn name(&self) -> &'static str {
        match self {
            AnchorCodec::X264 { .. } => "x264",
            AnchorCodec::X265 { .. } => "x265",
            AnchorCodec::Jpeg { .. } => "JPEG",
        }
    }

    /// The encoder as a gst-launch fragment.
    pub fn encoder(&self, key_int: u32) -> String {
        match self {
            AnchorCodec::X264 { qp } => format!(
                "x264enc pass=quant quantizer={qp} key-int-max={key_int} bframes=0 speed-preset=fast \
                 ! video/x-h264,stream-format=byte-stream"
            ),
            AnchorCodec::X265 { qp } => format!(
                "x265enc qp={qp} key-int-max={key_int} speed-preset={X265_PRESET} \
                 option-string=bframes=0 ! video/x-h265,stream-format=byte-stream"
            ),
            AnchorCodec::Jpeg { quality } => format!("jpegenc quality={quality}"),
        }
    }

    fn decoder(&self) -> &'static str {
        match self {
            AnchorCodec::X264 { .. } => "h264parse ! avdec_h264",
            AnchorCodec::X265 { .. } => "h265parse ! avdec_h265",
            AnchorCodec::Jpeg { .. } => "jpegdec",
        }
    }
}

/// The ladders: `full` is QP {22, 27, …, 47} for x264/x265 and JPEG quality {30, 50, 70, 90};
/// `quick` is a sparser ladder over the same range for short runs.
pub fn ladder(name: &str) -> Result<Vec<AnchorCodec>, String> {
    let (qps, qualities): (&[u32], &[u32]) = match name {
        "full" => (&[22, 27, 32, 37, 42, 47], &[30, 50, 70, 90]),
        "quick" => (&[22, 30, 38, 46], &[30, 70]),
        other => return Err(format!("anchor ladder '{other}' is not one of quick, full")),
    };
    let mut l = Vec::new();
    l.extend(qps.iter().map(|&qp| AnchorCodec::X264 { qp }));
    l.extend(qps.iter().map(|&qp| AnchorCodec::X265 { qp }));
    l.extend(
        qualities
            .iter()
            .map(|&quality| AnchorCodec::Jpeg { quality }),
    );
    Ok(l)
}

/// Input width and height of a model, from `<model>.profile.json` next to `<model>.onnx`.
pub fn model_input_size(model: &Path) -> Result<(u32, u32), String> {
    let profile: PathBuf = model.with_extension("profile.json");
    let text = std::fs::read_to_string(&profile)
        .map_err(|e| format!("model profile {}: {e}", profile.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("model profile {}: {e}", profile.display()))?;
    let dim = |k: &str| {
        v["input"][k]
            .as_u64()
            .filter(|&d| d > 0 && d <= 8192)
            .map(|d| d as u32)
            .ok_or_else(|| format!("model profile {} has no input.{k}", profile.display()))
    };
    Ok((dim("width")?, dim("height")?))
}

/// Width, height and frame rate of the video's first video stream.
pub fn video_format(video: &Path) -> Result<(u32, u32, f64), String> {
    let info = discover(video)?;
    let v = info
        .video_streams()
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} has no video stream", video.display()))?;
    let fr = v.framerate();
    if fr.numer() <= 0 || fr.denom() <= 0 {
        return Err(format!("{} has no frame rate", video.display()));
    }
    Ok((v.width(), v.height(), fr.numer() as f64 / fr.denom() as f64))
}

/// One anchor point, measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnchorResult {
    /// Curve name, e.g. "x265 416x416".
    pub method: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// The encoder as run (gst-launch fragment).
    pub encoder: String,
    pub frames: usize,
    pub bytes_total: u64,
    pub bytes_per_frame_mean: f64,
    pub kbit_per_s: f64,
    pub encode_s: f64,
    pub decode_detect_s: f64,
    pub person_ap50: Option<f64>,
    pub accuracy: MapSummary,
}

/// Maps detections on a decoded video back to the source: boxes scaled to source coordinates,
/// timestamps shifted so the first frame matches the reference's first frame (video decoders
/// may offset timestamps, e.g. x264enc's 1000-hour offset).
fn to_source(frames: &mut [FrameDetections], reference: &[FrameDetections], sx: f64, sy: f64) {
    let offset = match (
        frames.first().and_then(|f| f.pts_ns),
        reference.first().and_then(|f| f.pts_ns),
    ) {
        (Some(t), Some(r)) => t as i128 - r as i128,
        _ => 0,
    };
    for f in frames {
        f.pts_ns = f.pts_ns.map(|p| (p as i128 - offset).max(0) as u64);
        for b in &mut f.boxes {
            b.bbox = [
                b.bbox[0] * sx,
                b.bbox[1] * sy,
                b.bbox[2] * sx,
                b.bbox[3] * sy,
            ];
        }
    }
}

/// Codes the clip at every ladder point, at source size and at the model's input size, and
/// scores the unsplit model's detections on the decoded video against `reference`.
pub fn evaluate_anchors(
    clip: &Clip,
    reference: &[FrameDetections],
    ladder: &[AnchorCodec],
    mut progress: impl FnMut(&AnchorResult),
) -> Result<Vec<AnchorResult>, String> {
    let (src_w, src_h, fps) = video_format(&clip.video)?;
    let (model_w, model_h) = model_input_size(&clip.model)?;
    let key_int = (GOP_SECONDS * fps).round().max(1.0) as u32;
    let person = person_class(reference);
    let mut results = Vec::new();
    for (w, h) in [(src_w, src_h), (model_w, model_h)] {
        let scale = if (w, h) == (src_w, src_h) {
            String::new()
        } else {
            format!(
                "videoscale add-borders=false ! video/x-raw,width={w},height={h},pixel-aspect-ratio=1/1 ! "
            )
        };
        for codec in ladder {
            let encoder = codec.encoder(key_int);
            let (coded, enc_t) = run_recording(
                &format!(
                    "{}{scale}videoconvert ! video/x-raw,format=I420 ! {encoder} ! appsink name=sink",
                    clip.source()
                ),
                None,
                RUN_LIMIT,
            )?;
            let (out, det_t) = run_recording(
                &format!(
                    "appsrc name=src ! {} ! videoconvert ! video/x-raw,format=BGRx ! \
                     splitinfer-front {m} split-at=none ! \
                     splitinfer-back {m} score-threshold={EVAL_SCORE_THRESHOLD} ! appsink name=sink",
                    codec.decoder(),
                    m = clip.model()
                ),
                Some(&coded),
                RUN_LIMIT,
            )?;
            let mut test = parse_detections(&out)?;
            to_source(
                &mut test,
                reference,
                src_w as f64 / w as f64,
                src_h as f64 / h as f64,
            );
            let accuracy = summarize(&pair_frames(reference, &test), ROBUST_MIN_INSTANCES);
            let frames = reference.len();
            let bytes_total = coded.total_bytes();
            let seconds = frames as f64 / fps;
            let r = AnchorResult {
                method: format!("{} {w}x{h}", codec.name()),
                codec: codec.name().into(),
                width: w,
                height: h,
                encoder,
                frames,
                bytes_total,
                bytes_per_frame_mean: bytes_total as f64 / frames.max(1) as f64,
                kbit_per_s: bytes_total as f64 * 8.0 / seconds.max(f64::MIN_POSITIVE) / 1000.0,
                encode_s: enc_t.as_secs_f64(),
                decode_detect_s: det_t.as_secs_f64(),
                person_ap50: person.and_then(|p| accuracy.ap50_per_class.get(&p).copied()),
                accuracy,
            };
            progress(&r);
            results.push(r);
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::ScoredBox;

    fn workspace() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn model_input_sizes_come_from_the_profiles() {
        let models = workspace().join("models");
        assert_eq!(
            model_input_size(&models.join("nanodet.onnx")).unwrap(),
            (416, 416)
        );
        assert_eq!(
            model_input_size(&models.join("ssd_mobilenet_v2_coco_quant.onnx")).unwrap(),
            (300, 300)
        );
        let err = model_input_size(&models.join("missing.onnx")).unwrap_err();
        assert!(err.contains("missing.profile.json"), "{err}");
    }

    #[test]
    fn ladders_cover_all_codecs_and_reject_unknown_names() {
        let full = ladder("full").unwrap();
        assert_eq!(full.len(), 16);
        assert!(full.contains(&AnchorCodec::X265 { qp: 47 }));
        assert!(full.contains(&AnchorCodec::Jpeg { quality: 90 }));
        assert_eq!(ladder("quick").unwrap().len(), 10);
        assert!(ladder("huge").unwrap_err().contains("quick, full"));
    }

    #[test]
    fn encoders_have_a_camera_gop_and_no_b_frames() {
        let e = AnchorCodec::X264 { qp: 27 }.encoder(20);
        assert!(
            e.contains("quantizer=27") && e.contains("key-int-max=20") && e.contains("bframes=0")
        );
        let e = AnchorCodec::X265 { qp: 32 }.encoder(20);
        assert!(e.contains("qp=32") && e.contains("key-int-max=20") && e.contains("bframes=0"));
    }

    #[test]
    fn boxes_and_timestamps_map_back_to_the_source() {
        let mut f = vec![FrameDetections {
            pts_ns: Some(3_600_000_000_100_000_000),
            boxes: vec![ScoredBox {
                class_id: 0,
                score: 0.9,
                bbox: [10.0, 20.0, 208.0, 416.0],
            }],
            labels: Default::default(),
        }];
        let reference = vec![FrameDetections {
            pts_ns: Some(100_000_000),
            boxes: vec![],
            labels: Default::default(),
        }];
        to_source(&mut f, &reference, 768.0 / 416.0, 576.0 / 416.0);
        assert_eq!(f[0].pts_ns, Some(100_000_000));
        let b = f[0].boxes[0].bbox;
        assert!((b[2] - 384.0).abs() < 1e-9 && (b[3] - 576.0).abs() < 1e-9);
    }
}
