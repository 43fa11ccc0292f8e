//! fmap-eval: how many bits each way of sending the split costs, and what it does to detection
//! accuracy against the unsplit model's detections; and ([`calibrate`]) how strongly the back
//! network reacts to noise in each channel of the cut, for task-aware bit allocation.

pub mod anchors;
pub mod bdrate;
pub mod calibrate;
pub mod correlation;
pub mod evaluate;
pub mod jobs;
pub mod map;
pub mod runner;
pub mod stream;
pub mod temporal;
pub mod tiling;
