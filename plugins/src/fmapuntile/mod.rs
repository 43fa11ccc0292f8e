//! `fmapuntile`: mosaic pictures made by `fmaptile` (`video/x-raw`, I420, GRAY8 or I420_10LE,
//! after any video codec) → raw feature frames (`application/x-fmap`), exactly what `fmapdec`
//! outputs, so `splitinfer-back` cannot tell the paths apart.
//!
//! The picture's header (U plane of I420/I420_10LE, luma band of GRAY8) carries the ranges,
//! shapes, code depth, source video size, model hash and a CRC of the cut names;
//! `model`/`split-at` give the tensor names and the rest of the caps and are checked against
//! the header (a mismatch is an error that names the property to fix). The picture must arrive
//! at the depth it was made at: a 10-bit mosaic needs a decoder that outputs I420_10LE (avdec_h265
//! and avdec_h264 do for Main 10 / High 10 streams) and no conversion on the way. A header
//! damaged in transit after good frames drops that frame with a warning.
//!
//! ```text
//! gst-launch-1.0 udpsrc port=5000 caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H265" \
//!     ! rtpjitterbuffer ! rtph265depay ! h265parse ! avdec_h265 \
//!     ! fmapuntile model=models/nanodet.onnx split-at=stage2 \
//!     ! splitinfer-back model=models/nanodet.onnx ! filesink location=detections.jsonl
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FmapUntile(ObjectSubclass<imp::FmapUntile>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "fmapuntile",
        gst::Rank::NONE,
        FmapUntile::static_type(),
    )
}
