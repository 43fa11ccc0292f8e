//! The caps of every stream the fmap elements exchange, in one place.
//!
//! Raw feature frames, what `splitinfer-front` emits and `fmapdec` outputs:
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
//! Each buffer holds one raw feature frame (`codec_core::FeatureFrame::to_raw`, "FMRF"), which
//! itself carries the tensor names, shapes, dtypes and, for 8-bit tensors, scale and zero point.
//! The mapping from network input pixels back to video pixels is not sent: it follows from
//! width/height, input-width/input-height and resize, and the receiver recomputes it.
//! With `split=none` the frame holds the outputs of the whole network (a reference run), and
//! `cut` lists those output names.
//!
//! Coded units, what `fmapenc` emits and `fmapdec` reads: `application/x-fmap-coded`, the same
//! fields plus the codec fields ([`CODEC_FIELDS`]). The coded units are self-describing (each
//! carries its codec parameters), so a receiver needs none of the codec fields to decode; they
//! are there for humans, logs and SDP.
//!
//! Detections, what `splitinfer-back` emits and `detectoverlay` reads:
//! `application/x-detections`, one JSON line per buffer (`fmap_infer::detection`).
//!
//! Every field is a plain serializable type (string, integer, fraction), so the caps survive
//! `rtpgstpay`/`rtpgstdepay` unchanged.

pub use fmap_infer::profile::ResizeMode;

use codec_core::rtp;
use gst::glib;

/// Media type of raw feature-frame streams (FMRF buffers).
pub const RAW_MEDIA_TYPE: &str = "application/x-fmap";
/// Media type of coded units.
pub const CODED_MEDIA_TYPE: &str = "application/x-fmap-coded";

/// Media type of detection streams: one JSON line per buffer (see `splitinfer-back`).
pub const DETECTIONS_MEDIA_TYPE: &str = "application/x-detections";

/// Split name used when the cut is a list of tensor names rather than a named split point.
pub const SPLIT_CUSTOM: &str = "custom";
/// Split name of a reference run: the frame holds the network outputs.
pub const SPLIT_NONE: &str = "none";

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
    gst::Caps::new_empty_simple(RAW_MEDIA_TYPE)
}

impl FmapCaps {
    /// Fixed caps describing this stream.
    pub fn to_caps(&self) -> gst::Caps {
        gst::Caps::builder(RAW_MEDIA_TYPE)
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
        if s.name() != RAW_MEDIA_TYPE {
            return Err(format!(
                "caps are '{}', expected {RAW_MEDIA_TYPE}",
                s.name()
            ));
        }
        let string = |field: &str| -> Result<String, String> {
            s.get::<String>(field)
                .map_err(|e| format!("{RAW_MEDIA_TYPE} caps field '{field}': {e}"))
        };
        let dimension = |field: &str| -> Result<u32, String> {
            let v = s
                .get::<i32>(field)
                .map_err(|e| format!("{RAW_MEDIA_TYPE} caps field '{field}': {e}"))?;
            if !(1..=65536).contains(&v) {
                return Err(format!(
                    "{RAW_MEDIA_TYPE} caps field '{field}' = {v} outside 1..=65536"
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
            return Err(format!("{RAW_MEDIA_TYPE} caps field 'cut' is empty"));
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

/// Bitstream version of the coded units (`codec-version` caps field).
pub const FIELD_CODEC_VERSION: &str = "codec-version";
/// Frame structure (`intra`, `uni`, `bi`, `closed-loop`).
pub const FIELD_MODE: &str = "mode";
/// Quantizer bits per value (2..=8).
pub const FIELD_BITS: &str = "bits";
/// Quantizer (`per-tensor`, `per-channel`, `calibrated`, `model-int8`).
pub const FIELD_QUANTIZER: &str = "quantizer";
/// Entropy coder (`none`, `huffman`, `zvc`, `zvc-huffman`, `rle`).
pub const FIELD_ENTROPY: &str = "entropy";
/// Frames of reordering delay a decoder adds (0, or more with `mode=bi`).
pub const FIELD_DELAY_FRAMES: &str = "delay-frames";

/// The channel transform the units were coded with, if any (`<digest>:<components>`).
pub const FIELD_CHANNEL_TRANSFORM: &str = "channel-transform";

/// The fields fmapenc adds and fmapdec removes.
pub const CODEC_FIELDS: [&str; 7] = [
    FIELD_CHANNEL_TRANSFORM,
    FIELD_CODEC_VERSION,
    FIELD_MODE,
    FIELD_BITS,
    FIELD_QUANTIZER,
    FIELD_ENTROPY,
    FIELD_DELAY_FRAMES,
];

/// Codec parameters announced in the coded caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecFields {
    pub codec_version: i32,
    pub mode: &'static str,
    pub bits: i32,
    pub quantizer: &'static str,
    pub entropy: &'static str,
    pub delay_frames: i32,
    /// [`FIELD_CHANNEL_TRANSFORM`]: `None` without a transform.
    pub channel_transform: Option<String>,
}

/// Coded caps for raw caps `raw` (any fields are kept).
pub fn coded_from_raw(raw: &gst::StructureRef, codec: &CodecFields) -> gst::Caps {
    let mut s = raw.to_owned();
    s.set_name(CODED_MEDIA_TYPE);
    s.set(FIELD_CODEC_VERSION, codec.codec_version);
    s.set(FIELD_MODE, codec.mode);
    s.set(FIELD_BITS, codec.bits);
    s.set(FIELD_QUANTIZER, codec.quantizer);
    s.set(FIELD_ENTROPY, codec.entropy);
    s.set(FIELD_DELAY_FRAMES, codec.delay_frames);
    if let Some(t) = &codec.channel_transform {
        s.set(FIELD_CHANNEL_TRANSFORM, t.as_str());
    }
    gst::Caps::builder_full().structure(s).build()
}

/// Raw caps restored from coded caps: the same fields minus the codec's.
pub fn raw_from_coded(coded: &gst::StructureRef) -> gst::Caps {
    let mut s = coded.to_owned();
    s.set_name(RAW_MEDIA_TYPE);
    s.remove_fields(CODEC_FIELDS);
    gst::Caps::builder_full().structure(s).build()
}

/// RTP caps of the fmap payload format (`codec-core/RTP-PAYLOAD.md`): what `rtpfmappay`
/// sends and `rtpfmapdepay` reads.
pub fn rtp_caps() -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", "application")
        .field("clock-rate", rtp::CLOCK_RATE as i32)
        .field("encoding-name", rtp::ENCODING_NAME)
        .build()
}

/// The same with the dynamic payload types (96..=127), for the payloader's output.
pub fn rtp_caps_dynamic() -> gst::Caps {
    let mut caps = rtp_caps();
    caps.make_mut()
        .structure_mut(0)
        .expect("one structure")
        .set("payload", gst::IntRange::new(96, 127));
    caps
}

/// The value of the RTP caps / SDP `a=fmtp` parameter `config` for coded caps: the caps as
/// text, base64-encoded.
pub fn rtp_config_value(coded: &gst::Caps) -> String {
    glib::base64_encode(coded.to_string().as_bytes()).to_string()
}

/// Coded caps from their text (an in-band config packet). The error says what is wrong.
pub fn coded_from_text(text: &str) -> Result<gst::Caps, String> {
    let caps: gst::Caps = text
        .parse()
        .map_err(|_| format!("not a caps string: {text:?}"))?;
    match caps.structure(0).map(|s| s.name().as_str()) {
        Some(CODED_MEDIA_TYPE) if caps.is_fixed() => Ok(caps),
        _ => Err(format!(
            "the configuration is '{caps}', not fixed {CODED_MEDIA_TYPE} caps"
        )),
    }
}

/// Coded caps from the `config` parameter of RTP caps (base64 of the caps text).
pub fn coded_from_rtp_config(value: &str) -> Result<gst::Caps, String> {
    let bytes = glib::base64_decode(value);
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("'{}' is not base64 of a caps string", rtp::CONFIG_PARAMETER))?;
    coded_from_text(&text)
}

/// Duration of one frame from a `framerate` field, if the rate is known and nonzero.
pub fn frame_duration(s: &gst::StructureRef) -> Option<gst::ClockTime> {
    let rate = s.get::<gst::Fraction>("framerate").ok()?;
    let (num, den) = (rate.numer(), rate.denom());
    if num <= 0 || den <= 0 {
        return None;
    }
    let ns =
        (gst::ClockTime::SECOND.nseconds() as u128 * den as u128 + num as u128 / 2) / num as u128;
    u64::try_from(ns).ok().map(gst::ClockTime::from_nseconds)
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

    #[test]
    fn coded_caps_round_trip_through_text() {
        gst::init().unwrap();
        let raw = gst::Caps::builder(RAW_MEDIA_TYPE)
            .field("model", "nanodet")
            .field("cut", "PartitionedCall/onnx_tf_prefix_Concat_27:0")
            .field("width", 768i32)
            .field("height", 576i32)
            .field("framerate", gst::Fraction::new(10, 1))
            .build();
        let codec = CodecFields {
            codec_version: 1,
            mode: "bi",
            bits: 6,
            quantizer: "per-channel",
            entropy: "zvc-huffman",
            delay_frames: 1,
            channel_transform: Some("00ff00ff00ff00ff:64".into()),
        };
        let coded = coded_from_raw(raw.structure(0).unwrap(), &codec);
        let text = coded.to_string();
        let parsed: gst::Caps = text.parse().unwrap();
        assert_eq!(parsed, coded);
        let back = raw_from_coded(parsed.structure(0).unwrap());
        assert_eq!(back, raw);
        assert_eq!(
            frame_duration(raw.structure(0).unwrap()),
            Some(gst::ClockTime::from_mseconds(100))
        );
    }

    #[test]
    fn rtp_config_round_trips_and_rejects_other_caps() {
        gst::init().unwrap();
        let coded = coded_from_raw(
            sample().to_caps().structure(0).unwrap(),
            &CodecFields {
                codec_version: 2,
                mode: "adaptive",
                bits: 8,
                quantizer: "per-tensor",
                entropy: "none",
                delay_frames: 0,
                channel_transform: None,
            },
        );
        let value = rtp_config_value(&coded);
        assert!(
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        );
        assert_eq!(coded_from_rtp_config(&value).unwrap(), coded);
        let raw = rtp_config_value(&sample().to_caps());
        assert!(
            coded_from_rtp_config(&raw)
                .unwrap_err()
                .contains(CODED_MEDIA_TYPE)
        );
        assert!(coded_from_text("no caps ,,, here").is_err());
        let rtp = rtp_caps_dynamic();
        assert!(rtp.can_intersect(&rtp_caps()));
    }
}
