//! `rtpssrccaps`: puts the SSRC of the (S)RTP or (S)RTCP packets passing through into the `ssrc`
//! field of their caps, once for each new SSRC, so that `srtpdec` finds the key given in the
//! caps (`srtp-key`, …) for a sender whose SSRC is not known in advance.
//!
//! `srtpdec` (GStreamer 1.22) takes a key from its caps only together with the SSRC it is for,
//! and otherwise asks for it with its `request-key` signal, which `gst-launch-1.0` cannot
//! answer. RTCP from an `rtpbin` comes from an SSRC that rtpbin picks at random, so the edge of
//! an encrypted link with RTCP feedback (PLI, NACK) cannot name it. This element reads the SSRC
//! from each packet's header, which SRTP and SRTCP leave in the clear, and announces each new one
//! downstream as a caps event (the upstream caps plus `ssrc`) before its first packet; srtpdec
//! then keeps a stream per SSRC, and still authenticates every packet with the key. At most
//! `max-ssrcs` SSRCs are announced; packets of further ones, and packets too short to carry an
//! SSRC, are dropped and counted in `stats`.
//!
//! ```text
//! gst-launch-1.0 udpsrc port=5003 caps="application/x-srtcp,srtp-key=(buffer)<60 hex digits>,\
//! srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,\
//! srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80" \
//!     ! rtpssrccaps ! srtpdec name=d d.rtcp_src ! rtp.recv_rtcp_sink_0 ...
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
mod ssrc;

glib::wrapper! {
    pub struct RtpSsrcCaps(ObjectSubclass<imp::RtpSsrcCaps>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpssrccaps",
        gst::Rank::NONE,
        RtpSsrcCaps::static_type(),
    )
}
