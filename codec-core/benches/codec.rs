//! Throughput of the feature-map codec and of its quantization and motion stages.
//!
//! Two tensor sizes: a NanoDet stage-2 frame [128, 52, 52] and the thesis's first partition
//! point [256, 200, 272]. Input data are synthetic smooth maps with moving content (see
//! `common/synthetic.rs`; no recorded fixture). Throughput is in bytes of f32 input
//! (criterion's MiB/s). The quant and motion benchmarks process one frame per iteration. The
//! encode benchmarks push one whole cycle of `CYCLE` frames per iteration and the decode
//! benchmarks decode one whole `STREAM_FRAMES`-unit stream per iteration, because the cost per
//! frame differs by position in a group (bi: the first push of a group only holds the frame);
//! frames/s = frames per iteration / time per iteration.
//!
//! The `recorded/...` group codes real NanoDet stage-2 maps recorded from the sample video
//! (`scripts/record-maps.sh`) in the default setting and with whole-feature motion; its
//! throughput is in frames.
//!
//! `motion/.../subpel-refine-b4-p7` is the adaptive mode's fractional search alone.
//!
//! Kept short on purpose (10 samples, short warm-up and measurement) so the whole run takes a
//! few minutes on a 2-core machine: `cargo bench -p codec-core`. Compressed sizes per mode are
//! printed by `cargo run --release -p codec-core --example sizes`.

use std::hint::black_box;
use std::time::Duration;

use codec_core::codec::{CodecConfig, Decoder, Encoder, Structure};
use codec_core::entropy::EntropyMode;
use codec_core::motion::{self, BlockGrid, SearchMethod};
use codec_core::quant::{QuantizerMode, TensorQuantizer};
use codec_core::subpel;
use codec_core::{FeatureFrame, Shape, TensorData};
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};

#[path = "common/synthetic.rs"]
mod synthetic;
use synthetic::{CYCLE, NANODET_STAGE2, THESIS_BLOCK1, moving_frames};

/// Frames pre-encoded for the decode benchmarks; also the closed-loop key interval, so the
/// decoder cycling through them sees the same key/predicted mix as the encoder.
const STREAM_FRAMES: usize = 2 * CYCLE;

struct Size {
    label: &'static str,
    shape: Shape,
    frames: Vec<FeatureFrame>,
    /// Large frames take ~0.1–1 s per iteration: use flat sampling and only a subset of modes.
    large: bool,
}

fn sizes() -> Vec<Size> {
    vec![
        Size {
            label: "128x52x52",
            shape: NANODET_STAGE2,
            frames: moving_frames("stage2", NANODET_STAGE2, 1),
            large: false,
        },
        Size {
            label: "256x200x272",
            shape: THESIS_BLOCK1,
            frames: moving_frames("layer1", THESIS_BLOCK1, 2),
            large: true,
        },
    ]
}

fn input_bytes(shape: Shape) -> u64 {
    (shape.len() * 4) as u64
}

fn f32_data(frame: &FeatureFrame) -> &[f32] {
    match &frame.tensors[0].data {
        TensorData::F32(v) => v,
        TensorData::U8 { .. } => unreachable!("synthetic frames are f32"),
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, size: &Size) {
    group.throughput(Throughput::Bytes(input_bytes(size.shape)));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(if size.large { 3 } else { 1 }));
    if size.large {
        group.sampling_mode(SamplingMode::Flat);
    }
}

fn bench_quant(c: &mut Criterion, size: &Size) {
    let mut group = c.benchmark_group(format!("quant/{}", size.label));
    configure(&mut group, size);
    let tensor = &size.frames[0].tensors[0];
    let values = f32_data(&size.frames[0]);
    let mut codes = Vec::new();
    group.bench_function("minmax+quantize-4bit", |b| {
        b.iter(|| {
            let tq = TensorQuantizer::for_tensor(&QuantizerMode::PerTensorMinMax, tensor, 4)
                .expect("valid bits");
            tq.quantize_tensor(size.shape, black_box(values), &mut codes);
            black_box(&codes);
        })
    });
    group.bench_function("per-channel-minmax+quantize-8bit", |b| {
        b.iter(|| {
            let tq = TensorQuantizer::for_tensor(&QuantizerMode::PerChannelMinMax, tensor, 8)
                .expect("valid bits");
            tq.quantize_tensor(size.shape, black_box(values), &mut codes);
            black_box(&codes);
        })
    });
    let tq = TensorQuantizer::for_tensor(&QuantizerMode::PerTensorMinMax, tensor, 8)
        .expect("valid bits");
    tq.quantize_tensor(size.shape, values, &mut codes);
    let mut back = Vec::new();
    group.bench_function("dequantize-8bit", |b| {
        b.iter(|| {
            tq.dequantize_tensor(size.shape, black_box(&codes), &mut back);
            black_box(&back);
        })
    });
    group.finish();
}

fn bench_motion(c: &mut Criterion, size: &Size) {
    let mut group = c.benchmark_group(format!("motion/{}", size.label));
    configure(&mut group, size);
    let shape = size.shape;
    let plane = shape.plane_len();
    let anchor = f32_data(&size.frames[0]);
    let current = f32_data(&size.frames[1]);
    let grid = BlockGrid::new(8, shape.height, shape.width).expect("valid grid");
    let anchor_planes: Vec<&[f32]> = anchor.chunks(plane).collect();
    let current_planes: Vec<&[f32]> = current.chunks(plane).collect();
    let mut methods = vec![SearchMethod::ThreeStep];
    if !size.large {
        // Full search (225 points for p = 7) only at the small size: ~9x TSS's cost.
        methods.push(SearchMethod::Full);
    }
    for method in methods {
        group.bench_function(format!("{}-per-channel-b8-p7", method.name()), |b| {
            b.iter(|| {
                for (a, cur) in anchor_planes.iter().zip(&current_planes) {
                    black_box(motion::estimate_plane(a, cur, &grid, 7, method).expect("valid"));
                }
            })
        });
    }
    group.bench_function("tss-shared-b8-p7", |b| {
        b.iter(|| {
            black_box(
                motion::estimate_shared(
                    &anchor_planes,
                    &current_planes,
                    &grid,
                    7,
                    SearchMethod::ThreeStep,
                )
                .expect("valid"),
            )
        })
    });
    // The adaptive mode's fractional refinement of a shared 4×4 field (the default block),
    // on the strongest 2^20 values' worth of planes (`subpel::REFINE_VALUES`).
    let grid4 = BlockGrid::new(4, shape.height, shape.width).expect("valid grid");
    let whole = motion::estimate_shared(
        &anchor_planes,
        &current_planes,
        &grid4,
        7,
        SearchMethod::ThreeStep,
    )
    .expect("valid");
    group.bench_function("subpel-refine-b4-p7", |b| {
        b.iter(|| {
            black_box(
                subpel::refine(&anchor_planes, &current_planes, &whole, 7, 0.1).expect("valid"),
            )
        })
    });
    let fields: Vec<_> = anchor_planes
        .iter()
        .zip(&current_planes)
        .map(|(a, cur)| motion::estimate_plane(a, cur, &grid, 7, SearchMethod::ThreeStep))
        .collect::<Result<_, _>>()
        .expect("valid");
    let mut out = vec![0.0f32; shape.len()];
    group.bench_function("compensate-per-channel-b8", |b| {
        b.iter(|| {
            for ((a, f), o) in anchor_planes.iter().zip(&fields).zip(out.chunks_mut(plane)) {
                motion::compensate_plane(a, f, o).expect("valid");
            }
            black_box(&out);
        })
    });
    group.finish();
}

/// The (structure, entropy) modes benchmarked at a size: all 20 at the small size; at the large
/// size every structure with Huffman, plus intra with ZVC.
fn modes(large: bool) -> Vec<(Structure, EntropyMode)> {
    let mut v = Vec::new();
    for s in Structure::ALL {
        if s == Structure::Adaptive {
            // One coder of its own: the entropy setting does not apply.
            v.push((s, EntropyMode::None));
            continue;
        }
        for e in EntropyMode::ALL {
            if !large
                || e == EntropyMode::Huffman
                || (s == Structure::Intra && e == EntropyMode::Zvc)
            {
                v.push((s, e));
            }
        }
    }
    v
}

fn config(structure: Structure, entropy: EntropyMode) -> CodecConfig {
    CodecConfig {
        structure,
        entropy,
        key_interval: STREAM_FRAMES as u32,
        ..CodecConfig::default()
    }
}

/// Encodes `STREAM_FRAMES` frames (cycling) and returns the coded units' bytes in decode order.
fn encode_stream(frames: &mut [FeatureFrame], cfg: &CodecConfig) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(cfg.clone()).expect("valid config");
    let mut units = Vec::new();
    for i in 0..STREAM_FRAMES {
        let f = &mut frames[i % CYCLE];
        f.index = i as u64;
        units.extend(enc.push(f).expect("encode").into_iter().map(|u| u.data));
    }
    units.extend(enc.finish().expect("finish").into_iter().map(|u| u.data));
    units
}

/// Encodes `frames` once per iteration with one encoder, frame indices increasing across
/// iterations.
fn bench_encode(b: &mut criterion::Bencher<'_>, cfg: &CodecConfig, frames: &mut [FeatureFrame]) {
    let mut enc = Encoder::new(cfg.clone()).expect("valid config");
    let mut i = 0u64;
    b.iter(|| {
        for f in frames.iter_mut() {
            f.index = i;
            i += 1;
            black_box(enc.push(f).expect("encode"));
        }
    })
}

fn bench_codec(c: &mut Criterion, size: &mut Size) {
    let modes = modes(size.large);
    {
        let mut group = c.benchmark_group(format!("encode/{}", size.label));
        configure(&mut group, size);
        group.throughput(Throughput::Bytes(CYCLE as u64 * input_bytes(size.shape)));
        for &(s, e) in &modes {
            let cfg = config(s, e);
            let frames = &mut size.frames;
            group.bench_function(BenchmarkId::new(s.name(), e.name()), |b| {
                // One cycle per iteration.
                bench_encode(b, &cfg, frames)
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group(format!("decode/{}", size.label));
    configure(&mut group, size);
    group.throughput(Throughput::Bytes(
        STREAM_FRAMES as u64 * input_bytes(size.shape),
    ));
    for &(s, e) in &modes {
        let units = encode_stream(&mut size.frames, &config(s, e));
        group.bench_function(BenchmarkId::new(s.name(), e.name()), |b| {
            let mut dec = Decoder::new();
            b.iter(|| {
                // The whole stream per iteration, from its first (sync) unit.
                dec.reset();
                for u in &units {
                    black_box(dec.decode(u).expect("decode"));
                }
                black_box(dec.finish())
            })
        });
    }
    group.finish();
}

/// Recorded NanoDet stage-2 maps (one `splitinfer-front` buffer per file), as
/// `scripts/record-maps.sh` writes them: `$FMAP_MAPS`, else `.cache/maps/nanodet-stage2`.
fn recorded_frames() -> Option<(String, Vec<FeatureFrame>)> {
    let dir = std::env::var("FMAP_MAPS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache/maps/nanodet-stage2").to_string()
    });
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let frames: Vec<_> = paths
        .iter()
        .take(RECORDED_FRAMES)
        .filter_map(|p| FeatureFrame::from_raw(&std::fs::read(p).ok()?).ok())
        .collect();
    (!frames.is_empty()).then_some((dir, frames))
}

/// Frames of the recorded clip coded per iteration (the cost per frame varies with content).
const RECORDED_FRAMES: usize = 50;

/// The default setting (fmapenc with no properties), and it with whole-feature motion, on real
/// feature maps: encode and decode time per clip of `RECORDED_FRAMES` frames (divide by it for
/// the time per frame).
fn bench_recorded(c: &mut Criterion) {
    let Some((dir, mut frames)) = recorded_frames() else {
        eprintln!(
            "recorded maps: none found (run scripts/record-maps.sh or set FMAP_MAPS); skipped"
        );
        return;
    };
    let shape = frames[0].tensors[0].shape;
    let label = format!(
        "recorded/{}x{}x{}",
        shape.channels, shape.height, shape.width
    );
    eprintln!("{label}: {} frames from {dir}", frames.len());
    let mut group = c.benchmark_group(&label);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(3));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(frames.len() as u64));
    let whole_motion = CodecConfig {
        fractional_motion: false,
        ..CodecConfig::default()
    };
    for (name, cfg) in [
        ("default", CodecConfig::default()),
        ("whole-motion", whole_motion),
    ] {
        group.bench_function(format!("encode-{name}"), |b| {
            bench_encode(b, &cfg, &mut frames)
        });
        let mut enc = Encoder::new(cfg).expect("valid config");
        let units: Vec<Vec<u8>> = frames
            .iter_mut()
            .enumerate()
            .flat_map(|(i, f)| {
                f.index = i as u64;
                enc.push(f).expect("encode")
            })
            .map(|u| u.data)
            .collect();
        group.bench_function(format!("decode-{name}"), |b| {
            let mut dec = Decoder::new();
            b.iter(|| {
                dec.reset();
                for u in &units {
                    black_box(dec.decode(u).expect("decode"));
                }
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_recorded(c);
    for mut size in sizes() {
        bench_quant(c, &size);
        bench_motion(c, &size);
        bench_codec(c, &mut size);
    }
}

criterion_group!(codec, benches);
criterion_main!(codec);
