use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use codec_core::FeatureFrame;
use codec_core::tile::{MosaicLayout, RangeTracker, StreamId};
use codec_core::transform::{self, ChannelTransform};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::picture::{self, HeldEvents};
use crate::common::caps::{self as fmapcaps, FmapCaps};
use crate::common::element;
use crate::common::transform as common_transform;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "fmaptile",
        gst::DebugColorFlags::empty(),
        Some("fmap feature-map mosaic tiler"),
    )
});

/// Counters of the `stats` property.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    frames: u64,
    busy: Duration,
}

impl Stats {
    fn to_structure(self) -> gst::Structure {
        let ms = picture::ms_per_frame(self.busy, self.frames);
        gst::Structure::builder("fmaptile-stats")
            .field("frames", self.frames)
            .field("ms-per-frame", ms)
            .build()
    }
}

#[derive(Debug, Clone, Default)]
struct Settings {
    /// `channel-transform`: the calibration file whose KLT projects every frame first.
    channel_transform: Option<String>,
    transform_components: u32,
}

#[derive(Default)]
struct State {
    /// The channel transform loaded at start (empty: none).
    transforms: Vec<ChannelTransform>,
    stream: Option<(StreamId, gst::Fraction)>,
    /// The layout and picture format negotiated at the first frame.
    output: Option<(MosaicLayout, gst_video::VideoInfo)>,
    ranges: RangeTracker,
    held: HeldEvents,
    stats: Stats,
}

pub struct FmapTile {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

impl FmapTile {
    /// The picture format downstream prefers among [`picture::FORMATS`].
    fn choose_format(&self) -> Result<gst_video::VideoFormat, gst::FlowError> {
        let mut caps = self.srcpad.peer_query_caps(Some(&picture::template_caps()));
        if caps.is_empty() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream accepts none of {}", picture::format_names()),
                [
                    "put a video encoder that takes one of them after fmaptile (x264enc, \
                     x265enc, pngenc; video/x-raw,format=I420_10LE before x265enc for 10 bits), \
                     or videoconvert"
                ]
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        caps.fixate();
        caps.structure(0)
            .and_then(|s| s.get::<&str>("format").ok())
            .map(gst_video::VideoFormat::from_string)
            .filter(|&f| picture::picture_format(f).is_some())
            .ok_or(gst::FlowError::NotNegotiated)
    }

    /// Sets the output caps for the first mosaic.
    fn negotiate(
        &self,
        format: gst_video::VideoFormat,
        layout: &MosaicLayout,
        framerate: gst::Fraction,
    ) -> Result<gst_video::VideoInfo, gst::FlowError> {
        let info = gst_video::VideoInfo::builder(format, layout.width as u32, layout.height as u32)
            .fps(framerate)
            .build()
            .map_err(|_| gst::FlowError::NotNegotiated)?;
        let caps = info.to_caps().map_err(|_| gst::FlowError::NotNegotiated)?;
        if !self.srcpad.push_event(gst::event::Caps::new(&caps)) {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream refused {caps}"),
                [
                    "fmaptile makes a {}x{} mosaic; the encoder after it must take that size",
                    layout.width,
                    layout.height
                ]
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        Ok(info)
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = std::time::Instant::now();
        let mut state = self.state.lock().unwrap();
        let Some((stream, framerate)) = state.stream.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("No caps before the first feature frame"),
                ["link fmaptile after splitinfer-front or fmapdec"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let frame = {
            let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
            FeatureFrame::from_raw(&map)
        };
        let frame = frame.map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Decode,
                ("Input is not a raw feature frame: {e}"),
                ["fmaptile takes what splitinfer-front or fmapdec output (application/x-fmap)"]
            );
            gst::FlowError::Error
        })?;
        let frame = transform::forward_frame(&state.transforms, &frame).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Cannot transform frame {}: {e}", frame.index),
                ["channel-transform must be the calibration file of this model and split"]
            );
            gst::FlowError::Error
        })?;
        let format = match &state.output {
            Some((_, info)) => info.format(),
            None => self.choose_format()?,
        };
        let picture = picture::picture_format(format).ok_or(gst::FlowError::NotNegotiated)?;
        let mosaic = state.ranges.tile(&frame, &stream, picture).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Cannot tile frame {}: {e}", frame.index)
            );
            gst::FlowError::Error
        })?;
        let info = match &state.output {
            Some((l, info)) if *l == mosaic.layout => info.clone(),
            Some((l, _)) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "The cut tensors changed shape mid-stream ({}x{} mosaic, now {}x{})",
                        l.width,
                        l.height,
                        mosaic.layout.width,
                        mosaic.layout.height
                    ),
                    [
                        "a stream must keep one model and split point; restart the pipeline to \
                         change them"
                    ]
                );
                return Err(gst::FlowError::Error);
            }
            None => {
                let info = self.negotiate(format, &mosaic.layout, framerate)?;
                gst::info!(
                    CAT,
                    imp = self,
                    "{}x{} {:?} mosaic, {}-bit codes, header in {:?}, regions {:?}",
                    mosaic.layout.width,
                    mosaic.layout.height,
                    format,
                    picture.bits,
                    picture.place,
                    mosaic.layout.regions
                );
                state.held.release(&self.srcpad);
                state.output = Some((mosaic.layout.clone(), info.clone()));
                info
            }
        };
        let mut out = picture::write_picture(&mosaic, &info).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("Cannot write the mosaic: {e}")
            );
            gst::FlowError::Error
        })?;
        {
            let out = out.get_mut().expect("new buffer is writable");
            out.set_pts(buffer.pts());
            out.set_dts(buffer.dts());
            out.set_duration(buffer.duration());
            out.set_offset(frame.index);
            out.set_flags(buffer.flags() & gst::BufferFlags::DISCONT);
        }
        state.stats.frames += 1;
        state.stats.busy += started.elapsed();
        drop(state);
        self.srcpad.push(out)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "handling event {:?}", event);
        match event.view() {
            EventView::Caps(c) => {
                let mut state = self.state.lock().unwrap();
                let (digest, components) = (
                    transform::transforms_id(&state.transforms),
                    state
                        .transforms
                        .first()
                        .map_or(0, ChannelTransform::components),
                );
                let parsed = FmapCaps::from_caps(c.caps()).and_then(|f| {
                    let id = StreamId::new(&f.model, &f.cut, f.width, f.height)
                        .map_err(|e| e.to_string())?;
                    Ok((id.with_transform(digest, components as u16), f.framerate))
                });
                match parsed {
                    Ok(stream) => {
                        if state.output.is_some() && state.stream.as_ref() != Some(&stream) {
                            gst::element_imp_error!(
                                self,
                                gst::CoreError::Negotiation,
                                ("The feature stream changed model, cut or video size mid-stream"),
                                ["restart the pipeline to change them"]
                            );
                            return false;
                        }
                        state.stream = Some(stream);
                        true
                    }
                    Err(e) => {
                        drop(state);
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Negotiation,
                            ("Unusable {} caps: {e}", fmapcaps::RAW_MEDIA_TYPE),
                            ["link fmaptile after splitinfer-front or fmapdec"]
                        );
                        false
                    }
                }
            }
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
impl ObjectSubclass for FmapTile {
    const NAME: &'static str = "GstFmapTile";
    type Type = super::FmapTile;
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

impl ObjectImpl for FmapTile {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("channel-transform")
                    .nick("Channel transform")
                    .blurb(
                        "a calibration file made by fmap-calibrate --klt for this model and \
                         split: each frame's channels are tiled as their transform-components \
                         strongest principal components (KLT), fewer planes in the mosaic. \
                         fmapuntile needs the same file (the picture's header names it by \
                         digest). Empty: channels as they are",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("transform-components")
                    .nick("Transform components")
                    .blurb(
                        "with channel-transform: principal components kept (0 = as many as \
                         channels)",
                    )
                    .maximum(u16::MAX as u32)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "frames (tiled), ms-per-frame (mean time to quantize and tile one frame); also \
                         posted as an element message at EOS",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "channel-transform" => {
                s.channel_transform = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty());
            }
            "transform-components" => {
                s.transform_components = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "channel-transform" => self.settings.lock().unwrap().channel_transform.to_value(),
            "transform-components" => self
                .settings
                .lock()
                .unwrap()
                .transform_components
                .to_value(),
            "stats" => self.state.lock().unwrap().stats.to_structure().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for FmapTile {}

impl ElementImpl for FmapTile {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Feature map mosaic tiler",
                "Converter/Video/Tensor",
                "Quantizes the cut tensors of raw feature frames (application/x-fmap) to codes \
                 of the picture's depth and tiles their channel planes into one picture for any \
                 video encoder: I420 (8-bit codes, mid-grey chroma), GRAY8 (8-bit) or I420_10LE \
                 (10-bit codes, e.g. for x265enc Main 10), the first downstream accepts (a caps \
                 filter picks one); ranges, shapes, depth, model and cut travel as a header \
                 coded in the picture (I420, I420_10LE: in the U plane; GRAY8: a luma band). \
                 With channel-transform, the planes are the strongest principal components of \
                 the channels. fmapuntile is the inverse",
                "fmap developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            element::sink_and_src_templates(&fmapcaps::template_caps(), &picture::template_caps())
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            let s = self.settings.lock().unwrap().clone();
            let transforms = match &s.channel_transform {
                Some(path) => {
                    common_transform::load(Path::new(path), s.transform_components as usize)
                        .map_err(|e| {
                            gst::element_imp_error!(
                                self,
                                gst::LibraryError::Settings,
                                ("channel-transform: {e}")
                            );
                            gst::StateChangeError
                        })?
                }
                None => Vec::new(),
            };
            if !transforms.is_empty() {
                gst::info!(
                    CAT,
                    imp = self,
                    "channel transform {}",
                    common_transform::caps_value(&transforms)
                );
            }
            *self.state.lock().unwrap() = State {
                transforms,
                ..State::default()
            };
        }
        self.parent_change_state(transition)
    }
}
