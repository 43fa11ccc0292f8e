//! Smoke test of the evaluation: the short version of the report — `fmap-eval` on the first 60
//! frames of vtest.avi with NanoDet (stage2) and SSD (its default split), the quick settings,
//! the tiled method, the quick anchor ladder and the correlation analysis, all through the real
//! elements, then `eval/plot.py` — and checks that the report is produced and internally
//! consistent. Needs the release plugin on GST_PLUGIN_PATH, ONNX Runtime and the project venv
//! (scripts/test.sh provides all three).

mod common;

use std::path::Path;
use std::process::Command;

use common::{venv_python, workspace};
use serde_json::Value;

const FRAMES: u64 = 60;

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().expect("a JSON array")
}

fn row<'a>(rows: &'a [Value], split: &str, encoder: Option<&str>) -> &'a Value {
    rows.iter()
        .find(|r| r["split"] == split && r["encoder"].as_str() == encoder)
        .unwrap_or_else(|| panic!("no result for {split} {encoder:?}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Everything that must hold for the feature points of one split.
/// `klt`: the model's calibration file has a channel transform, so the KLT ladder is measured.
fn check_features(results: &[Value], split: &str, eight_bit: bool, klt: bool) {
    let here: Vec<&Value> = results.iter().filter(|r| r["split"] == split).collect();
    assert_eq!(
        here.len(),
        9 + 17 + if klt { 4 } else { 0 },
        "{split}: 9 quick settings + 17 tiled codecs (lossless, PNG, x265 8-bit and 10-bit and \
         x264 at 4 QPs, x265 at 3 target rates), + x265 at 4 QPs on the KLT's components where \
         the calibration file has a transform"
    );
    for r in &here {
        assert_eq!(r["frames"].as_u64(), Some(FRAMES), "{r}");
        assert_eq!(r["frames_detected"].as_u64(), Some(FRAMES), "{r}");
        for key in ["map50_robust", "map50_all", "map50_95_all"] {
            let v = f(&r["accuracy"], key);
            assert!((0.0..=1.0).contains(&v), "{key} = {v} in {r}");
        }
        assert!(f(r, "kbit_per_s") > 0.0);
        assert!(f(r, "bytes_per_frame_max") >= f(r, "bytes_per_frame_mean"));
        assert!(f(r, "bytes_per_frame_p95") <= f(r, "bytes_per_frame_max"));
    }

    // Sending the cut as it is gives exactly the unsplit model's detections.
    let raw = row(results, split, None);
    assert_eq!(f(raw, "person_ap50"), 1.0, "{raw}");
    assert_eq!(f(&raw["accuracy"], "map50_robust"), 1.0, "{raw}");
    assert_eq!(f(&raw["accuracy"], "map50_95_all"), 1.0, "{raw}");
    let raw_ratio = if eight_bit { 4.0 } else { 1.0 };
    assert!(
        (f(raw, "ratio_vs_raw_float") - raw_ratio).abs() < 1e-2,
        "{raw}"
    );

    // Fewer bits, strictly fewer bytes and more distortion; no more accuracy than 8 bits.
    let q8 = row(results, split, Some("mode=intra bits=8 entropy=none"));
    let q5 = row(results, split, Some("mode=intra bits=5 entropy=none"));
    let q3 = row(results, split, Some("mode=intra bits=3 entropy=none"));
    assert!(f(q8, "kbit_per_s") > f(q5, "kbit_per_s"));
    assert!(f(q5, "kbit_per_s") > f(q3, "kbit_per_s"));
    let mse = |r: &Value| f(&r["distortion"], "mse");
    assert!(
        mse(q8) <= mse(q5) && mse(q5) < mse(q3),
        "{split}: distortion grows as bits fall"
    );
    assert!(f(q8, "person_ap50") >= f(q3, "person_ap50"));

    // Entropy coding is lossless: same reconstruction and accuracy as plain codes, fewer
    // bytes, and the back network did not run again (every frame was known).
    let zh5 = row(
        results,
        split,
        Some("mode=intra bits=5 entropy=zvc-huffman"),
    );
    assert!(f(zh5, "kbit_per_s") < f(q5, "kbit_per_s"));
    assert_eq!(mse(zh5), mse(q5));
    assert_eq!(zh5["accuracy"], q5["accuracy"]);
    assert_eq!(zh5["network_frames"].as_u64(), Some(0), "{zh5}");

    // Prediction spends fewer bytes than coding every frame alone would, keeps most people.
    for enc in [
        "mode=uni search=tss bits=6 entropy=huffman",
        "mode=bi search=tss bits=6 entropy=huffman",
        "mode=closed-loop bits=6 entropy=zvc-huffman",
    ] {
        let r = row(results, split, Some(enc));
        assert!(f(r, "kbit_per_s") < f(q5, "kbit_per_s"), "{enc}: {r}");
        assert!(f(r, "person_ap50") > 0.5, "{enc} keeps most people: {r}");
    }

    // The tiled method: lossless HEVC and PNG decode to the same codes; rate falls with QP.
    let tiled: Vec<&Value> = here
        .iter()
        .copied()
        .filter(|r| r["method"].as_str().unwrap().starts_with("tiled"))
        .collect();
    let lossless = tiled
        .iter()
        .find(|r| r["method"] == "tiled 8-bit + HEVC lossless")
        .unwrap();
    let png = tiled
        .iter()
        .find(|r| r["method"] == "tiled 8-bit + PNG")
        .unwrap();
    assert_eq!(lossless["accuracy"], png["accuracy"]);
    assert_eq!(png["network_frames"].as_u64(), Some(0), "{png}");
    let ladder = |method: &str, qp_key: &str| {
        let mut lossy: Vec<(u32, f64)> = tiled
            .iter()
            .filter(|r| r["method"] == method)
            .map(|r| {
                let enc = r["encoder"].as_str().unwrap();
                let qp = enc
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix(qp_key)?.parse().ok())
                    .unwrap();
                (qp, f(r, "kbit_per_s"))
            })
            .collect();
        lossy.sort_by_key(|p| p.0);
        lossy
    };
    for (method, qp_key) in [
        ("tiled 8-bit + HEVC", "qp="),
        ("tiled 10-bit + HEVC", "qp="),
        ("tiled 8-bit + AVC", "quantizer="),
        ("tiled 8-bit + HEVC, KLT", "qp="),
    ] {
        let lossy = ladder(method, qp_key);
        if lossy.is_empty() && !klt && method.ends_with("KLT") {
            continue;
        }
        assert!(lossy.len() >= 4, "{split} {method}: {lossy:?}");
        assert!(
            lossy.windows(2).all(|w| w[0].1 > w[1].1),
            "{split} {method}: tiled rate falls as QP rises: {lossy:?}"
        );
        assert!(lossy[0].1 < f(lossless, "kbit_per_s"));
    }
    // x265's rate control on the mosaic: each target met within 40%, rates in target order.
    let mut targeted: Vec<(u32, f64)> = tiled
        .iter()
        .filter(|r| r["method"] == "tiled 8-bit + HEVC, rate control")
        .map(|r| {
            let enc = r["encoder"].as_str().unwrap();
            let target = enc
                .split_whitespace()
                .find_map(|p| p.strip_prefix("bitrate=")?.parse().ok())
                .unwrap();
            (target, f(r, "kbit_per_s"))
        })
        .collect();
    targeted.sort_by_key(|p| p.0);
    assert_eq!(targeted.len(), 3, "{split}");
    for &(target, achieved) in &targeted {
        let ratio = achieved / f64::from(target);
        assert!(
            (0.6..1.4).contains(&ratio),
            "{split}: x265 bitrate={target} gave {achieved} kbit/s"
        );
    }
    assert!(targeted.windows(2).all(|w| w[0].1 < w[1].1), "{targeted:?}");
    // Half the planes (64 components of 128 channels): fewer bits at every QP than the channels.
    if klt {
        let (plain, klt) = (
            ladder("tiled 8-bit + HEVC", "qp="),
            ladder("tiled 8-bit + HEVC, KLT", "qp="),
        );
        for (p, k) in plain.iter().zip(&klt) {
            assert!(p.0 == k.0 && k.1 < p.1, "{split}: KLT {k:?} against {p:?}");
        }
    }
}

/// The cloud-only anchors of one model: both sizes, every ladder point, rates ordered.
fn check_anchors(anchors: &[Value], model_size: (u64, u64)) {
    let sizes: Vec<(u64, u64)> = vec![(768, 576), model_size];
    // The quick ladder: uncoded, 4 x264, 4 x265 at both sizes; 2 JPEG at the source size.
    assert_eq!(anchors.len(), 11 + 9, "quick ladder at two sizes");
    let jpeg = anchors.iter().filter(|a| a["codec"] == "JPEG");
    assert!(jpeg.clone().count() == 2 && jpeg.clone().all(|a| a["width"] == 768));
    for &(w, h) in &sizes {
        let at: Vec<&Value> = anchors
            .iter()
            .filter(|a| a["width"].as_u64() == Some(w) && a["height"].as_u64() == Some(h))
            .collect();
        // Raw I420 is exactly 1.5 bytes a pixel.
        let raw = at.iter().find(|a| a["codec"] == "uncoded I420").unwrap();
        assert_eq!(
            f(raw, "bytes_per_frame_mean"),
            (w * h * 3 / 2) as f64,
            "{raw}"
        );
        for codec in ["x264", "x265"] {
            let mut pts: Vec<(u32, f64)> = at
                .iter()
                .filter(|a| a["codec"] == codec)
                .map(|a| {
                    let enc = a["encoder"].as_str().unwrap();
                    let q = enc
                        .split_whitespace()
                        .find_map(|p| {
                            p.strip_prefix("quantizer=")
                                .or_else(|| p.strip_prefix("qp="))?
                                .parse()
                                .ok()
                        })
                        .unwrap();
                    (q, f(a, "kbit_per_s"))
                })
                .collect();
            pts.sort_by_key(|p| p.0);
            assert_eq!(pts.len(), 4, "{codec} {w}x{h}");
            assert!(
                pts.windows(2).all(|p| p[0].1 > p[1].1),
                "{codec} {w}x{h}: rate falls as QP rises: {pts:?}"
            );
            assert!(pts[0].1 < f(raw, "kbit_per_s"));
        }
        for a in &at {
            assert_eq!(a["frames"].as_u64(), Some(FRAMES));
            let acc = f(&a["accuracy"], "map50_robust");
            assert!(acc > 0.5 && acc <= 1.0, "{a}");
        }
    }
}

/// Temporal correlation: consecutive frames are more alike than frames further apart.
fn check_correlation(correlation: &[Value], splits: &[&str]) {
    let series = |name: &str, lag: u64| {
        correlation
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with(name) && c["lag"] == lag)
            .unwrap_or_else(|| panic!("no correlation series {name} lag {lag}"))
    };
    for name in std::iter::once("video").chain(splits.iter().copied()) {
        let (near, far) = (series(name, 1), series(name, 5));
        assert_eq!(near["pairs"].as_u64(), Some(FRAMES - 1));
        assert_eq!(far["pairs"].as_u64(), Some(FRAMES - 5));
        assert!(
            f(near, "ssim_mean") <= 1.0 && f(near, "ssim_mean") > 0.5,
            "{near}"
        );
        assert!(
            f(near, "ssim_mean") > f(far, "ssim_mean"),
            "{name}: SSIM falls with distance"
        );
        assert!(
            f(near, "mse_mean") < f(far, "mse_mean"),
            "{name}: MSE grows with distance"
        );
        assert!(f(near, "ssim_min") <= f(near, "ssim_p05"));
    }
}

/// The headline names, for each split and bar, a measured point that meets the bar.
fn check_headline(summary: &Value, results: &[Value], anchors: &[Value], splits: &[&str]) {
    let headline = rows(&summary["headline"]);
    for split in splits {
        for criterion in ["person AP50 >= 0.98", "robust mAP50 >= 0.95"] {
            let here: Vec<&Value> = headline
                .iter()
                .filter(|h| h["split"] == *split && h["criterion"] == criterion)
                .collect();
            assert!(here.len() >= 5, "{split} {criterion}: features + anchors");
            for h in here {
                let Some(rate) = h["kbit_per_s"].as_f64() else {
                    continue;
                };
                let candidates: Vec<&Value> = if h["candidate"] == "features (any method)" {
                    results.iter().filter(|r| r["split"] == *split).collect()
                } else {
                    anchors
                        .iter()
                        .filter(|a| a["method"] == h["candidate"])
                        .collect()
                };
                let met = |p: &Value| {
                    if criterion.starts_with("person") {
                        p["person_ap50"].as_f64().unwrap_or(0.0) >= 0.98
                    } else {
                        p["accuracy"]["map50_robust"].as_f64().unwrap_or(0.0) >= 0.95
                    }
                };
                let point = candidates
                    .iter()
                    .find(|p| f(p, "kbit_per_s") == rate)
                    .unwrap_or_else(|| panic!("headline rate {rate} is no measured point: {h}"));
                assert!(met(point), "{h} names a point below the bar: {point}");
                assert!(
                    candidates
                        .iter()
                        .all(|p| !met(p) || f(p, "kbit_per_s") >= rate),
                    "{h}: a cheaper point meets the bar"
                );
            }
        }
    }
}

#[test]
fn short_report_is_produced_and_consistent() {
    let root = workspace();
    let out = std::env::temp_dir().join(format!("fmap-eval-smoke-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fmap-eval"));
    cmd.args(["--frames", &FRAMES.to_string(), "--settings", "quick"])
        .args([
            "--tiling",
            "--anchors",
            "quick",
            "--correlation",
            "--jobs",
            "2",
        ])
        .arg("--model")
        .arg(root.join("models/nanodet.onnx"))
        .args(["--split", "stage2", "--model"])
        .arg(root.join("models/ssd_mobilenet_v2_coco_quant.onnx"))
        .arg("--out")
        .arg(&out)
        .env("FMAP_ROOT", &root);
    if std::env::var_os("GST_PLUGIN_PATH").is_none() {
        cmd.env("GST_PLUGIN_PATH", root.join("target/release"));
    }
    let status = cmd.status().expect("fmap-eval runs");
    assert!(status.success(), "fmap-eval failed: {status}");

    // NanoDet's calibration file has a channel transform, SSD's has none.
    for (model, split, eight_bit, klt, size) in [
        ("nanodet", "stage2", false, true, (416, 416)),
        (
            "ssd_mobilenet_v2_coco_quant",
            "expanded_conv_5",
            true,
            false,
            (300, 300),
        ),
    ] {
        let dir = out.join(model);
        let results = read(&dir.join("results.json"));
        let results = rows(&results);
        let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
        assert_eq!(
            csv.lines().count(),
            results.len() + 1,
            "CSV has a header and a row per result"
        );
        check_features(results, split, eight_bit, klt);
        let anchors = read(&dir.join("anchors.json"));
        check_anchors(rows(&anchors), size);
        let correlation = read(&dir.join("correlation.json"));
        check_correlation(rows(&correlation), &[split]);
        check_headline(
            &read(&dir.join("summary.json")),
            results,
            rows(&anchors),
            &[split],
        );
        // 10-bit against 8-bit tiled HEVC, at both accuracies.
        let summary = read(&dir.join("summary.json"));
        let depth = rows(&summary["tiled_depth"]);
        assert_eq!(depth.len(), 2, "{depth:?}");
        assert!(
            depth
                .iter()
                .all(|r| r["variant"] == "tiled 10-bit + HEVC" && r["split"] == split),
            "{depth:?}"
        );
        let run = read(&dir.join("run.json"));
        assert_eq!(run["frames"].as_u64(), Some(FRAMES));
        assert_eq!(run["class_labels"]["0"], "person");
    }

    // The report: markdown with the headline, and every plot it links to.
    let python = venv_python();
    let md = out.join("results.md");
    let plots = out.join("plots");
    let status = Command::new(&python)
        .arg(root.join("eval/plot.py"))
        .arg("--runs")
        .arg(out.join("nanodet"))
        .arg(out.join("ssd_mobilenet_v2_coco_quant"))
        .arg("--plots")
        .arg(&plots)
        .arg("--markdown")
        .arg(&md)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", python.display()));
    assert!(status.success(), "plot.py failed: {status}");
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("Headline"), "{text}");
    let mut linked = 0;
    for part in text.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        if target.ends_with(".png") || target.ends_with(".svg") {
            let path = out.join(target);
            assert!(path.is_file(), "the report links a missing plot {target}");
            linked += 1;
        }
    }
    assert!(linked >= 4, "the report shows the plots ({linked} links)");
    let _ = std::fs::remove_dir_all(&out);
}

/// The detection cache changes no number: a short run with it and one without (`--no-cache`,
/// every setting runs the back network on every frame) give identical results, and with it the
/// network skipped the frames it had seen.
#[test]
fn detection_cache_changes_no_result() {
    let root = workspace();
    let settings = "mode=intra bits=6 entropy=none; mode=intra bits=6 entropy=huffman; \
                    mode=uni search=tss bits=6 entropy=none; mode=bi search=tss bits=6 entropy=zvc";
    let run = |cache: bool| {
        let out =
            std::env::temp_dir().join(format!("fmap-eval-cache-{}-{cache}", std::process::id()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fmap-eval"));
        cmd.args([
            "--frames",
            "24",
            "--settings",
            settings,
            "--jobs",
            "1",
            "--out",
        ])
        .arg(&out)
        .env("FMAP_ROOT", &root);
        if !cache {
            cmd.arg("--no-cache");
        }
        if std::env::var_os("GST_PLUGIN_PATH").is_none() {
            cmd.env("GST_PLUGIN_PATH", root.join("target/release"));
        }
        let status = cmd.status().expect("fmap-eval runs");
        assert!(status.success(), "fmap-eval failed: {status}");
        let v = read(&out.join("results.json"));
        let _ = std::fs::remove_dir_all(&out);
        v
    };
    let (with, without) = (run(true), run(false));
    let (with, without) = (rows(&with), rows(&without));
    assert_eq!(with.len(), 5, "raw + 4 settings");
    for (a, b) in with.iter().zip(without) {
        assert_eq!(a["encoder"], b["encoder"]);
        for key in [
            "accuracy",
            "person_ap50",
            "distortion",
            "bytes_per_frame_mean",
        ] {
            assert_eq!(a[key], b[key], "{key} of {}", a["encoder"]);
        }
        assert_eq!(b["network_frames"].as_u64(), Some(24), "{b}");
    }
    let frames_run = |enc: &str| {
        with.iter().find(|r| r["encoder"] == enc).unwrap()["network_frames"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(frames_run("mode=intra bits=6 entropy=huffman"), 0);
    // uni: every other frame is an intra frame the intra setting already decoded.
    assert_eq!(frames_run("mode=uni search=tss bits=6 entropy=none"), 12);
    assert!(frames_run("mode=bi search=tss bits=6 entropy=zvc") < 24);
}
