//! Prints the compressed size per frame for every codec mode on the benchmark's synthetic data
//! (smooth maps with moving content; see `benches/common/synthetic.rs`), at the two benchmark
//! sizes. `cargo run --release -p codec-core --example sizes [frames]`.

use codec_core::codec::{CodecConfig, Encoder, Structure};
use codec_core::entropy::EntropyMode;
use codec_core::{FeatureFrame, Shape};

#[path = "../benches/common/synthetic.rs"]
mod synthetic;
use synthetic::{CYCLE, NANODET_STAGE2, THESIS_BLOCK1, moving_frames};

fn main() {
    let frames_per_mode: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2 * CYCLE);
    println!(
        "{:<12} {:<12} {:<12} {:>14} {:>10} {:>10}",
        "shape", "structure", "entropy", "bytes/frame", "ratio", "bits/value"
    );
    for (name, shape, seed) in [("stage2", NANODET_STAGE2, 1), ("layer1", THESIS_BLOCK1, 2)] {
        let mut frames = moving_frames(name, shape, seed);
        for structure in Structure::ALL {
            for entropy in EntropyMode::ALL {
                let cfg = CodecConfig {
                    structure,
                    entropy,
                    key_interval: (2 * CYCLE) as u32,
                    ..CodecConfig::default()
                };
                let bytes = stream_bytes(&mut frames, &cfg, frames_per_mode);
                let per_frame = bytes as f64 / frames_per_mode as f64;
                let raw = (shape.len() * 4) as f64;
                println!(
                    "{:<12} {:<12} {:<12} {:>14.0} {:>10.1} {:>10.3}",
                    label(shape),
                    structure.name(),
                    entropy.name(),
                    per_frame,
                    raw / per_frame,
                    per_frame * 8.0 / shape.len() as f64
                );
            }
        }
    }
}

fn label(s: Shape) -> String {
    format!("{}x{}x{}", s.channels, s.height, s.width)
}

fn stream_bytes(frames: &mut [FeatureFrame], cfg: &CodecConfig, n: usize) -> usize {
    let mut enc = Encoder::new(cfg.clone()).expect("valid config");
    let mut total = 0;
    for i in 0..n {
        let f = &mut frames[i % CYCLE];
        f.index = i as u64;
        total += enc
            .push(f)
            .expect("encode")
            .iter()
            .map(|u| u.data.len())
            .sum::<usize>();
    }
    total += enc
        .finish()
        .expect("finish")
        .iter()
        .map(|u| u.data.len())
        .sum::<usize>();
    total
}
