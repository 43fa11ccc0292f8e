//! The temporal-correlation analysis of the thesis (sec. 4.2) on a clip: SSIM and MSE between
//! frames `lag` apart, for the decoded video (grey) and for every tensor of a recorded cut.
//! The measures themselves are in [`crate::correlation`].

use std::collections::VecDeque;
use std::time::Duration;

use codec_core::FeatureFrame;

use crate::correlation::{PairStats, SeriesSummary, gray_pair, summarize, tensor_pair};
use crate::evaluate::Clip;
use crate::stream::{Recording, run_recording};

const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// Compares every item with the ones `lags` later, keeping only `max(lags)` + 1 items decoded at
/// a time. `pair` returns one statistic per component (tensor) of the two items.
fn lagged<T>(
    n: usize,
    lags: &[usize],
    components: usize,
    item: impl Fn(usize) -> Result<T, String>,
    pair: impl Fn(&T, &T) -> Result<Vec<PairStats>, String>,
) -> Result<Vec<Vec<Vec<PairStats>>>, String> {
    if lags.contains(&0) {
        return Err("a correlation lag must be at least 1 frame".into());
    }
    let max_lag = lags.iter().copied().max().unwrap_or(1);
    // out[lag index][component] = pairs in time order
    let mut out = vec![vec![Vec::new(); components]; lags.len()];
    let mut window: VecDeque<T> = VecDeque::with_capacity(max_lag + 1);
    for t in 0..n {
        window.push_back(item(t)?);
        if window.len() > max_lag + 1 {
            window.pop_front();
        }
        let newest = window.back().expect("just pushed");
        for (li, &lag) in lags.iter().enumerate() {
            if lag < window.len() {
                let older = &window[window.len() - 1 - lag];
                for (ci, s) in pair(older, newest)?.into_iter().enumerate() {
                    if let Some(v) = out[li].get_mut(ci) {
                        v.push(s);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// SSIM/MSE between feature frames `lag` apart, one series per tensor of the cut, named
/// `<split> <tensor name>`.
pub fn feature_series(
    split: &str,
    features: &Recording,
    lags: &[usize],
) -> Result<Vec<SeriesSummary>, String> {
    let parse = |i: usize| -> Result<FeatureFrame, String> {
        let b = &features.buffers[i];
        let map = b.map_readable().map_err(|_| "unreadable feature frame")?;
        FeatureFrame::from_raw(&map).map_err(|e| e.to_string())
    };
    if features.buffers.is_empty() {
        return Err(format!("{split}: no feature frames recorded"));
    }
    let first = parse(0)?;
    let pairs = lagged(
        features.buffers.len(),
        lags,
        first.tensors.len(),
        parse,
        |a, b| {
            if a.tensors.len() != b.tensors.len() {
                return Err(format!(
                    "{split}: the number of cut tensors changes mid-stream"
                ));
            }
            a.tensors
                .iter()
                .zip(&b.tensors)
                .map(|(x, y)| tensor_pair(x, y).map_err(|e| format!("{split} {}: {e}", x.name)))
                .collect()
        },
    )?;
    let mut out = Vec::new();
    for (li, &lag) in lags.iter().enumerate() {
        for (t, p) in first.tensors.iter().zip(&pairs[li]) {
            let s = t.shape;
            out.push(summarize(
                &format!("{split} {}", t.name),
                &format!("{}x{}x{}", s.channels, s.height, s.width),
                lag,
                p,
            ));
        }
    }
    Ok(out)
}

/// SSIM/MSE between decoded video frames `lag` apart, in grey levels (series name `video`).
pub fn video_series(clip: &Clip, lags: &[usize]) -> Result<Vec<SeriesSummary>, String> {
    let (rec, _) = run_recording(
        &format!("{}appsink name=sink", clip.source_as("GRAY8")),
        None,
        RUN_LIMIT,
    )?;
    let s = rec.caps.structure(0).ok_or("decoded caps are empty")?;
    let dim = |k: &str| {
        s.get::<i32>(k)
            .map(|v| v as usize)
            .map_err(|e| e.to_string())
    };
    let (w, h) = (dim("width")?, dim("height")?);
    // GStreamer's GRAY8 rows start at multiples of 4 bytes.
    let stride = w.div_ceil(4) * 4;
    let plane = |i: usize| -> Result<Vec<u8>, String> {
        let map = rec.buffers[i]
            .map_readable()
            .map_err(|_| "unreadable frame")?;
        if map.len() < stride * h {
            return Err(format!(
                "frame {i} has {} bytes, {w}x{h} GRAY8 needs {}",
                map.len(),
                stride * h
            ));
        }
        Ok(map
            .chunks_exact(stride)
            .take(h)
            .flat_map(|row| &row[..w])
            .copied()
            .collect())
    };
    let pairs = lagged(rec.buffers.len(), lags, 1, plane, |a, b| {
        Ok(vec![gray_pair(a, b, w, h).map_err(|e| e.to_string())?])
    })?;
    Ok(lags
        .iter()
        .zip(&pairs)
        .map(|(&lag, p)| summarize("video", &format!("{w}x{h} grey"), lag, &p[0]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: f64) -> PairStats {
        PairStats {
            ssim: v,
            mse: v,
            nmse: Some(v),
        }
    }

    #[test]
    fn lagged_pairs_every_item_with_the_ones_lag_later() {
        // Items are numbers; a pair's statistic is (later - earlier).
        let out = lagged(
            6,
            &[1, 2, 5],
            1,
            |i| Ok(i as f64),
            |a, b| Ok(vec![stats(b - a)]),
        )
        .unwrap();
        let lens: Vec<usize> = out.iter().map(|l| l[0].len()).collect();
        assert_eq!(lens, vec![5, 4, 1]);
        assert!(out[0][0].iter().all(|p| p.ssim == 1.0));
        assert!(out[1][0].iter().all(|p| p.ssim == 2.0));
        assert_eq!(out[2][0][0].ssim, 5.0);
    }

    #[test]
    fn lag_zero_is_an_error_and_short_clips_give_no_pairs() {
        let err = lagged(3, &[0], 1, Ok, |_, _| Ok(vec![])).unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        let out = lagged(2, &[5], 1, Ok, |_, _| Ok(vec![stats(0.0)])).unwrap();
        assert!(out[0][0].is_empty());
    }
}
