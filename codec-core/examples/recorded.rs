//! Codes recorded feature maps with one or more encoder settings and prints the rate (bytes per
//! key and predicted unit, kbit/s at the given frame rate), the feature-map error and the
//! encode/decode time per frame. The maps are `splitinfer-front` buffers, one file per frame,
//! as `scripts/record-maps.sh` writes them.
//!
//! `cargo run --release -p codec-core --example recorded -- DIR [--fps 10] [--lose-slices P] "quality=1 lambda=0.3" ...`
//!
//! `--lose-slices P` drops each slice of a unit with probability P before decoding (the head
//! always arrives), so that the SNR shows what concealment keeps on a lossy link.
//!
//! A setting is a space-separated list of `key=value` among `mode` (a [`Structure`] name),
//! `quality`, `lambda`, `rounding`, `key-interval`, `search-range`, `block-size`, `bits`,
//! `slice-channels`, `gradual-refresh` (0 or 1), `fractional-motion` (0 or 1), `resilient` (0 or 1).

use codec_core::codec::{CodecConfig, Decoder, Encoder, Structure, assemble_unit, unit_pieces};
use codec_core::{FeatureFrame, UnitKind};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: recorded DIR [--fps N] SETTING...")?;
    let mut fps = 10.0f64;
    let mut lose = 0.0f64;
    let mut settings = Vec::new();
    while let Some(a) = args.next() {
        if a == "--fps" {
            fps = args.next().ok_or("--fps needs a value")?.parse()?;
        } else if a == "--lose-slices" {
            lose = args.next().ok_or("--lose-slices needs a value")?.parse()?;
        } else {
            settings.push(a);
        }
    }
    if settings.is_empty() {
        settings.push(String::new());
    }
    let frames = load(&dir)?;
    println!(
        "{} frames from {dir}; {:<48} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9}",
        frames.len(),
        "setting",
        "key B",
        "pred B",
        "kbit/s",
        "SNR dB",
        "enc ms",
        "dec ms",
        "changed"
    );
    for s in &settings {
        let cfg = parse(s)?;
        let mut enc = Encoder::new(cfg)?;
        let mut dec = Decoder::new();
        dec.set_concealment(true);
        // Deterministic slice losses (a 64-bit LCG), the same for every setting.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut lost = |_: &[u8]| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) < lose
        };
        let (mut key, mut nkey, mut pred, mut npred) = (0usize, 0usize, 0usize, 0usize);
        let (mut signal, mut noise) = (0f64, 0f64);
        let (mut tenc, mut tdec) = (0f64, 0f64);
        let mut changed = 0usize;
        let mut last: Option<FeatureFrame> = None;
        for f in &frames {
            let t = Instant::now();
            let units = enc.push(f)?;
            tenc += t.elapsed().as_secs_f64();
            for u in units {
                if u.kind.is_sync_point() || u.kind == UnitKind::Intra {
                    key += u.data.len();
                    nkey += 1;
                } else {
                    pred += u.data.len();
                    npred += 1;
                }
                let received = if lose > 0.0 {
                    let pieces = unit_pieces(&u.data)?;
                    let mut kept = vec![pieces[0]];
                    kept.extend(pieces[1..].iter().copied().filter(|p| !lost(p)));
                    assemble_unit(&kept)?
                } else {
                    u.data.clone()
                };
                let t = Instant::now();
                let out = dec.decode(&received)?;
                tdec += t.elapsed().as_secs_f64();
                for o in out {
                    if let Some(l) = &last
                        && !u.kind.is_sync_point()
                    {
                        for (a, b) in l.tensors.iter().zip(&o.tensors) {
                            changed += a
                                .to_f32()
                                .iter()
                                .zip(b.to_f32())
                                .filter(|(x, y)| **x != *y)
                                .count();
                        }
                    }
                    let original = frames
                        .iter()
                        .find(|x| x.index == o.index)
                        .ok_or("decoded an unknown frame")?;
                    for (a, b) in original.tensors.iter().zip(&o.tensors) {
                        for (x, y) in a.to_f32().iter().zip(b.to_f32()) {
                            signal += f64::from(*x) * f64::from(*x);
                            noise += (f64::from(*x) - f64::from(y)).powi(2);
                        }
                    }
                    last = Some(o);
                }
            }
        }
        let n = frames.len() as f64;
        println!(
            "{:<60} {:>9.0} {:>9.0} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>9.0}",
            if s.is_empty() { "(defaults)" } else { s },
            key as f64 / nkey.max(1) as f64,
            pred as f64 / npred.max(1) as f64,
            (key + pred) as f64 * 8.0 / 1000.0 / (n / fps),
            10.0 * (signal / noise.max(1e-30)).log10(),
            tenc * 1000.0 / n,
            tdec * 1000.0 / n,
            changed as f64 / npred.max(1) as f64,
        );
    }
    Ok(())
}

/// Every file of `dir`, sorted by name, as one raw feature frame each.
pub fn load(dir: &str) -> Result<Vec<FeatureFrame>, Box<dyn std::error::Error>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut frames = Vec::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        let mut f = FeatureFrame::from_raw(&std::fs::read(p)?)?;
        f.index = i as u64;
        frames.push(f);
    }
    if frames.is_empty() {
        return Err(format!("no recorded frames in {dir}").into());
    }
    Ok(frames)
}

fn parse(s: &str) -> Result<CodecConfig, Box<dyn std::error::Error>> {
    let mut cfg = CodecConfig {
        structure: Structure::Adaptive,
        ..CodecConfig::default()
    };
    for kv in s.split_whitespace() {
        let (k, v) = kv.split_once('=').ok_or("settings are key=value")?;
        match k {
            "mode" => cfg.structure = Structure::from_name(v).ok_or("unknown mode")?,
            "quality" => cfg.quality = v.parse()?,
            "lambda" => cfg.lambda = v.parse()?,
            "rounding" => cfg.rounding = v.parse()?,
            "key-interval" => cfg.key_interval = v.parse()?,
            "search-range" => cfg.search_range = v.parse()?,
            "block-size" => cfg.block_size = v.parse()?,
            "bits" => cfg.bits = v.parse()?,
            "slice-channels" => cfg.slice_channels = v.parse()?,
            "gradual-refresh" => cfg.gradual_refresh = v.parse::<u8>()? != 0,
            "fractional-motion" => cfg.fractional_motion = v.parse::<u8>()? != 0,
            "resilient" => cfg.resilient = v.parse::<u8>()? != 0,
            other => return Err(format!("unknown setting {other}").into()),
        }
    }
    Ok(cfg)
}
