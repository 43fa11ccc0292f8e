//! `fmap-eval`: bits against accuracy for every way of sending the split, on real footage.
//!
//! ```text
//! fmap-eval [--video FILE] [--model FILE] [--split NAME]... [--frames N] [--settings quick|full]
//!           [--threads N] [--out DIR] [--tiling] [--anchors quick|full]
//! ```
//!
//! Writes `results.json` (every field) and `results.csv` to `--out` and prints one line per
//! setting as it finishes. `--tiling` adds the tiled-mosaic method of Choi & Bajić on every split;
//! `--anchors` codes the input video at a ladder (cloud-only anchors) and writes `anchors.json`;
//! with both, `summary.json` holds the BD-rates and the lowest rates meeting the accuracy bars.

use std::path::PathBuf;
use std::time::Instant;

use fmap_eval::anchors::{evaluate_anchors, ladder};
use fmap_eval::bdrate::{bd_rate_table, headline_table};
use fmap_eval::evaluate::{
    Clip, SettingResult, evaluate_split, record_split, reference_detections, settings_by_name,
    to_csv,
};
use fmap_eval::tiling::{default_codecs, evaluate_tiling};

struct Options {
    clip: Clip,
    splits: Vec<String>,
    settings: String,
    out: PathBuf,
    tiling: bool,
    anchors: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: fmap-eval [--video FILE] [--model FILE] [--split NAME]... [--frames N]\n\
         \x20                [--settings quick|full] [--threads N] [--out DIR]\n\
         \x20                [--tiling] [--anchors quick|full]\n\
         defaults: --video $FMAP_FOOTAGE/vtest.avi --model models/nanodet.onnx --split stage2\n\
         \x20         --frames 0 (all) --settings full --threads 2 --out out/eval"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let root = std::env::var_os("FMAP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let footage = std::env::var_os("FMAP_FOOTAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/footage"));
    let mut o = Options {
        clip: Clip {
            video: footage.join("vtest.avi"),
            model: root.join("models/nanodet.onnx"),
            frames: 0,
            threads: 2,
        },
        splits: Vec::new(),
        settings: "full".into(),
        out: PathBuf::from("out/eval"),
        tiling: false,
        anchors: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--video" => o.clip.video = value().into(),
            "--model" => o.clip.model = value().into(),
            "--split" => o.splits.push(value()),
            "--frames" => o.clip.frames = value().parse().unwrap_or_else(|_| usage()),
            "--threads" => o.clip.threads = value().parse().unwrap_or_else(|_| usage()),
            "--settings" => o.settings = value(),
            "--out" => o.out = value().into(),
            "--tiling" => o.tiling = true,
            "--anchors" => o.anchors = Some(value()),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("fmap-eval: unknown argument '{other}'");
                usage()
            }
        }
    }
    if o.splits.is_empty() {
        o.splits.push("stage2".into());
    }
    o
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

fn print_result(r: &SettingResult) {
    println!(
        "{:<9} {:<34} {:<52} {:>10.1} {:>9.1}x {:>8} {:>8}",
        r.split,
        r.method,
        r.encoder.as_deref().unwrap_or("raw"),
        r.kbit_per_s,
        r.ratio_vs_raw_float,
        opt(r.person_ap50),
        opt(r.accuracy.map50_robust),
    );
}

fn run(o: &Options) -> Result<(), String> {
    let settings = settings_by_name(&o.settings)?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let start = Instant::now();
    eprintln!("reference: unsplit model on {} ...", o.clip.video.display());
    let reference = reference_detections(&o.clip)?;
    eprintln!(
        "reference: {} frames, {} detections ({:.1} s)",
        reference.len(),
        reference.iter().map(|f| f.boxes.len()).sum::<usize>(),
        start.elapsed().as_secs_f64()
    );
    println!(
        "{:<9} {:<34} {:<52} {:>10} {:>10} {:>8} {:>8}",
        "split", "method", "fmapenc", "kbit/s", "vs raw", "person", "mAP50r"
    );
    let mut all = Vec::new();
    for split in &o.splits {
        eprintln!("{split}: recording the cut tensors ...");
        let run = record_split(&o.clip, split)?;
        let n = settings.len();
        let mut done = 0;
        let results = evaluate_split(&o.clip, &run, &reference, &settings, |r| {
            done += 1;
            print_result(r);
            eprintln!(
                "  [{split} {done}/{n}, {:.0} s elapsed]",
                start.elapsed().as_secs_f64()
            );
        })?;
        all.extend(results);
        if o.tiling {
            eprintln!("{split}: tiled mosaics (Choi & Bajić) ...");
            all.extend(evaluate_tiling(
                &o.clip,
                &run,
                &reference,
                &default_codecs(),
                print_result,
            )?);
        }
    }
    let mut anchor_results = Vec::new();
    if let Some(name) = &o.anchors {
        eprintln!("anchors: coding the input video ({name} ladder) ...");
        anchor_results = evaluate_anchors(&o.clip, &reference, &ladder(name)?, |a| {
            println!(
                "{:<9} {:<34} {:<52} {:>10.1} {:>10} {:>8} {:>8}",
                "input",
                a.method,
                a.encoder.split(" ! ").next().unwrap_or(""),
                a.kbit_per_s,
                "",
                opt(a.person_ap50),
                opt(a.accuracy.map50_robust),
            );
            eprintln!(
                "  [anchors, {:.0} s elapsed]",
                start.elapsed().as_secs_f64()
            );
        })?;
        let json = serde_json::to_string_pretty(&anchor_results).map_err(|e| e.to_string())?;
        std::fs::write(o.out.join("anchors.json"), json).map_err(|e| e.to_string())?;
    }
    let summary = serde_json::json!({
        "bd_rate_vs_anchors": bd_rate_table(&all, &anchor_results),
        "headline": headline_table(&all, &anchor_results),
    });
    let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(o.out.join("summary.json"), json).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
    std::fs::write(o.out.join("results.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(o.out.join("results.csv"), to_csv(&all)).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} and {} ({:.0} s)",
        o.out.join("results.json").display(),
        o.out.join("results.csv").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() {
    let o = parse_args();
    if let Err(e) = gst::init() {
        eprintln!("fmap-eval: cannot initialize GStreamer: {e}");
        std::process::exit(1);
    }
    if let Err(e) = run(&o) {
        eprintln!("fmap-eval: {e}");
        std::process::exit(1);
    }
}
