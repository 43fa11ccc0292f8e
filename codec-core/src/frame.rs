//! The data model: feature frames of named (C, H, W) tensors, and their raw, self-describing
//! serialization ("FMRF"), which is the payload of `application/x-fmap` buffers.
//!
//! Raw format, version 1, all integers little-endian:
//!
//! ```text
//! magic        4  "FMRF"
//! version      1  = 1
//! flags        1  bit 0: pts present; other bits must be 0
//! reserved     2  = 0
//! frame_index  8  u64
//! pts_ns       8  u64 (0 when absent)
//! tensor_count 2  u16, 1..=MAX_TENSORS
//! per tensor:
//!   name_len   2  u16, 1..=MAX_NAME_LEN, then name_len bytes of UTF-8
//!   dtype      1  0 = f32, 1 = u8 (codes of an 8-bit quantized model)
//!   c, h, w    4+4+4  u32 each, >= 1, c*h*w <= MAX_TENSOR_ELEMENTS
//!   if dtype u8: scale f32 (finite, > 0), zero_point i32 (0..=255)
//!   data       c*h*w elements: f32 LE, or u8
//! ```
//!
//! Parsing never trusts a size: every length is checked against the explicit limits and against
//! the bytes actually present before anything is allocated.

use crate::bytes::LeReader;
use thiserror::Error;

/// Magic bytes of a raw feature frame.
pub const RAW_MAGIC: [u8; 4] = *b"FMRF";
/// Current raw format version.
pub const RAW_VERSION: u8 = 1;
/// Most tensors one feature frame may hold.
pub const MAX_TENSORS: usize = 64;
/// Longest tensor name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Most elements one tensor may hold (2^28, i.e. 1 GiB of f32).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;
/// Largest single dimension.
pub const MAX_DIMENSION: usize = 1 << 16;

const FLAG_PTS: u8 = 1;

/// Errors from building or parsing feature frames.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("raw feature frame truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("not a raw feature frame (bad magic)")]
    BadMagic,
    #[error("unsupported raw feature frame version {0} (this build reads version {RAW_VERSION})")]
    UnsupportedVersion(u8),
    #[error("invalid raw feature frame: {0}")]
    Invalid(String),
    #[error("{0} trailing bytes after the last tensor")]
    TrailingBytes(usize),
}

/// Shape of one tensor, as (channels, height, width). A batch dimension of 1 is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Shape {
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// Number of elements, or `None` on overflow.
    pub fn checked_len(&self) -> Option<usize> {
        self.channels
            .checked_mul(self.height)?
            .checked_mul(self.width)
    }

    /// Number of elements. Panics only on overflow, which [`Shape::validate`] rules out.
    pub fn len(&self) -> usize {
        self.checked_len().expect("shape size overflows usize")
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements in one channel plane.
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// Checks the explicit limits: every dimension in 1..=MAX_DIMENSION and at most
    /// MAX_TENSOR_ELEMENTS elements.
    pub fn validate(&self) -> Result<(), FrameError> {
        for (what, d) in [
            ("channels", self.channels),
            ("height", self.height),
            ("width", self.width),
        ] {
            if d == 0 || d > MAX_DIMENSION {
                return Err(FrameError::Invalid(format!(
                    "{what} = {d} outside 1..={MAX_DIMENSION}"
                )));
            }
        }
        match self.checked_len() {
            Some(n) if n <= MAX_TENSOR_ELEMENTS => Ok(()),
            _ => Err(FrameError::Invalid(format!(
                "{}x{}x{} exceeds {MAX_TENSOR_ELEMENTS} elements",
                self.channels, self.height, self.width
            ))),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}]", self.channels, self.height, self.width)
    }
}

/// The elements of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Float activations.
    F32(Vec<f32>),
    /// 8-bit codes of a quantized (int8/uint8) model: value = (code - zero_point) * scale.
    U8 {
        codes: Vec<u8>,
        scale: f32,
        zero_point: i32,
    },
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::U8 { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Short name of the element type, as used in caps and logs.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "f32",
            TensorData::U8 { .. } => "u8",
        }
    }
}

/// One named (C, H, W) tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Shape,
    pub data: TensorData,
}

impl Tensor {
    /// A float tensor; checks that the data length matches the shape.
    pub fn from_f32(
        name: impl Into<String>,
        shape: Shape,
        data: Vec<f32>,
    ) -> Result<Self, FrameError> {
        let t = Tensor {
            name: name.into(),
            shape,
            data: TensorData::F32(data),
        };
        t.validate()?;
        Ok(t)
    }

    /// An 8-bit quantized tensor; checks the length, the scale and the zero point.
    pub fn from_u8(
        name: impl Into<String>,
        shape: Shape,
        codes: Vec<u8>,
        scale: f32,
        zero_point: i32,
    ) -> Result<Self, FrameError> {
        let t = Tensor {
            name: name.into(),
            shape,
            data: TensorData::U8 {
                codes,
                scale,
                zero_point,
            },
        };
        t.validate()?;
        Ok(t)
    }

    /// Checks name, shape limits, data length and quantization parameters.
    pub fn validate(&self) -> Result<(), FrameError> {
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(FrameError::Invalid(format!(
                "tensor name length {} outside 1..={MAX_NAME_LEN}",
                self.name.len()
            )));
        }
        self.shape.validate()?;
        if self.data.len() != self.shape.len() {
            return Err(FrameError::Invalid(format!(
                "tensor '{}' has {} elements but shape {} needs {}",
                self.name,
                self.data.len(),
                self.shape,
                self.shape.len()
            )));
        }
        if let TensorData::U8 {
            scale, zero_point, ..
        } = &self.data
        {
            validate_u8_params(*scale, *zero_point)?;
        }
        Ok(())
    }

    /// The values as floats (dequantizing 8-bit codes).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::U8 {
                codes,
                scale,
                zero_point,
            } => codes
                .iter()
                .map(|&c| (c as i32 - zero_point) as f32 * scale)
                .collect(),
        }
    }

    /// Bytes this tensor's elements take in the raw format.
    pub fn payload_bytes(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len() * 4,
            TensorData::U8 { codes, .. } => codes.len(),
        }
    }
}

fn validate_u8_params(scale: f32, zero_point: i32) -> Result<(), FrameError> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(FrameError::Invalid(format!(
            "8-bit scale {scale} is not finite and positive"
        )));
    }
    if !(0..=255).contains(&zero_point) {
        return Err(FrameError::Invalid(format!(
            "8-bit zero point {zero_point} outside 0..=255"
        )));
    }
    Ok(())
}

/// The tensors that cross the split for one video frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureFrame {
    /// Display index of the frame in its stream (0-based).
    pub index: u64,
    /// Presentation timestamp in nanoseconds, when known.
    pub pts_ns: Option<u64>,
    pub tensors: Vec<Tensor>,
}

impl FeatureFrame {
    pub fn new(index: u64, pts_ns: Option<u64>, tensors: Vec<Tensor>) -> Self {
        Self {
            index,
            pts_ns,
            tensors,
        }
    }

    /// Checks every tensor and the tensor count; names must be unique.
    pub fn validate(&self) -> Result<(), FrameError> {
        if self.tensors.is_empty() || self.tensors.len() > MAX_TENSORS {
            return Err(FrameError::Invalid(format!(
                "{} tensors outside 1..={MAX_TENSORS}",
                self.tensors.len()
            )));
        }
        for (i, t) in self.tensors.iter().enumerate() {
            t.validate()?;
            if self.tensors[..i].iter().any(|o| o.name == t.name) {
                return Err(FrameError::Invalid(format!(
                    "tensor name '{}' appears twice",
                    t.name
                )));
            }
        }
        Ok(())
    }

    /// Looks a tensor up by name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Bytes of tensor elements (without headers) in the raw format.
    pub fn payload_bytes(&self) -> usize {
        self.tensors.iter().map(Tensor::payload_bytes).sum()
    }

    /// Exact size of [`FeatureFrame::to_raw`]'s output.
    pub fn raw_len(&self) -> usize {
        26 + self
            .tensors
            .iter()
            .map(|t| {
                2 + t.name.len()
                    + 13
                    + match t.data {
                        TensorData::U8 { .. } => 8,
                        TensorData::F32(_) => 0,
                    }
                    + t.payload_bytes()
            })
            .sum::<usize>()
    }

    /// Serializes to the raw format. Fails only if the frame is invalid.
    pub fn to_raw(&self) -> Result<Vec<u8>, FrameError> {
        self.validate()?;
        let mut out = Vec::with_capacity(self.raw_len());
        out.extend_from_slice(&RAW_MAGIC);
        out.push(RAW_VERSION);
        out.push(if self.pts_ns.is_some() { FLAG_PTS } else { 0 });
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.pts_ns.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u16).to_le_bytes());
        for t in &self.tensors {
            out.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
            out.extend_from_slice(t.name.as_bytes());
            out.push(match t.data {
                TensorData::F32(_) => 0,
                TensorData::U8 { .. } => 1,
            });
            for d in [t.shape.channels, t.shape.height, t.shape.width] {
                out.extend_from_slice(&(d as u32).to_le_bytes());
            }
            match &t.data {
                TensorData::F32(v) => {
                    for x in v {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
                TensorData::U8 {
                    codes,
                    scale,
                    zero_point,
                } => {
                    out.extend_from_slice(&scale.to_le_bytes());
                    out.extend_from_slice(&zero_point.to_le_bytes());
                    out.extend_from_slice(codes);
                }
            }
        }
        debug_assert_eq!(out.len(), self.raw_len());
        Ok(out)
    }

    /// Parses the raw format. Every byte is untrusted: errors, never panics, and allocates only
    /// what the input actually holds.
    pub fn from_raw(bytes: &[u8]) -> Result<Self, FrameError> {
        let mut r = LeReader::with_error(bytes, |offset, needed| FrameError::Truncated {
            offset,
            needed,
        });
        if r.take(4)? != RAW_MAGIC {
            return Err(FrameError::BadMagic);
        }
        let version = r.u8()?;
        if version != RAW_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let flags = r.u8()?;
        if flags & !FLAG_PTS != 0 {
            return Err(FrameError::Invalid(format!("unknown flags {flags:#04x}")));
        }
        if r.take(2)? != [0, 0] {
            return Err(FrameError::Invalid("reserved bytes are not zero".into()));
        }
        let index = r.u64()?;
        let pts = r.u64()?;
        let count = r.u16()? as usize;
        if count == 0 || count > MAX_TENSORS {
            return Err(FrameError::Invalid(format!(
                "{count} tensors outside 1..={MAX_TENSORS}"
            )));
        }
        let mut tensors = Vec::with_capacity(count);
        for _ in 0..count {
            let name_len = r.u16()? as usize;
            if name_len == 0 || name_len > MAX_NAME_LEN {
                return Err(FrameError::Invalid(format!(
                    "tensor name length {name_len} outside 1..={MAX_NAME_LEN}"
                )));
            }
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| FrameError::Invalid("tensor name is not UTF-8".into()))?
                .to_owned();
            let dtype = r.u8()?;
            let shape = Shape::new(r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
            shape.validate()?;
            let n = shape.len();
            let data = match dtype {
                0 => {
                    let raw = r.take(
                        n.checked_mul(4)
                            .ok_or(FrameError::Invalid("tensor size overflows".into()))?,
                    )?;
                    TensorData::F32(
                        raw.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect(),
                    )
                }
                1 => {
                    let scale = r.f32()?;
                    let zero_point = r.i32()?;
                    validate_u8_params(scale, zero_point)?;
                    TensorData::U8 {
                        codes: r.take(n)?.to_vec(),
                        scale,
                        zero_point,
                    }
                }
                other => {
                    return Err(FrameError::Invalid(format!(
                        "unknown dtype {other} for tensor '{name}'"
                    )));
                }
            };
            tensors.push(Tensor { name, shape, data });
        }
        if r.remaining() != 0 {
            return Err(FrameError::TrailingBytes(r.remaining()));
        }
        let frame = FeatureFrame {
            index,
            pts_ns: (flags & FLAG_PTS != 0).then_some(pts),
            tensors,
        };
        frame.validate()?;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FeatureFrame {
        FeatureFrame::new(
            7,
            Some(700_000_000),
            vec![
                Tensor::from_f32(
                    "a",
                    Shape::new(2, 3, 4),
                    (0..24).map(|i| i as f32 * 0.5).collect(),
                )
                .unwrap(),
                Tensor::from_u8("b", Shape::new(1, 2, 2), vec![0, 3, 255, 41], 0.024894, 41)
                    .unwrap(),
            ],
        )
    }

    #[test]
    fn raw_round_trip_is_exact() {
        let f = sample();
        let raw = f.to_raw().unwrap();
        assert_eq!(raw.len(), f.raw_len());
        assert_eq!(FeatureFrame::from_raw(&raw).unwrap(), f);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let raw = sample().to_raw().unwrap();
        for n in 0..raw.len() {
            assert!(
                FeatureFrame::from_raw(&raw[..n]).is_err(),
                "prefix {n} parsed"
            );
        }
    }

    #[test]
    fn rejects_bad_headers_and_sizes() {
        let raw = sample().to_raw().unwrap();
        let mut bad = raw.clone();
        bad[0] = b'X';
        assert_eq!(FeatureFrame::from_raw(&bad), Err(FrameError::BadMagic));
        let mut bad = raw.clone();
        bad[4] = 9;
        assert_eq!(
            FeatureFrame::from_raw(&bad),
            Err(FrameError::UnsupportedVersion(9))
        );
        let mut long = raw.clone();
        long.push(0);
        assert_eq!(
            FeatureFrame::from_raw(&long),
            Err(FrameError::TrailingBytes(1))
        );
        // A header that claims a huge tensor must fail on the missing bytes, not allocate.
        let mut huge = raw[..24].to_vec();
        huge.extend_from_slice(&1u16.to_le_bytes());
        huge.extend_from_slice(&1u16.to_le_bytes());
        huge.push(b'x');
        huge.push(0);
        for d in [4096u32, 4096, 16] {
            huge.extend_from_slice(&d.to_le_bytes());
        }
        assert!(matches!(
            FeatureFrame::from_raw(&huge),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn dequantizes_u8() {
        let t = Tensor::from_u8("q", Shape::new(1, 1, 3), vec![41, 42, 40], 0.5, 41).unwrap();
        assert_eq!(t.to_f32(), vec![0.0, 0.5, -0.5]);
        assert!(Tensor::from_u8("q", Shape::new(1, 1, 1), vec![0], 0.0, 0).is_err());
        assert!(Tensor::from_u8("q", Shape::new(1, 1, 1), vec![0], 1.0, 256).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = FeatureFrame::from_raw(&bytes);
        }

        #[test]
        fn mutated_frames_never_panic(pos in 0usize..200, val in any::<u8>()) {
            let mut raw = sample().to_raw().unwrap();
            let p = pos % raw.len();
            raw[p] = val;
            if let Ok(f) = FeatureFrame::from_raw(&raw) {
                prop_assert!(f.validate().is_ok());
            }
        }
    }
}
