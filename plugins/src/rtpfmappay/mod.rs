//! `rtpfmappay`: puts coded units (`application/x-fmap-coded`, from `fmapenc`) into RTP packets
//! of the fmap payload format (`codec-core/RTP-PAYLOAD.md`, encoding name `X-FMAP`, 90 kHz).
//!
//! Each unit is split into its pieces (a head and independently decodable slices); small pieces
//! share a packet, a piece larger than the MTU is fragmented, and the last packet of a unit has
//! the marker bit. The RTP timestamp is the unit's PTS at 90 kHz.
//!
//! The stream configuration (the coded caps) travels twice: as the `config` field of the output
//! caps (base64, for SDP `a=fmtp`), and in-band, in config packets sent before the first unit,
//! after a caps change, with every key unit and at least every `config-interval` seconds, so a
//! receiver that joins late needs no setting at all.
//!
//! A force-key-unit event from downstream (`rtpbin` turns an RTCP PLI/FIR into one) goes
//! upstream to `fmapenc`, which answers with a key unit.
//!
//! ```text
//! gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! videoconvert \
//!     ! splitinfer-front model=models/nanodet.onnx ! fmapenc \
//!     ! rtpfmappay ! udpsink host=127.0.0.1 port=5000
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtpFmapPay(ObjectSubclass<imp::RtpFmapPay>)
        @extends gst_rtp::RTPBasePayload, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpfmappay",
        gst::Rank::MARGINAL,
        RtpFmapPay::static_type(),
    )
}
