//! Splits a model, optionally writes the two parts, and measures inference time of the full
//! model, the front part and the back part, plus the bytes per frame of the cut.
//!
//! ```text
//! source .cache/env.sh
//! cargo run --release -p fmap-infer --example split_bench -- models/nanodet.onnx \
//!     PartitionedCall/onnx_tf_prefix_Concat_27:0 [--threads 2] [--frames 30] \
//!     [--front /tmp/front.onnx --back /tmp/back.onnx]
//! ```
//!
//! The input is a deterministic pseudo-random tensor of the model's input type and shape.

use std::time::Instant;

use codec_core::test_support::Rng;
use fmap_infer::onnx::Model;
use fmap_infer::runtime::{
    ElemType, NamedTensors, Session, SessionOptions, TensorValue, TensorValueData, init_runtime,
};
use fmap_infer::split::{split_parsed, split_with_shapes};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let (mut threads, mut frames) = (2usize, 30usize);
    let mut spinning = false;
    let (mut front_out, mut back_out) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--spin" => spinning = true,
            "--threads" => threads = it.next().ok_or("--threads N")?.parse()?,
            "--frames" => frames = it.next().ok_or("--frames N")?.parse()?,
            "--front" => front_out = Some(it.next().ok_or("--front FILE")?.clone()),
            "--back" => back_out = Some(it.next().ok_or("--back FILE")?.clone()),
            _ => positional.push(a.clone()),
        }
    }
    let [model_path, cut] = positional.as_slice() else {
        return Err("usage: split_bench MODEL.onnx TENSOR[,TENSOR...] [--threads N] [--frames N] [--spin] [--front F --back B]".into());
    };
    let lib = init_runtime(None)?;
    eprintln!("ONNX Runtime: {}", lib.display());
    let model = std::fs::read(model_path)?;
    let cut: Vec<String> = cut.split(',').map(str::to_string).collect();
    // The ONNX wire code alone (no ONNX Runtime): decoding the model, and cutting it into two
    // encoded parts. The numbers behind the choice argued in `fmap_infer::onnx`'s docs.
    let t = Instant::now();
    let parsed = Model::parse(&model)?;
    let parse_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let graph_only = split_parsed(&parsed, &cut)?;
    println!(
        "ONNX wire code: parse {parse_ms:.2} ms, cut + encode {:.2} ms ({} + {} bytes written \
         from {} read)",
        t.elapsed().as_secs_f64() * 1e3,
        graph_only.front.len(),
        graph_only.back.len(),
        model.len()
    );
    let t = Instant::now();
    let split = split_with_shapes(&model, &cut, threads)?;
    println!(
        "split in {:.1} ms (incl. one probe run of the front)",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "cut: {:?} (added {:?}, dropped {:?})",
        split.cut, split.added, split.dropped
    );
    if let Some(f) = &front_out {
        std::fs::write(f, &split.front)?;
    }
    if let Some(b) = &back_out {
        std::fs::write(b, &split.back)?;
    }

    let options = SessionOptions { threads, spinning };
    let mut full = Session::from_memory_with(&model, options)?;
    let mut front = Session::from_memory_with(&split.front, options)?;
    let mut back = Session::from_memory_with(&split.back, options)?;
    let inputs: NamedTensors = full
        .inputs()
        .iter()
        .map(|i| {
            let shape: Vec<usize> = i.dims.iter().map(|&d| d.max(1) as usize).collect();
            let n: usize = shape.iter().product();
            let mut rng = Rng(0x9e37_79b9);
            let data = match i.elem_type {
                ElemType::U8 => TensorValueData::U8((0..n).map(|_| rng.below(256) as u8).collect()),
                _ => TensorValueData::F32((0..n).map(|_| rng.unit() * 4.0 - 2.0).collect()),
            };
            (i.name.clone(), TensorValue { shape, data })
        })
        .collect();

    let mut bytes = 0usize;
    let mut cut_values = Vec::new();
    let (mut t_full, mut t_front, mut t_back) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu = [0.0f64; 3];
    for frame in 0..frames + 2 {
        let c0 = cpu_ms();
        let t = Instant::now();
        full.run(inputs.clone())?;
        let d_full = t.elapsed();
        let c1 = cpu_ms();
        let t = Instant::now();
        let cut_out = front.run(inputs.clone())?;
        let d_front = t.elapsed();
        let c2 = cpu_ms();
        if frame == 0 {
            for (name, v) in &cut_out {
                bytes += v.data.byte_len();
                cut_values.push(format!(
                    "{name} {:?} {}",
                    v.shape,
                    v.data.elem_type().name()
                ));
            }
        }
        let t = Instant::now();
        back.run(cut_out)?;
        let d_back = t.elapsed();
        let c3 = cpu_ms();
        if frame >= 2 {
            cpu[0] += c1 - c0;
            cpu[1] += c2 - c1;
            cpu[2] += c3 - c2;
            t_full.push(d_full.as_secs_f64() * 1e3);
            t_front.push(d_front.as_secs_f64() * 1e3);
            t_back.push(d_back.as_secs_f64() * 1e3);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("cut tensors: {}", cut_values.join("; "));
    println!("raw bytes per frame at the cut: {bytes}");
    println!(
        "median ms/frame over {frames} frames at {threads} threads: full {:.1}, front {:.1}, back {:.1}",
        median(&mut t_full),
        median(&mut t_front),
        median(&mut t_back)
    );
    let n = frames as f64;
    println!(
        "process CPU ms/frame (all threads; independent of machine load): full {:.1}, front {:.1}, back {:.1}",
        cpu[0] / n,
        cpu[1] / n,
        cpu[2] / n
    );
    Ok(())
}

/// CPU time of this process (user + system, all threads) in ms, from /proc/self/stat (10 ms
/// resolution on usual kernels; summed over many frames).
fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks * 10.0
}
