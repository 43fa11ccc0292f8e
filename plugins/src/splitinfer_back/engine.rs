//! The back half of a split detector as a plain value: feature frame in, detections out.

use std::path::PathBuf;

use codec_core::{FeatureFrame, Tensor, TensorData};
use fmap_infer::decode::{Detection, NamedOutputs, OutputDecoder};
use fmap_infer::preprocess::ResizeMapping;
use fmap_infer::runtime::{ElemType, Session, from_codec_tensor};
use fmap_infer::split::split_with_shapes;

use crate::common::caps::{FmapCaps, SPLIT_NONE};
use crate::common::model::{self, ModelFile, SetupError};
use crate::common::onnx_settings::OnnxSettings;

/// Decoding parameters; `None` = the profile's value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    pub score: Option<f32>,
    pub nms_iou: Option<f32>,
    pub max_detections: Option<usize>,
}

/// The part of the back that depends on the incoming stream.
struct Stream {
    caps: FmapCaps,
    mapping: ResizeMapping,
    /// The back part of the model; `None` when the stream carries the network outputs.
    session: Option<Session>,
}

/// A loaded back: the model file, its decoder, and (once the stream is known) the session.
pub struct BackEngine {
    pub model: ModelFile,
    decoder: OutputDecoder,
    thresholds: Thresholds,
    threads: usize,
    stream: Option<Stream>,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedFrame {
    pub index: u64,
    pub pts_ns: Option<u64>,
    pub detections: Vec<Detection>,
}

impl BackEngine {
    /// Loads the model and its profile (no ONNX Runtime yet: a stream of network outputs
    /// needs none).
    pub fn open(onnx: &OnnxSettings, thresholds: Thresholds) -> Result<BackEngine, SetupError> {
        let model = ModelFile::load(&onnx.model, &onnx.profile)?;
        let decoder = OutputDecoder::from_profile(&model.profile)
            .map_err(|e| SetupError::from_infer("building the output decoder", e))?;
        Ok(BackEngine {
            model,
            decoder,
            thresholds,
            threads: (onnx.threads as usize).max(1),
            stream: None,
        })
    }

    /// The stream this engine is configured for.
    pub fn stream_caps(&self) -> Option<&FmapCaps> {
        self.stream.as_ref().map(|s| &s.caps)
    }

    /// Checks that the stream was made from this model with a cut this model can continue
    /// from, and creates the back session. Returns the ONNX Runtime library path when one
    /// was loaded. Configuring again with the same caps keeps the session.
    pub fn configure(
        &mut self,
        caps: &FmapCaps,
        ort_library: &str,
    ) -> Result<Option<PathBuf>, SetupError> {
        let mapping = self.mapping(caps);
        if let Some(s) = self.stream.as_mut()
            && s.caps.model == caps.model
            && s.caps.split == caps.split
            && s.caps.cut == caps.cut
            && s.caps.resize == caps.resize
            && (s.caps.input_width, s.caps.input_height) == (caps.input_width, caps.input_height)
        {
            // Same model and cut (e.g. only the video size changed): keep the session.
            s.caps = caps.clone();
            s.mapping = mapping;
            return Ok(None);
        }
        let p = &self.model.profile;
        if caps.model != self.model.hash {
            return Err(SetupError::Model(format!(
                "the feature stream was produced by a different model (sha256 prefix {}, split \
                 '{}') than this element loaded: {} (sha256 prefix {}); give splitinfer-front \
                 and splitinfer-back the same model file",
                caps.model,
                caps.split,
                self.model.path.display(),
                self.model.hash
            )));
        }
        let profile_resize = p.input.resize;
        if (caps.input_width, caps.input_height, caps.resize)
            != (p.input.width, p.input.height, profile_resize)
        {
            return Err(SetupError::Model(format!(
                "the front resized frames to {}x{} ({}) but the profile {} says {}x{} ({}); give \
                 both elements the same profile",
                caps.input_width,
                caps.input_height,
                caps.resize.as_str(),
                self.model.profile_path.display(),
                p.input.width,
                p.input.height,
                profile_resize.as_str()
            )));
        }
        let mut ort_path = None;
        let session = if caps.split == SPLIT_NONE {
            let needed = self.decoder.output_names();
            if let Some(missing) = needed.iter().find(|n| !caps.cut.contains(n)) {
                return Err(SetupError::Model(format!(
                    "the stream carries the network outputs {} but the decoder needs '{missing}'",
                    caps.cut.join(", ")
                )));
            }
            None
        } else {
            ort_path = Some(model::init_runtime(ort_library)?);
            let parts =
                split_with_shapes(&self.model.bytes, &caps.cut, self.threads).map_err(|e| {
                    SetupError::from_infer("splitting the model at the stream's cut", e)
                })?;
            let mut got = parts.cut.clone();
            let mut want = caps.cut.clone();
            got.sort();
            want.sort();
            if got != want {
                return Err(SetupError::Model(format!(
                    "the stream carries the tensors {} but cutting {} there needs {}",
                    caps.cut.join(", "),
                    self.model.path.display(),
                    parts.cut.join(", ")
                )));
            }
            Some(
                Session::from_memory(&parts.back, self.threads)
                    .map_err(|e| SetupError::from_infer("creating the back session", e))?,
            )
        };
        self.stream = Some(Stream {
            caps: caps.clone(),
            mapping,
            session,
        });
        Ok(ort_path)
    }

    fn mapping(&self, caps: &FmapCaps) -> ResizeMapping {
        ResizeMapping::new(&self.model.profile.input, caps.width, caps.height)
    }

    /// Runs the back part (if any) and the decoder on one raw feature frame.
    pub fn process(&mut self, raw: &[u8]) -> Result<DecodedFrame, ProcessError> {
        let thresholds = self.thresholds;
        let profile = &self.model.profile;
        let score = thresholds.score.unwrap_or(profile.score_threshold);
        let iou = thresholds.nms_iou.unwrap_or(profile.nms_iou);
        let max = thresholds.max_detections.unwrap_or(profile.max_detections);
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| "no stream caps received before the first frame".to_string())?;
        let frame = FeatureFrame::from_raw(raw)
            .map_err(|e| ProcessError::Corrupt(format!("bad feature frame: {e}")))?;
        let mut names: Vec<&str> = frame.tensors.iter().map(|t| t.name.as_str()).collect();
        let mut want: Vec<&str> = stream.caps.cut.iter().map(String::as_str).collect();
        names.sort_unstable();
        want.sort_unstable();
        if names != want {
            return Err(ProcessError::Fatal(format!(
                "frame {} carries the tensors [{}] but the stream caps announce [{}]",
                frame.index,
                names.join(", "),
                want.join(", ")
            )));
        }
        let outputs: NamedOutputs = match stream.session.as_mut() {
            None => frame
                .tensors
                .iter()
                .map(|t| {
                    let s = t.shape;
                    (
                        t.name.clone(),
                        (vec![s.channels, s.height, s.width], t.to_f32()),
                    )
                })
                .collect(),
            Some(session) => {
                let mut inputs = Vec::with_capacity(session.inputs().len());
                for info in session.inputs() {
                    let t = frame
                        .tensor(&info.name)
                        .ok_or_else(|| format!("frame lacks the back input '{}'", info.name))?;
                    let t = adapt_dtype(t, info.elem_type)?;
                    let v = from_codec_tensor(&t, Some(&info.dims)).map_err(|e| e.to_string())?;
                    inputs.push((info.name.clone(), v));
                }
                session
                    .run(inputs)
                    .map_err(|e| format!("back network: {e}"))?
                    .into_iter()
                    .map(|(name, v)| (name, (v.shape, v.data.to_f32())))
                    .collect()
            }
        };
        let detections = self
            .decoder
            .decode(&outputs, &stream.mapping, score, iou, max)
            .map_err(|e| e.to_string())?;
        Ok(DecodedFrame {
            index: frame.index,
            pts_ns: frame.pts_ns,
            detections,
        })
    }
}

/// Why a frame produced no detections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    /// The bytes are not a feature frame (damaged on the way): drop this frame, keep going.
    Corrupt(String),
    /// The frame or the stream does not fit the loaded model: nothing later can work either.
    Fatal(String),
}

impl From<String> for ProcessError {
    fn from(msg: String) -> Self {
        ProcessError::Fatal(msg)
    }
}

/// A received tensor in the element type the back model reads: 8-bit codes are dequantized
/// for a float input; float data cannot feed an 8-bit input.
fn adapt_dtype(t: &Tensor, want: ElemType) -> Result<Tensor, String> {
    match (&t.data, want) {
        (TensorData::F32(_), ElemType::F32) | (TensorData::U8 { .. }, ElemType::U8) => {
            Ok(t.clone())
        }
        (TensorData::U8 { .. }, ElemType::F32) => {
            Tensor::from_f32(t.name.clone(), t.shape, t.to_f32()).map_err(|e| e.to_string())
        }
        (data, want) => Err(format!(
            "tensor '{}' arrives as {} but the back model reads {}",
            t.name,
            data.dtype_name(),
            want.name()
        )),
    }
}
