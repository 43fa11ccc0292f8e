//! The fmap GStreamer plugin: split object detection with compressed feature maps.
//!
//! Elements: `splitinfer-front`, `fmapenc`, `fmapdec`, `splitinfer-back`, `detectoverlay`,
//! `fmaptile`, `fmapuntile`, `rtpfmappay`, `rtpfmapdepay`.
//! Each element lives in its own module and imports no other element; what they share (caps,
//! model loading, the ONNX element properties) lives in [`common`]. The logic lives in
//! `codec-core` and `fmap-infer`.

use gst::glib;

pub mod common;
mod detectoverlay;
mod fmapdec;
pub mod fmapenc;
mod fmaptile;
mod fmapuntile;
mod rtpfmapdepay;
mod rtpfmappay;
mod rtpssrccaps;
mod splitinfer_back;
mod splitinfer_front;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    detectoverlay::register(plugin)?;
    fmapenc::register(plugin)?;
    fmapdec::register(plugin)?;
    fmaptile::register(plugin)?;
    fmapuntile::register(plugin)?;
    rtpfmappay::register(plugin)?;
    rtpfmapdepay::register(plugin)?;
    rtpssrccaps::register(plugin)?;
    splitinfer_front::register(plugin)?;
    splitinfer_back::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    fmap,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
