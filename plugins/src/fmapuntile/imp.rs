use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use codec_core::tile::{self, Expected, TileError};
use codec_core::transform::{self, ChannelTransform};
use fmap_infer::profile::SplitSpec;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::common::caps::{self as fmapcaps, FmapCaps};
use crate::common::element;
use crate::common::model::{ModelFile, SetupError};
use crate::common::transform as common_transform;
use crate::fmaptile::picture::{self, HeldEvents};
use fmap_infer::profile::ResizeMode;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "fmapuntile",
        gst::DebugColorFlags::empty(),
        Some("fmap feature-map mosaic untiler"),
    )
});

#[derive(Debug, Clone, Default)]
struct Settings {
    model: String,
    profile: String,
    split_at: String,
    /// `channel-transform`: the calibration file of the sender's fmaptile channel transform.
    channel_transform: Option<String>,
}

/// Counters of the `stats` property and the `fmapuntile-stats` message at EOS.
#[derive(Debug, Clone, Copy)]
struct Stats {
    frames: u64,
    dropped: u64,
    /// Smallest distance of a header block's mean from the bit threshold (112 = untouched).
    header_margin: u32,
    busy: Duration,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            frames: 0,
            dropped: 0,
            header_margin: 112,
            busy: Duration::ZERO,
        }
    }
}

impl Stats {
    fn to_structure(self) -> gst::Structure {
        let ms = picture::ms_per_frame(self.busy, self.frames);
        gst::Structure::builder("fmapuntile-stats")
            .field("frames", self.frames)
            .field("dropped", self.dropped)
            .field("header-margin", self.header_margin)
            .field("ms-per-frame", ms)
            .build()
    }
}

/// The model side, loaded at start.
struct Model {
    hash: u64,
    hash_hex: String,
    split: String,
    cut: Vec<String>,
    resize: ResizeMode,
    input_width: u32,
    input_height: u32,
}

#[derive(Default)]
struct State {
    model: Option<Model>,
    video: Option<gst_video::VideoInfo>,
    caps: Option<FmapCaps>,
    /// The channel transform of the stream's header (digest, components), loaded once.
    transform: Option<((u64, u16), Vec<ChannelTransform>)>,
    held: HeldEvents,
    stats: Stats,
}

pub struct FmapUntile {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

impl FmapUntile {
    fn load(&self) -> Result<Model, SetupError> {
        let s = self.settings.lock().unwrap().clone();
        let file = ModelFile::load(&s.model, &s.profile)?;
        let (split, spec) = file.resolve_split(&s.split_at)?;
        let SplitSpec::Tensors(cut) = spec else {
            return Err(SetupError::Settings(
                "split-at=none is a reference run, not a feature stream: set split-at to the \
                 edge's split point"
                    .into(),
            ));
        };
        let hash = u64::from_str_radix(&file.hash, 16)
            .map_err(|e| SetupError::Model(format!("model hash {}: {e}", file.hash)))?;
        let input = &file.profile.input;
        Ok(Model {
            hash,
            hash_hex: file.hash.clone(),
            split,
            cut,
            resize: input.resize,
            input_width: input.width,
            input_height: input.height,
        })
    }

    /// `frame` in the model's channels: the channel transform the header names (`tag`: digest,
    /// components) inverted with the `channel-transform` file (checked against the digest), or
    /// as it is.
    fn inverse_transform(
        &self,
        state: &mut State,
        tag: (u64, u16),
        frame: codec_core::FeatureFrame,
    ) -> Result<codec_core::FeatureFrame, String> {
        let path = self.settings.lock().unwrap().channel_transform.clone();
        if tag.0 == 0 {
            return match path {
                Some(p) => Err(common_transform::unexpected(&p)),
                None => Ok(frame),
            };
        }
        if state.transform.as_ref().is_none_or(|(t, _)| *t != tag) {
            let transforms = common_transform::matching(
                tag.0,
                tag.1 as usize,
                path.as_deref().map(Path::new),
                "fmapuntile",
            )?;
            gst::info!(
                CAT,
                imp = self,
                "channel transform {:016x}:{}",
                tag.0,
                tag.1
            );
            state.transform = Some((tag, transforms));
        }
        let transforms = &state.transform.as_ref().expect("loaded above").1;
        transform::inverse_frame(transforms, &frame).map_err(|e| e.to_string())
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = std::time::Instant::now();
        let mut state = self.state.lock().unwrap();
        let (Some(model), Some(info)) = (&state.model, &state.video) else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("No video caps before the first picture"),
                ["link fmapuntile after a video decoder"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let info = info.clone();
        let expected = Expected {
            model: model.hash,
            cut: &model.cut,
        };
        let index = state.stats.frames;
        let pts = buffer.pts().map(|t| t.nseconds());
        let untiled = picture::with_planes(&buffer, &info, |luma, chroma_u| {
            tile::untile(luma, chroma_u, &expected, index, pts)
        })
        .map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Decode, ("{e}"));
            gst::FlowError::Error
        })?;
        let untiled = match untiled {
            Ok(u) => u,
            // A damaged header after good frames is loss: drop the frame, keep going.
            Err(TileError::BadHeader(e)) if state.caps.is_some() => {
                state.stats.dropped += 1;
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decode,
                    ("Dropped a mosaic with a damaged header: {e}"),
                    ["pts {:?}", buffer.pts()]
                );
                return Ok(gst::FlowSuccess::Ok);
            }
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::WrongType,
                    ("Cannot read the mosaic: {e}"),
                    [
                        "picture {}x{} {:?}",
                        info.width(),
                        info.height(),
                        info.format()
                    ]
                );
                return Err(gst::FlowError::Error);
            }
        };
        let tag = (untiled.stream.transform, untiled.stream.components);
        let frame = match self.inverse_transform(&mut state, tag, untiled.frame) {
            Ok(frame) => frame,
            Err(e) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{e}"));
                return Err(gst::FlowError::Error);
            }
        };
        let Some(model) = &state.model else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let caps = FmapCaps {
            model: model.hash_hex.clone(),
            cut: model.cut.clone(),
            split: model.split.clone(),
            width: untiled.stream.source_width as u32,
            height: untiled.stream.source_height as u32,
            framerate: info.fps(),
            resize: model.resize,
            input_width: model.input_width,
            input_height: model.input_height,
        };
        if state.caps.as_ref() != Some(&caps) {
            gst::info!(CAT, imp = self, "output caps {}", caps.to_caps());
            if !self
                .srcpad
                .push_event(gst::event::Caps::new(&caps.to_caps()))
            {
                return Err(gst::FlowError::NotNegotiated);
            }
            state.held.release(&self.srcpad);
            state.caps = Some(caps);
        }
        let raw = frame.to_raw().map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                ("Rebuilt frame is invalid: {e}")
            );
            gst::FlowError::Error
        })?;
        let mut out = gst::Buffer::from_mut_slice(raw);
        {
            let out = out.get_mut().expect("new buffer is writable");
            out.set_pts(buffer.pts());
            out.set_duration(buffer.duration());
            out.set_offset(index);
            out.set_flags(buffer.flags() & gst::BufferFlags::DISCONT);
        }
        state.stats.frames += 1;
        state.stats.header_margin = state.stats.header_margin.min(untiled.margin);
        state.stats.busy += started.elapsed();
        drop(state);
        self.srcpad.push(out)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "handling event {:?}", event);
        match event.view() {
            EventView::Caps(c) => match gst_video::VideoInfo::from_caps(c.caps()) {
                Ok(info) => {
                    self.state.lock().unwrap().video = Some(info);
                    true
                }
                Err(_) => {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("Unusable video caps {}", c.caps()),
                        [
                            "fmapuntile reads {} mosaics made by fmaptile",
                            picture::format_names()
                        ]
                    );
                    false
                }
            },
            _ => {
                let event = {
                    let mut state = self.state.lock().unwrap();
                    let stats = state.stats;
                    state
                        .held
                        .pass((*CAT, self.obj().upcast_ref()), &self.srcpad, event, || {
                            stats.to_structure()
                        })
                };
                event.is_none_or(|e| gst::Pad::event_default(pad, Some(&*self.obj()), e))
            }
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FmapUntile {
    const NAME: &'static str = "GstFmapUntile";
    type Type = super::FmapUntile;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let (sinkpad, srcpad) = picture::pads(
            &klass.pad_template("sink").unwrap(),
            &klass.pad_template("src").unwrap(),
            Self::chain,
            Self::sink_event,
        );
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
        }
    }
}

impl ObjectImpl for FmapUntile {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "Path of the ONNX detection model (required; the same file as the edge's \
                         splitinfer-front: its SHA-256 is checked against the mosaic header)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("profile")
                    .nick("Profile")
                    .blurb(
                        "Path of the model profile JSON; empty = the sidecar \
                         <model without .onnx>.profile.json",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("split-at")
                    .nick("Split at")
                    .blurb(
                        "The edge's split-at value: empty = the profile's default_split, a split \
                         point named in the profile, or the exact comma-separated cut tensor \
                         names; it names the output tensors and is checked against the mosaic \
                         header",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("channel-transform")
                    .nick("Channel transform")
                    .blurb(
                        "the calibration file (fmap-calibrate --klt) the sender's fmaptile \
                         channel-transform used; needed, and checked against the digest in the \
                         mosaic's header, when the mosaic holds principal components",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "frames (untiled), dropped (damaged headers), header-margin (smallest \
                         distance of a header block's mean from the bit threshold, in 8-bit \
                         levels at any depth: 112 = as written, 0 = about to flip), ms-per-frame",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        let text = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        match pspec.name() {
            "model" => s.model = text(),
            "profile" => s.profile = text(),
            "split-at" => s.split_at = text(),
            "channel-transform" => s.channel_transform = Some(text()).filter(|p| !p.is_empty()),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => s.model.to_value(),
            "profile" => s.profile.to_value(),
            "split-at" => s.split_at.to_value(),
            "channel-transform" => s.channel_transform.to_value(),
            "stats" => self.state.lock().unwrap().stats.to_structure().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for FmapUntile {}

impl ElementImpl for FmapUntile {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Feature map mosaic untiler",
                "Converter/Video/Tensor",
                "Reads mosaic pictures made by fmaptile (I420, GRAY8 or I420_10LE, after any \
                 video codec) back into raw feature frames (application/x-fmap, the same caps \
                 splitinfer-front emits), checking the model, cut, code depth and size in the \
                 picture's header against its own",
                "fmap developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            element::sink_and_src_templates(&picture::template_caps(), &fmapcaps::template_caps())
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            let model = self.load().map_err(|e| {
                self.post_error_message(gst::ErrorMessage::from(&e));
                gst::StateChangeError
            })?;
            gst::info!(
                CAT,
                imp = self,
                "model {} split {} cut {:?}",
                model.hash_hex,
                model.split,
                model.cut
            );
            *self.state.lock().unwrap() = State {
                model: Some(model),
                ..State::default()
            };
        }
        self.parent_change_state(transition)
    }
}
