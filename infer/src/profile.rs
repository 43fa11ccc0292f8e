//! Model profiles: the `<model>.profile.json` sidecar that tells fmap-infer how to feed a model
//! (input size, layout, channel order, normalization, resize mode), how to turn its outputs into
//! detections (decoder, labels, thresholds) and where it can be split (named split points).
//!
//! Every struct denies unknown fields, so a typo in a profile fails with serde's message naming
//! the field instead of being silently ignored. [`Profile::load`] / [`Profile::from_json_str`]
//! also validate the values (see [`Profile::validate`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{InferError, Result};

/// Largest network input side accepted from a profile. Bounds the tensors the preprocessor
/// allocates when a profile is wrong or hostile.
pub const MAX_INPUT_SIDE: u32 = 8192;

/// Largest `reg_max` accepted for the GFL decoder (NanoDet uses 7 or 10).
pub const MAX_REG_MAX: u32 = 64;

/// A parsed and validated model profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short model name, e.g. `nanodet`.
    pub name: String,
    /// Free text for humans.
    #[serde(default)]
    pub description: String,
    /// How to build the network input from a video frame.
    pub input: InputSpec,
    /// How to turn the network outputs into detections.
    pub decoder: DecoderSpec,
    /// Class names; index = class id (after `class_id_offset` for the `boxes` decoder).
    pub labels: Vec<String>,
    /// Detections scoring below this are dropped before NMS.
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    /// Class-wise NMS: a box is suppressed when its IoU with a higher-scoring box of the same
    /// class is greater than this.
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// At most this many detections per frame (highest scores first).
    #[serde(default = "default_max_detections")]
    pub max_detections: usize,
    /// Named split points: name → tensor names forming the cut.
    #[serde(default)]
    pub split_points: BTreeMap<String, Vec<String>>,
    /// The split used when none is requested: `none` or a key of `split_points`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_split: Option<String>,
}

fn default_score_threshold() -> f32 {
    0.35
}
fn default_nms_iou() -> f32 {
    0.6
}
fn default_max_detections() -> usize {
    100
}

/// Memory layout of the network input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// `[1, C, H, W]` (channel planes).
    #[serde(rename = "NCHW")]
    Nchw,
    /// `[1, H, W, C]` (interleaved pixels).
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// Element type of the network input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputDType {
    /// 32-bit float, normalized with mean/std.
    #[serde(rename = "f32")]
    F32,
    /// Raw 8-bit pixels (quantized models); no normalization.
    #[serde(rename = "u8")]
    U8,
}

/// Channel order the network expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelOrder {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

/// How the video frame is fitted into the network input: `resize` in the profile JSON and in
/// the `application/x-fmap` caps, by the names of [`ResizeMode::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum ResizeMode {
    /// Scale width and height independently to fill the input (aspect ratio not kept).
    Stretch,
    /// Scale uniformly to fit, centre, and fill the borders with `letterbox_fill`.
    Letterbox,
}

impl ResizeMode {
    pub const ALL: [ResizeMode; 2] = [ResizeMode::Stretch, ResizeMode::Letterbox];
    pub const NAMES: [&'static str; 2] = ["stretch", "letterbox"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The mode named `s`; the error lists the valid names.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("resize mode '{s}' is not one of {}", Self::NAMES.join(", ")))
    }
}

impl From<ResizeMode> for &'static str {
    fn from(m: ResizeMode) -> Self {
        m.as_str()
    }
}

impl TryFrom<String> for ResizeMode {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        ResizeMode::parse(&s)
    }
}

/// The network input: `input` in the profile JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the graph input, e.g. `input_1:0`.
    pub name: String,
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    pub dtype: InputDType,
    pub channel_order: ChannelOrder,
    /// Per-channel mean in `channel_order`, on the 0..255 pixel scale: `x' = (x - mean) / std`.
    /// Omitted: 0. Only meaningful for `f32` inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std in `channel_order`. Omitted: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    pub resize: ResizeMode,
    /// Pixel value (0..255, before normalization) of the letterbox borders. Omitted: 114.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letterbox_fill: Option<u8>,
}

impl InputSpec {
    /// Mean per channel (in `channel_order`), defaulting to 0.
    pub fn mean_or_default(&self) -> [f32; 3] {
        match &self.mean {
            Some(m) if m.len() == 3 => [m[0], m[1], m[2]],
            _ => [0.0; 3],
        }
    }

    /// Std per channel (in `channel_order`), defaulting to 1.
    pub fn std_or_default(&self) -> [f32; 3] {
        match &self.std {
            Some(s) if s.len() == 3 => [s[0], s[1], s[2]],
            _ => [1.0; 3],
        }
    }

    /// Letterbox fill value, defaulting to 114 (the grey used by YOLO-style letterboxing).
    pub fn fill_or_default(&self) -> u8 {
        self.letterbox_fill.unwrap_or(114)
    }

    /// Shape of the input tensor: `[1,3,H,W]` or `[1,H,W,3]`.
    pub fn tensor_shape(&self) -> [usize; 4] {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        }
    }

    /// Checks sizes and normalization values.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(profile_err("input.name is empty"));
        }
        for (what, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v > MAX_INPUT_SIDE {
                return Err(profile_err(format!(
                    "input.{what} = {v}; must be 1..={MAX_INPUT_SIDE}"
                )));
            }
        }
        if let Some(mean) = &self.mean {
            if mean.len() != 3 {
                return Err(profile_err(format!(
                    "input.mean has {} values; it needs 3 (one per channel, in channel_order)",
                    mean.len()
                )));
            }
            if let Some(bad) = mean.iter().find(|v| !v.is_finite()) {
                return Err(profile_err(format!("input.mean contains {bad}")));
            }
        }
        if let Some(std) = &self.std {
            if std.len() != 3 {
                return Err(profile_err(format!(
                    "input.std has {} values; it needs 3 (one per channel, in channel_order)",
                    std.len()
                )));
            }
            if let Some(bad) = std.iter().find(|v| !v.is_finite() || **v == 0.0) {
                return Err(profile_err(format!(
                    "input.std contains {bad}; every std must be finite and non-zero"
                )));
            }
        }
        if self.dtype == InputDType::U8
            && (self.mean_or_default() != [0.0; 3] || self.std_or_default() != [1.0; 3])
        {
            return Err(profile_err(
                "input.dtype is u8 (raw pixels), so mean/std cannot be applied; omit them \
                 or use mean [0,0,0] and std [1,1,1]",
            ));
        }
        Ok(())
    }
}

/// Box coordinate order of the `boxes` decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BoxOrder {
    /// x1, y1, x2, y2
    #[default]
    #[serde(rename = "xyxy")]
    Xyxy,
    /// y1, x1, y2, x2 (TensorFlow object-detection API)
    #[serde(rename = "yxyx")]
    Yxyx,
}

/// How to decode the network outputs: `decoder` in the profile JSON, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum DecoderSpec {
    /// NanoDet's Generalized Focal Loss head: per level, sigmoid class scores and a discrete
    /// distribution over `reg_max + 1` bins per box side.
    #[serde(rename = "nanodet-gfl")]
    NanodetGfl(GflSpec),
    /// Boxes already decoded by the model (e.g. TensorFlow's detection post-processing).
    #[serde(rename = "boxes")]
    Boxes(BoxesSpec),
}

impl DecoderSpec {
    /// The `type` tag as written in the JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            DecoderSpec::NanodetGfl(_) => "nanodet-gfl",
            DecoderSpec::Boxes(_) => "boxes",
        }
    }

    /// Every model output the decoder reads.
    pub fn output_names(&self) -> Vec<String> {
        match self {
            DecoderSpec::NanodetGfl(g) => g
                .levels
                .iter()
                .flat_map(|l| [l.scores.clone(), l.boxes.clone()])
                .collect(),
            DecoderSpec::Boxes(b) => [&b.boxes, &b.scores, &b.classes, &b.count, &b.table]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
        }
    }
}

/// `nanodet-gfl` decoder settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GflSpec {
    /// Bins per side = `reg_max + 1`.
    pub reg_max: u32,
    /// One entry per feature level (stride).
    pub levels: Vec<GflLevel>,
}

/// One feature level of the GFL head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GflLevel {
    /// Input pixels per cell, e.g. 8, 16, 32.
    pub stride: u32,
    /// Output with class scores `[1, N, classes]` (sigmoid applied).
    pub scores: String,
    /// Output with box distributions `[1, N, 4 * (reg_max + 1)]`.
    pub boxes: String,
}

/// `boxes` decoder settings: either `boxes` + `scores` (+ optional `classes`, `count`) or a packed
/// `table` of `[x1, y1, x2, y2, score, class]` rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxesSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boxes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default)]
    pub box_order: BoxOrder,
    /// `true`: coordinates are fractions (0..1) of the network input size; `false`: network
    /// input pixels.
    #[serde(default)]
    pub normalized: bool,
    /// Added to the model's class value to get the index into `labels`.
    #[serde(default)]
    pub class_id_offset: i64,
}

/// What a split request resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitSpec {
    /// Run the whole model in one place.
    None,
    /// Cut the graph at these tensors (the splitter may add crossing tensors).
    Tensors(Vec<String>),
}

impl fmt::Display for SplitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitSpec::None => f.write_str("none"),
            SplitSpec::Tensors(t) => f.write_str(&t.join(",")),
        }
    }
}

fn profile_err(msg: impl Into<String>) -> InferError {
    InferError::Profile(msg.into())
}

/// A name is a tensor name (not a split point name) when it contains one of these.
fn looks_like_tensor_name(s: &str) -> bool {
    s.contains(':') || s.contains('/')
}

impl Profile {
    /// Reads, parses and validates a profile file.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| InferError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text)
            .map_err(|e| profile_err(format!("{}: {}", path.display(), strip_profile_prefix(e))))
    }

    /// Parses and validates a profile from JSON text.
    pub fn from_json_str(text: &str) -> Result<Profile> {
        let profile: Profile =
            serde_json::from_str(text).map_err(|e| profile_err(e.to_string()))?;
        profile.validate()?;
        Ok(profile)
    }

    /// The sidecar profile of a model: `models/foo.onnx` → `models/foo.profile.json`.
    pub fn sidecar_path(model_path: impl AsRef<Path>) -> PathBuf {
        let model_path = model_path.as_ref();
        let stem = model_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        model_path.with_file_name(format!("{stem}.profile.json"))
    }

    /// Loads the sidecar profile of a model file.
    pub fn load_for_model(model_path: impl AsRef<Path>) -> Result<Profile> {
        Self::load(Self::sidecar_path(model_path))
    }

    /// Checks every value that serde cannot: sizes, normalization, decoder outputs, labels,
    /// thresholds and split points.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(profile_err("name is empty"));
        }
        self.input.validate()?;
        if self.labels.is_empty() {
            return Err(profile_err("labels is empty; list the class names"));
        }
        if !(0.0..=1.0).contains(&self.score_threshold) {
            return Err(profile_err(format!(
                "score_threshold = {}; must be in 0..=1",
                self.score_threshold
            )));
        }
        if !(0.0..=1.0).contains(&self.nms_iou) {
            return Err(profile_err(format!(
                "nms_iou = {}; must be in 0..=1",
                self.nms_iou
            )));
        }
        if self.max_detections == 0 {
            return Err(profile_err("max_detections must be at least 1"));
        }
        self.validate_decoder()?;
        self.validate_split_points()
    }

    fn validate_decoder(&self) -> Result<()> {
        match &self.decoder {
            DecoderSpec::NanodetGfl(g) => {
                if g.reg_max == 0 || g.reg_max > MAX_REG_MAX {
                    return Err(profile_err(format!(
                        "decoder.reg_max = {}; must be 1..={MAX_REG_MAX}",
                        g.reg_max
                    )));
                }
                if g.levels.is_empty() {
                    return Err(profile_err("decoder.levels is empty"));
                }
                for (i, l) in g.levels.iter().enumerate() {
                    if l.stride == 0 || l.stride > MAX_INPUT_SIDE {
                        return Err(profile_err(format!(
                            "decoder.levels[{i}].stride = {}; must be 1..={MAX_INPUT_SIDE}",
                            l.stride
                        )));
                    }
                    if l.scores.trim().is_empty() || l.boxes.trim().is_empty() {
                        return Err(profile_err(format!(
                            "decoder.levels[{i}] needs the output names `scores` and `boxes`"
                        )));
                    }
                }
            }
            DecoderSpec::Boxes(b) => {
                let named = |o: &Option<String>| o.as_ref().is_some_and(|s| !s.trim().is_empty());
                for (field, o) in [
                    ("boxes", &b.boxes),
                    ("scores", &b.scores),
                    ("classes", &b.classes),
                    ("count", &b.count),
                    ("table", &b.table),
                ] {
                    if o.is_some() && !named(o) {
                        return Err(profile_err(format!("decoder.{field} is an empty name")));
                    }
                }
                if named(&b.table) {
                    if b.boxes.is_some() || b.scores.is_some() || b.classes.is_some() {
                        return Err(profile_err(
                            "decoder: give either `table` (packed [N,6] x1,y1,x2,y2,score,class) \
                             or `boxes` + `scores` (+ `classes`), not both",
                        ));
                    }
                } else if !(named(&b.boxes) && named(&b.scores)) {
                    return Err(profile_err(
                        "decoder of type `boxes` needs the output names `boxes` and `scores` \
                         (optionally `classes`, `count`), or a packed `table`",
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_split_points(&self) -> Result<()> {
        for (name, tensors) in &self.split_points {
            if name.trim().is_empty()
                || name.eq_ignore_ascii_case("none")
                || name.contains(',')
                || looks_like_tensor_name(name)
            {
                return Err(profile_err(format!(
                    "split point name '{name}' is not allowed (it must be non-empty, not \
                     'none', and contain no ',', ':' or '/', so it cannot be confused with \
                     tensor names)"
                )));
            }
            if tensors.is_empty() || tensors.iter().any(|t| t.trim().is_empty()) {
                return Err(profile_err(format!(
                    "split point '{name}' must list one or more non-empty tensor names"
                )));
            }
        }
        if let Some(d) = &self.default_split
            && !d.eq_ignore_ascii_case("none")
            && !self.split_points.contains_key(d)
        {
            return Err(profile_err(format!(
                "default_split '{d}' is neither 'none' nor a split point ({})",
                self.split_point_names_joined()
            )));
        }
        Ok(())
    }

    /// Names of the named split points, sorted.
    pub fn split_point_names(&self) -> Vec<&str> {
        self.split_points.keys().map(String::as_str).collect()
    }

    /// `none, stage1, stage2, ...` for messages that list the valid split names.
    pub fn split_point_names_joined(&self) -> String {
        std::iter::once("none")
            .chain(self.split_point_names())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolves a split request: `none`, a named split point, or comma-separated tensor names.
    ///
    /// An empty (or whitespace) spec means the profile's `default_split` (`none` when absent).
    /// A single word that is neither `none` nor a split point is passed on as a tensor name:
    /// the graph splitter then rejects it if the graph has no such tensor, and callers can add
    /// [`Profile::split_point_names_joined`] to that message.
    pub fn resolve_split(&self, spec: &str) -> SplitSpec {
        let spec = spec.trim();
        if spec.is_empty() {
            return match &self.default_split {
                Some(d) if !d.eq_ignore_ascii_case("none") => self.resolve_split(d),
                _ => SplitSpec::None,
            };
        }
        if spec.eq_ignore_ascii_case("none") {
            return SplitSpec::None;
        }
        if let Some(tensors) = self.split_points.get(spec) {
            return SplitSpec::Tensors(tensors.clone());
        }
        let tensors: Vec<String> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if tensors.is_empty() {
            SplitSpec::None
        } else {
            SplitSpec::Tensors(tensors)
        }
    }

    /// Whether `spec` names a split point of this profile (or `none`).
    pub fn is_named_split(&self, spec: &str) -> bool {
        let spec = spec.trim();
        spec.eq_ignore_ascii_case("none") || self.split_points.contains_key(spec)
    }

    /// The label of a class id, if the id is in range.
    pub fn label(&self, class_id: u32) -> Option<&str> {
        self.labels.get(class_id as usize).map(String::as_str)
    }
}

/// Avoids "model profile: x: model profile: y" when a file path is prefixed.
fn strip_profile_prefix(e: InferError) -> String {
    match e {
        InferError::Profile(m) => m,
        other => other.to_string(),
    }
}

/// Whether a split spec entry would be read as a tensor name rather than a split point name.
pub fn is_tensor_name(s: &str) -> bool {
    looks_like_tensor_name(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const NANODET_JSON: &str = r#"{
      "name": "nanodet",
      "description": "test",
      "input": {"name": "input_1:0", "layout": "NCHW", "width": 416, "height": 416,
                "dtype": "f32", "channel_order": "BGR",
                "mean": [103.53, 116.28, 123.675], "std": [57.375, 57.12, 58.395],
                "resize": "stretch"},
      "decoder": {"type": "nanodet-gfl", "reg_max": 10, "levels": [
          {"stride": 8, "scores": "s8", "boxes": "b8"},
          {"stride": 16, "scores": "s16", "boxes": "b16"},
          {"stride": 32, "scores": "s32", "boxes": "b32"}]},
      "labels": ["person", "bicycle"],
      "score_threshold": 0.35, "nms_iou": 0.6, "max_detections": 100,
      "split_points": {"stage1": ["a/b:0"], "stage2": ["c/d:0"], "backbone": ["c/d:0", "e:0", "f:0"]},
      "default_split": "stage2"
    }"#;

    const SSD_JSON: &str = r#"{
      "name": "ssd",
      "input": {"name": "normalized_input_image_tensor", "layout": "NHWC", "width": 300,
                "height": 300, "dtype": "u8", "channel_order": "RGB", "resize": "stretch"},
      "decoder": {"type": "boxes", "boxes": "TFLite_Detection_PostProcess",
                  "classes": "TFLite_Detection_PostProcess:1",
                  "scores": "TFLite_Detection_PostProcess:2",
                  "count": "TFLite_Detection_PostProcess:3",
                  "box_order": "yxyx", "normalized": true, "class_id_offset": 0},
      "labels": ["person"],
      "score_threshold": 0.5, "nms_iou": 0.6, "max_detections": 20
    }"#;

    #[test]
    fn parses_both_decoder_types() {
        let p = Profile::from_json_str(NANODET_JSON).unwrap();
        assert_eq!(p.input.layout, Layout::Nchw);
        assert_eq!(p.input.channel_order, ChannelOrder::Bgr);
        assert_eq!(p.input.tensor_shape(), [1, 3, 416, 416]);
        match &p.decoder {
            DecoderSpec::NanodetGfl(g) => {
                assert_eq!(g.reg_max, 10);
                assert_eq!(g.levels[2].stride, 32);
                assert_eq!(g.levels[1].scores, "s16");
            }
            other => panic!("wrong decoder {other:?}"),
        }
        assert_eq!(
            p.decoder.output_names(),
            ["s8", "b8", "s16", "b16", "s32", "b32"]
        );
        let s = Profile::from_json_str(SSD_JSON).unwrap();
        assert_eq!(s.input.tensor_shape(), [1, 300, 300, 3]);
        match &s.decoder {
            DecoderSpec::Boxes(b) => {
                assert_eq!(b.box_order, BoxOrder::Yxyx);
                assert!(b.normalized);
                assert_eq!(b.count.as_deref(), Some("TFLite_Detection_PostProcess:3"));
            }
            other => panic!("wrong decoder {other:?}"),
        }
        assert_eq!(s.input.mean_or_default(), [0.0; 3]);
        assert_eq!(s.input.std_or_default(), [1.0; 3]);
        // Round trip through serde keeps everything.
        let again = Profile::from_json_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn unknown_fields_are_named_in_the_error() {
        let typo = NANODET_JSON.replace("\"nms_iou\"", "\"nms_iuo\"");
        let e = Profile::from_json_str(&typo).unwrap_err().to_string();
        assert!(e.contains("nms_iuo"), "{e}");
        let typo = NANODET_JSON.replace("\"letterbox_fill\"", "x").replace(
            "\"resize\": \"stretch\"",
            "\"resize\": \"stretch\", \"letterbox_fil\": 3",
        );
        let e = Profile::from_json_str(&typo).unwrap_err().to_string();
        assert!(e.contains("letterbox_fil"), "{e}");
        let typo = NANODET_JSON.replace("\"reg_max\"", "\"regmax\"");
        let e = Profile::from_json_str(&typo).unwrap_err().to_string();
        assert!(e.contains("regmax"), "{e}");
        let typo = NANODET_JSON.replace("nanodet-gfl", "nanodet-glf");
        let e = Profile::from_json_str(&typo).unwrap_err().to_string();
        assert!(e.contains("nanodet-glf"), "{e}");
        let typo = NANODET_JSON.replace("\"NCHW\"", "\"NCWH\"");
        let e = Profile::from_json_str(&typo).unwrap_err().to_string();
        assert!(e.contains("NCWH"), "{e}");
    }

    #[test]
    fn validation_rejects_bad_values() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "\"mean\": [103.53, 116.28, 123.675]",
                "\"mean\": [103.53, 116.28]",
                "input.mean has 2",
            ),
            ("57.12,", "0.0,", "non-zero"),
            (
                "\"labels\": [\"person\", \"bicycle\"]",
                "\"labels\": []",
                "labels",
            ),
            ("\"width\": 416", "\"width\": 0", "input.width"),
            ("\"reg_max\": 10", "\"reg_max\": 0", "reg_max"),
            ("\"scores\": \"s16\"", "\"scores\": \"\"", "levels[1]"),
            (
                "\"default_split\": \"stage2\"",
                "\"default_split\": \"stage9\"",
                "stage9",
            ),
            ("\"stage1\": [\"a/b:0\"]", "\"stage1\": []", "stage1"),
            ("\"stage1\"", "\"st/age1\"", "st/age1"),
            ("\"nms_iou\": 0.6", "\"nms_iou\": 1.5", "nms_iou"),
            (
                "\"max_detections\": 100",
                "\"max_detections\": 0",
                "max_detections",
            ),
        ];
        for (from, to, needle) in cases {
            assert!(NANODET_JSON.contains(from), "case source missing: {from}");
            let bad = NANODET_JSON.replacen(from, to, 1);
            let e = Profile::from_json_str(&bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{to}: {e}");
        }
        // Boxes decoder: table and boxes together, or neither.
        let both = SSD_JSON.replace("\"box_order\"", "\"table\": \"t\", \"box_order\"");
        assert!(
            Profile::from_json_str(&both)
                .unwrap_err()
                .to_string()
                .contains("table")
        );
        let neither = SSD_JSON.replace("\"boxes\": \"TFLite_Detection_PostProcess\",", "");
        assert!(
            Profile::from_json_str(&neither)
                .unwrap_err()
                .to_string()
                .contains("boxes")
        );
        // u8 input with a real normalization is contradictory.
        let u8_mean = SSD_JSON.replace(
            "\"dtype\": \"u8\",",
            "\"dtype\": \"u8\", \"mean\": [1,2,3],",
        );
        assert!(
            Profile::from_json_str(&u8_mean)
                .unwrap_err()
                .to_string()
                .contains("u8")
        );
    }

    #[test]
    fn sidecar_path_and_load() {
        assert_eq!(
            Profile::sidecar_path("models/nanodet.onnx"),
            PathBuf::from("models/nanodet.profile.json")
        );
        assert_eq!(
            Profile::sidecar_path("/a/b/ssd_mobilenet_v2_coco_quant.onnx"),
            PathBuf::from("/a/b/ssd_mobilenet_v2_coco_quant.profile.json")
        );
        let dir = std::env::temp_dir().join(format!("fmap-profile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.profile.json");
        std::fs::write(&path, NANODET_JSON).unwrap();
        let p = Profile::load_for_model(dir.join("m.onnx")).unwrap();
        assert_eq!(p.name, "nanodet");
        std::fs::write(&path, NANODET_JSON.replace("\"width\"", "\"widht\"")).unwrap();
        let e = Profile::load(&path).unwrap_err().to_string();
        assert!(e.contains("m.profile.json") && e.contains("widht"), "{e}");
        let missing = Profile::load(dir.join("absent.profile.json")).unwrap_err();
        assert!(matches!(missing, InferError::Io { .. }));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn split_specs_resolve() {
        let p = Profile::from_json_str(NANODET_JSON).unwrap();
        assert_eq!(p.resolve_split("none"), SplitSpec::None);
        assert_eq!(p.resolve_split(" NONE "), SplitSpec::None);
        assert_eq!(
            p.resolve_split("stage1"),
            SplitSpec::Tensors(vec!["a/b:0".into()])
        );
        assert_eq!(
            p.resolve_split("backbone"),
            SplitSpec::Tensors(vec!["c/d:0".into(), "e:0".into(), "f:0".into()])
        );
        assert_eq!(
            p.resolve_split("x/y:0, z:0,"),
            SplitSpec::Tensors(vec!["x/y:0".into(), "z:0".into()])
        );
        // Unknown words go to the splitter, which reports them with the graph's names.
        assert_eq!(
            p.resolve_split("stage7"),
            SplitSpec::Tensors(vec!["stage7".into()])
        );
        // Empty means the profile default.
        assert_eq!(
            p.resolve_split(""),
            SplitSpec::Tensors(vec!["c/d:0".into()])
        );
        assert_eq!(p.split_point_names(), ["backbone", "stage1", "stage2"]);
        assert_eq!(
            p.split_point_names_joined(),
            "none, backbone, stage1, stage2"
        );
        assert!(p.is_named_split("stage2") && !p.is_named_split("stage7"));
        assert!(is_tensor_name("a:0") && is_tensor_name("a/b") && !is_tensor_name("stage1"));
        assert_eq!(
            SplitSpec::Tensors(vec!["a".into(), "b".into()]).to_string(),
            "a,b"
        );
    }
}
