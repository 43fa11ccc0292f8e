//! Temporal correlation of video frames and of feature maps (the reference thesis, sec. 4.2):
//! SSIM and MSE between an item and the one `lag` frames later, per split-point tensor.
//!
//! # SSIM
//!
//! [`ssim_plane`] is defined exactly as scikit-image computes
//! `structural_similarity(a, b, data_range=R, gaussian_weights=True, sigma=1.5,
//! use_sample_covariance=False)` in float64:
//!
//! - local means, mean squares and the mean product come from `scipy.ndimage.gaussian_filter`
//!   with sigma 1.5 and truncate 3.5: a separable 11-tap window (radius 5), weights
//!   `exp(-x²/(2σ²))` normalized to sum 1, applied along axis 0 (down the columns) first, then
//!   along axis 1 (across each row);
//! - population (co)variances `uxx − ux²`, `uyy − uy²`, `uxy − ux·uy`;
//! - `S = (2·ux·uy + C1)(2·vxy + C2) / ((ux² + uy² + C1)(vx + vy + C2))` with
//!   `C1 = (0.01 R)²`, `C2 = (0.03 R)²`;
//! - the mean of `S` after cropping 5 pixels (the window radius) from every side.
//!
//! scikit-image filters the whole plane with scipy's `reflect` boundary mode (half-sample
//! symmetric, `d c b a | a b c d | d c b a`) and then crops. Because the crop equals the window
//! radius, every window that reaches the cropped mean lies entirely inside the plane: the
//! boundary mode cannot change the result, so only the interior is computed (the unit tests
//! check this against a full reflect-padded implementation). Planes need at least 11 pixels on
//! each side; an 11x11 plane has a single SSIM value.
//!
//! # Pairs and series
//!
//! [`tensor_pair`] and [`gray_pair`] give a [`PairStats`] (SSIM, MSE, normalized MSE) for two
//! items; [`LagAnalyzer`] and [`FeatureSeriesAnalyzer`] compare items `lag` frames apart as they
//! arrive (holding only `lag` items); [`consecutive`] and [`feature_series`] do the same over a
//! slice; [`summarize`] reduces the pairs of one series to a [`SeriesSummary`].
//!
//! Nothing here produces NaN for valid input: non-finite inputs are an error
//! ([`CorrelationError::NonFinite`]), an undefined normalized MSE is `None`. The only exception is
//! the summary of an empty series (see [`SeriesSummary`]).

use std::borrow::Cow;
use std::collections::VecDeque;

use codec_core::{FeatureFrame, FrameError, Shape, Tensor, TensorData};
use serde::Serialize;
use thiserror::Error;

/// Radius of the Gaussian window: `int(truncate * sigma + 0.5)` with truncate 3.5, sigma 1.5.
pub const SSIM_RADIUS: usize = 5;
/// Side of the Gaussian window (11): also the smallest plane side SSIM accepts.
pub const SSIM_WINDOW: usize = 2 * SSIM_RADIUS + 1;
/// Standard deviation of the Gaussian window.
pub const SSIM_SIGMA: f64 = 1.5;
/// SSIM's luminance constant factor: `C1 = (K1 · data_range)²`.
pub const SSIM_K1: f64 = 0.01;
/// SSIM's contrast constant factor: `C2 = (K2 · data_range)²`.
pub const SSIM_K2: f64 = 0.03;
/// Data range of 8-bit grey frames.
pub const GRAY_DATA_RANGE: f64 = 255.0;

/// Errors of the correlation measures.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CorrelationError {
    #[error(
        "plane {width}x{height} is smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window \
         (scikit-image refuses it too); SSIM needs at least {SSIM_WINDOW} pixels on each side"
    )]
    PlaneTooSmall { width: usize, height: usize },
    #[error(
        "plane buffers hold {len_a} and {len_b} values, but a {width}x{height} plane needs \
         width x height values in each"
    )]
    PlaneSize {
        width: usize,
        height: usize,
        len_a: usize,
        len_b: usize,
    },
    #[error("inputs differ in length ({len_a} vs {len_b} values): compare items of equal size")]
    LengthMismatch { len_a: usize, len_b: usize },
    #[error("inputs are empty: MSE needs at least one value")]
    Empty,
    #[error(
        "SSIM data range {0} must be finite and > 0 (it is max - min of the data; constant \
         planes have no range and are handled by the caller)"
    )]
    DataRange(f64),
    #[error("{0} is not finite: the inputs contain NaN or infinite values")]
    NonFinite(&'static str),
    #[error(
        "tensor '{tensor}' has shape {shape_a} in one item and {shape_b} in the other: only \
         equal shapes can be compared"
    )]
    ShapeMismatch {
        tensor: String,
        shape_a: Shape,
        shape_b: Shape,
    },
    #[error(
        "frame {frame} has {found} tensors but the series started with {expected}: every frame \
         must carry the same tensors"
    )]
    TensorCount {
        frame: u64,
        expected: usize,
        found: usize,
    },
    #[error(
        "frame {frame}: tensor {index} is '{found}' but the series started with '{expected}': \
         every frame must carry the same tensors in the same order"
    )]
    TensorName {
        frame: u64,
        index: usize,
        expected: String,
        found: String,
    },
    #[error(
        "frame {frame}: tensor '{tensor}' has shape {found} but the series started with \
         {expected}: a series needs one shape"
    )]
    FrameShape {
        frame: u64,
        tensor: String,
        expected: Shape,
        found: Shape,
    },
    #[error("tensor '{tensor}', frame {frame_a} against frame {frame_b}: {source}")]
    InTensor {
        tensor: String,
        frame_a: u64,
        frame_b: u64,
        source: Box<CorrelationError>,
    },
    #[error("lag must be at least 1 (frame t is compared with frame t + lag)")]
    ZeroLag,
    #[error("invalid tensor: {0}")]
    Tensor(#[from] FrameError),
}

/// SSIM and MSE of one pair of items (the earlier one first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairStats {
    /// Mean SSIM (for tensors: the mean over channels), in [-1, 1].
    pub ssim: f64,
    /// Mean squared difference over all elements.
    pub mse: f64,
    /// `mse / mean(a²)`, the MSE relative to the mean square of the earlier item. `Some(0.0)`
    /// when both items are all zero; `None` (JSON `null`) when the earlier item is all zero and
    /// the later is not, where the ratio is undefined.
    pub nmse: Option<f64>,
}

/// One series (a tensor name, or the grey video) reduced over its pairs.
///
/// With `pairs == 0` (fewer than `lag + 1` frames) the SSIM and MSE statistics are NaN, which
/// `serde_json` writes as `null`; check `pairs` before using them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesSummary {
    pub name: String,
    /// `"CxHxW"` for tensors (e.g. `"128x52x52"`), `"WxH grey"` for video frames.
    pub shape: String,
    pub lag: usize,
    pub pairs: usize,
    pub ssim_mean: f64,
    pub ssim_min: f64,
    /// 5th percentile (nearest rank: `sorted[ceil(0.05 n).clamp(1, n) - 1]`).
    pub ssim_p05: f64,
    pub mse_mean: f64,
    /// Mean normalized MSE; `None` when there are no pairs or any pair's NMSE is undefined.
    pub nmse_mean: Option<f64>,
    pub per_pair_ssim: Vec<f64>,
    pub per_pair_mse: Vec<f64>,
}

/// The normalized Gaussian window, as `scipy.ndimage._gaussian_kernel1d(1.5, 0, 5)`.
fn gaussian_window() -> [f64; SSIM_WINDOW] {
    let mut w = [0.0; SSIM_WINDOW];
    for (i, v) in w.iter_mut().enumerate() {
        let x = i as f64 - SSIM_RADIUS as f64;
        *v = (-0.5 / (SSIM_SIGMA * SSIM_SIGMA) * (x * x)).exp();
    }
    let sum: f64 = w.iter().sum();
    w.map(|v| v / sum)
}

/// Buffers for planes of one width, reused across the channels of a tensor: the five quantities
/// (`a`, `b`, `a²`, `b²`, `ab`) of the 11 plane rows under the window, then for one output row
/// the same filtered along axis 0 over the full width, and along axis 1 over the interior.
struct SsimWorkspace {
    window: [f64; SSIM_WINDOW],
    width: usize,
    /// 11 x 5 x width: a, b, aa, bb, ab of the plane rows in the window, row r in slot r % 11.
    ring: Vec<f64>,
    /// 5 x width: column-filtered a, b, aa, bb, ab.
    vertical: Vec<f64>,
    /// 5 x (width - 2 radius): fully filtered a, b, aa, bb, ab on the interior.
    filtered: Vec<f64>,
    /// width - 2 radius: the SSIM map of one interior row.
    map: Vec<f64>,
}

impl SsimWorkspace {
    fn new(width: usize) -> Self {
        let inner = width - 2 * SSIM_RADIUS;
        Self {
            window: gaussian_window(),
            width,
            ring: vec![0.0; SSIM_WINDOW * 5 * width],
            vertical: vec![0.0; 5 * width],
            filtered: vec![0.0; 5 * inner],
            map: vec![0.0; inner],
        }
    }

    /// Stores `a`, `b`, `a²`, `b²` and `ab` of plane row `row` in the ring slot `row % 11`.
    fn fill_ring<T: Copy + Into<f64>>(&mut self, a: &[T], b: &[T], row: usize) {
        let w = self.width;
        let slot = &mut self.ring[(row % SSIM_WINDOW) * 5 * w..][..5 * w];
        let (pa, rest) = slot.split_at_mut(w);
        let (pb, rest) = rest.split_at_mut(w);
        let (paa, rest) = rest.split_at_mut(w);
        let (pbb, pab) = rest.split_at_mut(w);
        let (ra, rb) = (&a[row * w..][..w], &b[row * w..][..w]);
        for x in 0..w {
            let (p, q): (f64, f64) = (ra[x].into(), rb[x].into());
            pa[x] = p;
            pb[x] = q;
            paa[x] = p * p;
            pbb[x] = q * q;
            pab[x] = p * q;
        }
    }

    /// Mean SSIM of the cropped map; `a` and `b` hold `width * height` values, `height` and
    /// `self.width` are at least [`SSIM_WINDOW`]. The filter runs along axis 0 first, then along
    /// axis 1 (as scipy's `gaussian_filter`), each 1-D pass summing the centre tap and then the symmetric pairs from the
    /// outermost in, as scipy's `correlate1d` does for symmetric weights.
    fn mean_ssim<T: Copy + Into<f64>>(
        &mut self,
        a: &[T],
        b: &[T],
        height: usize,
        data_range: f64,
    ) -> f64 {
        const R: usize = SSIM_RADIUS;
        let w = self.width;
        let inner = w - 2 * R;
        debug_assert!(a.len() == w * height && b.len() == w * height && height >= SSIM_WINDOW);
        let wt = self.window;
        let c1 = (SSIM_K1 * data_range) * (SSIM_K1 * data_range);
        let c2 = (SSIM_K2 * data_range) * (SSIM_K2 * data_range);
        let mut total = 0.0f64;
        for y in R..height - R {
            // The products of the rows entering the window, each computed once.
            let first = if y == R { 0 } else { y + R };
            for row in first..=y + R {
                self.fill_ring(a, b, row);
            }
            // Column filter (along the row index) of the five quantities over the full width.
            for (q, out) in self.vertical.chunks_exact_mut(w).enumerate() {
                let taps: [&[f64]; SSIM_WINDOW] = std::array::from_fn(|k| {
                    let at = (((y - R + k) % SSIM_WINDOW) * 5 + q) * w;
                    &self.ring[at..at + w]
                });
                symmetric_filter(taps, &wt, out);
            }
            // Row filter (along the column index) on the interior columns only.
            for (v, out) in self
                .vertical
                .chunks_exact(w)
                .zip(self.filtered.chunks_exact_mut(inner))
            {
                symmetric_filter(std::array::from_fn(|k| &v[k..]), &wt, out);
            }
            let (ux, rest) = self.filtered.split_at(inner);
            let (uy, rest) = rest.split_at(inner);
            let (uxx, rest) = rest.split_at(inner);
            let (uyy, uxy) = rest.split_at(inner);
            let map = &mut self.map[..inner];
            for x in 0..inner {
                let (mx, my) = (ux[x], uy[x]);
                let vx = uxx[x] - mx * mx;
                let vy = uyy[x] - my * my;
                let vxy = uxy[x] - mx * my;
                let a1 = 2.0 * mx * my + c1;
                let a2 = 2.0 * vxy + c2;
                let b1 = mx * mx + my * my + c1;
                let b2 = vx + vy + c2;
                map[x] = (a1 * a2) / (b1 * b2);
            }
            total += lane_sum(map);
        }
        total / ((height - 2 * R) * inner) as f64
    }
}

/// `out[x] = w[5]·t5[x] + Σ_{k<5} w[k]·(t_k[x] + t_{10−k}[x])` over `out.len()` values: a
/// symmetric 11-tap filter in scipy's `correlate1d` order (centre, then pairs from the outside
/// in). Each tap slice holds at least `out.len()` values.
#[inline(always)]
fn symmetric_filter(taps: [&[f64]; SSIM_WINDOW], wt: &[f64; SSIM_WINDOW], out: &mut [f64]) {
    const R: usize = SSIM_RADIUS;
    let n = out.len();
    let t = taps.map(|s| &s[..n]);
    for (x, o) in out.iter_mut().enumerate() {
        let mut acc = t[R][x] * wt[R];
        for k in 0..R {
            acc += (t[k][x] + t[2 * R - k][x]) * wt[k];
        }
        *o = acc;
    }
}

fn check_plane(
    width: usize,
    height: usize,
    len_a: usize,
    len_b: usize,
) -> Result<(), CorrelationError> {
    if width.checked_mul(height) != Some(len_a) || len_a != len_b {
        return Err(CorrelationError::PlaneSize {
            width,
            height,
            len_a,
            len_b,
        });
    }
    check_plane_side(width, height)
}

fn check_plane_side(width: usize, height: usize) -> Result<(), CorrelationError> {
    if width < SSIM_WINDOW || height < SSIM_WINDOW {
        return Err(CorrelationError::PlaneTooSmall { width, height });
    }
    Ok(())
}

fn check_data_range(data_range: f64) -> Result<(), CorrelationError> {
    if !(data_range.is_finite() && data_range > 0.0) {
        return Err(CorrelationError::DataRange(data_range));
    }
    Ok(())
}

fn finite_ssim(s: f64) -> Result<f64, CorrelationError> {
    if s.is_finite() {
        Ok(s)
    } else {
        Err(CorrelationError::NonFinite("SSIM"))
    }
}

/// Mean SSIM of two `width x height` planes (row-major), exactly as scikit-image's
/// `structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
/// use_sample_covariance=False)` in float64 (see the module documentation).
///
/// Errors: buffers that do not hold `width * height` values each, a side below 11, a
/// `data_range` that is not finite and positive, non-finite values.
pub fn ssim_plane(
    a: &[f32],
    b: &[f32],
    width: usize,
    height: usize,
    data_range: f64,
) -> Result<f64, CorrelationError> {
    check_plane(width, height, a.len(), b.len())?;
    check_data_range(data_range)?;
    finite_ssim(SsimWorkspace::new(width).mean_ssim(a, b, height, data_range))
}

/// Sum in eight interleaved partial sums (vectorizable, and more accurate than one running sum).
fn lane_sum(v: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Smallest and largest finite value, or `None` when there is none.
fn finite_min_max(v: &[f32]) -> Option<(f32, f32)> {
    const LANES: usize = 8;
    let (mut lo, mut hi) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            // Comparisons are false for NaN; infinities are filtered out below.
            let x = if c[i].is_finite() { c[i] } else { lo[i] };
            lo[i] = if x < lo[i] { x } else { lo[i] };
            let x = if c[i].is_finite() { c[i] } else { hi[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
        }
    }
    for &x in tail.iter().filter(|x| x.is_finite()) {
        lo[0] = lo[0].min(x);
        hi[0] = hi[0].max(x);
    }
    let lo = lo.into_iter().fold(f32::INFINITY, f32::min);
    let hi = hi.into_iter().fold(f32::NEG_INFINITY, f32::max);
    (lo <= hi).then_some((lo, hi))
}

/// Sums of `(a - b)²` and of `a²` in float64 (eight interleaved partial sums).
fn square_sums<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> (f64, f64) {
    const LANES: usize = 8;
    let (mut d, mut s) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for i in 0..LANES {
            let (p, q): (f64, f64) = (xa[i].into(), xb[i].into());
            d[i] += (p - q) * (p - q);
            s[i] += p * p;
        }
    }
    for (&p, &q) in ta.iter().zip(tb) {
        let (p, q): (f64, f64) = (p.into(), q.into());
        d[0] += (p - q) * (p - q);
        s[0] += p * p;
    }
    (d.iter().sum(), s.iter().sum())
}

/// `(mse, nmse)` of two equally long, non-empty inputs.
fn mse_nmse<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> Result<(f64, Option<f64>), CorrelationError> {
    if a.len() != b.len() {
        return Err(CorrelationError::LengthMismatch {
            len_a: a.len(),
            len_b: b.len(),
        });
    }
    if a.is_empty() {
        return Err(CorrelationError::Empty);
    }
    let (sum_d, sum_a) = square_sums(a, b);
    let n = a.len() as f64;
    let (mse, mean_sq) = (sum_d / n, sum_a / n);
    if !(mse.is_finite() && mean_sq.is_finite()) {
        return Err(CorrelationError::NonFinite("MSE"));
    }
    let nmse = if mean_sq > 0.0 {
        Some(mse / mean_sq)
    } else if mse == 0.0 {
        Some(0.0)
    } else {
        None
    };
    Ok((mse, nmse))
}

/// Mean squared difference of two equally long inputs, accumulated in float64.
///
/// Errors (never panics): different lengths, empty inputs, non-finite values.
pub fn mse(a: &[f32], b: &[f32]) -> Result<f64, CorrelationError> {
    mse_nmse(a, b).map(|(m, _)| m)
}

fn tensor_values(t: &Tensor) -> Cow<'_, [f32]> {
    match &t.data {
        TensorData::F32(v) => Cow::Borrowed(v),
        TensorData::U8 { .. } => Cow::Owned(t.to_f32()),
    }
}

/// SSIM, MSE and NMSE of two (C, H, W) tensors of the same shape (`a` the earlier).
///
/// Values come from [`Tensor::to_f32`] (8-bit tensors are dequantized). SSIM is the mean over
/// channels of [`ssim_plane`] with one data range for all channels, `max − min` over the finite
/// values of both tensors — scikit-image's `structural_similarity(a, b, channel_axis=0,
/// data_range=R, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`. When that range
/// is 0 (both tensors constant and equal) SSIM is 1. MSE and NMSE are over all elements.
pub fn tensor_pair(a: &Tensor, b: &Tensor) -> Result<PairStats, CorrelationError> {
    a.validate()?;
    b.validate()?;
    if a.shape != b.shape {
        return Err(CorrelationError::ShapeMismatch {
            tensor: a.name.clone(),
            shape_a: a.shape,
            shape_b: b.shape,
        });
    }
    let Shape {
        channels,
        height,
        width,
    } = a.shape;
    check_plane_side(width, height)?;
    let (va, vb) = (tensor_values(a), tensor_values(b));
    // Non-finite values make the MSE non-finite, so past this point all values are finite.
    let (mse, nmse) = mse_nmse(&va, &vb)?;
    let (lo, hi) = match (finite_min_max(&va), finite_min_max(&vb)) {
        (Some((la, ha)), Some((lb, hb))) => (la.min(lb), ha.max(hb)),
        (Some(r), None) | (None, Some(r)) => r,
        (None, None) => return Err(CorrelationError::NonFinite("data range")),
    };
    let range = f64::from(hi) - f64::from(lo);
    let ssim = if range == 0.0 {
        1.0
    } else {
        check_data_range(range)?;
        let plane = width * height;
        let mut ws = SsimWorkspace::new(width);
        let sum: f64 = va
            .chunks_exact(plane)
            .zip(vb.chunks_exact(plane))
            .map(|(pa, pb)| ws.mean_ssim(pa, pb, height, range))
            .sum();
        finite_ssim(sum / channels as f64)?
    };
    Ok(PairStats { ssim, mse, nmse })
}

/// SSIM (data range 255), MSE (grey levels²) and NMSE of two 8-bit grey `width x height`
/// frames (`a` the earlier).
pub fn gray_pair(
    a: &[u8],
    b: &[u8],
    width: usize,
    height: usize,
) -> Result<PairStats, CorrelationError> {
    check_plane(width, height, a.len(), b.len())?;
    let (mse, nmse) = mse_nmse(a, b)?;
    let ssim = SsimWorkspace::new(width).mean_ssim(a, b, height, GRAY_DATA_RANGE);
    Ok(PairStats {
        ssim: finite_ssim(ssim)?,
        mse,
        nmse,
    })
}

/// Nearest-rank percentile of sorted values: `sorted[ceil(p n).clamp(1, n) - 1]` (NaN if empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Reduces the pairs of one series. See [`SeriesSummary`] for an empty series.
pub fn summarize(name: &str, shape: &str, lag: usize, pairs: &[PairStats]) -> SeriesSummary {
    let n = pairs.len();
    let per_pair_ssim: Vec<f64> = pairs.iter().map(|p| p.ssim).collect();
    let per_pair_mse: Vec<f64> = pairs.iter().map(|p| p.mse).collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let mut sorted = per_pair_ssim.clone();
    sorted.sort_by(f64::total_cmp);
    let nmse_mean = if n == 0 {
        None
    } else {
        pairs
            .iter()
            .map(|p| p.nmse)
            .sum::<Option<f64>>()
            .map(|s| s / n as f64)
    };
    SeriesSummary {
        name: name.to_owned(),
        shape: shape.to_owned(),
        lag,
        pairs: n,
        ssim_mean: mean(&per_pair_ssim),
        ssim_min: sorted.first().copied().unwrap_or(f64::NAN),
        ssim_p05: percentile(&sorted, 0.05),
        mse_mean: mean(&per_pair_mse),
        nmse_mean,
        per_pair_ssim,
        per_pair_mse,
    }
}

/// Compares `items[t]` with `items[t + lag]` for every `t`; no pairs when `lag >= items.len()`.
pub fn consecutive<T, R, E>(
    items: &[T],
    lag: usize,
    pair: impl Fn(&T, &T) -> Result<R, E>,
) -> Result<Vec<R>, E>
where
    E: From<CorrelationError>,
{
    if lag == 0 {
        return Err(CorrelationError::ZeroLag.into());
    }
    items
        .iter()
        .zip(items.iter().skip(lag))
        .map(|(a, b)| pair(a, b))
        .collect()
}

/// Compares each pushed item with the one pushed `lag` items before, holding only `lag` items.
///
/// ```
/// use fmap_eval::correlation::{LagAnalyzer, gray_pair};
/// let mut lag1 = LagAnalyzer::new(1).unwrap();
/// let frame = vec![128u8; 16 * 16];
/// assert!(lag1.push(frame.clone(), |a, b| gray_pair(a, b, 16, 16)).unwrap().is_none());
/// let stats = lag1.push(frame, |a, b| gray_pair(a, b, 16, 16)).unwrap().unwrap();
/// assert_eq!(stats.mse, 0.0);
/// ```
#[derive(Debug, Clone)]
pub struct LagAnalyzer<T> {
    lag: usize,
    window: VecDeque<T>,
}

impl<T> LagAnalyzer<T> {
    /// Errors when `lag` is 0.
    pub fn new(lag: usize) -> Result<Self, CorrelationError> {
        if lag == 0 {
            return Err(CorrelationError::ZeroLag);
        }
        Ok(Self {
            lag,
            window: VecDeque::with_capacity(lag + 1),
        })
    }

    pub fn lag(&self) -> usize {
        self.lag
    }

    /// Adds the next item. Once `lag` items came before it, returns `pair(item lag back, item)`;
    /// before that `Ok(None)`. The item is kept even when `pair` fails, so later pairs stay
    /// `lag` frames apart.
    pub fn push<R, E>(
        &mut self,
        item: T,
        pair: impl FnOnce(&T, &T) -> Result<R, E>,
    ) -> Result<Option<R>, E> {
        let earlier = if self.window.len() == self.lag {
            self.window.pop_front()
        } else {
            None
        };
        let result = earlier.as_ref().map(|e| pair(e, &item)).transpose();
        self.window.push_back(item);
        result
    }
}

/// The tensor layout of a feature series and the pairs found so far, one list per tensor.
#[derive(Debug, Clone)]
struct SeriesPairs {
    layout: Vec<(String, Shape)>,
    pairs: Vec<Vec<PairStats>>,
}

impl SeriesPairs {
    fn new(first: &FeatureFrame) -> Self {
        Self {
            layout: first
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.shape))
                .collect(),
            pairs: vec![Vec::new(); first.tensors.len()],
        }
    }

    /// Checks that `frame` carries the series' tensors: same count, names, order and shapes.
    fn check(&self, frame: &FeatureFrame) -> Result<(), CorrelationError> {
        if frame.tensors.len() != self.layout.len() {
            return Err(CorrelationError::TensorCount {
                frame: frame.index,
                expected: self.layout.len(),
                found: frame.tensors.len(),
            });
        }
        for (index, (t, (name, shape))) in frame.tensors.iter().zip(&self.layout).enumerate() {
            if t.name != *name {
                return Err(CorrelationError::TensorName {
                    frame: frame.index,
                    index,
                    expected: name.clone(),
                    found: t.name.clone(),
                });
            }
            if t.shape != *shape {
                return Err(CorrelationError::FrameShape {
                    frame: frame.index,
                    tensor: name.clone(),
                    expected: *shape,
                    found: t.shape,
                });
            }
        }
        Ok(())
    }

    /// Adds the pairs of two checked frames.
    fn add(&mut self, a: &FeatureFrame, b: &FeatureFrame) -> Result<(), CorrelationError> {
        for ((ta, tb), list) in a.tensors.iter().zip(&b.tensors).zip(&mut self.pairs) {
            let stats = tensor_pair(ta, tb).map_err(|e| CorrelationError::InTensor {
                tensor: ta.name.clone(),
                frame_a: a.index,
                frame_b: b.index,
                source: Box::new(e),
            })?;
            list.push(stats);
        }
        Ok(())
    }

    fn summaries(&self, lag: usize) -> Vec<SeriesSummary> {
        self.layout
            .iter()
            .zip(&self.pairs)
            .map(|((name, s), pairs)| {
                let shape = format!("{}x{}x{}", s.channels, s.height, s.width);
                summarize(name, &shape, lag, pairs)
            })
            .collect()
    }
}

/// One [`SeriesSummary`] per tensor of `frames` (in the first frame's order): tensor `i` of frame
/// `t` against tensor `i` of frame `t + lag`. Every frame must carry the same tensors (names,
/// order, shapes). No frames give no summaries; `lag >= frames.len()` gives summaries with 0
/// pairs. Errors: `lag == 0`, a frame with other tensors, a pair that fails (named by tensor and
/// frames).
pub fn feature_series(
    frames: &[FeatureFrame],
    lag: usize,
) -> Result<Vec<SeriesSummary>, CorrelationError> {
    if lag == 0 {
        return Err(CorrelationError::ZeroLag);
    }
    let Some(first) = frames.first() else {
        return Ok(Vec::new());
    };
    let mut series = SeriesPairs::new(first);
    for f in frames {
        series.check(f)?;
    }
    for (a, b) in frames.iter().zip(frames.iter().skip(lag)) {
        series.add(a, b)?;
    }
    Ok(series.summaries(lag))
}

/// [`feature_series`] for frames that arrive one at a time: holds only `lag` frames.
#[derive(Debug, Clone)]
pub struct FeatureSeriesAnalyzer {
    window: LagAnalyzer<FeatureFrame>,
    series: Option<SeriesPairs>,
}

impl FeatureSeriesAnalyzer {
    /// Errors when `lag` is 0.
    pub fn new(lag: usize) -> Result<Self, CorrelationError> {
        Ok(Self {
            window: LagAnalyzer::new(lag)?,
            series: None,
        })
    }

    /// Adds the next frame and compares it with the frame `lag` before it, if any. A frame
    /// whose tensors differ from the first frame's is refused and not kept.
    pub fn push(&mut self, frame: FeatureFrame) -> Result<(), CorrelationError> {
        let series = self.series.get_or_insert_with(|| SeriesPairs::new(&frame));
        series.check(&frame)?;
        self.window.push(frame, |a, b| series.add(a, b)).map(|_| ())
    }

    /// One summary per tensor so far (empty before the first frame).
    pub fn summaries(&self) -> Vec<SeriesSummary> {
        self.series
            .as_ref()
            .map(|s| s.summaries(self.window.lag()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (64-bit LCG).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A smooth random pattern with some texture, values roughly in [0, 1].
    fn pattern(rng: &mut Lcg, width: usize, height: usize) -> Vec<f32> {
        let (fx, fy, ph) = (rng.next() * 0.5, rng.next() * 0.5, rng.next() * 6.0);
        (0..width * height)
            .map(|i| {
                let (x, y) = ((i % width) as f64, (i / width) as f64);
                (0.5 + 0.3 * (fx * x + fy * y + ph).sin() + 0.2 * rng.next()) as f32
            })
            .collect()
    }

    fn noisy(rng: &mut Lcg, x: &[f32], amplitude: f64) -> Vec<f32> {
        x.iter()
            .map(|&v| v + ((rng.next() - 0.5) * 2.0 * amplitude) as f32)
            .collect()
    }

    /// scipy's `reflect` mode: half-sample symmetric, `d c b a | a b c d | d c b a`.
    fn reflect(i: isize, n: usize) -> usize {
        let n = n as isize;
        let period = 2 * n;
        let m = i.rem_euclid(period);
        (if m < n { m } else { period - 1 - m }) as usize
    }

    /// scipy.ndimage.gaussian_filter(mode='reflect') of a whole plane, rows first.
    fn gaussian_full(p: &[f64], width: usize, height: usize) -> Vec<f64> {
        let wt = gaussian_window();
        let r = SSIM_RADIUS as isize;
        let mut tmp = vec![0.0; p.len()];
        for y in 0..height {
            for x in 0..width {
                tmp[y * width + x] = (-r..=r)
                    .map(|k| wt[(k + r) as usize] * p[reflect(y as isize + k, height) * width + x])
                    .sum();
            }
        }
        let mut out = vec![0.0; p.len()];
        for y in 0..height {
            for x in 0..width {
                out[y * width + x] = (-r..=r)
                    .map(|k| wt[(k + r) as usize] * tmp[y * width + reflect(x as isize + k, width)])
                    .sum();
            }
        }
        out
    }

    /// The full skimage algorithm: filter everything with reflect padding, SSIM map, crop, mean.
    fn ssim_full(a: &[f32], b: &[f32], width: usize, height: usize, range: f64) -> f64 {
        let fa: Vec<f64> = a.iter().map(|&v| v.into()).collect();
        let fb: Vec<f64> = b.iter().map(|&v| v.into()).collect();
        let prod = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).collect::<Vec<_>>();
        let ux = gaussian_full(&fa, width, height);
        let uy = gaussian_full(&fb, width, height);
        let uxx = gaussian_full(&prod(&fa, &fa), width, height);
        let uyy = gaussian_full(&prod(&fb, &fb), width, height);
        let uxy = gaussian_full(&prod(&fa, &fb), width, height);
        let (c1, c2) = ((SSIM_K1 * range).powi(2), (SSIM_K2 * range).powi(2));
        let pad = SSIM_RADIUS;
        let mut sum = 0.0;
        for y in pad..height - pad {
            for x in pad..width - pad {
                let i = y * width + x;
                let (vx, vy) = (uxx[i] - ux[i] * ux[i], uyy[i] - uy[i] * uy[i]);
                let vxy = uxy[i] - ux[i] * uy[i];
                sum += ((2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2))
                    / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2));
            }
        }
        sum / ((height - 2 * pad) * (width - 2 * pad)) as f64
    }

    #[test]
    fn correlation_window_matches_scipy() {
        let w = gaussian_window();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // scipy.ndimage._gaussian_kernel1d(1.5, 0, 5)
        let scipy = [
            0.001_028_380_084_479_11,
            0.007_598_758_135_239_185,
            0.036_000_772_128_430_83,
            0.109_360_689_509_700_02,
            0.213_005_537_711_253_7,
            0.266_011_724_861_794_36,
        ];
        for (k, s) in scipy.iter().enumerate() {
            assert!((w[k] - s).abs() < 1e-15, "tap {k}: {} vs {s}", w[k]);
            assert_eq!(w[k], w[SSIM_WINDOW - 1 - k]);
        }
    }

    #[test]
    fn correlation_reflect_is_half_sample_symmetric() {
        // d c b a | a b c d | d c b a
        let got: Vec<usize> = (-4..8).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, [3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]);
    }

    #[test]
    fn correlation_interior_equals_full_reflect_filter() {
        let mut rng = Lcg(3);
        for (w, h) in [(11, 11), (13, 13), (19, 23), (23, 11), (40, 17)] {
            let a = pattern(&mut rng, w, h);
            let b = noisy(&mut rng, &a, 0.2);
            for range in [1.0, 0.37, 4.0] {
                let fast = ssim_plane(&a, &b, w, h, range).unwrap();
                let full = ssim_full(&a, &b, w, h, range);
                assert!((fast - full).abs() < 1e-12, "{w}x{h}: {fast} vs {full}");
            }
        }
    }

    #[test]
    fn correlation_ssim_of_identical_planes_is_one() {
        let mut rng = Lcg(1);
        for (w, h) in [(11, 11), (13, 13), (52, 52), (37, 20)] {
            let a = pattern(&mut rng, w, h);
            let s = ssim_plane(&a, &a, w, h, 1.0).unwrap();
            assert!((s - 1.0).abs() < 1e-12, "{w}x{h}: {s}");
        }
    }

    #[test]
    fn correlation_ssim_is_symmetric() {
        let mut rng = Lcg(2);
        let a = pattern(&mut rng, 30, 25);
        let b = noisy(&mut rng, &a, 0.3);
        let ab = ssim_plane(&a, &b, 30, 25, 1.0).unwrap();
        let ba = ssim_plane(&b, &a, 30, 25, 1.0).unwrap();
        assert!((ab - ba).abs() < 1e-14, "{ab} vs {ba}");
        assert!(ab < 1.0);
    }

    #[test]
    fn correlation_constant_shift_lowers_ssim() {
        let mut rng = Lcg(4);
        let a = pattern(&mut rng, 24, 24);
        let mut last = 1.0;
        for shift in [0.05f32, 0.2, 0.5] {
            let b: Vec<f32> = a.iter().map(|v| v + shift).collect();
            let s = ssim_plane(&a, &b, 24, 24, 1.0).unwrap();
            assert!(s < last, "shift {shift}: {s} not below {last}");
            last = s;
        }
    }

    #[test]
    fn correlation_noise_lowers_ssim_monotonically() {
        let mut rng = Lcg(5);
        let a = pattern(&mut rng, 52, 52);
        let base: Vec<f64> = (0..a.len()).map(|_| rng.next() - 0.5).collect();
        let mut last = 1.0;
        for amp in [0.01, 0.03, 0.1, 0.3, 1.0] {
            let b: Vec<f32> = a
                .iter()
                .zip(&base)
                .map(|(&v, n)| v + (2.0 * amp * n) as f32)
                .collect();
            let s = ssim_plane(&a, &b, 52, 52, 1.0).unwrap();
            assert!(s < last, "noise {amp}: {s} not below {last}");
            last = s;
        }
    }

    #[test]
    fn correlation_constant_planes_have_closed_form() {
        for (ca, cb, range) in [(0.25f32, 0.75f32, 1.0), (3.0, 3.0, 2.0), (-1.5, 2.0, 5.0)] {
            let (a, b) = (vec![ca; 13 * 13], vec![cb; 13 * 13]);
            let s = ssim_plane(&a, &b, 13, 13, range).unwrap();
            let (ca, cb) = (f64::from(ca), f64::from(cb));
            let c1 = (SSIM_K1 * range).powi(2);
            let want = (2.0 * ca * cb + c1) / (ca * ca + cb * cb + c1);
            assert!((s - want).abs() < 1e-12, "{ca} {cb}: {s} vs {want}");
        }
    }

    #[test]
    fn correlation_errors() {
        let a = vec![0.0f32; 11 * 11];
        let small = vec![0.0f32; 10 * 11];
        assert_eq!(
            ssim_plane(&small, &small, 10, 11, 1.0),
            Err(CorrelationError::PlaneTooSmall {
                width: 10,
                height: 11
            })
        );
        assert!(matches!(
            ssim_plane(&a, &small, 11, 11, 1.0),
            Err(CorrelationError::PlaneSize { .. })
        ));
        assert!(matches!(
            ssim_plane(&a, &a, 11, 12, 1.0),
            Err(CorrelationError::PlaneSize { .. })
        ));
        assert!(matches!(
            ssim_plane(&a, &a, usize::MAX, 2, 1.0),
            Err(CorrelationError::PlaneSize { .. })
        ));
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                ssim_plane(&a, &a, 11, 11, r),
                Err(CorrelationError::DataRange(_))
            ));
        }
        let mut nan = a.clone();
        nan[60] = f32::NAN;
        assert_eq!(
            ssim_plane(&a, &nan, 11, 11, 1.0),
            Err(CorrelationError::NonFinite("SSIM"))
        );
        assert_eq!(
            mse(&a, &small),
            Err(CorrelationError::LengthMismatch {
                len_a: 121,
                len_b: 110
            })
        );
        assert_eq!(mse(&[], &[]), Err(CorrelationError::Empty));
        assert_eq!(mse(&a, &nan), Err(CorrelationError::NonFinite("MSE")));
        assert!(matches!(
            gray_pair(&[0; 100], &[0; 100], 10, 10),
            Err(CorrelationError::PlaneTooSmall { .. })
        ));
        assert!(matches!(
            gray_pair(&[0; 121], &[0; 120], 11, 11),
            Err(CorrelationError::PlaneSize { .. })
        ));
        // Messages say what to do.
        let msg = CorrelationError::PlaneTooSmall {
            width: 10,
            height: 11,
        }
        .to_string();
        assert!(
            msg.contains("10x11") && msg.contains("at least 11"),
            "{msg}"
        );
    }

    #[test]
    fn correlation_mse_values() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let b = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 13.0];
        assert_eq!(mse(&a, &b).unwrap(), 0.9);
        assert_eq!(mse(&a, &a).unwrap(), 0.0);
    }

    fn u8_tensor(name: &str, shape: Shape, codes: Vec<u8>, scale: f32, zp: i32) -> Tensor {
        Tensor::from_u8(name, shape, codes, scale, zp).unwrap()
    }

    #[test]
    fn correlation_tensor_pair_on_u8_tensors() {
        let mut rng = Lcg(6);
        let shape = Shape::new(3, 13, 14);
        let codes_a: Vec<u8> = (0..shape.len())
            .map(|_| (rng.next() * 200.0) as u8)
            .collect();
        let codes_b: Vec<u8> = codes_a
            .iter()
            .map(|&c| c.saturating_add((rng.next() * 20.0) as u8))
            .collect();
        let (scale, zp) = (0.05f32, 100);
        let ta = u8_tensor("t", shape, codes_a, scale, zp);
        let tb = u8_tensor("t", shape, codes_b, scale, zp);
        let stats = tensor_pair(&ta, &tb).unwrap();
        // Same as the float route with one data range over both tensors.
        let (fa, fb) = (ta.to_f32(), tb.to_f32());
        let lo = fa.iter().chain(&fb).fold(f32::INFINITY, |m, &v| m.min(v));
        let hi = fa
            .iter()
            .chain(&fb)
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let range = f64::from(hi) - f64::from(lo);
        let plane = shape.plane_len();
        let want: f64 = (0..3)
            .map(|c| {
                let s = c * plane..(c + 1) * plane;
                ssim_plane(&fa[s.clone()], &fb[s], 14, 13, range).unwrap()
            })
            .sum::<f64>()
            / 3.0;
        assert!((stats.ssim - want).abs() < 1e-15);
        assert!(stats.ssim < 1.0 && stats.ssim > 0.0);
        assert!((stats.mse - mse(&fa, &fb).unwrap()).abs() < 1e-15);
        let mean_sq = fa.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / fa.len() as f64;
        assert!((stats.nmse.unwrap() - stats.mse / mean_sq).abs() < 1e-12);

        // Identical tensors: SSIM 1, MSE 0, NMSE 0.
        let same = tensor_pair(&ta, &ta).unwrap();
        assert!((same.ssim - 1.0).abs() < 1e-12 && same.mse == 0.0 && same.nmse == Some(0.0));

        // Constant and equal (zero data range): SSIM 1.
        let ca = u8_tensor("t", shape, vec![100; shape.len()], scale, zp);
        let stats = tensor_pair(&ca, &ca).unwrap();
        assert_eq!(
            stats,
            PairStats {
                ssim: 1.0,
                mse: 0.0,
                nmse: Some(0.0)
            }
        );
        // The earlier all zero, the later not: NMSE undefined.
        let cb = u8_tensor("t", shape, vec![101; shape.len()], scale, zp);
        let stats = tensor_pair(&ca, &cb).unwrap();
        assert_eq!(stats.nmse, None);
        assert!(stats.mse > 0.0 && stats.ssim < 1.0);

        // Shape mismatch names the tensor.
        let other = u8_tensor("t", Shape::new(3, 14, 13), vec![0; shape.len()], scale, zp);
        let err = tensor_pair(&ta, &other).unwrap_err();
        assert!(matches!(err, CorrelationError::ShapeMismatch { .. }));
        assert!(err.to_string().contains("'t'"), "{err}");
        // Planes smaller than the window.
        let tiny = u8_tensor("tiny", Shape::new(4, 10, 10), vec![0; 400], scale, zp);
        assert!(matches!(
            tensor_pair(&tiny, &tiny),
            Err(CorrelationError::PlaneTooSmall { .. })
        ));
    }

    #[test]
    fn correlation_gray_pair() {
        let mut rng = Lcg(7);
        let (w, h) = (32, 20);
        let a: Vec<u8> = (0..w * h).map(|_| (rng.next() * 255.0) as u8).collect();
        let b: Vec<u8> = a.iter().map(|&v| v.wrapping_add(3)).collect();
        let stats = gray_pair(&a, &b, w, h).unwrap();
        let (fa, fb): (Vec<f32>, Vec<f32>) = (
            a.iter().map(|&v| f32::from(v)).collect(),
            b.iter().map(|&v| f32::from(v)).collect(),
        );
        let want = ssim_plane(&fa, &fb, w, h, 255.0).unwrap();
        assert!((stats.ssim - want).abs() < 1e-15);
        assert!((stats.mse - mse(&fa, &fb).unwrap()).abs() < 1e-12);
        let same = gray_pair(&a, &a, w, h).unwrap();
        assert!((same.ssim - 1.0).abs() < 1e-12 && same.mse == 0.0);
    }

    #[test]
    fn correlation_summarize() {
        let pairs: Vec<PairStats> = (0..40)
            .map(|i| PairStats {
                ssim: 1.0 - i as f64 / 100.0,
                mse: i as f64,
                nmse: Some(i as f64 / 10.0),
            })
            .collect();
        let s = summarize("x", "1x11x11", 2, &pairs);
        assert_eq!(s.pairs, 40);
        assert_eq!(s.lag, 2);
        assert!((s.ssim_mean - (1.0 - 19.5 / 100.0)).abs() < 1e-12);
        assert_eq!(s.ssim_min, 1.0 - 39.0 / 100.0);
        // ceil(0.05 * 40) = 2: the second smallest.
        assert_eq!(s.ssim_p05, 1.0 - 38.0 / 100.0);
        assert!((s.mse_mean - 19.5).abs() < 1e-12);
        assert!((s.nmse_mean.unwrap() - 1.95).abs() < 1e-12);
        assert_eq!(s.per_pair_mse.len(), 40);

        let one = summarize("x", "s", 1, &pairs[3..4]);
        assert_eq!((one.ssim_min, one.ssim_p05), (0.97, 0.97));

        let mut undefined = pairs.clone();
        undefined[5].nmse = None;
        assert_eq!(summarize("x", "s", 1, &undefined).nmse_mean, None);

        let empty = summarize("x", "s", 1, &[]);
        assert_eq!(empty.pairs, 0);
        assert!(empty.ssim_mean.is_nan() && empty.nmse_mean.is_none());
        let json = serde_json::to_value(&empty).unwrap();
        assert!(json["ssim_mean"].is_null() && json["ssim_p05"].is_null());
    }

    fn frame(index: u64, rng: &mut Lcg, base: &[Vec<f32>], drift: f64) -> FeatureFrame {
        let shapes = [Shape::new(2, 13, 13), Shape::new(1, 12, 16)];
        let names = ["p3", "p4"];
        let tensors = shapes
            .iter()
            .zip(names)
            .zip(base)
            .map(|((&s, n), b)| {
                Tensor::from_f32(n, s, noisy(rng, b, drift * index as f64)).unwrap()
            })
            .collect();
        FeatureFrame::new(index, None, tensors)
    }

    #[test]
    fn correlation_feature_series_lags() {
        let mut rng = Lcg(8);
        let base = vec![pattern(&mut rng, 13, 26), pattern(&mut rng, 16, 12)];
        let frames: Vec<FeatureFrame> = (0..6).map(|i| frame(i, &mut rng, &base, 0.02)).collect();

        assert_eq!(feature_series(&frames, 0), Err(CorrelationError::ZeroLag));
        assert_eq!(feature_series(&[], 1).unwrap(), Vec::new());

        let s1 = feature_series(&frames, 1).unwrap();
        assert_eq!(s1.len(), 2);
        assert_eq!(
            (s1[0].name.as_str(), s1[0].shape.as_str()),
            ("p3", "2x13x13")
        );
        assert_eq!(
            (s1[1].name.as_str(), s1[1].shape.as_str()),
            ("p4", "1x12x16")
        );
        assert!(s1.iter().all(|s| s.pairs == 5 && s.lag == 1));
        let want = tensor_pair(&frames[2].tensors[1], &frames[3].tensors[1]).unwrap();
        assert_eq!(s1[1].per_pair_ssim[2], want.ssim);
        assert_eq!(s1[1].per_pair_mse[2], want.mse);

        let s3 = feature_series(&frames, 3).unwrap();
        assert!(s3.iter().all(|s| s.pairs == 3 && s.lag == 3));
        let want = tensor_pair(&frames[1].tensors[0], &frames[4].tensors[0]).unwrap();
        assert_eq!(s3[0].per_pair_ssim[1], want.ssim);

        for lag in [6, 7, 100] {
            let s = feature_series(&frames, lag).unwrap();
            assert!(s.iter().all(|s| s.pairs == 0 && s.per_pair_ssim.is_empty()));
        }

        // The streaming analyzer gives the same summaries.
        let mut an = FeatureSeriesAnalyzer::new(3).unwrap();
        assert!(an.summaries().is_empty());
        for f in &frames {
            an.push(f.clone()).unwrap();
        }
        assert_eq!(an.summaries(), s3);
        assert!(matches!(
            FeatureSeriesAnalyzer::new(0),
            Err(CorrelationError::ZeroLag)
        ));

        // A frame whose tensor changes shape is refused, naming the tensor.
        let mut bad = frames.clone();
        bad[4].tensors[1] = Tensor::from_f32("p4", Shape::new(1, 16, 12), vec![0.0; 192]).unwrap();
        let err = feature_series(&bad, 1).unwrap_err();
        assert!(
            matches!(&err, CorrelationError::FrameShape { frame: 4, tensor, .. } if tensor == "p4"),
            "{err}"
        );
        let mut renamed = frames.clone();
        renamed[2].tensors[0].name = "q3".into();
        assert!(matches!(
            feature_series(&renamed, 2),
            Err(CorrelationError::TensorName { frame: 2, .. })
        ));
        let mut fewer = frames.clone();
        fewer[1].tensors.pop();
        assert!(matches!(
            feature_series(&fewer, 1),
            Err(CorrelationError::TensorCount { frame: 1, .. })
        ));
        // A pair that fails is named by tensor and frames.
        let mut nan = frames.clone();
        if let TensorData::F32(v) = &mut nan[3].tensors[0].data {
            v[0] = f32::NAN;
        }
        let err = feature_series(&nan, 1).unwrap_err();
        assert!(
            matches!(&err, CorrelationError::InTensor { tensor, frame_a: 2, frame_b: 3, .. } if tensor == "p3"),
            "{err}"
        );
    }

    #[test]
    fn correlation_lag_analyzer_and_consecutive() {
        let items: Vec<f32> = (0..7).map(|i| (i * i) as f32).collect();
        let pair = |a: &f32, b: &f32| -> Result<PairStats, CorrelationError> {
            Ok(PairStats {
                ssim: 0.0,
                mse: f64::from(b - a),
                nmse: None,
            })
        };
        let got = consecutive(&items, 2, pair).unwrap();
        let diffs: Vec<f64> = got.iter().map(|p| p.mse).collect();
        assert_eq!(diffs, [4.0, 8.0, 12.0, 16.0, 20.0]);
        assert!(consecutive(&items, 7, pair).unwrap().is_empty());
        assert!(consecutive(&items, 99, pair).unwrap().is_empty());
        assert_eq!(consecutive(&items, 0, pair), Err(CorrelationError::ZeroLag));

        let mut an = LagAnalyzer::new(2).unwrap();
        let mut streamed = Vec::new();
        for (i, &v) in items.iter().enumerate() {
            // A failing pair keeps the item, so later pairs stay 2 apart.
            let r = an.push(v, |a, b| {
                if i == 3 {
                    Err(CorrelationError::Empty)
                } else {
                    pair(a, b)
                }
            });
            match r {
                Ok(Some(p)) => streamed.push(p.mse),
                Ok(None) => assert!(i < 2),
                Err(_) => assert_eq!(i, 3),
            }
        }
        assert_eq!(streamed, [4.0, 12.0, 16.0, 20.0]);
        assert!(matches!(
            LagAnalyzer::<f32>::new(0),
            Err(CorrelationError::ZeroLag)
        ));
    }
}
