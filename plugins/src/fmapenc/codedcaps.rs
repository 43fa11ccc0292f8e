//! The `application/x-fmap-coded` caps: the raw `application/x-fmap` caps' fields (model, cut,
//! sizes, framerate, ...) plus a few codec fields. Every value is a string, integer or fraction,
//! so the caps serialize to text and survive `rtpgstpay`/`rtpgstdepay` unchanged.
//!
//! The coded units are self-describing (each carries its codec parameters), so a receiver needs
//! none of the codec fields to decode; they are there for humans, logs and SDP.

/// Media type of raw feature frames (FMRF buffers); see [`crate::fmapcaps`].
pub const RAW_MEDIA_TYPE: &str = crate::fmapcaps::MEDIA_TYPE;
/// Media type of coded units.
pub const CODED_MEDIA_TYPE: &str = "application/x-fmap-coded";

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

/// The fields fmapenc adds and fmapdec removes.
pub const CODEC_FIELDS: [&str; 6] = [
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
    gst::Caps::builder_full().structure(s).build()
}

/// Raw caps restored from coded caps: the same fields minus the codec's.
pub fn raw_from_coded(coded: &gst::StructureRef) -> gst::Caps {
    let mut s = coded.to_owned();
    s.set_name(RAW_MEDIA_TYPE);
    s.remove_fields(CODEC_FIELDS);
    gst::Caps::builder_full().structure(s).build()
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
}
