//! The method of Choi & Bajić (seed 001), run through the `fmaptile` and `fmapuntile`
//! elements: each feature frame's tensors are quantized to 8 bits, or 10 bits for x265 Main 10
//! (a float tensor with its tracked range, an 8-bit model's tensor as its own codes), tiled
//! into one picture with the side information coded in the picture (see `codec_core::tile`),
//! and the picture sequence is coded with a standard codec: HEVC (x265) lossless or at a QP
//! ladder, AVC (x264) at a QP ladder, or PNG. The coded bytes are the whole cost: ranges,
//! shapes and identity travel inside the pictures.
//!
//! The `x265-klt` family first projects the channels on their strongest principal components
//! (`fmaptile channel-transform`, the KLT of `fmap-calibrate --klt` in the model's calibration
//! file, which `fmapuntile` inverts): fewer planes in the mosaic. It is measured only where that
//! file has a transform.
//!
//! x265 and x264 code YUV, not grey: the mosaic goes in the luma plane of an I420 (I420_10LE)
//! frame whose chroma planes are flat mid-grey apart from the header (they cost almost
//! nothing); PNG codes the GRAY8 picture.

use std::path::PathBuf;
use std::time::Duration;

use codec_core::FeatureFrame;
use fmap_infer::calibration::Calibration;

use crate::evaluate::{
    Clip, DetectionCache, FrameDetections, Measured, SettingResult, SplitRun, score,
};
use crate::stream::{Recording, run_recording};

const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// The codec of the mosaic sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MosaicCodec {
    /// x265 (key frame every `KEY_INT` frames, no B-frames), lossless or at a constant QP.
    X265Lossless,
    X265 {
        qp: u32,
    },
    /// x265 Main 10 on 10-bit codes (I420_10LE) at a constant QP (x265's `qp` is on the 8-bit
    /// scale at any depth: the same QP costs about the same rate as 8-bit).
    X265Main10 {
        qp: u32,
    },
    /// x264 at a constant QP (same key frames, no B-frames): what most edge hardware encodes.
    X264 {
        qp: u32,
    },
    /// x265 with a target rate in kbit/s (its ABR rate control), as a hardware encoder or a
    /// link budget would run it.
    X265Rate {
        kbps: u32,
    },
    /// x265 at a constant QP, like [`MosaicCodec::X265`], on the mosaic of the strongest
    /// `components` principal components of the channels (the calibration file's KLT).
    X265Klt {
        qp: u32,
        components: u32,
    },
    Png,
}

/// Principal components the `x265-klt` ladder keeps (fmapenc's KLT lever keeps as many).
pub const KLT_COMPONENTS: u32 = 64;

/// Key-frame interval of the x265 mosaic streams (2 s at 10 fps, like the video anchors).
pub const KEY_INT: u32 = 20;
/// x265 speed preset for all HEVC coding in the evaluation (feature mosaics and anchors).
pub const X265_PRESET: &str = "fast";

/// The families of codecs `--tiled-codecs` selects from, each with its ladder.
pub const FAMILIES: [&str; 7] = [
    "lossless",
    "png",
    "x265",
    "x265-10bit",
    "x264",
    "x265-bitrate",
    "x265-klt",
];

/// What 10 bits are compared with: (8-bit method, 10-bit method) with the same codec.
pub fn depth_pairs() -> Vec<(&'static str, &'static str)> {
    vec![(
        MosaicCodec::X265 { qp: 0 }.method(),
        MosaicCodec::X265Main10 { qp: 0 }.method(),
    )]
}

impl MosaicCodec {
    pub fn method(&self) -> &'static str {
        match self {
            MosaicCodec::X265Lossless => "tiled 8-bit + HEVC lossless",
            MosaicCodec::X265 { .. } => "tiled 8-bit + HEVC",
            MosaicCodec::X265Main10 { .. } => "tiled 10-bit + HEVC",
            MosaicCodec::X264 { .. } => "tiled 8-bit + AVC",
            MosaicCodec::X265Rate { .. } => "tiled 8-bit + HEVC, rate control",
            MosaicCodec::X265Klt { .. } => "tiled 8-bit + HEVC, KLT",
            MosaicCodec::Png => "tiled 8-bit + PNG",
        }
    }

    /// The family it belongs to (one of [`FAMILIES`]).
    pub fn family(&self) -> &'static str {
        match self {
            MosaicCodec::X265Lossless => "lossless",
            MosaicCodec::Png => "png",
            MosaicCodec::X265 { .. } => "x265",
            MosaicCodec::X265Main10 { .. } => "x265-10bit",
            MosaicCodec::X264 { .. } => "x264",
            MosaicCodec::X265Rate { .. } => "x265-bitrate",
            MosaicCodec::X265Klt { .. } => "x265-klt",
        }
    }

    /// Bits per code (and per picture sample).
    pub fn bits(&self) -> u32 {
        match self {
            MosaicCodec::X265Main10 { .. } => 10,
            _ => 8,
        }
    }

    /// Lossless codecs decode to the same codes (one network run serves them all).
    pub fn is_lossless(&self) -> bool {
        matches!(self, MosaicCodec::X265Lossless | MosaicCodec::Png)
    }

    pub fn setting(&self) -> String {
        match self {
            MosaicCodec::X265Lossless => format!(
                "x265enc speed-preset={X265_PRESET} key-int-max={KEY_INT} option-string=lossless=1:bframes=0"
            ),
            MosaicCodec::X265 { qp } => format!(
                "x265enc speed-preset={X265_PRESET} key-int-max={KEY_INT} qp={qp} option-string=bframes=0"
            ),
            // The format is part of the setting: it is what makes x265 code Main 10.
            MosaicCodec::X265Main10 { qp } => format!(
                "video/x-raw,format=I420_10LE ! {}",
                MosaicCodec::X265 { qp: *qp }.setting()
            ),
            MosaicCodec::X264 { qp } => format!(
                "x264enc speed-preset={X265_PRESET} key-int-max={KEY_INT} pass=quant quantizer={qp} bframes=0"
            ),
            MosaicCodec::X265Rate { kbps } => format!(
                "x265enc speed-preset={X265_PRESET} key-int-max={KEY_INT} bitrate={kbps} option-string=bframes=0"
            ),
            // The transform is part of the setting: it is what puts components in the mosaic.
            MosaicCodec::X265Klt { qp, components } => format!(
                "fmaptile channel-transform={} transform-components={components} ! {}",
                crate::evaluate::CALIBRATION_PLACEHOLDER,
                MosaicCodec::X265 { qp: *qp }.setting()
            ),
            MosaicCodec::Png => "pngenc".into(),
        }
    }

    /// Whether this codec applies to the clip's model at `split`: the KLT family needs the
    /// calibration file with a channel transform.
    pub fn applies(&self, clip: &Clip, split: &str) -> bool {
        match self {
            MosaicCodec::X265Klt { .. } => Calibration::load(calibration(clip, split))
                .is_ok_and(|c| c.tensors.iter().any(|t| t.transform.is_some())),
            _ => true,
        }
    }

    /// Feature frames → coded mosaics.
    fn encoder(&self, clip: &Clip, split: &str) -> String {
        // The picture format fmaptile gives the codec (the 10-bit setting names its own).
        let picture = match self {
            MosaicCodec::Png => "video/x-raw,format=GRAY8 ! ",
            MosaicCodec::X265Main10 { .. } => "",
            _ => "video/x-raw,format=I420 ! ",
        };
        let coded = match self {
            MosaicCodec::Png => "",
            MosaicCodec::X264 { .. } => " ! video/x-h264,stream-format=byte-stream",
            _ => " ! video/x-h265,stream-format=byte-stream",
        };
        let setting = self.setting().replace(
            crate::evaluate::CALIBRATION_PLACEHOLDER,
            &format!("\"{}\"", calibration(clip, split).display()),
        );
        match setting.strip_prefix("fmaptile ") {
            // The setting names fmaptile's own properties; the picture format follows them.
            Some(rest) => {
                let (tile, codec) = rest.split_once(" ! ").expect("fmaptile ... ! codec");
                format!("fmaptile {tile} ! {picture}{codec}{coded}")
            }
            None => format!("fmaptile ! {picture}{setting}{coded}"),
        }
    }

    /// Coded mosaics → feature frames of `split` of the clip's model.
    fn decoder(&self, clip: &Clip, split: &str) -> String {
        let decode = match self {
            MosaicCodec::Png => "pngdec",
            MosaicCodec::X264 { .. } => "h264parse ! avdec_h264",
            _ => "h265parse ! avdec_h265",
        };
        let transform = match self {
            MosaicCodec::X265Klt { .. } => {
                format!(
                    " channel-transform=\"{}\"",
                    calibration(clip, split).display()
                )
            }
            _ => String::new(),
        };
        format!(
            "{decode} ! fmapuntile model=\"{}\" split-at={split}{transform}",
            clip.model.display()
        )
    }
}

/// The calibration file of the clip's model at `split` (`fmap-calibrate`'s default output).
fn calibration(clip: &Clip, split: &str) -> PathBuf {
    Calibration::sidecar_path(&clip.model, split)
}

/// The seed's ladder: lossless, PNG, and QP 17–32 (the seed's 22–37 shifted: QP 22 just
/// misses the accuracy bars on NanoDet, and at 37 half the people are lost), for x265 (8-bit
/// and 10-bit codes) and x264; and x265 at the rate targets fmapenc's rate control is measured
/// at ([`crate::evaluate::RATE_TARGETS`]); and the x265 ladder on [`KLT_COMPONENTS`] principal
/// components.
pub fn default_codecs() -> Vec<MosaicCodec> {
    const QPS: [u32; 4] = [17, 22, 27, 32];
    let mut c = vec![MosaicCodec::X265Lossless, MosaicCodec::Png];
    c.extend(QPS.map(|qp| MosaicCodec::X265 { qp }));
    c.extend(QPS.map(|qp| MosaicCodec::X265Main10 { qp }));
    c.extend(QPS.map(|qp| MosaicCodec::X264 { qp }));
    c.extend(crate::evaluate::RATE_TARGETS.map(|kbps| MosaicCodec::X265Rate { kbps }));
    c.extend(QPS.map(|qp| MosaicCodec::X265Klt {
        qp,
        components: KLT_COMPONENTS,
    }));
    c
}

/// The default ladder of the named families (comma-separated, from [`FAMILIES`]).
pub fn codecs_of(families: &str) -> Result<Vec<MosaicCodec>, String> {
    let names: Vec<&str> = families.split(',').map(str::trim).collect();
    if let Some(bad) = names.iter().find(|n| !FAMILIES.contains(n)) {
        return Err(format!(
            "tiled codec family '{bad}' is not one of {}",
            FAMILIES.join(", ")
        ));
    }
    Ok(default_codecs()
        .into_iter()
        .filter(|c| names.contains(&c.family()))
        .collect())
}

/// Codes the recorded cut with `codec` through fmaptile and fmapuntile and returns the
/// reconstructed feature frames (the recording's caps and timestamps) and the coded bytes per
/// frame.
pub fn code_features(
    clip: &Clip,
    run: &SplitRun,
    codec: MosaicCodec,
) -> Result<(Recording, Vec<u64>, Duration, Duration), String> {
    let n = run.features.buffers.len();
    let (coded, enc_t) = run_recording(
        &format!(
            "appsrc name=src ! {} ! appsink name=sink",
            codec.encoder(clip, &run.split)
        ),
        Some(&run.features),
        RUN_LIMIT,
    )?;
    let (decoded, dec_t) = run_recording(
        &format!(
            "appsrc name=src ! {} ! appsink name=sink",
            codec.decoder(clip, &run.split)
        ),
        Some(&coded),
        RUN_LIMIT,
    )?;
    // One HEVC access unit or PNG per frame (no B-frames): coded sizes line up with frames.
    if coded.buffers.len() != n || decoded.buffers.len() != n {
        return Err(format!(
            "{}: {} frames in, {} coded, {} decoded",
            codec.setting(),
            n,
            coded.buffers.len(),
            decoded.buffers.len()
        ));
    }
    if decoded.caps != run.features.caps {
        return Err(format!(
            "fmapuntile's caps {} differ from splitinfer-front's {}",
            decoded.caps, run.features.caps
        ));
    }
    let sizes = coded.buffers.iter().map(|b| b.size() as u64).collect();
    // Video encoders may shift timestamps (x264/x265 through GstVideoEncoder start at 1000 h to
    // keep DTS positive); frames line up one to one, so they take back the recording's, in the
    // buffer and in the frame (so identical codes make identical frames for the cache).
    let buffers = decoded
        .buffers
        .iter()
        .zip(&run.features.buffers)
        .map(|(d, src)| {
            let parse = |b: &gst::Buffer| -> Result<FeatureFrame, String> {
                let map = b.map_readable().map_err(|_| "unreadable feature frame")?;
                FeatureFrame::from_raw(&map).map_err(|e| e.to_string())
            };
            let (mut frame, original) = (parse(d)?, parse(src)?);
            (frame.index, frame.pts_ns) = (original.index, original.pts_ns);
            let mut b = gst::Buffer::from_mut_slice(frame.to_raw().map_err(|e| e.to_string())?);
            {
                let b = b.get_mut().expect("new buffer is writable");
                b.set_pts(src.pts());
                b.set_dts(src.dts());
                b.set_duration(src.duration());
            }
            Ok(b)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let decoded = Recording {
        caps: decoded.caps,
        buffers,
    };
    Ok((decoded, sizes, enc_t, dec_t))
}

/// Measures the tiled-mosaic method with one codec on one recorded split.
pub fn evaluate_tiling(
    clip: &Clip,
    run: &SplitRun,
    reference: &[FrameDetections],
    codec: MosaicCodec,
    cache: &DetectionCache,
) -> Result<SettingResult, String> {
    let (decoded, sizes, enc_t, dec_t) = code_features(clip, run, codec)?;
    let m = Measured {
        method: codec.method().into(),
        encoder: Some(codec.setting()),
        bits: Some(codec.bits()),
        sizes,
        encode: Some(enc_t),
        decode: Some(dec_t),
        decoded: Some(&decoded),
    };
    score(clip, run, reference, m, cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_goes_through_the_elements() {
        let clip = Clip {
            video: "v.avi".into(),
            model: "m.onnx".into(),
            frames: 0,
            threads: 1,
        };
        let codecs = default_codecs();
        assert_eq!(codecs.len(), 21);
        let encoder = |c: MosaicCodec| c.encoder(&clip, "stage2");
        for c in codecs.into_iter().filter(|c| c.family() != "x265-klt") {
            assert!(encoder(c).starts_with("fmaptile ! "), "{c:?}");
            assert!(
                c.decoder(&clip, "stage2")
                    .ends_with("fmapuntile model=\"m.onnx\" split-at=stage2"),
                "{c:?}"
            );
        }
        assert!(encoder(MosaicCodec::X265 { qp: 22 }).contains("qp=22"));
        assert!(encoder(MosaicCodec::X264 { qp: 22 }).contains("quantizer=22"));
        assert!(encoder(MosaicCodec::Png).contains("GRAY8 ! pngenc"));
        // The KLT family: the transform at both ends, from the model's calibration file; the
        // picture format between fmaptile and the encoder.
        let klt = MosaicCodec::X265Klt {
            qp: 22,
            components: 64,
        };
        assert_eq!(
            encoder(klt),
            "fmaptile channel-transform=\"m.stage2.calib.json\" transform-components=64 ! \
             video/x-raw,format=I420 ! x265enc speed-preset=fast key-int-max=20 qp=22 \
             option-string=bframes=0 ! video/x-h265,stream-format=byte-stream"
        );
        assert!(
            klt.decoder(&clip, "stage2").ends_with(
                "fmapuntile model=\"m.onnx\" split-at=stage2 \
                 channel-transform=\"m.stage2.calib.json\""
            ),
            "{}",
            klt.decoder(&clip, "stage2")
        );
        assert!(
            !klt.applies(&clip, "stage2"),
            "m.onnx has no calibration file"
        );
        assert!(MosaicCodec::X265 { qp: 22 }.applies(&clip, "stage2"));
        let main10 = MosaicCodec::X265Main10 { qp: 27 };
        assert_eq!(
            encoder(main10),
            format!(
                "fmaptile ! {} ! video/x-h265,stream-format=byte-stream",
                main10.setting()
            )
        );
        assert!(
            main10
                .setting()
                .starts_with("video/x-raw,format=I420_10LE ! x265enc")
        );
        assert_ne!(main10.setting(), MosaicCodec::X265 { qp: 27 }.setting());
        assert_eq!(
            (main10.bits(), main10.method()),
            (10, "tiled 10-bit + HEVC")
        );
    }

    #[test]
    fn families_select_ladders() {
        let c = codecs_of("x265, x265-10bit").unwrap();
        assert_eq!(c.len(), 8);
        assert!(c.iter().all(|c| c.family().starts_with("x265")));
        assert_eq!(codecs_of(&FAMILIES.join(",")).unwrap(), default_codecs());
        let rate = codecs_of("x265-bitrate").unwrap();
        assert_eq!(rate.len(), 3);
        assert!(rate[0].setting().contains("bitrate=100"), "{rate:?}");
        assert_eq!(rate[0].method(), "tiled 8-bit + HEVC, rate control");
        let e = codecs_of("x266").unwrap_err();
        assert!(e.contains("x265-10bit"), "{e}");
        let klt = codecs_of("x265-klt").unwrap();
        assert_eq!(klt.len(), 4);
        assert!(klt.iter().all(|c| c.method() == "tiled 8-bit + HEVC, KLT"));
        let lossless: Vec<_> = default_codecs()
            .into_iter()
            .filter(MosaicCodec::is_lossless)
            .collect();
        assert_eq!(lossless, [MosaicCodec::X265Lossless, MosaicCodec::Png]);
    }
}
