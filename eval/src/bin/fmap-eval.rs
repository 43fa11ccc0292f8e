//! `fmap-eval`: bits against accuracy for every way of sending the split, on real footage.
//!
//! ```text
//! fmap-eval [--video FILE] [--model FILE] [--split NAME]... [--frames N] [--settings quick|full|PROPS]
//!           [--threads N] [--jobs N] [--out DIR] [--tiling] [--tiled-codecs FAMILIES]
//!           [--anchors quick|full] [--correlation] [--no-cache]
//! ```
//!
//! Writes `results.json` (every field) and `results.csv` to `--out` and prints one line per
//! setting as it finishes, with progress and an estimate of the time left on stderr.
//! `--tiling` adds the tiled-mosaic method of Choi & Bajić on every split (`--tiled-codecs`
//! only some of its codec families, e.g. `x265,x265-10bit`; summary.json then also holds the
//! BD-rate of 10-bit against 8-bit codes); `--anchors` codes the
//! input video at a ladder (cloud-only anchors) and writes `anchors.json`; with both,
//! `summary.json` holds the BD-rates and the lowest rates meeting the accuracy bars.
//! `--correlation` writes `correlation.json`: SSIM and MSE between consecutive video frames and
//! between consecutive feature maps at each split (the thesis's sec. 4.2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use fmap_eval::anchors::{
    AnchorCodec, AnchorInput, AnchorResult, CameraScaler, detect_anchor, encode_anchor, ladder,
    video_format,
};
use fmap_eval::bdrate::{bd_rate_table, compare_methods, headline_table, lever_table};
use fmap_eval::correlation::SeriesSummary;
use fmap_eval::evaluate::{
    Clip, DetectionCache, FrameDetections, Setting, SettingResult, SplitRun, evaluate_setting,
    group_by_reconstruction, record_split, reference_detections, settings_by_name, to_csv,
};
use fmap_eval::jobs::{Job, Progress, human, run_jobs};
use fmap_eval::stream::Recording;
use fmap_eval::temporal::{feature_series, video_series};
use fmap_eval::tiling::{FAMILIES, MosaicCodec, codecs_of, depth_pairs, evaluate_tiling};

/// Frame distances of the correlation analysis (1 = consecutive frames, as in the thesis).
const CORRELATION_LAGS: [usize; 3] = [1, 2, 5];

/// One model and the split points to measure it at.
struct ModelSpec {
    model: PathBuf,
    splits: Vec<String>,
}

struct Options {
    video: PathBuf,
    frames: u64,
    threads: u32,
    models: Vec<ModelSpec>,
    settings: String,
    out: PathBuf,
    /// The tiled method's codecs (empty = no tiling).
    tiling: Vec<MosaicCodec>,
    anchors: Option<String>,
    correlation: bool,
    jobs: usize,
    cache: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: fmap-eval [--video FILE] [--model FILE [--split NAME]...]... [--frames N]\n\
         \x20                [--settings quick|full|\"PROPS; PROPS\"] [--threads N] [--jobs N]\n\
         \x20                [--out DIR] [--tiling] [--tiled-codecs FAMILIES] [--anchors quick|full]\n\
         \x20                [--correlation] [--no-cache]\n\
         --tiling measures every tiled codec family, --tiled-codecs a comma-separated choice of\n\
         \x20 {families}\n\
         defaults: --video $FMAP_FOOTAGE/vtest.avi --model models/nanodet.onnx --split <the\n\
         \x20         profile's default> --frames 0 (all) --settings full --threads 1 (ONNX Runtime\n\
         \x20         threads per run) --jobs <number of CPUs> (runs in parallel) --out out/eval\n\
         Each --split belongs to the --model before it. With several models, each one's results go\n\
         to DIR/<model file name>/ and the source-size video anchors are coded once for all.",
        families = FAMILIES.join(", ")
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
        video: footage.join("vtest.avi"),
        frames: 0,
        threads: 1,
        models: Vec::new(),
        settings: "full".into(),
        out: PathBuf::from("out/eval"),
        tiling: Vec::new(),
        anchors: None,
        correlation: false,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cache: true,
    };
    let default_model = root.join("models/nanodet.onnx");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let mut number = |what: &str| {
            let v = value();
            v.parse::<u64>().unwrap_or_else(|_| {
                eprintln!("fmap-eval: {what} '{v}' is not a number");
                usage()
            })
        };
        match a.as_str() {
            "--video" => o.video = value().into(),
            "--model" => o.models.push(ModelSpec {
                model: value().into(),
                splits: Vec::new(),
            }),
            "--split" => {
                let split = value();
                if o.models.is_empty() {
                    o.models.push(ModelSpec {
                        model: default_model.clone(),
                        splits: Vec::new(),
                    });
                }
                o.models.last_mut().expect("a model").splits.push(split);
            }
            "--frames" => o.frames = number("--frames"),
            "--threads" => o.threads = number("--threads").clamp(1, 64) as u32,
            "--jobs" => o.jobs = number("--jobs").clamp(1, 256) as usize,
            "--settings" => o.settings = value(),
            "--out" => o.out = value().into(),
            "--tiling" => o.tiling = codecs_of(&FAMILIES.join(",")).expect("known families"),
            "--tiled-codecs" => {
                o.tiling = codecs_of(&value()).unwrap_or_else(|e| {
                    eprintln!("fmap-eval: {e}");
                    usage()
                })
            }
            "--anchors" => o.anchors = Some(value()),
            "--correlation" => o.correlation = true,
            "--no-cache" => o.cache = false,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("fmap-eval: unknown argument '{other}'");
                usage()
            }
        }
    }
    if o.models.is_empty() {
        o.models.push(ModelSpec {
            model: default_model,
            splits: Vec::new(),
        });
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

fn print_anchor(a: &AnchorResult) {
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
}

fn print_correlation(s: &SeriesSummary) {
    println!(
        "{:<9} {:<34} {:<52} lag {} SSIM mean {:.4} min {:.4}, MSE {:.4}",
        "corr.", s.name, s.shape, s.lag, s.ssim_mean, s.ssim_min, s.mse_mean
    );
}

fn report(p: &Progress<'_>) {
    eprintln!(
        "  [{}/{} done, {} elapsed{}] {} ({})",
        p.done,
        p.total,
        human(p.elapsed),
        p.eta
            .map(|e| format!(", ~{} left", human(e)))
            .unwrap_or_default(),
        p.name,
        human(p.job_time)
    );
}

/// What the first phase prepares for a model: the reference, a recorded cut, the model-size
/// frames.
enum Prepared {
    Reference(Vec<FrameDetections>),
    Split(Box<SplitRun>),
    Scaled(Recording),
}

/// What a measuring job produces, with the index of the model it belongs to.
enum Measured {
    Features(usize, Vec<SettingResult>),
    Anchors(Vec<(usize, AnchorResult)>),
    /// `None`: the video's own series, shared by every model.
    Correlation(Option<usize>, Vec<SeriesSummary>),
}

/// Everything known about one model once the first phase is done.
struct ModelRun {
    clip: Clip,
    name: String,
    out: PathBuf,
    reference: Vec<FrameDetections>,
    runs: Vec<SplitRun>,
    scaler: Option<CameraScaler>,
    scaled: Option<Arc<Recording>>,
    cache: DetectionCache,
}

/// One job measuring a group of settings with the same reconstruction on one split (the
/// first runs the back network, the others find its detections in the cache).
fn feature_job<'a>(
    mi: usize,
    m: &'a ModelRun,
    run: &'a SplitRun,
    group: Vec<Setting>,
    use_cache: bool,
) -> Job<'a, Measured> {
    let name = format!(
        "{} {}: {}",
        m.name,
        run.split,
        group[0].encoder.as_deref().unwrap_or("raw float")
    );
    let structure = group[0].encoder.as_deref().unwrap_or("");
    let cost = if structure.contains("closed-loop") {
        3.0
    } else if structure.contains("mode=uni") || structure.contains("mode=bi") {
        2.0
    } else {
        1.0 + 0.2 * group.len() as f64
    } * run.raw_float_bytes_per_frame.max(1.0).log10()
        / 6.0;
    Job::new(name, cost, move || {
        group
            .iter()
            .map(|s| {
                let own = DetectionCache::default();
                let cache = if use_cache { &m.cache } else { &own };
                evaluate_setting(&m.clip, run, &m.reference, s, cache)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|r| Measured::Features(mi, r))
    })
}

fn tiling_jobs<'a>(
    mi: usize,
    m: &'a ModelRun,
    run: &'a SplitRun,
    codecs: &[MosaicCodec],
    use_cache: bool,
) -> Vec<Job<'a, Measured>> {
    // Lossless HEVC and PNG decode to the same codes: one job, one network run.
    // Codecs that need what this model lacks (the KLT family, a channel transform) are skipped.
    let (lossless, lossy): (Vec<MosaicCodec>, Vec<MosaicCodec>) = codecs
        .iter()
        .filter(|c| c.applies(&m.clip, &run.split))
        .partition(|c| c.is_lossless());
    (!lossless.is_empty())
        .then_some(lossless)
        .into_iter()
        .chain(lossy.into_iter().map(|c| vec![c]))
        .map(|group| {
            let name = format!("{} {}: tiled {}", m.name, run.split, group[0].setting());
            Job::new(name, 4.0, move || {
                group
                    .iter()
                    .map(|&c| {
                        let own = DetectionCache::default();
                        let cache = if use_cache { &m.cache } else { &own };
                        evaluate_tiling(&m.clip, run, &m.reference, c, cache)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|r| Measured::Features(mi, r))
            })
        })
        .collect()
}

/// Anchor jobs: each source-size point is coded once and scored with every model; each
/// model-size point belongs to its model.
fn anchor_jobs<'a>(
    models: &'a [ModelRun],
    ladder: &'a [AnchorCodec],
    video: &Path,
) -> Result<Vec<Job<'a, Measured>>, String> {
    let (src_w, src_h, _) = video_format(video)?;
    let mut jobs = Vec::new();
    for &codec in ladder {
        let source = AnchorInput {
            width: src_w,
            height: src_h,
            scaled: None,
        };
        let name = format!("anchor {} {src_w}x{src_h}", codec.name());
        jobs.push(Job::new(name, 3.0 * models.len() as f64, move || {
            let coded = encode_anchor(&models[0].clip, &source, codec)?;
            models
                .iter()
                .enumerate()
                .map(|(mi, m)| detect_anchor(&m.clip, &m.reference, &coded).map(|a| (mi, a)))
                .collect::<Result<Vec<_>, _>>()
                .map(Measured::Anchors)
        }));
    }
    for (mi, m) in models.iter().enumerate() {
        let (Some(s), Some(frames)) = (&m.scaler, &m.scaled) else {
            continue;
        };
        if (s.width, s.height) == (src_w, src_h) {
            continue;
        }
        // JPEG frames are the thesis's anchor at the camera's resolution only.
        for &codec in ladder
            .iter()
            .filter(|c| !matches!(c, AnchorCodec::Jpeg { .. }))
        {
            let input = AnchorInput {
                width: s.width,
                height: s.height,
                scaled: Some(frames.clone()),
            };
            let name = format!(
                "{} anchor {} {}x{}",
                m.name,
                codec.name(),
                s.width,
                s.height
            );
            jobs.push(Job::new(name, 2.0, move || {
                let coded = encode_anchor(&m.clip, &input, codec)?;
                Ok(Measured::Anchors(vec![(
                    mi,
                    detect_anchor(&m.clip, &m.reference, &coded)?,
                )]))
            }));
        }
    }
    Ok(jobs)
}

fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    let path = dir.join(name);
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))
}

/// A model's short name: its file name without the extension.
fn model_name(model: &Path) -> String {
    model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// Phase 1: every model's reference detections, recorded cuts and model-size frames.
fn prepare(o: &Options) -> Result<Vec<ModelRun>, String> {
    let ladder_on = o.anchors.is_some();
    let mut models = Vec::new();
    for spec in &o.models {
        let clip = Clip {
            video: o.video.clone(),
            model: spec.model.clone(),
            frames: o.frames,
            threads: o.threads,
        };
        let mut splits = spec.splits.clone();
        if splits.is_empty() {
            splits.push(default_split(&spec.model)?);
        }
        let name = model_name(&spec.model);
        let out = if o.models.len() == 1 {
            o.out.clone()
        } else {
            o.out.join(&name)
        };
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        models.push((clip, name, out, splits));
    }
    let scalers: Vec<Option<CameraScaler>> = models
        .iter()
        .map(|(clip, ..)| {
            ladder_on
                .then(|| CameraScaler::for_model(&clip.model))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let mut jobs: Vec<Job<(usize, Prepared)>> = Vec::new();
    for (mi, (clip, name, _, splits)) in models.iter().enumerate() {
        jobs.push(Job::new(
            format!("{name}: reference (unsplit model)"),
            2.0,
            move || reference_detections(clip).map(|r| (mi, Prepared::Reference(r))),
        ));
        for split in splits {
            jobs.push(Job::new(
                format!("{name} {split}: recording the cut"),
                1.0,
                move || record_split(clip, split).map(|r| (mi, Prepared::Split(Box::new(r)))),
            ));
        }
        if let Some(scaler) = &scalers[mi] {
            jobs.push(Job::new(
                format!("{name}: frames at the model's input size"),
                0.5,
                move || scaler.scale_clip(clip).map(|r| (mi, Prepared::Scaled(r))),
            ));
        }
    }
    let prepared = run_jobs(jobs, o.jobs, |p, _| report(p))?;
    let mut out: Vec<ModelRun> = models
        .into_iter()
        .zip(scalers)
        .map(|((clip, name, out, _), scaler)| ModelRun {
            clip,
            name,
            out,
            reference: Vec::new(),
            runs: Vec::new(),
            scaler,
            scaled: None,
            cache: DetectionCache::default(),
        })
        .collect();
    for (mi, p) in prepared {
        match p {
            Prepared::Reference(r) => out[mi].reference = r,
            Prepared::Split(r) => out[mi].runs.push(*r),
            Prepared::Scaled(r) => out[mi].scaled = Some(Arc::new(r)),
        }
    }
    for m in &out {
        eprintln!(
            "{}: reference {} frames, {} detections",
            m.name,
            m.reference.len(),
            m.reference.iter().map(|f| f.boxes.len()).sum::<usize>()
        );
    }
    Ok(out)
}

/// The split a model's profile names as its default.
fn default_split(model: &Path) -> Result<String, String> {
    let profile = fmap_infer::profile::Profile::load_for_model(model).map_err(|e| e.to_string())?;
    profile.default_split.clone().ok_or_else(|| {
        format!(
            "{}: the profile names no default split; give --split (one of {})",
            model.display(),
            profile.split_point_names_joined()
        )
    })
}

fn run(o: &Options) -> Result<(), String> {
    let settings = settings_by_name(&o.settings)?;
    let ladder = o.anchors.as_deref().map(ladder).transpose()?;
    let start = Instant::now();
    eprintln!(
        "fmap-eval: {} on {} ({} frames), {} jobs in parallel",
        o.models
            .iter()
            .map(|m| m.model.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        o.video.display(),
        if o.frames == 0 {
            "all".to_string()
        } else {
            o.frames.to_string()
        },
        o.jobs
    );
    let models = prepare(o)?;

    // Phase 2: every measurement. Intra groups go first (their decoded frames are what the
    // anchors of uni/bi groups repeat, so the detection cache answers those), then the longest
    // jobs, so that the queue ends with short ones and no core idles long at the end.
    let groups = group_by_reconstruction(&settings);
    let is_intra = |g: &[Setting]| {
        g[0].encoder
            .as_deref()
            .is_none_or(|e| e.contains("mode=intra"))
    };
    let mut first: Vec<Job<Measured>> = Vec::new();
    let mut rest: Vec<Job<Measured>> = Vec::new();
    for (mi, m) in models.iter().enumerate() {
        for run in &m.runs {
            for g in &groups {
                let job = feature_job(mi, m, run, g.clone(), o.cache);
                if is_intra(g) {
                    first.push(job);
                } else {
                    rest.push(job);
                }
            }
            rest.extend(tiling_jobs(mi, m, run, &o.tiling, o.cache));
            if o.correlation {
                rest.push(Job::new(
                    format!("{} {}: correlation", m.name, run.split),
                    0.5,
                    move || {
                        feature_series(&run.split, &run.features, &CORRELATION_LAGS)
                            .map(|c| Measured::Correlation(Some(mi), c))
                    },
                ));
            }
        }
    }
    if let Some(ladder) = &ladder {
        rest.extend(anchor_jobs(&models, ladder, &o.video)?);
    }
    if o.correlation {
        let clip = &models[0].clip;
        rest.push(Job::new("video: correlation", 0.5, move || {
            video_series(clip, &CORRELATION_LAGS).map(|c| Measured::Correlation(None, c))
        }));
    }
    // Stable: equal costs keep their order.
    rest.sort_by(|a, b| b.cost.total_cmp(&a.cost));
    first.extend(rest);
    println!(
        "{:<9} {:<34} {:<52} {:>10} {:>10} {:>8} {:>8}",
        "split", "method", "setting", "kbit/s", "vs raw", "person", "mAP50r"
    );
    let measured = run_jobs(first, o.jobs, |p, m| {
        match m {
            Measured::Features(_, rs) => rs.iter().for_each(print_result),
            Measured::Anchors(a) => a.iter().for_each(|(_, a)| print_anchor(a)),
            Measured::Correlation(_, cs) => cs.iter().for_each(print_correlation),
        }
        report(p);
    })?;
    let n = models.len();
    let (mut features, mut anchors, mut correlation) = (
        vec![Vec::new(); n],
        vec![Vec::new(); n],
        vec![Vec::new(); n],
    );
    for m in measured {
        match m {
            Measured::Features(mi, rs) => features[mi].extend(rs),
            Measured::Anchors(a) => a.into_iter().for_each(|(mi, a)| anchors[mi].push(a)),
            Measured::Correlation(Some(mi), cs) => correlation[mi].extend(cs),
            Measured::Correlation(None, cs) => {
                for c in &mut correlation {
                    c.extend(cs.iter().cloned());
                }
            }
        }
    }
    for (mi, m) in models.iter().enumerate() {
        write_outputs(o, m, &features[mi], &anchors[mi], &correlation[mi], start)?;
    }
    Ok(())
}

/// Writes one model's results.json/.csv, anchors.json, correlation.json, summary.json and
/// run.json.
fn write_outputs(
    o: &Options,
    m: &ModelRun,
    features: &[SettingResult],
    anchors: &[AnchorResult],
    correlation: &[SeriesSummary],
    start: Instant,
) -> Result<(), String> {
    let dir = &m.out;
    if o.anchors.is_some() {
        write_json(dir, "anchors.json", &anchors)?;
    }
    if o.correlation {
        write_json(dir, "correlation.json", &correlation)?;
    }
    let summary = serde_json::json!({
        "bd_rate_vs_anchors": bd_rate_table(features, anchors),
        "headline": headline_table(features, anchors),
        "levers": lever_table(features),
        "tiled_depth": compare_methods(features, &depth_pairs()),
    });
    write_json(dir, "summary.json", &summary)?;
    write_json(dir, "results.json", &features)?;
    let csv = dir.join("results.csv");
    std::fs::write(&csv, to_csv(features)).map_err(|e| format!("{}: {e}", csv.display()))?;
    let (hits, misses) = m.cache.stats();
    let labels: BTreeMap<u32, &str> = m
        .reference
        .iter()
        .flat_map(|f| f.labels.iter().map(|(id, l)| (*id, l.as_str())))
        .collect();
    let run_info = serde_json::json!({
        "model": m.clip.model.display().to_string(),
        "video": m.clip.video.display().to_string(),
        "frames": m.reference.len(),
        "splits": m.runs.iter().map(|r| r.split.as_str()).collect::<Vec<_>>(),
        "settings": o.settings,
        "anchors": o.anchors,
        "tiling": !o.tiling.is_empty(),
        "tiled_codecs": o.tiling.iter().map(|c| c.setting()).collect::<Vec<_>>(),
        "jobs": o.jobs,
        "onnx_threads_per_run": m.clip.threads,
        "detection_cache": {"enabled": o.cache, "frames_known": hits, "frames_run": misses},
        "class_labels": labels,
        "robust_labels": fmap_eval::evaluate::ROBUST_LABELS,
        "robust_min_boxes": fmap_eval::evaluate::ROBUST_MIN_INSTANCES,
        "wall_seconds": start.elapsed().as_secs_f64(),
    });
    write_json(dir, "run.json", &run_info)?;
    eprintln!(
        "{}: wrote {} ({} points, {} anchor points) after {}; back network ran on {} frames, {} \
         answered from identical decoded frames",
        m.name,
        dir.display(),
        features.len(),
        anchors.len(),
        human(start.elapsed()),
        misses,
        hits
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
