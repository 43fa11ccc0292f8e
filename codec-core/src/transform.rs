//! Channel transform (KLT/PCA across channels): a tensor's C channel planes become its k
//! strongest principal components before coding, and come back after decoding.
//!
//! `forward`: `y_j = Σ_c B[j][c] · (x_c − μ_c)` for the first k rows of an orthonormal basis B
//! (the eigenvectors of the channels' covariance, strongest first, fitted on calibration frames
//! by `fmap-calibrate --klt`); `inverse`: `x_c = μ_c + Σ_j B[j][c] · y_j`. With k = C the pair
//! is exact up to rounding; with k < C the inverse is the projection onto the kept components.
//! Both are per-pixel matrix products written as plane-by-plane `axpy` loops, which the compiler
//! vectorizes (no linear-algebra crate needed for a product).
//!
//! The transform is not carried in the coded units (k·C floats): both ends load it from the
//! same calibration file, and the stream names it by [`ChannelTransform::id`] so that a
//! receiver with another file fails with a clear error instead of decoding garbage.

use crate::frame::{FeatureFrame, Shape, Tensor, TensorData};

/// What does not fit a channel transform.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("channel transform: {0}")]
pub struct TransformError(pub String);

/// The channel transform of one named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelTransform {
    /// The tensor's name, as in the feature frames.
    pub tensor: String,
    /// Channels C of the tensor.
    pub channels: usize,
    /// Per channel, the mean subtracted before the projection.
    pub mean: Vec<f32>,
    /// The kept components k (rows of the basis), strongest first; row-major k × C.
    pub basis: Vec<f32>,
}

impl ChannelTransform {
    /// A transform keeping the first `components` rows of `basis` (row-major, C columns; 0 or
    /// more than it has keeps all). Errors name what does not fit.
    pub fn new(
        tensor: &str,
        mean: Vec<f32>,
        basis: &[f32],
        components: usize,
    ) -> Result<ChannelTransform, TransformError> {
        let channels = mean.len();
        let bad = |why: String| TransformError(format!("'{tensor}': {why}"));
        if channels == 0 || basis.is_empty() || !basis.len().is_multiple_of(channels) {
            return Err(bad(format!(
                "{} basis values for {channels} channels",
                basis.len()
            )));
        }
        let rows = basis.len() / channels;
        let k = if components == 0 {
            rows
        } else {
            components.min(rows)
        };
        let basis = basis[..k * channels].to_vec();
        if !basis.iter().chain(&mean).all(|v| v.is_finite()) {
            return Err(bad("values that are not finite".into()));
        }
        Ok(ChannelTransform {
            tensor: tensor.into(),
            channels,
            mean,
            basis,
        })
    }

    /// Components kept (channels of the coded tensor).
    pub fn components(&self) -> usize {
        self.basis.len() / self.channels.max(1)
    }

    /// A 64-bit FNV-1a digest of the name, shape and every value: what a stream coded with this
    /// transform names it by.
    pub fn id(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(self.tensor.as_bytes());
        eat(&(self.channels as u64).to_le_bytes());
        eat(&(self.components() as u64).to_le_bytes());
        for v in self.mean.iter().chain(&self.basis) {
            eat(&v.to_le_bytes());
        }
        h
    }

    /// `x` (C channels) → its k components.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TransformError> {
        let values = self.input(x, self.channels)?;
        let plane = x.shape.plane_len();
        let k = self.components();
        let mut centred = values;
        for (p, &m) in centred.chunks_mut(plane.max(1)).zip(&self.mean) {
            p.iter_mut().for_each(|v| *v -= m);
        }
        let mut out = vec![0.0f32; k * plane];
        for (row, y) in self
            .basis
            .chunks(self.channels)
            .zip(out.chunks_mut(plane.max(1)))
        {
            for (&b, xc) in row.iter().zip(centred.chunks(plane.max(1))) {
                y.iter_mut().zip(xc).for_each(|(y, &x)| *y += b * x);
            }
        }
        Tensor::from_f32(&x.name, Shape::new(k, x.shape.height, x.shape.width), out)
            .map_err(|e| TransformError(e.to_string()))
    }

    /// k components → the C channels they stand for.
    pub fn inverse(&self, y: &Tensor) -> Result<Tensor, TransformError> {
        let k = self.components();
        let values = self.input(y, k)?;
        let plane = y.shape.plane_len();
        let mut out: Vec<f32> = self
            .mean
            .iter()
            .flat_map(|&m| std::iter::repeat_n(m, plane))
            .collect();
        for (row, yj) in self
            .basis
            .chunks(self.channels)
            .zip(values.chunks(plane.max(1)))
        {
            for (&b, xc) in row.iter().zip(out.chunks_mut(plane.max(1))) {
                xc.iter_mut().zip(yj).for_each(|(x, &y)| *x += b * y);
            }
        }
        Tensor::from_f32(
            &y.name,
            Shape::new(self.channels, y.shape.height, y.shape.width),
            out,
        )
        .map_err(|e| TransformError(e.to_string()))
    }

    fn input(&self, t: &Tensor, channels: usize) -> Result<Vec<f32>, TransformError> {
        match &t.data {
            TensorData::F32(v) if t.shape.channels == channels => Ok(v.clone()),
            TensorData::F32(_) => Err(TransformError(format!(
                "tensor '{}' has {} channels; its channel transform expects {channels} \
                 (a transform fitted for another model or split?)",
                t.name, t.shape.channels
            ))),
            TensorData::U8 { .. } => Err(TransformError(format!(
                "tensor '{}' is 8-bit; a channel transform applies to f32 tensors only",
                t.name
            ))),
        }
    }
}

/// Applies `f` to the tensors of `frame` that a transform names; the others pass unchanged.
fn map_frame(
    transforms: &[ChannelTransform],
    frame: &FeatureFrame,
    f: impl Fn(&ChannelTransform, &Tensor) -> Result<Tensor, TransformError>,
) -> Result<FeatureFrame, TransformError> {
    let tensors = frame
        .tensors
        .iter()
        .map(|t| match transforms.iter().find(|tr| tr.tensor == t.name) {
            Some(tr) => f(tr, t),
            None => Ok(t.clone()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FeatureFrame::new(frame.index, frame.pts_ns, tensors))
}

/// The frame the encoder codes: every named tensor replaced by its components.
pub fn forward_frame(
    transforms: &[ChannelTransform],
    frame: &FeatureFrame,
) -> Result<FeatureFrame, TransformError> {
    map_frame(transforms, frame, ChannelTransform::forward)
}

/// The frame a decoder outputs: every named tensor's components back to its channels.
pub fn inverse_frame(
    transforms: &[ChannelTransform],
    frame: &FeatureFrame,
) -> Result<FeatureFrame, TransformError> {
    map_frame(transforms, frame, ChannelTransform::inverse)
}

/// One digest for a set of transforms (0 for none): what caps carry.
pub fn transforms_id(transforms: &[ChannelTransform]) -> u64 {
    transforms
        .iter()
        .fold(0u64, |h, t| h.rotate_left(17) ^ t.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rotation of 3 channels (orthonormal rows) and a mean.
    fn rotation() -> (Vec<f32>, Vec<f32>) {
        let (c, s) = (0.6f32, 0.8f32);
        (
            vec![1.0, -2.0, 0.5],
            vec![c, s, 0.0, -s, c, 0.0, 0.0, 0.0, 1.0],
        )
    }

    fn tensor(channels: usize) -> Tensor {
        let shape = Shape::new(channels, 3, 4);
        let values = (0..shape.len())
            .map(|i| (i as f32 * 0.37).sin() * 3.0)
            .collect();
        Tensor::from_f32("t", shape, values).unwrap()
    }

    #[test]
    fn all_components_round_trip() {
        let (mean, basis) = rotation();
        let tr = ChannelTransform::new("t", mean, &basis, 0).unwrap();
        let x = tensor(3);
        let y = tr.forward(&x).unwrap();
        assert_eq!(y.shape, x.shape);
        let back = tr.inverse(&y).unwrap();
        for (a, b) in x.to_f32().iter().zip(back.to_f32()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn fewer_components_project_and_keep_the_dropped_channel_at_its_mean() {
        let (mean, basis) = rotation();
        let tr = ChannelTransform::new("t", mean.clone(), &basis, 2).unwrap();
        assert_eq!(tr.components(), 2);
        let x = tensor(3);
        let y = tr.forward(&x).unwrap();
        assert_eq!(y.shape.channels, 2);
        let back = tr.inverse(&y).unwrap().to_f32();
        let xs = x.to_f32();
        let plane = x.shape.plane_len();
        // Channels 0 and 1 span the kept rows: exact; channel 2 is the dropped one: its mean.
        for i in 0..2 * plane {
            assert!((xs[i] - back[i]).abs() < 1e-5);
        }
        assert!(
            back[2 * plane..]
                .iter()
                .all(|&v| (v - mean[2]).abs() < 1e-6)
        );
    }

    #[test]
    fn ids_tell_transforms_apart_and_frames_map_by_name() {
        let (mean, basis) = rotation();
        let a = ChannelTransform::new("t", mean.clone(), &basis, 0).unwrap();
        let b = ChannelTransform::new("t", mean.clone(), &basis, 2).unwrap();
        let mut other = basis.clone();
        other[0] = 0.61;
        let c = ChannelTransform::new("t", mean, &other, 0).unwrap();
        assert_ne!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        assert_eq!(a.id(), a.clone().id());
        let frame = FeatureFrame::new(
            4,
            Some(7),
            vec![
                tensor(3),
                Tensor::from_f32("u", Shape::new(1, 1, 2), vec![1.0, 2.0]).unwrap(),
            ],
        );
        let coded = forward_frame(std::slice::from_ref(&b), &frame).unwrap();
        assert_eq!(coded.tensors[0].shape.channels, 2);
        assert_eq!(coded.tensors[1], frame.tensors[1]);
        let out = inverse_frame(&[b], &coded).unwrap();
        assert_eq!(out.tensors[0].shape, frame.tensors[0].shape);
        assert_eq!((out.index, out.pts_ns), (4, Some(7)));
    }

    #[test]
    fn mismatches_are_errors_that_say_what_is_wrong() {
        let (mean, basis) = rotation();
        let tr = ChannelTransform::new("t", mean.clone(), &basis, 0).unwrap();
        let e = tr.forward(&tensor(4)).unwrap_err().to_string();
        assert!(e.contains("expects 3"), "{e}");
        let u8t = Tensor::from_u8("t", Shape::new(3, 1, 1), vec![1, 2, 3], 0.1, 0).unwrap();
        assert!(tr.forward(&u8t).unwrap_err().to_string().contains("8-bit"));
        assert!(ChannelTransform::new("t", mean.clone(), &basis[..8], 0).is_err());
        let mut nan = basis.clone();
        nan[4] = f32::NAN;
        assert!(ChannelTransform::new("t", mean, &nan, 0).is_err());
    }
}
