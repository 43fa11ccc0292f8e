//! Smoke test of the evaluation: `fmap-eval --settings quick` on the first 60 frames of
//! vtest.avi through the real elements, and checks that the report is produced and internally
//! consistent. Needs the release plugin on GST_PLUGIN_PATH and ONNX Runtime (scripts/test.sh
//! provides both).

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    std::env::var_os("FMAP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn row<'a>(rows: &'a [serde_json::Value], encoder: Option<&str>) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["encoder"].as_str() == encoder)
        .unwrap_or_else(|| panic!("no result for encoder {encoder:?}"))
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn quick_report_is_produced_and_consistent() {
    let out = std::env::temp_dir().join(format!("fmap-eval-smoke-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fmap-eval"));
    cmd.args(["--frames", "60", "--settings", "quick", "--out"])
        .arg(&out)
        .env("FMAP_ROOT", workspace());
    if std::env::var_os("GST_PLUGIN_PATH").is_none() {
        cmd.env("GST_PLUGIN_PATH", workspace().join("target/release"));
    }
    let status = cmd.status().expect("fmap-eval runs");
    assert!(status.success(), "fmap-eval failed: {status}");

    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(rows.len(), 8, "one result per quick setting");
    assert_eq!(
        csv.lines().count(),
        rows.len() + 1,
        "CSV has a header and a row per result"
    );

    for r in &rows {
        assert_eq!(r["frames"].as_u64(), Some(60), "{r}");
        let acc = &r["accuracy"];
        for key in ["map50_robust", "map50_all", "map50_95_all"] {
            let v = f(acc, key);
            assert!((0.0..=1.0).contains(&v), "{key} = {v} in {r}");
        }
        assert!(f(r, "kbit_per_s") > 0.0);
        assert!(f(r, "bytes_per_frame_max") >= f(r, "bytes_per_frame_mean"));
    }

    // Sending the cut losslessly gives exactly the unsplit model's detections.
    let raw = row(&rows, None);
    assert_eq!(f(raw, "person_ap50"), 1.0, "{raw}");
    assert_eq!(f(&raw["accuracy"], "map50_robust"), 1.0, "{raw}");
    assert_eq!(f(&raw["accuracy"], "map50_95_all"), 1.0, "{raw}");
    assert!((f(raw, "ratio_vs_raw_float") - 1.0).abs() < 1e-3, "{raw}");

    // Fewer bits, strictly fewer bytes; and no more accuracy than 8 bits.
    let q8 = row(&rows, Some("mode=intra bits=8 entropy=none"));
    let q5 = row(&rows, Some("mode=intra bits=5 entropy=none"));
    let q3 = row(&rows, Some("mode=intra bits=3 entropy=none"));
    assert!(f(q8, "kbit_per_s") > f(q5, "kbit_per_s"));
    assert!(f(q5, "kbit_per_s") > f(q3, "kbit_per_s"));
    let mse = |r: &serde_json::Value| f(&r["distortion"], "mse");
    assert!(
        mse(q8) < mse(q5) && mse(q5) < mse(q3),
        "distortion grows as bits fall"
    );
    assert!(f(q8, "person_ap50") >= f(q3, "person_ap50"));

    // Entropy coding is lossless: same reconstruction and accuracy as plain codes, fewer bytes.
    let zh5 = row(&rows, Some("mode=intra bits=5 entropy=zvc-huffman"));
    assert!(f(zh5, "kbit_per_s") < f(q5, "kbit_per_s"));
    assert_eq!(mse(zh5), mse(q5));
    assert_eq!(zh5["accuracy"], q5["accuracy"]);

    // Prediction spends fewer bytes than coding every frame alone at the same bit depth would.
    for enc in [
        "mode=uni search=tss bits=6 entropy=huffman",
        "mode=bi search=tss bits=6 entropy=huffman",
        "mode=closed-loop bits=6 entropy=zvc-huffman",
    ] {
        let r = row(&rows, Some(enc));
        assert!(f(r, "kbit_per_s") < f(q5, "kbit_per_s"), "{enc}: {r}");
        assert!(f(r, "person_ap50") > 0.5, "{enc} keeps most people: {r}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
