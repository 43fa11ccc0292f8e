//! The front half of a split detector as a plain value: video frame in, feature frame out.

use codec_core::FeatureFrame;
use fmap_infer::onnx::Model;
use fmap_infer::preprocess::{Preprocessor, VideoFrameRef};
use fmap_infer::profile::SplitSpec;
use fmap_infer::runtime::{Session, to_codec_tensor};
use fmap_infer::split::{quant_params_for, split_with_shapes};

use crate::common::caps::FmapCaps;
use crate::common::model::{self, ModelFile, SetupError};
use crate::common::onnx_settings::OnnxSettings;

/// A loaded front: preprocessing, the front part of the model, and the cut description.
pub struct FrontEngine {
    pub model: ModelFile,
    /// `none`, a split point name, or `custom`.
    pub split_name: String,
    /// Tensors emitted per frame, in order (the network outputs for `none`).
    pub cut: Vec<String>,
    /// Requested tensors the splitter added or dropped (for the log).
    pub added: Vec<String>,
    pub dropped: Vec<String>,
    /// Scale and zero point of each cut tensor of a quantized model.
    pub quant: Vec<Option<(f32, i32)>>,
    preprocessor: Preprocessor,
    session: Session,
}

impl std::fmt::Debug for FrontEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontEngine")
            .field("model", &self.model.path)
            .field("split", &self.split_name)
            .field("cut", &self.cut)
            .finish()
    }
}

impl FrontEngine {
    /// Loads the model and profile, loads ONNX Runtime, splits the model at `split_at` (see
    /// [`ModelFile::resolve_split`]) and creates the session. Returns the engine and the ONNX
    /// Runtime library path.
    pub fn open(
        onnx: &OnnxSettings,
        split_at: &str,
    ) -> Result<(FrontEngine, std::path::PathBuf), SetupError> {
        let model = ModelFile::load(&onnx.model, &onnx.profile)?;
        let (split_name, spec) = model.resolve_split(split_at)?;
        let ort_path = model::init_runtime(&onnx.ort_library)?;
        let preprocessor = Preprocessor::new(&model.profile.input)
            .map_err(|e| SetupError::from_infer("model profile input", e))?;
        let threads = (onnx.threads as usize).max(1);
        let (session, cut, added, dropped) = match &spec {
            SplitSpec::None => {
                let session = Session::from_memory(&model.bytes, threads)
                    .map_err(|e| SetupError::from_infer("creating the session", e))?;
                let cut = session.outputs().iter().map(|o| o.name.clone()).collect();
                (session, cut, vec![], vec![])
            }
            SplitSpec::Tensors(tensors) => {
                let parts = split_with_shapes(&model.bytes, tensors, threads).map_err(|e| {
                    let names = model.profile.split_point_names_joined();
                    let mut err = SetupError::from_infer(
                        &format!("splitting {} at '{split_at}'", model.path.display()),
                        e,
                    );
                    if let SetupError::Settings(m) = &mut err {
                        m.push_str(&format!(" (named split points: {names})"));
                    }
                    err
                })?;
                let session = Session::from_memory(&parts.front, threads)
                    .map_err(|e| SetupError::from_infer("creating the front session", e))?;
                (session, parts.cut, parts.added, parts.dropped)
            }
        };
        let graph = Model::parse(&model.bytes)
            .map_err(|e| SetupError::from_infer("reading the model graph", e))?
            .graph;
        let quant = cut.iter().map(|t| quant_params_for(&graph, t)).collect();
        let engine = FrontEngine {
            model,
            split_name,
            cut,
            added,
            dropped,
            quant,
            preprocessor,
            session,
        };
        Ok((engine, ort_path))
    }

    /// Caps of the stream this front produces for `width` x `height` video.
    pub fn caps(&self, width: u32, height: u32, framerate: gst::Fraction) -> FmapCaps {
        let input = &self.model.profile.input;
        FmapCaps {
            model: self.model.hash.clone(),
            cut: self.cut.clone(),
            split: self.split_name.clone(),
            width,
            height,
            framerate,
            resize: input.resize,
            input_width: input.width,
            input_height: input.height,
        }
    }

    /// Runs the front on one frame.
    pub fn process(
        &mut self,
        frame: &VideoFrameRef,
        index: u64,
        pts_ns: Option<u64>,
    ) -> Result<FeatureFrame, String> {
        let (input, _mapping) = self
            .preprocessor
            .prepare(frame)
            .map_err(|e| format!("preprocessing: {e}"))?;
        let outputs = self
            .session
            .run(vec![input.into_named_value()])
            .map_err(|e| format!("front network: {e}"))?;
        let mut tensors = Vec::with_capacity(self.cut.len());
        for (name, quant) in self.cut.iter().zip(&self.quant) {
            let (_, value) = outputs
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| format!("the front network did not produce '{name}'"))?;
            tensors.push(to_codec_tensor(name, value, *quant).map_err(|e| e.to_string())?);
        }
        Ok(FeatureFrame::new(index, pts_ns, tensors))
    }
}
