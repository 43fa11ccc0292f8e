//! Rate control of the adaptive mode: turns a target bit rate into the quality (step factor) of
//! the next frame, in the manner of a video encoder's ABR mode.
//!
//! The model is the one the adaptive mode measurably follows: the rate falls roughly as
//! quality^−1.5. The controller keeps an exponential average of the recent rate (time constant
//! [`RateController::WINDOW_S`]) and a leaky bucket of the bits sent above the target, and moves
//! the quality multiplicatively toward the value that would bring both back to the target. A
//! step is bounded per frame so that a key frame's burst does not swing the quality.

/// Chooses the quality of each frame so that the rate converges on a target.
#[derive(Debug, Clone)]
pub struct RateController {
    target_bps: f64,
    quality: f64,
    min_quality: f64,
    max_quality: f64,
    /// Exponential average of the rate, bits per second (None before the first frame).
    average_bps: Option<f64>,
    /// Bits sent above the target since the start (never below −1 s of target).
    excess_bits: f64,
}

impl RateController {
    /// Averaging time of the rate, seconds.
    pub const WINDOW_S: f64 = 1.0;
    /// Exponent of the rate model (rate ∝ quality^−EXPONENT).
    const EXPONENT: f64 = 1.5;
    /// Largest change of the quality from one frame to the next (factor).
    const MAX_STEP: f64 = 1.25;

    /// A controller for `target_kbps`, starting at `initial_quality`, keeping the quality within
    /// `range`.
    pub fn new(
        target_kbps: f64,
        initial_quality: f32,
        range: std::ops::RangeInclusive<f32>,
    ) -> RateController {
        RateController {
            target_bps: (target_kbps * 1000.0).max(1.0),
            quality: f64::from(initial_quality),
            min_quality: f64::from(*range.start()),
            max_quality: f64::from(*range.end()),
            average_bps: None,
            excess_bits: 0.0,
        }
    }

    pub fn target_kbps(&self) -> f64 {
        self.target_bps / 1000.0
    }

    /// The quality for the next frame.
    pub fn quality(&self) -> f32 {
        self.quality as f32
    }

    /// Accounts one coded frame of `bits` lasting `duration_s` and returns the quality for the
    /// next one.
    pub fn update(&mut self, bits: usize, duration_s: f64) -> f32 {
        let duration = duration_s.clamp(1e-3, 10.0);
        let rate = bits as f64 / duration;
        let alpha = (duration / Self::WINDOW_S).min(1.0);
        let average = match self.average_bps {
            None => rate,
            Some(a) => a + alpha * (rate - a),
        };
        self.average_bps = Some(average);
        self.excess_bits =
            (self.excess_bits + bits as f64 - self.target_bps * duration).max(-self.target_bps);
        // The rate that would repay the bucket over the next window.
        let wanted = (self.target_bps - self.excess_bits / (4.0 * Self::WINDOW_S))
            .max(0.25 * self.target_bps);
        let ratio = (average.max(1.0) / wanted).powf(alpha / Self::EXPONENT);
        let factor = ratio.clamp(1.0 / Self::MAX_STEP, Self::MAX_STEP);
        self.quality = (self.quality * factor).clamp(self.min_quality, self.max_quality);
        self.quality as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plant that follows the model with a content factor that jumps (a scene change).
    fn simulate(target_kbps: f64, content: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut rc = RateController::new(target_kbps, 0.5, 0.001..=16.0);
        let mut q = rc.quality() as f64;
        (0..400)
            .map(|i| {
                let bits = content(i) * q.powf(-1.5);
                q = f64::from(rc.update(bits as usize, 0.1));
                bits
            })
            .collect()
    }

    #[test]
    fn converges_on_the_target_and_follows_a_scene_change() {
        let bits = simulate(200.0, |i| if i < 200 { 10_000.0 } else { 60_000.0 });
        for window in [150..200, 350..400] {
            let kbps = bits[window.clone()].iter().sum::<f64>() / 5.0 / 1000.0;
            assert!(
                (kbps - 200.0).abs() < 20.0,
                "frames {window:?}: {kbps} kbit/s for a 200 kbit/s target"
            );
        }
    }

    #[test]
    fn quality_stays_in_range() {
        let mut rc = RateController::new(1.0, 0.5, 0.01..=4.0);
        for _ in 0..100 {
            rc.update(1_000_000, 0.1);
        }
        assert_eq!(rc.quality(), 4.0);
        let mut rc = RateController::new(100_000.0, 0.5, 0.01..=4.0);
        for _ in 0..100 {
            rc.update(10, 0.1);
        }
        assert_eq!(rc.quality(), 0.01);
    }
}
