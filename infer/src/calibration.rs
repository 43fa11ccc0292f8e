//! Calibration files: how strongly the back network's outputs react to noise in each channel of
//! the cut tensors, and the quantizer step multipliers derived from that ("task-aware" bit
//! allocation without training); optionally a channel transform (KLT) per tensor.
//!
//! # What is measured
//!
//! `fmap-calibrate` (crate fmap-eval) runs the front network on a few frames of real footage and,
//! for every channel `c` of every cut tensor, adds Gaussian noise of standard deviation `σ` to
//! that channel only, runs the back network and measures `D_c`, the mean squared change of the
//! back network's outputs (the mean over each output's elements, summed over the outputs; for a
//! model with its own NMS, of the boxes and scores entering it). The
//! sensitivity is `s_c = mean over frames of D_c / σ²`: to first order (finite differences
//! through the back network), noise of variance `Δ²` in channel `c` costs `s_c · Δ²` of output
//! distortion. A "channel" is a channel plane of the codec-core tensor (C, H, W), the unit the
//! codec quantizes. For 8-bit tensors `σ` and hence `s_c` are in code units.
//!
//! # From sensitivities to steps
//!
//! A uniform quantizer of step `Δ_c` adds noise of variance `Δ_c²/12` to channel `c`, so the
//! output distortion is `∝ Σ s_c Δ_c²` while the rate falls like `−Σ log Δ_c` (high-rate
//! approximation). Minimizing distortion + λ·rate gives `s_c Δ_c² = const`, i.e.
//! `Δ_c ∝ s_c^(−1/2)`: [`channel_weights`] returns these step multipliers, normalized so that
//! their geometric mean is 1 (before clamping), with the exponent as a parameter (0.5 is the
//! optimum above; smaller values hedge against the first-order model).
//!
//! # The file
//!
//! `<model dir>/<model stem>.<split>.calib.json` ([`Calibration::sidecar_path`]), JSON:
//!
//! ```json
//! { "format": "fmap-calibration", "version": 1, "model": "nanodet.onnx", "split": "stage2",
//!   "frames": 16, "noise": 0.3,
//!   "tensors": [ { "name": "PartitionedCall/onnx_tf_prefix_Concat_27:0", "channels": 128,
//!                  "sensitivity": [0.0123, ...],
//!                  "transform": { "mean": [...], "variances": [...], "basis": [[...], ...] } } ] }
//! ```
//!
//! `transform` (optional, `fmap-calibrate --klt`, f32 tensors only) is the channel transform of
//! [`codec_core::transform`]: the channels' means and the eigenvectors of their covariance over
//! the same frames, strongest first ([`TensorTransform`]).
//!
//! [`Calibration::load`] checks everything a consumer relies on (format, version, one finite,
//! non-negative sensitivity per channel) and [`Calibration::save`] refuses to write a file that
//! would not load.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{InferError, Result};

/// The `format` field of every calibration file.
pub const FORMAT: &str = "fmap-calibration";
/// The `version` this crate writes and reads.
pub const VERSION: u32 = 1;
/// The smallest and largest step multiplier [`channel_weights`] returns.
pub const MIN_WEIGHT: f32 = 1.0 / 16.0;
pub const MAX_WEIGHT: f32 = 16.0;
/// A channel whose sensitivity is below this fraction of the geometric mean counts as
/// insensitive (it gets [`MAX_WEIGHT`]).
pub const INSENSITIVE_FRACTION: f64 = 1e-6;

/// A model's per-channel sensitivities at one split point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// File name of the model measured, e.g. `nanodet.onnx`.
    pub model: String,
    /// The split point measured, as requested (e.g. `stage2`).
    pub split: String,
    /// Frames the sensitivities are averaged over.
    pub frames: usize,
    /// Noise standard deviation used, relative to the standard deviation of the whole tensor
    /// on each frame.
    pub noise: f32,
    /// One entry per cut tensor, in the order the front network produces them.
    pub tensors: Vec<TensorCalibration>,
}

/// The sensitivities of one cut tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorCalibration {
    /// The tensor name, as in the model and in feature frames.
    pub name: String,
    /// Channel planes of the (C, H, W) tensor.
    pub channels: usize,
    /// `s_c` for every channel: output distortion per unit noise variance (see the module
    /// documentation); for 8-bit tensors per squared code unit.
    pub sensitivity: Vec<f64>,
    /// The channel transform (KLT) fitted by `fmap-calibrate --klt`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<TensorTransform>,
}

/// A channel transform (KLT/PCA across the channels of a tensor): the principal directions of
/// the channels' covariance over the calibration frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorTransform {
    /// Per channel, the mean over the calibration frames.
    pub mean: Vec<f32>,
    /// The covariance's eigenvalues, strongest first: the variance of each component.
    pub variances: Vec<f64>,
    /// The eigenvectors (unit length, orthogonal), one row of `channels` values per component,
    /// in the order of `variances`.
    pub basis: Vec<Vec<f32>>,
}

impl TensorTransform {
    /// The codec's transform keeping the `components` strongest (0 = all).
    pub fn to_codec(
        &self,
        tensor: &str,
        components: usize,
    ) -> std::result::Result<codec_core::transform::ChannelTransform, String> {
        let flat: Vec<f32> = self.basis.iter().flatten().copied().collect();
        codec_core::transform::ChannelTransform::new(tensor, self.mean.clone(), &flat, components)
            .map_err(|e| e.to_string())
    }

    fn check(&self, name: &str, channels: usize) -> Result<()> {
        let fits = self.mean.len() == channels
            && self.variances.len() == self.basis.len()
            && !self.basis.is_empty()
            && self.basis.len() <= channels
            && self.basis.iter().all(|r| r.len() == channels);
        let finite = self
            .mean
            .iter()
            .chain(self.basis.iter().flatten())
            .all(|v| v.is_finite())
            && self.variances.iter().all(|v| v.is_finite() && *v >= 0.0);
        if fits && finite {
            Ok(())
        } else {
            Err(calib_err(format!(
                "tensor '{name}': the transform needs {channels} means and up to {channels} \
                 rows of {channels} finite values with one non-negative variance each"
            )))
        }
    }
}

fn calib_err(msg: impl Into<String>) -> InferError {
    InferError::Calibration(msg.into())
}

/// The split name as it appears in a file name: characters other than ASCII letters, digits,
/// `-` and `_` (e.g. the `/` and `:` of a tensor-name split) become `_`.
fn file_name_split(split: &str) -> String {
    split
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The command that makes the calibration file at `path`, guessed from its name when it follows
/// [`Calibration::sidecar_path`].
fn how_to_make(path: &Path) -> String {
    let guessed = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".calib.json"))
        .and_then(|n| n.rsplit_once('.'))
        .filter(|(stem, split)| !stem.is_empty() && !split.is_empty());
    match guessed {
        Some((stem, split)) => format!(
            "make it with `fmap-calibrate --model {} --split {split}`",
            path.with_file_name(format!("{stem}.onnx")).display()
        ),
        None => format!(
            "make it with `fmap-calibrate --model M --split S --out {}`",
            path.display()
        ),
    }
}

impl Calibration {
    /// Reads, parses and validates a calibration file. A missing file is an
    /// [`InferError::Io`] naming the path and the `fmap-calibrate` command that makes it.
    pub fn load(path: impl AsRef<Path>) -> Result<Calibration> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| InferError::Io {
            path: path.to_path_buf(),
            source: if e.kind() == std::io::ErrorKind::NotFound {
                std::io::Error::new(e.kind(), format!("{e}; {}", how_to_make(path)))
            } else {
                e
            },
        })?;
        Self::from_json_str(&text).map_err(|e| match e {
            InferError::Calibration(m) => calib_err(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Loads the calibration of `model_path` at `split` ([`Calibration::sidecar_path`]) and
    /// checks that it was made for that model file and split.
    pub fn load_for_model(model_path: impl AsRef<Path>, split: &str) -> Result<Calibration> {
        let model_path = model_path.as_ref();
        let path = Self::sidecar_path(model_path, split);
        let c = Self::load(&path)?;
        let file_name = model_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if c.model != file_name || c.split != split {
            return Err(calib_err(format!(
                "{}: made for model {} split {}, not {file_name} split {split}; {}",
                path.display(),
                c.model,
                c.split,
                how_to_make(&path)
            )));
        }
        Ok(c)
    }

    /// Parses and validates a calibration from JSON text.
    pub fn from_json_str(text: &str) -> Result<Calibration> {
        let c: Calibration = serde_json::from_str(text).map_err(|e| calib_err(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Writes the calibration as pretty JSON (through a temporary file in the same folder, so a
    /// reader never sees half a file). Refuses a calibration that [`Calibration::validate`]
    /// rejects.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.validate()?;
        let mut text = serde_json::to_string_pretty(self).map_err(|e| calib_err(e.to_string()))?;
        text.push('\n');
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| InferError::Io { path: p, source }
        };
        let tmp = path.with_file_name(format!(
            ".{}.tmp-{}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(path)(e)
        })
    }

    /// The calibration file of a model at a split point:
    /// `models/foo.onnx`, `stage2` → `models/foo.stage2.calib.json`. Characters of `split` other
    /// than ASCII letters, digits, `-` and `_` are written as `_`.
    pub fn sidecar_path(model_path: impl AsRef<Path>, split: &str) -> PathBuf {
        let model_path = model_path.as_ref();
        let stem = model_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        model_path.with_file_name(format!("{stem}.{}.calib.json", file_name_split(split)))
    }

    /// The entry of the tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorCalibration> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Checks format, version, and that every tensor has one finite, non-negative sensitivity
    /// per channel.
    pub fn validate(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(calib_err(format!(
                "format is '{}', not '{FORMAT}': not a calibration file",
                self.format
            )));
        }
        if self.version != VERSION {
            return Err(calib_err(format!(
                "version {} is not supported (this build reads version {VERSION}); make the \
                 file again with this build's fmap-calibrate",
                self.version
            )));
        }
        if self.frames == 0 {
            return Err(calib_err("frames is 0"));
        }
        if !(self.noise.is_finite() && self.noise > 0.0) {
            return Err(calib_err(format!(
                "noise = {}; must be finite and positive",
                self.noise
            )));
        }
        if self.tensors.is_empty() {
            return Err(calib_err("no tensors"));
        }
        let mut names = HashSet::new();
        for t in &self.tensors {
            if !names.insert(t.name.as_str()) {
                return Err(calib_err(format!("tensor '{}' appears twice", t.name)));
            }
            if t.channels == 0 {
                return Err(calib_err(format!("tensor '{}' has 0 channels", t.name)));
            }
            if t.channels != t.sensitivity.len() {
                return Err(calib_err(format!(
                    "tensor '{}' has {} channels but {} sensitivities",
                    t.name,
                    t.channels,
                    t.sensitivity.len()
                )));
            }
            if let Some(tr) = &t.transform {
                tr.check(&t.name, t.channels)?;
            }
            if let Some((c, s)) = t
                .sensitivity
                .iter()
                .enumerate()
                .find(|(_, s)| !(s.is_finite() && **s >= 0.0))
            {
                return Err(calib_err(format!(
                    "tensor '{}' channel {c} has sensitivity {s}; every sensitivity must be \
                     finite and non-negative",
                    t.name
                )));
            }
        }
        Ok(())
    }
}

/// Quantizer step multipliers from per-channel sensitivities: `w_c = (s_c / G)^(−exponent)`,
/// where `G` is the geometric mean of the positive, finite sensitivities. Channels with
/// `s_c` zero, negative, NaN or below [`INSENSITIVE_FRACTION`]`·G` get [`MAX_WEIGHT`] (the output
/// does not notice them); every weight is clamped to [[`MIN_WEIGHT`], [`MAX_WEIGHT`]].
/// Exponent 0.5 is the rate–distortion optimum (see the module documentation); exponent 0 gives
/// uniform weights 1.
///
/// # Panics
///
/// If `exponent` is negative or not finite.
pub fn channel_weights(sensitivity: &[f64], exponent: f64) -> Vec<f32> {
    assert!(
        exponent.is_finite() && exponent >= 0.0,
        "channel_weights: exponent {exponent} must be finite and non-negative"
    );
    if exponent == 0.0 {
        return vec![1.0; sensitivity.len()];
    }
    let positive: Vec<f64> = sensitivity
        .iter()
        .copied()
        .filter(|s| s.is_finite() && *s > 0.0)
        .collect();
    if positive.is_empty() {
        return vec![MAX_WEIGHT; sensitivity.len()];
    }
    let log_g = positive.iter().map(|s| s.ln()).sum::<f64>() / positive.len() as f64;
    let g = log_g.exp();
    sensitivity
        .iter()
        .map(|&s| {
            if s.is_nan() || s < INSENSITIVE_FRACTION * g {
                return MAX_WEIGHT;
            }
            // In the log domain so that huge ratios cannot overflow (+inf gives 0, clamped).
            let w = (-exponent * (s.ln() - log_g)).exp() as f32;
            w.clamp(MIN_WEIGHT, MAX_WEIGHT)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-5 * b.abs().max(1.0)
    }

    #[test]
    fn weights_follow_the_inverse_square_root() {
        // G = (1 · 4 · 16)^(1/3) = 4: weights (s/4)^(-1/2) = 2, 1, 0.5.
        let w = channel_weights(&[1.0, 4.0, 16.0], 0.5);
        assert!(
            close(w[0], 2.0) && close(w[1], 1.0) && close(w[2], 0.5),
            "{w:?}"
        );
        // Exponent 1: (s/4)^-1.
        let w = channel_weights(&[1.0, 4.0, 16.0], 1.0);
        assert!(
            close(w[0], 4.0) && close(w[1], 1.0) && close(w[2], 0.25),
            "{w:?}"
        );
        // Scaling every sensitivity changes nothing (only ratios matter).
        let a = channel_weights(&[0.3, 2.0, 7.0, 0.01], 0.5);
        let b = channel_weights(&[3e5, 2e6, 7e6, 1e4], 0.5);
        assert!(a.iter().zip(&b).all(|(x, y)| close(*x, *y)), "{a:?} {b:?}");
        // Before clamping the weights' geometric mean is 1.
        let log_mean = a.iter().map(|w| (*w as f64).ln()).sum::<f64>() / a.len() as f64;
        assert!(log_mean.abs() < 1e-6, "{log_mean}");
        // Equal sensitivities: all 1; exponent 0: all 1 whatever they are.
        assert_eq!(channel_weights(&[5.0; 4], 0.5), vec![1.0; 4]);
        assert_eq!(channel_weights(&[1.0, 0.0, 1e9], 0.0), vec![1.0; 3]);
        assert!(channel_weights(&[], 0.5).is_empty());
    }

    #[test]
    fn weights_are_clamped_and_insensitive_channels_get_the_largest() {
        // G over the positive ones = 1; s = 1e-4 → 100, clamped to 16; s = 1e4 → 0.01 → 1/16.
        let w = channel_weights(&[1.0, 1e-4, 1e4, 0.0], 0.5);
        assert_eq!(w, vec![1.0, MAX_WEIGHT, MIN_WEIGHT, MAX_WEIGHT]);
        // Below 1e-6·G counts as zero even where the formula would stay below the clamp
        // (G = (1e-12)^(1/11) ≈ 0.081; exponent 0.1: (1e-12/G)^-0.1 ≈ 12.5).
        let mut s = vec![1.0; 10];
        s.push(1e-12);
        assert_eq!(channel_weights(&s, 0.1)[10], MAX_WEIGHT);
        // Just above the threshold: the formula ((1e-6/G)^-0.1 ≈ 3.5 with G ≈ 0.285).
        s[10] = 1e-6;
        let w = channel_weights(&s, 0.1)[10];
        assert!((3.0..4.0).contains(&w), "{w}");
        // Nothing measurable at all: everything may be coarse.
        assert_eq!(channel_weights(&[0.0, 0.0], 0.5), vec![MAX_WEIGHT; 2]);
        // Values a validated file cannot hold still give usable weights.
        let w = channel_weights(&[1.0, f64::NAN, -1.0, f64::INFINITY], 0.5);
        assert_eq!(&w[1..], &[MAX_WEIGHT, MAX_WEIGHT, MIN_WEIGHT]);
        assert!(w.iter().all(|w| (MIN_WEIGHT..=MAX_WEIGHT).contains(w)));
    }

    #[test]
    #[should_panic(expected = "exponent")]
    fn negative_exponent_is_a_bug() {
        channel_weights(&[1.0], -0.5);
    }

    #[test]
    fn sidecar_names_follow_the_profile_style() {
        assert_eq!(
            Calibration::sidecar_path("models/nanodet.onnx", "stage2"),
            PathBuf::from("models/nanodet.stage2.calib.json")
        );
        assert_eq!(
            Calibration::sidecar_path("/a/b/ssd_mobilenet_v2_coco_quant.onnx", "expanded_conv_5"),
            PathBuf::from("/a/b/ssd_mobilenet_v2_coco_quant.expanded_conv_5.calib.json")
        );
        // A tensor-name split stays one file name in the model's folder.
        assert_eq!(
            Calibration::sidecar_path("m/x.onnx", "a/b:0,c.d"),
            PathBuf::from("m/x.a_b_0_c_d.calib.json")
        );
        assert_eq!(
            how_to_make(Path::new("models/nanodet.stage2.calib.json")),
            "make it with `fmap-calibrate --model models/nanodet.onnx --split stage2`"
        );
        assert!(how_to_make(Path::new("/tmp/weights.json")).contains("--out /tmp/weights.json"));
    }

    fn sample() -> Calibration {
        Calibration {
            format: FORMAT.into(),
            version: VERSION,
            model: "m.onnx".into(),
            split: "stage2".into(),
            frames: 3,
            noise: 0.3,
            tensors: vec![
                TensorCalibration {
                    name: "a/b:0".into(),
                    channels: 3,
                    // Values that a decimal round trip could easily spoil.
                    sensitivity: vec![0.1, 1.0 / 3.0, 1.234_567_890_123_456_7e-17],
                    transform: None,
                },
                TensorCalibration {
                    name: "c:0".into(),
                    channels: 1,
                    sensitivity: vec![0.0],
                    transform: None,
                },
            ],
        }
    }

    fn temp_dir(what: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fmap-calibration-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_round_trip() {
        let dir = temp_dir("round-trip");
        let model = dir.join("m.onnx");
        let path = Calibration::sidecar_path(&model, "stage2");
        let c = sample();
        c.save(&path).unwrap();
        // serde_json's default (fast) float parser can be 1 ulp off for some decimal strings
        // (1.2345678901234567e-17 reads back as ...68e-17); everything else is exact.
        let same = |a: &Calibration| {
            let mut a = a.clone();
            for (t, want) in a.tensors.iter_mut().zip(&c.tensors) {
                for (x, y) in t.sensitivity.iter_mut().zip(&want.sensitivity) {
                    assert!(
                        (*x - *y).abs() <= 2.0 * f64::EPSILON * y.abs(),
                        "{x} vs {y}"
                    );
                    *x = *y;
                }
            }
            a == c
        };
        assert!(same(&Calibration::load(&path).unwrap()));
        assert!(same(
            &Calibration::load_for_model(&model, "stage2").unwrap()
        ));
        assert_eq!(c.tensor("c:0").unwrap().channels, 1);
        assert!(c.tensor("d:0").is_none());
        // Saved for another model or split: load_for_model says so.
        std::fs::copy(&path, Calibration::sidecar_path(&model, "stage1")).unwrap();
        let e = Calibration::load_for_model(&model, "stage1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("made for model m.onnx split stage2"), "{e}");
        // No temporary file is left next to it.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn load_errors_say_what_is_wrong() {
        let dir = temp_dir("errors");
        // Missing: the path and the command that makes it.
        let missing = dir.join("nanodet.stage2.calib.json");
        let e = Calibration::load(&missing).unwrap_err();
        assert!(matches!(e, InferError::Io { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains(&missing.display().to_string())
                && msg.contains("fmap-calibrate --model")
                && msg.contains("nanodet.onnx --split stage2"),
            "{msg}"
        );

        let json = serde_json::to_string(&sample()).unwrap();
        let path = dir.join("x.s.calib.json");
        let load_err = |text: String| {
            std::fs::write(&path, text).unwrap();
            let e = Calibration::load(&path).unwrap_err();
            assert!(matches!(e, InferError::Calibration(_)), "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains("x.s.calib.json"), "{msg}");
            msg
        };
        let e = load_err(json.replace(FORMAT, "fmap-profile"));
        assert!(e.contains("not a calibration file"), "{e}");
        let e = load_err(json.replace("\"version\":1", "\"version\":2"));
        assert!(e.contains("version 2 is not supported"), "{e}");
        let e = load_err(json.replace("\"channels\":3", "\"channels\":4"));
        assert!(e.contains("4 channels but 3 sensitivities"), "{e}");
        let e = load_err(json.replace("[0.0]", "[-0.5]"));
        assert!(e.contains("channel 0 has sensitivity -0.5"), "{e}");
        // JSON has no NaN or infinity; 1e999 parses as +inf in serde_json and is refused
        // (as a number out of range, or by the finiteness check).
        let e = load_err(json.replace("[0.0]", "[1e999]"));
        assert!(e.contains("c:0") || e.contains("number"), "{e}");
        let e = load_err(json.replace("[0.0]", "[null]"));
        assert!(e.contains("null"), "{e}");
        let e = load_err(json.replace("\"frames\":3", "\"frames\":3,\"frmaes\":3"));
        assert!(e.contains("frmaes"), "{e}");
        let e = load_err(json.replace("\"noise\":0.3", "\"noise\":0.0"));
        assert!(e.contains("noise"), "{e}");
        let e = load_err(json.replace("\"c:0\"", "\"a/b:0\""));
        assert!(e.contains("appears twice"), "{e}");
        let e = load_err("{".into());
        assert!(e.contains("EOF"), "{e}");

        // save refuses what load would refuse, and writes nothing.
        let mut bad = sample();
        bad.tensors[0].sensitivity[1] = f64::NAN;
        let out = dir.join("bad.calib.json");
        assert!(matches!(bad.save(&out), Err(InferError::Calibration(_))));
        assert!(!out.exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
