//! The properties every ONNX element (`splitinfer-front`, `splitinfer-back`) has — `model`,
//! `profile`, `threads`, `ort-library` — declared and documented once. An element keeps an
//! [`OnnxSettings`] next to its own settings, lists [`OnnxSettings::properties`] first among its
//! properties, and hands the shared names to [`OnnxSettings::set_property`] and
//! [`OnnxSettings::property`].

use gst::glib;
use gst::prelude::*;

/// ONNX Runtime intra-op threads unless the `threads` property says otherwise.
pub const DEFAULT_THREADS: u32 = 2;
/// Largest accepted `threads`.
pub const MAX_THREADS: u32 = 64;

/// Values of the shared ONNX element properties ("" = unset for the strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxSettings {
    /// Path of the ONNX model (required).
    pub model: String,
    /// Path of the model profile JSON; "" = the sidecar `<model>.profile.json`.
    pub profile: String,
    /// ONNX Runtime intra-op threads.
    pub threads: u32,
    /// Path of `libonnxruntime.so`; "" = search.
    pub ort_library: String,
}

impl Default for OnnxSettings {
    fn default() -> Self {
        OnnxSettings {
            model: String::new(),
            profile: String::new(),
            threads: DEFAULT_THREADS,
            ort_library: String::new(),
        }
    }
}

impl OnnxSettings {
    /// The shared property specifications, with their documentation.
    pub fn properties() -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb(
                    "Path of the ONNX detection model (required; splitinfer-front and \
                     splitinfer-back must load the same file, checked by its SHA-256)",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("profile")
                .nick("Profile")
                .blurb(
                    "Path of the model profile JSON; empty = the sidecar \
                     <model without .onnx>.profile.json",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("threads")
                .nick("Threads")
                .blurb("ONNX Runtime intra-op threads")
                .minimum(1)
                .maximum(MAX_THREADS)
                .default_value(DEFAULT_THREADS)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("ort-library")
                .nick("ONNX Runtime library")
                .blurb(
                    "Path of libonnxruntime.so (>= 1.22); empty = $ORT_DYLIB_PATH, then \
                     .venv/lib/python3*/site-packages/onnxruntime/capi/ in the current \
                     directory or a parent, then python3's onnxruntime package. One library \
                     per process; splitinfer-back does not load it for a split-at=none stream",
                )
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets a shared property; `false` if `pspec` is not one of them.
    pub fn set_property(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool {
        let text = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        match pspec.name() {
            "model" => self.model = text(),
            "profile" => self.profile = text(),
            "threads" => self.threads = value.get().expect("type checked upstream"),
            "ort-library" => self.ort_library = text(),
            _ => return false,
        }
        true
    }

    /// The value of a shared property; `None` if `pspec` is not one of them.
    pub fn property(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        Some(match pspec.name() {
            "model" => self.model.to_value(),
            "profile" => self.profile.to_value(),
            "threads" => self.threads.to_value(),
            "ort-library" => self.ort_library.to_value(),
            _ => return None,
        })
    }
}
