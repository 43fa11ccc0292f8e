//! `fmapenc`: compresses raw feature frames (`application/x-fmap`, as `splitinfer-front` emits
//! them) into coded units (`application/x-fmap-coded`) with codec-core's [`Encoder`].
//!
//! Every output buffer is one self-delimiting coded unit. PTS is the frame's presentation time;
//! with `mode=bi` units leave in decode order, so DTS is set (monotonic, never after PTS) and
//! the element adds the reordering delay to latency queries. Units that need an earlier unit to
//! decode carry `DELTA_UNIT`. Before the first unit, before every key unit and then every
//! `config-interval` seconds, fmapenc pushes a downstream force-key-unit event with
//! all-headers, on which `rtpgstpay` (without any `config-interval` of its own) and `rtpfmappay`
//! resend the caps in-band, so that a receiver that starts late can decode.
//!
//! ```text
//! gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! videoconvert \
//!     ! splitinfer-front model=models/nanodet.onnx ! fmapenc mode=bi bits=6 entropy=zvc-huffman \
//!     ! rtpgstpay ! udpsink host=127.0.0.1 port=5000
//! ```
//!
//! [`Encoder`]: codec_core::Encoder

use gst::glib;
use gst::prelude::*;

mod calibration;
mod imp;
pub mod settings;
mod timestamps;

pub use settings::{Entropy, Mode, MvSharing, Quantizer, Search};

glib::wrapper! {
    pub struct FmapEnc(ObjectSubclass<imp::FmapEnc>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    for t in [
        Mode::static_type(),
        Search::static_type(),
        MvSharing::static_type(),
        Quantizer::static_type(),
        Entropy::static_type(),
    ] {
        t.mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "fmapenc",
        gst::Rank::NONE,
        FmapEnc::static_type(),
    )
}
