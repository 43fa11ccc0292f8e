//! Synthetic feature frames for the fmapenc/fmapdec tests: smooth, non-negative (ReLU-like)
//! activation maps that drift a little each frame, like a backbone's response to a scene with
//! moving objects, plus the matching `application/x-fmap` caps.

#![allow(dead_code)]

use codec_core::codec::{CodecConfig, CodedUnit, Encoder};
use codec_core::{FeatureFrame, Shape, Tensor};

pub const FRAME_NS: u64 = 100_000_000;

/// Frame `index` of a two-tensor stream (f32), drifting by about one cell per frame.
pub fn frame(index: u64) -> FeatureFrame {
    let t = index as f32;
    let plane = |shape: Shape, speed: f32, phase: f32| -> Vec<f32> {
        let mut v = Vec::with_capacity(shape.len());
        for c in 0..shape.channels {
            for y in 0..shape.height {
                for x in 0..shape.width {
                    let xf = x as f32 - speed * t;
                    let yf = y as f32 - 0.5 * speed * t;
                    let a = (xf * 0.31 + c as f32 * 0.7 + phase).sin()
                        * (yf * 0.23 - c as f32 * 0.4).cos()
                        * (1.0 + 0.15 * c as f32);
                    v.push((a * 3.0).max(0.0));
                }
            }
        }
        v
    };
    let s1 = Shape::new(6, 24, 32);
    let s2 = Shape::new(4, 12, 16);
    FeatureFrame::new(
        index,
        Some(index * FRAME_NS),
        vec![
            Tensor::from_f32("stage2/out:0", s1, plane(s1, 1.0, 0.0)).unwrap(),
            Tensor::from_f32("stage3/out:0", s2, plane(s2, 0.5, 1.3)).unwrap(),
        ],
    )
}

/// Frame `index` of an 8-bit quantized model's stream (u8 codes, scale 0.05, zero point 10).
pub fn frame_u8(index: u64) -> FeatureFrame {
    let f = frame(index);
    let tensors = f
        .tensors
        .iter()
        .map(|t| {
            let codes = t
                .to_f32()
                .iter()
                .map(|&v| ((v / 0.05).round() + 10.0).clamp(0.0, 255.0) as u8)
                .collect();
            Tensor::from_u8(t.name.clone(), t.shape, codes, 0.05, 10).unwrap()
        })
        .collect();
    FeatureFrame::new(f.index, f.pts_ns, tensors)
}

/// `application/x-fmap` caps as splitinfer-front would announce them.
pub fn raw_caps() -> gst::Caps {
    gst::Caps::builder("application/x-fmap")
        .field("model", "0123456789abcdef")
        .field("cut", "stage2/out:0,stage3/out:0")
        .field("split", "custom")
        .field("width", 768i32)
        .field("height", 576i32)
        .field("framerate", gst::Fraction::new(10, 1))
        .field("resize", "stretch")
        .field("input-width", 416i32)
        .field("input-height", 416i32)
        .build()
}

/// One raw (FMRF) buffer for `frame`, PTS set.
pub fn raw_buffer(frame: &FeatureFrame) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(frame.to_raw().unwrap());
    {
        let b = b.get_mut().unwrap();
        b.set_pts(frame.pts_ns.map(gst::ClockTime::from_nseconds));
        b.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
    }
    b
}

/// What codec-core itself produces for `frames` with `cfg`: the reference the elements must
/// match bit for bit.
pub fn reference_units(cfg: &CodecConfig, frames: &[FeatureFrame]) -> Vec<CodedUnit> {
    let mut enc = Encoder::with_reconstructions(cfg.clone()).unwrap();
    let mut units = Vec::new();
    for f in frames {
        units.extend(enc.push(f).unwrap());
    }
    units.extend(enc.finish().unwrap());
    units
}

/// Whether two coded units are the same apart from what legitimately differs between two
/// encoder instances: the random stream id (header bytes 42..44) and hence the envelope's CRC
/// (the 4 bytes before the envelope's end, which header bytes 8..12 give; an adaptive unit's
/// slices follow it).
pub fn same_unit(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.len() < 48 {
        return false;
    }
    let end = u32::from_le_bytes([a[8], a[9], a[10], a[11]]) as usize;
    (48..=a.len()).contains(&end)
        && a[..42] == b[..42]
        && a[44..end - 4] == b[44..end - 4]
        && a[end..] == b[end..]
}
