//! Plain named tensors, as sessions take and return them, and their conversion to and from
//! codec-core's (C, H, W) tensors.

use codec_core::frame::{Shape, Tensor, TensorData};

use crate::error::{InferError, Result};

/// Element type of a session input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    U8,
    I8,
    I32,
    I64,
    Bool,
    /// Anything else (not supported by [`Session::run`](super::Session::run)).
    Other,
}

impl ElemType {
    pub(super) fn from_ort(t: ort::value::TensorElementType) -> Self {
        use ort::value::TensorElementType as T;
        match t {
            T::Float32 => ElemType::F32,
            T::Uint8 => ElemType::U8,
            T::Int8 => ElemType::I8,
            T::Int32 => ElemType::I32,
            T::Int64 => ElemType::I64,
            T::Bool => ElemType::Bool,
            _ => ElemType::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::U8 => "u8",
            ElemType::I8 => "i8",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::Bool => "bool",
            ElemType::Other => "other",
        }
    }
}

/// Name, element type and declared shape (-1 = not fixed) of a session input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub elem_type: ElemType,
    pub dims: Vec<i64>,
}

/// The elements of a [`TensorValue`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValueData {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

impl TensorValueData {
    pub fn len(&self) -> usize {
        match self {
            TensorValueData::F32(v) => v.len(),
            TensorValueData::U8(v) => v.len(),
            TensorValueData::I8(v) => v.len(),
            TensorValueData::I32(v) => v.len(),
            TensorValueData::I64(v) => v.len(),
            TensorValueData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn elem_type(&self) -> ElemType {
        match self {
            TensorValueData::F32(_) => ElemType::F32,
            TensorValueData::U8(_) => ElemType::U8,
            TensorValueData::I8(_) => ElemType::I8,
            TensorValueData::I32(_) => ElemType::I32,
            TensorValueData::I64(_) => ElemType::I64,
            TensorValueData::Bool(_) => ElemType::Bool,
        }
    }

    /// Size of the data in bytes.
    pub fn byte_len(&self) -> usize {
        match self {
            TensorValueData::F32(v) => v.len() * 4,
            TensorValueData::U8(v) => v.len(),
            TensorValueData::I8(v) => v.len(),
            TensorValueData::I32(v) => v.len() * 4,
            TensorValueData::I64(v) => v.len() * 8,
            TensorValueData::Bool(v) => v.len(),
        }
    }

    /// The values as f32 (for decoders that accept any numeric output type).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorValueData::F32(v) => v.clone(),
            TensorValueData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorValueData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorValueData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorValueData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorValueData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        }
    }
}

/// A dense tensor: shape (row-major) and elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorValue {
    pub shape: Vec<usize>,
    pub data: TensorValueData,
}

impl TensorValue {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            shape,
            data: TensorValueData::F32(data),
        }
    }

    pub fn u8(shape: Vec<usize>, data: Vec<u8>) -> Self {
        Self {
            shape,
            data: TensorValueData::U8(data),
        }
    }

    pub(super) fn check(&self, name: &str) -> Result<()> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                InferError::Shape(format!("{name}: shape {:?} overflows", self.shape))
            })?;
        if n != self.data.len() {
            return Err(InferError::Shape(format!(
                "{name}: shape {:?} needs {n} elements, got {}",
                self.shape,
                self.data.len()
            )));
        }
        Ok(())
    }

    /// An all-zero tensor matching a session input (free dimensions = 1).
    pub fn zeros_like(info: &TensorInfo) -> Result<TensorValue> {
        if info.dims.is_empty() {
            return Err(InferError::Shape(format!(
                "model input '{}' declares no shape; cannot build a probe input",
                info.name
            )));
        }
        let shape: Vec<usize> = info
            .dims
            .iter()
            .map(|&d| if d > 0 { d as usize } else { 1 })
            .collect();
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= codec_core::frame::MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                InferError::Shape(format!("model input '{}' is too large", info.name))
            })?;
        let data = match info.elem_type {
            ElemType::F32 => TensorValueData::F32(vec![0.0; n]),
            ElemType::U8 => TensorValueData::U8(vec![0; n]),
            ElemType::I8 => TensorValueData::I8(vec![0; n]),
            ElemType::I32 => TensorValueData::I32(vec![0; n]),
            ElemType::I64 => TensorValueData::I64(vec![0; n]),
            ElemType::Bool => TensorValueData::Bool(vec![false; n]),
            ElemType::Other => {
                return Err(InferError::Shape(format!(
                    "model input '{}' has an unsupported element type",
                    info.name
                )));
            }
        };
        Ok(TensorValue { shape, data })
    }
}

/// Named tensors, in the order of the model's outputs.
pub type NamedTensors = Vec<(String, TensorValue)>;

/// (C, H, W) of an ONNX tensor shape: leading dimensions of size 1 (the batch) are dropped
/// down to rank 3, and ranks below 3 are padded with leading 1s: `[1,C,H,W]` → (C,H,W),
/// `[C,H,W]` → (C,H,W), `[H,W]` → (1,H,W), `[N]` → (1,1,N). NHWC tensors map the same way
/// (`[1,H,W,C]` → "(H,W,C)"): the layout is not guessed; [`from_codec_tensor`] restores the exact
/// dimensions the receiving model declares.
pub fn chw_of(shape: &[usize]) -> Result<Shape> {
    let mut dims: &[usize] = shape;
    while dims.len() > 3 && dims[0] == 1 {
        dims = &dims[1..];
    }
    let s = match *dims {
        [c, h, w] => Shape::new(c, h, w),
        [h, w] => Shape::new(1, h, w),
        [n] => Shape::new(1, 1, n),
        [] => Shape::new(1, 1, 1),
        _ => {
            return Err(InferError::Shape(format!(
                "tensor of shape {shape:?} cannot be carried as (C, H, W): it has more than 3 \
                 dimensions besides a batch of 1"
            )));
        }
    };
    Ok(s)
}

/// Converts a model tensor into a codec tensor (see [`chw_of`] for the shape). `quant` gives
/// the scale and zero point of a u8 tensor (see [`crate::split::quant_params_for`]); without it,
/// u8 codes are carried with scale 1 and zero point 0.
pub fn to_codec_tensor(
    name: &str,
    value: &TensorValue,
    quant: Option<(f32, i32)>,
) -> Result<Tensor> {
    value.check(name)?;
    let shape = chw_of(&value.shape)?;
    let t = match &value.data {
        TensorValueData::F32(v) => Tensor::from_f32(name, shape, v.clone()),
        TensorValueData::U8(v) => {
            let (scale, zp) = quant.unwrap_or((1.0, 0));
            Tensor::from_u8(name, shape, v.clone(), scale, zp)
        }
        other => {
            return Err(InferError::Shape(format!(
                "{name}: {} tensors cannot be carried in a feature frame (f32 or u8 only)",
                other.elem_type().name()
            )));
        }
    };
    t.map_err(|e| InferError::Shape(format!("{name}: {e}")))
}

/// Converts a codec tensor into a model input with the dimensions the model declares (`dims`,
/// -1 = free, e.g. from [`Session::inputs`](super::Session::inputs); `None` or empty = unknown rank). Free dimensions are filled from (C, H, W) as
/// `[1,C,H,W]` / `[C,H,W]` / `[H,W]` / `[N]`; the declared rank and fixed dimensions must agree with
/// the element count.
pub fn from_codec_tensor(t: &Tensor, dims: Option<&[i64]>) -> Result<TensorValue> {
    // ONNX Runtime reports an input declared without a shape as rank 0: unknown here.
    let dims = dims.filter(|d| !d.is_empty());
    let s = t.shape;
    let n = s
        .checked_len()
        .ok_or_else(|| InferError::Shape(format!("{}: shape {s} overflows", t.name)))?;
    let default: Vec<usize> = match dims.map(<[i64]>::len) {
        Some(1) => vec![n],
        Some(2) if s.channels == 1 => vec![s.height, s.width],
        Some(3) => vec![s.channels, s.height, s.width],
        _ => vec![1, s.channels, s.height, s.width],
    };
    let shape = match dims {
        Some(d) if d.len() == default.len() => {
            let fixed: Vec<usize> = d
                .iter()
                .zip(&default)
                .map(|(&want, &have)| if want >= 0 { want as usize } else { have })
                .collect();
            let product = fixed.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
            if product != Some(n) {
                return Err(InferError::Shape(format!(
                    "{}: received {s} ({n} elements) but the model expects {d:?}",
                    t.name
                )));
            }
            fixed
        }
        Some(d) if d.iter().all(|&x| x >= 0) => {
            let fixed: Vec<usize> = d.iter().map(|&x| x as usize).collect();
            if fixed.iter().try_fold(1usize, |a, &x| a.checked_mul(x)) != Some(n) {
                return Err(InferError::Shape(format!(
                    "{}: received {s} ({n} elements) but the model expects {d:?}",
                    t.name
                )));
            }
            fixed
        }
        Some(d) => {
            return Err(InferError::Shape(format!(
                "{}: received {s} but the model expects rank {} {d:?}",
                t.name,
                d.len()
            )));
        }
        None => default,
    };
    let data = match &t.data {
        TensorData::F32(v) => TensorValueData::F32(v.clone()),
        TensorData::U8 { codes, .. } => TensorValueData::U8(codes.clone()),
    };
    let v = TensorValue { shape, data };
    v.check(&t.name)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_mapping() {
        assert_eq!(
            chw_of(&[1, 64, 104, 104]).unwrap(),
            Shape::new(64, 104, 104)
        );
        assert_eq!(chw_of(&[1, 38, 38, 32]).unwrap(), Shape::new(38, 38, 32));
        assert_eq!(chw_of(&[8, 3, 3]).unwrap(), Shape::new(8, 3, 3));
        assert_eq!(chw_of(&[1, 1, 4, 5, 6]).unwrap(), Shape::new(4, 5, 6));
        assert_eq!(chw_of(&[5, 6]).unwrap(), Shape::new(1, 5, 6));
        assert_eq!(chw_of(&[7]).unwrap(), Shape::new(1, 1, 7));
        assert!(chw_of(&[2, 3, 4, 5]).is_err());
    }

    #[test]
    fn codec_round_trip_restores_declared_dims() {
        let v = TensorValue::f32(vec![1, 2, 3, 4], (0..24).map(|x| x as f32).collect());
        let t = to_codec_tensor("t", &v, None).unwrap();
        assert_eq!(t.shape, Shape::new(2, 3, 4));
        assert_eq!(from_codec_tensor(&t, Some(&[1, -1, 3, -1])).unwrap(), v);
        assert_eq!(from_codec_tensor(&t, None).unwrap(), v);
        // NHWC declared by the model: [1,H,W,C] comes back exactly.
        let nhwc = TensorValue::u8(vec![1, 3, 4, 2], vec![7; 24]);
        let t = to_codec_tensor("q", &nhwc, Some((0.5, 3))).unwrap();
        assert!(matches!(
            t.data,
            TensorData::U8 {
                scale: 0.5,
                zero_point: 3,
                ..
            }
        ));
        assert_eq!(from_codec_tensor(&t, Some(&[1, 3, 4, 2])).unwrap(), nhwc);
        assert!(from_codec_tensor(&t, Some(&[1, 3, 4, 3])).is_err());
        assert!(from_codec_tensor(&t, Some(&[1, -1])).is_err());
        let bad = TensorValue::f32(vec![2, 2], vec![1.0; 3]);
        assert!(to_codec_tensor("bad", &bad, None).is_err());
    }
}
