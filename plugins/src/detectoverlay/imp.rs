//! `detectoverlay`: a GstAggregator with a `video` and a `detections` sink pad.
//!
//! Pairing rule (see `detections::pair`): for the video frame at the head of the `video` pad,
//! detections buffers that are older than the frame (by more than half a frame duration) are
//! dropped, one within half a frame duration is attached, and one for a later frame stays
//! queued. The frame leaves without detections when the next detections buffer is for a later
//! frame, when the `detections` pad is at EOS, or, in a live pipeline, when the aggregator
//! times out (frame running time + `latency`). Video EOS ends the stream even while the
//! `detections` pad is still open.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use super::detections::{self, Pairing};
use super::render::{self, Canvas, I420Canvas, PixelBox, PixelLayout, Surface};
use fmap_infer::decode::Detection;
use fmap_infer::detection::DetectionsLine;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "detectoverlay",
        gst::DebugColorFlags::empty(),
        Some("Detection overlay"),
    )
});

const DEFAULT_DRAW: bool = true;

/// Formats the overlay draws into: packed RGB, and I420.
pub const VIDEO_FORMATS: [gst_video::VideoFormat; 11] = [
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::I420,
];

use crate::common::caps::DETECTIONS_MEDIA_TYPE;

#[derive(Debug, Clone, Copy)]
struct Settings {
    draw: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { draw: DEFAULT_DRAW }
    }
}

#[derive(Default)]
struct State {
    info: Option<gst_video::VideoInfo>,
    frames_out: u64,
    frames_with_detections: u64,
    bad_lines: u64,
}

pub struct DetectOverlay {
    video_pad: gst_base::AggregatorPad,
    detections_pad: gst_base::AggregatorPad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for DetectOverlay {
    const NAME: &'static str = "GstFmapDetectOverlay";
    type Type = super::DetectOverlay;
    type ParentType = gst_base::Aggregator;

    fn with_class(klass: &Self::Class) -> Self {
        let video_templ = klass.pad_template("video").expect("video pad template");
        let detections_templ = klass
            .pad_template("detections")
            .expect("detections pad template");
        DetectOverlay {
            video_pad: gst::PadBuilder::<gst_base::AggregatorPad>::from_template(&video_templ)
                .build(),
            detections_pad: gst::PadBuilder::<gst_base::AggregatorPad>::from_template(
                &detections_templ,
            )
            .build(),
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::default()),
        }
    }
}

impl ObjectImpl for DetectOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoolean::builder("draw")
                    .nick("Draw")
                    .blurb(
                        "Draw a 2-pixel box and a 'label score%' tag per detection into the \
                         frame; when false only GstVideoRegionOfInterestMeta is attached",
                    )
                    .default_value(DEFAULT_DRAW)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "draw" => {
                let draw = value.get().expect("type checked upstream");
                gst::info!(CAT, imp = self, "draw = {draw}");
                self.settings.lock().unwrap().draw = draw;
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "draw" => self.settings.lock().unwrap().draw.to_value(),
            _ => unimplemented!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.video_pad).expect("adding the video pad");
        obj.add_pad(&self.detections_pad)
            .expect("adding the detections pad");
    }
}

impl GstObjectImpl for DetectOverlay {}

impl ElementImpl for DetectOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection overlay",
                "Filter/Effect/Video",
                "Pairs application/x-detections lines with video frames by timestamp, attaches \
                 one GstVideoRegionOfInterestMeta per detection and draws labelled boxes",
                "fmap developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let video_caps = gst_video::VideoCapsBuilder::new()
                .format_list(VIDEO_FORMATS)
                .build();
            let detections_caps = gst::Caps::new_empty_simple(DETECTIONS_MEDIA_TYPE);
            vec![
                gst::PadTemplate::with_gtype(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &video_caps,
                    gst_base::AggregatorPad::static_type(),
                )
                .unwrap(),
                gst::PadTemplate::with_gtype(
                    "video",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &video_caps,
                    gst_base::AggregatorPad::static_type(),
                )
                .unwrap(),
                gst::PadTemplate::with_gtype(
                    "detections",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &detections_caps,
                    gst_base::AggregatorPad::static_type(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

/// Running time of `pts` in `pad`'s segment.
fn running_time(pad: &gst_base::AggregatorPad, pts: Option<gst::ClockTime>) -> Option<u64> {
    let pts = pts?;
    let segment = pad.segment();
    let segment = segment.downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(pts).map(|t| t.nseconds())
}

/// Byte positions of the colour components of a packed RGB format.
fn pixel_layout(info: &gst_video::VideoInfo) -> Option<PixelLayout> {
    let finfo = info.format_info();
    if !finfo.is_rgb() || finfo.n_planes() != 1 || finfo.bits() != 8 {
        return None;
    }
    let offsets = finfo.poffset();
    Some(PixelLayout {
        bytes_per_pixel: *finfo.pixel_stride().first()? as usize,
        r: offsets[0] as usize,
        g: offsets[1] as usize,
        b: offsets[2] as usize,
        a: finfo.has_alpha().then(|| offsets[3] as usize),
    })
}

/// Draws labelled boxes into a mapped frame of any supported format.
fn draw_into(
    buf: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
    labels: &[(PixelBox, String, render::Rgb)],
) -> Result<(), String> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let scale = 1 + h / 720;
    let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, info)
        .map_err(|e| format!("cannot map the frame: {e}"))?;
    let strides: Vec<usize> = frame.plane_stride().iter().map(|&s| s as usize).collect();
    let draw = |surface: &mut dyn Surface| {
        for (b, text, colour) in labels {
            surface.draw_labelled_box(*b, text, *colour, scale);
        }
    };
    if info.format() == gst_video::VideoFormat::I420 {
        let [y, u, v, _] = frame.planes_data_mut();
        let mut canvas = I420Canvas::new([y, u, v], [strides[0], strides[1], strides[2]], w, h)
            .ok_or("I420 planes smaller than the caps say")?;
        draw(&mut canvas);
    } else {
        let layout =
            pixel_layout(info).ok_or_else(|| format!("cannot draw into {:?}", info.format()))?;
        let data = frame
            .plane_data_mut(0)
            .map_err(|e| format!("cannot map the plane: {e}"))?;
        let mut canvas = Canvas::new(data, strides[0], w, h, layout)
            .ok_or("frame plane smaller than the caps say")?;
        draw(&mut canvas);
    }
    Ok(())
}

impl DetectOverlay {
    /// Half a frame duration, from the buffer or the negotiated frame rate; 0 when unknown
    /// (then only exact timestamps pair).
    fn tolerance(&self, video: &gst::BufferRef) -> u64 {
        if let Some(d) = video.duration() {
            return d.nseconds() / 2;
        }
        let state = self.state.lock().unwrap();
        match state.info.as_ref().map(|i| i.fps()) {
            Some(fps) if fps.numer() > 0 && fps.denom() > 0 => gst::ClockTime::SECOND
                .mul_div_floor(fps.denom() as u64, fps.numer() as u64)
                .map(|d| d.nseconds() / 2)
                .unwrap_or(0),
            _ => 0,
        }
    }

    fn parse_detections(&self, buffer: &gst::Buffer) -> Option<DetectionsLine> {
        let map = match buffer.map_readable() {
            Ok(m) => m,
            Err(_) => {
                gst::warning!(CAT, imp = self, "cannot map detections buffer");
                return None;
            }
        };
        match detections::parse_line(&map) {
            Ok(line) => line,
            Err(err) => {
                let first = {
                    let mut state = self.state.lock().unwrap();
                    state.bad_lines += 1;
                    state.bad_lines == 1
                };
                if first {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decode,
                        ("Ignoring unreadable detections: {err}"),
                        ["expected one JSON line per buffer: \
                             {{\"pts_ns\":..,\"frame\":..,\"width\":..,\"height\":..,\"detections\":[..]}}"]
                    );
                } else {
                    gst::debug!(CAT, imp = self, "ignoring unreadable detections: {err}");
                }
                None
            }
        }
    }

    /// Attaches metas and, if enabled, draws the boxes. Frames without detections are
    /// returned untouched.
    fn overlay(&self, mut buffer: gst::Buffer, line: &DetectionsLine) -> gst::Buffer {
        if line.detections.is_empty() {
            return buffer;
        }
        let Some(info) = self.state.lock().unwrap().info.clone() else {
            gst::warning!(
                CAT,
                imp = self,
                "no video caps yet, detections not attached"
            );
            return buffer;
        };
        let draw = self.settings.lock().unwrap().draw;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let boxes: Vec<(PixelBox, &Detection)> = line
            .detections
            .iter()
            .filter_map(|d| {
                PixelBox::from_float(
                    detections::scaled_box(d.bbox, (line.width, line.height), (w, h)),
                    w,
                    h,
                )
                .map(|b| (b, d))
            })
            .collect();
        if boxes.is_empty() {
            return buffer;
        }
        let buf = buffer.make_mut();
        for (b, d) in &boxes {
            let mut meta = gst_video::VideoRegionOfInterestMeta::add(buf, &d.label, b.rect());
            meta.add_param(
                gst::Structure::builder("detection")
                    .field("label", d.label.as_str())
                    .field("class-id", d.class_id)
                    .field("confidence", f64::from(d.score))
                    .build(),
            );
        }
        if draw {
            let buf = buffer.make_mut();
            let labels: Vec<(PixelBox, String, render::Rgb)> = boxes
                .iter()
                .map(|(b, d)| {
                    (
                        *b,
                        render::label_text(&d.label, f64::from(d.score)),
                        render::class_colour(d.class_id),
                    )
                })
                .collect();
            if let Err(err) = draw_into(buf, &info, &labels) {
                gst::warning!(CAT, imp = self, "not drawn: {err}");
            }
        }
        buffer
    }
}

impl AggregatorImpl for DetectOverlay {
    fn aggregate(&self, timeout: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(video) = self.video_pad.peek_buffer() else {
            if self.video_pad.is_eos() {
                gst::debug!(CAT, imp = self, "video is at EOS");
                return Err(gst::FlowError::Eos);
            }
            return Err(gst_base::AGGREGATOR_FLOW_NEED_DATA);
        };
        let video_time = running_time(&self.video_pad, video.pts());
        let tolerance = self.tolerance(&video);

        // The detections buffer closest to this frame, with its distance in ns.
        let mut matched: Option<(u64, gst::Buffer)> = None;
        loop {
            let Some(det) = self.detections_pad.peek_buffer() else {
                if matched.is_some() || self.detections_pad.is_eos() || timeout {
                    break;
                }
                // Detections for this frame may still come: wait for them.
                return Err(gst_base::AGGREGATOR_FLOW_NEED_DATA);
            };
            let det_time = running_time(&self.detections_pad, det.pts());
            let (pairing, distance) = match (det_time, video_time) {
                (Some(d), Some(v)) => (detections::pair(d, v, tolerance), d.abs_diff(v)),
                // Without timestamps buffers pair in arrival order.
                _ => (Pairing::Matches, 0),
            };
            match pairing {
                Pairing::Older => {
                    gst::log!(
                        CAT,
                        imp = self,
                        "dropping detections {det_time:?} older than frame {video_time:?}"
                    );
                    self.detections_pad.drop_buffer();
                }
                Pairing::Matches => {
                    self.detections_pad.drop_buffer();
                    if matched.as_ref().is_none_or(|(best, _)| distance < *best) {
                        matched = Some((distance, det));
                    }
                }
                Pairing::Later => break,
            }
        }

        let video = self
            .video_pad
            .pop_buffer()
            .ok_or(gst_base::AGGREGATOR_FLOW_NEED_DATA)?;
        let line = matched.and_then(|(_, det)| self.parse_detections(&det));
        let out = match &line {
            Some(line) => self.overlay(video, line),
            None => video,
        };
        {
            let mut state = self.state.lock().unwrap();
            state.frames_out += 1;
            if line.as_ref().is_some_and(|l| !l.detections.is_empty()) {
                state.frames_with_detections += 1;
            }
        }
        gst::log!(
            CAT,
            imp = self,
            "frame {video_time:?}: {} detections",
            line.as_ref().map_or(0, |l| l.detections.len())
        );
        if let Some(pts) = out.pts() {
            self.obj().set_position(pts);
        }
        self.obj().finish_buffer(out)
    }

    fn next_time(&self) -> Option<gst::ClockTime> {
        // In a live pipeline, wait for detections until the head frame's running time
        // (+ latency); with no frame queued there is nothing to time out.
        let video = self.video_pad.peek_buffer()?;
        running_time(&self.video_pad, video.pts()).map(gst::ClockTime::from_nseconds)
    }

    fn sink_event(&self, pad: &gst_base::AggregatorPad, event: gst::Event) -> bool {
        let is_video = pad == &self.video_pad;
        let is_eos = matches!(event.view(), gst::EventView::Eos(_));
        if is_video {
            match event.view() {
                gst::EventView::Caps(c) => match gst_video::VideoInfo::from_caps(c.caps()) {
                    Ok(info) => {
                        gst::info!(CAT, imp = self, "video caps {:?}", c.caps());
                        self.state.lock().unwrap().info = Some(info);
                        self.obj().src_pad().mark_reconfigure();
                    }
                    Err(err) => {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Negotiation,
                            ("Unusable video caps {:?}: {err}", c.caps())
                        );
                        return false;
                    }
                },
                gst::EventView::Segment(s) => {
                    if let Some(segment) = s.segment().downcast_ref::<gst::ClockTime>() {
                        self.obj().update_segment(segment);
                    }
                }
                _ => {}
            }
        }
        let ret = self.parent_sink_event(pad, event);
        if is_video && is_eos {
            // All video is out (EOS reached the head of the queue). In a non-live pipeline
            // the aggregator would keep waiting for the detections pad; end the stream now.
            let frames_out = self.state.lock().unwrap().frames_out;
            if frames_out > 0 && !self.detections_pad.has_buffer() && !self.detections_pad.is_eos()
            {
                gst::debug!(
                    CAT,
                    imp = self,
                    "video EOS while detections still open: EOS"
                );
                self.obj().src_pad().push_event(gst::event::Eos::new());
            }
        }
        ret
    }

    fn sink_query(&self, pad: &gst_base::AggregatorPad, query: &mut gst::QueryRef) -> bool {
        if pad == &self.video_pad
            && let gst::QueryViewMut::Caps(q) = query.view_mut()
        {
            // The overlay does not convert: the video pad takes what downstream takes.
            let templ = pad.pad_template_caps();
            let filter = match q.filter() {
                Some(f) => f.intersect_with_mode(&templ, gst::CapsIntersectMode::First),
                None => templ.clone(),
            };
            let downstream = self.obj().src_pad().peer_query_caps(Some(&filter));
            let result = downstream.intersect_with_mode(&templ, gst::CapsIntersectMode::First);
            q.set_result(&result);
            return true;
        }
        self.parent_sink_query(pad, query)
    }

    fn src_query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Caps(q) = query.view_mut() {
            let templ = self.obj().src_pad().pad_template_caps();
            let filter = match q.filter() {
                Some(f) => f.intersect_with_mode(&templ, gst::CapsIntersectMode::First),
                None => templ.clone(),
            };
            let upstream = self.video_pad.peer_query_caps(Some(&filter));
            let result = upstream.intersect_with_mode(&templ, gst::CapsIntersectMode::First);
            q.set_result(&result);
            return true;
        }
        self.parent_src_query(query)
    }

    fn update_src_caps(&self, downstream: &gst::Caps) -> Result<gst::Caps, gst::FlowError> {
        let Some(video_caps) = self.video_pad.current_caps() else {
            return Err(gst_base::AGGREGATOR_FLOW_NEED_DATA);
        };
        if !video_caps.can_intersect(downstream) {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream does not accept the video caps {video_caps:?}"),
                ["downstream accepts {downstream:?}; put a videoconvert after detectoverlay"]
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        Ok(video_caps)
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = State::default();
        self.parent_start()
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state.lock().unwrap());
        gst::info!(
            CAT,
            imp = self,
            "{} frames out, {} with detections, {} unreadable detections buffers",
            state.frames_out,
            state.frames_with_detections,
            state.bad_lines
        );
        self.parent_stop()
    }
}
