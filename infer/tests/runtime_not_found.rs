//! A missing or invalid ONNX Runtime library is an error that says how to fix it, never a panic.
//!
//! Its own test binary (one process = one ONNX Runtime), with a single test so that the
//! process-wide state and the environment variable are changed in a known order.

use std::path::Path;

use fmap_infer::InferError;
use fmap_infer::runtime::{Session, init_runtime, runtime_path};

#[test]
fn missing_and_invalid_libraries_are_errors_then_a_valid_one_loads() {
    let good = std::env::var_os("ORT_DYLIB_PATH");

    // A path that does not exist.
    let err =
        init_runtime(Some(Path::new("/nonexistent/dir/libonnxruntime.so.1.32.0"))).unwrap_err();
    assert!(matches!(err, InferError::RuntimeNotFound(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("ORT_DYLIB_PATH")
            && msg.contains("ort-library")
            && msg.contains("scripts/setup.sh"),
        "{msg}"
    );

    // A file that is not a shared library: dlopen fails, reported as an error.
    let fake = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libonnxruntime.so.fake");
    std::fs::write(&fake, b"this is not an ELF file").unwrap();
    let err = init_runtime(Some(&fake)).unwrap_err();
    assert!(matches!(err, InferError::RuntimeNotFound(_)), "{err}");
    assert!(err.to_string().contains("libonnxruntime.so.fake"), "{err}");

    // A directory.
    let err = init_runtime(Some(Path::new(env!("CARGO_TARGET_TMPDIR")))).unwrap_err();
    assert!(err.to_string().contains("not a file"), "{err}");

    // ORT_DYLIB_PATH pointing nowhere: sessions fail with the same kind of error.
    // SAFETY: this is the only test of this binary, so no other thread reads the environment.
    unsafe { std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so") };
    let err = Session::from_memory(b"", 1).unwrap_err();
    assert!(matches!(err, InferError::RuntimeNotFound(_)), "{err}");
    assert!(runtime_path().is_none());

    // After the failures, the real library still loads.
    match good {
        // SAFETY: as above.
        Some(v) => unsafe { std::env::set_var("ORT_DYLIB_PATH", v) },
        // SAFETY: as above.
        None => unsafe { std::env::remove_var("ORT_DYLIB_PATH") },
    }
    let path = init_runtime(None).expect("ONNX Runtime (source .cache/env.sh)");
    assert!(path.is_absolute());
    assert_eq!(runtime_path(), Some(path));
}
