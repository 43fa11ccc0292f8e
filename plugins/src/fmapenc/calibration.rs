//! Calibrated quantizer ranges: a JSON object mapping each cut tensor's name to `[min, max]`,
//! measured offline over representative footage, e.g.
//! `{"PartitionedCall/onnx_tf_prefix_Concat_27:0": [0.0, 9.75]}`.

use std::collections::BTreeMap;
use std::path::Path;

/// Largest calibration file read (ranges for a few tensors take a few hundred bytes).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads and checks a calibration file. The message of an error names the file and the problem.
pub fn load(path: &Path) -> Result<BTreeMap<String, (f32, f32)>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("calibration file {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "calibration file {} is {} bytes, more than the {MAX_FILE_BYTES} allowed",
            path.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("calibration file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("calibration file {}: {e}", path.display()))
}

/// Parses `{"<tensor>": [min, max], ...}`; every range must be finite with min <= max.
pub fn parse(text: &str) -> Result<BTreeMap<String, (f32, f32)>, String> {
    let raw: BTreeMap<String, Vec<f64>> = serde_json::from_str(text)
        .map_err(|e| format!("expected a JSON object {{\"<tensor>\": [min, max], ...}}: {e}"))?;
    if raw.is_empty() {
        return Err("no tensor ranges in the file".into());
    }
    raw.into_iter()
        .map(|(name, range)| match range.as_slice() {
            [min, max] if min.is_finite() && max.is_finite() && min <= max => {
                Ok((name, (*min as f32, *max as f32)))
            }
            _ => Err(format!(
                "range of tensor '{name}' must be [min, max] with finite min <= max, got {range:?}"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        let m = parse(r#"{"a": [-1.5, 3], "b:0": [0, 0]}"#).unwrap();
        assert_eq!(m["a"], (-1.5, 3.0));
        assert_eq!(m["b:0"], (0.0, 0.0));
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!(parse("[]").is_err());
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"a": [1]}"#).unwrap_err().contains("'a'"));
        assert!(parse(r#"{"a": [2, 1]}"#).is_err());
        assert!(parse(r#"{"a": "x"}"#).is_err());
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load(Path::new("/nonexistent/fmap-calibration.json")).unwrap_err();
        assert!(err.contains("/nonexistent/fmap-calibration.json"), "{err}");
    }
}
