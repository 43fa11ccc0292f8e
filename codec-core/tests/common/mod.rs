//! Synthetic feature maps for the codec tests: smooth, ReLU-like activations whose content
//! moves by a fixed velocity per frame, like features of a camera sequence with moving objects.
#![allow(dead_code)]

use codec_core::codec::{CodecConfig, CodedUnit, Decoder, Encoder};
use codec_core::{FeatureFrame, Shape, Tensor};

/// Deterministic per-channel constants (no RNG dependency).
fn hash(c: usize, k: usize) -> f32 {
    let mut v = (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (k as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v ^= v >> 31;
    v = v.wrapping_mul(0x94D0_49BB_1331_11EB);
    v ^= v >> 29;
    (v % 10_000) as f32 / 10_000.0
}

/// One channel-major (C, H, W) plane stack at time `t`: three Gaussian blobs per channel plus a
/// smooth background, all translating by `velocity` (dy, dx) elements per frame, rectified.
pub fn moving_values(shape: Shape, t: f32, velocity: (f32, f32)) -> Vec<f32> {
    let (h, w) = (shape.height as f32, shape.width as f32);
    let mut out = Vec::with_capacity(shape.len());
    for c in 0..shape.channels {
        let blobs: Vec<(f32, f32, f32, f32)> = (0..3)
            .map(|k| {
                (
                    hash(c, 4 * k) * h,
                    hash(c, 4 * k + 1) * w,
                    0.5 + 2.5 * hash(c, 4 * k + 2),
                    1.5 + 0.12 * h.min(w) * hash(c, 4 * k + 3),
                )
            })
            .collect();
        let freq = 0.15 + 0.2 * hash(c, 100);
        let bias = -0.4 + 0.6 * hash(c, 101);
        for y in 0..shape.height {
            for x in 0..shape.width {
                let yy = y as f32 - velocity.0 * t;
                let xx = x as f32 - velocity.1 * t;
                let mut v = bias + 0.5 * (freq * xx).sin() * (0.7 * freq * yy).cos();
                for &(cy, cx, a, sigma) in &blobs {
                    let d2 = (yy - cy).powi(2) + (xx - cx).powi(2);
                    v += a * (-d2 / (2.0 * sigma * sigma)).exp();
                }
                out.push(v.max(0.0));
            }
        }
    }
    out
}

/// A float feature frame with one tensor "feat" of `shape`.
pub fn moving_frame(index: u64, shape: Shape, velocity: (f32, f32)) -> FeatureFrame {
    FeatureFrame::new(
        index,
        Some(index * 33_333_333),
        vec![
            Tensor::from_f32("feat", shape, moving_values(shape, index as f32, velocity)).unwrap(),
        ],
    )
}

/// A frame with two float tensors of different resolutions (like FPN levels).
pub fn two_tensor_frame(index: u64, shape: Shape, velocity: (f32, f32)) -> FeatureFrame {
    let half = Shape::new(
        shape.channels,
        shape.height.div_ceil(2),
        shape.width.div_ceil(2),
    );
    FeatureFrame::new(
        index,
        Some(index * 40_000_000),
        vec![
            Tensor::from_f32("p3", shape, moving_values(shape, index as f32, velocity)).unwrap(),
            Tensor::from_f32(
                "p4",
                half,
                moving_values(half, index as f32, (velocity.0 / 2.0, velocity.1 / 2.0)),
            )
            .unwrap(),
        ],
    )
}

/// 8-bit model scale/zero point used by [`moving_frame_u8`].
pub const SCALE8: f32 = 0.02;
pub const ZERO_POINT8: i32 = 3;

/// The same content as the codes of an 8-bit quantized model (u8 tensor).
pub fn moving_frame_u8(index: u64, shape: Shape, velocity: (f32, f32)) -> FeatureFrame {
    let codes = moving_values(shape, index as f32, velocity)
        .into_iter()
        .map(|v| (v / SCALE8 + ZERO_POINT8 as f32).round().clamp(0.0, 255.0) as u8)
        .collect();
    FeatureFrame::new(
        index,
        Some(index * 33_333_333),
        vec![Tensor::from_u8("feat_q", shape, codes, SCALE8, ZERO_POINT8).unwrap()],
    )
}

/// Encodes all frames (push + finish) and returns the units in decode order.
pub fn encode_all(cfg: &CodecConfig, frames: &[FeatureFrame]) -> Vec<CodedUnit> {
    let mut enc = Encoder::with_reconstructions(cfg.clone()).expect("valid config");
    let mut units = Vec::new();
    for f in frames {
        units.extend(enc.push(f).expect("encode"));
    }
    units.extend(enc.finish().expect("finish"));
    units
}

/// Decodes all units (plus finish) with a fresh decoder.
pub fn decode_all(units: &[CodedUnit]) -> Vec<FeatureFrame> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for u in units {
        out.extend(dec.decode(&u.data).expect("decode"));
    }
    out.extend(dec.finish());
    out
}

/// Asserts the decoder's output equals the encoder's reconstructions, in display order.
pub fn assert_round_trip(cfg: &CodecConfig, frames: &[FeatureFrame]) -> Vec<CodedUnit> {
    let units = encode_all(cfg, frames);
    assert_eq!(units.len(), frames.len(), "one unit per frame ({cfg:?})");
    let decoded = decode_all(&units);
    assert_eq!(
        decoded.len(),
        frames.len(),
        "one output per frame ({cfg:?})"
    );
    for (d, f) in decoded.iter().zip(frames) {
        assert_eq!(d.index, f.index, "display order ({cfg:?})");
        assert_eq!(d.pts_ns, f.pts_ns);
        let unit = units.iter().find(|u| u.frame_index == f.index).unwrap();
        assert_eq!(unit.pts_ns, f.pts_ns);
        assert_eq!(
            unit.reconstruction.as_ref().unwrap(),
            d,
            "reconstruction of frame {} ({cfg:?})",
            f.index
        );
        for (a, b) in d.tensors.iter().zip(&f.tensors) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.shape, b.shape);
            assert_eq!(a.data.dtype_name(), b.data.dtype_name());
        }
    }
    units
}

/// Mean absolute error between two float frames (u8 tensors compared dequantized).
pub fn mean_abs_error(a: &FeatureFrame, b: &FeatureFrame) -> f64 {
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        for (u, v) in x.to_f32().iter().zip(y.to_f32()) {
            sum += (u - v).abs() as f64;
            n += 1;
        }
    }
    sum / n.max(1) as f64
}
