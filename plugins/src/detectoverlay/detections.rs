//! Reading `application/x-detections` buffers (the line format and its parser are
//! `fmap_infer::detection`'s, read leniently) and the rule that pairs detection buffers with
//! video frames by time (no GStreamer types).

use fmap_infer::detection::{DetectionsLine, Leniency, parse_detections_line_with};

/// Most bytes of JSON accepted per buffer; a frame's detections are a few kB at most.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Parses one buffer. An empty (or all-whitespace) buffer, e.g. from a GAP event, means "no
/// detections" and gives `Ok(None)`.
pub fn parse_line(bytes: &[u8]) -> Result<Option<DetectionsLine>, String> {
    if bytes.len() > MAX_LINE_BYTES {
        return Err(format!(
            "detections buffer of {} bytes exceeds {MAX_LINE_BYTES}",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("detections are not UTF-8: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let line = parse_detections_line_with(text, Leniency::Lenient)
        .map_err(|e| format!("invalid detections JSON: {e}"))?;
    if line.width == 0 || line.height == 0 {
        return Err(format!(
            "detections line has frame size {}x{}",
            line.width, line.height
        ));
    }
    Ok(Some(line))
}

/// A detection box (x1, y1, x2, y2) scaled from the line's frame size `from` to a video of
/// size `to`.
pub fn scaled_box(bbox: [f32; 4], from: (u32, u32), to: (usize, usize)) -> [f64; 4] {
    let sx = to.0 as f64 / from.0 as f64;
    let sy = to.1 as f64 / from.1 as f64;
    [
        f64::from(bbox[0]) * sx,
        f64::from(bbox[1]) * sy,
        f64::from(bbox[2]) * sx,
        f64::from(bbox[3]) * sy,
    ]
}

/// Where a detections buffer at time `det` stands relative to a video frame at time `video`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// For an earlier frame: drop it.
    Older,
    /// For this frame.
    Matches,
    /// For a later frame: keep it, the frame goes out without detections.
    Later,
}

/// Pairs by time, in nanoseconds of running time: exact, or within `tolerance` (half a frame
/// duration) either side.
pub fn pair(det: u64, video: u64, tolerance: u64) -> Pairing {
    if det.saturating_add(tolerance) < video {
        Pairing::Older
    } else if det > video.saturating_add(tolerance) {
        Pairing::Later
    } else {
        Pairing::Matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_splitinfer_back_line() {
        let l = br#"{"pts_ns":100000000,"frame":1,"width":768,"height":576,"detections":[{"label":"person","class_id":0,"score":0.87,"box":[10.5,20,30,40]}]}
"#;
        let line = parse_line(l).unwrap().unwrap();
        assert_eq!(line.pts_ns, Some(100_000_000));
        assert_eq!(line.frame, 1);
        assert_eq!(line.detections.len(), 1);
        let d = &line.detections[0];
        assert_eq!((d.label.as_str(), d.class_id), ("person", 0));
        assert_eq!(d.bbox, [10.5, 20.0, 30.0, 40.0]);
        assert_eq!(
            scaled_box(d.bbox, (768, 576), (384, 288)),
            [5.25, 10.0, 15.0, 20.0]
        );
        let none = parse_line(br#"{"pts_ns":null,"frame":2,"width":4,"height":4,"detections":[]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(none.pts_ns, None);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(parse_line(b"").unwrap(), None);
        assert_eq!(parse_line(b" \n").unwrap(), None);
        assert!(parse_line(b"{").is_err());
        assert!(parse_line(&[0xff, 0xfe]).is_err());
        assert!(parse_line(br#"{"pts_ns":0,"width":0,"height":4,"detections":[]}"#).is_err());
        assert!(
            parse_line(br#"{"pts_ns":0,"width":4,"height":4,"detections":[{"label":"x","class_id":-1,"score":1,"box":[0,0,1,1]}]}"#)
                .is_err()
        );
        assert!(parse_line(&vec![b' '; MAX_LINE_BYTES + 1]).is_err());
    }

    #[test]
    fn pairing_by_time() {
        assert_eq!(pair(100, 100, 0), Pairing::Matches);
        assert_eq!(pair(99, 100, 0), Pairing::Older);
        assert_eq!(pair(101, 100, 0), Pairing::Later);
        assert_eq!(pair(60, 100, 50), Pairing::Matches);
        assert_eq!(pair(150, 100, 50), Pairing::Matches);
        assert_eq!(pair(49, 100, 50), Pairing::Older);
        assert_eq!(pair(151, 100, 50), Pairing::Later);
        assert_eq!(pair(0, u64::MAX, u64::MAX), Pairing::Matches);
    }
}
