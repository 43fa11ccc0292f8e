//! `fmap-calibrate`: per-channel sensitivity of a split model's back network to noise in the cut
//! tensors (see `fmap_eval::calibrate` for the method and `fmap_infer::calibration` for the
//! file).
//!
//! ```text
//! fmap-calibrate --model PATH --split NAME [--video PATH] [--frames N] [--stride K]
//!                [--noise R] [--threads T] [--measure-at auto|outputs|TENSORS] [--klt]
//!                [--out PATH]
//! ```
//!
//! Writes `<model dir>/<model stem>.<split>.calib.json` (or `--out`), prints its path and the
//! spread of the sensitivities per tensor; progress goes to stderr. Needs the release plugin on
//! `GST_PLUGIN_PATH` (the front network runs in the real `splitinfer-front`) and ONNX Runtime.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fmap_eval::calibrate::{
    DEFAULT_FRAMES, DEFAULT_NOISE, DEFAULT_SPAN, DEFAULT_THREADS, MeasureAt, Options, Progress,
    Report, Spread, calibrate,
};
use fmap_eval::jobs::human;
use fmap_infer::calibration::Calibration;

fn usage() -> ! {
    eprintln!(
        "usage: fmap-calibrate --model PATH --split NAME [--video PATH] [--frames N] [--stride K]\n\
         \x20                     [--noise R] [--threads T] [--measure-at auto|outputs|TENSORS]\n\
         \x20                     [--klt] [--out PATH]\n\
         Adds Gaussian noise to one channel of the cut at a time and measures the mean squared\n\
         change D_c of the back network's outputs: s_c = mean over frames of D_c / sigma^2.\n\
         --measure-at auto (default) measures at the inputs of the model's NonMaxSuppression if\n\
         \x20 it has one (after it, detections swap and outputs jump), else at its outputs;\n\
         \x20 outputs: always the outputs; TENSORS: comma-separated tensor names.\n\
         --klt also fits a channel transform (KLT/PCA over the channels) of every f32 cut\n\
         \x20 tensor on the same frames, for fmapenc/fmapdec channel-transform.\n\
         defaults: --video $FMAP_FOOTAGE/vtest.avi --frames {DEFAULT_FRAMES}\n\
         \x20         --stride <the N frames spread over the first {DEFAULT_SPAN} frames or the clip>\n\
         \x20         --noise {DEFAULT_NOISE} (sigma relative to the tensor's std on each frame)\n\
         \x20         --threads {DEFAULT_THREADS} (ONNX Runtime intra-op threads)\n\
         \x20         --out <model dir>/<model stem>.<split>.calib.json"
    );
    std::process::exit(2)
}

struct Args {
    options: Options,
    out: Option<PathBuf>,
}

fn parse_args() -> Args {
    let root = std::env::var_os("FMAP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let footage = std::env::var_os("FMAP_FOOTAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/footage"));
    let mut model = None;
    let mut split = None;
    let mut o = Options::new("", "", footage.join("vtest.avi"));
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let mut number = |what: &str| {
            let v = value();
            v.parse::<u64>().unwrap_or_else(|_| {
                eprintln!("fmap-calibrate: {what} '{v}' is not a whole number");
                usage()
            })
        };
        match a.as_str() {
            "--model" => model = Some(PathBuf::from(value())),
            "--split" => split = Some(value()),
            "--video" => o.video = value().into(),
            "--frames" => o.frames = number("--frames").clamp(1, 100_000) as usize,
            "--stride" => o.stride = Some(number("--stride").max(1)),
            "--threads" => o.threads = number("--threads").clamp(1, 64) as usize,
            "--noise" => {
                let v = value();
                o.noise = v
                    .parse::<f32>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .unwrap_or_else(|| {
                        eprintln!("fmap-calibrate: --noise '{v}' is not a positive number");
                        usage()
                    });
            }
            "--measure-at" => o.measure_at = MeasureAt::parse(&value()),
            "--out" => out = Some(PathBuf::from(value())),
            "--klt" => o.klt = true,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("fmap-calibrate: unknown argument '{other}'");
                usage()
            }
        }
    }
    let (Some(model), Some(split)) = (model, split) else {
        eprintln!("fmap-calibrate: --model and --split are required");
        usage()
    };
    o.model = model;
    o.split = split;
    Args { options: o, out }
}

fn print_report(path: &std::path::Path, r: &Report, total: Duration) {
    let c = &r.calibration;
    println!("wrote {}", path.display());
    println!(
        "{} split {}: {} frames (clip frames {:?}), noise {} x tensor std",
        c.model, c.split, c.frames, r.source_frames, c.noise
    );
    println!("output change measured at: {}", r.measured.join(", "));
    for t in &c.tensors {
        if let Some(s) = Spread::of(&t.sensitivity) {
            println!("  {} [{} channels]: {s}", t.name, t.channels);
        }
    }
    println!(
        "time: {:.1} s in all; front (decode + splitinfer-front) {:.1} s, back setup {:.1} s, \
         {} perturbed back runs + {} clean in {:.1} s ({:.1} ms a run)",
        total.as_secs_f64(),
        r.front_time.as_secs_f64(),
        r.setup_time.as_secs_f64(),
        r.back_runs,
        c.frames,
        r.back_time.as_secs_f64(),
        r.back_time.as_secs_f64() * 1e3 / (r.back_runs + c.frames) as f64
    );
}

fn main() {
    let args = parse_args();
    if let Err(e) = gst::init() {
        eprintln!("fmap-calibrate: cannot initialize GStreamer: {e}");
        std::process::exit(1);
    }
    let o = &args.options;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Calibration::sidecar_path(&o.model, &o.split));
    let start = Instant::now();
    let mut last = None::<Instant>;
    let progress = |p: &Progress<'_>| {
        let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if due || p.runs_done == p.runs_total {
            last = Some(Instant::now());
            eprintln!(
                "calibrating channel {}/{}{}, frame {}/{}, {}/{} runs, {} elapsed{}",
                p.channel,
                p.channels,
                if p.tensors > 1 {
                    format!(" of tensor {}/{} ({})", p.tensor, p.tensors, p.tensor_name)
                } else {
                    String::new()
                },
                p.frame,
                p.frames,
                p.runs_done,
                p.runs_total,
                human(p.elapsed),
                p.eta()
                    .map(|e| format!(", eta {}", human(e)))
                    .unwrap_or_default()
            );
        }
    };
    eprintln!(
        "fmap-calibrate: {} split {} on {} ({} frames, noise {}, {} threads)",
        o.model.display(),
        o.split,
        o.video.display(),
        o.frames,
        o.noise,
        o.threads
    );
    let report = match calibrate(o, progress) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fmap-calibrate: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = report.calibration.save(&out) {
        eprintln!("fmap-calibrate: {e}");
        std::process::exit(1);
    }
    print_report(&out, &report, start.elapsed());
}
