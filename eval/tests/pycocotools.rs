//! The mAP code must agree with pycocotools on the same detections to 1e-3.
//!
//! Needs the project venv's python with pycocotools (scripts/setup.sh installs it). The
//! scenarios are generated deterministically: jittered, dropped, duplicated and false
//! detections over several classes and frames, including score ties.

mod common;

use common::{Lcg, python_reference};
use fmap_eval::map::{COCO_MAX_DETS, ImageEval, ScoredBox, coco_iou_thresholds, evaluate};

fn scenario(seed: u64, frames: usize) -> Vec<ImageEval> {
    let mut rng = Lcg(seed);
    (0..frames)
        .map(|_| {
            let mut im = ImageEval::default();
            let objects = (rng.next() * 8.0) as usize;
            for _ in 0..objects {
                let class_id = (rng.next() * 4.0) as u32;
                let (x, y) = (rng.next() * 600.0, rng.next() * 400.0);
                let (w, h) = (10.0 + rng.next() * 120.0, 10.0 + rng.next() * 160.0);
                let bbox = [x, y, x + w, y + h];
                im.reference.push(ScoredBox {
                    class_id,
                    score: 1.0,
                    bbox,
                });
                if rng.next() < 0.8 {
                    let j = |r: &mut Lcg, s: f64| (r.next() - 0.5) * s;
                    let jitter = 0.3 * rng.next();
                    let det = [
                        bbox[0] + j(&mut rng, w * jitter),
                        bbox[1] + j(&mut rng, h * jitter),
                        bbox[2] + j(&mut rng, w * jitter),
                        bbox[3] + j(&mut rng, h * jitter),
                    ];
                    // Quantized scores produce ties, which exercise the stable ranking.
                    let score = (rng.next() * 20.0).round() / 20.0;
                    im.detections.push(ScoredBox {
                        class_id,
                        score,
                        bbox: det,
                    });
                    if rng.next() < 0.15 {
                        im.detections.push(ScoredBox {
                            class_id,
                            score: score * 0.5,
                            bbox: det,
                        });
                    }
                }
            }
            for _ in 0..(rng.next() * 3.0) as usize {
                let (x, y) = (rng.next() * 600.0, rng.next() * 400.0);
                im.detections.push(ScoredBox {
                    class_id: (rng.next() * 5.0) as u32,
                    score: rng.next(),
                    bbox: [x, y, x + 30.0, y + 40.0],
                });
            }
            im
        })
        .collect()
}

fn pycocotools_ap(images: &[ImageEval]) -> serde_json::Map<String, serde_json::Value> {
    let doc = serde_json::json!({
        "images": images.iter().map(|im| serde_json::json!({
            "reference": im.reference.iter().map(|b| serde_json::json!(
                [b.class_id, b.bbox[0], b.bbox[1], b.bbox[2], b.bbox[3]])).collect::<Vec<_>>(),
            "detections": im.detections.iter().map(|b| serde_json::json!(
                [b.class_id, b.score, b.bbox[0], b.bbox[1], b.bbox[2], b.bbox[3]])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()
    });
    match python_reference("pycoco_reference.py", &doc) {
        serde_json::Value::Object(m) => m,
        other => panic!("pycocotools printed {other}, not a JSON object"),
    }
}

#[test]
fn agrees_with_pycocotools() {
    for (seed, frames) in [(1u64, 1usize), (7, 20), (42, 120), (99, 300)] {
        let images = scenario(seed, frames);
        let thresholds = coco_iou_thresholds();
        let ours = evaluate(&images, &thresholds, COCO_MAX_DETS);
        let reference = pycocotools_ap(&images);
        assert_eq!(
            ours.len(),
            reference.len(),
            "class sets differ (seed {seed})"
        );
        let mut nontrivial = 0;
        for class in &ours {
            let theirs = reference[&class.class_id.to_string()].as_array().unwrap();
            for (t, (a, b)) in class.ap.iter().zip(theirs).enumerate() {
                let b = b.as_f64().unwrap();
                assert!(
                    (a - b).abs() <= 1e-3,
                    "seed {seed} class {} IoU {}: ours {a} pycocotools {b}",
                    class.class_id,
                    thresholds[t]
                );
                if b > 0.05 && b < 0.95 {
                    nontrivial += 1;
                }
            }
        }
        // The scenario must exercise partial precision/recall, or the comparison proves little.
        assert!(
            nontrivial > 0 || frames == 1,
            "seed {seed}: only trivial APs"
        );
    }
}
