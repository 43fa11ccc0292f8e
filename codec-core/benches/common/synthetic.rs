//! Synthetic feature maps with moving content, for the benchmark and the size report.
//!
//! No recorded feature-map fixture is used: these are *synthetic* maps shaped like a backbone's
//! activations. Each channel is a smooth ReLU'd background (a separable product of two smooth
//! 1-D signals plus two smooth offsets, thresholded so roughly half the values are 0) plus a
//! Gaussian "object" blob that moves 1 px down and 2 px right per frame. The sequence moves back
//! and forth (positions 0, 1, 2, 3, 2, 1, then again), so cycling through it never jumps.

use codec_core::test_support::Rng;
use codec_core::{FeatureFrame, Shape, Tensor};

/// Frames in one cycle: a multiple of the uni (2) and bi (3) group lengths.
pub const CYCLE: usize = 6;

/// NanoDet stage-2 output (one of the split points of the project's detector).
pub const NANODET_STAGE2: Shape = Shape::new(128, 52, 52);
/// The thesis's first partition point (Faster R-CNN ResNet-50, end of residual block 1).
pub const THESIS_BLOCK1: Shape = Shape::new(256, 200, 272);

/// A smooth 1-D signal of length `n` in about [-amp, amp]: two sines with periods of 1/2..2
/// times the length.
fn smooth_1d(rng: &mut Rng, n: usize, amp: f32) -> Vec<f32> {
    let waves: Vec<(f32, f32)> = (0..2)
        .map(|_| {
            let period = n as f32 * (0.5 + 1.5 * rng.unit());
            (
                std::f32::consts::TAU / period,
                std::f32::consts::TAU * rng.unit(),
            )
        })
        .collect();
    (0..n)
        .map(|i| {
            waves
                .iter()
                .map(|&(k, ph)| (k * i as f32 + ph).sin())
                .sum::<f32>()
                * (amp / 2.0)
        })
        .collect()
}

/// Builds the `CYCLE` frames of a single-tensor stream of `shape`.
pub fn moving_frames(name: &str, shape: Shape, seed: u64) -> Vec<FeatureFrame> {
    let (c, h, w) = (shape.channels, shape.height, shape.width);
    let mut rng = Rng(seed);
    struct Channel {
        a: Vec<f32>,
        b: Vec<f32>,
        oy: Vec<f32>,
        ox: Vec<f32>,
        threshold: f32,
        blob: f32,
    }
    let channels: Vec<Channel> = (0..c)
        .map(|_| Channel {
            a: smooth_1d(&mut rng, h, 1.0),
            b: smooth_1d(&mut rng, w, 1.0),
            oy: smooth_1d(&mut rng, h, 0.5),
            ox: smooth_1d(&mut rng, w, 0.5),
            threshold: 0.2 + 0.3 * rng.unit(),
            blob: 0.5 + 1.5 * rng.unit(),
        })
        .collect();
    let radius = (h.min(w) as f32 / 8.0).max(2.0);
    let inv_two_r2 = 1.0 / (2.0 * radius * radius);
    let positions = [0usize, 1, 2, 3, 2, 1];
    positions
        .iter()
        .enumerate()
        .map(|(t, &p)| {
            let cy = h as f32 / 2.0 + p as f32;
            let cx = w as f32 / 3.0 + 2.0 * p as f32;
            // The blob is separable: exp(-(dy²+dx²)/2r²) = gy(y)·gx(x).
            let gy: Vec<f32> = (0..h)
                .map(|y| (-(y as f32 - cy).powi(2) * inv_two_r2).exp())
                .collect();
            let gx: Vec<f32> = (0..w)
                .map(|x| (-(x as f32 - cx).powi(2) * inv_two_r2).exp())
                .collect();
            let mut data = Vec::with_capacity(c * h * w);
            for ch in &channels {
                for ((&a, &oy), &gy) in ch.a.iter().zip(&ch.oy).zip(&gy) {
                    let g = gy * ch.blob;
                    data.extend((0..w).map(|x| {
                        let v = a * ch.b[x] + oy + ch.ox[x] - ch.threshold + g * gx[x];
                        v.max(0.0)
                    }));
                }
            }
            let tensor = Tensor::from_f32(name, shape, data).expect("valid synthetic tensor");
            FeatureFrame::new(t as u64, Some(t as u64 * 100_000_000), vec![tensor])
        })
        .collect()
}
