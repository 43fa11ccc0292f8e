//! `detectoverlay`: draws detections onto the video they were computed from.
//!
//! Two always sink pads: `video` (packed RGB: RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR,
//! RGB, BGR; and I420, where the colours are drawn as BT.601 YUV and the 2x2-subsampled chroma
//! of the pixels next to a line takes its tint) and `detections` (`application/x-detections`: one buffer per frame holding one JSON
//! line `{"pts_ns":..,"frame":..,"width":W,"height":H,"detections":[{"label":"person",
//! "class_id":0,"score":0.87,"box":[x1,y1,x2,y2]}]}`, with the PTS of its video frame, as
//! written by `splitinfer-back`). The src pad outputs the video.
//!
//! Detections pair with video frames by running time: exactly, or the nearest within half a
//! frame duration. Detections older than the current frame are dropped; a frame whose
//! detections have not arrived waits for them (non-live), or until its running time plus the
//! aggregator `latency` (live pipelines: set `latency` to the delay of the detection branch).
//! When the detections pad reaches EOS, video keeps flowing; video EOS ends the stream.
//!
//! Each detection becomes a `GstVideoRegionOfInterestMeta` (roi-type = label, boxes scaled from
//! the line's width/height to the video size and clipped to the frame) with a params structure
//! `detection` holding `label` (string), `class-id` (uint) and `confidence` (double). With
//! `draw=true` (default) a 2-pixel outline in a per-class colour and a `label NN%` tag in a
//! built-in 5x7 font are drawn. Frames without detections pass through untouched.
//!
//! ```text
//! gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! videoconvert ! \
//!   video/x-raw,format=BGRx ! tee name=t \
//!   t. ! queue ! splitinfer-front model=models/nanodet.onnx ! splitinfer-back \
//!        model=models/nanodet.onnx ! o.detections \
//!   t. ! queue ! o.video \
//!   detectoverlay name=o ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

mod detections;
mod font;
mod imp;
mod render;

glib::wrapper! {
    pub struct DetectOverlay(ObjectSubclass<imp::DetectOverlay>)
        @extends gst_base::Aggregator, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "detectoverlay",
        gst::Rank::NONE,
        DetectOverlay::static_type(),
    )
}
