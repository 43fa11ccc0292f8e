//! Times the default (`adaptive`) encoder and decoder per frame on the benchmark's synthetic
//! [256, 200, 272] stream and on the recorded maps of each directory given; prints the coded bytes
//! and a hash of the decoded frames, so that a change can be checked for identical output.
//! Times are wall and on-CPU (the machine may be shared); `SPEED_FRAMES=1` prints each frame's,
//! and `SPEED_JSON=FILE` also writes the figures as JSON (`scripts/eval-report.sh` puts them in
//! `docs/results.md`).
//!
//! `cargo run --release -p codec-core --example speed -- [frames] [RECORDED_DIR...]`

use codec_core::codec::{CodecConfig, Decoder, Encoder};
use codec_core::{FeatureFrame, Shape};
use std::time::Instant;

#[path = "../benches/common/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;
use synthetic::{CYCLE, THESIS_BLOCK1, moving_frames};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2 * CYCLE);
    let dirs: Vec<String> = args.collect();
    let mut frames = moving_frames("layer1", THESIS_BLOCK1, 2);
    let cfg = CodecConfig {
        key_interval: (2 * CYCLE) as u32,
        ..CodecConfig::default()
    };
    let synthetic: Vec<FeatureFrame> = (0..n)
        .map(|i| {
            let mut f = frames[i % CYCLE].clone();
            f.index = i as u64;
            f
        })
        .collect();
    frames.clear();
    let mut cases = vec![run(
        &label(THESIS_BLOCK1),
        "synthetic moving frames",
        &synthetic,
        cfg,
    )?];
    drop(synthetic);
    for dir in dirs {
        let mut paths: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        let recorded: Vec<FeatureFrame> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut f = FeatureFrame::from_raw(&std::fs::read(p)?)?;
                f.index = i as u64;
                Ok(f)
            })
            .collect::<Result<_, Box<dyn std::error::Error>>>()?;
        let Some(first) = recorded.first() else {
            return Err(format!("no recorded maps in {dir}").into());
        };
        let shape = first.tensors[0].shape;
        cases.push(run(
            &format!("recorded/{}", label(shape)),
            &format!("recorded maps in {dir}"),
            &recorded,
            CodecConfig::default(),
        )?);
    }
    if let Some(path) = std::env::var_os("SPEED_JSON") {
        std::fs::write(path, serde_json::to_string_pretty(&cases)? + "\n")?;
    }
    Ok(())
}

fn label(s: Shape) -> String {
    format!("{}x{}x{}", s.channels, s.height, s.width)
}

/// Codes `frames` and prints the figures; returns them as JSON.
fn run(
    label: &str,
    source: &str,
    frames: &[FeatureFrame],
    cfg: CodecConfig,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut enc = Encoder::new(cfg)?;
    let mut units = Vec::new();
    let (mut tenc, mut cenc) = (Vec::new(), Vec::new());
    for f in frames {
        let (t, c) = (Instant::now(), cpu_seconds());
        units.extend(enc.push(f)?.into_iter().map(|u| u.data));
        tenc.push(t.elapsed().as_secs_f64());
        cenc.push(cpu_seconds() - c);
    }
    if std::env::var_os("SPEED_FRAMES").is_some() {
        let ms: Vec<String> = cenc.iter().map(|s| format!("{:.0}", s * 1e3)).collect();
        println!("{label}: encode ms per frame on CPU: {}", ms.join(" "));
    }
    let bytes: usize = units.iter().map(Vec::len).sum();
    let mut dec = Decoder::new();
    let (mut tdec, mut cdec) = (Vec::new(), Vec::new());
    // The units carry a random stream id: hash what they decode to (and count their bytes). Each
    // frame is hashed and dropped as it comes (holding them all would time the page faults of
    // gigabytes at [256, 200, 272]).
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for u in &units {
        let (t, c) = (Instant::now(), cpu_seconds());
        let decoded = dec.decode(u)?;
        tdec.push(t.elapsed().as_secs_f64());
        cdec.push(cpu_seconds() - c);
        for f in &decoded {
            for t in &f.tensors {
                for v in t.to_f32() {
                    hash = (hash ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
    }
    println!(
        "{label}: {} frames, {bytes} bytes, hash {hash:016x}; ms/frame wall mean (min) / CPU mean (min): \
         encode {} / {}, decode {} / {}",
        frames.len(),
        summary(&tenc),
        summary(&cenc),
        summary(&tdec),
        summary(&cdec),
    );
    let ms = |s: &[f64]| {
        let (mean, min) = mean_min_ms(s);
        serde_json::json!({ "mean": mean, "min": min })
    };
    Ok(serde_json::json!({
        "stream": label,
        "source": source,
        "shape": frames[0].tensors[0].shape.to_string(),
        "frames": frames.len(),
        "bytes": bytes,
        "hash": format!("{hash:016x}"),
        "encode_wall_ms": ms(&tenc),
        "encode_cpu_ms": ms(&cenc),
        "decode_wall_ms": ms(&tdec),
        "decode_cpu_ms": ms(&cdec),
    }))
}

/// Time this thread has spent on a CPU (Linux `schedstat`; 0 elsewhere): the machine may be
/// shared, and wall time then counts the other processes too.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 * 1e-9)
}

/// Mean (minimum) in ms. The minimum is the steadier figure on a shared machine.
fn summary(seconds: &[f64]) -> String {
    let (mean, min) = mean_min_ms(seconds);
    format!("{mean:.1} ({min:.1})")
}

/// Mean and minimum of `seconds`, in ms.
fn mean_min_ms(seconds: &[f64]) -> (f64, f64) {
    let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
    let min = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    (mean * 1e3, min * 1e3)
}
