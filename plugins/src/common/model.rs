//! What splitinfer-front and splitinfer-back share: loading a model file and its profile,
//! naming the model by a hash of its bytes, resolving the `split-at` request, loading ONNX
//! Runtime, and turning fmap-infer errors into element errors a user can act on.

use std::path::PathBuf;

use fmap_infer::profile::{Profile, SplitSpec, is_tensor_name};
use sha2::{Digest, Sha256};

use crate::common::caps::{SPLIT_CUSTOM, SPLIT_NONE};

/// Hex digits of the SHA-256 kept as the model identity in caps (64 bits).
pub const MODEL_HASH_HEX_DIGITS: usize = 16;

/// Why an element cannot start, by the GStreamer error domain it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupError {
    /// A property value is wrong (unknown split name, empty model path, ...).
    Settings(String),
    /// A file is missing or unreadable.
    NotFound(String),
    /// ONNX Runtime could not be loaded.
    Runtime(String),
    /// The model or profile is unusable, or the stream does not fit the model.
    Model(String),
}

impl SetupError {
    pub fn message(&self) -> &str {
        match self {
            SetupError::Settings(m)
            | SetupError::NotFound(m)
            | SetupError::Runtime(m)
            | SetupError::Model(m) => m,
        }
    }

    /// Maps an fmap-infer error to the domain the user has to look at.
    pub fn from_infer(context: &str, e: fmap_infer::InferError) -> SetupError {
        use fmap_infer::InferError as E;
        let msg = format!("{context}: {e}");
        match e {
            E::Io { .. } => SetupError::NotFound(msg),
            E::RuntimeNotFound(_) => SetupError::Runtime(msg),
            E::UnknownTensor { .. } | E::NotACut(_) => SetupError::Settings(msg),
            _ => SetupError::Model(msg),
        }
    }
}

impl From<&SetupError> for gst::ErrorMessage {
    /// The element error of a failed setup, in the GStreamer domain that fits.
    fn from(e: &SetupError) -> gst::ErrorMessage {
        match e {
            SetupError::Settings(m) => gst::error_msg!(gst::LibraryError::Settings, ("{m}")),
            SetupError::NotFound(m) => gst::error_msg!(gst::ResourceError::NotFound, ("{m}")),
            SetupError::Runtime(m) => gst::error_msg!(gst::LibraryError::Init, ("{m}")),
            SetupError::Model(m) => gst::error_msg!(gst::LibraryError::Failed, ("{m}")),
        }
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// A model file, its identity and its profile.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// First [`MODEL_HASH_HEX_DIGITS`] hex digits of the SHA-256 of `bytes`.
    pub hash: String,
    pub profile: Profile,
    pub profile_path: PathBuf,
}

/// Hex prefix of the SHA-256 of `bytes`.
pub fn model_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..MODEL_HASH_HEX_DIGITS]
        .to_string()
}

impl ModelFile {
    /// Reads `model` and its profile (`profile`, or the sidecar `<model>.profile.json`).
    pub fn load(model: &str, profile: &str) -> Result<ModelFile, SetupError> {
        if model.trim().is_empty() {
            return Err(SetupError::Settings(
                "no model: set the property model=<path to an .onnx file> (with a \
                 <name>.profile.json next to it, or the property profile=<path>)"
                    .into(),
            ));
        }
        let path = PathBuf::from(model);
        let bytes = std::fs::read(&path).map_err(|e| {
            SetupError::NotFound(format!(
                "cannot read the model file '{}': {e}; set model=<path to an .onnx file>",
                path.display()
            ))
        })?;
        let profile_path = if profile.trim().is_empty() {
            Profile::sidecar_path(&path)
        } else {
            PathBuf::from(profile)
        };
        if !profile_path.is_file() {
            return Err(SetupError::NotFound(format!(
                "no model profile at '{}'; write one (see models/README.md) or set \
                 profile=<path to the .profile.json>",
                profile_path.display()
            )));
        }
        let profile = Profile::load(&profile_path)
            .map_err(|e| SetupError::from_infer("loading the model profile", e))?;
        let hash = model_hash(&bytes);
        Ok(ModelFile {
            path,
            bytes,
            hash,
            profile,
            profile_path,
        })
    }

    /// Resolves a `split-at` value: empty = the profile's default split, `none`, a named
    /// split point, or comma-separated tensor names. Returns the split name for caps
    /// (`none`, the split point's name, or `custom`) and the requested tensors.
    pub fn resolve_split(&self, request: &str) -> Result<(String, SplitSpec), SetupError> {
        let request = request.trim();
        let named = if request.is_empty() {
            self.profile
                .default_split
                .clone()
                .unwrap_or_else(|| SPLIT_NONE.to_string())
        } else {
            request.to_string()
        };
        let spec = self.profile.resolve_split(&named);
        let name = match &spec {
            SplitSpec::None => SPLIT_NONE.to_string(),
            SplitSpec::Tensors(_) if self.profile.split_points.contains_key(&named) => named,
            SplitSpec::Tensors(t) => {
                // A single plain word that is no split point is a typo far more often than
                // a tensor name: name the valid choices.
                if t.len() == 1 && !is_tensor_name(&t[0]) && !named.contains(',') {
                    return Err(SetupError::Settings(format!(
                        "unknown split '{named}' for model {}: valid split names are {}, or \
                         comma-separated tensor names",
                        self.profile.name,
                        self.profile.split_point_names_joined()
                    )));
                }
                SPLIT_CUSTOM.to_string()
            }
        };
        Ok((name, spec))
    }
}

/// The explicit ONNX Runtime library of an `ort-library` property ("" = search).
pub fn ort_library(property: &str) -> Option<PathBuf> {
    let p = property.trim();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// Loads ONNX Runtime (once per process) and returns the library path in use.
pub fn init_runtime(property: &str) -> Result<PathBuf, SetupError> {
    let explicit = ort_library(property);
    fmap_infer::runtime::init_runtime(explicit.as_deref())
        .map_err(|e| SetupError::from_infer("loading ONNX Runtime", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_a_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(model_hash(b"abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn missing_model_and_profile_are_actionable() {
        let e = ModelFile::load("", "").unwrap_err();
        assert!(matches!(e, SetupError::Settings(_)) && e.message().contains("model="));
        let e = ModelFile::load("/nonexistent/m.onnx", "").unwrap_err();
        assert!(matches!(e, SetupError::NotFound(_)));
        assert!(e.message().contains("/nonexistent/m.onnx"), "{e}");

        let dir = std::env::temp_dir().join(format!("fmap-model-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let model = dir.join("m.onnx");
        std::fs::write(&model, b"not really onnx").unwrap();
        let e = ModelFile::load(model.to_str().unwrap(), "").unwrap_err();
        assert!(matches!(e, SetupError::NotFound(_)));
        assert!(e.message().contains("m.profile.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn with_profile() -> ModelFile {
        let profile = Profile::from_json_str(
            r#"{"name":"toy","input":{"name":"x","layout":"NCHW","width":8,"height":8,
                "dtype":"f32","channel_order":"RGB","resize":"stretch"},
                "decoder":{"type":"boxes","boxes":"b","scores":"s"},
                "labels":["a"],"score_threshold":0.3,"nms_iou":0.5,"max_detections":10,
                "split_points":{"early":["t:0"],"late":["u:0","v:0"]},
                "default_split":"late"}"#,
        )
        .unwrap();
        ModelFile {
            path: "toy.onnx".into(),
            bytes: vec![],
            hash: model_hash(b""),
            profile,
            profile_path: "toy.profile.json".into(),
        }
    }

    #[test]
    fn split_requests_resolve_to_names_and_tensors() {
        let m = with_profile();
        let t = |v: &[&str]| SplitSpec::Tensors(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            m.resolve_split("").unwrap(),
            ("late".into(), t(&["u:0", "v:0"]))
        );
        assert_eq!(
            m.resolve_split("early").unwrap(),
            ("early".into(), t(&["t:0"]))
        );
        assert_eq!(
            m.resolve_split("none").unwrap(),
            ("none".into(), SplitSpec::None)
        );
        assert_eq!(
            m.resolve_split("a:0, b/c").unwrap(),
            ("custom".into(), t(&["a:0", "b/c"]))
        );
        let e = m.resolve_split("stage9").unwrap_err();
        assert!(matches!(e, SetupError::Settings(_)));
        assert!(e.message().contains("none, early, late"), "{e}");
    }
}
