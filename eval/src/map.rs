//! COCO-style average precision of detections against reference boxes.
//!
//! Follows the COCO evaluation protocol for bounding boxes (as implemented by pycocotools'
//! `COCOeval`, area range "all", at most `max_dets` detections per image):
//!
//! - per image and class, detections are sorted by score (stable) and cut to `max_dets`;
//! - at each IoU threshold, each detection in score order is matched to the unmatched reference
//!   box of the same class with the highest IoU at or above the threshold (later boxes win ties);
//! - per class, detections of all images are ranked by score (stable), cumulative true and false
//!   positives give precision and recall, precision is made non-increasing from the right, and
//!   sampled at the 101 recall points 0, 0.01, ..., 1 (the first rank reaching each recall);
//! - AP is the mean of those samples; classes without reference boxes have no AP.
//!
//! IoU uses continuous coordinates (area = w·h, no "+1"), like pycocotools.

use std::collections::{BTreeMap, BTreeSet};

/// COCO's default limit of detections per image.
pub const COCO_MAX_DETS: usize = 100;
const RECALL_POINTS: usize = 101;

/// A box `[x1, y1, x2, y2]` with a class and, for detections, a score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredBox {
    pub class_id: u32,
    pub score: f64,
    pub bbox: [f64; 4],
}

/// One image (video frame): its reference boxes and the detections to score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageEval {
    pub reference: Vec<ScoredBox>,
    pub detections: Vec<ScoredBox>,
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = a[2].min(b[2]) - a[0].max(b[0]);
    let ih = a[3].min(b[3]) - a[1].max(b[1]);
    if iw <= 0.0 || ih <= 0.0 {
        return 0.0;
    }
    let inter = iw * ih;
    let area = |r: &[f64; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Average precision of one class at several IoU thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    pub class_id: u32,
    /// Number of reference boxes of this class over all images.
    pub reference_count: usize,
    /// AP at each threshold of the evaluation, in the order given.
    pub ap: Vec<f64>,
}

impl ClassAp {
    /// AP averaged over the thresholds (COCO's AP@[.5:.95] when evaluated at those).
    pub fn mean_ap(&self) -> f64 {
        self.ap.iter().sum::<f64>() / self.ap.len() as f64
    }
}

/// Per-class AP over a set of images, at the given IoU thresholds.
///
/// Classes that appear only among detections (no reference box) are left out, as COCO does.
pub fn evaluate(images: &[ImageEval], iou_thresholds: &[f64], max_dets: usize) -> Vec<ClassAp> {
    let classes: BTreeSet<u32> = images
        .iter()
        .flat_map(|im| im.reference.iter().map(|b| b.class_id))
        .collect();
    classes
        .into_iter()
        .map(|class| evaluate_class(images, class, iou_thresholds, max_dets))
        .collect()
}

fn evaluate_class(
    images: &[ImageEval],
    class: u32,
    thresholds: &[f64],
    max_dets: usize,
) -> ClassAp {
    let mut reference_count = 0;
    // Per threshold: (score, is_true_positive) of every kept detection, image by image.
    let mut ranked: Vec<Vec<(f64, bool)>> = vec![Vec::new(); thresholds.len()];
    for im in images {
        let gts: Vec<&ScoredBox> = im
            .reference
            .iter()
            .filter(|b| b.class_id == class)
            .collect();
        reference_count += gts.len();
        let mut dts: Vec<&ScoredBox> = im
            .detections
            .iter()
            .filter(|b| b.class_id == class)
            .collect();
        // Stable sort by descending score, then keep the best max_dets.
        dts.sort_by(|a, b| b.score.total_cmp(&a.score));
        dts.truncate(max_dets);
        let ious: Vec<Vec<f64>> = dts
            .iter()
            .map(|d| gts.iter().map(|g| iou(&d.bbox, &g.bbox)).collect())
            .collect();
        for (t, &threshold) in thresholds.iter().enumerate() {
            let mut gt_matched = vec![false; gts.len()];
            for (d, det) in dts.iter().enumerate() {
                let mut best = threshold.min(1.0 - 1e-10);
                let mut matched = None;
                for (g, &overlap) in ious[d].iter().enumerate() {
                    if gt_matched[g] || overlap < best {
                        continue;
                    }
                    best = overlap;
                    matched = Some(g);
                }
                if let Some(g) = matched {
                    gt_matched[g] = true;
                }
                ranked[t].push((det.score, matched.is_some()));
            }
        }
    }
    let ap = ranked
        .into_iter()
        .map(|mut dets| {
            dets.sort_by(|a, b| b.0.total_cmp(&a.0));
            average_precision(&dets, reference_count)
        })
        .collect();
    ClassAp {
        class_id: class,
        reference_count,
        ap,
    }
}

/// 101-point interpolated AP of detections already ranked by score.
fn average_precision(ranked: &[(f64, bool)], reference_count: usize) -> f64 {
    if reference_count == 0 {
        return 0.0;
    }
    let mut tp = 0usize;
    let mut recall = Vec::with_capacity(ranked.len());
    let mut precision = Vec::with_capacity(ranked.len());
    for (i, &(_, is_tp)) in ranked.iter().enumerate() {
        tp += usize::from(is_tp);
        recall.push(tp as f64 / reference_count as f64);
        precision.push(tp as f64 / (i + 1) as f64);
    }
    for i in (1..precision.len()).rev() {
        if precision[i] > precision[i - 1] {
            precision[i - 1] = precision[i];
        }
    }
    let mut sum = 0.0;
    for k in 0..RECALL_POINTS {
        let r = linspace_point(0.0, 1.0, RECALL_POINTS, k);
        let first = recall.partition_point(|&x| x < r);
        if first < precision.len() {
            sum += precision[first];
        }
    }
    sum / RECALL_POINTS as f64
}

/// Point `k` of `numpy.linspace(start, stop, num)`, computed as numpy does (`k * step + start`,
/// the last point exactly `stop`), so that recalls that land exactly on a sampling point (e.g.
/// 7 of 100 boxes) fall on the same side of it as in pycocotools.
fn linspace_point(start: f64, stop: f64, num: usize, k: usize) -> f64 {
    if k + 1 == num {
        return stop;
    }
    let step = (stop - start) / (num - 1) as f64;
    k as f64 * step + start
}

/// COCO's IoU thresholds exactly as pycocotools computes them (`linspace(.5, .95, 10)`).
pub fn coco_iou_thresholds() -> Vec<f64> {
    (0..10).map(|k| linspace_point(0.5, 0.95, 10, k)).collect()
}

/// The summary numbers the evaluation reports for one setting.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MapSummary {
    /// AP@0.5 per class id (classes with at least one reference box).
    pub ap50_per_class: BTreeMap<u32, f64>,
    /// Reference boxes per class id.
    pub reference_counts: BTreeMap<u32, usize>,
    /// Mean AP@0.5 over the classes the caller's `robust` filter admits (the evaluation: person
    /// and vehicle classes with at least 100 reference boxes).
    pub map50_robust: Option<f64>,
    /// Mean AP@0.5 over all classes with a reference box.
    pub map50_all: Option<f64>,
    /// Mean AP@[0.5:0.95] over all classes with a reference box.
    pub map50_95_all: Option<f64>,
}

/// Evaluates at COCO's thresholds and summarizes. `robust(class_id, reference_boxes)` says
/// whether a class counts in `map50_robust`.
pub fn summarize(images: &[ImageEval], robust: impl Fn(u32, usize) -> bool) -> MapSummary {
    let classes = evaluate(images, &coco_iou_thresholds(), COCO_MAX_DETS);
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    MapSummary {
        ap50_per_class: classes.iter().map(|c| (c.class_id, c.ap[0])).collect(),
        reference_counts: classes
            .iter()
            .map(|c| (c.class_id, c.reference_count))
            .collect(),
        map50_robust: mean(
            classes
                .iter()
                .filter(|c| robust(c.class_id, c.reference_count))
                .map(|c| c.ap[0])
                .collect(),
        ),
        map50_all: mean(classes.iter().map(|c| c.ap[0]).collect()),
        map50_95_all: mean(classes.iter().map(ClassAp::mean_ap).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(class_id: u32, score: f64, bbox: [f64; 4]) -> ScoredBox {
        ScoredBox {
            class_id,
            score,
            bbox,
        }
    }

    #[test]
    fn iou_known_values() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[10.0, 0.0, 20.0, 10.0]), 0.0);
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn identical_detections_score_one() {
        let refs = vec![
            b(0, 1.0, [0.0, 0.0, 10.0, 10.0]),
            b(2, 1.0, [20.0, 20.0, 40.0, 50.0]),
        ];
        let images = vec![ImageEval {
            reference: refs.clone(),
            detections: refs,
        }];
        let s = summarize(&images, |_, n| n >= 1);
        assert_eq!(s.map50_all, Some(1.0));
        assert_eq!(s.map50_95_all, Some(1.0));
        assert_eq!(s.map50_robust, Some(1.0));
    }

    #[test]
    fn half_recall_with_perfect_precision() {
        // Two references, one found: precision 1 up to recall 0.5, then nothing: 51/101.
        let images = vec![ImageEval {
            reference: vec![
                b(0, 1.0, [0.0, 0.0, 10.0, 10.0]),
                b(0, 1.0, [50.0, 50.0, 60.0, 60.0]),
            ],
            detections: vec![b(0, 0.9, [0.0, 0.0, 10.0, 10.0])],
        }];
        let ap = evaluate(&images, &[0.5], 100)[0].ap[0];
        assert!((ap - 51.0 / 101.0).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn false_positive_ranked_first_lowers_ap() {
        let images = vec![ImageEval {
            reference: vec![b(0, 1.0, [0.0, 0.0, 10.0, 10.0])],
            detections: vec![
                b(0, 0.9, [30.0, 30.0, 40.0, 40.0]),
                b(0, 0.8, [0.0, 0.0, 10.0, 10.0]),
            ],
        }];
        // Precision 1/2 at full recall.
        let ap = evaluate(&images, &[0.5], 100)[0].ap[0];
        assert!((ap - 0.5).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn wrong_class_and_missing_detections_score_zero() {
        let images = vec![ImageEval {
            reference: vec![b(1, 1.0, [0.0, 0.0, 10.0, 10.0])],
            detections: vec![b(3, 0.9, [0.0, 0.0, 10.0, 10.0])],
        }];
        let s = summarize(&images, |_, n| n >= 100);
        assert_eq!(s.ap50_per_class.get(&1), Some(&0.0));
        assert_eq!(s.ap50_per_class.get(&3), None);
        assert_eq!(s.map50_robust, None, "no class has 100 instances");
    }

    #[test]
    fn loose_box_passes_at_half_but_not_at_high_iou() {
        // IoU = 0.64: a hit at 0.5..0.6, a miss at 0.65 and above.
        let images = vec![ImageEval {
            reference: vec![b(0, 1.0, [0.0, 0.0, 10.0, 10.0])],
            detections: vec![b(0, 0.9, [0.0, 0.0, 10.0, 6.4])],
        }];
        let c = &evaluate(&images, &coco_iou_thresholds(), 100)[0];
        assert_eq!(&c.ap[..3], &[1.0, 1.0, 1.0]);
        assert!(c.ap[3..].iter().all(|&a| a == 0.0));
        assert!((c.mean_ap() - 0.3).abs() < 1e-12);
    }

    #[test]
    fn max_dets_keeps_the_best_per_image() {
        let mut detections: Vec<ScoredBox> = (0..5)
            .map(|i| b(0, 0.1 + i as f64 * 0.01, [100.0, 100.0, 110.0, 110.0]))
            .collect();
        detections.push(b(0, 0.05, [0.0, 0.0, 10.0, 10.0]));
        let images = vec![ImageEval {
            reference: vec![b(0, 1.0, [0.0, 0.0, 10.0, 10.0])],
            detections,
        }];
        assert_eq!(evaluate(&images, &[0.5], 5)[0].ap[0], 0.0);
        assert!(evaluate(&images, &[0.5], 6)[0].ap[0] > 0.0);
    }
}
