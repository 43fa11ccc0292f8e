//! `splitinfer-front`: BaseTransform, raw video in, one raw feature frame per video frame out.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use fmap_infer::preprocess::{PixelFormat, VideoFrameRef};

use super::engine::FrontEngine;
use crate::common::caps;
use crate::common::onnx_settings::OnnxSettings;

pub static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "splitinfer-front",
        gst::DebugColorFlags::empty(),
        Some("Front half of a split detector"),
    )
});

#[derive(Debug, Clone, Default)]
struct Settings {
    onnx: OnnxSettings,
    split_at: String,
}

struct State {
    engine: FrontEngine,
    video: Option<(gst_video::VideoInfo, PixelFormat)>,
    frames: u64,
    busy: Duration,
    bytes: u64,
}

#[derive(Default)]
pub struct SplitInferFront {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for SplitInferFront {
    const NAME: &'static str = "GstFmapSplitInferFront";
    type Type = super::SplitInferFront;
    type ParentType = gst_base::BaseTransform;
}

/// Caps of the raw video formats the front reads.
pub fn video_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(
            PixelFormat::ALL
                .iter()
                .map(|f| gst_video::VideoFormat::from_string(f.gst_name())),
        )
        .build()
}

impl ObjectImpl for SplitInferFront {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut properties = OnnxSettings::properties();
            properties.push(
                glib::ParamSpecString::builder("split-at")
                    .nick("Split at")
                    .blurb(
                        "Where to cut the network: empty = the profile's default_split; 'none' = \
                         run the whole network and emit its outputs (reference run); a split \
                         point named in the profile (e.g. stage1, stage2, backbone for NanoDet); \
                         or comma-separated tensor names (crossing tensors are added; a single \
                         tensor name without ':' or '/' needs a trailing ','). An unknown name \
                         fails at start with the list of valid names",
                    )
                    .mutable_ready()
                    .build(),
            );
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
            "split-at" => {
                s.split_at = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        if let Some(v) = s.onnx.property(pspec) {
            return v;
        }
        match pspec.name() {
            "split-at" => s.split_at.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for SplitInferFront {}

impl ElementImpl for SplitInferFront {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Split inference, front half",
                "Filter/Analyzer/Video",
                "Runs the first part of an ONNX detection network on each video frame and \
                 emits the tensors at the cut as raw feature frames (application/x-fmap)",
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
                    &caps::template_caps(),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &video_caps(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for SplitInferFront {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().unwrap().clone();
        let (engine, ort_path) =
            FrontEngine::open(&s.onnx, &s.split_at).map_err(|e| gst::ErrorMessage::from(&e))?;
        gst::info!(
            CAT,
            imp = self,
            "ONNX Runtime library {}",
            ort_path.display()
        );
        gst::info!(
            CAT,
            imp = self,
            "model {} (sha256 prefix {}), profile {}, split '{}', cut [{}]{}{}, {} threads",
            engine.model.path.display(),
            engine.model.hash,
            engine.model.profile_path.display(),
            engine.split_name,
            engine.cut.join(", "),
            if engine.added.is_empty() {
                String::new()
            } else {
                format!(" (added crossing tensors: {})", engine.added.join(", "))
            },
            if engine.dropped.is_empty() {
                String::new()
            } else {
                format!(
                    " (dropped, not read by the back: {})",
                    engine.dropped.join(", ")
                )
            },
            s.onnx.threads
        );
        for (name, q) in engine.cut.iter().zip(&engine.quant) {
            if let Some((scale, zp)) = q {
                gst::info!(
                    CAT,
                    imp = self,
                    "'{name}' is 8-bit: scale {scale}, zero point {zp}"
                );
            }
        }
        *self.state.lock().unwrap() = Some(State {
            engine,
            video: None,
            frames: 0,
            busy: Duration::ZERO,
            bytes: 0,
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
                "{} frames, {:.1} ms/frame (preprocessing + front network), {} bytes/frame",
                st.frames,
                st.busy.as_secs_f64() * 1e3 / st.frames as f64,
                st.bytes / st.frames
            );
        }
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let other = if direction == gst::PadDirection::Sink {
            let state = self.state.lock().unwrap();
            let info = caps
                .is_fixed()
                .then(|| gst_video::VideoInfo::from_caps(caps).ok())
                .flatten();
            match (state.as_ref(), info) {
                (Some(st), Some(info)) => st
                    .engine
                    .caps(info.width(), info.height(), info.fps())
                    .to_caps(),
                _ => caps::template_caps(),
            }
        } else {
            video_caps()
        };
        Some(match filter {
            Some(f) => f.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "unusable video caps {incaps:?}"))?;
        let format = PixelFormat::from_gst_name(info.format().to_str()).ok_or_else(|| {
            gst::loggable_error!(
                CAT,
                "video format {} is not one of {}",
                info.format().to_str(),
                PixelFormat::all_gst_names().join(", ")
            )
        })?;
        gst::info!(CAT, imp = self, "video {incaps:?} -> {outcaps:?}");
        let mut state = self.state.lock().unwrap();
        let st = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        st.video = Some((info, format));
        Ok(())
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let Some(inbuf) = self.take_queued_buffer() else {
            return Ok(GenerateOutputSuccess::NoOutput);
        };
        let mut state = self.state.lock().unwrap();
        let st = state.as_mut().ok_or(gst::FlowError::Flushing)?;
        let Some((info, format)) = st.video.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Video arrived before its caps")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), &info)
            .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("Video buffer does not match its caps {info:?}")
                );
                gst::FlowError::Error
            })?;
        let data = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
        let video = VideoFrameRef {
            width: info.width(),
            height: info.height(),
            stride: frame.plane_stride()[0] as usize,
            format,
            data,
        };
        let pts = inbuf.pts();
        let started = Instant::now();
        let index = st.frames;
        let raw = st
            .engine
            .process(&video, index, pts.map(|t| t.nseconds()))
            .and_then(|f| f.to_raw().map_err(|e| format!("feature frame: {e}")));
        let raw = match raw {
            Ok(r) => r,
            Err(msg) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Front network failed on frame {index}: {msg}")
                );
                return Err(gst::FlowError::Error);
            }
        };
        let elapsed = started.elapsed();
        st.frames += 1;
        st.busy += elapsed;
        st.bytes += raw.len() as u64;
        gst::debug!(
            CAT,
            imp = self,
            "frame {index} pts {pts:?}: {:.1} ms, {} bytes",
            elapsed.as_secs_f64() * 1e3,
            raw.len()
        );
        drop(frame);
        let mut out = gst::Buffer::from_mut_slice(raw);
        {
            let out = out.get_mut().unwrap();
            out.set_pts(pts);
            out.set_dts(inbuf.dts());
            out.set_duration(inbuf.duration());
            out.set_offset(index);
            if inbuf.flags().contains(gst::BufferFlags::DISCONT) {
                out.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        Ok(GenerateOutputSuccess::Buffer(out))
    }
}
