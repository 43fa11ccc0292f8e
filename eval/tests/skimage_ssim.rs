//! The SSIM and MSE of `fmap_eval::correlation` must agree with scikit-image on the same data:
//! SSIM to 1e-6, MSE to 1e-9 relative.
//!
//! Needs the project venv's python with scikit-image (scripts/setup.sh installs it). The cases
//! are generated deterministically: smooth and noisy planes (11x11, 13x13, 19x23, 23x19, 52x52)
//! with shifts, gains, sparse ReLU-like maps and large offsets, float and 8-bit tensors with one
//! data range over their channels, and 8-bit grey frames (one at 768x576).

mod common;

use codec_core::{Shape, Tensor};
use fmap_eval::correlation::{PairStats, gray_pair, mse, ssim_plane, tensor_pair};
use serde_json::{Value, json};

use common::{Lcg, python_reference};

/// A smooth pattern with texture, values in about [0, 1].
fn pattern(rng: &mut Lcg, n: usize, width: usize) -> Vec<f64> {
    let (fx, fy, ph) = (rng.next() * 0.6, rng.next() * 0.6, rng.next() * 6.0);
    (0..n)
        .map(|i| {
            let (x, y) = ((i % width) as f64, (i / width) as f64);
            0.5 + 0.3 * (fx * x + fy * y + ph).sin() + 0.2 * rng.next()
        })
        .collect()
}

/// `b = gain · a + offset + noise`, then the variant's shaping, as f32.
fn pair(rng: &mut Lcg, n: usize, width: usize, variant: usize) -> (Vec<f32>, Vec<f32>) {
    let a = pattern(rng, n, width);
    let (gain, offset, noise) = (0.8 + 0.4 * rng.next(), 0.1 * (rng.next() - 0.5), rng.next());
    let b: Vec<f64> = a
        .iter()
        .map(|v| gain * v + offset + noise * 0.3 * (rng.next() - 0.5))
        .collect();
    let shape = |v: Vec<f64>| -> Vec<f32> {
        v.into_iter()
            .map(|x| match variant {
                // Sparse, ReLU-like activations.
                1 => ((x - 0.6) * 4.0).max(0.0) as f32,
                // Large values with a large offset: cancellation in E[x²] − E[x]².
                2 => (1000.0 + 50.0 * x) as f32,
                // Signed values.
                3 => ((x - 0.5) * 3.0) as f32,
                _ => x as f32,
            })
            .collect()
    };
    (shape(a), shape(b))
}

fn floats(v: &[f32]) -> Value {
    json!(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())
}

fn range(a: &[f32], b: &[f32]) -> f64 {
    let lo = a.iter().chain(b).fold(f32::INFINITY, |m, &v| m.min(v));
    let hi = a.iter().chain(b).fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    f64::from(hi) - f64::from(lo)
}

/// The cases as JSON for the reference, with our results for each.
fn cases() -> (Vec<Value>, Vec<(String, PairStats)>) {
    let mut rng = Lcg(2024);
    let (mut doc, mut ours) = (Vec::new(), Vec::new());
    for (width, height) in [(11, 11), (13, 13), (19, 23), (23, 19), (52, 52)] {
        for variant in 0..4 {
            let (a, b) = pair(&mut rng, width * height, width, variant);
            // The data range of the pair, and once a fixed one unrelated to the data.
            for r in [range(&a, &b), 2.5] {
                let stats = PairStats {
                    ssim: ssim_plane(&a, &b, width, height, r).unwrap(),
                    mse: mse(&a, &b).unwrap(),
                    nmse: None,
                };
                ours.push((format!("plane {width}x{height} v{variant} R={r}"), stats));
                doc.push(json!({"kind": "plane", "width": width, "height": height,
                    "a": floats(&a), "b": floats(&b), "data_range": r}));
            }
        }
    }
    for (shape, variant) in [
        (Shape::new(3, 13, 17), 0),
        (Shape::new(3, 19, 11), 1),
        (Shape::new(4, 26, 26), 3),
    ] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        // Channels of different scales, so one data range over all channels matters.
        for c in 0..shape.channels {
            let (pa, pb) = pair(&mut rng, shape.plane_len(), shape.width, variant);
            let gain = (1 + 2 * c) as f32;
            a.extend(pa.iter().map(|v| v * gain));
            b.extend(pb.iter().map(|v| v * gain));
        }
        let (ta, tb) = (
            Tensor::from_f32("t", shape, a.clone()).unwrap(),
            Tensor::from_f32("t", shape, b.clone()).unwrap(),
        );
        ours.push((format!("tensor {shape}"), tensor_pair(&ta, &tb).unwrap()));
        doc.push(
            json!({"kind": "tensor", "shape": [shape.channels, shape.height, shape.width],
            "a": floats(&a), "b": floats(&b)}),
        );
    }
    for (shape, scale, zp) in [
        (Shape::new(3, 13, 13), 0.047f32, 0),
        (Shape::new(2, 19, 19), 0.113, 128),
    ] {
        let codes_a: Vec<u8> = (0..shape.len())
            .map(|i| ((i % 37) as f64 * 5.0 + rng.next() * 40.0) as u8)
            .collect();
        let codes_b: Vec<u8> = codes_a
            .iter()
            .map(|&c| {
                c.saturating_add((rng.next() * 12.0) as u8)
                    .saturating_sub(4)
            })
            .collect();
        let ta = Tensor::from_u8("q", shape, codes_a.clone(), scale, zp).unwrap();
        let tb = Tensor::from_u8("q", shape, codes_b.clone(), scale, zp).unwrap();
        ours.push((format!("u8 tensor {shape}"), tensor_pair(&ta, &tb).unwrap()));
        doc.push(
            json!({"kind": "tensor_u8", "shape": [shape.channels, shape.height, shape.width],
            "a": codes_a, "b": codes_b, "scale": f64::from(scale), "zero_point": zp}),
        );
    }
    for (width, height) in [(64, 48), (768, 576)] {
        let a: Vec<u8> = pattern(&mut rng, width * height, width)
            .iter()
            .map(|v| (v * 255.0).clamp(0.0, 255.0) as u8)
            .collect();
        let b: Vec<u8> = a
            .iter()
            .map(|&v| (f64::from(v) + 20.0 * (rng.next() - 0.5)).clamp(0.0, 255.0) as u8)
            .collect();
        ours.push((
            format!("grey {width}x{height}"),
            gray_pair(&a, &b, width, height).unwrap(),
        ));
        doc.push(json!({"kind": "gray", "width": width, "height": height, "a": a, "b": b}));
    }
    (doc, ours)
}

fn skimage_reference(cases: Vec<Value>) -> Vec<Value> {
    match python_reference("ssim_reference.py", &json!({ "cases": cases })) {
        Value::Array(v) => v,
        other => panic!("scikit-image reference printed {other}, not a JSON list"),
    }
}

#[test]
fn agrees_with_scikit_image() {
    let (doc, ours) = cases();
    let reference = skimage_reference(doc);
    assert_eq!(reference.len(), ours.len());
    let mut below_one = 0;
    for ((case, stats), theirs) in ours.iter().zip(&reference) {
        let ssim = theirs["ssim"].as_f64().unwrap();
        let mse = theirs["mse"].as_f64().unwrap();
        assert!(
            (stats.ssim - ssim).abs() <= 1e-6,
            "{case}: SSIM ours {} scikit-image {ssim}",
            stats.ssim
        );
        assert!(
            (stats.mse - mse).abs() <= 1e-9 * mse.abs(),
            "{case}: MSE ours {} scikit-image {mse}",
            stats.mse
        );
        if ssim < 0.99 {
            below_one += 1;
        }
    }
    // The cases must be far from trivial, or the comparison proves little.
    assert!(
        below_one * 4 >= ours.len() * 3,
        "only {below_one} of {} cases have SSIM below 0.99",
        ours.len()
    );
}
