//! `fmap-eval`: bits against accuracy for every way of sending the split, on real footage.
//!
//! ```text
//! fmap-eval [--video FILE] [--model FILE] [--split NAME]... [--frames N] [--settings quick|full]
//!           [--threads N] [--out DIR]
//! ```
//!
//! Writes `results.json` (every field) and `results.csv` to `--out` and prints one line per
//! setting as it finishes.

use std::path::PathBuf;
use std::time::Instant;

use fmap_eval::evaluate::{
    Clip, SettingResult, evaluate_split, full_settings, quick_settings, record_split,
    reference_detections, to_csv,
};

struct Options {
    clip: Clip,
    splits: Vec<String>,
    settings: String,
    out: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: fmap-eval [--video FILE] [--model FILE] [--split NAME]... [--frames N]\n\
         \x20                [--settings quick|full] [--threads N] [--out DIR]\n\
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
    let settings = match o.settings.as_str() {
        "quick" => quick_settings(),
        "full" => full_settings(),
        other => return Err(format!("--settings '{other}' is not one of quick, full")),
    };
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
    }
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
