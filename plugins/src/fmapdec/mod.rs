//! `fmapdec`: decodes coded units (`application/x-fmap-coded`) back into raw feature frames
//! (`application/x-fmap`, the FMRF format `splitinfer-front` emits), so
//! `fmapdec ! splitinfer-back` works as if the two networks halves were linked directly.
//!
//! Frames leave in display order, timestamped with the presentation time the sender gave them
//! (carried inside every coded unit), whatever RTP did to buffer timestamps on the way.
//!
//! Loss is expected: a corrupted, truncated or unusable unit (its reference was lost) is dropped
//! with a warning and counted in `stats`; the decoder resynchronizes at the next anchor and the
//! stream goes on. The output buffer after a drop carries `DISCONT`.
//!
//! ```text
//! gst-launch-1.0 udpsrc port=5000 caps="application/x-rtp,media=application,clock-rate=90000,encoding-name=X-GST" \
//!     ! rtpjitterbuffer ! rtpgstdepay ! fmapdec ! splitinfer-back model=models/nanodet.onnx \
//!     ! filesink location=detections.jsonl
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FmapDec(ObjectSubclass<imp::FmapDec>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "fmapdec",
        gst::Rank::NONE,
        FmapDec::static_type(),
    )
}
