//! `rtpfmapdepay`: rebuilds coded units (`application/x-fmap-coded`, for `fmapdec`) from RTP
//! packets of the fmap payload format (`codec-core/RTP-PAYLOAD.md`, what `rtpfmappay` sends).
//!
//! Packets are grouped by RTP timestamp; at the marker bit (or when the next unit starts) the
//! unit is assembled from the head and whatever slices arrived, so a lost packet costs the
//! slices it carried, not the unit. A unit whose head is lost is dropped. Everything is
//! counted in `stats`.
//!
//! The output caps come from the `config` field of the RTP caps (SDP `a=fmtp`), or else from
//! the in-band config packets the payloader repeats: a receiver started after the sender needs
//! no setting. Until it has caps it drops units (counted, logged at DEBUG).
//!
//! Force-key-unit events from downstream (`fmapdec` sends one when it loses sync) go upstream,
//! where `rtpbin` turns them into RTCP PLI.
//!
//! ```text
//! gst-launch-1.0 udpsrc port=5000 \
//!     caps="application/x-rtp,media=application,clock-rate=90000,encoding-name=X-FMAP,payload=96" \
//!     ! rtpjitterbuffer ! rtpfmapdepay ! fmapdec ! splitinfer-back model=models/nanodet.onnx \
//!     ! filesink location=detections.jsonl
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtpFmapDepay(ObjectSubclass<imp::RtpFmapDepay>)
        @extends gst_rtp::RTPBaseDepayload, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpfmapdepay",
        gst::Rank::MARGINAL,
        RtpFmapDepay::static_type(),
    )
}
