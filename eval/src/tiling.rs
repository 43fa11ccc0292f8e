//! The method of Choi & Bajić (seed 001): the cut tensor is quantized to 8 bits with its
//! per-frame minimum and maximum (two float32 side parameters, 8 bytes, counted in the rate),
//! its channels are tiled into one grey image (a near-square grid), and the image sequence is
//! coded with a standard codec: HEVC (x265) lossless or at a QP ladder, or PNG.
//!
//! x265 codes YUV, not grey: the mosaic goes in the luma plane of an I420 frame and both chroma
//! planes are set to 128 (flat, they cost almost nothing). Tensors of an 8-bit model are already
//! codes; they are tiled as they are and their scale and zero point are the side information.
//! A cut with several tensors is sent as one mosaic stream per tensor; the rate is their sum.

use std::time::Duration;

use codec_core::{FeatureFrame, Tensor, TensorData};

use crate::evaluate::{
    Clip, DetectionCache, FrameDetections, Measured, SettingResult, SplitRun, score,
};
use crate::stream::{Recording, run_recording};

const RUN_LIMIT: Duration = Duration::from_secs(3600);
/// Side information per tensor per frame: two float32 (min and max, or scale and zero point).
pub const SIDE_BYTES_PER_TENSOR: usize = 8;
/// Mosaic sides are padded to a multiple of 8 (x265's smallest coding block; it also makes
/// every GStreamer row stride equal to the width).
const ALIGN: usize = 8;

/// Why a mosaic cannot be turned back into channels.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TilingError {
    #[error("mosaic has {got} bytes, the {width}x{height} grid needs {need}")]
    WrongSize {
        got: usize,
        need: usize,
        width: usize,
        height: usize,
    },
    #[error("tensor has {got} codes, its shape needs {need}")]
    WrongLength { got: usize, need: usize },
}

/// Where the channels of a (C, H, W) tensor go in the mosaic: `cols` × `rows` tiles of H × W,
/// row by row, in a `width` × `height` image (padding is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub channels: usize,
    pub tile_height: usize,
    pub tile_width: usize,
    pub cols: usize,
    pub rows: usize,
    pub width: usize,
    pub height: usize,
}

impl Grid {
    /// The near-square grid: ⌈√C⌉ columns and as many rows as needed.
    pub fn for_shape(channels: usize, tile_height: usize, tile_width: usize) -> Self {
        let channels = channels.max(1);
        let mut cols = (channels as f64).sqrt().ceil() as usize;
        while cols * cols < channels {
            cols += 1;
        }
        let rows = channels.div_ceil(cols);
        let round = |v: usize| v.max(1).div_ceil(ALIGN) * ALIGN;
        Grid {
            channels,
            tile_height,
            tile_width,
            cols,
            rows,
            width: round(cols * tile_width),
            height: round(rows * tile_height),
        }
    }

    fn need(&self) -> usize {
        self.channels * self.tile_height * self.tile_width
    }
}

/// Tiles channel-major codes (C, H, W) into a `width × height` image.
pub fn tile(codes: &[u8], grid: &Grid) -> Result<Vec<u8>, TilingError> {
    if codes.len() != grid.need() {
        return Err(TilingError::WrongLength {
            got: codes.len(),
            need: grid.need(),
        });
    }
    let (th, tw) = (grid.tile_height, grid.tile_width);
    let mut image = vec![0u8; grid.width * grid.height];
    for (c, plane) in codes.chunks_exact((th * tw).max(1)).enumerate() {
        let (x0, y0) = ((c % grid.cols) * tw, (c / grid.cols) * th);
        for (y, row) in plane.chunks_exact(tw.max(1)).enumerate() {
            let at = (y0 + y) * grid.width + x0;
            image[at..at + tw].copy_from_slice(row);
        }
    }
    Ok(image)
}

/// The inverse of [`tile`]: the channel-major codes of a mosaic.
pub fn untile(image: &[u8], grid: &Grid) -> Result<Vec<u8>, TilingError> {
    if image.len() != grid.width * grid.height {
        return Err(TilingError::WrongSize {
            got: image.len(),
            need: grid.width * grid.height,
            width: grid.width,
            height: grid.height,
        });
    }
    let (th, tw) = (grid.tile_height, grid.tile_width);
    let mut codes = Vec::with_capacity(grid.need());
    for c in 0..grid.channels {
        let (x0, y0) = ((c % grid.cols) * tw, (c / grid.cols) * th);
        for y in 0..th {
            let at = (y0 + y) * grid.width + x0;
            codes.extend_from_slice(&image[at..at + tw]);
        }
    }
    Ok(codes)
}

/// How the codes of one tensor map back to values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SideInfo {
    /// Equation (2)/(3) of the paper: value = min + code·(max − min)/255.
    MinMax { min: f32, max: f32 },
    /// The model's own 8-bit quantization: value = (code − zero_point)·scale.
    Model { scale: f32, zero_point: i32 },
}

/// 8-bit min/max quantization of a float tensor (a constant tensor codes to all zeros).
pub fn quantize_min_max(values: &[f32]) -> (Vec<u8>, SideInfo) {
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in values.iter().filter(|v| v.is_finite()) {
        min = min.min(v);
        max = max.max(v);
    }
    if min > max {
        (min, max) = (0.0, 0.0);
    }
    let range = max - min;
    let codes = values
        .iter()
        .map(|&v| {
            if range > 0.0 && v.is_finite() {
                ((v - min) / range * 255.0).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
        .collect();
    (codes, SideInfo::MinMax { min, max })
}

/// Codes and side information of a tensor.
pub fn to_codes(tensor: &Tensor) -> (Vec<u8>, SideInfo) {
    match &tensor.data {
        TensorData::F32(v) => quantize_min_max(v),
        TensorData::U8 {
            codes,
            scale,
            zero_point,
        } => (
            codes.clone(),
            SideInfo::Model {
                scale: *scale,
                zero_point: *zero_point,
            },
        ),
    }
}

/// The tensor the codes stand for, of the same kind (float or 8-bit) as the original.
pub fn from_codes(original: &Tensor, codes: Vec<u8>, side: SideInfo) -> Result<Tensor, String> {
    let err = |e: codec_core::FrameError| e.to_string();
    match side {
        SideInfo::MinMax { min, max } => {
            let step = (max - min) / 255.0;
            let values = codes.iter().map(|&c| min + c as f32 * step).collect();
            Tensor::from_f32(original.name.clone(), original.shape, values).map_err(err)
        }
        SideInfo::Model { scale, zero_point } => Tensor::from_u8(
            original.name.clone(),
            original.shape,
            codes,
            scale,
            zero_point,
        )
        .map_err(err),
    }
}

/// The codec of the mosaic sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MosaicCodec {
    /// x265 (key frame every `KEY_INT` frames, no B-frames), lossless or at a constant QP.
    X265Lossless,
    X265 {
        qp: u32,
    },
    Png,
}

/// Key-frame interval of the x265 mosaic streams (2 s at 10 fps, like the video anchors).
pub const KEY_INT: u32 = 20;
/// x265 speed preset for all HEVC coding in the evaluation (feature mosaics and anchors).
pub const X265_PRESET: &str = "fast";

impl MosaicCodec {
    pub fn method(&self) -> &'static str {
        match self {
            MosaicCodec::X265Lossless => "tiled 8-bit + HEVC lossless",
            MosaicCodec::X265 { .. } => "tiled 8-bit + HEVC",
            MosaicCodec::Png => "tiled 8-bit + PNG",
        }
    }

    pub fn setting(&self) -> String {
        match self {
            MosaicCodec::X265Lossless => format!(
                "x265enc speed-preset={X265_PRESET} key-int-max={KEY_INT} option-string=lossless=1:bframes=0"
            ),
            MosaicCodec::X265 { qp } => format!(
                "x265enc speed-preset={X265_PRESET} key-int-max={KEY_INT} qp={qp} option-string=bframes=0"
            ),
            MosaicCodec::Png => "pngenc".into(),
        }
    }

    fn encoder(&self) -> String {
        match self {
            MosaicCodec::Png => "pngenc".into(),
            _ => format!(
                "{} ! video/x-h265,stream-format=byte-stream",
                self.setting()
            ),
        }
    }

    fn decoder(&self) -> &'static str {
        match self {
            MosaicCodec::Png => "pngdec ! video/x-raw,format=GRAY8",
            _ => "h265parse ! avdec_h265 ! video/x-raw,format=I420",
        }
    }

    fn format(&self) -> &'static str {
        match self {
            MosaicCodec::Png => "GRAY8",
            _ => "I420",
        }
    }
}

/// The seed's ladder: lossless, PNG, and QP 17–32 (the seed's 22–37 shifted: QP 22 just
/// misses the accuracy bars on NanoDet, and at 37 half the people are lost).
pub fn default_codecs() -> Vec<MosaicCodec> {
    let mut c = vec![MosaicCodec::X265Lossless, MosaicCodec::Png];
    c.extend([17, 22, 27, 32].map(|qp| MosaicCodec::X265 { qp }));
    c
}

/// An I420 frame with `mosaic` as luma and flat (128) chroma; or the mosaic alone for GRAY8.
fn frame_bytes(mosaic: Vec<u8>, grid: &Grid, format: &str) -> Vec<u8> {
    if format == "GRAY8" {
        return mosaic;
    }
    let chroma = (grid.width / 2) * (grid.height / 2) * 2;
    let mut b = mosaic;
    b.resize(b.len() + chroma, 128);
    b
}

fn parse_frame(b: &gst::Buffer) -> Result<FeatureFrame, String> {
    let map = b.map_readable().map_err(|_| "unreadable buffer")?;
    FeatureFrame::from_raw(&map).map_err(|e| e.to_string())
}

/// Codes the recorded cut with `codec` and returns the reconstructed feature frames (same caps
/// and timestamps as the recording) and the coded bytes per frame (mosaics + side information).
pub fn code_features(
    run: &SplitRun,
    codec: MosaicCodec,
) -> Result<(Recording, Vec<u64>, Duration, Duration), String> {
    let originals: Vec<FeatureFrame> = run
        .features
        .buffers
        .iter()
        .map(parse_frame)
        .collect::<Result<_, _>>()?;
    let first = originals.first().ok_or("no feature frames recorded")?;
    let framerate = run
        .features
        .caps
        .structure(0)
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .unwrap_or(gst::Fraction::new(0, 1));
    let n = originals.len();
    let mut sizes = vec![SIDE_BYTES_PER_TENSOR as u64 * first.tensors.len() as u64; n];
    let mut sides: Vec<Vec<SideInfo>> = vec![Vec::new(); n];
    let mut decoded_codes: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n];
    let (mut enc_t, mut dec_t) = (Duration::ZERO, Duration::ZERO);
    for (ti, t0) in first.tensors.iter().enumerate() {
        let grid = Grid::for_shape(t0.shape.channels, t0.shape.height, t0.shape.width);
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", codec.format())
            .field("width", grid.width as i32)
            .field("height", grid.height as i32)
            .field("framerate", framerate)
            .build();
        let mut buffers = Vec::with_capacity(n);
        for (fi, (frame, src)) in originals.iter().zip(&run.features.buffers).enumerate() {
            let t = frame
                .tensors
                .get(ti)
                .filter(|t| t.shape == t0.shape)
                .ok_or("feature frames change their tensors mid-stream")?;
            let (codes, side) = to_codes(t);
            sides[fi].push(side);
            let mosaic = tile(&codes, &grid).map_err(|e| e.to_string())?;
            let mut b = gst::Buffer::from_mut_slice(frame_bytes(mosaic, &grid, codec.format()));
            {
                let b = b.get_mut().expect("new buffer is writable");
                b.set_pts(src.pts());
                b.set_duration(src.duration());
            }
            buffers.push(b);
        }
        let raw = Recording { caps, buffers };
        let (coded, et) = run_recording(
            &format!("appsrc name=src ! {} ! appsink name=sink", codec.encoder()),
            Some(&raw),
            RUN_LIMIT,
        )?;
        enc_t += et;
        let (decoded, dt) = run_recording(
            &format!("appsrc name=src ! {} ! appsink name=sink", codec.decoder()),
            Some(&coded),
            RUN_LIMIT,
        )?;
        dec_t += dt;
        // An HEVC access unit per frame (no B-frames): coded sizes line up with frames in order.
        if coded.buffers.len() != n || decoded.buffers.len() != n {
            return Err(format!(
                "{}: {} frames in, {} coded, {} decoded",
                codec.setting(),
                n,
                coded.buffers.len(),
                decoded.buffers.len()
            ));
        }
        for (fi, (c, d)) in coded.buffers.iter().zip(&decoded.buffers).enumerate() {
            sizes[fi] += c.size() as u64;
            let map = d.map_readable().map_err(|_| "unreadable decoded frame")?;
            let luma = map
                .get(..grid.width * grid.height)
                .ok_or("decoded frame is smaller than the mosaic")?;
            decoded_codes[fi].push(untile(luma, &grid).map_err(|e| e.to_string())?);
        }
    }
    let mut out = Vec::with_capacity(n);
    for (fi, (frame, src)) in originals.iter().zip(&run.features.buffers).enumerate() {
        let tensors = frame
            .tensors
            .iter()
            .zip(std::mem::take(&mut decoded_codes[fi]))
            .zip(&sides[fi])
            .map(|((t, codes), side)| from_codes(t, codes, *side))
            .collect::<Result<Vec<_>, _>>()?;
        let rebuilt = FeatureFrame::new(frame.index, frame.pts_ns, tensors);
        let mut b = gst::Buffer::from_mut_slice(rebuilt.to_raw().map_err(|e| e.to_string())?);
        {
            let b = b.get_mut().expect("new buffer is writable");
            b.set_pts(src.pts());
            b.set_dts(src.dts());
            b.set_duration(src.duration());
        }
        out.push(b);
    }
    Ok((
        Recording {
            caps: run.features.caps.clone(),
            buffers: out,
        },
        sizes,
        enc_t,
        dec_t,
    ))
}

/// Measures the tiled-mosaic method with one codec on one recorded split.
pub fn evaluate_tiling(
    clip: &Clip,
    run: &SplitRun,
    reference: &[FrameDetections],
    codec: MosaicCodec,
    cache: &DetectionCache,
) -> Result<SettingResult, String> {
    let (decoded, sizes, enc_t, dec_t) = code_features(run, codec)?;
    let m = Measured {
        method: codec.method().into(),
        encoder: Some(codec.setting()),
        bits: Some(8),
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
    use codec_core::Shape;
    use proptest::prelude::*;

    #[test]
    fn grid_is_near_square_and_aligned() {
        let g = Grid::for_shape(128, 52, 52);
        assert_eq!((g.cols, g.rows), (12, 11));
        assert_eq!((g.width, g.height), (624, 576));
        let g = Grid::for_shape(96, 19, 19);
        assert_eq!((g.cols, g.rows), (10, 10));
        assert_eq!((g.width % 8, g.height % 8), (0, 0));
        assert!(g.width >= 190 && g.height >= 190);
        let g = Grid::for_shape(1, 3, 5);
        assert_eq!((g.cols, g.rows, g.width, g.height), (1, 1, 8, 8));
    }

    #[test]
    fn tile_places_channels_row_by_row() {
        // 3 channels of 2x2 → 2x2 grid of tiles in an 8x8 image.
        let codes: Vec<u8> = (1..=12).collect();
        let g = Grid::for_shape(3, 2, 2);
        let img = tile(&codes, &g).unwrap();
        assert_eq!(&img[0..4], &[1, 2, 5, 6]);
        assert_eq!(&img[8..12], &[3, 4, 7, 8]);
        assert_eq!(&img[16..20], &[9, 10, 0, 0]);
        assert_eq!(&img[24..28], &[11, 12, 0, 0]);
        assert_eq!(untile(&img, &g).unwrap(), codes);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let g = Grid::for_shape(3, 2, 2);
        assert!(matches!(
            tile(&[0; 11], &g),
            Err(TilingError::WrongLength { got: 11, need: 12 })
        ));
        assert!(matches!(
            untile(&[0; 63], &g),
            Err(TilingError::WrongSize { got: 63, .. })
        ));
    }

    proptest! {
        #[test]
        fn tile_untile_round_trip(c in 1usize..70, h in 1usize..12, w in 1usize..12, seed: u8) {
            let codes: Vec<u8> = (0..c * h * w).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let g = Grid::for_shape(c, h, w);
            prop_assert!(g.cols * g.rows >= c && (g.cols - 1) * g.rows < c + g.rows);
            let img = tile(&codes, &g).unwrap();
            prop_assert_eq!(img.len(), g.width * g.height);
            prop_assert_eq!(untile(&img, &g).unwrap(), codes);
        }

        #[test]
        fn min_max_quantization_error_is_half_a_step(v in proptest::collection::vec(-50f32..50.0, 1..200)) {
            let t = Tensor::from_f32("x", Shape::new(v.len(), 1, 1), v.clone()).unwrap();
            let (codes, side) = to_codes(&t);
            let back = from_codes(&t, codes, side).unwrap().to_f32();
            let SideInfo::MinMax { min, max } = side else { panic!("float tensor gave {side:?}") };
            let step = (max - min) / 255.0;
            for (a, b) in v.iter().zip(back) {
                prop_assert!((a - b).abs() <= step * 0.5 + 1e-4 * (1.0 + a.abs()));
            }
        }
    }

    #[test]
    fn eight_bit_tensors_keep_their_codes_and_parameters() {
        let t = Tensor::from_u8("q", Shape::new(2, 2, 2), (0..8).collect(), 0.5, 3).unwrap();
        let (codes, side) = to_codes(&t);
        assert_eq!(
            side,
            SideInfo::Model {
                scale: 0.5,
                zero_point: 3
            }
        );
        assert_eq!(from_codes(&t, codes, side).unwrap(), t);
    }

    #[test]
    fn constant_tensor_quantizes_to_zero_and_back() {
        let t = Tensor::from_f32("c", Shape::new(1, 2, 2), vec![1.5; 4]).unwrap();
        let (codes, side) = to_codes(&t);
        assert_eq!(codes, vec![0; 4]);
        assert_eq!(from_codes(&t, codes, side).unwrap(), t);
    }

    #[test]
    fn mosaic_frame_has_flat_chroma() {
        let g = Grid::for_shape(4, 4, 4);
        let b = frame_bytes(vec![7; g.width * g.height], &g, "I420");
        assert_eq!(b.len(), g.width * g.height * 3 / 2);
        assert!(b[g.width * g.height..].iter().all(|&c| c == 128));
    }
}
