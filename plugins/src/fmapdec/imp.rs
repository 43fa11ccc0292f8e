use std::sync::{LazyLock, Mutex};

use codec_core::FeatureFrame;
use codec_core::codec::Decoder;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::key_requests::KeyRequests;
use crate::common::caps;
use crate::common::element;
use crate::common::transform as common_transform;
use codec_core::transform::{self, ChannelTransform};
use std::path::Path;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "fmapdec",
        gst::DebugColorFlags::empty(),
        Some("fmap feature-map decoder"),
    )
});

/// Counters reported by the `stats` property and the `fmapdec-stats` message at EOS.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    units_in: u64,
    bytes_in: u64,
    frames_out: u64,
    units_dropped: u64,
    disconts: u64,
    key_requests: u64,
    /// Frames out with concealed features (the CORRUPTED flag), repeated ones included.
    concealed: u64,
    /// Frames repeated in place of units that never arrived or could not be decoded.
    repeated: u64,
    /// Slices missing or damaged in the units that arrived.
    lost_slices: u64,
}

impl Stats {
    fn to_structure(self) -> gst::Structure {
        gst::Structure::builder("fmapdec-stats")
            .field("units", self.units_in)
            .field("bytes", self.bytes_in)
            .field("frames", self.frames_out)
            .field("dropped", self.units_dropped)
            .field("disconts", self.disconts)
            .field("key-requests", self.key_requests)
            .field("concealed", self.concealed)
            .field("repeated", self.repeated)
            .field("lost-slices", self.lost_slices)
            .build()
    }
}

struct State {
    decoder: Decoder,
    frame_duration: Option<gst::ClockTime>,
    /// Set after a loss: the next frame out carries DISCONT.
    discont: bool,
    stats: Stats,
    /// When key units are requested upstream.
    key_requests: KeyRequests,
    /// The last frame out: what a lost frame is concealed with.
    last: Option<FeatureFrame>,
    /// The channel transform the stream was coded with (caps), inverted on output.
    transforms: Vec<ChannelTransform>,
    /// The caps field and file `transforms` were loaded for: caps announced again (every
    /// `config-interval`) with the same field do not read the file again.
    transform_source: Option<(String, Option<String>)>,
}

/// Most frames repeated for one gap in the frame indices (a longer gap is a restart of the
/// sender, not a loss).
const MAX_REPEATED: u64 = 300;
/// Default of the `conceal` property.
const DEFAULT_CONCEAL: bool = true;

impl State {
    fn new(conceal: bool) -> Self {
        let mut decoder = Decoder::new();
        decoder.set_concealment(conceal);
        State {
            decoder,
            frame_duration: None,
            discont: true,
            stats: Stats::default(),
            key_requests: KeyRequests::default(),
            last: None,
            transforms: Vec::new(),
            transform_source: None,
        }
    }

    /// Whether a key unit may be requested now ([`KeyRequests`]); counts the request.
    fn key_request_due(&mut self) -> bool {
        let due = self.key_requests.due(std::time::Instant::now());
        self.stats.key_requests += u64::from(due);
        due
    }

    /// Copies of the last frame for the `count` frames after it, timestamped between it and
    /// `next_pts_ns` (or a frame duration apart).
    fn repeats(&mut self, count: u64, next_pts_ns: Option<u64>) -> Vec<FeatureFrame> {
        let Some(last) = &self.last else {
            return Vec::new();
        };
        let count = count.min(MAX_REPEATED);
        let spacing = match (last.pts_ns, next_pts_ns) {
            (Some(a), Some(b)) if b > a => Some((b - a) / (count + 1)),
            _ => self.frame_duration.map(|d| d.nseconds()),
        };
        self.stats.repeated += count;
        (1..=count)
            .map(|k| {
                let mut f = last.clone();
                f.index = last.index + k;
                f.pts_ns = last.pts_ns.zip(spacing).map(|(p, s)| p + k * s);
                f
            })
            .collect()
    }
}

pub struct FmapDec {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    state: Mutex<State>,
    conceal: Mutex<bool>,
    /// `channel-transform`: the calibration file of the sender's channel transform.
    channel_transform: Mutex<Option<String>>,
}

impl FmapDec {
    /// Output buffers for decoded `frames`; `concealed` marks them CORRUPTED. With concealment
    /// on, a gap in the frame indices before a frame is filled with copies of the last frame,
    /// marked too, so that every frame the sender coded comes out.
    fn frame_buffers(
        &self,
        state: &mut State,
        frames: Vec<FeatureFrame>,
        concealed: bool,
    ) -> Vec<gst::Buffer> {
        let mut out = Vec::with_capacity(frames.len());
        let conceal = *self.conceal.lock().unwrap();
        for frame in frames {
            let gap = state
                .last
                .as_ref()
                .map_or(0, |l| frame.index.saturating_sub(l.index + 1));
            if conceal && gap > 0 {
                gst::debug!(
                    CAT,
                    imp = self,
                    "frames {}..{} lost: repeating frame {}",
                    frame.index - gap,
                    frame.index,
                    frame.index - gap - 1
                );
                let repeats = state.repeats(gap, frame.pts_ns);
                out.extend(self.frame_buffers_of(state, repeats, true));
            }
            out.extend(self.frame_buffers_of(state, vec![frame], concealed));
        }
        out
    }

    /// Output buffers for `frames` as they are (no gap filling); `concealed` marks them
    /// CORRUPTED. Each becomes the last frame, what a later loss is concealed with.
    fn frame_buffers_of(
        &self,
        state: &mut State,
        frames: Vec<FeatureFrame>,
        concealed: bool,
    ) -> Vec<gst::Buffer> {
        let mut out = Vec::with_capacity(frames.len());
        for frame in frames {
            let raw = match transform::inverse_frame(&state.transforms, &frame)
                .map_err(|e| e.to_string())
                .and_then(|f| f.to_raw().map_err(|e| e.to_string()))
            {
                Ok(raw) => raw,
                Err(e) => {
                    // The decoder validated the frame: a codec bug, or a stream whose tensors
                    // do not fit its channel transform. Drop, go on.
                    gst::warning!(
                        CAT,
                        imp = self,
                        "decoded frame {} is invalid: {e}",
                        frame.index
                    );
                    state.stats.units_dropped += 1;
                    state.discont = true;
                    continue;
                }
            };
            let mut buffer = gst::Buffer::from_mut_slice(raw);
            {
                let b = buffer.get_mut().expect("new buffer is writable");
                b.set_pts(frame.pts_ns.map(gst::ClockTime::from_nseconds));
                b.set_duration(state.frame_duration);
                b.set_offset(frame.index);
                if state.discont {
                    b.set_flags(gst::BufferFlags::DISCONT);
                    state.discont = false;
                }
                if concealed {
                    b.set_flags(gst::BufferFlags::CORRUPTED);
                }
            }
            state.stats.frames_out += 1;
            state.stats.concealed += u64::from(concealed);
            state.last = Some(frame);
            out.push(buffer);
        }
        out
    }

    fn push_frames(&self, buffers: Vec<gst::Buffer>) -> Result<gst::FlowSuccess, gst::FlowError> {
        for b in buffers {
            gst::trace!(
                CAT,
                imp = self,
                "pushing frame {} pts {:?}",
                b.offset(),
                b.pts()
            );
            self.srcpad.push(b)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut request_key = false;
        let buffers = {
            let mut state = self.state.lock().unwrap();
            state.stats.units_in += 1;
            state.stats.bytes_in += buffer.size() as u64;
            if buffer.flags().contains(gst::BufferFlags::DISCONT) && state.stats.units_in > 1 {
                // RTP lost packets before this unit: a unit may be missing, so the decoder's
                // reference checks will decide which of the next units are still decodable.
                state.stats.disconts += 1;
                state.discont = true;
                gst::debug!(
                    CAT,
                    imp = self,
                    "discontinuity before unit {:?}",
                    buffer.pts()
                );
            }
            let map = buffer.map_readable().map_err(|_| {
                gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot map input"));
                gst::FlowError::Error
            })?;
            match state.decoder.decode(&map) {
                Ok(frames) => {
                    let (channels, slices) = state.decoder.concealed();
                    state.stats.lost_slices += slices as u64;
                    if channels > 0 {
                        gst::debug!(
                            CAT,
                            imp = self,
                            "unit {:?}: {channels} channels concealed ({slices} slices missing)",
                            buffer.pts()
                        );
                        request_key |= state.key_request_due();
                    } else if !frames.is_empty() {
                        state.key_requests.in_sync();
                    }
                    self.frame_buffers(&mut state, frames, channels > 0)
                }
                Err(e) => {
                    state.stats.units_dropped += 1;
                    // The decoder's state is unchanged by a failed unit; units that needed
                    // this one fail with MissingReference until the next sync point.
                    state.discont = true;
                    gst::warning!(
                        CAT,
                        imp = self,
                        "dropped coded unit {:?} ({} bytes): {e}",
                        buffer.pts(),
                        map.len()
                    );
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decode,
                        ("Dropped a coded unit: {}", e),
                        [
                            "unit pts {:?}, {} bytes; the decoder resumes at the next anchor",
                            buffer.pts(),
                            map.len()
                        ]
                    );
                    request_key |= state.key_request_due();
                    if *self.conceal.lock().unwrap() {
                        // The frame still comes out: the last one again, marked concealed.
                        let next = buffer.pts().map(|t| t.nseconds());
                        let repeats = state.repeats(1, next);
                        self.frame_buffers_of(&mut state, repeats, true)
                    } else {
                        Vec::new()
                    }
                }
            }
        };
        if request_key {
            // Upstream, as video decoders do: an encoder in the same pipeline answers it, and
            // rtpbin turns it into RTCP PLI/FIR for a remote one.
            gst::debug!(CAT, imp = self, "lost sync: requesting a key unit upstream");
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            self.sinkpad.push_event(event);
        }
        self.push_frames(buffers)
    }

    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let buffers = {
            let mut state = self.state.lock().unwrap();
            let frames = state.decoder.finish();
            self.frame_buffers(&mut state, frames, false)
        };
        self.push_frames(buffers)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "handling event {:?}", event);
        match event.view() {
            EventView::Caps(c) => {
                let caps = c.caps_owned();
                let Some(s) = caps.structure(0) else {
                    return false;
                };
                let path = self.channel_transform.lock().unwrap().clone();
                let field = s.get::<&str>(caps::FIELD_CHANNEL_TRANSFORM).ok();
                let source = field.map(|v| (v.to_string(), path.clone()));
                let loaded = {
                    let state = self.state.lock().unwrap();
                    (source.is_some() && state.transform_source == source)
                        .then(|| state.transforms.clone())
                };
                let transforms = match (field, &path) {
                    _ if let Some(t) = loaded => Ok(t),
                    (Some(value), _) => {
                        common_transform::for_stream(value, path.as_deref().map(Path::new))
                    }
                    (None, None) => Ok(Vec::new()),
                    (None, Some(p)) => Err(common_transform::unexpected(p)),
                };
                let transforms = match transforms {
                    Ok(t) => t,
                    Err(e) => {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Format,
                            ("Cannot decode this stream: {}", e)
                        );
                        return false;
                    }
                };
                let out = caps::raw_from_coded(s);
                let mut state = self.state.lock().unwrap();
                state.frame_duration = caps::frame_duration(s);
                state.transforms = transforms;
                state.transform_source = source;
                drop(state);
                gst::info!(CAT, imp = self, "output caps {out}");
                self.srcpad.push_event(gst::event::Caps::new(&out))
            }
            EventView::Gap(_) => {
                // rtpjitterbuffer/depayloaders announce lost packets this way.
                let mut state = self.state.lock().unwrap();
                state.discont = true;
                state.stats.disconts += 1;
                drop(state);
                self.srcpad.push_event(event)
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
                state.decoder.reset();
                state.last = None;
                state.discont = true;
                drop(state);
                self.srcpad.push_event(event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FmapDec {
    const NAME: &'static str = "GstFmapDec";
    type Type = super::FmapDec;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = element::sink_pad(
            &klass.pad_template("sink").unwrap(),
            FmapDec::chain,
            FmapDec::sink_event,
        );
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap()).build();
        Self {
            sinkpad,
            srcpad,
            state: Mutex::new(State::new(DEFAULT_CONCEAL)),
            conceal: Mutex::new(DEFAULT_CONCEAL),
            channel_transform: Mutex::new(None),
        }
    }
}

impl ObjectImpl for FmapDec {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "units (received), bytes, frames (out), dropped (units that could \
                         not be decoded), disconts (losses signalled by RTP), key-requests \
                         (force-key-unit events sent upstream after losing sync or concealing, \
                         at most one per second, and one per 3 s while unanswered), concealed (frames out with concealed \
                         features), repeated (frames repeated for lost units), lost-slices",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecBoolean::builder("conceal")
                    .nick("Conceal losses")
                    .blurb(
                        "Output a frame for every frame the sender coded, whatever the network \
                         lost: channels of lost slices come from the previous frame until a key \
                         unit, a lost unit repeats the previous frame, and such frames carry the \
                         CORRUPTED flag (splitinfer-back writes \"concealed\":true). Off: units \
                         that cannot be decoded exactly are dropped until the next key unit",
                    )
                    .default_value(DEFAULT_CONCEAL)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("channel-transform")
                    .nick("Channel transform")
                    .blurb(
                        "the calibration file (fmap-calibrate --klt) the sender's fmapenc \
                         channel-transform used; needed, and checked against the digest in the \
                         caps, when the stream was coded with one",
                    )
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "conceal" => {
                let conceal = value.get().expect("type checked upstream");
                *self.conceal.lock().unwrap() = conceal;
                self.state.lock().unwrap().decoder.set_concealment(conceal);
            }
            "channel-transform" => {
                *self.channel_transform.lock().unwrap() = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty());
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => self.state.lock().unwrap().stats.to_structure().to_value(),
            "conceal" => self.conceal.lock().unwrap().to_value(),
            "channel-transform" => self.channel_transform.lock().unwrap().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for FmapDec {}

impl ElementImpl for FmapDec {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Feature map decoder",
                "Codec/Decoder/Tensor",
                "Decodes coded units (application/x-fmap-coded) into raw feature frames \
                 (application/x-fmap) in display order; conceals lost slices and units, and \
                 asks upstream for a key unit to resynchronize",
                "fmap developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            element::sink_and_src_templates(
                &gst::Caps::new_empty_simple(caps::CODED_MEDIA_TYPE),
                &gst::Caps::new_empty_simple(caps::RAW_MEDIA_TYPE),
            )
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            *self.state.lock().unwrap() = State::new(*self.conceal.lock().unwrap());
        }
        self.parent_change_state(transition)
    }
}
