//! `splitinfer-front`: the camera-side half of a split object detector.
//!
//! Sink: raw video (RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR; any size — the
//! element resizes as the model profile says). Src: `application/x-fmap` (see
//! [`crate::common::caps`] for the caps fields: model hash, cut, split name, video size, frame
//! rate, resize mode, network input size), one buffer per video frame holding the tensors at
//! the cut as a raw feature frame (`codec_core::FeatureFrame::to_raw`), with the frame's
//! timestamps. Tensors of an 8-bit quantized model stay 8-bit and carry the scale and zero
//! point of the QuantizeLinear/DequantizeLinear nodes at the cut. With `split-at=none` the
//! whole network runs here and the frame holds its outputs (a reference run for
//! `splitinfer-back`, which then only decodes).
//!
//! The model, profile, split and ONNX Runtime are loaded when the element starts (READY →
//! PAUSED); every problem (missing file, unknown split name, missing ONNX Runtime) is an
//! element error saying what to change. INFO logs (`GST_DEBUG=splitinfer-front:4`) give the
//! ONNX Runtime library, the model hash, the final cut and, at stop, ms/frame and bytes/frame.
//!
//! ```text
//! gst-launch-1.0 filesrc location=bus.jpg ! jpegdec ! videoconvert ! video/x-raw,format=BGRx ! \
//!   splitinfer-front model=models/nanodet.onnx split-at=stage2 ! \
//!   splitinfer-back model=models/nanodet.onnx ! filesink location=det.jsonl
//! ```

use gst::glib;
use gst::prelude::*;

pub(crate) mod engine;
mod imp;

glib::wrapper! {
    pub struct SplitInferFront(ObjectSubclass<imp::SplitInferFront>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "splitinfer-front",
        gst::Rank::NONE,
        SplitInferFront::static_type(),
    )
}
