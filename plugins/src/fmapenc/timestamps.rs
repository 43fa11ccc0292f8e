//! Decode timestamps for reordered output.
//!
//! With bidirectional prediction an anchor leaves the encoder before the frames it closes, so
//! units leave in decode order, not display order. Their DTS must increase monotonically and
//! never exceed their PTS. The k-th unit out gets the PTS of the k-th frame in, shifted back by
//! the encoder's reordering delay: a unit can leave at most `delay` frames later than its frame
//! arrived, so with a constant frame duration DTS <= PTS holds. The shift saturates at zero.

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct DecodeTimestamps {
    /// PTS of the frames that came in and whose output slot has not been used yet.
    pending: VecDeque<Option<u64>>,
    /// Largest DTS handed out, to keep DTS monotonic when input PTS jitter.
    last: Option<u64>,
}

impl DecodeTimestamps {
    /// Records a frame going into the encoder.
    pub fn frame_in(&mut self, pts_ns: Option<u64>) {
        self.pending.push_back(pts_ns);
    }

    /// DTS for the next unit out, given the reordering delay in nanoseconds.
    pub fn unit_out(&mut self, delay_ns: u64) -> Option<u64> {
        let pts = self.pending.pop_front().flatten()?;
        let mut dts = pts.saturating_sub(delay_ns);
        if let Some(last) = self.last {
            dts = dts.max(last);
        }
        self.last = Some(dts);
        Some(dts)
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bi_order_gets_monotonic_dts_not_after_pts() {
        let d = 100u64;
        let mut ts = DecodeTimestamps::default();
        // Display order 0..6; decode order with one B frame between anchors: 0, 2, 1, 4, 3, 5.
        let decode_order = [0u64, 2, 1, 4, 3, 5];
        for i in 0..6 {
            ts.frame_in(Some(i * d));
        }
        let mut last = 0;
        for &shown in &decode_order {
            let dts = ts.unit_out(d).unwrap();
            assert!(dts <= shown * d, "dts {dts} after pts {}", shown * d);
            assert!(dts >= last);
            last = dts;
        }
    }

    #[test]
    fn missing_pts_gives_no_dts() {
        let mut ts = DecodeTimestamps::default();
        ts.frame_in(None);
        assert_eq!(ts.unit_out(10), None);
        assert_eq!(ts.unit_out(10), None);
    }
}
