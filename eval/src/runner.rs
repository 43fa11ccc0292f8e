//! Running GStreamer pipelines to completion, with byte and buffer counters on chosen pads.
//!
//! Used by the tools that drive the real elements (`fmap-demo`). Pipelines are given as
//! `gst-launch-1.0` strings so that what the tools run is what a user can copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Buffers and bytes that crossed one pad.
#[derive(Debug, Default)]
pub struct PadCounter {
    pub buffers: AtomicU64,
    pub bytes: AtomicU64,
}

impl PadCounter {
    pub fn buffers(&self) -> u64 {
        self.buffers.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Counts the buffers leaving `element`'s src pad.
pub fn count_src_pad(pipeline: &gst::Pipeline, element: &str) -> Result<Arc<PadCounter>, String> {
    let el = pipeline
        .by_name(element)
        .ok_or_else(|| format!("pipeline has no element named '{element}'"))?;
    let pad = el
        .static_pad("src")
        .ok_or_else(|| format!("element '{element}' has no src pad"))?;
    let counter = Arc::new(PadCounter::default());
    let c = counter.clone();
    // Payloaders push buffer lists; count each buffer of a list.
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let add = |b: &gst::BufferRef| {
                c.buffers.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(b.size() as u64, Ordering::Relaxed);
            };
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => add(b),
                Some(gst::PadProbeData::BufferList(list)) => list.iter().for_each(add),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(counter)
}

/// Prefix of the name of an `identity` that [`parse_pipeline`] turns into a frame limiter.
pub const LIMITER_PREFIX: &str = "limit-";

/// `identity name=limit-N ! ` when `frames` > 0 (a pipeline from [`parse_pipeline`] then ends
/// after N frames there); else nothing.
pub fn limiter(frames: u64) -> String {
    if frames > 0 {
        format!("identity name={LIMITER_PREFIX}{frames} ! ")
    } else {
        String::new()
    }
}

/// Prefix of the name of an `identity` that [`parse_pipeline`] turns into a frame picker.
pub const PICKER_PREFIX: &str = "every-";

/// `identity name=every-K ! ` when `stride` > 1 (a pipeline from [`parse_pipeline`] then passes
/// only frames 0, K, 2K, … there; put a [`limiter`] after it to keep N of them); else nothing.
pub fn picker(stride: u64) -> String {
    if stride > 1 {
        format!("identity name={PICKER_PREFIX}{stride} ! ")
    } else {
        String::new()
    }
}

/// The sink pads of the `identity` elements named `<prefix>N`, with N.
fn counting_pads(pipeline: &gst::Pipeline, prefix: &str) -> Vec<(gst::Pad, u64)> {
    pipeline
        .iterate_all_by_element_factory_name("identity")
        .into_iter()
        .flatten()
        .filter_map(|element| {
            let n = element.name().strip_prefix(prefix)?.parse::<u64>().ok()?;
            Some((element.static_pad("sink")?, n))
        })
        .collect()
}

/// Drops every buffer but each K-th (the first kept) at elements named `every-K`.
fn install_pickers(pipeline: &gst::Pipeline) {
    for (pad, stride) in counting_pads(pipeline, PICKER_PREFIX) {
        let seen = AtomicU64::new(0);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(stride.max(1))
            {
                return gst::PadProbeReturn::Ok;
            }
            // Taken and released here, upstream told all is well. (Returning `Drop` with the
            // buffer left in place makes GStreamer 1.22 unref a NULL object, with a CRITICAL
            // per frame.)
            drop(info.data.take());
            info.flow_res = Ok(gst::FlowSuccess::Ok);
            gst::PadProbeReturn::Handled
        });
    }
}

/// Lets the first N buffers through every element named `limit-N`, then returns EOS upstream so
/// the stream ends there. (identity's own `eos-after` is unreliable after a threaded decoder: in
/// GStreamer 1.22 it lets a late-drained frame from seconds later through.)
fn install_limiters(pipeline: &gst::Pipeline) {
    for (pad, frames) in counting_pads(pipeline, LIMITER_PREFIX) {
        let seen = AtomicU64::new(0);
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let n = seen.fetch_add(1, Ordering::Relaxed);
            if n < frames {
                return gst::PadProbeReturn::Ok;
            }
            // The first surplus frame ends the stream here. Surplus frames are taken and
            // released by the probe ("handled"), and upstream is told EOS so it stops.
            if n == frames {
                pad.send_event(gst::event::Eos::new());
            }
            drop(info.data.take());
            info.flow_res = Err(gst::FlowError::Eos);
            gst::PadProbeReturn::Handled
        });
    }
}

/// Parses a `gst-launch-1.0` description into a pipeline, with its `limit-N` limiters and
/// `every-K` pickers installed.
pub fn parse_pipeline(description: &str) -> Result<gst::Pipeline, String> {
    let element = gst::parse::launch(description)
        .map_err(|e| format!("cannot build pipeline: {e}\n  pipeline: {description}"))?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| "description is not a pipeline".to_string())?;
    install_limiters(&pipeline);
    install_pickers(&pipeline);
    Ok(pipeline)
}

/// What ended a pipeline run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Eos,
    /// `udpsrc` reported no data for its `timeout` after data had arrived: the sender is done.
    SenderIdle,
}

/// Plays `pipeline` until EOS, an error, or `limit`. When a `udpsrc` posts its timeout message
/// after `started()` returns true, EOS is sent so every element flushes and files are complete.
/// `tick` runs about once a second (progress reports).
pub fn run_to_end(
    pipeline: &gst::Pipeline,
    limit: Duration,
    started: impl Fn() -> bool,
    mut tick: impl FnMut(),
) -> Result<RunEnd, String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| first_error(pipeline).unwrap_or_else(|| "pipeline failed to start".into()))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let start = Instant::now();
    let mut end = None;
    let result = loop {
        if start.elapsed() > limit {
            break Err(format!("pipeline did not finish within {limit:?}"));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(1000)) else {
            tick();
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(end.unwrap_or(RunEnd::Eos)),
            gst::MessageView::Error(e) => {
                break Err(format!(
                    "{}: {}{}",
                    e.src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    e.error(),
                    e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
                ));
            }
            gst::MessageView::Element(el) => {
                let is_timeout = el
                    .structure()
                    .is_some_and(|s| s.name() == "GstUDPSrcTimeout");
                if is_timeout && end.is_none() && started() {
                    end = Some(RunEnd::SenderIdle);
                    pipeline.send_event(gst::event::Eos::new());
                }
            }
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(format!(
                "{}{}",
                e.error(),
                e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
            ));
        }
    }
    None
}
