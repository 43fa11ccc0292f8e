//! A small ONNX Runtime session wrapper working on plain named tensors.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use super::library::{init_runtime, loaded};
use super::tensor::{ElemType, NamedTensors, TensorInfo, TensorValue, TensorValueData};
use crate::error::{InferError, Result};

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
}
