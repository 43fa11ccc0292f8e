//! The tiled mosaic (Choi & Bajić 2018): every tensor of a feature frame quantized to 8-bit or
//! 10-bit codes and its channel planes tiled into one grey picture, so that any video encoder
//! can code feature maps. `fmaptile` and `fmapuntile` are thin GStreamer wrappers around this module.
//!
//! Picture layout (all sides multiples of [`ALIGN`] = 16, the macroblock size of H.264 and the
//! smallest CTU of H.265):
//!
//! ```text
//! +--------------------------------------+
//! | header band (GRAY8 only): side       |  header_height rows (multiple of 16)
//! | information, one bit per 8x8 block   |
//! +--------------------------------------+
//! | tensor 0: channel planes row by row, |  each tensor starts on a 16-row boundary, so
//! | ⌈√C⌉ columns (the widest tensor sets |  planes of one tensor (same range, same
//! | the picture width)                   |  statistics) sit together and no coding
//! +--------------------------------------+  block mixes two tensors
//! | tensor 1 ...                         |
//! +--------------------------------------+
//! ```
//!
//! Padding is code 0. Codes come from codec-core's quantizers at the picture's bit depth (one of
//! [`DEPTHS`]: 8 for every encoder, 10 for HEVC Main 10 / H.264 High 10, the depth MPEG FCM
//! codes features at): a float tensor gets a
//! MinMax [`QuantParams`] (range widened to include 0, integer zero point) over a range that
//! [`RangeTracker`] keeps from frame to frame while the values fit it (within 1.1×), snapped to
//! 1/16 octave when it changes: a range that moved every frame would change every code of the
//! static background and flip header bits in every frame (NanoDet stage2, 60 frames of
//! vtest.avi, x265 QP 27: 351 kbit/s with a new range per frame, 338 tracked, same accuracy);
//! the u8 codes of an 8-bit model are kept with the model's scale and zero point (in a 10-bit
//! picture as `4q`, exactly: the 10-bit path changes only what the video encoder does).
//!
//! **Side information** travels in the picture itself, so it survives every video encoder, RTP
//! payloader and container without caps. In a YUV picture ([`HeaderPlace::Chroma`]) it is
//! written into the U plane, which is otherwise flat mid-grey like V: there it costs next to
//! nothing, whereas in the luma plane an encoder's weighted prediction (x265's default
//! `weightp`, fitted to the feature planes' changing levels) spoils the static header in every
//! P-frame, and re-coding it cost 7–9 % of the rate of NanoDet's stage2 mosaic. A GRAY8 picture
//! has no chroma and carries it in a luma band above the tensors ([`HeaderPlace::Luma`]).
//! Header, version 3, little-endian bytes, each bit an 8x8 block of level [`LEVEL_0`] or
//! [`LEVEL_1`] (in 8-bit units; ×4 in a 10-bit picture) in raster order (least significant bit
//! first), read back by comparing the block's mean with the midpoint:
//!
//! ```text
//! magic "FT" 2 | version 1 | tensor count 1 | bits 1 (code and sample depth, 8 or 10)
//! model 8 (the 64-bit model hash of the caps)
//! cut 4 (CRC-32 of the comma-joined cut tensor names) | source width 2 | source height 2
//! transform 8 (digest of the channel transform, `codec_core::transform::transforms_id`; 0 = none)
//! components 2 (principal components kept; each transformed tensor holds that many planes)
//! per tensor: dtype 1 (0 f32, 1 u8) | c 2 | h 2 | w 2 | scale 4 (f32) | zero point 2
//! CRC-32 4 of everything before
//! ```
//!
//! A float tensor's scale and zero point are those of its codes at `bits`; a u8 tensor's are the
//! 8-bit model's own (its codes at `bits` follow from them, [`QuantParams::picture_from_8bit`]).
//! A block's mean moves far less than the 112 levels (8-bit units at either depth) between a
//! level and the midpoint at any sane QP (measured in the plugin tests), and the CRC catches
//! the rest.

use thiserror::Error;

use crate::frame::{FeatureFrame, FrameError, Shape, Tensor, TensorData};
use crate::quant::{QuantError, QuantParams, codes_from_8bit, codes_to_8bit, min_max_finite};

/// Picture sides and tensor regions are multiples of this many pixels.
pub const ALIGN: usize = 16;
/// Side of the square block carrying one header bit.
pub const BIT_BLOCK: usize = 8;
/// Luma level of a 0 bit, 8-bit units (inside the video range, so limited-range conversions
/// keep it); [`at_depth`] gives it in a deeper picture.
pub const LEVEL_0: u8 = 16;
/// Luma level of a 1 bit, 8-bit units.
pub const LEVEL_1: u8 = 240;
const MIDPOINT: u32 = (LEVEL_0 as u32 + LEVEL_1 as u32) / 2;
const MAGIC: [u8; 2] = *b"FT";
/// Version of the header written in the picture.
pub const HEADER_VERSION: u8 = 3;
const FIXED_HEADER_BYTES: usize = 2 + 1 + 1 + 1 + 8 + 4 + 2 + 2 + 8 + 2 + 4;
const TENSOR_HEADER_BYTES: usize = 1 + 2 + 2 + 2 + 4 + 2;
/// Bit depths of a mosaic's codes, which are also its picture's sample depth: 8 (every video
/// encoder) and 10 (HEVC Main 10, H.264 High 10; MPEG FCM codes features at 10 bits).
pub const DEPTHS: [u8; 2] = [8, 10];

/// An 8-bit level (header level, mid-grey) in a picture of `bits` per sample, as video
/// conversions scale it (`v · 2^(bits−8)`).
pub fn at_depth(level: u8, bits: u8) -> u16 {
    (level as u16) << bits.saturating_sub(8)
}
/// Largest mosaic side accepted from a stream (never trust sizes from a picture).
pub const MAX_SIDE: usize = 16384;
/// Most tensors one mosaic holds (one byte in the header).
pub const MAX_TENSORS: usize = 255;

/// Why a frame cannot be tiled or a picture cannot be untiled.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TileError {
    #[error(
        "the picture has no valid mosaic header ({0}): the stream was not made by fmaptile, or it was scaled, cropped or converted on the way (keep the picture size and luma as fmaptile made them)"
    )]
    BadHeader(String),
    #[error(
        "the picture is {got_width}x{got_height} but its header describes a {width}x{height} mosaic: do not scale or crop the video between fmaptile and fmapuntile"
    )]
    WrongSize {
        got_width: usize,
        got_height: usize,
        width: usize,
        height: usize,
    },
    #[error(
        "the stream was made from model {stream} but fmapuntile loaded model {ours}: set fmapuntile's model= to the same ONNX file as the edge's splitinfer-front"
    )]
    WrongModel { stream: String, ours: String },
    #[error(
        "the stream's cut (CRC-32 {stream:08x}) is not fmapuntile's cut {names:?} (CRC-32 {ours:08x}): set fmapuntile's split-at= to the edge's split-at"
    )]
    WrongCut {
        stream: u32,
        ours: u32,
        names: Vec<String>,
    },
    #[error(
        "the stream has {stream} tensors but fmapuntile's cut has {ours}: set split-at= to the edge's split-at"
    )]
    WrongTensorCount { stream: usize, ours: usize },
    #[error(
        "the mosaic holds {stream}-bit codes but arrives as {picture}-bit pictures: keep fmaptile's picture format up to fmapuntile (for 10 bits I420_10LE: an encoder that codes it, such as x265enc (Main 10), a decoder that outputs it, such as avdec_h265, and no videoconvert in between)"
    )]
    WrongDepth { stream: u8, picture: u8 },
    #[error("{0}-bit mosaics are not supported (bit depths: 8, 10)")]
    UnsupportedDepth(u8),
    #[error("the mosaic of {0} does not fit in {MAX_SIDE}x{MAX_SIDE} pixels")]
    TooLarge(String),
    #[error("feature frame: {0}")]
    Frame(#[from] FrameError),
    #[error("quantizer: {0}")]
    Quant(#[from] QuantError),
    #[error("{0}")]
    Stream(String),
}

/// What both ends must agree on besides the tensors: the model and cut (checked, not
/// transmitted in clear) and the source video size (transmitted, needed to map boxes back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamId {
    /// The model hash of the `application/x-fmap` caps (16 hex digits).
    pub model: u64,
    /// CRC-32 of the comma-joined cut tensor names.
    pub cut: u32,
    pub source_width: u16,
    pub source_height: u16,
    /// The channel transform the tensors were projected with before tiling (its
    /// [`crate::transform::transforms_id`]; 0 = none) and the components it kept.
    pub transform: u64,
    pub components: u16,
}

impl StreamId {
    /// From the caps values: model hash (hex), cut names, source video size.
    pub fn new(
        model_hex: &str,
        cut: &[String],
        width: u32,
        height: u32,
    ) -> Result<StreamId, TileError> {
        let model = u64::from_str_radix(model_hex.get(..16).unwrap_or(model_hex), 16)
            .map_err(|e| TileError::Stream(format!("model hash '{model_hex}' is not hex: {e}")))?;
        let side = |v: u32, what: &str| {
            u16::try_from(v)
                .map_err(|_| TileError::Stream(format!("video {what} {v} does not fit 16 bits")))
        };
        Ok(StreamId {
            model,
            cut: cut_crc(cut),
            source_width: side(width, "width")?,
            source_height: side(height, "height")?,
            transform: 0,
            components: 0,
        })
    }

    /// The same stream with its tensors projected on `components` principal components by the
    /// channel transform(s) of digest `transform` before tiling.
    pub fn with_transform(self, transform: u64, components: u16) -> StreamId {
        StreamId {
            transform,
            components,
            ..self
        }
    }

    /// The model hash as the caps write it.
    pub fn model_hex(&self) -> String {
        format!("{:016x}", self.model)
    }
}

/// CRC-32 of the comma-joined cut tensor names.
pub fn cut_crc(cut: &[String]) -> u32 {
    crc32fast::hash(cut.join(",").as_bytes())
}

/// Where one tensor's planes sit in the mosaic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub shape: Shape,
    pub cols: usize,
    pub rows: usize,
    /// First picture row of the region.
    pub top: usize,
    /// Rows the region takes (multiple of [`ALIGN`]).
    pub height: usize,
}

impl Region {
    /// Top-left pixel of channel `c`.
    fn origin(&self, c: usize) -> (usize, usize) {
        (
            (c % self.cols) * self.shape.width,
            self.top + (c / self.cols) * self.shape.height,
        )
    }
}

/// Which plane carries the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPlace {
    /// A band of luma rows above the tensors (grey pictures).
    Luma,
    /// The U plane of a 4:2:0 picture (`width/2 × height/2`).
    Chroma,
}

/// What a picture format means for a mosaic: where the header goes and the depth of codes and
/// samples (one of [`DEPTHS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureFormat {
    pub place: HeaderPlace,
    pub bits: u8,
}

impl PictureFormat {
    fn check(&self) -> Result<(), TileError> {
        if DEPTHS.contains(&self.bits) {
            Ok(())
        } else {
            Err(TileError::UnsupportedDepth(self.bits))
        }
    }
}

/// The geometry of a mosaic: picture size, header band and one region per tensor. A function
/// of the tensor shapes and the header's place alone, so both ends compute the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosaicLayout {
    pub width: usize,
    pub height: usize,
    pub place: HeaderPlace,
    /// Rows of the luma header band (0 with the header in chroma).
    pub header_height: usize,
    pub regions: Vec<Region>,
}

fn align(v: usize) -> usize {
    v.max(1).div_ceil(ALIGN) * ALIGN
}

/// Bytes of the header for `tensors` tensors.
pub fn header_bytes(tensors: usize) -> usize {
    FIXED_HEADER_BYTES + TENSOR_HEADER_BYTES * tensors
}

fn header_rows(tensors: usize, width: usize) -> usize {
    let per_row = width / BIT_BLOCK;
    align((header_bytes(tensors) * 8).div_ceil(per_row) * BIT_BLOCK)
}

impl MosaicLayout {
    /// The layout for tensors of these shapes: the widest near-square grid (⌈√C⌉ columns) sets
    /// the width; every tensor fills rows of that width. With the header in chroma, rows are
    /// added at the bottom if the U plane is too small for it.
    pub fn for_shapes(shapes: &[Shape], place: HeaderPlace) -> Result<MosaicLayout, TileError> {
        if shapes.is_empty() || shapes.len() > MAX_TENSORS {
            return Err(TileError::Stream(format!(
                "{} tensors outside 1..={MAX_TENSORS}",
                shapes.len()
            )));
        }
        let too_large = || {
            let list: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
            TileError::TooLarge(list.join(", "))
        };
        for s in shapes {
            s.validate()?;
            if s.width > MAX_SIDE || s.height > MAX_SIDE || s.channels > u16::MAX as usize {
                return Err(too_large());
            }
        }
        let near_square = |s: &Shape| {
            let mut cols = (s.channels as f64).sqrt().ceil() as usize;
            while cols * cols < s.channels {
                cols += 1;
            }
            cols * s.width
        };
        let width = align(shapes.iter().map(near_square).max().unwrap_or(1));
        if width > MAX_SIDE {
            return Err(too_large());
        }
        let header_height = match place {
            HeaderPlace::Luma => header_rows(shapes.len(), width),
            HeaderPlace::Chroma => 0,
        };
        let mut top = header_height;
        let mut regions = Vec::with_capacity(shapes.len());
        for &shape in shapes {
            let cols = (width / shape.width).clamp(1, shape.channels);
            let rows = shape.channels.div_ceil(cols);
            let height = align(rows * shape.height);
            regions.push(Region {
                shape,
                cols,
                rows,
                top,
                height,
            });
            top += height;
        }
        if place == HeaderPlace::Chroma {
            top = top.max(header_rows(shapes.len(), width / 2) * 2);
        }
        if top > MAX_SIDE {
            return Err(too_large());
        }
        Ok(MosaicLayout {
            width,
            height: top,
            place,
            header_height,
            regions,
        })
    }
}

/// How one tensor's codes map back to values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorSide {
    /// The tensor was u8 codes of an 8-bit model (and is rebuilt as such); `scale` and
    /// `zero_point` are then the model's own.
    pub eight_bit: bool,
    pub shape: Shape,
    pub scale: f32,
    pub zero_point: u16,
}

impl TensorSide {
    /// The quantizer of this tensor's codes at `bits`.
    pub fn params(&self, bits: u8) -> Result<QuantParams, TileError> {
        if self.eight_bit {
            Ok(QuantParams::picture_from_8bit(
                self.scale,
                self.zero_point as i32,
                bits,
            )?)
        } else {
            Ok(QuantParams {
                scale: self.scale,
                zero_point: self.zero_point as i32,
                bits,
            })
        }
    }
}

/// The side information of one mosaic picture.
#[derive(Debug, Clone, PartialEq)]
pub struct MosaicHeader {
    pub stream: StreamId,
    /// Bits per code and per sample (one of [`DEPTHS`]).
    pub bits: u8,
    pub tensors: Vec<TensorSide>,
}

impl MosaicHeader {
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(header_bytes(self.tensors.len()));
        b.extend_from_slice(&MAGIC);
        b.push(HEADER_VERSION);
        b.push(self.tensors.len() as u8);
        b.push(self.bits);
        b.extend_from_slice(&self.stream.model.to_le_bytes());
        b.extend_from_slice(&self.stream.cut.to_le_bytes());
        b.extend_from_slice(&self.stream.source_width.to_le_bytes());
        b.extend_from_slice(&self.stream.source_height.to_le_bytes());
        b.extend_from_slice(&self.stream.transform.to_le_bytes());
        b.extend_from_slice(&self.stream.components.to_le_bytes());
        for t in &self.tensors {
            b.push(t.eight_bit as u8);
            for d in [t.shape.channels, t.shape.height, t.shape.width] {
                b.extend_from_slice(&(d as u16).to_le_bytes());
            }
            b.extend_from_slice(&t.scale.to_le_bytes());
            b.extend_from_slice(&t.zero_point.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Writes the header bits from the top of a `width`-wide plane of samples at `self.bits`.
    fn write(&self, plane: &mut [u16], width: usize) {
        let per_row = width / BIT_BLOCK;
        let levels = [LEVEL_0, LEVEL_1].map(|l| at_depth(l, self.bits));
        for (i, bit) in bits_of(&self.to_bytes()).enumerate() {
            let (bx, by) = ((i % per_row) * BIT_BLOCK, (i / per_row) * BIT_BLOCK);
            let level = levels[bit as usize];
            for y in by..by + BIT_BLOCK {
                plane[y * width + bx..y * width + bx + BIT_BLOCK].fill(level);
            }
        }
    }

    /// Reads the header from the top of a plane; also returns the smallest distance of a block
    /// mean from the decision threshold (8-bit units: 112 = untouched).
    pub fn read(plane: &Plane) -> Result<(MosaicHeader, u32), TileError> {
        let bad = |m: String| TileError::BadHeader(m);
        plane.check()?;
        let (width, height) = (plane.width, plane.height);
        // Block sums → means in 8-bit units.
        let shift = (BIT_BLOCK * BIT_BLOCK).trailing_zeros() + plane.bits.saturating_sub(8) as u32;
        if width < BIT_BLOCK || height < BIT_BLOCK {
            return Err(bad(format!("plane {width}x{height}")));
        }
        let per_row = width / BIT_BLOCK;
        let capacity = per_row * (height / BIT_BLOCK);
        let mut margin = u32::MAX;
        let mut read_bytes = |from: usize, n: usize| -> Result<Vec<u8>, TileError> {
            if (from + n) * 8 > capacity {
                return Err(bad(format!("{width}x{height} is too small for the header")));
            }
            let mut out = vec![0u8; n];
            for i in from * 8..(from + n) * 8 {
                let (bx, by) = ((i % per_row) * BIT_BLOCK, (i / per_row) * BIT_BLOCK);
                let mut sum = 0u32;
                for y in by..by + BIT_BLOCK {
                    sum += plane.row(bx, y, BIT_BLOCK).map(|v| v as u32).sum::<u32>();
                }
                let mean = sum >> shift;
                margin = margin.min(mean.abs_diff(MIDPOINT));
                if mean > MIDPOINT {
                    out[i / 8 - from] |= 1 << (i % 8);
                }
            }
            Ok(out)
        };
        let start = read_bytes(0, 4)?;
        if start[..2] != MAGIC {
            return Err(bad("no 'FT' magic where the header belongs".into()));
        }
        if start[2] != HEADER_VERSION {
            return Err(bad(format!(
                "header version {} (this build reads {HEADER_VERSION})",
                start[2]
            )));
        }
        let count = start[3] as usize;
        let rest = read_bytes(4, header_bytes(count) - 4)?;
        let bits = rest[0];
        let bytes = [start, rest].concat();
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(bad("header CRC mismatch".into()));
        }
        if !DEPTHS.contains(&bits) {
            return Err(bad(format!("{bits}-bit codes")));
        }
        let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
        let stream = StreamId {
            model: u64::from_le_bytes(body[5..13].try_into().expect("8 bytes")),
            cut: u32::from_le_bytes(body[13..17].try_into().expect("4 bytes")),
            source_width: u16_at(17),
            source_height: u16_at(19),
            transform: u64::from_le_bytes(body[21..29].try_into().expect("8 bytes")),
            components: u16_at(29),
        };
        let mut tensors = Vec::with_capacity(count);
        for t in body[FIXED_HEADER_BYTES - 4..].chunks_exact(TENSOR_HEADER_BYTES) {
            let shape = Shape::new(
                u16::from_le_bytes([t[1], t[2]]) as usize,
                u16::from_le_bytes([t[3], t[4]]) as usize,
                u16::from_le_bytes([t[5], t[6]]) as usize,
            );
            let scale = f32::from_le_bytes(t[7..11].try_into().expect("4 bytes"));
            if t[0] > 1 || !(scale.is_finite() && scale > 0.0) {
                return Err(bad(format!("tensor dtype {} scale {scale}", t[0])));
            }
            tensors.push(TensorSide {
                eight_bit: t[0] == 1,
                shape,
                scale,
                zero_point: u16::from_le_bytes([t[11], t[12]]),
            });
        }
        Ok((
            MosaicHeader {
                stream,
                bits,
                tensors,
            },
            margin,
        ))
    }
}

fn bits_of(bytes: &[u8]) -> impl Iterator<Item = bool> + '_ {
    bytes
        .iter()
        .flat_map(|&b| (0..8).map(move |i| (b >> i) & 1 == 1))
}

/// Steps per octave of the range a float tensor is quantized over (see [`snap_range`]).
pub const RANGE_STEPS_PER_OCTAVE: f32 = 16.0;

/// A range bound rounded away from zero to the next of [`RANGE_STEPS_PER_OCTAVE`] steps per
/// octave (at most 4.4 % wider, 0.06 bit). The header carries the range in the picture, and a
/// range that changes every frame flips header bits (and its CRC) in every frame, which an
/// encoder pays for; a snapped range stays the same over most frames.
pub fn snap_range(v: f32) -> f32 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let steps = (v.abs().log2() * RANGE_STEPS_PER_OCTAVE).ceil();
    v.signum() * (steps / RANGE_STEPS_PER_OCTAVE).exp2()
}

/// The range a float tensor is quantized over, kept from frame to frame: a new MinMax range
/// replaces it only when values fall outside it or it is more than [`SHRINK`] times too wide;
/// new ranges are snapped ([`snap_range`]). The header carries the range in the picture, and a
/// range that changed every frame would flip header bits (and its CRC) in every frame, which
/// the video encoder pays for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeTracker {
    ranges: Vec<Option<(f32, f32)>>,
}

/// A kept range this many times wider than the frame's own is replaced.
pub const SHRINK: f32 = 1.1;

impl RangeTracker {
    /// The range for tensor `index` whose values span `[lo, hi]` (0 included).
    pub fn range(&mut self, index: usize, lo: f32, hi: f32) -> (f32, f32) {
        if self.ranges.len() <= index {
            self.ranges.resize(index + 1, None);
        }
        let slot = &mut self.ranges[index];
        match *slot {
            Some((a, b)) if a <= lo && hi <= b && (b - a) <= SHRINK * (hi - lo) => (a, b),
            _ => {
                let r = (snap_range(lo), snap_range(hi));
                *slot = Some(r);
                r
            }
        }
    }

    /// Codes at `bits` (one of [`DEPTHS`]) and side information of tensor `index`, through
    /// codec-core's quantizers: a float tensor over its tracked MinMax range, an 8-bit model's
    /// codes with the model's own scale and zero point (scaled exactly to `bits`).
    pub fn quantize(
        &mut self,
        index: usize,
        tensor: &Tensor,
        bits: u8,
    ) -> Result<(Vec<u16>, TensorSide), TileError> {
        if !DEPTHS.contains(&bits) {
            return Err(TileError::UnsupportedDepth(bits));
        }
        let mut codes = Vec::new();
        let (scale, zero_point, eight_bit) = match &tensor.data {
            TensorData::F32(values) => {
                let (lo, hi) = min_max_finite(values);
                let (lo, hi) = self.range(index, lo, hi);
                let params = QuantParams::picture_from_min_max(lo, hi, bits)?;
                codes.resize(values.len(), 0);
                params.quantize_slice(values, &mut codes);
                (params.scale, params.zero_point, false)
            }
            TensorData::U8 {
                codes: codes8,
                scale,
                zero_point,
            } => {
                let params = QuantParams::picture_from_8bit(*scale, *zero_point, bits)?;
                codes_from_8bit(codes8, *scale, *zero_point, &params, &mut codes);
                (*scale, *zero_point, true)
            }
        };
        let side = TensorSide {
            eight_bit,
            shape: tensor.shape,
            scale,
            zero_point: zero_point as u16,
        };
        Ok((codes, side))
    }

    /// Tiles a feature frame into a mosaic of `format`.
    pub fn tile(
        &mut self,
        frame: &FeatureFrame,
        stream: &StreamId,
        format: PictureFormat,
    ) -> Result<Mosaic, TileError> {
        tile_with(self, frame, stream, format)
    }
}

/// The values codes of `side` at `bits` stand for.
pub fn dequantize(codes: &[u16], side: &TensorSide, bits: u8) -> Result<Vec<f32>, TileError> {
    let mut values = vec![0.0; codes.len()];
    side.params(bits)?.dequantize_slice(codes, &mut values);
    Ok(values)
}

/// One plane of a picture: `height` rows of `width` samples of `bits` each (one byte up to 8
/// bits, else two, little-endian), rows `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
    pub bits: u8,
}

impl Plane<'_> {
    fn sample_bytes(&self) -> usize {
        if self.bits > 8 { 2 } else { 1 }
    }

    fn check(&self) -> Result<(), TileError> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || !(1..=16).contains(&self.bits) {
            return Err(TileError::BadHeader(format!(
                "plane {w}x{h} of {} bits",
                self.bits
            )));
        }
        let row = w * self.sample_bytes();
        if self.stride < row || self.data.len() < self.stride * (h - 1) + row {
            return Err(TileError::BadHeader(format!(
                "{} bytes cannot hold a {w}x{h} plane with stride {}",
                self.data.len(),
                self.stride
            )));
        }
        Ok(())
    }

    /// `n` samples of row `y` from column `x` (inside the checked plane).
    fn row(&self, x: usize, y: usize, n: usize) -> impl Iterator<Item = u16> + '_ {
        let b = self.sample_bytes();
        let bytes = &self.data[y * self.stride + x * b..y * self.stride + (x + n) * b];
        let wide = b == 2;
        bytes.chunks_exact(b).map(move |s| {
            if wide {
                u16::from_le_bytes([s[0], s[1]])
            } else {
                s[0] as u16
            }
        })
    }
}

/// A tiled feature frame: the luma plane (`width × height`) and, with the header in chroma,
/// the U plane (`width/2 × height/2`; V stays mid-grey), samples at `bits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mosaic {
    pub layout: MosaicLayout,
    pub bits: u8,
    pub luma: Vec<u16>,
    pub chroma_u: Option<Vec<u16>>,
}

/// Mid-grey (8-bit units; [`at_depth`] for deeper pictures): the value of chroma planes that
/// carry nothing.
pub const CHROMA_NEUTRAL: u8 = 128;

fn tile_with(
    ranges: &mut RangeTracker,
    frame: &FeatureFrame,
    stream: &StreamId,
    format: PictureFormat,
) -> Result<Mosaic, TileError> {
    format.check()?;
    let PictureFormat { place, bits } = format;
    let shapes: Vec<Shape> = frame.tensors.iter().map(|t| t.shape).collect();
    let layout = MosaicLayout::for_shapes(&shapes, place)?;
    let mut luma = vec![0u16; layout.width * layout.height];
    let mut sides = Vec::with_capacity(frame.tensors.len());
    for (i, (tensor, region)) in frame.tensors.iter().zip(&layout.regions).enumerate() {
        tensor.validate()?;
        let (codes, side) = ranges.quantize(i, tensor, bits)?;
        sides.push(side);
        let (th, tw) = (region.shape.height, region.shape.width);
        for (c, plane) in codes.chunks_exact(th * tw).enumerate() {
            let (x0, y0) = region.origin(c);
            for (y, row) in plane.chunks_exact(tw).enumerate() {
                let at = (y0 + y) * layout.width + x0;
                luma[at..at + tw].copy_from_slice(row);
            }
        }
    }
    let header = MosaicHeader {
        stream: stream.clone(),
        bits,
        tensors: sides,
    };
    let chroma_u = match place {
        HeaderPlace::Luma => {
            header.write(&mut luma, layout.width);
            None
        }
        HeaderPlace::Chroma => {
            let (w, h) = (layout.width / 2, layout.height / 2);
            let mut u = vec![at_depth(CHROMA_NEUTRAL, bits); w * h];
            header.write(&mut u, w);
            Some(u)
        }
    };
    Ok(Mosaic {
        layout,
        bits,
        luma,
        chroma_u,
    })
}

/// What the receiving end expects: the stream identity (source size ignored) and the cut names.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected<'a> {
    pub model: u64,
    pub cut: &'a [String],
}

/// A decoded mosaic: the feature frame, the source video size and the header margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Untiled {
    pub frame: FeatureFrame,
    pub stream: StreamId,
    /// Smallest distance of a header block mean from the decision threshold (8-bit units: 112
    /// = lossless).
    pub margin: u32,
}

/// Reads a mosaic picture back into a feature frame named by `expected.cut`, checking model,
/// cut, bit depth and picture size. `chroma_u` is the U plane of a YUV picture (the header's
/// place), or `None` for a grey picture (header in the luma band).
pub fn untile(
    luma: &Plane,
    chroma_u: Option<&Plane>,
    expected: &Expected,
    index: u64,
    pts_ns: Option<u64>,
) -> Result<Untiled, TileError> {
    luma.check()?;
    let (header, margin) = MosaicHeader::read(chroma_u.unwrap_or(luma))?;
    let place = match chroma_u {
        Some(_) => HeaderPlace::Chroma,
        None => HeaderPlace::Luma,
    };
    if header.bits != luma.bits {
        return Err(TileError::WrongDepth {
            stream: header.bits,
            picture: luma.bits,
        });
    }
    let (width, height, bits) = (luma.width, luma.height, header.bits);
    if header.stream.model != expected.model {
        return Err(TileError::WrongModel {
            stream: header.stream.model_hex(),
            ours: format!("{:016x}", expected.model),
        });
    }
    if header.tensors.len() != expected.cut.len() {
        return Err(TileError::WrongTensorCount {
            stream: header.tensors.len(),
            ours: expected.cut.len(),
        });
    }
    let ours = cut_crc(expected.cut);
    if header.stream.cut != ours {
        return Err(TileError::WrongCut {
            stream: header.stream.cut,
            ours,
            names: expected.cut.to_vec(),
        });
    }
    let shapes: Vec<Shape> = header.tensors.iter().map(|t| t.shape).collect();
    let layout = MosaicLayout::for_shapes(&shapes, place)?;
    if (layout.width, layout.height) != (width, height) {
        return Err(TileError::WrongSize {
            got_width: width,
            got_height: height,
            width: layout.width,
            height: layout.height,
        });
    }
    let mut tensors = Vec::with_capacity(shapes.len());
    for ((side, region), name) in header.tensors.iter().zip(&layout.regions).zip(expected.cut) {
        let (th, tw) = (region.shape.height, region.shape.width);
        let mut codes = Vec::with_capacity(region.shape.len());
        for c in 0..region.shape.channels {
            let (x0, y0) = region.origin(c);
            for y in 0..th {
                codes.extend(luma.row(x0, y0 + y, tw));
            }
        }
        let tensor = if side.eight_bit {
            let (scale, zero_point) = (side.scale, side.zero_point as i32);
            let mut codes8 = Vec::with_capacity(codes.len());
            codes_to_8bit(&codes, &side.params(bits)?, scale, zero_point, &mut codes8);
            Tensor::from_u8(name.clone(), side.shape, codes8, scale, zero_point)?
        } else {
            Tensor::from_f32(name.clone(), side.shape, dequantize(&codes, side, bits)?)?
        };
        tensors.push(tensor);
    }
    Ok(Untiled {
        frame: FeatureFrame::new(index, pts_ns, tensors),
        stream: header.stream,
        margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream() -> StreamId {
        StreamId::new("0123456789abcdef", &cut(), 768, 576).unwrap()
    }

    fn cut() -> Vec<String> {
        vec!["a:0".into(), "b:0".into()]
    }

    fn frame(seed: u32) -> FeatureFrame {
        let a: Vec<f32> = (0..128 * 52 * 52)
            .map(|i| ((i as u32 ^ seed) % 97) as f32 * 0.1 - 1.0)
            .collect();
        let b: Vec<u8> = (0..32 * 38 * 38).map(|i| (i as u32 ^ seed) as u8).collect();
        FeatureFrame::new(
            3,
            Some(7),
            vec![
                Tensor::from_f32("a:0", Shape::new(128, 52, 52), a).unwrap(),
                Tensor::from_u8("b:0", Shape::new(32, 38, 38), b, 0.02, 5).unwrap(),
            ],
        )
    }

    const FORMATS: [PictureFormat; 4] = [
        PictureFormat {
            place: HeaderPlace::Luma,
            bits: 8,
        },
        PictureFormat {
            place: HeaderPlace::Chroma,
            bits: 8,
        },
        PictureFormat {
            place: HeaderPlace::Luma,
            bits: 10,
        },
        PictureFormat {
            place: HeaderPlace::Chroma,
            bits: 10,
        },
    ];

    /// Samples as the bytes of a picture plane (8 bits: one byte each; else two, LE).
    fn bytes(samples: &[u16], bits: u8) -> Vec<u8> {
        if bits > 8 {
            samples.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            samples.iter().map(|&v| v as u8).collect()
        }
    }

    fn plane(data: &[u8], width: usize, height: usize, bits: u8) -> Plane<'_> {
        let stride = width * if bits > 8 { 2 } else { 1 };
        Plane {
            data,
            stride,
            width,
            height,
            bits,
        }
    }

    /// Untiles `m` as the receiver would see it, in pictures of `bits`.
    fn untile_at(m: &Mosaic, expected: &Expected, bits: u8) -> Result<Untiled, TileError> {
        let (w, h) = (m.layout.width, m.layout.height);
        // A conversion to another depth scales samples the way videoconvert does.
        let convert = |v: &[u16]| -> Vec<u16> {
            v.iter()
                .map(|&x| ((x as u32) << bits >> m.bits) as u16)
                .collect()
        };
        let luma = bytes(&convert(&m.luma), bits);
        let u = m.chroma_u.as_ref().map(|u| bytes(&convert(u), bits));
        let u = u.as_ref().map(|u| plane(u, w / 2, h / 2, bits));
        untile(&plane(&luma, w, h, bits), u.as_ref(), expected, 3, Some(7))
    }

    /// Untiles `m` as the receiver would see it.
    fn untile_mosaic(m: &Mosaic, expected: &Expected) -> Result<Untiled, TileError> {
        untile_at(m, expected, m.bits)
    }

    fn luma8() -> PictureFormat {
        FORMATS[0]
    }

    #[test]
    fn layout_is_aligned_and_near_square() {
        let one = [Shape::new(128, 52, 52)];
        let l = MosaicLayout::for_shapes(&one, HeaderPlace::Luma).unwrap();
        assert_eq!((l.width, l.height), (624, 48 + 576));
        assert_eq!((l.regions[0].cols, l.regions[0].rows), (12, 11));
        // In chroma the header takes no luma rows: the old seed mosaic's 624x576.
        let l = MosaicLayout::for_shapes(&one, HeaderPlace::Chroma).unwrap();
        assert_eq!((l.width, l.height, l.header_height), (624, 576, 0));
        let l = MosaicLayout::for_shapes(&[Shape::new(32, 38, 38)], HeaderPlace::Chroma).unwrap();
        assert_eq!((l.width, l.regions[0].cols, l.regions[0].rows), (240, 6, 6));
        let l = MosaicLayout::for_shapes(
            &[
                Shape::new(128, 52, 52),
                Shape::new(256, 26, 26),
                Shape::new(512, 13, 13),
            ],
            HeaderPlace::Luma,
        )
        .unwrap();
        assert_eq!(l.width % ALIGN, 0);
        for r in &l.regions {
            assert_eq!((r.top % ALIGN, r.height % ALIGN), (0, 0));
            assert!(r.cols * r.shape.width <= l.width && r.cols * r.rows >= r.shape.channels);
        }
        assert_eq!(l.height, l.regions[2].top + l.regions[2].height);
        // A tiny tensor: rows are added so that the U plane holds the header.
        let l = MosaicLayout::for_shapes(&[Shape::new(1, 2, 2)], HeaderPlace::Chroma).unwrap();
        assert!((l.width / 2 / BIT_BLOCK) * (l.height / 2 / BIT_BLOCK) >= header_bytes(1) * 8);
    }

    #[test]
    fn round_trip_reproduces_the_quantized_codes() {
        let f = frame(11);
        let cut = cut();
        let expected = Expected {
            model: stream().model,
            cut: &cut,
        };
        for format in FORMATS {
            let m = RangeTracker::default().tile(&f, &stream(), format).unwrap();
            assert_eq!(m.bits, format.bits);
            let max = m.luma.iter().max().copied().unwrap();
            assert!(
                max < 1 << format.bits && max >= 1 << (format.bits - 1),
                "{max}"
            );
            let u = untile_mosaic(&m, &expected).unwrap();
            assert_eq!(u.margin, MIDPOINT - LEVEL_0 as u32);
            assert_eq!(u.stream, stream());
            // The u8 tensor comes back bit-exact; the float one as its dequantized codes.
            assert_eq!(u.frame.tensors[1], f.tensors[1]);
            let (codes, side) = RangeTracker::default()
                .quantize(0, &f.tensors[0], format.bits)
                .unwrap();
            assert_eq!(
                u.frame.tensors[0].to_f32(),
                dequantize(&codes, &side, format.bits).unwrap()
            );
            assert_eq!((u.frame.index, u.frame.pts_ns), (3, Some(7)));
        }
        // 10 bits: four times finer steps over the same range.
        let mut r = RangeTracker::default();
        let (_, s8) = r.quantize(0, &f.tensors[0], 8).unwrap();
        let (_, s10) = r.quantize(0, &f.tensors[0], 10).unwrap();
        assert!((s8.scale / s10.scale - 1023.0 / 255.0).abs() < 1e-3);
        assert_eq!(
            r.quantize(0, &f.tensors[0], 9).unwrap_err(),
            TileError::UnsupportedDepth(9)
        );
    }

    #[test]
    fn header_carries_the_channel_transform() {
        let cut = cut();
        let expected = Expected {
            model: stream().model,
            cut: &cut,
        };
        let transformed = stream().with_transform(0x0123_4567_89ab_cdef, 64);
        for format in FORMATS {
            let m = RangeTracker::default()
                .tile(&frame(5), &transformed, format)
                .unwrap();
            let u = untile_mosaic(&m, &expected).unwrap();
            assert_eq!(
                (u.stream.transform, u.stream.components),
                (0x0123_4567_89ab_cdef, 64)
            );
            assert_eq!(u.stream, transformed);
            assert_ne!(u.stream, stream());
        }
    }

    #[test]
    fn mismatches_name_the_fix() {
        let m = RangeTracker::default()
            .tile(&frame(1), &stream(), luma8())
            .unwrap();
        let cut = cut();
        let model = stream().model;
        let run = |model, cut: &[String], m: &Mosaic| {
            untile_mosaic(m, &Expected { model, cut }).unwrap_err()
        };
        let e = run(1, &cut, &m);
        assert!(e.to_string().contains("model="), "{e}");
        let e = run(model, &["x:0".into(), "b:0".into()], &m);
        assert!(e.to_string().contains("split-at="), "{e}");
        let e = run(model, &cut[..1], &m);
        assert!(e.to_string().contains("split-at="), "{e}");
        // A bigger picture with the same header: wrong size.
        let mut big = m.clone();
        big.luma.extend(vec![0u16; m.layout.width * 16]);
        big.layout.height += 16;
        let e = run(model, &cut, &big);
        assert!(matches!(e, TileError::WrongSize { .. }), "{e}");
        assert!(e.to_string().contains("do not scale"), "{e}");
        // A picture without a header, in luma or in chroma.
        let mut blank = m.clone();
        blank.luma.fill(128);
        let e = run(model, &cut, &blank);
        assert!(matches!(e, TileError::BadHeader(_)), "{e}");
        let mut yuv = RangeTracker::default()
            .tile(&frame(1), &stream(), FORMATS[1])
            .unwrap();
        yuv.chroma_u.as_mut().unwrap().fill(CHROMA_NEUTRAL as u16);
        let e = run(model, &cut, &yuv);
        assert!(matches!(e, TileError::BadHeader(_)), "{e}");
        // A mosaic converted to another depth on the way: its header still reads, the depth
        // does not match.
        let expected = Expected { model, cut: &cut };
        for (format, to) in [(FORMATS[3], 8), (FORMATS[1], 10), (FORMATS[2], 8)] {
            let m = RangeTracker::default()
                .tile(&frame(1), &stream(), format)
                .unwrap();
            let e = untile_at(&m, &expected, to).unwrap_err();
            assert_eq!(
                e,
                TileError::WrongDepth {
                    stream: format.bits,
                    picture: to
                }
            );
            assert!(e.to_string().contains("I420_10LE"), "{e}");
        }
    }

    #[test]
    fn header_survives_block_noise() {
        for format in [FORMATS[0], FORMATS[2]] {
            let m = RangeTracker::default()
                .tile(&frame(2), &stream(), format)
                .unwrap();
            let mut luma = m.luma.clone();
            // ±60 (8-bit units) on every pixel of the band, alternating: means move by far
            // less than 112.
            let noise = at_depth(60, format.bits);
            let top = at_depth(255, format.bits);
            for (i, v) in luma[..m.layout.width * m.layout.header_height]
                .iter_mut()
                .enumerate()
            {
                *v = if i % 2 == 0 {
                    (*v + noise).min(top)
                } else {
                    v.saturating_sub(noise)
                };
            }
            let luma = bytes(&luma, format.bits);
            let p = plane(&luma, m.layout.width, m.layout.height, format.bits);
            let (h, margin) = MosaicHeader::read(&p).unwrap();
            assert_eq!((h.stream, h.bits), (stream(), format.bits));
            assert!(margin > 50, "{margin}");
        }
    }

    #[test]
    fn ranges_are_kept_until_values_leave_them_or_they_are_too_wide() {
        let mut r = RangeTracker::default();
        let first = r.range(0, -0.5, 3.0);
        assert_eq!(first, (snap_range(-0.5), snap_range(3.0)));
        assert_eq!(r.range(0, -0.4, 2.9), first, "inside: kept");
        assert_eq!(r.range(1, 0.0, 1.0), (0.0, 1.0), "each tensor its own");
        assert_eq!(
            r.range(0, -0.4, 3.5),
            (snap_range(-0.4), snap_range(3.5)),
            "outside"
        );
        let wide = r.range(0, -0.4, 3.5);
        assert_eq!(
            r.range(0, 0.0, 1.0),
            (0.0, 1.0),
            "more than 1.1x too wide: replaced"
        );
        assert_ne!(wide, (0.0, 1.0));
    }

    #[test]
    fn snapped_ranges_are_wider_by_at_most_a_step() {
        for v in [1e-3f32, 0.7, 3.3, -2.5, 1234.5] {
            let s = snap_range(v);
            assert!(
                s.abs() >= v.abs() && s.abs() <= v.abs() * 1.0443,
                "{v} -> {s}"
            );
            assert_eq!(s.signum(), v.signum());
            assert_eq!(snap_range(v * 1.001), s, "{v}: nearby values share a step");
        }
        assert_eq!(
            (snap_range(0.0), snap_range(1.0), snap_range(-4.0)),
            (0.0, 1.0, -4.0)
        );
    }

    proptest! {
        #[test]
        fn any_shape_round_trips(c in 1usize..70, h in 1usize..20, w in 1usize..20, seed: u8, format in 0usize..4) {
            let codes: Vec<u8> = (0..c * h * w).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let t = Tensor::from_u8("q", Shape::new(c, h, w), codes, 0.5, 3).unwrap();
            let f = FeatureFrame::new(0, None, vec![t.clone()]);
            let cut = vec!["q".to_string()];
            let id = StreamId::new("00000000000000ff", &cut, 640, 480).unwrap();
            let m = RangeTracker::default().tile(&f, &id, FORMATS[format]).unwrap();
            prop_assert_eq!((m.layout.width % ALIGN, m.layout.height % ALIGN), (0, 0));
            let u = untile_mosaic(&m, &Expected { model: 0xff, cut: &cut }).unwrap();
            prop_assert_eq!(&u.frame.tensors[0], &t);
        }
    }
}
