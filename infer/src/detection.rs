//! The detections JSON line: one compact JSON object per frame, shared by the elements that
//! print or store detections and by the evaluation tool.
//!
//! ```text
//! {"pts_ns":123,"frame":7,"width":768,"height":576,"detections":[{"label":"person","class_id":0,"score":0.87,"box":[10.5,20,110,220.2]}]}
//! ```
//!
//! A frame whose features were partly concealed after a loss on the network (a lost slice or
//! unit, see `fmapdec`) has `"concealed":true` before `"detections"`; the field is absent
//! otherwise.
//!
//! No spaces, no trailing newline (the writer of a line adds `\n`). `pts_ns` is `null` when the
//! buffer had no timestamp. Scores are rounded to 4 decimals and box coordinates (x1, y1, x2, y2
//! in video-frame pixels) to 1 decimal, printed in the shortest form (`220` rather than `220.0`).
//! Non-finite numbers, which the decoders never produce, are written as 0 so the line stays JSON.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::decode::Detection;

/// Formats `v` rounded to `decimals` places, shortest form, `0` for non-finite values and -0.
fn number(v: f32, decimals: i32) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let p = 10f64.powi(decimals);
    // Division of an integer-valued f64 by 10^d is correctly rounded, so Display prints the
    // intended decimal (e.g. 8700 / 1e4 prints "0.87").
    let r = (v as f64 * p).round() / p;
    if r == 0.0 {
        "0".to_owned()
    } else {
        format!("{r}")
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The detections of one frame as one JSON line (see the module docs for the exact format).
pub fn detections_json_line(
    pts_ns: Option<u64>,
    frame: u64,
    width: u32,
    height: u32,
    concealed: bool,
    dets: &[Detection],
) -> String {
    let mut out = String::with_capacity(80 + dets.len() * 96);
    out.push_str("{\"pts_ns\":");
    match pts_ns {
        Some(p) => out.push_str(&p.to_string()),
        None => out.push_str("null"),
    }
    out.push_str(&format!(
        ",\"frame\":{frame},\"width\":{width},\"height\":{height},"
    ));
    if concealed {
        out.push_str("\"concealed\":true,");
    }
    out.push_str("\"detections\":[");
    for (i, d) in dets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        push_json_string(&mut out, &d.label);
        out.push_str(&format!(
            ",\"class_id\":{},\"score\":{},\"box\":[{},{},{},{}]}}",
            d.class_id,
            number(d.score, 4),
            number(d.bbox[0], 1),
            number(d.bbox[1], 1),
            number(d.bbox[2], 1),
            number(d.bbox[3], 1),
        ));
    }
    out.push_str("]}");
    out
}

/// A parsed detections line.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionsLine {
    pub pts_ns: Option<u64>,
    pub frame: u64,
    pub width: u32,
    pub height: u32,
    /// The frame's features were partly concealed after a loss.
    pub concealed: bool,
    pub detections: Vec<Detection>,
}

impl DetectionsLine {
    /// Formats the line again with [`detections_json_line`].
    pub fn to_json_line(&self) -> String {
        detections_json_line(
            self.pts_ns,
            self.frame,
            self.width,
            self.height,
            self.concealed,
            &self.detections,
        )
    }
}

/// The line as JSON: known fields typed, anything else collected so that the strict reader can
/// name it.
#[derive(Deserialize)]
struct LineJson {
    pts_ns: Option<u64>,
    frame: Option<u64>,
    width: u32,
    height: u32,
    #[serde(default)]
    concealed: bool,
    detections: Vec<DetectionJson>,
    #[serde(flatten)]
    unknown: BTreeMap<String, IgnoredAny>,
}

#[derive(Deserialize)]
struct DetectionJson {
    label: String,
    class_id: u32,
    score: f32,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    #[serde(flatten)]
    unknown: BTreeMap<String, IgnoredAny>,
}

/// How a reader treats a line that is not exactly what [`detections_json_line`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leniency {
    /// Unknown fields and a missing `frame` are errors: for tests and tools that check
    /// `splitinfer-back`'s own output.
    Strict,
    /// Unknown fields are ignored and a missing `frame` reads as 0: for elements that consume
    /// detections from any producer of the format (`detectoverlay`).
    Lenient,
}

/// Parses one detections line strictly (see [`parse_detections_line_with`]).
pub fn parse_detections_line(line: &str) -> Result<DetectionsLine, serde_json::Error> {
    parse_detections_line_with(line, Leniency::Strict)
}

/// Parses one detections line (surrounding whitespace, e.g. the `\n`, is ignored). Missing
/// fields are errors except `pts_ns`, which may also be `null`, and `frame` when `leniency` is
/// [`Leniency::Lenient`]. Numbers are read into the `f32` of [`Detection`], which holds the 4
/// decimals of a score and the 1 decimal of a coordinate exactly enough that formatting the
/// parsed line again gives the same text.
pub fn parse_detections_line_with(
    line: &str,
    leniency: Leniency,
) -> Result<DetectionsLine, serde_json::Error> {
    let j: LineJson = serde_json::from_str(line.trim())?;
    let strict = leniency == Leniency::Strict;
    let unknown = j
        .unknown
        .keys()
        .chain(j.detections.iter().flat_map(|d| d.unknown.keys()))
        .next();
    if let (true, Some(field)) = (strict, unknown) {
        return Err(serde::de::Error::custom(format!("unknown field `{field}`")));
    }
    let frame = match (j.frame, strict) {
        (Some(f), _) => f,
        (None, false) => 0,
        (None, true) => return Err(serde::de::Error::missing_field("frame")),
    };
    Ok(DetectionsLine {
        pts_ns: j.pts_ns,
        frame,
        width: j.width,
        height: j.height,
        concealed: j.concealed,
        detections: j
            .detections
            .into_iter()
            .map(|d| Detection {
                label: d.label,
                class_id: d.class_id,
                score: d.score,
                bbox: d.bbox,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &str, class_id: u32, score: f32, bbox: [f32; 4]) -> Detection {
        Detection {
            label: label.into(),
            class_id,
            score,
            bbox,
        }
    }

    #[test]
    fn exact_format() {
        let dets = [
            det("person", 0, 0.87, [10.04, 20.0, 110.96, 220.25]),
            det("traffic light", 9, 0.123_456, [0.0, -0.01, 767.99, 576.0]),
        ];
        assert_eq!(
            detections_json_line(Some(1_000_000_000), 7, 768, 576, false, &dets),
            "{\"pts_ns\":1000000000,\"frame\":7,\"width\":768,\"height\":576,\"detections\":[\
             {\"label\":\"person\",\"class_id\":0,\"score\":0.87,\"box\":[10,20,111,220.3]},\
             {\"label\":\"traffic light\",\"class_id\":9,\"score\":0.1235,\"box\":[0,0,768,576]}]}"
        );
        assert_eq!(
            detections_json_line(None, 0, 1, 2, false, &[]),
            "{\"pts_ns\":null,\"frame\":0,\"width\":1,\"height\":2,\"detections\":[]}"
        );
        let concealed = detections_json_line(None, 3, 1, 2, true, &[]);
        assert_eq!(
            concealed,
            "{\"pts_ns\":null,\"frame\":3,\"width\":1,\"height\":2,\"concealed\":true,\"detections\":[]}"
        );
        let back = parse_detections_line(&concealed).unwrap();
        assert!(back.concealed);
        assert_eq!(back.to_json_line(), concealed);
    }

    #[test]
    fn odd_labels_and_numbers_stay_valid_json() {
        let dets = [det(
            "a\"b\\c\nd\u{1}é",
            1,
            f32::NAN,
            [f32::INFINITY, 1e-9, 1e9, -3.25],
        )];
        let line = detections_json_line(Some(u64::MAX), u64::MAX, u32::MAX, 0, false, &dets);
        assert!(!line.contains('\n') && !line.contains(' '));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["detections"][0]["label"], "a\"b\\c\nd\u{1}é");
        let back = parse_detections_line(&line).unwrap();
        assert_eq!(back.pts_ns, Some(u64::MAX));
        assert_eq!(back.detections[0].score, 0.0);
        assert_eq!(back.detections[0].bbox, [0.0, 0.0, 1e9, -3.3]);
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let dets = vec![
            det("dog", 16, 0.9123, [130.5, 220.0, 310.5, 540.0]),
            det("bicycle", 1, 0.5, [1.0, 2.0, 3.0, 4.0]),
        ];
        let line = detections_json_line(Some(42), 3, 768, 576, false, &dets);
        let parsed = parse_detections_line(&format!("{line}\n")).unwrap();
        assert_eq!(
            parsed,
            DetectionsLine {
                pts_ns: Some(42),
                frame: 3,
                width: 768,
                height: 576,
                concealed: false,
                detections: dets
            }
        );
        assert_eq!(parsed.to_json_line(), line);
        assert!(parse_detections_line("{}").is_err());
        assert!(parse_detections_line(&line.replace("\"frame\"", "\"frames\"")).is_err());
        assert!(parse_detections_line(&line.replace("\"box\"", "\"bbox\"")).is_err());
        assert!(parse_detections_line(&line.replace("[130.5,", "[")).is_err());
        assert!(parse_detections_line(&line[..line.len() - 1]).is_err());
    }

    #[test]
    fn lenient_reading_ignores_unknown_fields_and_a_missing_frame() {
        let dets = vec![det("dog", 16, 0.9123, [130.5, 220.0, 310.5, 540.0])];
        let line = detections_json_line(Some(42), 3, 768, 576, false, &dets);
        let extra = line
            .replace("\"frame\":3,", "\"camera\":\"north\",")
            .replace("\"score\"", "\"track\":7,\"score\"");
        let e = parse_detections_line(&extra).unwrap_err().to_string();
        assert!(e.contains("camera"), "{e}");
        let e = parse_detections_line(&line.replace("\"score\"", "\"track\":7,\"score\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("track"), "{e}");
        let e = parse_detections_line(&line.replace("\"frame\":3,", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("frame"), "{e}");
        let lenient = parse_detections_line_with(&extra, Leniency::Lenient).unwrap();
        assert_eq!((lenient.frame, lenient.pts_ns), (0, Some(42)));
        assert_eq!(lenient.detections, dets);
        // Still an error in either mode: a missing required field, a wrong type.
        for bad in [
            line.replace("\"width\"", "\"w\""),
            line.replace("16", "-16"),
        ] {
            assert!(parse_detections_line_with(&bad, Leniency::Lenient).is_err());
        }
    }
}
