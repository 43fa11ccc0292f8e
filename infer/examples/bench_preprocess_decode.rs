//! Measures the per-frame cost of preprocessing and output decoding with the committed profiles.
//!
//!     source .cache/env.sh
//!     cargo run --release -p fmap-infer --example bench_preprocess_decode [iterations]
//!
//! Preprocessing: a real 768x576 RGB frame (dog.jpg) → each model's input. Decoding: the real
//! outputs of each model on that frame (one ONNX Runtime run), decoded repeatedly with the
//! profile thresholds. Prints the median and mean milliseconds per frame.

use std::path::{Path, PathBuf};
use std::time::Instant;

use fmap_infer::decode::{OutputDecoder, outputs_from_tensors};
use fmap_infer::preprocess::{PixelFormat, Preprocessor, VideoFrameRef};
use fmap_infer::profile::Profile;
use fmap_infer::runtime::{Session, init_runtime};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate inside the workspace")
        .to_path_buf()
}

fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms.iter().sum::<f64>() / ms.len() as f64)
}

fn time(iterations: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up (builds the resize tables)
    stats(
        (0..iterations)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    let images = std::env::var_os("FMAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".cache/images"));
    let img = image::open(images.join("dog.jpg"))?.to_rgb8();
    let (w, h) = (img.width(), img.height());
    let frame = VideoFrameRef::packed(w, h, PixelFormat::Rgb, img.as_raw());
    let rt = init_runtime(None)?;
    println!("ONNX Runtime: {}", rt.display());
    for name in ["nanodet", "ssd_mobilenet_v2_coco_quant"] {
        let model = workspace().join("models").join(format!("{name}.onnx"));
        let profile = Profile::load_for_model(&model)?;
        let pre = Preprocessor::new(&profile.input)?;
        let (pre_med, pre_mean) = time(iterations, || {
            std::hint::black_box(pre.prepare(&frame).unwrap());
        });
        println!(
            "{name}: preprocess {w}x{h} -> {}x{} {:?} {:?}: median {pre_med:.2} ms, mean {pre_mean:.2} ms",
            profile.input.width, profile.input.height, profile.input.dtype, profile.input.layout
        );
        let (input, mapping) = pre.prepare(&frame)?;
        let mut session = Session::from_file(&model, 2)?;
        let outputs = outputs_from_tensors(session.run(vec![input.into_named_value()])?);
        let decoder = OutputDecoder::from_profile(&profile)?;
        let mut found = 0;
        let (dec_med, dec_mean) = time(iterations * 4, || {
            found = decoder
                .decode_with_profile_thresholds(&outputs, &mapping)
                .unwrap()
                .len();
        });
        println!(
            "{name}: decode + NMS ({found} detections): median {dec_med:.3} ms, mean {dec_mean:.3} ms"
        );
    }
    Ok(())
}
