//! `fmap-calibrate`: measures how much the back network's outputs react to noise in each
//! channel of the cut tensors, and writes a calibration file
//! ([`fmap_infer::calibration::Calibration`]) from which a codec can derive per-channel
//! quantizer steps ([`fmap_infer::calibration::channel_weights`]). Training-free: the network is
//! only run, never differentiated.
//!
//! # Method
//!
//! 1. Frames: `frames` frames of a clip, `stride` frames apart starting at the first (by default
//!    spread evenly over the first 300 frames, or the whole clip if shorter), decoded and run
//!    through the real `splitinfer-front` (a GStreamer pipeline, [`record_frames`]); what comes
//!    out are the cut tensors exactly as the codec would receive them.
//! 2. The back part of the model (split with [`fmap_infer::split::split_with_shapes`] at the cut
//!    the front produced, as `splitinfer-back` does) runs once per frame on the clean tensors:
//!    the reference outputs `y`.
//! 3. For every frame `f`, every cut tensor and every channel plane `c` of it: Gaussian noise of
//!    standard deviation `σ_f = noise × std(tensor on frame f)` is added to channel `c` only, the
//!    back part runs again, and `D_c = Σ_outputs mean_elements (y_noisy − y)²`.
//!    8-bit tensors (codec-core `TensorData::U8`) are perturbed in code units: code + noise,
//!    rounded, clamped to 0..=255, with `σ` in code units.
//! 4. `s_c = mean over frames of D_c / σ_f²`: output distortion per unit of noise variance in
//!    channel `c` (a finite-difference estimate of the back network's local gain; one noise
//!    draw per frame and channel, so the frame average also averages the noise).
//!
//! "Outputs" in step 3 are, by default ([`MeasureAt::Auto`]), the back network's outputs, except
//! for models that select their detections themselves: there `D` is measured on the boxes and
//! scores that enter `NonMaxSuppression`. After the selection a small change can swap two of the
//! top-k detections, and SSD's outputs then jump by whole class ids (mean squared change ~200
//! for any channel), which measures nothing about the size of the change.
//!
//! The noise comes from a fixed-seed generator keyed by (frame position, tensor, channel), so a
//! run is reproducible bit for bit and does not depend on the order of the work.
//!
//! Cost: one back run per frame, tensor and channel, plus one clean run per frame (NanoDet
//! stage2: 16 frames × 128 channels = 2048 back runs, ~25–35 ms each on 2 threads).
//!
//! # Validity
//!
//! `s_c` is meaningful where `D` grows like `σ²`, i.e. the back network is locally linear at the
//! noise level used. On NanoDet (float) it is: from noise 0.1 to 1.0 the sensitivities agree to
//! within 1% (log-correlation across channels > 0.998), and 2 frames already rank the channels
//! like 16 (0.99). The 8-bit SSD is not: its activations are requantized after every layer, so
//! `D` is dominated by single-code flips whose number barely depends on `σ` (`D` only doubles
//! from noise 0.1 to 1.0) and the channels come out nearly equal (max/min ≈ 1.3 over 16
//! frames); the weights derived from such a file stay close to uniform.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use codec_core::{FeatureFrame, Tensor, TensorData};
use fmap_infer::calibration::{Calibration, FORMAT, TensorCalibration, TensorTransform, VERSION};
use fmap_infer::onnx::Model;
use fmap_infer::runtime::{Session, from_codec_tensor};
use fmap_infer::split::split_with_shapes;

use crate::evaluate::{Clip, discover};
use crate::runner::picker;
use crate::stream::run_recording;

/// Frames measured by default.
pub const DEFAULT_FRAMES: usize = 16;
/// By default the frames are spread over this many frames from the start of the clip.
pub const DEFAULT_SPAN: u64 = 300;
/// Default noise standard deviation, relative to the tensor's standard deviation.
pub const DEFAULT_NOISE: f32 = 0.3;
/// Default ONNX Runtime intra-op threads.
pub const DEFAULT_THREADS: usize = 2;
/// Seed of the noise generator (any fixed value; changing it changes the noise draws).
const SEED: u64 = 0x6d61_705f_6361_6c31;
const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// What to calibrate and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub model: PathBuf,
    /// A split point of the model's profile (or comma-separated tensor names).
    pub split: String,
    pub video: PathBuf,
    /// Frames to measure (at least 1).
    pub frames: usize,
    /// Frames between two measured frames; `None`: [`default_stride`].
    pub stride: Option<u64>,
    /// Noise standard deviation relative to the tensor's (see the module documentation).
    pub noise: f32,
    /// ONNX Runtime intra-op threads (front and back).
    pub threads: usize,
    /// Where the output change is measured.
    pub measure_at: MeasureAt,
    /// Also fit a channel transform (KLT) of every f32 cut tensor on the frames.
    pub klt: bool,
}

impl Options {
    /// The defaults for a model and split: [`DEFAULT_FRAMES`] frames of `video`,
    /// [`DEFAULT_NOISE`], [`DEFAULT_THREADS`] threads.
    pub fn new(model: impl Into<PathBuf>, split: &str, video: impl Into<PathBuf>) -> Options {
        Options {
            model: model.into(),
            split: split.into(),
            video: video.into(),
            frames: DEFAULT_FRAMES,
            stride: None,
            noise: DEFAULT_NOISE,
            threads: DEFAULT_THREADS,
            measure_at: MeasureAt::Auto,
            klt: false,
        }
    }
}

/// Where a measurement is.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// 1-based positions and counts.
    pub frame: usize,
    pub frames: usize,
    pub tensor_name: &'a str,
    pub tensor: usize,
    pub tensors: usize,
    pub channel: usize,
    pub channels: usize,
    /// Perturbed back runs done and in all.
    pub runs_done: usize,
    pub runs_total: usize,
    /// Time since the first back run.
    pub elapsed: Duration,
}

impl Progress<'_> {
    /// Time left at the mean pace so far.
    pub fn eta(&self) -> Option<Duration> {
        (self.runs_done > 0).then(|| {
            self.elapsed
                .mul_f64((self.runs_total - self.runs_done) as f64 / self.runs_done as f64)
        })
    }
}

/// A finished calibration with what it cost.
#[derive(Debug, Clone)]
pub struct Report {
    pub calibration: Calibration,
    /// Indices (from 0) of the clip frames measured.
    pub source_frames: Vec<u64>,
    /// Decoding the clip and running the front network.
    pub front_time: Duration,
    /// Splitting the model and creating the back session.
    pub setup_time: Duration,
    /// Perturbed back runs, and the time of all back runs (clean ones included).
    pub back_runs: usize,
    pub back_time: Duration,
    /// The tensors the output change was measured on (see [`MeasureAt`]).
    pub measured: Vec<String>,
}

/// Min, median and max of a tensor's sensitivities, and how many channels lie within a factor
/// of 2 of the median.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub within_2x_of_median: usize,
    pub channels: usize,
}

impl Spread {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => v[n / 2],
            _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        };
        Some(Spread {
            min: v[0],
            median,
            max: v[n - 1],
            within_2x_of_median: v
                .iter()
                .filter(|&&s| s >= 0.5 * median && s <= 2.0 * median)
                .count(),
            channels: n,
        })
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "min {:.3e}, median {:.3e}, max {:.3e} (max/min {:.1}); {}/{} channels within 2x of \
             the median",
            self.min,
            self.median,
            self.max,
            self.max / self.min,
            self.within_2x_of_median,
            self.channels
        )
    }
}

/// The frames between measured frames when none is given: `frames` frames spread evenly over
/// the first [`DEFAULT_SPAN`] frames of a clip of `clip_frames` frames (or the whole clip if
/// it is shorter); at least 1.
pub fn default_stride(clip_frames: u64, frames: usize) -> u64 {
    (clip_frames.min(DEFAULT_SPAN) / frames.max(1) as u64).max(1)
}

/// Number of frames of the video's first video stream (duration × frame rate, rounded).
pub fn clip_frames(video: &Path) -> Result<u64, String> {
    let info = discover(video)?;
    let stream = info
        .video_streams()
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} has no video stream", video.display()))?;
    let fr = stream.framerate();
    let secs = info.duration().map(|d| d.nseconds() as f64 / 1e9);
    match secs {
        Some(s) if s > 0.0 && fr.numer() > 0 && fr.denom() > 0 => {
            Ok((s * fr.numer() as f64 / fr.denom() as f64).round() as u64)
        }
        _ => Err(format!(
            "{}: no duration or frame rate; give --stride",
            video.display()
        )),
    }
}

/// Runs the real `splitinfer-front` on frames 0, `stride`, 2·`stride`, … (`frames` of them, fewer
/// if the clip ends first) of `video` and returns the feature frames it produced.
pub fn record_frames(
    video: &Path,
    model: &Path,
    split: &str,
    frames: usize,
    stride: u64,
    threads: usize,
) -> Result<Vec<FeatureFrame>, String> {
    if frames == 0 {
        return Err("no frames to record".into());
    }
    let clip = Clip {
        video: video.to_path_buf(),
        model: model.to_path_buf(),
        // The clip's limiter stops decoding right after the last frame the picker keeps.
        frames: (frames as u64 - 1) * stride.max(1) + 1,
        threads: threads as u32,
    };
    let desc = format!(
        "{}{}splitinfer-front {} split-at=\"{split}\" ! appsink name=sink",
        clip.source(),
        picker(stride),
        clip.model()
    );
    let (rec, _) = run_recording(&desc, None, RUN_LIMIT).map_err(|e| {
        if e.contains("no element \"splitinfer-front\"") {
            format!(
                "{e}\n  (splitinfer-front not found: build the plugin with `cargo build --release` \
                 and set GST_PLUGIN_PATH to the folder of libgstfmap.so, e.g. target/release)"
            )
        } else {
            e
        }
    })?;
    rec.buffers
        .iter()
        .map(|b| {
            let map = b.map_readable().map_err(|_| "unreadable feature frame")?;
            FeatureFrame::from_raw(&map).map_err(|e| format!("bad feature frame: {e}"))
        })
        .collect()
}

/// Where the output change `D` is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasureAt {
    /// The inputs (boxes, scores) of the back network's `NonMaxSuppression` nodes if it has
    /// any, else its outputs. Detection selection (NMS, top-k, sorting) is not continuous: a
    /// tiny change can swap two detections, and the outputs after it then jump (SSD's class
    /// ids, for instance, change by tens), which says nothing about the size of the change.
    Auto,
    /// The back network's outputs.
    Outputs,
    /// These tensors of the back network.
    Tensors(Vec<String>),
}

impl MeasureAt {
    /// `auto`, `outputs`, or comma-separated tensor names.
    pub fn parse(s: &str) -> MeasureAt {
        match s.trim() {
            "auto" | "" => MeasureAt::Auto,
            "outputs" => MeasureAt::Outputs,
            list => MeasureAt::Tensors(
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
            ),
        }
    }
}

/// The boxes and scores inputs of every top-level `NonMaxSuppression` node of a model, in graph
/// order.
pub fn nms_inputs(model: &Model) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for n in model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "NonMaxSuppression")
    {
        for i in n.inputs.iter().take(2).filter(|i| !i.is_empty()) {
            if !found.contains(i) {
                found.push(i.clone());
            }
        }
    }
    found
}

/// The back part of a split model, run on codec-core tensors.
pub struct BackNetwork {
    session: Session,
    /// The cut tensors, in the front's order.
    pub cut: Vec<String>,
    /// The tensors [`BackNetwork::run`] returns: the back part's outputs, or the tensors asked
    /// for with [`MeasureAt`].
    pub measured: Vec<String>,
}

impl BackNetwork {
    /// Splits `model_bytes` at `cut` (the tensors a front produced) with exact shapes, as
    /// `splitinfer-back` does, and creates a session computing what `at` names from the cut
    /// (when that is not the outputs, the back part is split once more there and its first
    /// part kept).
    pub fn open(
        model_bytes: &[u8],
        cut: &[String],
        at: &MeasureAt,
        threads: usize,
    ) -> Result<BackNetwork, String> {
        let parts = split_with_shapes(model_bytes, cut, threads)
            .map_err(|e| format!("splitting the model at {}: {e}", cut.join(", ")))?;
        let (mut got, mut want) = (parts.cut.clone(), cut.to_vec());
        got.sort();
        want.sort();
        if got != want {
            return Err(format!(
                "the front produced {} but cutting the model there needs {}",
                cut.join(", "),
                parts.cut.join(", ")
            ));
        }
        let back = Model::parse(&parts.back).map_err(|e| e.to_string())?;
        let outputs: Vec<&str> = back.graph.outputs.iter().map(|o| o.name.as_str()).collect();
        let targets = match at {
            MeasureAt::Outputs => Vec::new(),
            MeasureAt::Auto => nms_inputs(&back),
            MeasureAt::Tensors(t) if t.is_empty() => {
                return Err("no tensors to measure at".into());
            }
            MeasureAt::Tensors(t) => t.clone(),
        };
        // Outputs of the back part are measured on the back part itself; other tensors by
        // splitting it once more there and keeping its first part.
        let network = if targets.iter().all(|t| outputs.contains(&t.as_str())) {
            parts.back
        } else {
            let sub = split_with_shapes(&parts.back, &targets, threads).map_err(|e| {
                format!(
                    "splitting the back part at the measured tensors {}: {e} (the model's \
                     outputs {} can be measured only without other tensors)",
                    targets.join(", "),
                    outputs.join(", ")
                )
            })?;
            if let Some(t) = targets.iter().find(|t| !sub.cut.contains(t)) {
                return Err(format!(
                    "cannot measure at '{t}': nothing after it in the back network reads it"
                ));
            }
            sub.front
        };
        let session = Session::from_memory(&network, threads)
            .map_err(|e| format!("creating the back session: {e}"))?;
        // Splitting at the targets can add tensors that cross that cut too: they are computed
        // but not measured.
        let measured = session
            .outputs()
            .iter()
            .map(|o| o.name.clone())
            .filter(|n| targets.is_empty() || targets.contains(n))
            .collect();
        Ok(BackNetwork {
            session,
            cut: cut.to_vec(),
            measured,
        })
    }

    /// Runs the back part on `tensors` (one per cut tensor, any order) and returns the
    /// [`BackNetwork::measured`] tensors as floats, in that order.
    pub fn run(&mut self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>, String> {
        let mut inputs = Vec::with_capacity(self.session.inputs().len());
        for info in self.session.inputs() {
            let t = tensors
                .iter()
                .find(|t| t.name == info.name)
                .ok_or_else(|| format!("no tensor for the back input '{}'", info.name))?;
            let v = from_codec_tensor(t, Some(&info.dims)).map_err(|e| e.to_string())?;
            inputs.push((info.name.clone(), v));
        }
        Ok(self
            .session
            .run(inputs)
            .map_err(|e| format!("back network: {e}"))?
            .into_iter()
            .filter(|(name, _)| self.measured.contains(name))
            .map(|(_, v)| v.data.to_f32())
            .collect())
    }
}

/// Standard deviation of all elements of a tensor, in its own units (8-bit codes for u8).
pub fn native_std(t: &Tensor) -> f64 {
    let (n, sum, sq) = match &t.data {
        TensorData::F32(v) => v.iter().fold((0usize, 0f64, 0f64), |(n, s, q), &x| {
            (n + 1, s + x as f64, q + x as f64 * x as f64)
        }),
        TensorData::U8 { codes, .. } => codes.iter().fold((0, 0.0, 0.0), |(n, s, q), &x| {
            (n + 1, s + x as f64, q + x as f64 * x as f64)
        }),
    };
    if n == 0 {
        return 0.0;
    }
    let mean = sum / n as f64;
    (sq / n as f64 - mean * mean).max(0.0).sqrt()
}

/// `Σ_outputs mean_elements (noisy − clean)²`.
pub fn output_distortion(clean: &[Vec<f32>], noisy: &[Vec<f32>]) -> Result<f64, String> {
    if clean.len() != noisy.len() {
        return Err(format!(
            "the back network gave {} outputs, then {}",
            clean.len(),
            noisy.len()
        ));
    }
    let mut d = 0.0;
    for (i, (a, b)) in clean.iter().zip(noisy).enumerate() {
        if a.len() != b.len() {
            return Err(format!(
                "back output {i} has {} elements on the clean tensors but {} on the noisy ones \
                 (outputs of varying size cannot be compared element by element)",
                a.len(),
                b.len()
            ));
        }
        if !a.is_empty() {
            let sq: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| (y as f64 - x as f64).powi(2))
                .sum();
            d += sq / a.len() as f64;
        }
    }
    Ok(d)
}

/// A small deterministic normal generator: xorshift64* (Vigna) seeded through splitmix64, with
/// Box–Muller. Written out here (a few lines) rather than taken from a crate: fmap-eval has no
/// random-number dependency, and a generator defined in this file draws the same noise, hence
/// writes the same calibration file, whatever crate versions a build resolves.
pub struct NormalRng {
    state: u64,
    spare: Option<f64>,
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl NormalRng {
    /// A generator for one (frame, tensor, channel) cell: the keys are mixed in one after the
    /// other, so every cell draws independent-looking noise.
    pub fn for_cell(seed: u64, keys: &[u64]) -> NormalRng {
        let state = keys
            .iter()
            .fold(splitmix64(seed), |s, &k| splitmix64(s ^ k));
        NormalRng {
            // xorshift's state must not be 0.
            state: if state == 0 { SEED } else { state },
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1]: 53 random bits, never 0 (Box–Muller takes its logarithm).
    fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal value.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * self.uniform_open0().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform_open0();
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// `t` with Gaussian noise of standard deviation `sigma` (in the tensor's own units) added to
/// channel plane `channel` only. 8-bit codes are rounded and clamped to 0..=255.
pub fn perturb_channel(
    t: &Tensor,
    channel: usize,
    sigma: f64,
    rng: &mut NormalRng,
) -> Result<Tensor, String> {
    let plane = t.shape.plane_len();
    if channel >= t.shape.channels {
        return Err(format!(
            "{}: channel {channel} out of {}",
            t.name, t.shape.channels
        ));
    }
    let range = channel * plane..(channel + 1) * plane;
    let mut out = t.clone();
    match &mut out.data {
        TensorData::F32(v) => {
            for x in &mut v[range] {
                *x = (*x as f64 + sigma * rng.normal()) as f32;
            }
        }
        TensorData::U8 { codes, .. } => {
            for x in &mut codes[range] {
                *x = (*x as f64 + sigma * rng.normal()).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// Steps 2–4 of the method on recorded frames: the sensitivities of every cut tensor, in the
/// order of the frames' tensors. `progress` is called after every perturbed back run.
pub fn measure(
    back: &mut BackNetwork,
    frames: &[FeatureFrame],
    noise: f32,
    mut progress: impl FnMut(&Progress<'_>),
) -> Result<(Vec<TensorCalibration>, Duration), String> {
    let first = frames.first().ok_or("no frames to measure")?;
    if !(noise.is_finite() && noise > 0.0) {
        return Err(format!("noise {noise} must be finite and positive"));
    }
    let mut result: Vec<TensorCalibration> = first
        .tensors
        .iter()
        .map(|t| TensorCalibration {
            name: t.name.clone(),
            channels: t.shape.channels,
            sensitivity: vec![0.0; t.shape.channels],
            transform: None,
        })
        .collect();
    let runs_total = frames.len() * result.iter().map(|t| t.channels).sum::<usize>();
    let mut runs_done = 0;
    let start = Instant::now();
    for (fi, frame) in frames.iter().enumerate() {
        let shapes_match =
            frame.tensors.len() == result.len()
                && frame.tensors.iter().zip(&result).all(|(t, r)| {
                    t.name == r.name && t.shape == first.tensor(&r.name).unwrap().shape
                });
        if !shapes_match {
            return Err(format!(
                "frame {} carries other tensors than the first frame",
                frame.index
            ));
        }
        let clean_inputs: Vec<&Tensor> = frame.tensors.iter().collect();
        let clean = back.run(&clean_inputs)?;
        for (ti, t) in frame.tensors.iter().enumerate() {
            let sigma = noise as f64 * native_std(t);
            if !(sigma > 0.0 && sigma.is_finite()) {
                return Err(format!(
                    "{} is constant (or not finite) on frame {}: no noise level to measure with",
                    t.name, frame.index
                ));
            }
            for c in 0..t.shape.channels {
                let mut rng = NormalRng::for_cell(SEED, &[fi as u64, ti as u64, c as u64]);
                let noisy = perturb_channel(t, c, sigma, &mut rng)?;
                let mut inputs = clean_inputs.clone();
                inputs[ti] = &noisy;
                let y = back.run(&inputs)?;
                let d = output_distortion(&clean, &y)?;
                result[ti].sensitivity[c] += d / (sigma * sigma) / frames.len() as f64;
                runs_done += 1;
                progress(&Progress {
                    frame: fi + 1,
                    frames: frames.len(),
                    tensor_name: &t.name,
                    tensor: ti + 1,
                    tensors: frame.tensors.len(),
                    channel: c + 1,
                    channels: t.shape.channels,
                    runs_done,
                    runs_total,
                    elapsed: start.elapsed(),
                });
            }
        }
    }
    Ok((result, start.elapsed()))
}

/// The whole measurement (see the module documentation); the caller saves the result.
pub fn calibrate(o: &Options, progress: impl FnMut(&Progress<'_>)) -> Result<Report, String> {
    if o.frames == 0 {
        return Err("--frames must be at least 1".into());
    }
    if !(o.noise.is_finite() && o.noise > 0.0) {
        return Err(format!("--noise {} must be finite and positive", o.noise));
    }
    let model_bytes = std::fs::read(&o.model).map_err(|e| format!("{}: {e}", o.model.display()))?;
    let stride = match o.stride {
        Some(s) => s.max(1),
        None => default_stride(clip_frames(&o.video)?, o.frames),
    };
    let t0 = Instant::now();
    let frames = record_frames(&o.video, &o.model, &o.split, o.frames, stride, o.threads)?;
    let front_time = t0.elapsed();
    let first = frames
        .first()
        .ok_or_else(|| format!("{}: no frames decoded", o.video.display()))?;
    let cut: Vec<String> = first.tensors.iter().map(|t| t.name.clone()).collect();
    let t1 = Instant::now();
    let mut back = BackNetwork::open(&model_bytes, &cut, &o.measure_at, o.threads)?;
    let setup_time = t1.elapsed();
    let (mut tensors, back_time) = measure(&mut back, &frames, o.noise, progress)?;
    if o.klt {
        for (i, t) in tensors.iter_mut().enumerate() {
            t.transform = fit_transform(&frames, i);
        }
    }
    let calibration = Calibration {
        format: FORMAT.into(),
        version: VERSION,
        model: o
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        split: o.split.clone(),
        frames: frames.len(),
        noise: o.noise,
        tensors,
    };
    calibration.validate().map_err(|e| e.to_string())?;
    Ok(Report {
        back_runs: frames.len() * cut_channels(&calibration),
        source_frames: (0..frames.len() as u64).map(|i| i * stride).collect(),
        calibration,
        measured: back.measured,
        front_time,
        setup_time,
        back_time,
    })
}

/// The KLT of tensor `index` over `frames`: the eigenvectors of the channels' covariance (every
/// pixel of every frame a sample), strongest first. `None` for 8-bit tensors (their codes are
/// coded as they are) and for empty ones.
pub fn fit_transform(frames: &[FeatureFrame], index: usize) -> Option<TensorTransform> {
    let first = frames.first()?.tensors.get(index)?;
    if !matches!(first.data, TensorData::F32(_)) {
        return None;
    }
    let c = first.shape.channels;
    let plane = first.shape.plane_len();
    if c == 0 || plane == 0 {
        return None;
    }
    let mut sum = vec![0.0f64; c];
    let mut cross = nalgebra::DMatrix::<f64>::zeros(c, c);
    let mut samples = 0usize;
    let mut column = vec![0.0f64; c];
    for frame in frames {
        let t = frame.tensors.get(index)?;
        let TensorData::F32(v) = &t.data else {
            return None;
        };
        if t.shape != first.shape {
            return None;
        }
        for p in 0..plane {
            for (ch, x) in column.iter_mut().enumerate() {
                *x = f64::from(v[ch * plane + p]);
            }
            if column.iter().any(|x| !x.is_finite()) {
                continue;
            }
            for (a, &x) in column.iter().enumerate() {
                sum[a] += x;
                let row = x;
                for (b, &y) in column.iter().enumerate().skip(a) {
                    cross[(a, b)] += row * y;
                }
            }
            samples += 1;
        }
    }
    if samples < 2 {
        return None;
    }
    let n = samples as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let cov = nalgebra::DMatrix::from_fn(c, c, |a, b| {
        let (i, j) = if a <= b { (a, b) } else { (b, a) };
        cross[(i, j)] / n - mean[i] * mean[j]
    });
    let eigen = nalgebra::SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..c).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    Some(TensorTransform {
        mean: mean.iter().map(|&m| m as f32).collect(),
        variances: order
            .iter()
            .map(|&k| eigen.eigenvalues[k].max(0.0))
            .collect(),
        basis: order
            .iter()
            .map(|&k| {
                eigen
                    .eigenvectors
                    .column(k)
                    .iter()
                    .map(|&v| v as f32)
                    .collect()
            })
            .collect(),
    })
}

fn cut_channels(c: &Calibration) -> usize {
    c.tensors.iter().map(|t| t.channels).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec_core::Shape;

    #[test]
    fn klt_finds_the_principal_directions_strongest_first() {
        // Channels 0 and 1 carry one strong source (+a, −a), channel 2 a weak one: the first
        // component is (1, −1, 0)/√2 with variance 2·var(a), the second (0, 0, 1).
        let shape = Shape::new(3, 4, 4);
        let frames: Vec<FeatureFrame> = (0..6)
            .map(|f| {
                let plane = shape.plane_len();
                let mut v = vec![0.0f32; shape.len()];
                for p in 0..plane {
                    let a = ((f * plane + p) as f32 * 0.71).sin() * 3.0;
                    let b = ((f * plane + p) as f32 * 1.37).cos() * 0.5;
                    v[p] = 1.0 + a;
                    v[plane + p] = 2.0 - a;
                    v[2 * plane + p] = b;
                }
                FeatureFrame::new(
                    f as u64,
                    None,
                    vec![Tensor::from_f32("t", shape, v).unwrap()],
                )
            })
            .collect();
        let t = fit_transform(&frames, 0).expect("an f32 tensor");
        assert!(t.variances[0] > 10.0 * t.variances[1] && t.variances[1] > 100.0 * t.variances[2]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let first = &t.basis[0];
        assert!((first[0].abs() - h).abs() < 1e-3 && (first[1] + first[0]).abs() < 1e-3);
        assert!(t.basis[1][2].abs() > 0.999);
        for (i, r) in t.basis.iter().enumerate() {
            for (j, q) in t.basis.iter().enumerate() {
                let dot: f32 = r.iter().zip(q).map(|(a, b)| a * b).sum();
                assert!((dot - f32::from(u8::from(i == j))).abs() < 1e-4);
            }
        }
        assert!((t.mean[0] + t.mean[1] - 3.0).abs() < 1e-3);
        let u8frame = FeatureFrame::new(
            0,
            None,
            vec![Tensor::from_u8("q", Shape::new(2, 1, 1), vec![1, 2], 0.1, 0).unwrap()],
        );
        assert!(
            fit_transform(&[u8frame], 0).is_none(),
            "8-bit cuts get no transform"
        );
    }

    #[test]
    fn default_stride_spreads_over_the_first_300_frames() {
        assert_eq!(default_stride(795, 16), 18);
        assert_eq!(default_stride(795, 2), 150);
        assert_eq!(default_stride(100, 16), 6);
        assert_eq!(default_stride(10, 16), 1);
        assert_eq!(default_stride(0, 16), 1);
    }

    #[test]
    fn noise_is_standard_normal_and_reproducible() {
        let mut rng = NormalRng::for_cell(SEED, &[1, 2, 3]);
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 1/sqrt(n) ≈ 0.0022 for the mean, sqrt(2/n) ≈ 0.0032 for the variance.
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.015, "{var}");
        let beyond_2 = draws.iter().filter(|z| z.abs() > 2.0).count() as f64 / n as f64;
        assert!((beyond_2 - 0.0455).abs() < 0.003, "{beyond_2}");
        let mut again = NormalRng::for_cell(SEED, &[1, 2, 3]);
        assert_eq!(again.normal(), draws[0]);
        let mut other = NormalRng::for_cell(SEED, &[1, 2, 4]);
        assert_ne!(other.normal(), draws[0]);
    }

    #[test]
    fn noise_goes_to_one_channel_only() {
        let shape = Shape::new(3, 4, 5);
        let f = Tensor::from_f32("f", shape, (0..60).map(|x| x as f32).collect()).unwrap();
        let mut rng = NormalRng::for_cell(SEED, &[0]);
        let p = perturb_channel(&f, 1, 2.0, &mut rng).unwrap();
        let (a, b) = (f.to_f32(), p.to_f32());
        assert_eq!(a[..20], b[..20]);
        assert_eq!(a[40..], b[40..]);
        assert!(a[20..40].iter().zip(&b[20..40]).all(|(x, y)| x != y));
        assert!(perturb_channel(&f, 3, 1.0, &mut rng).is_err());

        // 8-bit: code units, rounded, clamped; scale and zero point kept.
        let codes: Vec<u8> = (0..60).map(|i| [0, 128, 255][i / 20]).collect();
        let q = Tensor::from_u8("q", shape, codes.clone(), 0.5, 3).unwrap();
        for c in 0..3 {
            let p = perturb_channel(&q, c, 30.0, &mut rng).unwrap();
            let TensorData::U8 {
                codes: out,
                scale,
                zero_point,
            } = &p.data
            else {
                panic!("not u8")
            };
            assert_eq!((*scale, *zero_point), (0.5, 3));
            let changed = (0..60).filter(|&i| out[i] != codes[i]).collect::<Vec<_>>();
            assert!(changed.iter().all(|i| i / 20 == c), "{changed:?}");
            // At 128 nearly every code moves (|30 z| < 0.5 has probability ~1.3%); at 0 and
            // 255 only the draws that point inwards do, the others are clamped.
            let moved = |min: usize| changed.len() >= min;
            match c {
                1 => assert!(moved(17), "{changed:?}"),
                _ => assert!(moved(4) && changed.len() < 20, "{c}: {changed:?}"),
            }
        }
    }

    #[test]
    fn std_and_distortion() {
        let t = Tensor::from_f32("t", Shape::new(1, 1, 4), vec![1.0, 3.0, 1.0, 3.0]).unwrap();
        assert_eq!(native_std(&t), 1.0);
        let q = Tensor::from_u8("q", Shape::new(1, 1, 2), vec![10, 30], 0.1, 0).unwrap();
        assert_eq!(native_std(&q), 10.0);
        let clean = vec![vec![0.0, 0.0], vec![1.0]];
        let noisy = vec![vec![1.0, 3.0], vec![3.0]];
        // (1 + 9) / 2 + 4 / 1.
        assert_eq!(output_distortion(&clean, &noisy).unwrap(), 9.0);
        assert!(output_distortion(&clean, &noisy[..1]).is_err());
        assert!(output_distortion(&clean, &[vec![0.0], vec![1.0]]).is_err());
    }

    #[test]
    fn spread_counts_channels_near_the_median() {
        let s = Spread::of(&[4.0, 1.0, 2.0, 9.0, 3.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 9.0));
        // Within [1.5, 6]: 2, 3, 4.
        assert_eq!(s.within_2x_of_median, 3);
        assert_eq!(Spread::of(&[1.0, 3.0]).unwrap().median, 2.0);
        assert!(Spread::of(&[]).is_none());
    }
}
