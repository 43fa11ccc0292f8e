//! Caps of the `application/x-fmap` stream: the feature frames that cross the network split.
//!
//! ```text
//! application/x-fmap,
//!     model=(string)<first 16 hex digits of the SHA-256 of the ONNX model file>,
//!     cut=(string)<comma-separated tensor names crossing the split, in frame order>,
//!     split=(string)<named split point | "custom" | "none">,
//!     width=(int)<original video width>, height=(int)<original video height>,
//!     framerate=(fraction)<video frame rate>,
//!     resize=(string){ "stretch", "letterbox" },
//!     input-width=(int)<network input width>, input-height=(int)<network input height>
//! ```
//!
//! Every field is a plain serializable type, so the caps survive `rtpgstpay`/`rtpgstdepay`.
//! Each buffer holds one raw feature frame (`codec_core::FeatureFrame::to_raw`, "FMRF"), which
//! itself carries the tensor names, shapes, dtypes and, for 8-bit tensors, scale and zero point.
//! The mapping from network input pixels back to video pixels is not sent: it follows from
//! width/height, input-width/input-height and resize, and the receiver recomputes it.
//!
//! With `split=none` the frame holds the outputs of the whole network (a reference run), and
//! `cut` lists those output names.

/// Media type of feature-frame streams.
pub const MEDIA_TYPE: &str = "application/x-fmap";

/// Media type of detection streams: one JSON line per buffer (see `splitinfer-back`).
pub const DETECTIONS_MEDIA_TYPE: &str = "application/x-detections";

/// Split name used when the cut is a list of tensor names rather than a named split point.
pub const SPLIT_CUSTOM: &str = "custom";
/// Split name of a reference run: the frame holds the network outputs.
pub const SPLIT_NONE: &str = "none";

/// How the video frame was fitted to the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// Both axes scaled independently to the input size.
    Stretch,
    /// Aspect ratio kept, the rest padded.
    Letterbox,
}

impl ResizeMode {
    pub const NAMES: [&'static str; 2] = ["stretch", "letterbox"];

    pub fn as_str(self) -> &'static str {
        match self {
            ResizeMode::Stretch => "stretch",
            ResizeMode::Letterbox => "letterbox",
        }
    }

    /// The mode a model profile asks for.
    pub fn from_profile(mode: fmap_infer::profile::ResizeMode) -> Self {
        match mode {
            fmap_infer::profile::ResizeMode::Stretch => ResizeMode::Stretch,
            fmap_infer::profile::ResizeMode::Letterbox => ResizeMode::Letterbox,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "stretch" => Ok(ResizeMode::Stretch),
            "letterbox" => Ok(ResizeMode::Letterbox),
            other => Err(format!(
                "resize mode '{other}' is not one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Everything the receiving side needs to know about a feature-frame stream besides the frames.
#[derive(Debug, Clone, PartialEq)]
pub struct FmapCaps {
    /// Hex prefix of the SHA-256 of the model file both halves must have loaded.
    pub model: String,
    /// Tensor names crossing the split.
    pub cut: Vec<String>,
    /// Named split point, [`SPLIT_CUSTOM`] or [`SPLIT_NONE`].
    pub split: String,
    pub width: u32,
    pub height: u32,
    pub framerate: gst::Fraction,
    pub resize: ResizeMode,
    pub input_width: u32,
    pub input_height: u32,
}

/// Template caps accepting any feature-frame stream.
pub fn template_caps() -> gst::Caps {
    gst::Caps::new_empty_simple(MEDIA_TYPE)
}

impl FmapCaps {
    /// Fixed caps describing this stream.
    pub fn to_caps(&self) -> gst::Caps {
        gst::Caps::builder(MEDIA_TYPE)
            .field("model", self.model.as_str())
            .field("cut", self.cut.join(","))
            .field("split", self.split.as_str())
            .field("width", self.width as i32)
            .field("height", self.height as i32)
            .field("framerate", self.framerate)
            .field("resize", self.resize.as_str())
            .field("input-width", self.input_width as i32)
            .field("input-height", self.input_height as i32)
            .build()
    }

    /// Reads fixed caps; the error names the missing or invalid field.
    pub fn from_caps(caps: &gst::CapsRef) -> Result<Self, String> {
        let s = caps.structure(0).ok_or_else(|| "empty caps".to_string())?;
        if s.name() != MEDIA_TYPE {
            return Err(format!("caps are '{}', expected {MEDIA_TYPE}", s.name()));
        }
        let string = |field: &str| -> Result<String, String> {
            s.get::<String>(field)
                .map_err(|e| format!("{MEDIA_TYPE} caps field '{field}': {e}"))
        };
        let dimension = |field: &str| -> Result<u32, String> {
            let v = s
                .get::<i32>(field)
                .map_err(|e| format!("{MEDIA_TYPE} caps field '{field}': {e}"))?;
            if !(1..=65536).contains(&v) {
                return Err(format!(
                    "{MEDIA_TYPE} caps field '{field}' = {v} outside 1..=65536"
                ));
            }
            Ok(v as u32)
        };
        let cut_field = string("cut")?;
        let cut: Vec<String> = cut_field
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if cut.is_empty() {
            return Err(format!("{MEDIA_TYPE} caps field 'cut' is empty"));
        }
        let framerate = s
            .get::<gst::Fraction>("framerate")
            .unwrap_or_else(|_| gst::Fraction::new(0, 1));
        Ok(FmapCaps {
            model: string("model")?,
            cut,
            split: string("split")?,
            width: dimension("width")?,
            height: dimension("height")?,
            framerate,
            resize: ResizeMode::parse(&string("resize")?)?,
            input_width: dimension("input-width")?,
            input_height: dimension("input-height")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FmapCaps {
        FmapCaps {
            model: "0123456789abcdef".into(),
            cut: vec!["a:0".into(), "b/c:0".into()],
            split: "backbone".into(),
            width: 768,
            height: 576,
            framerate: gst::Fraction::new(10, 1),
            resize: ResizeMode::Letterbox,
            input_width: 416,
            input_height: 416,
        }
    }

    #[test]
    fn round_trips_through_caps_and_string() {
        gst::init().unwrap();
        let c = sample();
        let caps = c.to_caps();
        assert!(caps.is_fixed());
        assert_eq!(FmapCaps::from_caps(&caps).unwrap(), c);
        // Serialized form (what rtpgstpay sends) parses back to the same description.
        let text = caps.to_string();
        let parsed: gst::Caps = text.parse().unwrap();
        assert_eq!(FmapCaps::from_caps(&parsed).unwrap(), c);
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        gst::init().unwrap();
        let mut caps = sample().to_caps();
        caps.make_mut()
            .structure_mut(0)
            .unwrap()
            .remove_field("cut");
        let err = FmapCaps::from_caps(&caps).unwrap_err();
        assert!(err.contains("'cut'"), "{err}");

        let mut caps = sample().to_caps();
        caps.make_mut()
            .structure_mut(0)
            .unwrap()
            .set("resize", "squash");
        let err = FmapCaps::from_caps(&caps).unwrap_err();
        assert!(err.contains("stretch, letterbox"), "{err}");

        let mut caps = sample().to_caps();
        caps.make_mut().structure_mut(0).unwrap().set("width", 0i32);
        assert!(FmapCaps::from_caps(&caps).unwrap_err().contains("'width'"));
    }
}
