//! Network outputs → detections in video-frame pixels.
//!
//! Two decoders, chosen by the profile's `decoder.type`:
//! - `nanodet-gfl`: NanoDet's Generalized-Focal-Loss head. Per level (stride `s`) the model
//!   gives, for every cell of the `ceil(W/s) x ceil(H/s)` grid in row-major order, sigmoid class
//!   scores `[1, N, C]` and a distribution over `reg_max + 1` bins for each of the four sides
//!   (left, top, right, bottom) `[1, N, 4 * (reg_max + 1)]`. The side distance is the expected
//!   bin index (softmax over the bins) times `s`, measured from the cell centre
//!   `((col + 0.5) * s, (row + 0.5) * s)`. Every (cell, class) pair scoring at least the
//!   threshold is a candidate.
//! - `boxes`: boxes already decoded by the model (e.g. TensorFlow's detection post-processing),
//!   configured entirely by the profile: separate `boxes` / `scores` (/ `classes`, `count`)
//!   outputs or one packed `[N, 6]` table, `xyxy` or `yxyx`, normalized or pixel coordinates.
//!
//! Candidates are clipped to the network input, reduced by class-wise NMS in network-input
//! coordinates (as NanoDet's own post-processing does), then mapped back to the video frame
//! with the [`ResizeMapping`] of the preprocessing and clamped to it.
//!
//! Outputs arrive as [`NamedOutputs`] with f32 data; [`outputs_from_tensors`] converts the
//! session's outputs of any element type (u8, i64, ...) to it. Every shape and value is treated as
//! untrusted: wrong shapes are [`InferError::Decode`] errors, NaN/inf values drop the candidate.

use std::collections::BTreeMap;

use crate::error::{InferError, Result};
use crate::nms::{Candidate, class_wise_nms, score_order};
use crate::preprocess::ResizeMapping;
use crate::profile::{BoxOrder, BoxesSpec, DecoderSpec, GflSpec, Profile};

/// Model outputs by name: shape and f32 data (row-major).
pub type NamedOutputs = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Builds [`NamedOutputs`] from `(name, shape, data)` triples.
pub fn named_outputs<I>(outputs: I) -> NamedOutputs
where
    I: IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>,
{
    outputs
        .into_iter()
        .map(|(name, shape, data)| (name, (shape, data)))
        .collect()
}

/// [`NamedOutputs`] from the outputs of [`crate::runtime::Session::run`]; every element type
/// (u8, i8, i32, i64, bool) is converted to f32 exactly as `TensorValueData::to_f32` does (class
/// ids and counts are small integers, so nothing is lost).
pub fn outputs_from_tensors(tensors: crate::runtime::NamedTensors) -> NamedOutputs {
    tensors
        .into_iter()
        .map(|(name, v)| {
            let data = v.data.to_f32();
            (name, (v.shape, data))
        })
        .collect()
}

/// At most this many candidates (the best-scoring) enter NMS. With the usual thresholds far
/// fewer pass; the cap bounds the work when a threshold of 0 is requested.
pub const MAX_NMS_CANDIDATES: usize = 10_000;

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub label: String,
    pub class_id: u32,
    pub score: f32,
    /// `[x1, y1, x2, y2]` in video-frame pixels.
    pub bbox: [f32; 4],
}

/// Decodes the outputs of one model as described by its profile.
#[derive(Debug, Clone)]
pub struct OutputDecoder {
    spec: DecoderSpec,
    labels: Vec<String>,
    input_width: u32,
    input_height: u32,
    score_threshold: f32,
    nms_iou: f32,
    max_detections: usize,
}

impl OutputDecoder {
    /// A decoder for a (validated) profile.
    pub fn from_profile(profile: &Profile) -> Result<OutputDecoder> {
        profile.validate()?;
        Ok(OutputDecoder {
            spec: profile.decoder.clone(),
            labels: profile.labels.clone(),
            input_width: profile.input.width,
            input_height: profile.input.height,
            score_threshold: profile.score_threshold,
            nms_iou: profile.nms_iou,
            max_detections: profile.max_detections,
        })
    }

    /// The model outputs this decoder reads.
    pub fn output_names(&self) -> Vec<String> {
        self.spec.output_names()
    }

    /// Decodes with the thresholds of the profile.
    pub fn decode_with_profile_thresholds(
        &self,
        outputs: &NamedOutputs,
        mapping: &ResizeMapping,
    ) -> Result<Vec<Detection>> {
        self.decode(
            outputs,
            mapping,
            self.score_threshold,
            self.nms_iou,
            self.max_detections,
        )
    }

    /// Candidates scoring at least `score_threshold`, class-wise NMS with `nms_iou`, at most
    /// `max_detections` detections, best first, in video-frame pixels.
    pub fn decode(
        &self,
        outputs: &NamedOutputs,
        mapping: &ResizeMapping,
        score_threshold: f32,
        nms_iou: f32,
        max_detections: usize,
    ) -> Result<Vec<Detection>> {
        if !(0.0..=1.0).contains(&score_threshold) || !(0.0..=1.0).contains(&nms_iou) {
            return Err(InferError::Decode(format!(
                "score threshold {score_threshold} and NMS IoU {nms_iou} must both be in 0..=1"
            )));
        }
        let mut cands = self.candidates(outputs, score_threshold)?;
        if cands.len() > MAX_NMS_CANDIDATES {
            let order = score_order(&cands);
            cands = order[..MAX_NMS_CANDIDATES]
                .iter()
                .map(|&i| cands[i])
                .collect();
        }
        let kept = class_wise_nms(&cands, nms_iou, max_detections);
        Ok(kept
            .into_iter()
            .map(|i| {
                let c = &cands[i];
                Detection {
                    label: self.labels[c.class_id as usize].clone(),
                    class_id: c.class_id,
                    score: c.score,
                    bbox: mapping.box_to_source(c.bbox),
                }
            })
            .collect())
    }

    /// Every candidate scoring at least `score_threshold`, before NMS, with boxes in
    /// network-input pixels clipped to the input. Class ids are valid label indices.
    pub fn candidates(
        &self,
        outputs: &NamedOutputs,
        score_threshold: f32,
    ) -> Result<Vec<Candidate>> {
        match &self.spec {
            DecoderSpec::NanodetGfl(g) => self.gfl_candidates(g, outputs, score_threshold),
            DecoderSpec::Boxes(b) => self.boxes_candidates(b, outputs, score_threshold),
        }
    }

    fn clip(&self, b: [f32; 4]) -> Option<[f32; 4]> {
        if !b.iter().all(|v| v.is_finite()) {
            return None;
        }
        let (w, h) = (self.input_width as f32, self.input_height as f32);
        Some([
            b[0].clamp(0.0, w),
            b[1].clamp(0.0, h),
            b[2].clamp(0.0, w),
            b[3].clamp(0.0, h),
        ])
    }

    fn gfl_candidates(
        &self,
        g: &GflSpec,
        outputs: &NamedOutputs,
        score_threshold: f32,
    ) -> Result<Vec<Candidate>> {
        let bins = g.reg_max as usize + 1;
        let mut out = Vec::new();
        let mut side = [0f32; 4];
        for level in &g.levels {
            let stride = level.stride as usize;
            let gw = (self.input_width as usize).div_ceil(stride);
            let gh = (self.input_height as usize).div_ceil(stride);
            let n = gw * gh;
            let scores = get_output(outputs, &level.scores)?;
            let classes = matrix_cols(scores, n, &level.scores)?;
            if classes != self.labels.len() {
                return Err(InferError::Decode(format!(
                    "output '{}' has {classes} classes per position but the profile lists {} labels",
                    level.scores,
                    self.labels.len()
                )));
            }
            let dists = get_output(outputs, &level.boxes)?;
            let cols = matrix_cols(dists, n, &level.boxes)?;
            if cols != 4 * bins {
                return Err(InferError::Decode(format!(
                    "output '{}' has {cols} values per position; reg_max {} needs 4 x {bins} = {}",
                    level.boxes,
                    g.reg_max,
                    4 * bins
                )));
            }
            let s = stride as f32;
            for p in 0..n {
                let row_scores = &scores.1[p * classes..(p + 1) * classes];
                // Comparisons with NaN are false, so NaN scores never pass.
                if !row_scores.iter().any(|&v| v >= score_threshold) {
                    continue;
                }
                let d = &dists.1[p * cols..(p + 1) * cols];
                for (k, sd) in side.iter_mut().enumerate() {
                    *sd = expected_bin(&d[k * bins..(k + 1) * bins]) * s;
                }
                let cx = ((p % gw) as f32 + 0.5) * s;
                let cy = ((p / gw) as f32 + 0.5) * s;
                let Some(bbox) =
                    self.clip([cx - side[0], cy - side[1], cx + side[2], cy + side[3]])
                else {
                    continue;
                };
                for (class_id, &score) in row_scores.iter().enumerate() {
                    if score >= score_threshold {
                        out.push(Candidate {
                            bbox,
                            score,
                            class_id: class_id as u32,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn boxes_candidates(
        &self,
        b: &BoxesSpec,
        outputs: &NamedOutputs,
        score_threshold: f32,
    ) -> Result<Vec<Candidate>> {
        let (sx, sy) = if b.normalized {
            (self.input_width as f32, self.input_height as f32)
        } else {
            (1.0, 1.0)
        };
        let to_xyxy = |r: &[f32]| -> [f32; 4] {
            let xyxy = match b.box_order {
                BoxOrder::Xyxy => [r[0], r[1], r[2], r[3]],
                BoxOrder::Yxyx => [r[1], r[0], r[3], r[2]],
            };
            [xyxy[0] * sx, xyxy[1] * sy, xyxy[2] * sx, xyxy[3] * sy]
        };
        let mut out = Vec::new();
        let mut push = |bbox: [f32; 4], score: f32, raw_class: f32| {
            if score.is_nan() || score < score_threshold || !raw_class.is_finite() {
                return;
            }
            let id = raw_class.round() as i64 + b.class_id_offset;
            if id < 0 || id as u64 >= self.labels.len() as u64 {
                return;
            }
            if let Some(bbox) = self.clip(bbox) {
                out.push(Candidate {
                    bbox,
                    score,
                    class_id: id as u32,
                });
            }
        };
        if let Some(table) = &b.table {
            let t = get_output(outputs, table)?;
            let n = rows_of(t, 6, table)?;
            let n = limit_by_count(outputs, b.count.as_deref(), n)?;
            for r in t.1.chunks_exact(6).take(n) {
                push(to_xyxy(&r[..4]), r[4], r[5]);
            }
            return Ok(out);
        }
        let (Some(boxes_name), Some(scores_name)) = (&b.boxes, &b.scores) else {
            return Err(InferError::Decode(
                "the boxes decoder needs `boxes` and `scores` outputs or a `table`".into(),
            ));
        };
        let boxes = get_output(outputs, boxes_name)?;
        let n = rows_of(boxes, 4, boxes_name)?;
        let scores = get_output(outputs, scores_name)?;
        let classes = b
            .classes
            .as_ref()
            .map(|name| get_output(outputs, name).map(|t| (name, t)))
            .transpose()?;
        let n_valid = limit_by_count(outputs, b.count.as_deref(), n)?;
        match classes {
            Some((cname, c)) => {
                if c.1.len() != n {
                    return Err(InferError::Decode(format!(
                        "output '{cname}' has {} values for {n} boxes",
                        c.1.len()
                    )));
                }
                if scores.1.len() != n {
                    return Err(InferError::Decode(format!(
                        "output '{scores_name}' has {} values for {n} boxes (with a `classes` \
                         output, scores hold one value per box)",
                        scores.1.len()
                    )));
                }
                for i in 0..n_valid {
                    push(to_xyxy(&boxes.1[i * 4..i * 4 + 4]), scores.1[i], c.1[i]);
                }
            }
            None => {
                // Without a classes output, scores are [N] (single class 0) or [N, C].
                let cols = matrix_cols(scores, n, scores_name)?;
                for i in 0..n_valid {
                    let bbox = to_xyxy(&boxes.1[i * 4..i * 4 + 4]);
                    for (c, &s) in scores.1[i * cols..(i + 1) * cols].iter().enumerate() {
                        push(bbox, s, c as f32);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Softmax expectation over the bins: `sum(i * softmax(x)_i)`. NaN in, NaN out.
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    let mut weighted = 0.0;
    for (i, &v) in logits.iter().enumerate() {
        let e = (v - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

fn get_output<'a>(outputs: &'a NamedOutputs, name: &str) -> Result<&'a (Vec<usize>, Vec<f32>)> {
    let t = outputs.get(name).ok_or_else(|| {
        InferError::Decode(format!(
            "the model has no output '{name}' (outputs: {})",
            outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let elems = t
        .0
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| InferError::Decode(format!("output '{name}' shape {:?} overflows", t.0)))?;
    if elems != t.1.len() {
        return Err(InferError::Decode(format!(
            "output '{name}' has shape {:?} ({elems} values) but {} values",
            t.0,
            t.1.len()
        )));
    }
    Ok(t)
}

/// Number of values per row when `t` is `[..., rows, cols]` with exactly `rows` rows
/// (leading dimensions of 1 allowed); a flat `[rows]` tensor has 1 column.
fn matrix_cols(t: &(Vec<usize>, Vec<f32>), rows: usize, name: &str) -> Result<usize> {
    let len = t.1.len();
    if rows > 0 && len > 0 && len.is_multiple_of(rows) {
        let cols = len / rows;
        let last = t.0.last().copied().unwrap_or(1);
        if cols == 1 || last == cols {
            return Ok(cols);
        }
    }
    Err(InferError::Decode(format!(
        "output '{name}' has shape {:?}; expected [1, {rows}, C] ({rows} positions)",
        t.0
    )))
}

/// Rows of a `[..., N, cols]` tensor.
fn rows_of(t: &(Vec<usize>, Vec<f32>), cols: usize, name: &str) -> Result<usize> {
    if t.0.last() == Some(&cols) {
        Ok(t.1.len() / cols)
    } else {
        Err(InferError::Decode(format!(
            "output '{name}' has shape {:?}; expected [..., N, {cols}]",
            t.0
        )))
    }
}

/// `min(count, n)` when a count output is configured.
fn limit_by_count(outputs: &NamedOutputs, count: Option<&str>, n: usize) -> Result<usize> {
    let Some(name) = count else { return Ok(n) };
    let t = get_output(outputs, name)?;
    let Some(&c) = t.1.first() else {
        return Err(InferError::Decode(format!(
            "output '{name}' (count) is empty"
        )));
    };
    // NaN and negative counts mean no valid rows; `as` saturates huge values.
    Ok(if c.is_nan() || c <= 0.0 {
        0
    } else {
        (c.round() as usize).min(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ChannelOrder, GflLevel, InputDType, InputSpec, Layout, ResizeMode};
    use codec_core::test_support::Rng;

    fn profile(decoder: DecoderSpec, labels: usize, w: u32, h: u32) -> Profile {
        Profile {
            name: "t".into(),
            description: String::new(),
            input: InputSpec {
                name: "in".into(),
                layout: Layout::Nchw,
                width: w,
                height: h,
                dtype: InputDType::F32,
                channel_order: ChannelOrder::Bgr,
                mean: None,
                std: None,
                resize: ResizeMode::Stretch,
                letterbox_fill: None,
            },
            decoder,
            labels: (0..labels).map(|i| format!("c{i}")).collect(),
            score_threshold: 0.35,
            nms_iou: 0.6,
            max_detections: 100,
            split_points: BTreeMap::new(),
            default_split: None,
        }
    }

    fn gfl_profile() -> Profile {
        let levels = [8, 16, 32]
            .map(|s| GflLevel {
                stride: s,
                scores: format!("s{s}"),
                boxes: format!("b{s}"),
            })
            .to_vec();
        profile(
            DecoderSpec::NanodetGfl(GflSpec {
                reg_max: 10,
                levels,
            }),
            3,
            416,
            416,
        )
    }

    /// Logits whose softmax expectation is exactly `d` (0..=10), by putting all mass on the
    /// two neighbouring bins in the right ratio.
    fn encode_distance(d: f32) -> [f32; 11] {
        let lo = d.floor() as usize;
        let frac = d - lo as f32;
        let mut l = [-60.0f32; 11];
        if frac == 0.0 {
            l[lo] = 0.0;
        } else {
            // softmax weights (1-frac, frac) on (lo, lo+1): logits ln(1-frac), ln(frac).
            l[lo] = (1.0 - frac).ln();
            l[lo + 1] = frac.ln();
        }
        l
    }

    /// Empty NanoDet outputs (all scores 0) for a 416x416 input with 3 classes.
    fn gfl_outputs() -> NamedOutputs {
        let mut o = NamedOutputs::new();
        for s in [8usize, 16, 32] {
            let n = (416 / s) * (416 / s);
            o.insert(format!("s{s}"), (vec![1, n, 3], vec![0.0; n * 3]));
            o.insert(format!("b{s}"), (vec![1, n, 44], vec![0.0; n * 44]));
        }
        o
    }

    /// Puts a box with side distances (in bins) at cell (col,row) of the stride-`s` level.
    fn put_gfl(
        o: &mut NamedOutputs,
        s: usize,
        col: usize,
        row: usize,
        dist: [f32; 4],
        class: usize,
        score: f32,
    ) {
        let gw = 416 / s;
        let p = row * gw + col;
        o.get_mut(&format!("s{s}")).unwrap().1[p * 3 + class] = score;
        let b = &mut o.get_mut(&format!("b{s}")).unwrap().1[p * 44..(p + 1) * 44];
        for (k, d) in dist.iter().enumerate() {
            b[k * 11..(k + 1) * 11].copy_from_slice(&encode_distance(*d));
        }
    }

    fn approx(a: [f32; 4], b: [f32; 4], tol: f32) -> bool {
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn gfl_known_box_decodes_back() {
        let p = gfl_profile();
        let dec = OutputDecoder::from_profile(&p).unwrap();
        let mut o = gfl_outputs();
        // Stride 16, cell (10, 5): centre (168, 88). Distances 2.5, 1.25, 4, 3.75 bins
        // → 40, 20, 64, 60 px → box [128, 68, 232, 148].
        put_gfl(&mut o, 16, 10, 5, [2.5, 1.25, 4.0, 3.75], 2, 0.9);
        // Stride 32, cell (0, 12) (last row, first column): centre (16, 400), distances 1 bin
        // → [-16, 368, 48, 432] clipped → [0, 368, 48, 416].
        put_gfl(&mut o, 32, 0, 12, [1.0, 1.0, 1.0, 1.0], 0, 0.5);
        // Below threshold: ignored.
        put_gfl(&mut o, 8, 3, 3, [1.0, 1.0, 1.0, 1.0], 1, 0.3);
        let cands = dec.candidates(&o, 0.35).unwrap();
        assert_eq!(cands.len(), 2);
        assert!(
            approx(cands[0].bbox, [128.0, 68.0, 232.0, 148.0], 1e-3),
            "{:?}",
            cands[0]
        );
        assert_eq!((cands[0].class_id, cands[0].score), (2, 0.9));
        assert!(
            approx(cands[1].bbox, [0.0, 368.0, 48.0, 416.0], 1e-3),
            "{:?}",
            cands[1]
        );

        // Mapping to a 832x416 frame doubles x.
        let mapping = ResizeMapping {
            src_width: 832,
            src_height: 416,
            dst_width: 416,
            dst_height: 416,
            scale_x: 0.5,
            scale_y: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let dets = dec.decode(&o, &mapping, 0.35, 0.6, 100).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[0].label, "c2");
        assert!(
            approx(dets[0].bbox, [256.0, 68.0, 464.0, 148.0], 1e-2),
            "{:?}",
            dets[0]
        );
        assert_eq!(dets[1].label, "c0");
        // The low-scoring one appears with a lower threshold.
        assert_eq!(dec.decode(&o, &mapping, 0.2, 0.6, 100).unwrap().len(), 3);
        assert_eq!(dec.decode(&o, &mapping, 0.2, 0.6, 1).unwrap().len(), 1);
    }

    #[test]
    fn gfl_multi_class_cell_and_nms() {
        let dec = OutputDecoder::from_profile(&gfl_profile()).unwrap();
        let mut o = gfl_outputs();
        // Same object seen by two neighbouring cells (same box), class 1; the same cell also
        // scores class 2.
        put_gfl(&mut o, 8, 20, 20, [3.0, 3.0, 3.0, 3.0], 1, 0.8);
        o.get_mut("s8").unwrap().1[(20 * 52 + 20) * 3 + 2] = 0.6;
        put_gfl(&mut o, 8, 21, 20, [4.0, 3.0, 2.0, 3.0], 1, 0.7);
        let m = ResizeMapping::identity(416, 416);
        let dets = dec.decode(&o, &m, 0.35, 0.6, 100).unwrap();
        let summary: Vec<(u32, f32)> = dets.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(summary, vec![(1, 0.8), (2, 0.6)]);
        // Without NMS suppression (IoU threshold 1) all three candidates remain.
        assert_eq!(dec.decode(&o, &m, 0.35, 1.0, 100).unwrap().len(), 3);
    }

    #[test]
    fn gfl_rejects_bad_outputs() {
        let dec = OutputDecoder::from_profile(&gfl_profile()).unwrap();
        let m = ResizeMapping::identity(416, 416);
        let mut o = gfl_outputs();
        o.remove("b16");
        let e = dec.decode(&o, &m, 0.35, 0.6, 10).unwrap_err().to_string();
        assert!(e.contains("no output 'b16'") && e.contains("s16"), "{e}");
        let mut o = gfl_outputs();
        o.get_mut("s8").unwrap().1.pop();
        let e = dec.decode(&o, &m, 0.35, 0.6, 10).unwrap_err().to_string();
        assert!(e.contains("s8"), "{e}");
        let mut o = gfl_outputs();
        o.insert("b32".into(), (vec![1, 169, 40], vec![0.0; 169 * 40]));
        let e = dec.decode(&o, &m, 0.35, 0.6, 10).unwrap_err().to_string();
        assert!(e.contains("reg_max"), "{e}");
        let mut o = gfl_outputs();
        o.insert("s32".into(), (vec![1, 169, 4], vec![0.0; 169 * 4]));
        let e = dec.decode(&o, &m, 0.35, 0.6, 10).unwrap_err().to_string();
        assert!(e.contains("labels"), "{e}");
        let mut o = gfl_outputs();
        o.insert("s32".into(), (vec![usize::MAX, 2], vec![]));
        assert!(dec.decode(&o, &m, 0.35, 0.6, 10).is_err());
        // NaN distributions and scores are skipped, not propagated.
        let mut o = gfl_outputs();
        put_gfl(&mut o, 32, 1, 1, [1.0; 4], 0, 0.9);
        o.get_mut("b32").unwrap().1[(13 + 1) * 44] = f32::NAN;
        put_gfl(&mut o, 32, 5, 5, [1.0; 4], 0, f32::NAN);
        assert!(dec.decode(&o, &m, 0.35, 0.6, 10).unwrap().is_empty());
    }

    fn ssd_like(table: bool) -> Profile {
        let spec = if table {
            BoxesSpec {
                boxes: None,
                scores: None,
                classes: None,
                count: None,
                table: Some("t".into()),
                box_order: BoxOrder::Xyxy,
                normalized: false,
                class_id_offset: -1,
            }
        } else {
            BoxesSpec {
                boxes: Some("b".into()),
                scores: Some("s".into()),
                classes: Some("c".into()),
                count: Some("n".into()),
                table: None,
                box_order: BoxOrder::Yxyx,
                normalized: true,
                class_id_offset: 0,
            }
        };
        let mut p = profile(DecoderSpec::Boxes(spec), 4, 300, 300);
        p.input.layout = Layout::Nhwc;
        p
    }

    #[test]
    fn boxes_separate_outputs_yxyx_normalized_with_count() {
        let dec = OutputDecoder::from_profile(&ssd_like(false)).unwrap();
        let mut o = NamedOutputs::new();
        o.insert(
            "b".into(),
            (
                vec![1, 4, 4],
                vec![
                    0.1, 0.2, 0.5, 0.6, // ymin xmin ymax xmax
                    0.0, 0.0, 1.2, 1.0, // clipped to the input
                    0.3, 0.3, 0.4, 0.4, // beyond count
                    0.5, 0.5, 0.6, 0.6,
                ],
            ),
        );
        o.insert("s".into(), (vec![1, 4], vec![0.9, 0.6, 0.95, 0.99]));
        o.insert("c".into(), (vec![1, 4], vec![3.0, 0.0, 1.0, 1.0]));
        o.insert("n".into(), (vec![1], vec![2.0]));
        // 600x300 video: stretch mapping, x doubles.
        let m = ResizeMapping {
            src_width: 600,
            src_height: 300,
            dst_width: 300,
            dst_height: 300,
            scale_x: 0.5,
            scale_y: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let dets = dec.decode(&o, &m, 0.5, 0.6, 20).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!((dets[0].label.as_str(), dets[0].class_id), ("c3", 3));
        assert!(
            approx(dets[0].bbox, [120.0, 30.0, 360.0, 150.0], 1e-3),
            "{:?}",
            dets[0]
        );
        assert!(
            approx(dets[1].bbox, [0.0, 0.0, 600.0, 300.0], 1e-3),
            "{:?}",
            dets[1]
        );
        // Count NaN / negative → nothing; count larger than N → N.
        o.insert("n".into(), (vec![1], vec![f32::NAN]));
        assert!(dec.decode(&o, &m, 0.5, 0.6, 20).unwrap().is_empty());
        o.insert("n".into(), (vec![1], vec![1e30]));
        assert_eq!(dec.decode(&o, &m, 0.5, 0.6, 20).unwrap().len(), 4);
        // Out-of-range class ids are dropped.
        o.insert("c".into(), (vec![1, 4], vec![4.0, -1.0, f32::NAN, 1.0]));
        assert_eq!(dec.decode(&o, &m, 0.5, 0.6, 20).unwrap().len(), 1);
        // Mismatched lengths are errors.
        o.insert("c".into(), (vec![1, 3], vec![0.0; 3]));
        assert!(dec.decode(&o, &m, 0.5, 0.6, 20).is_err());
        o.insert("c".into(), (vec![1, 4], vec![0.0; 4]));
        o.insert("b".into(), (vec![1, 4, 3], vec![0.0; 12]));
        assert!(dec.decode(&o, &m, 0.5, 0.6, 20).is_err());
    }

    #[test]
    fn boxes_packed_table_pixels_with_offset() {
        let dec = OutputDecoder::from_profile(&ssd_like(true)).unwrap();
        let mut o = NamedOutputs::new();
        o.insert(
            "t".into(),
            (
                vec![1, 3, 6],
                vec![
                    10.0, 20.0, 110.0, 220.0, 0.8, 1.0, // class 1 - 1 = 0
                    12.0, 20.0, 110.0, 220.0, 0.7, 1.0, // same object → NMS
                    50.0, 60.0, 70.0, 80.0, 0.6, 4.0, // class 3
                ],
            ),
        );
        let dets = dec
            .decode(&o, &ResizeMapping::identity(300, 300), 0.5, 0.6, 20)
            .unwrap();
        let got: Vec<(u32, [f32; 4])> = dets.iter().map(|d| (d.class_id, d.bbox)).collect();
        assert_eq!(
            got,
            vec![
                (0, [10.0, 20.0, 110.0, 220.0]),
                (3, [50.0, 60.0, 70.0, 80.0])
            ]
        );
        o.insert("t".into(), (vec![1, 3, 5], vec![0.0; 15]));
        assert!(
            dec.decode(&o, &ResizeMapping::identity(300, 300), 0.5, 0.6, 20)
                .is_err()
        );
    }

    #[test]
    fn boxes_per_class_score_matrix() {
        let mut p = ssd_like(false);
        if let DecoderSpec::Boxes(b) = &mut p.decoder {
            b.classes = None;
            b.count = None;
        }
        let dec = OutputDecoder::from_profile(&p).unwrap();
        let mut o = NamedOutputs::new();
        o.insert(
            "b".into(),
            (vec![1, 2, 4], vec![0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0]),
        );
        o.insert(
            "s".into(),
            (vec![1, 2, 4], vec![0.1, 0.9, 0.1, 0.7, 0.0, 0.0, 0.0, 0.2]),
        );
        let dets = dec
            .decode(&o, &ResizeMapping::identity(300, 300), 0.5, 0.6, 20)
            .unwrap();
        let got: Vec<(u32, f32)> = dets.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(1, 0.9), (3, 0.7)]);
    }

    /// A hostile output value: often non-finite or huge, otherwise in -0.5..1.5.
    fn value(rng: &mut Rng) -> f32 {
        match rng.below(10) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -1e30,
            4 => 1e30,
            _ => (rng.below(2000) as f32 - 500.0) / 1000.0,
        }
    }

    /// Well-formed outputs for the three test decoders (GFL, separate boxes, packed table).
    fn valid_outputs(which: usize) -> NamedOutputs {
        let mut o = NamedOutputs::new();
        match which {
            0 => o = gfl_outputs(),
            1 => {
                o.insert("b".into(), (vec![1, 20, 4], vec![0.25; 80]));
                o.insert("s".into(), (vec![1, 20], vec![0.5; 20]));
                o.insert("c".into(), (vec![1, 20], vec![1.0; 20]));
                o.insert("n".into(), (vec![1], vec![20.0]));
            }
            _ => {
                o.insert("t".into(), (vec![1, 20, 6], vec![1.0; 120]));
            }
        }
        o
    }

    #[test]
    fn garbage_outputs_never_panic() {
        let decoders = [
            OutputDecoder::from_profile(&gfl_profile()).unwrap(),
            OutputDecoder::from_profile(&ssd_like(false)).unwrap(),
            OutputDecoder::from_profile(&ssd_like(true)).unwrap(),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let m = ResizeMapping::identity(416, 416);
        let (mut ok, mut err) = (0, 0);
        for _ in 0..600 {
            let which = rng.below(3) as usize;
            let mut o = valid_outputs(which);
            let names: Vec<String> = o.keys().cloned().collect();
            for _ in 0..1 + rng.below(3) {
                let name = &names[rng.below(names.len() as u64) as usize];
                match rng.below(10) {
                    // Drop the output.
                    0 => {
                        o.remove(name);
                    }
                    // New random shape, data of that size or of a wrong size.
                    1 | 2 => {
                        let rank = rng.below(4) as usize;
                        let shape: Vec<usize> = (0..rank).map(|_| rng.below(30) as usize).collect();
                        let n: usize = shape.iter().product();
                        let len = if rng.below(3) == 0 {
                            rng.below(100) as usize
                        } else {
                            n
                        };
                        let data = (0..len).map(|_| value(&mut rng)).collect();
                        o.insert(name.clone(), (shape, data));
                    }
                    // Same shape, garbage values (NaN, inf, huge, negative, ...).
                    _ => {
                        if let Some(t) = o.get_mut(name) {
                            let n = t.1.len();
                            for _ in 0..1 + rng.below(200) {
                                if n > 0 {
                                    t.1[rng.below(n as u64) as usize] = value(&mut rng);
                                }
                            }
                        }
                    }
                }
            }
            let thr = [0.0, 0.35, f32::NAN][rng.below(3) as usize];
            let d = &decoders[which];
            match d.decode(&o, &m, thr, 0.6, 20) {
                Ok(dets) => {
                    ok += 1;
                    assert!(dets.len() <= 20);
                    for det in dets {
                        assert!(det.bbox.iter().all(|v| v.is_finite()), "{det:?}");
                        assert!((det.class_id as usize) < d.labels.len());
                    }
                }
                Err(InferError::Decode(_)) => err += 1,
                Err(e) => panic!("unexpected error kind {e}"),
            }
        }
        // Both paths were exercised.
        assert!(ok > 100 && err > 50, "ok {ok}, err {err}");
    }

    #[test]
    fn candidate_cap_keeps_best() {
        // Threshold 0 on a real-size NanoDet output: every (cell, class) is a candidate, the
        // cap keeps decoding bounded and the result is still the best boxes.
        let dec = OutputDecoder::from_profile(&gfl_profile()).unwrap();
        let mut o = gfl_outputs();
        put_gfl(&mut o, 16, 4, 4, [1.0; 4], 0, 0.99);
        let dets = dec
            .decode(&o, &ResizeMapping::identity(416, 416), 0.0, 0.6, 5)
            .unwrap();
        assert_eq!(dets.len(), 5);
        assert_eq!(dets[0].score, 0.99);
        // Thresholds outside 0..=1 (or NaN) are errors, not silently "everything"/"nothing".
        let m = ResizeMapping::identity(416, 416);
        for (thr, iou) in [(f32::NAN, 0.6), (-0.1, 0.6), (0.3, f32::NAN), (0.3, 1.5)] {
            assert!(matches!(
                dec.decode(&o, &m, thr, iou, 5),
                Err(InferError::Decode(_))
            ));
        }
    }
}
