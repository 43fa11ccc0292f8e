//! fmap-eval: how many bits each way of sending the split costs, and what it does to detection
//! accuracy against the unsplit model's detections.

pub mod anchors;
pub mod bdrate;
pub mod evaluate;
pub mod map;
pub mod runner;
pub mod stream;
pub mod tiling;
