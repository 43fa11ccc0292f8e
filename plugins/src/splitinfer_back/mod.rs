//! `splitinfer-back`: the server-side half of a split object detector.
//!
//! Sink: `application/x-fmap` (raw feature frames, see [`crate::common::caps`]). Src:
//! `application/x-detections`: one buffer per frame, with the frame's PTS, holding one JSON
//! line (ending in `\n`):
//!
//! ```text
//! {"pts_ns":<integer or null>,"frame":<integer>,"width":<video width>,"height":<video height>,
//!  "detections":[{"label":"person","class_id":0,"score":0.87,"box":[x1,y1,x2,y2]}]}
//! ```
//!
//! A frame that `fmapdec` partly concealed after a network loss (its buffer has the CORRUPTED
//! flag) gets `"concealed":true` before `"detections"`.
//!
//! Boxes are in original video pixels, so `splitinfer-back ! filesink location=det.jsonl`
//! writes a JSON-lines file. The element checks that the stream was made from the same model
//! file (SHA-256 prefix in the caps), with the same input size and resize mode, and that its
//! model can be cut where the stream was cut; otherwise it posts an element error naming both
//! sides. A buffer that is not a valid feature frame (damaged on the way) is dropped with a
//! warning — that frame gets no detection line — and the stream goes on. A `split=none` stream (the front ran the whole network) is only decoded, without
//! ONNX Runtime. Thresholds default to the model profile's values.
//!
//! ```text
//! gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! videoconvert ! \
//!   splitinfer-front model=models/nanodet.onnx split-at=backbone ! \
//!   splitinfer-back model=models/nanodet.onnx score-threshold=0.4 ! filesink location=det.jsonl
//! ```

use gst::glib;
use gst::prelude::*;

mod engine;
mod imp;

glib::wrapper! {
    pub struct SplitInferBack(ObjectSubclass<imp::SplitInferBack>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "splitinfer-back",
        gst::Rank::NONE,
        SplitInferBack::static_type(),
    )
}
