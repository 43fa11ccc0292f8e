//! Finding and loading the ONNX Runtime shared library (`ort` with `load-dynamic`), once per
//! process.
//!
//! The library is located, in this order, by: an explicit path (an element property), the
//! `ORT_DYLIB_PATH` environment variable, a `.venv` (with the `onnxruntime` wheel) in the
//! current directory or one of its parents, and the site-packages of `python3`'s `onnxruntime`.
//! Paths are made absolute before they reach `ort` (a relative path would be resolved against
//! the executable's folder). A missing or invalid library is an error, never a panic.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{InferError, Result};

/// The oldest ONNX Runtime the `api-22` feature of `ort` accepts.
pub const MIN_ORT_VERSION: &str = "1.22";

const HOW_TO_FIX: &str = "set ORT_DYLIB_PATH to the absolute path of libonnxruntime.so \
    (ONNX Runtime >= 1.22, e.g. .venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0 \
    from `pip install onnxruntime==1.32.0`), or set the element property ort-library to it, \
    or run scripts/setup.sh, which creates .venv with onnxruntime";

pub(super) struct LoadedRuntime {
    path: PathBuf,
    // Keeps the one ONNX Runtime environment of the process alive; sessions use it.
    pub(super) env: ort::environment::Environment,
}

static RUNTIME: Mutex<Option<Arc<LoadedRuntime>>> = Mutex::new(None);

pub(super) fn loaded() -> Option<Arc<LoadedRuntime>> {
    RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Loads ONNX Runtime once per process and returns the absolute path of the library in use.
///
/// Later calls return the path already loaded. A later call with an explicit path naming a
/// different file is an error (one process can hold only one ONNX Runtime); with `None` it
/// simply returns the loaded path. A failed attempt can be retried with another path.
pub fn init_runtime(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = guard.as_ref() {
        if let Some(p) = explicit {
            let same = std::fs::canonicalize(p).is_ok_and(|c| c == rt.path);
            if !same {
                return Err(InferError::Runtime(format!(
                    "ONNX Runtime is already loaded in this process from {}; cannot also load {} \
                     (use the same library for every element)",
                    rt.path.display(),
                    p.display()
                )));
            }
        }
        return Ok(rt.path.clone());
    }
    let path = locate_library(explicit)?;
    let env = load(&path)?;
    *guard = Some(Arc::new(LoadedRuntime {
        path: path.clone(),
        env,
    }));
    Ok(path)
}

/// The path of the loaded library, if [`init_runtime`] succeeded.
pub fn runtime_path() -> Option<PathBuf> {
    loaded().map(|rt| rt.path.clone())
}

fn load(path: &Path) -> Result<ort::environment::Environment> {
    let shown = path.display().to_string();
    let attempt = catch_unwind(|| -> std::result::Result<_, String> {
        let builder = ort::init_from(path).map_err(|e| e.to_string())?;
        builder
            .with_name("fmap")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    });
    match attempt {
        Ok(Ok(env)) => Ok(env),
        Ok(Err(e)) => Err(InferError::RuntimeNotFound(format!(
            "cannot load {shown}: {e}; {HOW_TO_FIX}"
        ))),
        Err(_) => Err(InferError::RuntimeNotFound(format!(
            "loading {shown} failed (ort panicked); {HOW_TO_FIX}"
        ))),
    }
}

/// Resolves the library path without loading it (see the module documentation for the order).
pub fn locate_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return existing_file(p, "the explicitly given ONNX Runtime library");
    }
    if let Some(v) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return existing_file(Path::new(&v), "ORT_DYLIB_PATH");
    }
    let mut searched = vec!["ORT_DYLIB_PATH (not set)".to_string()];
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if let Some(found) = find_in_venv(&dir.join(".venv")) {
                return Ok(found);
            }
        }
        searched.push(format!("{}/.venv and its parents' .venv", cwd.display()));
    }
    match python_onnxruntime_dir() {
        Some(dir) => {
            if let Some(found) = find_in_capi(&dir.join("capi")) {
                return Ok(found);
            }
            searched.push(format!("{}/capi", dir.display()));
        }
        None => searched.push("python3's onnxruntime package (not importable)".into()),
    }
    Err(InferError::RuntimeNotFound(format!(
        "searched {}; {HOW_TO_FIX}",
        searched.join(", ")
    )))
}

fn existing_file(p: &Path, what: &str) -> Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    match std::fs::canonicalize(&abs) {
        Ok(c) if c.is_file() => Ok(c),
        Ok(c) => Err(InferError::RuntimeNotFound(format!(
            "{what}: {} is not a file; {HOW_TO_FIX}",
            c.display()
        ))),
        Err(e) => Err(InferError::RuntimeNotFound(format!(
            "{what}: {}: {e}; {HOW_TO_FIX}",
            abs.display()
        ))),
    }
}

/// The entries of `dir` whose file name satisfies `keep`; `None` if `dir` cannot be read.
fn entries_named(dir: &Path, keep: impl Fn(&str) -> bool) -> Option<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
            .collect(),
    )
}

fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let mut dirs = entries_named(&venv.join("lib"), |n| n.starts_with("python3"))?;
    dirs.sort();
    dirs.iter()
        .rev()
        .find_map(|d| find_in_capi(&d.join("site-packages/onnxruntime/capi")))
}

/// `libonnxruntime.so.<version>` (preferred) or `libonnxruntime.so` in a wheel's capi folder.
fn find_in_capi(capi: &Path) -> Option<PathBuf> {
    let mut libs = entries_named(capi, |n| {
        n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib"
    })?;
    libs.retain(|p| p.is_file());
    libs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    libs.into_iter()
        .next()
        .and_then(|p| std::fs::canonicalize(p).ok())
}

fn python_onnxruntime_dir() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(s.trim());
    dir.is_absolute().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_library_is_an_error() {
        // Resolution only: does not touch the process-wide runtime.
        let err = locate_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, InferError::RuntimeNotFound(_)));
        assert!(
            msg.contains("ORT_DYLIB_PATH") && msg.contains("scripts/setup.sh"),
            "{msg}"
        );
    }
}
