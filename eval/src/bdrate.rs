//! Bjøntegaard delta rate (BD-rate) between two rate–accuracy curves, and the lowest rate that
//! keeps accuracy above a bar.
//!
//! BD-rate is the average difference in rate at equal accuracy: log10(rate) is interpolated as a
//! function of accuracy for both curves, the difference is averaged over the accuracy interval
//! both curves cover, and `10^mean − 1` is the relative rate change of the test curve against
//! the anchor (−0.5 = the test needs half the bits). Accuracy curves of detectors saturate (many
//! settings reach the same mAP), which makes the classic global cubic fit swing wildly, so the
//! interpolation is the monotone piecewise-cubic Hermite (PCHIP) variant through the curve's
//! Pareto front (points that no other point beats in both rate and accuracy).

use std::collections::{BTreeMap, BTreeSet};

use crate::anchors::{AnchorCodec, AnchorResult};
use crate::evaluate::SettingResult;
use crate::map::MapSummary;

/// One operating point.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RatePoint {
    pub kbit_per_s: f64,
    pub accuracy: f64,
}

/// Why a BD-rate cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BdRateError {
    #[error("a curve needs at least 2 points with distinct accuracy on its Pareto front")]
    TooFewPoints,
    #[error("the curves' accuracy ranges do not overlap")]
    NoOverlap,
}

/// The Pareto front of `points` in (low rate, high accuracy), as (accuracy, log10 rate) with
/// accuracy strictly increasing. Non-finite and non-positive rates are dropped.
fn front(points: &[RatePoint]) -> Vec<(f64, f64)> {
    let mut p: Vec<RatePoint> = points
        .iter()
        .copied()
        .filter(|p| p.kbit_per_s.is_finite() && p.kbit_per_s > 0.0 && p.accuracy.is_finite())
        .collect();
    p.sort_by(|a, b| a.kbit_per_s.total_cmp(&b.kbit_per_s));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for q in p {
        // In rate order, a point belongs to the front iff it beats every cheaper point.
        if out.last().is_none_or(|&(acc, _)| q.accuracy > acc) {
            out.push((q.accuracy, q.kbit_per_s.log10()));
        }
    }
    out
}

/// Monotone piecewise-cubic Hermite interpolant (Fritsch–Carlson slopes) of strictly increasing
/// `x`, evaluated at `t` inside [x0, xn].
fn pchip(pts: &[(f64, f64)], t: f64) -> f64 {
    let n = pts.len();
    let h: Vec<f64> = pts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let d: Vec<f64> = pts
        .windows(2)
        .zip(&h)
        .map(|(w, h)| (w[1].1 - w[0].1) / h)
        .collect();
    let slope = |k: usize| -> f64 {
        if n == 2 {
            return d[0];
        }
        if k == 0 || k == n - 1 {
            // One-sided three-point end slope, limited to keep the shape monotone.
            let (h0, h1, d0, d1) = if k == 0 {
                (h[0], h[1], d[0], d[1])
            } else {
                (h[n - 2], h[n - 3], d[n - 2], d[n - 3])
            };
            let s = ((2.0 * h0 + h1) * d0 - h0 * d1) / (h0 + h1);
            if s.signum() != d0.signum() {
                0.0
            } else if d0.signum() != d1.signum() && s.abs() > 3.0 * d0.abs() {
                3.0 * d0
            } else {
                s
            }
        } else if d[k - 1] * d[k] <= 0.0 {
            0.0
        } else {
            let (w1, w2) = (2.0 * h[k] + h[k - 1], h[k] + 2.0 * h[k - 1]);
            (w1 + w2) / (w1 / d[k - 1] + w2 / d[k])
        }
    };
    let k = pts.windows(2).position(|w| t <= w[1].0).unwrap_or(n - 2);
    let (x0, y0) = pts[k];
    let (x1, y1) = pts[k + 1];
    let hk = x1 - x0;
    let s = ((t - x0) / hk).clamp(0.0, 1.0);
    let (m0, m1) = (slope(k), slope(k + 1));
    let s2 = s * s;
    let s3 = s2 * s;
    (2.0 * s3 - 3.0 * s2 + 1.0) * y0
        + (s3 - 2.0 * s2 + s) * hk * m0
        + (-2.0 * s3 + 3.0 * s2) * y1
        + (s3 - s2) * hk * m1
}

/// BD-rate of `test` against `anchor` as a fraction (−0.5 = half the rate at equal accuracy).
pub fn bd_rate(anchor: &[RatePoint], test: &[RatePoint]) -> Result<f64, BdRateError> {
    let (a, t) = (front(anchor), front(test));
    if a.len() < 2 || t.len() < 2 {
        return Err(BdRateError::TooFewPoints);
    }
    let lo = a[0].0.max(t[0].0);
    let hi = a[a.len() - 1].0.min(t[t.len() - 1].0);
    if hi <= lo {
        return Err(BdRateError::NoOverlap);
    }
    // Simpson's rule on a fine grid: the integrand is smooth within each Hermite piece.
    const STEPS: usize = 2000;
    let step = (hi - lo) / STEPS as f64;
    let mut sum = 0.0;
    for i in 0..=STEPS {
        let x = lo + step * i as f64;
        let w = if i == 0 || i == STEPS {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        sum += w * (pchip(&t, x) - pchip(&a, x));
    }
    let mean_log_diff = sum * step / 3.0 / (hi - lo);
    Ok(10f64.powf(mean_log_diff) - 1.0)
}

/// The lowest rate among `points` whose accuracy is at or above `bar`, if any reaches it.
pub fn lowest_rate_meeting<T>(
    points: &[T],
    bar: f64,
    rate: impl Fn(&T) -> f64,
    accuracy: impl Fn(&T) -> Option<f64>,
) -> Option<&T> {
    points
        .iter()
        .filter(|p| accuracy(p).is_some_and(|a| a >= bar) && rate(p).is_finite())
        .min_by(|a, b| rate(a).total_cmp(&rate(b)))
}

/// Person AP@0.5 a setting must keep (against the unsplit reference) in the headline table.
pub const PERSON_AP50_BAR: f64 = 0.98;
/// Robust mAP@0.5 a setting must keep in the headline table.
pub const MAP50_ROBUST_BAR: f64 = 0.95;

/// BD-rate of one feature method at one split against one anchor curve, at equal accuracy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BdRateRow {
    pub split: String,
    pub method: String,
    pub anchor: String,
    /// Which accuracy the curves are compared at: "person AP50" or "robust mAP50".
    pub accuracy: String,
    /// Percent (−50 = half the anchor's rate); `None` with `note` when it cannot be computed.
    pub bd_rate_percent: Option<f64>,
    pub note: Option<String>,
}

/// The lowest rate one curve needs to keep an accuracy bar.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeadlineRow {
    pub split: String,
    /// "features (any method)" or an anchor curve such as "x265 416x416".
    pub candidate: String,
    pub criterion: String,
    pub kbit_per_s: Option<f64>,
    /// The method and setting that achieves it.
    pub achieved_by: Option<String>,
}

/// The accuracies BD-rates are computed at: name, and how to read it from a point.
const BD_ACCURACIES: [(&str, Accuracy); 2] = [
    ("person AP50", |_, p| p),
    ("robust mAP50", |m, _| m.map50_robust),
];

/// BD-rates of every feature method of every split against the x264/x265 anchor curves, at
/// equal person AP@0.5 and at equal robust mAP@0.5.
pub fn bd_rate_table(features: &[SettingResult], anchors: &[AnchorResult]) -> Vec<BdRateRow> {
    let mut rows = Vec::new();
    for (accuracy_name, accuracy) in BD_ACCURACIES {
        let mut anchor_curves: BTreeMap<&str, Vec<RatePoint>> = BTreeMap::new();
        for a in anchors
            .iter()
            .filter(|a| a.codec == "x264" || a.codec == "x265")
        {
            if let Some(acc) = accuracy(&a.accuracy, a.person_ap50) {
                anchor_curves.entry(&a.method).or_default().push(RatePoint {
                    kbit_per_s: a.kbit_per_s,
                    accuracy: acc,
                });
            }
        }
        let mut curves: BTreeMap<(&str, &str), Vec<RatePoint>> = BTreeMap::new();
        for r in features {
            if let Some(acc) = accuracy(&r.accuracy, r.person_ap50) {
                curves
                    .entry((&r.split, &r.method))
                    .or_default()
                    .push(RatePoint {
                        kbit_per_s: r.kbit_per_s,
                        accuracy: acc,
                    });
            }
        }
        for ((split, method), points) in &curves {
            for (anchor, a) in &anchor_curves {
                let bd = bd_rate(a, points);
                rows.push(BdRateRow {
                    split: split.to_string(),
                    method: method.to_string(),
                    anchor: anchor.to_string(),
                    accuracy: accuracy_name.to_string(),
                    bd_rate_percent: bd.as_ref().ok().map(|b| b * 100.0),
                    note: bd.err().map(|e| e.to_string()),
                });
            }
        }
    }
    rows
}

/// One lever of a mode turned off: its BD-rate against the mode with every lever on, and what
/// it does to the encoding time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeverRow {
    pub split: String,
    /// The variant's method name, e.g. "adaptive, no motion".
    pub variant: String,
    /// The method it is compared with, e.g. "adaptive".
    pub baseline: String,
    pub accuracy: String,
    /// Percent: positive = turning the lever off costs that many more bits at equal accuracy.
    pub bd_rate_percent: Option<f64>,
    pub note: Option<String>,
    /// Mean encode time per frame over the variant's points minus the baseline's, ms.
    pub encode_ms_delta: Option<f64>,
}

/// For every method named "`<baseline>, <lever off>`" with a curve next to "`<baseline>`" at the same
/// split: the BD-rate of turning that lever off (person AP@0.5 and robust mAP@0.5).
pub fn lever_table(features: &[SettingResult]) -> Vec<LeverRow> {
    let methods: BTreeSet<&str> = features.iter().map(|r| r.method.as_str()).collect();
    let pairs: Vec<(&str, &str)> = methods
        .iter()
        .filter_map(|&variant| Some((variant.split_once(", ")?.0, variant)))
        .collect();
    compare_methods(features, &pairs)
}

/// For every (baseline, variant) pair of methods with curves at the same split: the BD-rate of
/// the variant against the baseline (person AP@0.5 and robust mAP@0.5) and the difference in
/// encode time.
pub fn compare_methods(features: &[SettingResult], pairs: &[(&str, &str)]) -> Vec<LeverRow> {
    let mut rows = Vec::new();
    let mean_ms = |pts: &[&SettingResult]| {
        let v: Vec<f64> = pts.iter().filter_map(|r| r.encode_ms_per_frame).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let splits: BTreeSet<&str> = features.iter().map(|r| r.split.as_str()).collect();
    for split in splits {
        let here: Vec<&SettingResult> = features.iter().filter(|r| r.split == split).collect();
        let of = |m: &str| -> Vec<&SettingResult> {
            here.iter().copied().filter(|r| r.method == m).collect()
        };
        for &(baseline, variant) in pairs {
            let (base, var) = (of(baseline), of(variant));
            if base.is_empty() || var.is_empty() {
                continue;
            }
            for (accuracy_name, accuracy) in BD_ACCURACIES {
                let curve = |pts: &[&SettingResult]| -> Vec<RatePoint> {
                    pts.iter()
                        .filter_map(|r| {
                            accuracy(&r.accuracy, r.person_ap50).map(|a| RatePoint {
                                kbit_per_s: r.kbit_per_s,
                                accuracy: a,
                            })
                        })
                        .collect()
                };
                let bd = bd_rate(&curve(&base), &curve(&var));
                rows.push(LeverRow {
                    split: split.into(),
                    variant: variant.to_string(),
                    baseline: baseline.into(),
                    accuracy: accuracy_name.into(),
                    bd_rate_percent: bd.as_ref().ok().map(|b| b * 100.0),
                    note: bd.err().map(|e| e.to_string()),
                    encode_ms_delta: mean_ms(&var).zip(mean_ms(&base)).map(|(v, b)| v - b),
                });
            }
        }
    }
    rows
}

/// Picks the accuracy a bar applies to from a summary and the person AP@0.5.
type Accuracy = fn(&MapSummary, Option<f64>) -> Option<f64>;

/// For each split: the lowest rate any feature method needs to keep person AP@0.5 ≥ 0.98 and
/// robust mAP@0.5 ≥ 0.95 (each on its own), and what each anchor curve needs for the same.
pub fn headline_table(features: &[SettingResult], anchors: &[AnchorResult]) -> Vec<HeadlineRow> {
    let criteria: [(&str, f64, Accuracy); 2] = [
        ("person AP50 >= 0.98", PERSON_AP50_BAR, |_, p| p),
        ("robust mAP50 >= 0.95", MAP50_ROBUST_BAR, |m, _| {
            m.map50_robust
        }),
    ];
    let splits: BTreeSet<&str> = features.iter().map(|r| r.split.as_str()).collect();
    // Coded anchors only: the uncoded I420 point is a ceiling, not a way of sending.
    let anchor_methods: BTreeSet<&str> = anchors
        .iter()
        .filter(|a| a.codec != AnchorCodec::Uncoded.name())
        .map(|a| a.method.as_str())
        .collect();
    let mut rows = Vec::new();
    for split in splits {
        let here: Vec<&SettingResult> = features.iter().filter(|r| r.split == split).collect();
        for (criterion, bar, acc) in criteria {
            let best = lowest_rate_meeting(
                &here,
                bar,
                |r| r.kbit_per_s,
                |r| acc(&r.accuracy, r.person_ap50),
            );
            rows.push(HeadlineRow {
                split: split.into(),
                candidate: "features (any method)".into(),
                criterion: criterion.into(),
                kbit_per_s: best.map(|r| r.kbit_per_s),
                achieved_by: best
                    .map(|r| format!("{}: {}", r.method, r.encoder.as_deref().unwrap_or("raw"))),
            });
            for &m in &anchor_methods {
                let curve: Vec<&AnchorResult> = anchors.iter().filter(|a| a.method == m).collect();
                let best = lowest_rate_meeting(
                    &curve,
                    bar,
                    |a| a.kbit_per_s,
                    |a| acc(&a.accuracy, a.person_ap50),
                );
                rows.push(HeadlineRow {
                    split: split.into(),
                    candidate: m.into(),
                    criterion: criterion.into(),
                    kbit_per_s: best.map(|a| a.kbit_per_s),
                    achieved_by: best.map(|a| a.encoder.clone()),
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(rates: &[f64], acc: &[f64]) -> Vec<RatePoint> {
        rates
            .iter()
            .zip(acc)
            .map(|(&kbit_per_s, &accuracy)| RatePoint {
                kbit_per_s,
                accuracy,
            })
            .collect()
    }

    fn scaled(c: &[RatePoint], k: f64) -> Vec<RatePoint> {
        c.iter()
            .map(|p| RatePoint {
                kbit_per_s: p.kbit_per_s * k,
                accuracy: p.accuracy,
            })
            .collect()
    }

    fn anchor() -> Vec<RatePoint> {
        curve(
            &[50.0, 100.0, 200.0, 400.0, 800.0, 1600.0],
            &[0.40, 0.62, 0.78, 0.88, 0.94, 0.97],
        )
    }

    #[test]
    fn half_the_rate_is_minus_fifty_percent() {
        let bd = bd_rate(&anchor(), &scaled(&anchor(), 0.5)).unwrap();
        assert!((bd + 0.5).abs() < 1e-9, "{bd}");
    }

    #[test]
    fn double_the_rate_is_plus_hundred_percent_and_same_curve_is_zero() {
        let bd = bd_rate(&anchor(), &scaled(&anchor(), 2.0)).unwrap();
        assert!((bd - 1.0).abs() < 1e-9, "{bd}");
        assert!(bd_rate(&anchor(), &anchor()).unwrap().abs() < 1e-12);
    }

    #[test]
    fn different_sampling_of_the_same_log_linear_curve() {
        // accuracy = 0.1·log2(rate): the test curve at 1/4 of the rate, sampled elsewhere.
        let a: Vec<RatePoint> = (3..=10)
            .map(|k| RatePoint {
                kbit_per_s: 2f64.powi(k),
                accuracy: 0.1 * k as f64,
            })
            .collect();
        let t: Vec<RatePoint> = [3.5, 5.0, 6.25, 8.0, 9.5]
            .iter()
            .map(|&k: &f64| RatePoint {
                kbit_per_s: 2f64.powf(k) / 4.0,
                accuracy: 0.1 * k,
            })
            .collect();
        let bd = bd_rate(&a, &t).unwrap();
        assert!((bd + 0.75).abs() < 1e-6, "{bd}");
    }

    #[test]
    fn dominated_points_and_saturation_are_ignored() {
        let mut t = scaled(&anchor(), 0.5);
        // A costlier point with no accuracy gain and a worse point: neither is on the front.
        t.push(RatePoint {
            kbit_per_s: 5000.0,
            accuracy: 0.97,
        });
        t.push(RatePoint {
            kbit_per_s: 300.0,
            accuracy: 0.1,
        });
        let bd = bd_rate(&anchor(), &t).unwrap();
        assert!((bd + 0.5).abs() < 1e-9, "{bd}");
    }

    #[test]
    fn errors_name_the_problem() {
        let one = curve(&[100.0], &[0.5]);
        assert_eq!(bd_rate(&anchor(), &one), Err(BdRateError::TooFewPoints));
        let flat = curve(&[100.0, 200.0], &[0.99, 0.99]);
        assert_eq!(bd_rate(&anchor(), &flat), Err(BdRateError::TooFewPoints));
        let high = curve(&[100.0, 200.0], &[0.98, 0.99]);
        assert_eq!(bd_rate(&anchor(), &high), Err(BdRateError::NoOverlap));
    }

    #[test]
    fn pchip_is_monotone_between_monotone_points() {
        let pts = front(&anchor());
        let mut prev = f64::NEG_INFINITY;
        for i in 0..=1000 {
            let x = pts[0].0 + (pts[pts.len() - 1].0 - pts[0].0) * i as f64 / 1000.0;
            let y = pchip(&pts, x);
            assert!(y >= prev - 1e-12, "not monotone at {x}");
            prev = y;
        }
        for &(x, y) in &pts {
            assert!((pchip(&pts, x) - y).abs() < 1e-12);
        }
    }

    #[test]
    fn lowest_rate_meeting_a_bar() {
        let c = anchor();
        let p = lowest_rate_meeting(&c, 0.9, |p| p.kbit_per_s, |p| Some(p.accuracy)).unwrap();
        assert_eq!(p.kbit_per_s, 800.0);
        assert!(lowest_rate_meeting(&c, 0.99, |p| p.kbit_per_s, |p| Some(p.accuracy)).is_none());
    }

    fn point(method: &str, kbit_per_s: f64, person: f64, encode_ms: f64) -> SettingResult {
        SettingResult {
            split: "stage2".into(),
            method: method.into(),
            encoder: None,
            bits: None,
            frames: 10,
            frames_detected: 10,
            network_frames: 10,
            bytes_per_frame_mean: kbit_per_s,
            bytes_per_frame_p95: 0,
            bytes_per_frame_max: 0,
            kbit_per_s,
            kbit_per_s_10s_range: None,
            ratio_vs_raw_float: 1.0,
            ratio_vs_source_video: 1.0,
            encode_ms_per_frame: Some(encode_ms),
            decode_ms_per_frame: None,
            distortion: None,
            person_ap50: Some(person),
            accuracy: MapSummary {
                ap50_per_class: BTreeMap::new(),
                reference_counts: BTreeMap::new(),
                map50_robust: Some(person),
                map50_all: None,
                map50_95_all: None,
            },
        }
    }

    #[test]
    fn a_lever_turned_off_is_compared_with_its_baseline() {
        let accs = [0.90, 0.95, 0.97, 0.98];
        let mut features = Vec::new();
        for (i, a) in accs.iter().enumerate() {
            let r = 100.0 * 2f64.powi(i as i32);
            features.push(point("adaptive", r, *a, 10.0));
            features.push(point("adaptive, no motion", 1.5 * r, *a, 6.0));
            features.push(point("closed-loop dz1", 3.0 * r, *a, 1.0));
        }
        let rows = lever_table(&features);
        assert_eq!(rows.len(), 2, "one variant at two accuracies: {rows:?}");
        for row in &rows {
            assert_eq!(row.variant, "adaptive, no motion");
            assert_eq!(row.baseline, "adaptive");
            let bd = row.bd_rate_percent.unwrap();
            assert!((bd - 50.0).abs() < 1e-6, "{bd}");
            assert!((row.encode_ms_delta.unwrap() + 4.0).abs() < 1e-9);
        }
    }
}
