//! Pushing recorded buffers through a pipeline of real elements and collecting what comes out.
//!
//! The evaluation records the feature frames of a clip once (one `splitinfer-front` run per
//! split point) and then replays them through `fmapenc`, `fmapdec` and `splitinfer-back` for each
//! setting, so the expensive front network runs once per split, not once per setting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::runner::{parse_pipeline, run_to_end};

/// Buffers with the caps they were produced under.
#[derive(Debug, Clone)]
pub struct Recording {
    pub caps: gst::Caps,
    pub buffers: Vec<gst::Buffer>,
}

impl Recording {
    pub fn total_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.size() as u64).sum()
    }
}

/// Runs `description`, which must end in `appsink name=sink`, to EOS and returns what the sink
/// received, with the wall time of the run. If it starts with `appsrc name=src`, `input` is
/// pushed into it (all buffers queued up front, so the elements never wait for input).
pub fn run_recording(
    description: &str,
    input: Option<&Recording>,
    limit: Duration,
) -> Result<(Recording, Duration), String> {
    let pipeline = parse_pipeline(description)?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("pipeline has no appsink named 'sink'")?;
    sink.set_property("sync", false);
    let out: Arc<Mutex<(Option<gst::Caps>, Vec<gst::Buffer>)>> = Arc::default();
    let collected = out.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let mut o = collected.lock().expect("collector lock");
                if o.0.is_none() {
                    o.0 = sample.caps().map(|c| c.to_owned());
                }
                if let Some(b) = sample.buffer_owned() {
                    o.1.push(b);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    if let Some(input) = input {
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or("pipeline has no appsrc named 'src'")?;
        src.set_caps(Some(&input.caps));
        src.set_format(gst::Format::Time);
        src.set_max_bytes(0);
        src.set_property("block", false);
        for b in &input.buffers {
            src.push_buffer(b.clone())
                .map_err(|e| format!("appsrc refused a buffer: {e:?}"))?;
        }
        let _ = src.end_of_stream();
    }
    let start = Instant::now();
    run_to_end(&pipeline, limit, || true, || {})?;
    let elapsed = start.elapsed();
    let (caps, buffers) = std::mem::take(&mut *out.lock().expect("collector lock"));
    let caps = caps.ok_or("the pipeline produced no output")?;
    Ok((Recording { caps, buffers }, elapsed))
}
