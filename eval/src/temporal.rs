//! The temporal-correlation analysis of the thesis (sec. 4.2) on a clip: SSIM and MSE between
//! frames `lag` apart, for the decoded video (grey) and for every tensor of a recorded cut.
//! The measures themselves are in [`crate::correlation`].

use std::time::Duration;

use codec_core::FeatureFrame;

use crate::correlation::{
    CorrelationError, FeatureSeriesAnalyzer, LagAnalyzer, SeriesSummary, gray_pair, summarize,
};
use crate::evaluate::Clip;
use crate::stream::{Recording, run_recording};

const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// SSIM/MSE between feature frames `lag` apart, one series per tensor of the cut, named
/// `<split> <tensor name>` (every frame must carry the first frame's tensors).
pub fn feature_series(
    split: &str,
    features: &Recording,
    lags: &[usize],
) -> Result<Vec<SeriesSummary>, String> {
    let err = |e: CorrelationError| format!("{split}: {e}");
    let mut analyzers = lags
        .iter()
        .map(|&lag| FeatureSeriesAnalyzer::new(lag).map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    if features.buffers.is_empty() {
        return Err(format!("{split}: no feature frames recorded"));
    }
    for b in &features.buffers {
        let map = b.map_readable().map_err(|_| "unreadable feature frame")?;
        let frame = FeatureFrame::from_raw(&map).map_err(|e| e.to_string())?;
        for a in &mut analyzers {
            a.push(frame.clone()).map_err(err)?;
        }
    }
    Ok(analyzers
        .iter()
        .flat_map(|a| a.summaries())
        .map(|mut s| {
            s.name = format!("{split} {}", s.name);
            s
        })
        .collect())
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
    let mut analyzers = lags
        .iter()
        .map(|&lag| LagAnalyzer::new(lag).map(|a| (a, Vec::new())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for (i, b) in rec.buffers.iter().enumerate() {
        let map = b.map_readable().map_err(|_| "unreadable frame")?;
        let plane = gray_plane(&map, w, h).ok_or_else(|| {
            format!(
                "frame {i} has {} bytes, too few for {w}x{h} GRAY8",
                map.len()
            )
        })?;
        for (a, pairs) in &mut analyzers {
            if let Some(p) = a
                .push(plane.clone(), |x, y| gray_pair(x, y, w, h))
                .map_err(|e| e.to_string())?
            {
                pairs.push(p);
            }
        }
    }
    Ok(analyzers
        .iter()
        .map(|(a, pairs)| summarize("video", &format!("{w}x{h} grey"), a.lag(), pairs))
        .collect())
}

/// The `width`·`height` grey levels of a GRAY8 frame, whose rows GStreamer starts at multiples
/// of 4 bytes; `None` when the frame is too small.
fn gray_plane(data: &[u8], width: usize, height: usize) -> Option<Vec<u8>> {
    let stride = width.div_ceil(4) * 4;
    if height > 0 && data.len() < stride * (height - 1) + width {
        return None;
    }
    Some(
        (0..height)
            .flat_map(|y| &data[y * stride..y * stride + width])
            .copied()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_rows_drop_their_padding() {
        // 3 pixels a row, rows 4 bytes apart.
        let data = [1, 2, 3, 0, 4, 5, 6, 0];
        assert_eq!(gray_plane(&data, 3, 2), Some(vec![1, 2, 3, 4, 5, 6]));
        // The last row needs no padding.
        assert_eq!(gray_plane(&data[..7], 3, 2), Some(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(gray_plane(&data[..6], 3, 2), None);
        assert_eq!(gray_plane(&[9, 8, 7, 6], 4, 1), Some(vec![9, 8, 7, 6]));
    }
}
