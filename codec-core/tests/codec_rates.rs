//! Compressed size per mode on a synthetic [128, 52, 52] moving sequence. Prints a table
//! (`cargo test -p codec-core --test codec_rates -- --nocapture`) and checks the orderings
//! the frame structures exist for. Times are printed for information only (test profile,
//! shared machine), never asserted.

mod common;

use codec_core::Shape;
use codec_core::codec::{CodecConfig, Structure, inspect_unit};
use codec_core::entropy::EntropyMode;
use codec_core::motion::MvSharing;
use common::*;

#[test]
fn compressed_size_per_mode_on_a_moving_sequence() {
    let shape = Shape::new(128, 52, 52);
    let n = 12u64;
    let frames: Vec<_> = (0..n)
        .map(|i| moving_frame(i, shape, (1.0, -1.0)))
        .collect();
    let raw: usize = frames.iter().map(|f| f.raw_len()).sum();
    println!(
        "synthetic [128,52,52] f32, {n} frames, velocity (1,-1)/frame; raw {} bytes/frame",
        raw / n as usize
    );
    println!(
        "{:<12} {:<12} {:<11} {:>12} {:>8} {:>10} {:>10} {:>10}",
        "structure", "entropy", "mv", "bytes/frame", "ratio", "codes", "mvs", "residual"
    );
    let mut per_structure = std::collections::BTreeMap::new();
    for structure in Structure::ALL {
        for entropy in EntropyMode::ALL {
            for mv_sharing in [MvSharing::PerChannel, MvSharing::Shared] {
                if structure == Structure::Intra && mv_sharing == MvSharing::Shared {
                    continue;
                }
                let cfg = CodecConfig {
                    structure,
                    entropy,
                    mv_sharing,
                    key_interval: 12,
                    bits: 8,
                    block_size: 8,
                    search_range: 7,
                    dead_zone: 1,
                    ..CodecConfig::default()
                };
                let started = std::time::Instant::now();
                let units = encode_all(&cfg, &frames);
                let encode_ms = started.elapsed().as_secs_f64() * 1e3 / n as f64;
                let started = std::time::Instant::now();
                let decoded = decode_all(&units);
                let decode_ms = started.elapsed().as_secs_f64() * 1e3 / n as f64;
                assert_eq!(decoded.len(), frames.len());
                let total: usize = units.iter().map(|u| u.data.len()).sum();
                let (mut codes, mut mvs, mut residual) = (0, 0, 0);
                for u in &units {
                    let info = inspect_unit(&u.data).unwrap();
                    codes += info.code_bytes;
                    mvs += info.mv_bytes;
                    residual += info.residual_bytes + info.flag_bytes;
                }
                let mae: f64 = decoded
                    .iter()
                    .zip(&frames)
                    .map(|(d, f)| mean_abs_error(d, f))
                    .sum::<f64>()
                    / n as f64;
                println!(
                    "{:<12} {:<12} {:<11} {:>12} {:>8.1} {:>10} {:>10} {:>10}   mae {:.4}  enc {:.1} ms  dec {:.1} ms",
                    structure.name(),
                    entropy.name(),
                    format!("{mv_sharing:?}"),
                    total / n as usize,
                    raw as f64 / total as f64,
                    codes / n as usize,
                    mvs / n as usize,
                    residual / n as usize,
                    mae,
                    encode_ms,
                    decode_ms
                );
                assert!(total < raw / 3, "8-bit coding must beat raw f32 by > 3x");
                if entropy == EntropyMode::Huffman && mv_sharing == MvSharing::PerChannel {
                    per_structure.insert(structure.name(), total);
                }
            }
        }
    }
    // Sending one anchor per 2 (uni) or 3 (bi) frames plus vectors is cheaper than intra.
    assert!(
        per_structure["uni"] < per_structure["intra"] * 3 / 4,
        "{per_structure:?}"
    );
    assert!(
        per_structure["bi"] < per_structure["uni"],
        "{per_structure:?}"
    );
    assert!(
        per_structure["closed-loop"] < per_structure["intra"],
        "{per_structure:?}"
    );
}
