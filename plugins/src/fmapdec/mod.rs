//! `fmapdec`: decodes coded units (`application/x-fmap-coded`) back into raw feature frames
//! (`application/x-fmap`, the FMRF format `splitinfer-front` emits), so
//! `fmapdec ! splitinfer-back` works as if the two networks halves were linked directly.
//!
//! Frames leave in display order, timestamped with the presentation time the sender gave them
//! (carried inside every coded unit), whatever RTP did to buffer timestamps on the way.
//!
//! Loss is expected. With `conceal=true` (the default) every frame the sender coded comes out:
//! the channels of a lost or damaged slice (`rtpfmapdepay` delivers units with the slices that
//! arrived) come from the previous frame and stay concealed until the next key unit; a unit
//! that is lost or cannot be decoded repeats the previous frame. Such frames carry the
//! `CORRUPTED` buffer flag, which `splitinfer-back` turns into `"concealed":true`, and
//! `fmapdec` asks upstream for a key unit (a force-key-unit event, which `rtpbin` turns into
//! RTCP PLI), at most once per second and, once asked, not again until the stream is back in
//! sync or 3 s have passed. With `conceal=false` a unit that cannot be decoded
//! exactly is dropped with a warning until the next key unit. Everything is counted in
//! `stats`; the output buffer after a loss carries `DISCONT`.
//!
//! ```text
//! gst-launch-1.0 udpsrc port=5000 caps="application/x-rtp,media=application,clock-rate=90000,encoding-name=X-GST" \
//!     ! rtpjitterbuffer ! rtpgstdepay ! fmapdec ! splitinfer-back model=models/nanodet.onnx \
//!     ! filesink location=detections.jsonl
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
mod key_requests;

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
