//! Helpers shared by the integration tests that compare against Python references.

#![allow(dead_code)] // each test binary uses a part

use std::path::PathBuf;
use std::process::Command;

/// A small deterministic generator (64-bit LCG) so the tests need no extra crates.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The workspace root (`FMAP_ROOT`, else the parent of this crate).
pub fn workspace() -> PathBuf {
    std::env::var_os("FMAP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// The project venv's python (scripts/setup.sh installs it with the reference packages).
pub fn venv_python() -> PathBuf {
    workspace().join(".venv/bin/python")
}

/// Runs `eval/tests/<script>` on `doc` (written to a temporary JSON file) and returns its
/// standard output as JSON. A missing venv or a failing script fails the test with what to do.
pub fn python_reference(script: &str, doc: &serde_json::Value) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!(
        "fmap-eval-{}-{}",
        script.trim_end_matches(".py"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("input-{:016x}.json", {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        doc.to_string().hash(&mut h);
        h.finish()
    }));
    std::fs::write(&path, doc.to_string()).unwrap();
    let script_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let python = venv_python();
    let out = Command::new(&python)
        .arg(&script_path)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (run scripts/setup.sh)",
                python.display()
            )
        });
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{script} failed (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON: {e}"))
}
