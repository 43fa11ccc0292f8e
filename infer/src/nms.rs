//! Class-wise greedy non-maximum suppression.
//!
//! Candidates are visited in a fixed order (score descending, then candidate index ascending),
//! so the result does not depend on sort stability or on the order of equal scores. A candidate
//! is dropped when its IoU with an already kept box *of the same class* is greater than the
//! threshold (the `>` convention of torchvision and OpenCV).

/// Intersection over union of two `[x1, y1, x2, y2]` boxes. Degenerate boxes (zero or negative
/// area, NaN) have IoU 0 with everything.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    // f32::min/max ignore NaN, which would silently turn a NaN corner into a valid one.
    if a.iter().chain(b).any(|v| v.is_nan()) {
        return 0.0;
    }
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union > 0.0 && inter > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// One NMS input: a box, its score and its class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: [f32; 4],
    pub score: f32,
    pub class_id: u32,
}

/// The order NMS visits candidates in: score descending (NaN last), then index ascending.
pub fn score_order(candidates: &[Candidate]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&i, &j| {
        let (si, sj) = (candidates[i].score, candidates[j].score);
        // total_cmp puts NaN above +inf; map NaN to -inf so it sorts last.
        let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
        key(sj).total_cmp(&key(si)).then(i.cmp(&j))
    });
    order
}

/// Greedy class-wise NMS. Returns the indices of the kept candidates, best first, at most
/// `max_keep` of them.
pub fn class_wise_nms(candidates: &[Candidate], iou_threshold: f32, max_keep: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    if max_keep == 0 {
        return kept;
    }
    for i in score_order(candidates) {
        let c = &candidates[i];
        let suppressed = kept.iter().any(|&k| {
            let other = &candidates[k];
            other.class_id == c.class_id && iou(&other.bbox, &c.bbox) > iou_threshold
        });
        if !suppressed {
            kept.push(i);
            // Later candidates score lower and cannot change what is already kept.
            if kept.len() == max_keep {
                break;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(bbox: [f32; 4], score: f32, class_id: u32) -> Candidate {
        Candidate {
            bbox,
            score,
            class_id,
        }
    }

    #[test]
    fn iou_known_values() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[10.0, 0.0, 20.0, 10.0]), 0.0); // touching
        assert_eq!(iou(&a, &[5.0, 0.0, 15.0, 10.0]), 50.0 / 150.0);
        assert_eq!(iou(&a, &[0.0, 0.0, 5.0, 5.0]), 0.25); // contained
        assert_eq!(iou(&a, &[3.0, 3.0, 3.0, 8.0]), 0.0); // zero width
        assert_eq!(iou(&a, &[f32::NAN, 0.0, 5.0, 5.0]), 0.0);
        assert_eq!(iou(&[5.0, 5.0, 0.0, 0.0], &a), 0.0); // inverted
    }

    #[test]
    fn suppresses_only_same_class_overlaps() {
        let c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.9, 0),
            cand([1.0, 0.0, 11.0, 10.0], 0.8, 0), // IoU 9/11 with #0 → suppressed
            cand([1.0, 0.0, 11.0, 10.0], 0.7, 1), // other class → kept
            cand([5.0, 0.0, 15.0, 10.0], 0.6, 0), // IoU 1/3 with #0 → kept at 0.6
            cand([20.0, 20.0, 30.0, 30.0], 0.95, 0),
        ];
        assert_eq!(class_wise_nms(&c, 0.6, 100), vec![4, 0, 2, 3]);
        // Lower threshold: #3 (IoU 1/3) goes too.
        assert_eq!(class_wise_nms(&c, 0.3, 100), vec![4, 0, 2]);
        // max_keep cuts the best-first list.
        assert_eq!(class_wise_nms(&c, 0.6, 2), vec![4, 0]);
        assert!(class_wise_nms(&c, 0.6, 0).is_empty());
        assert!(class_wise_nms(&[], 0.6, 10).is_empty());
    }

    #[test]
    fn iou_equal_to_threshold_is_kept() {
        // IoU exactly 0.5: kept with threshold 0.5 (suppress only when greater).
        let c = vec![
            cand([0.0, 0.0, 4.0, 1.0], 0.9, 0),
            cand([0.0, 0.0, 2.0, 1.0], 0.8, 0),
        ];
        assert_eq!(iou(&c[0].bbox, &c[1].bbox), 0.5);
        assert_eq!(class_wise_nms(&c, 0.5, 10), vec![0, 1]);
        assert_eq!(class_wise_nms(&c, 0.49, 10), vec![0]);
    }

    #[test]
    fn ties_and_nan_are_deterministic() {
        let b = [0.0, 0.0, 10.0, 10.0];
        let c = vec![
            cand(b, 0.5, 0),
            cand(b, f32::NAN, 0),
            cand(b, 0.5, 0),
            cand(b, 0.7, 1),
        ];
        assert_eq!(score_order(&c), vec![3, 0, 2, 1]);
        // Equal scores: the lower index wins.
        assert_eq!(class_wise_nms(&c, 0.6, 10), vec![3, 0]);
    }
}
