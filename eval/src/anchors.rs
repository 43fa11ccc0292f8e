//! Cloud-only anchors: instead of splitting the network, the camera codes the video itself
//! (x264, x265, or JPEG frame by frame) and the server runs the whole model on the decoded
//! frames. Each point of the ladder is coded once (the bitstream is recorded), then decoded and
//! run through the unsplit model (`splitinfer-front split-at=none ! splitinfer-back`) at the
//! evaluation's score threshold and scored against the same reference as the feature methods.
//!
//! Two sizes: the source resolution, and the model's input size (the model stretches every frame
//! to that size anyway, so a camera needs to send no more). At the model's size the camera
//! resizes each frame with exactly the model's own resize arithmetic (bilinear, pixel-centre
//! aligned; [`CameraScaler`]) and rounds to 8-bit RGB, so without coding the server would see
//! what the model sees: this is the strongest anchor. (GStreamer's `videoscale` resamples
//! differently, which alone costs about 1 point of person AP@0.5 on vtest.avi.) Boxes detected
//! on downscaled frames are scaled back to source coordinates before scoring.
//!
//! An `uncoded` point per size sends raw I420 frames: the accuracy ceiling of the 4:2:0 video
//! path, whatever the codec.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fmap_infer::preprocess::{InputData, PixelFormat, Preprocessor, VideoFrameRef};
use fmap_infer::profile::{ChannelOrder, InputDType, Layout, Profile, ResizeMode};

use crate::evaluate::{
    Clip, EVAL_SCORE_THRESHOLD, FrameDetections, discover, pair_frames, parse_detections,
    person_class, robust_filter,
};
use crate::map::{MapSummary, summarize};
use crate::stream::{Recording, run_recording};
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
    /// Raw I420 frames: the accuracy ceiling of sending 4:2:0 video at this size.
    Uncoded,
}

impl AnchorCodec {
    pub fn name(&self) -> &'static str {
        match self {
            AnchorCodec::X264 { .. } => "x264",
            AnchorCodec::X265 { .. } => "x265",
            AnchorCodec::Jpeg { .. } => "JPEG",
            AnchorCodec::Uncoded => "uncoded I420",
        }
    }

    /// The encoder as a gst-launch fragment (`identity` for uncoded frames).
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
            AnchorCodec::Uncoded => "identity".into(),
        }
    }

    fn decoder(&self) -> &'static str {
        match self {
            AnchorCodec::X264 { .. } => "h264parse ! avdec_h264",
            AnchorCodec::X265 { .. } => "h265parse ! avdec_h265",
            AnchorCodec::Jpeg { .. } => "jpegdec",
            AnchorCodec::Uncoded => "identity",
        }
    }
}

/// The ladders: `full` is QP {17, 22, 27, 32} for x264/x265 (the range where the video keeps
/// the accuracy bars or just misses them: at QP 32 person AP@0.5 is already ~0.97), JPEG
/// quality {30, 60, 90} and the uncoded ceiling; `quick` is a sparser, wider ladder for short
/// runs.
pub fn ladder(name: &str) -> Result<Vec<AnchorCodec>, String> {
    let (qps, qualities): (&[u32], &[u32]) = match name {
        "full" => (&[17, 22, 27, 32], &[30, 60, 90]),
        "quick" => (&[22, 30, 38, 46], &[30, 70]),
        other => return Err(format!("anchor ladder '{other}' is not one of quick, full")),
    };
    let mut l = vec![AnchorCodec::Uncoded];
    l.extend(qps.iter().map(|&qp| AnchorCodec::X264 { qp }));
    l.extend(qps.iter().map(|&qp| AnchorCodec::X265 { qp }));
    l.extend(
        qualities
            .iter()
            .map(|&quality| AnchorCodec::Jpeg { quality }),
    );
    Ok(l)
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

/// A camera-side scaler that resizes frames to a model's input size with the model's own
/// arithmetic ([`Preprocessor`] with the profile's input size and resize mode), rounded to 8-bit
/// packed RGB, i.e. what the model would compute from the full frame before normalization.
pub struct CameraScaler {
    pre: Preprocessor,
    pub width: u32,
    pub height: u32,
}

impl CameraScaler {
    /// The scaler for a model's profile (`<model>.profile.json`). Letterboxing models are refused:
    /// their boxes would not map back by a plain scale.
    pub fn for_model(model: &Path) -> Result<CameraScaler, String> {
        let profile = Profile::load_for_model(model).map_err(|e| e.to_string())?;
        let mut spec = profile.input;
        if spec.resize != ResizeMode::Stretch {
            return Err(format!(
                "model-size anchors need a stretch-resize model; {} letterboxes",
                model.display()
            ));
        }
        spec.layout = Layout::Nhwc;
        spec.dtype = InputDType::U8;
        spec.channel_order = ChannelOrder::Rgb;
        spec.mean = None;
        spec.std = None;
        let (width, height) = (spec.width, spec.height);
        Ok(CameraScaler {
            pre: Preprocessor::new(&spec).map_err(|e| e.to_string())?,
            width,
            height,
        })
    }

    /// Packed RGB (`width·height·3` bytes) of a packed frame.
    pub fn scale(&self, frame: &VideoFrameRef) -> Result<Vec<u8>, String> {
        match self.pre.prepare(frame).map_err(|e| e.to_string())?.0.data {
            InputData::U8(v) => Ok(v),
            InputData::F32(_) => Err("scaler produced float data".into()),
        }
    }

    /// GStreamer's RGB rows start at multiples of 4 bytes: packed rows, padded.
    fn padded_rows(&self, rgb: Vec<u8>) -> Vec<u8> {
        let row = self.width as usize * 3;
        let stride = row.div_ceil(4) * 4;
        if stride == row {
            return rgb;
        }
        let mut out = vec![0u8; stride * self.height as usize];
        for (dst, src) in out.chunks_exact_mut(stride).zip(rgb.chunks_exact(row)) {
            dst[..row].copy_from_slice(src);
        }
        out
    }

    /// The clip's frames at the model's input size, as `video/x-raw,format=RGB` buffers with
    /// the source's timestamps.
    pub fn scale_clip(&self, clip: &Clip) -> Result<Recording, String> {
        let (src, _) = run_recording(
            &format!("{}appsink name=sink", clip.source()),
            None,
            RUN_LIMIT,
        )?;
        let s = src.caps.structure(0).ok_or("decoded caps are empty")?;
        let dim = |k: &str| s.get::<i32>(k).map_err(|e| e.to_string());
        let (w, h) = (dim("width")? as u32, dim("height")? as u32);
        let framerate = s
            .get::<gst::Fraction>("framerate")
            .map_err(|e| e.to_string())?;
        let mut buffers = Vec::with_capacity(src.buffers.len());
        for b in &src.buffers {
            let map = b.map_readable().map_err(|_| "unreadable frame")?;
            let rgb = self.scale(&VideoFrameRef::packed(w, h, PixelFormat::Bgrx, &map))?;
            let mut out = gst::Buffer::from_mut_slice(self.padded_rows(rgb));
            {
                let out = out.get_mut().expect("new buffer is writable");
                out.set_pts(b.pts());
                out.set_duration(b.duration());
            }
            buffers.push(out);
        }
        Ok(Recording {
            caps: gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .field("width", self.width as i32)
                .field("height", self.height as i32)
                .field("framerate", framerate)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
            buffers,
        })
    }
}

/// The frames an anchor codes: the decoded source, or frames already scaled to the model's size.
#[derive(Clone)]
pub struct AnchorInput {
    pub width: u32,
    pub height: u32,
    /// `None`: the clip's decoded frames at source size.
    pub scaled: Option<Arc<Recording>>,
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

/// Bytes of one unpadded I420 frame: full-size luma, two half-size (rounded up) chroma planes.
pub fn i420_bytes(width: u32, height: u32) -> u64 {
    let (w, h) = (width as u64, height as u64);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
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

/// The clip coded with one ladder point at one size.
pub struct CodedAnchor {
    pub codec: AnchorCodec,
    pub width: u32,
    pub height: u32,
    /// The encoder as run.
    pub encoder: String,
    pub coded: Recording,
    pub encode_time: Duration,
    /// The source video's width, height and frame rate (boxes and rates are given in them).
    pub source: (u32, u32, f64),
}

/// Codes the clip (`input`: the decoded source, or frames scaled to a model's size) with one
/// ladder point.
pub fn encode_anchor(
    clip: &Clip,
    input: &AnchorInput,
    codec: AnchorCodec,
) -> Result<CodedAnchor, String> {
    let source = video_format(&clip.video)?;
    let key_int = (GOP_SECONDS * source.2).round().max(1.0) as u32;
    let encoder = codec.encoder(key_int);
    let to_i420 = format!("videoconvert ! video/x-raw,format=I420 ! {encoder} ! appsink name=sink");
    let (coded, encode_time) = match &input.scaled {
        None => run_recording(&format!("{}{to_i420}", clip.source()), None, RUN_LIMIT)?,
        Some(frames) => run_recording(
            &format!("appsrc name=src ! {to_i420}"),
            Some(frames),
            RUN_LIMIT,
        )?,
    };
    Ok(CodedAnchor {
        codec,
        width: input.width,
        height: input.height,
        encoder: match codec {
            AnchorCodec::Uncoded => "none (raw I420)".into(),
            _ => encoder,
        },
        coded,
        encode_time,
        source,
    })
}

/// Decodes a coded anchor, runs the unsplit model of `clip` on it and scores its detections
/// against `reference`.
pub fn detect_anchor(
    clip: &Clip,
    reference: &[FrameDetections],
    anchor: &CodedAnchor,
) -> Result<AnchorResult, String> {
    let (src_w, src_h, fps) = anchor.source;
    let (w, h) = (anchor.width, anchor.height);
    let (out, det_t) = run_recording(
        &format!(
            "appsrc name=src ! {} ! videoconvert ! video/x-raw,format=BGRx ! \
             splitinfer-front {m} split-at=none ! \
             splitinfer-back {m} score-threshold={EVAL_SCORE_THRESHOLD} ! appsink name=sink",
            anchor.codec.decoder(),
            m = clip.model()
        ),
        Some(&anchor.coded),
        RUN_LIMIT,
    )?;
    let mut test = parse_detections(&out)?;
    to_source(
        &mut test,
        reference,
        src_w as f64 / w as f64,
        src_h as f64 / h as f64,
    );
    let accuracy = summarize(&pair_frames(reference, &test), robust_filter(reference));
    let frames = reference.len();
    let bytes_total = match anchor.codec {
        // The pixels, not GStreamer's row padding (I420 rows start at multiples of 4 bytes).
        AnchorCodec::Uncoded => anchor.coded.buffers.len() as u64 * i420_bytes(w, h),
        _ => anchor.coded.total_bytes(),
    };
    let seconds = frames as f64 / fps;
    Ok(AnchorResult {
        method: format!("{} {w}x{h}", anchor.codec.name()),
        codec: anchor.codec.name().into(),
        width: w,
        height: h,
        encoder: anchor.encoder.clone(),
        frames,
        bytes_total,
        bytes_per_frame_mean: bytes_total as f64 / frames.max(1) as f64,
        kbit_per_s: bytes_total as f64 * 8.0 / seconds.max(f64::MIN_POSITIVE) / 1000.0,
        encode_s: anchor.encode_time.as_secs_f64(),
        decode_detect_s: det_t.as_secs_f64(),
        person_ap50: person_class(reference).and_then(|p| accuracy.ap50_per_class.get(&p).copied()),
        accuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::ScoredBox;
    use std::path::PathBuf;

    fn workspace() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn model_input_sizes_come_from_the_profiles() {
        let models = workspace().join("models");
        let size = |m: &str| {
            let s = CameraScaler::for_model(&models.join(m)).unwrap();
            (s.width, s.height)
        };
        assert_eq!(size("nanodet.onnx"), (416, 416));
        assert_eq!(size("ssd_mobilenet_v2_coco_quant.onnx"), (300, 300));
        let err = CameraScaler::for_model(&models.join("missing.onnx"))
            .err()
            .unwrap();
        assert!(err.contains("missing.profile.json"), "{err}");
    }

    #[test]
    fn ladders_cover_all_codecs_and_reject_unknown_names() {
        let full = ladder("full").unwrap();
        assert_eq!(full.len(), 12);
        assert!(full.contains(&AnchorCodec::X265 { qp: 32 }));
        assert!(full.contains(&AnchorCodec::Jpeg { quality: 90 }));
        assert_eq!(full[0], AnchorCodec::Uncoded);
        assert_eq!(ladder("quick").unwrap().len(), 11);
        assert!(ladder("huge").unwrap_err().contains("quick, full"));
    }

    #[test]
    fn camera_scaler_matches_the_model_input_and_keeps_model_sized_frames() {
        let models = workspace().join("models");
        let s = CameraScaler::for_model(&models.join("nanodet.onnx")).unwrap();
        assert_eq!((s.width, s.height), (416, 416));
        // A frame already at the model's size passes unchanged (BGRx in, RGB out).
        let bgrx: Vec<u8> = (0..416 * 416 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let rgb = s
            .scale(&VideoFrameRef::packed(416, 416, PixelFormat::Bgrx, &bgrx))
            .unwrap();
        assert_eq!(rgb.len(), 416 * 416 * 3);
        for p in [0, 1, 4242, 416 * 416 - 1] {
            assert_eq!(
                [rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]],
                [bgrx[4 * p + 2], bgrx[4 * p + 1], bgrx[4 * p]],
                "pixel {p}"
            );
        }
        // Downscaling a flat frame stays flat; a vertical ramp stays a ramp.
        let flat = vec![77u8; 768 * 576 * 4];
        let out = s
            .scale(&VideoFrameRef::packed(768, 576, PixelFormat::Bgrx, &flat))
            .unwrap();
        assert!(out.iter().all(|&v| v == 77));
        let ssd =
            CameraScaler::for_model(&models.join("ssd_mobilenet_v2_coco_quant.onnx")).unwrap();
        assert_eq!((ssd.width, ssd.height), (300, 300));
        assert_eq!(ssd.padded_rows(vec![1; 300 * 300 * 3]).len(), 300 * 300 * 3);
    }

    #[test]
    fn rgb_rows_are_padded_to_four_bytes() {
        let s = CameraScaler {
            pre: Preprocessor::new(
                &Profile::load_for_model(workspace().join("models/nanodet.onnx"))
                    .unwrap()
                    .input,
            )
            .unwrap(),
            width: 3,
            height: 2,
        };
        let out = s.padded_rows((1..=18).collect());
        assert_eq!(out.len(), 24);
        assert_eq!(&out[..12], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0]);
        assert_eq!(&out[12..21], &[10, 11, 12, 13, 14, 15, 16, 17, 18]);
    }

    #[test]
    fn i420_frames_are_one_and_a_half_bytes_a_pixel() {
        assert_eq!(i420_bytes(768, 576), 768 * 576 * 3 / 2);
        assert_eq!(i420_bytes(300, 300), 135_000);
        assert_eq!(i420_bytes(3, 3), 9 + 2 * 4);
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
