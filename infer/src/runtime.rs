//! ONNX Runtime through `ort` with `load-dynamic`: finding and loading the shared library once
//! per process, and a small session wrapper working on plain named tensors.
//!
//! The library is located, in this order, by: an explicit path (an element property), the
//! `ORT_DYLIB_PATH` environment variable, a `.venv` (with the `onnxruntime` wheel) in the
//! current directory or one of its parents, and the site-packages of `python3`'s `onnxruntime`.
//! Paths are made absolute before they reach `ort` (a relative path would be resolved against
//! the executable's folder). A missing or invalid library is an error, never a panic.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use codec_core::frame::{Shape, Tensor, TensorData};

use crate::error::{InferError, Result};
use crate::onnx::Model;
use crate::split::{SplitModels, split_parsed, split_parsed_with_dims};

/// The oldest ONNX Runtime the `api-22` feature of `ort` accepts.
pub const MIN_ORT_VERSION: &str = "1.22";

const HOW_TO_FIX: &str = "set ORT_DYLIB_PATH to the absolute path of libonnxruntime.so \
    (ONNX Runtime >= 1.22, e.g. .venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0 \
    from `pip install onnxruntime==1.32.0`), or set the element property ort-library to it, \
    or run scripts/setup.sh, which creates .venv with onnxruntime";

struct LoadedRuntime {
    path: PathBuf,
    // Keeps the one ONNX Runtime environment of the process alive; sessions use it.
    env: ort::environment::Environment,
}

static RUNTIME: Mutex<Option<Arc<LoadedRuntime>>> = Mutex::new(None);

fn loaded() -> Option<Arc<LoadedRuntime>> {
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

fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3"))
        })
        .collect();
    dirs.sort();
    dirs.iter()
        .rev()
        .find_map(|d| find_in_capi(&d.join("site-packages/onnxruntime/capi")))
}

/// `libonnxruntime.so.<version>` (preferred) or `libonnxruntime.so` in a wheel's capi folder.
fn find_in_capi(capi: &Path) -> Option<PathBuf> {
    let mut libs: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib")
        })
        .filter(|p| p.is_file())
        .collect();
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

// ---------------------------------------------------------------------------------------------
// Tensors

/// Element type of a session input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    U8,
    I8,
    I32,
    I64,
    Bool,
    /// Anything else (not supported by [`Session::run`]).
    Other,
}

impl ElemType {
    fn from_ort(t: ort::value::TensorElementType) -> Self {
        use ort::value::TensorElementType as T;
        match t {
            T::Float32 => ElemType::F32,
            T::Uint8 => ElemType::U8,
            T::Int8 => ElemType::I8,
            T::Int32 => ElemType::I32,
            T::Int64 => ElemType::I64,
            T::Bool => ElemType::Bool,
            _ => ElemType::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::U8 => "u8",
            ElemType::I8 => "i8",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::Bool => "bool",
            ElemType::Other => "other",
        }
    }
}

/// Name, element type and declared shape (-1 = not fixed) of a session input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub elem_type: ElemType,
    pub dims: Vec<i64>,
}

/// The elements of a [`TensorValue`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValueData {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

impl TensorValueData {
    pub fn len(&self) -> usize {
        match self {
            TensorValueData::F32(v) => v.len(),
            TensorValueData::U8(v) => v.len(),
            TensorValueData::I8(v) => v.len(),
            TensorValueData::I32(v) => v.len(),
            TensorValueData::I64(v) => v.len(),
            TensorValueData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn elem_type(&self) -> ElemType {
        match self {
            TensorValueData::F32(_) => ElemType::F32,
            TensorValueData::U8(_) => ElemType::U8,
            TensorValueData::I8(_) => ElemType::I8,
            TensorValueData::I32(_) => ElemType::I32,
            TensorValueData::I64(_) => ElemType::I64,
            TensorValueData::Bool(_) => ElemType::Bool,
        }
    }

    /// Size of the data in bytes.
    pub fn byte_len(&self) -> usize {
        match self {
            TensorValueData::F32(v) => v.len() * 4,
            TensorValueData::U8(v) => v.len(),
            TensorValueData::I8(v) => v.len(),
            TensorValueData::I32(v) => v.len() * 4,
            TensorValueData::I64(v) => v.len() * 8,
            TensorValueData::Bool(v) => v.len(),
        }
    }

    /// The values as f32 (for decoders that accept any numeric output type).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorValueData::F32(v) => v.clone(),
            TensorValueData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorValueData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            TensorValueData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorValueData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorValueData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        }
    }
}

/// A dense tensor: shape (row-major) and elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorValue {
    pub shape: Vec<usize>,
    pub data: TensorValueData,
}

impl TensorValue {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            shape,
            data: TensorValueData::F32(data),
        }
    }

    pub fn u8(shape: Vec<usize>, data: Vec<u8>) -> Self {
        Self {
            shape,
            data: TensorValueData::U8(data),
        }
    }

    fn check(&self, name: &str) -> Result<()> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                InferError::Shape(format!("{name}: shape {:?} overflows", self.shape))
            })?;
        if n != self.data.len() {
            return Err(InferError::Shape(format!(
                "{name}: shape {:?} needs {n} elements, got {}",
                self.shape,
                self.data.len()
            )));
        }
        Ok(())
    }
}

/// Named tensors, in the order of the model's outputs.
pub type NamedTensors = Vec<(String, TensorValue)>;

/// (C, H, W) of an ONNX tensor shape: leading dimensions of size 1 (the batch) are dropped
/// down to rank 3, and ranks below 3 are padded with leading 1s: [1,C,H,W] → (C,H,W),
/// [C,H,W] → (C,H,W), [H,W] → (1,H,W), [N] → (1,1,N). NHWC tensors map the same way
/// ([1,H,W,C] → "(H,W,C)"): the layout is not guessed; [`from_codec_tensor`] restores the exact
/// dimensions the receiving model declares.
pub fn chw_of(shape: &[usize]) -> Result<Shape> {
    let mut dims: &[usize] = shape;
    while dims.len() > 3 && dims[0] == 1 {
        dims = &dims[1..];
    }
    let s = match *dims {
        [c, h, w] => Shape::new(c, h, w),
        [h, w] => Shape::new(1, h, w),
        [n] => Shape::new(1, 1, n),
        [] => Shape::new(1, 1, 1),
        _ => {
            return Err(InferError::Shape(format!(
                "tensor of shape {shape:?} cannot be carried as (C, H, W): it has more than 3 \
                 dimensions besides a batch of 1"
            )));
        }
    };
    Ok(s)
}

/// Converts a model tensor into a codec tensor (see [`chw_of`] for the shape). `quant` gives
/// the scale and zero point of a u8 tensor (see [`crate::split::quant_params_for`]); without it,
/// u8 codes are carried with scale 1 and zero point 0.
pub fn to_codec_tensor(
    name: &str,
    value: &TensorValue,
    quant: Option<(f32, i32)>,
) -> Result<Tensor> {
    value.check(name)?;
    let shape = chw_of(&value.shape)?;
    let t = match &value.data {
        TensorValueData::F32(v) => Tensor::from_f32(name, shape, v.clone()),
        TensorValueData::U8(v) => {
            let (scale, zp) = quant.unwrap_or((1.0, 0));
            Tensor::from_u8(name, shape, v.clone(), scale, zp)
        }
        other => {
            return Err(InferError::Shape(format!(
                "{name}: {} tensors cannot be carried in a feature frame (f32 or u8 only)",
                other.elem_type().name()
            )));
        }
    };
    t.map_err(|e| InferError::Shape(format!("{name}: {e}")))
}

/// Converts a codec tensor into a model input with the dimensions the model declares (`dims`,
/// -1 = free, e.g. from [`Session::inputs`]; `None` or empty = unknown rank). Free dimensions are filled from (C, H, W) as
/// [1,C,H,W] / [C,H,W] / [H,W] / [N]; the declared rank and fixed dimensions must agree with
/// the element count.
pub fn from_codec_tensor(t: &Tensor, dims: Option<&[i64]>) -> Result<TensorValue> {
    // ONNX Runtime reports an input declared without a shape as rank 0: unknown here.
    let dims = dims.filter(|d| !d.is_empty());
    let s = t.shape;
    let n = s
        .checked_len()
        .ok_or_else(|| InferError::Shape(format!("{}: shape {s} overflows", t.name)))?;
    let default: Vec<usize> = match dims.map(<[i64]>::len) {
        Some(1) => vec![n],
        Some(2) if s.channels == 1 => vec![s.height, s.width],
        Some(3) => vec![s.channels, s.height, s.width],
        _ => vec![1, s.channels, s.height, s.width],
    };
    let shape = match dims {
        Some(d) if d.len() == default.len() => {
            let fixed: Vec<usize> = d
                .iter()
                .zip(&default)
                .map(|(&want, &have)| if want >= 0 { want as usize } else { have })
                .collect();
            let product = fixed.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
            if product != Some(n) {
                return Err(InferError::Shape(format!(
                    "{}: received {s} ({n} elements) but the model expects {d:?}",
                    t.name
                )));
            }
            fixed
        }
        Some(d) if d.iter().all(|&x| x >= 0) => {
            let fixed: Vec<usize> = d.iter().map(|&x| x as usize).collect();
            if fixed.iter().try_fold(1usize, |a, &x| a.checked_mul(x)) != Some(n) {
                return Err(InferError::Shape(format!(
                    "{}: received {s} ({n} elements) but the model expects {d:?}",
                    t.name
                )));
            }
            fixed
        }
        Some(d) => {
            return Err(InferError::Shape(format!(
                "{}: received {s} but the model expects rank {} {d:?}",
                t.name,
                d.len()
            )));
        }
        None => default,
    };
    let data = match &t.data {
        TensorData::F32(v) => TensorValueData::F32(v.clone()),
        TensorData::U8 { codes, .. } => TensorValueData::U8(codes.clone()),
    };
    let v = TensorValue { shape, data };
    v.check(&t.name)?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Splitting with exact boundary shapes

/// Splits a model like [`crate::split::split_model`] and declares the exact shape of every cut
/// tensor in both parts, found by running the front part once on an all-zero input (free input
/// dimensions taken as 1). Costs one front inference at setup; the back part then reports its
/// input shapes through [`Session::inputs`], which [`from_codec_tensor`] uses to restore the
/// exact dimensions (whatever the layout) of received (C, H, W) tensors.
pub fn split_with_shapes(
    model_bytes: &[u8],
    cut: &[String],
    threads: usize,
) -> Result<SplitModels> {
    let model = Model::parse(model_bytes)?;
    let split = split_parsed(&model, cut)?;
    let mut front = Session::from_memory(&split.front, threads)?;
    let inputs = front
        .inputs()
        .iter()
        .map(|info| Ok((info.name.clone(), zeros(info)?)))
        .collect::<Result<Vec<_>>>()?;
    let outputs = front.run(inputs)?;
    let dims: HashMap<String, Vec<i64>> = outputs
        .into_iter()
        .map(|(name, v)| (name, v.shape.iter().map(|&d| d as i64).collect()))
        .collect();
    split_parsed_with_dims(&model, cut, &dims)
}

/// An all-zero tensor matching a session input (free dimensions = 1).
fn zeros(info: &TensorInfo) -> Result<TensorValue> {
    if info.dims.is_empty() {
        return Err(InferError::Shape(format!(
            "model input '{}' declares no shape; cannot build a probe input",
            info.name
        )));
    }
    let shape: Vec<usize> = info
        .dims
        .iter()
        .map(|&d| if d > 0 { d as usize } else { 1 })
        .collect();
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= codec_core::frame::MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| InferError::Shape(format!("model input '{}' is too large", info.name)))?;
    let data = match info.elem_type {
        ElemType::F32 => TensorValueData::F32(vec![0.0; n]),
        ElemType::U8 => TensorValueData::U8(vec![0; n]),
        ElemType::I8 => TensorValueData::I8(vec![0; n]),
        ElemType::I32 => TensorValueData::I32(vec![0; n]),
        ElemType::I64 => TensorValueData::I64(vec![0; n]),
        ElemType::Bool => TensorValueData::Bool(vec![false; n]),
        ElemType::Other => {
            return Err(InferError::Shape(format!(
                "model input '{}' has an unsupported element type",
                info.name
            )));
        }
    };
    Ok(TensorValue { shape, data })
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// How a [`Session`] uses the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Intra-op threads (at least 1). Inter-op parallelism is always off.
    pub threads: usize,
    /// Whether idle intra-op threads spin before sleeping (ONNX Runtime's default). Off by
    /// default here: in a pipeline the other elements (decoders, codecs, RTP) share the same
    /// few cores, and spinning threads take CPU time from them without doing work.
    pub spinning: bool,
}

impl SessionOptions {
    pub fn new(threads: usize) -> Self {
        Self {
            threads,
            spinning: false,
        }
    }
}

/// An ONNX Runtime inference session with fixed thread counts.
pub struct Session {
    inner: ort::session::Session,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

fn rt_err(what: &str, e: impl std::fmt::Display) -> InferError {
    InferError::Runtime(format!("{what}: {e}"))
}

fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(InferError::Runtime(format!("{what}: ort panicked"))))
}

fn outlet_info(o: &ort::value::Outlet) -> TensorInfo {
    match o.dtype() {
        ort::value::ValueType::Tensor { ty, shape, .. } => TensorInfo {
            name: o.name().to_string(),
            elem_type: ElemType::from_ort(*ty),
            dims: shape.iter().copied().collect(),
        },
        _ => TensorInfo {
            name: o.name().to_string(),
            elem_type: ElemType::Other,
            dims: Vec::new(),
        },
    }
}

impl Session {
    /// Creates a session from model bytes. `threads` is the intra-op thread count (at least 1);
    /// inter-op parallelism is off. Loads ONNX Runtime with [`init_runtime`]`(None)` if needed.
    pub fn from_memory(model: &[u8], threads: usize) -> Result<Session> {
        Self::from_memory_with(model, SessionOptions::new(threads))
    }

    /// Creates a session from model bytes with explicit [`SessionOptions`].
    pub fn from_memory_with(model: &[u8], options: SessionOptions) -> Result<Session> {
        Self::create(options, |b| {
            b.commit_from_memory(model)
                .map_err(|e| rt_err("loading the model", e))
        })
    }

    /// Creates a session from a model file (see [`Session::from_memory`]).
    pub fn from_file(path: &Path, threads: usize) -> Result<Session> {
        let bytes = std::fs::read(path).map_err(|source| InferError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_memory(&bytes, threads)
    }

    fn create(
        options: SessionOptions,
        commit: impl FnOnce(&mut ort::session::builder::SessionBuilder) -> Result<ort::session::Session>,
    ) -> Result<Session> {
        let rt = match loaded() {
            Some(rt) => rt,
            None => {
                init_runtime(None)?;
                loaded().ok_or_else(|| InferError::Runtime("runtime not initialized".into()))?
            }
        };
        guarded("creating a session", || {
            let mut builder = ort::session::Session::builder(&rt.env)
                .map_err(|e| rt_err("session builder", e))?
                .with_intra_threads(options.threads.max(1))
                .map_err(|e| rt_err("intra-op threads", e))?
                .with_intra_op_spinning(options.spinning)
                .map_err(|e| rt_err("intra-op spinning", e))?
                .with_inter_threads(1)
                .map_err(|e| rt_err("inter-op threads", e))?
                .with_parallel_execution(false)
                .map_err(|e| rt_err("sequential execution", e))?;
            let inner = commit(&mut builder)?;
            let inputs = inner.inputs().iter().map(outlet_info).collect();
            let outputs = inner.outputs().iter().map(outlet_info).collect();
            Ok(Session {
                inner,
                inputs,
                outputs,
            })
        })
    }

    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// Runs the model. Every model input must be given once, with its element type; outputs are
    /// returned in the model's output order.
    pub fn run(&mut self, inputs: Vec<(String, TensorValue)>) -> Result<NamedTensors> {
        for (name, value) in &inputs {
            let Some(info) = self.inputs.iter().find(|i| &i.name == name) else {
                let valid: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(InferError::Shape(format!(
                    "'{name}' is not an input of the model; inputs: {}",
                    valid.join(", ")
                )));
            };
            value.check(name)?;
            if info.elem_type != value.data.elem_type() {
                return Err(InferError::Shape(format!(
                    "input '{name}' is {} but the model expects {}",
                    value.data.elem_type().name(),
                    info.elem_type.name()
                )));
            }
        }
        if let Some(missing) = self
            .inputs
            .iter()
            .find(|i| !inputs.iter().any(|(n, _)| n == &i.name))
        {
            return Err(InferError::Shape(format!(
                "model input '{}' not given",
                missing.name
            )));
        }
        let output_names: Vec<String> = self.outputs.iter().map(|o| o.name.clone()).collect();
        let inner = &mut self.inner;
        guarded("running the model", move || {
            let mut values: Vec<(String, ort::session::SessionInputValue<'static>)> =
                Vec::with_capacity(inputs.len());
            for (name, value) in inputs {
                let shape: Vec<i64> = value.shape.iter().map(|&d| d as i64).collect();
                let v: ort::session::SessionInputValue<'static> = match value.data {
                    TensorValueData::F32(d) => ort_tensor(shape, d)?,
                    TensorValueData::U8(d) => ort_tensor(shape, d)?,
                    TensorValueData::I8(d) => ort_tensor(shape, d)?,
                    TensorValueData::I32(d) => ort_tensor(shape, d)?,
                    TensorValueData::I64(d) => ort_tensor(shape, d)?,
                    TensorValueData::Bool(d) => ort_tensor(shape, d)?,
                };
                values.push((name, v));
            }
            let outputs = inner.run(values).map_err(|e| rt_err("run", e))?;
            let mut result = Vec::with_capacity(output_names.len());
            for name in output_names {
                let v = outputs
                    .get(&name)
                    .ok_or_else(|| rt_err("run", format!("output '{name}' missing")))?;
                result.push((name.clone(), extract(&name, v)?));
            }
            Ok(result)
        })
    }
}

fn ort_tensor<T>(shape: Vec<i64>, data: Vec<T>) -> Result<ort::session::SessionInputValue<'static>>
where
    T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
{
    let t = ort::value::Tensor::from_array((shape, data)).map_err(|e| rt_err("input tensor", e))?;
    Ok(t.into())
}

fn extract(name: &str, v: &ort::value::DynValue) -> Result<TensorValue> {
    let ty = match v.dtype() {
        ort::value::ValueType::Tensor { ty, .. } => *ty,
        other => {
            return Err(InferError::Shape(format!(
                "output '{name}' is not a tensor ({other:?})"
            )));
        }
    };
    fn get<T: ort::value::PrimitiveTensorElementType + Clone>(
        name: &str,
        v: &ort::value::DynValue,
    ) -> Result<(Vec<usize>, Vec<T>)> {
        let (shape, data) = v
            .try_extract_tensor::<T>()
            .map_err(|e| rt_err(&format!("output '{name}'"), e))?;
        let shape = shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| rt_err(name, "negative dimension")))
            .collect::<Result<Vec<usize>>>()?;
        Ok((shape, data.to_vec()))
    }
    use ort::value::TensorElementType as T;
    let (shape, data) = match ty {
        T::Float32 => get::<f32>(name, v).map(|(s, d)| (s, TensorValueData::F32(d)))?,
        T::Uint8 => get::<u8>(name, v).map(|(s, d)| (s, TensorValueData::U8(d)))?,
        T::Int8 => get::<i8>(name, v).map(|(s, d)| (s, TensorValueData::I8(d)))?,
        T::Int32 => get::<i32>(name, v).map(|(s, d)| (s, TensorValueData::I32(d)))?,
        T::Int64 => get::<i64>(name, v).map(|(s, d)| (s, TensorValueData::I64(d)))?,
        T::Bool => get::<bool>(name, v).map(|(s, d)| (s, TensorValueData::Bool(d)))?,
        other => {
            return Err(InferError::Shape(format!(
                "output '{name}' has unsupported element type {other:?}"
            )));
        }
    };
    Ok(TensorValue { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Session>();
        assert_send::<TensorValue>();
    }

    #[test]
    fn chw_mapping() {
        assert_eq!(
            chw_of(&[1, 64, 104, 104]).unwrap(),
            Shape::new(64, 104, 104)
        );
        assert_eq!(chw_of(&[1, 38, 38, 32]).unwrap(), Shape::new(38, 38, 32));
        assert_eq!(chw_of(&[8, 3, 3]).unwrap(), Shape::new(8, 3, 3));
        assert_eq!(chw_of(&[1, 1, 4, 5, 6]).unwrap(), Shape::new(4, 5, 6));
        assert_eq!(chw_of(&[5, 6]).unwrap(), Shape::new(1, 5, 6));
        assert_eq!(chw_of(&[7]).unwrap(), Shape::new(1, 1, 7));
        assert!(chw_of(&[2, 3, 4, 5]).is_err());
    }

    #[test]
    fn codec_round_trip_restores_declared_dims() {
        let v = TensorValue::f32(vec![1, 2, 3, 4], (0..24).map(|x| x as f32).collect());
        let t = to_codec_tensor("t", &v, None).unwrap();
        assert_eq!(t.shape, Shape::new(2, 3, 4));
        assert_eq!(from_codec_tensor(&t, Some(&[1, -1, 3, -1])).unwrap(), v);
        assert_eq!(from_codec_tensor(&t, None).unwrap(), v);
        // NHWC declared by the model: [1,H,W,C] comes back exactly.
        let nhwc = TensorValue::u8(vec![1, 3, 4, 2], vec![7; 24]);
        let t = to_codec_tensor("q", &nhwc, Some((0.5, 3))).unwrap();
        assert!(matches!(
            t.data,
            TensorData::U8 {
                scale: 0.5,
                zero_point: 3,
                ..
            }
        ));
        assert_eq!(from_codec_tensor(&t, Some(&[1, 3, 4, 2])).unwrap(), nhwc);
        assert!(from_codec_tensor(&t, Some(&[1, 3, 4, 3])).is_err());
        assert!(from_codec_tensor(&t, Some(&[1, -1])).is_err());
        let bad = TensorValue::f32(vec![2, 2], vec![1.0; 3]);
        assert!(to_codec_tensor("bad", &bad, None).is_err());
    }

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
