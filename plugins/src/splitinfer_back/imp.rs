//! `splitinfer-back`: BaseTransform, raw feature frames in, one JSON line of detections out.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;

use fmap_infer::detection::detections_json_line;

use super::engine::{BackEngine, ProcessError, Thresholds};
use crate::common::caps::{self, DETECTIONS_MEDIA_TYPE, FmapCaps};
use crate::common::onnx_settings::OnnxSettings;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "splitinfer-back",
        gst::DebugColorFlags::empty(),
        Some("Back half of a split detector"),
    )
});

/// Negative threshold values mean "the profile's value".
const DEFAULT_FROM_PROFILE: f64 = -1.0;
const MAX_DETECTIONS_LIMIT: u32 = 10_000;

#[derive(Debug, Clone)]
struct Settings {
    onnx: OnnxSettings,
    score_threshold: f64,
    nms_iou: f64,
    max_detections: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            onnx: OnnxSettings::default(),
            score_threshold: DEFAULT_FROM_PROFILE,
            nms_iou: DEFAULT_FROM_PROFILE,
            max_detections: 0,
        }
    }
}

impl Settings {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            score: (self.score_threshold >= 0.0).then_some(self.score_threshold as f32),
            nms_iou: (self.nms_iou >= 0.0).then_some(self.nms_iou as f32),
            max_detections: (self.max_detections > 0).then_some(self.max_detections as usize),
        }
    }
}

struct State {
    engine: BackEngine,
    frames: u64,
    detections: u64,
    /// Damaged frames dropped.
    dropped: u64,
    busy: Duration,
}

#[derive(Default)]
pub struct SplitInferBack {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for SplitInferBack {
    const NAME: &'static str = "GstFmapSplitInferBack";
    type Type = super::SplitInferBack;
    type ParentType = gst_base::BaseTransform;
}

fn detections_caps() -> gst::Caps {
    gst::Caps::new_empty_simple(DETECTIONS_MEDIA_TYPE)
}

impl ObjectImpl for SplitInferBack {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut properties = OnnxSettings::properties();
            properties.extend([
                glib::ParamSpecDouble::builder("score-threshold")
                    .nick("Score threshold")
                    .blurb("Lowest score kept, 0..1; -1 = the profile's score_threshold")
                    .minimum(-1.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_FROM_PROFILE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("nms-iou")
                    .nick("NMS IoU")
                    .blurb(
                        "Class-wise non-maximum suppression drops boxes overlapping a better one \
                         by more than this IoU, 0..1; -1 = the profile's nms_iou",
                    )
                    .minimum(-1.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_FROM_PROFILE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-detections")
                    .nick("Max detections")
                    .blurb("Most detections per frame; 0 = the profile's max_detections")
                    .maximum(MAX_DETECTIONS_LIMIT)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
            ]);
            properties
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        if s.onnx.set_property(value, pspec) {
            return;
        }
        match pspec.name() {
            "score-threshold" => s.score_threshold = value.get().expect("type checked upstream"),
            "nms-iou" => s.nms_iou = value.get().expect("type checked upstream"),
            "max-detections" => s.max_detections = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        if let Some(v) = s.onnx.property(pspec) {
            return v;
        }
        match pspec.name() {
            "score-threshold" => s.score_threshold.to_value(),
            "nms-iou" => s.nms_iou.to_value(),
            "max-detections" => s.max_detections.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for SplitInferBack {}

impl ElementImpl for SplitInferBack {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Split inference, back half",
                "Filter/Analyzer",
                "Runs the rest of an ONNX detection network on raw feature frames \
                 (application/x-fmap) and emits each frame's detections as one JSON line",
                "fmap developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &detections_caps(),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps::template_caps(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for SplitInferBack {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().unwrap().clone();
        let engine =
            BackEngine::open(&s.onnx, s.thresholds()).map_err(|e| gst::ErrorMessage::from(&e))?;
        gst::info!(
            CAT,
            imp = self,
            "model {} (sha256 prefix {}), profile {}, thresholds {:?}",
            engine.model.path.display(),
            engine.model.hash,
            engine.model.profile_path.display(),
            s.thresholds()
        );
        *self.state.lock().unwrap() = Some(State {
            engine,
            frames: 0,
            detections: 0,
            dropped: 0,
            busy: Duration::ZERO,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(st) = self.state.lock().unwrap().take()
            && st.frames > 0
        {
            gst::info!(
                CAT,
                imp = self,
                "{} frames, {:.1} ms/frame (back network + decoding), {:.2} detections/frame, \
                 {} damaged frames dropped",
                st.frames,
                st.busy.as_secs_f64() * 1e3 / st.frames as f64,
                st.detections as f64 / st.frames as f64,
                st.dropped
            );
        }
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        _caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let other = if direction == gst::PadDirection::Sink {
            detections_caps()
        } else {
            caps::template_caps()
        };
        Some(match filter {
            Some(f) => f.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let caps = match FmapCaps::from_caps(incaps) {
            Ok(c) => c,
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Unusable feature stream caps: {e}"),
                    ["caps {incaps:?}"]
                );
                return Err(gst::loggable_error!(CAT, "bad caps {incaps:?}"));
            }
        };
        let ort_library = self.settings.lock().unwrap().onnx.ort_library.clone();
        let mut state = self.state.lock().unwrap();
        let st = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        match st.engine.configure(&caps, &ort_library) {
            Ok(ort_path) => {
                if let Some(p) = ort_path {
                    gst::info!(CAT, imp = self, "ONNX Runtime library {}", p.display());
                }
                gst::info!(
                    CAT,
                    imp = self,
                    "stream: model {}, split '{}', cut [{}], video {}x{}",
                    caps.model,
                    caps.split,
                    caps.cut.join(", "),
                    caps.width,
                    caps.height
                );
                Ok(())
            }
            Err(e) => {
                drop(state);
                self.post_error_message(gst::ErrorMessage::from(&e));
                Err(gst::loggable_error!(CAT, "{e}"))
            }
        }
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let Some(inbuf) = self.take_queued_buffer() else {
            return Ok(GenerateOutputSuccess::NoOutput);
        };
        let mut state = self.state.lock().unwrap();
        let st = state.as_mut().ok_or(gst::FlowError::Flushing)?;
        let map = inbuf.map_readable().map_err(|_| gst::FlowError::Error)?;
        let started = Instant::now();
        let decoded = match st.engine.process(&map) {
            Ok(d) => d,
            Err(ProcessError::Corrupt(msg)) => {
                // One damaged frame loses that frame's detections, not the stream.
                st.dropped += 1;
                gst::warning!(CAT, imp = self, "dropped frame {:?}: {msg}", inbuf.pts());
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decode,
                    ("Dropped a damaged feature frame: {msg}"),
                    ["pts {:?}, {} bytes", inbuf.pts(), map.len()]
                );
                return Ok(GenerateOutputSuccess::NoOutput);
            }
            Err(ProcessError::Fatal(msg)) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Decode,
                    ("Cannot process feature frame {}: {msg}", st.frames)
                );
                return Err(gst::FlowError::Error);
            }
        };
        let elapsed = started.elapsed();
        drop(map);
        let (width, height) = st
            .engine
            .stream_caps()
            .map(|c| (c.width, c.height))
            .unwrap_or((0, 0));
        let pts_ns = inbuf.pts().map(|t| t.nseconds()).or(decoded.pts_ns);
        // fmapdec marks frames whose features were partly concealed after a loss.
        let concealed = inbuf.flags().contains(gst::BufferFlags::CORRUPTED);
        let mut line = detections_json_line(
            pts_ns,
            decoded.index,
            width,
            height,
            concealed,
            &decoded.detections,
        );
        line.push('\n');
        st.frames += 1;
        st.detections += decoded.detections.len() as u64;
        st.busy += elapsed;
        gst::debug!(
            CAT,
            imp = self,
            "frame {} pts {:?}: {} detections, {:.1} ms",
            decoded.index,
            inbuf.pts(),
            decoded.detections.len(),
            elapsed.as_secs_f64() * 1e3
        );
        let mut out = gst::Buffer::from_mut_slice(line.into_bytes());
        {
            let out = out.get_mut().unwrap();
            out.set_pts(inbuf.pts());
            out.set_dts(inbuf.dts());
            out.set_duration(inbuf.duration());
            out.set_offset(decoded.index);
        }
        Ok(GenerateOutputSuccess::Buffer(out))
    }
}
