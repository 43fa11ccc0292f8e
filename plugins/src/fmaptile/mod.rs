//! `fmaptile`: raw feature frames (`application/x-fmap`) → one mosaic picture per frame
//! (`video/x-raw`: I420, GRAY8 or I420_10LE), so that any H.264/H.265 encoder, RTP payloader
//! and rate control can carry feature maps (the tiled method of Choi & Bajić 2018).
//!
//! Float tensors are quantized with a MinMax range kept from frame to frame (codec-core's
//! quantizer) to 8-bit codes in I420 and GRAY8 pictures, to 10-bit codes in I420_10LE pictures
//! (the depth MPEG FCM codes features at, for x265enc's Main 10 or x264enc's High 10); the u8
//! tensors of an 8-bit model keep their codes (×4 at 10 bits). The shapes, ranges, depth, model
//! and cut are written into the picture as a header (one bit per 8x8 block; in the U plane of
//! I420/I420_10LE, in a luma band above the tensors for GRAY8), so they survive lossy coding and
//! any transport; see `codec_core::tile`. The picture size (multiples of 16) follows from the
//! tensor shapes and is fixed at the first frame; the format is the first of I420, GRAY8,
//! I420_10LE that downstream accepts, so a caps filter picks 10 bits:
//!
//! ```text
//! gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! videoconvert \
//!     ! splitinfer-front model=models/nanodet.onnx split-at=stage2 ! fmaptile \
//!     ! video/x-raw,format=I420_10LE ! x265enc qp=34 option-string=bframes=0 \
//!     ! rtph265pay config-interval=-1 ! udpsink host=127.0.0.1 port=5000
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod picture;

glib::wrapper! {
    pub struct FmapTile(ObjectSubclass<imp::FmapTile>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "fmaptile",
        gst::Rank::NONE,
        FmapTile::static_type(),
    )
}
