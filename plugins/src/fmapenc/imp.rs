use std::path::Path;
use std::sync::{LazyLock, Mutex};

use codec_core::codec::{
    ADAPTIVE_UNIT_VERSION, ChannelWeights, CodecConfig, CodedUnit, Encoder, QUALITY_RANGE,
    RateController, Structure, UNIT_VERSION,
};
use codec_core::{FeatureFrame, TensorData};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::calibration;
use super::settings::{Entropy, Mode, MvSharing, Quantizer, Search, Settings};
use super::timestamps::DecodeTimestamps;
use crate::common::caps::{self, CodecFields};
use crate::common::element;
use crate::common::transform as common_transform;
use codec_core::transform::{self, ChannelTransform};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "fmapenc",
        gst::DebugColorFlags::empty(),
        Some("fmap feature-map encoder"),
    )
});

/// Counters reported by the `stats` property and the `fmapenc-stats` message at EOS.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    frames_in: u64,
    units_out: u64,
    sync_units: u64,
    bytes_out: u64,
    raw_bytes_in: u64,
    /// Adaptive: the quality in effect (the rate controller's choice with `bitrate`).
    quality: f32,
    /// Force-key-unit requests answered.
    key_requests: u64,
}

impl Stats {
    fn to_structure(self) -> gst::Structure {
        gst::Structure::builder("fmapenc-stats")
            .field("frames", self.frames_in)
            .field("units", self.units_out)
            .field("sync-units", self.sync_units)
            .field("bytes", self.bytes_out)
            .field("raw-bytes", self.raw_bytes_in)
            .field("quality", self.quality)
            .field("key-requests", self.key_requests)
            .build()
    }
}

/// What exists between caps and stop.
struct Coding {
    config: CodecConfig,
    /// `channel-transform`: applied to every frame before coding.
    transforms: Vec<ChannelTransform>,
    encoder: Encoder,
    frame_duration: Option<gst::ClockTime>,
    dts: DecodeTimestamps,
    discont: bool,
    checked_dtype: bool,
    /// Adaptive with `bitrate`: chooses each frame's quality.
    rate: Option<RateController>,
    /// `config-interval` (0 = with key units only).
    config_interval: gst::ClockTime,
    /// When the caps were last announced downstream.
    last_config: Option<gst::ClockTime>,
}

impl Coding {
    /// Whether `buffer` should be preceded by a downstream force-key-unit event with
    /// all-headers, which makes payloaders (`rtpgstpay`, `rtpfmappay`) send the caps in-band
    /// again so that a receiver that joined late can decode: before every key unit and, with
    /// a `config-interval`, at least that often.
    fn announce(&mut self, buffer: &gst::Buffer) -> bool {
        let pts = buffer.pts();
        let due = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
            || (!self.config_interval.is_zero()
                && match (self.last_config, pts) {
                    (Some(last), Some(pts)) => pts.saturating_sub(last) >= self.config_interval,
                    (None, _) => true,
                    (Some(_), None) => false,
                });
        if due {
            self.last_config = pts.or(self.last_config);
        }
        due
    }
}

#[derive(Default)]
struct State {
    coding: Option<Coding>,
    stats: Stats,
}

pub struct FmapEnc {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

impl FmapEnc {
    /// Counts the units in the statistics and wraps each in a buffer.
    /// Each buffer comes with whether to announce the caps before it ([`Coding::announce`]).
    fn coded_buffers(
        &self,
        coding: &mut Coding,
        stats: &mut Stats,
        units: Vec<CodedUnit>,
    ) -> Vec<(gst::Buffer, bool)> {
        units
            .into_iter()
            .map(|u| {
                stats.units_out += 1;
                stats.bytes_out += u.data.len() as u64;
                stats.sync_units += u64::from(u.kind.is_sync_point());
                let buffer = self.coded_buffer(coding, u);
                let announce = coding.announce(&buffer);
                (buffer, announce)
            })
            .collect()
    }

    fn coded_buffer(&self, coding: &mut Coding, unit: CodedUnit) -> gst::Buffer {
        let delay_ns = coding
            .frame_duration
            .map(|d| d.nseconds() * u64::from(coding.encoder.delay_frames()));
        let dts = match delay_ns {
            Some(delay) => coding.dts.unit_out(delay),
            None => {
                coding.dts.unit_out(0);
                None
            }
        };
        let sync = unit.kind.is_sync_point();
        let mut buffer = gst::Buffer::from_mut_slice(unit.data);
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(unit.pts_ns.map(gst::ClockTime::from_nseconds));
            b.set_dts(dts.map(gst::ClockTime::from_nseconds));
            b.set_duration(coding.frame_duration);
            b.set_offset(unit.frame_index);
            if !sync {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
            if coding.discont {
                b.set_flags(gst::BufferFlags::DISCONT);
                coding.discont = false;
            }
        }
        buffer
    }

    fn push_units(
        &self,
        buffers: Vec<(gst::Buffer, bool)>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        for (b, announce) in buffers {
            if announce {
                let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                    .timestamp(b.pts())
                    .stream_time(b.pts())
                    .running_time(b.pts())
                    .all_headers(true)
                    .build();
                self.srcpad.push_event(event);
            }
            gst::trace!(
                CAT,
                imp = self,
                "pushing unit {:?} ({} bytes)",
                b.pts(),
                b.size()
            );
            self.srcpad.push(b)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Checks what the codec can only find out from data: model-int8 needs 8-bit tensors.
    fn check_dtype(
        &self,
        settings_quantizer: Quantizer,
        frame: &FeatureFrame,
    ) -> Result<(), String> {
        if settings_quantizer != Quantizer::ModelInt8 {
            return Ok(());
        }
        match frame
            .tensors
            .iter()
            .find(|t| matches!(t.data, TensorData::F32(_)))
        {
            Some(t) => Err(format!(
                "quantizer=model-int8 needs the 8-bit feature maps of a quantized model, but tensor \
                 '{}' is f32; choose quantizer=per-tensor, per-channel or calibrated",
                t.name
            )),
            None => Ok(()),
        }
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot map input buffer"));
            gst::FlowError::Error
        })?;
        let mut frame = FeatureFrame::from_raw(&map).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Input buffer is not a raw feature frame: {}", e)
            );
            gst::FlowError::Error
        })?;
        drop(map);
        if let Some(pts) = buffer.pts() {
            frame.pts_ns = Some(pts.nseconds());
        }
        let quantizer = self.settings.lock().unwrap().quantizer;

        let buffers = {
            let mut state = self.state.lock().unwrap();
            let State { coding, stats } = &mut *state;
            let Some(coding) = coding.as_mut() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Got a buffer before caps")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            if !coding.checked_dtype {
                if let Err(msg) = self.check_dtype(quantizer, &frame) {
                    gst::element_imp_error!(self, gst::LibraryError::Settings, ("{}", msg));
                    return Err(gst::FlowError::NotNegotiated);
                }
                coding.checked_dtype = true;
            }
            stats.frames_in += 1;
            stats.raw_bytes_in += buffer.size() as u64;
            coding.dts.frame_in(frame.pts_ns);
            if !coding.transforms.is_empty() {
                frame = transform::forward_frame(&coding.transforms, &frame).map_err(|e| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("Cannot transform frame {}: {}", frame.index, e)
                    );
                    gst::FlowError::Error
                })?;
            }
            let units = coding.encoder.push(&frame).map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Encode,
                    ("Cannot encode frame {}: {}", frame.index, e)
                );
                gst::FlowError::Error
            })?;
            if let Some(rate) = coding.rate.as_mut() {
                let bits: usize = units.iter().map(|u| u.data.len() * 8).sum();
                let intra: usize = units.iter().map(|u| u.intra_bytes * 8).sum();
                let duration = buffer
                    .duration()
                    .or(coding.frame_duration)
                    .map_or(0.1, |d| d.nseconds() as f64 / 1e9);
                let quality = rate.update(bits, intra, duration);
                coding.encoder.set_quality(quality);
                gst::trace!(CAT, imp = self, "{bits} bits, next quality {quality}");
            }
            stats.quality = coding.encoder.quality();
            self.coded_buffers(coding, stats, units)
        };
        self.push_units(buffers)
    }

    /// Flushes the frames an incomplete bidirectional group still holds.
    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let buffers = {
            let mut state = self.state.lock().unwrap();
            let State { coding, stats } = &mut *state;
            let Some(coding) = coding.as_mut() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let units = coding.encoder.finish().map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Encode,
                    ("Cannot finish the last group: {}", e)
                );
                gst::FlowError::Error
            })?;
            self.coded_buffers(coding, stats, units)
        };
        self.push_units(buffers)
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<gst::Caps, String> {
        let s = caps.structure(0).ok_or_else(|| "empty caps".to_string())?;
        let settings = self.settings.lock().unwrap().clone();
        let ranges = match (settings.quantizer, &settings.calibration) {
            (Quantizer::Calibrated, Some(path)) => Some(calibration::load(Path::new(path))?),
            _ => None,
        };
        if settings.quantizer == Quantizer::ModelInt8
            && let Ok(dtype) = s.get::<&str>("dtype")
            && dtype != "u8"
        {
            return Err(format!(
                "quantizer=model-int8 needs the 8-bit feature maps of a quantized model, but the \
                 stream's dtype is {dtype}; choose quantizer=per-tensor, per-channel or calibrated"
            ));
        }
        let weights = match &settings.channel_weights {
            Some(path) => channel_weights(Path::new(path), settings.weight_exponent)?,
            None => Vec::new(),
        };
        let config = settings.to_codec_config(ranges, weights)?;
        let transforms = match &settings.channel_transform {
            Some(path) if config.structure == Structure::Adaptive => {
                common_transform::load(Path::new(path), settings.transform_components as usize)?
            }
            Some(_) => {
                return Err(format!(
                    "channel-transform needs mode=adaptive (mode is {})",
                    settings.mode.to_core().name()
                ));
            }
            None => Vec::new(),
        };
        let encoder = Encoder::new(config.clone()).map_err(|e| e.to_string())?;
        let rate = match (settings.bitrate, config.structure) {
            (0, _) => None,
            (kbps, Structure::Adaptive) => Some(RateController::new(
                f64::from(kbps),
                config.quality,
                QUALITY_RANGE,
                config.key_interval,
            )),
            (_, other) => {
                return Err(format!(
                    "bitrate needs mode=adaptive (mode is {}); set bitrate=0 or mode=adaptive",
                    other.name()
                ));
            }
        };
        let fields = CodecFields {
            codec_version: i32::from(if config.structure == Structure::Adaptive {
                ADAPTIVE_UNIT_VERSION
            } else {
                UNIT_VERSION
            }),
            mode: settings.mode.to_core().name(),
            bits: settings.bits as i32,
            quantizer: settings.quantizer.to_core_name(),
            entropy: settings.entropy.to_core().name(),
            delay_frames: encoder.delay_frames() as i32,
            channel_transform: (!transforms.is_empty())
                .then(|| common_transform::caps_value(&transforms)),
        };
        let out = caps::coded_from_raw(s, &fields);
        let frame_duration = caps::frame_duration(s);
        gst::info!(
            CAT,
            imp = self,
            "configured {:?}, delay {} frames, output caps {}",
            config,
            encoder.delay_frames(),
            out
        );
        self.state.lock().unwrap().coding = Some(Coding {
            config,
            transforms,
            encoder,
            frame_duration,
            dts: DecodeTimestamps::default(),
            discont: true,
            checked_dtype: false,
            rate,
            config_interval: gst::ClockTime::from_seconds(u64::from(settings.config_interval)),
            last_config: None,
        });
        Ok(out)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "handling event {:?}", event);
        match event.view() {
            EventView::Caps(c) => {
                // A new format ends the old stream: emit what the old encoder still holds.
                if self.drain().is_err() {
                    return false;
                }
                match self.set_caps(&c.caps_owned()) {
                    Ok(out) => self.srcpad.push_event(gst::event::Caps::new(&out)),
                    Err(msg) => {
                        gst::element_imp_error!(self, gst::LibraryError::Settings, ("{}", msg));
                        false
                    }
                }
            }
            EventView::Eos(_) => {
                let _ = self.drain();
                let stats = self.state.lock().unwrap().stats;
                gst::info!(CAT, imp = self, "end of stream: {:?}", stats);
                element::post_stats(&*self.obj(), stats.to_structure());
                self.srcpad.push_event(event)
            }
            EventView::FlushStop(_) => {
                let mut state = self.state.lock().unwrap();
                if let Some(coding) = state.coding.as_mut() {
                    match Encoder::new(coding.config.clone()) {
                        Ok(e) => coding.encoder = e,
                        Err(e) => gst::error!(CAT, imp = self, "cannot restart encoder: {e}"),
                    }
                    coding.dts.reset();
                    coding.discont = true;
                }
                drop(state);
                self.srcpad.push_event(event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// A receiver that lost sync asks for a key unit (GstForceKeyUnit, as `rtpbin` turns RTCP
    /// PLI/FIR into): the next frame is coded as a sync unit.
    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        if gst_video::UpstreamForceKeyUnitEvent::parse(&event).is_ok() {
            let mut state = self.state.lock().unwrap();
            let State { coding, stats } = &mut *state;
            if let Some(coding) = coding.as_mut() {
                coding.encoder.force_key();
                stats.key_requests += 1;
                gst::debug!(
                    CAT,
                    imp = self,
                    "key unit requested: the next frame is a key"
                );
            }
            return true;
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let mut upstream = gst::query::Latency::new();
            if !self.sinkpad.peer_query(&mut upstream) {
                return false;
            }
            let (live, min, max) = upstream.result();
            let added = {
                let state = self.state.lock().unwrap();
                state
                    .coding
                    .as_ref()
                    .and_then(|c| {
                        c.frame_duration
                            .map(|d| d * u64::from(c.encoder.delay_frames()))
                    })
                    .unwrap_or(gst::ClockTime::ZERO)
            };
            gst::debug!(
                CAT,
                imp = self,
                "upstream latency {min}..{max:?}, adding {added}"
            );
            q.set(live, min + added, max.map(|m| m + added));
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FmapEnc {
    const NAME: &'static str = "GstFmapEnc";
    type Type = super::FmapEnc;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = element::sink_pad(
            &klass.pad_template("sink").unwrap(),
            FmapEnc::chain,
            FmapEnc::sink_event,
        );
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap())
            .query_function(|pad, parent, query| {
                FmapEnc::catch_panic_pad_function(parent, || false, |imp| imp.src_query(pad, query))
            })
            .event_function(|pad, parent, event| {
                FmapEnc::catch_panic_pad_function(parent, || false, |imp| imp.src_event(pad, event))
            })
            .build();
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
        }
    }
}

impl ObjectImpl for FmapEnc {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecEnum::builder_with_default("mode", d.mode)
                    .nick("Mode")
                    .blurb(
                        "Frame structure: intra, uni, bi, closed-loop (the thesis's modes and \
                         their closed-loop extension) or adaptive (fmap's own, the default)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("key-interval")
                    .nick("Key interval")
                    .blurb(
                        "closed-loop and adaptive: frames from one key frame to the next (1 = \
                         every frame a key); with gradual-refresh, the frames over which every \
                         slice is refreshed once",
                    )
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(d.key_interval)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("dead-zone")
                    .nick("Dead zone")
                    .blurb(
                        "closed-loop: residual codes with magnitude at most this are sent as zero",
                    )
                    .maximum(u32::from(u16::MAX))
                    .default_value(d.dead_zone)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("bits")
                    .nick("Bits")
                    .blurb("thesis modes and closed-loop: quantizer bits per value")
                    .minimum(u32::from(codec_core::quant::MIN_BITS))
                    .maximum(u32::from(codec_core::quant::MAX_BITS))
                    .default_value(d.bits)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("block-size")
                    .nick("Block size")
                    .blurb(
                        "Motion block edge in feature-map cells: 4, 8 or 16 (adaptive: also the \
                         grid of its block decisions)",
                    )
                    .minimum(*codec_core::motion::BLOCK_SIZES.iter().min().unwrap_or(&4) as u32)
                    .maximum(*codec_core::motion::BLOCK_SIZES.iter().max().unwrap_or(&16) as u32)
                    .default_value(d.block_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("search", d.search)
                    .nick("Search")
                    .blurb("Block-matching search: tss (three-step) or full")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("search-range")
                    .nick("Search range")
                    .blurb("Largest motion vector component, in cells (0: no motion search)")
                    .minimum(0)
                    .maximum(u32::from(codec_core::motion::MAX_SEARCH_RANGE))
                    .default_value(d.search_range)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mv-sharing", d.mv_sharing)
                    .nick("Motion vector sharing")
                    .blurb("channel: one motion field per channel; shared: one per tensor")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("quantizer", d.quantizer)
                    .nick("Quantizer")
                    .blurb(
                        "per-tensor, per-channel (min/max of each frame), calibrated (ranges \
                         from the calibration file) or model-int8 (the model's own 8-bit \
                         parameters; needs u8 feature maps)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("entropy", d.entropy)
                    .nick("Entropy coder")
                    .blurb("none, huffman, zvc, zvc-huffman or rle")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("calibration")
                    .nick("Calibration file")
                    .blurb(
                        "JSON file {\"<tensor>\": [min, max], ...} with the ranges used by \
                         quantizer=calibrated",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("channel-weights")
                    .nick("Channel weights")
                    .blurb(
                        "adaptive: a channel-sensitivity file made by fmap-calibrate for this \
                         model and split (task-aware allocation: each channel's step grows as \
                         the back network's output reacts less to noise in it; one byte per \
                         channel in every unit). Empty: one step per tensor",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("channel-transform")
                    .nick("Channel transform")
                    .blurb(
                        "adaptive: a calibration file made by fmap-calibrate --klt for this model \
                         and split; each frame's channels are coded as their transform-components \
                         strongest principal components (KLT). fmapdec needs the same file (the \
                         caps name it by digest). Empty: channels as they are",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("transform-components")
                    .nick("Transform components")
                    .blurb(
                        "adaptive, with channel-transform: principal components kept \
                         (0 = as many as channels)",
                    )
                    .maximum(65535)
                    .default_value(d.transform_components)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("weight-exponent")
                    .nick("Weight exponent")
                    .blurb(
                        "adaptive, with channel-weights: a channel's step is proportional to \
                         its sensitivity to the power of minus this (0.5 minimizes the output \
                         distortion at a given rate; 0 = uniform steps)",
                    )
                    .minimum(0.0)
                    .maximum(2.0)
                    .default_value(d.weight_exponent)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("quality")
                    .nick("Quality")
                    .blurb(
                        "adaptive: quantizer step as a fraction of each tensor's standard \
                         deviation (smaller = finer: more bits, higher accuracy)",
                    )
                    .minimum(*codec_core::codec::QUALITY_RANGE.start())
                    .maximum(*codec_core::codec::QUALITY_RANGE.end())
                    .default_value(d.quality)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("key-step-ratio")
                    .nick("Key step ratio")
                    .blurb(
                        "adaptive: step of key units and refresh slices as a fraction of the \
                         predicted step (smaller = finer keys: what they code persists wherever \
                         the scene stays still; 1 = the same step)",
                    )
                    .minimum(*codec_core::codec::KEY_STEP_RATIO_RANGE.start())
                    .maximum(*codec_core::codec::KEY_STEP_RATIO_RANGE.end())
                    .default_value(d.key_step_ratio)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("rounding")
                    .nick("Rounding")
                    .blurb(
                        "adaptive: rounding offset of predicted residuals (0.5 = nearest; \
                         smaller favours zero residuals)",
                    )
                    .minimum(0.0)
                    .maximum(0.5)
                    .default_value(d.rounding)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("lambda")
                    .nick("Lambda")
                    .blurb(
                        "adaptive: rate-distortion multiplier of block decisions, in squared \
                         steps per bit (0 = code every nonzero block)",
                    )
                    .minimum(0.0)
                    .maximum(1000.0)
                    .default_value(d.lambda)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("slice-channels")
                    .nick("Channels per slice")
                    .blurb(&format!(
                        "adaptive: channels of a tensor per slice, the part of a unit that \
                         decodes on its own, so that a lost packet (rtpfmappay) costs one slice \
                         rather than the unit; 0 = one slice per tensor. Each slice costs \
                         {} bytes of header and restarts its contexts (64 channels: +0.7% rate \
                         on NanoDet)",
                        codec_core::codec::SLICE_OVERHEAD
                    ))
                    .maximum(u32::from(u16::MAX))
                    .default_value(d.slice_channels)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("gradual-refresh")
                    .nick("Gradual refresh")
                    .blurb(
                        "adaptive: refresh each slice once per key-interval frames, spread over \
                         the interval, instead of a key unit every key-interval frames: the same \
                         rate (+0.1% on NanoDet at key-interval 100) without bursts, and a \
                         receiver that lost a slice or joined late recovers within key-interval \
                         frames without asking. Key units then only start the stream, follow a \
                         layout change or answer a force-key-unit request",
                    )
                    .default_value(d.gradual_refresh)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("fractional-motion")
                    .nick("Fractional motion")
                    .blurb(
                        "adaptive: motion vectors in quarters of a feature, predicted by 8-tap \
                         interpolation, instead of whole features: a moving camera shifts the \
                         feature map by a fraction of a feature per frame (on a panning clip a \
                         third fewer bits at equal accuracy; about neutral on a static camera). \
                         Needs search-range <= 31",
                    )
                    .default_value(d.fractional_motion)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("resilient")
                    .nick("Resilient")
                    .blurb(
                        "adaptive: code predicted units with contexts that do not read the \
                         reference, so that after a lost slice the receiver keeps decoding its \
                         channels (off by what was lost until their refresh) instead of holding \
                         them concealed. Costs about 13% more bits; on recorded NanoDet maps with \
                         5% of slices lost it keeps 7.6 dB feature SNR instead of 5.4 (10.4 \
                         without loss)",
                    )
                    .default_value(d.resilient)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("config-interval")
                    .nick("Config interval")
                    .blurb(
                        "seconds between two announcements of the caps downstream (a \
                         force-key-unit event with all-headers, on which rtpgstpay and \
                         rtpfmappay send the caps in-band again), so that a receiver that joins \
                         late can decode; they also precede every key unit. 0 = with key units \
                         only",
                    )
                    .maximum(3600)
                    .default_value(d.config_interval)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("bitrate")
                    .nick("Bit rate")
                    .blurb(
                        "adaptive: target rate in kbit/s; the quality of each frame follows it \
                         (0 = constant quality, set by the quality property)",
                    )
                    .maximum(10_000_000)
                    .default_value(d.bitrate)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "frames, units, sync-units, bytes (coded), raw-bytes (input), quality \
                         (adaptive: in effect), key-requests (force-key-unit events answered)",
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
            "mode" => s.mode = value.get::<Mode>().expect("type checked upstream"),
            "key-interval" => s.key_interval = value.get().expect("type checked upstream"),
            "dead-zone" => s.dead_zone = value.get().expect("type checked upstream"),
            "bits" => s.bits = value.get().expect("type checked upstream"),
            "block-size" => s.block_size = value.get().expect("type checked upstream"),
            "search" => s.search = value.get::<Search>().expect("type checked upstream"),
            "search-range" => s.search_range = value.get().expect("type checked upstream"),
            "mv-sharing" => s.mv_sharing = value.get::<MvSharing>().expect("type checked upstream"),
            "quantizer" => s.quantizer = value.get::<Quantizer>().expect("type checked upstream"),
            "entropy" => s.entropy = value.get::<Entropy>().expect("type checked upstream"),
            "quality" => s.quality = value.get().expect("type checked upstream"),
            "rounding" => s.rounding = value.get().expect("type checked upstream"),
            "key-step-ratio" => s.key_step_ratio = value.get().expect("type checked upstream"),
            "lambda" => s.lambda = value.get().expect("type checked upstream"),
            "slice-channels" => s.slice_channels = value.get().expect("type checked upstream"),
            "gradual-refresh" => s.gradual_refresh = value.get().expect("type checked upstream"),
            "fractional-motion" => {
                s.fractional_motion = value.get().expect("type checked upstream")
            }
            "config-interval" => s.config_interval = value.get().expect("type checked upstream"),
            "resilient" => s.resilient = value.get().expect("type checked upstream"),
            "bitrate" => s.bitrate = value.get().expect("type checked upstream"),
            "calibration" => {
                s.calibration = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty())
            }
            "channel-weights" => {
                s.channel_weights = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty())
            }
            "weight-exponent" => s.weight_exponent = value.get().expect("type checked upstream"),
            "channel-transform" => {
                s.channel_transform = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty())
            }
            "transform-components" => {
                s.transform_components = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "set {} = {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.state.lock().unwrap().stats.to_structure().to_value();
        }
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "mode" => s.mode.to_value(),
            "key-interval" => s.key_interval.to_value(),
            "dead-zone" => s.dead_zone.to_value(),
            "bits" => s.bits.to_value(),
            "block-size" => s.block_size.to_value(),
            "search" => s.search.to_value(),
            "search-range" => s.search_range.to_value(),
            "mv-sharing" => s.mv_sharing.to_value(),
            "quantizer" => s.quantizer.to_value(),
            "entropy" => s.entropy.to_value(),
            "quality" => s.quality.to_value(),
            "rounding" => s.rounding.to_value(),
            "key-step-ratio" => s.key_step_ratio.to_value(),
            "lambda" => s.lambda.to_value(),
            "slice-channels" => s.slice_channels.to_value(),
            "gradual-refresh" => s.gradual_refresh.to_value(),
            "fractional-motion" => s.fractional_motion.to_value(),
            "config-interval" => s.config_interval.to_value(),
            "resilient" => s.resilient.to_value(),
            "bitrate" => s.bitrate.to_value(),
            "calibration" => s.calibration.to_value(),
            "channel-weights" => s.channel_weights.to_value(),
            "weight-exponent" => s.weight_exponent.to_value(),
            "channel-transform" => s.channel_transform.to_value(),
            "transform-components" => s.transform_components.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for FmapEnc {}

impl ElementImpl for FmapEnc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Feature map encoder",
                "Codec/Encoder/Tensor",
                "Compresses raw feature frames (application/x-fmap) into coded units \
                 (application/x-fmap-coded): quantization, block motion prediction, entropy coding",
                "fmap developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            element::sink_and_src_templates(
                &gst::Caps::new_empty_simple(caps::RAW_MEDIA_TYPE),
                &gst::Caps::new_empty_simple(caps::CODED_MEDIA_TYPE),
            )
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            *self.state.lock().unwrap() = State::default();
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            self.state.lock().unwrap().coding = None;
        }
        Ok(ret)
    }
}

/// The step multipliers of a channel-sensitivity file (`fmap-calibrate`), per tensor.
fn channel_weights(path: &Path, exponent: f32) -> Result<Vec<ChannelWeights>, String> {
    let calibration =
        fmap_infer::calibration::Calibration::load(path).map_err(|e| e.to_string())?;
    Ok(calibration
        .tensors
        .iter()
        .map(|t| ChannelWeights {
            tensor: t.name.clone(),
            weights: fmap_infer::calibration::channel_weights(&t.sensitivity, f64::from(exponent)),
        })
        .collect())
}
