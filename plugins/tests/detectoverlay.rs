//! detectoverlay in real pipelines: videotestsrc for the video, appsrc for the detection lines.
//!
//! Every pipeline wait is bounded: a stall fails the test instead of hanging it.

use std::sync::{Arc, Mutex, Once};

use gst::prelude::*;

const WIDTH: usize = 160;
const HEIGHT: usize = 120;
/// 10 fps.
const FRAME_NS: u64 = 100_000_000;
/// A stall shows up as no EOS within this time.
const PIPELINE_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(30);

/// Colours the overlay uses for class 0 and class 2 (first and third palette entries).
const CLASS0_RGB: [u8; 3] = [255, 56, 56];
const CLASS2_RGB: [u8; 3] = [0, 194, 255];

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstfmap::plugin_register_static().unwrap();
    });
}

fn video_caps(format: &str) -> String {
    format!("video/x-raw,format={format},width={WIDTH},height={HEIGHT},framerate=10/1")
}

/// One JSON line as splitinfer-back writes it.
fn line(frame: u64, width: u32, height: u32, dets: &[(&str, u32, f64, [f64; 4])]) -> String {
    let dets: Vec<String> = dets
        .iter()
        .map(|(label, class, score, b)| {
            format!(
                r#"{{"label":"{label}","class_id":{class},"score":{score},"box":[{},{},{},{}]}}"#,
                b[0], b[1], b[2], b[3]
            )
        })
        .collect();
    format!(
        r#"{{"pts_ns":{},"frame":{frame},"width":{width},"height":{height},"detections":[{}]}}"#,
        frame * FRAME_NS,
        dets.join(",")
    ) + "\n"
}

struct Run {
    buffers: Vec<gst::Buffer>,
    warnings: Vec<String>,
}

/// Runs `videotestsrc (num_frames) ! detectoverlay ! appsink` with `detections` pushed into the
/// detections pad (PTS in ns, bytes), then EOS on that pad if `detections_eos`.
fn run_overlay(
    num_frames: u32,
    detections: &[(u64, Vec<u8>)],
    detections_eos: bool,
    live: bool,
    overlay_props: &str,
    src_props: &str,
    format: &str,
) -> Run {
    init();
    let desc = format!(
        "videotestsrc num-buffers={num_frames} pattern=smpte is-live={live} {src_props} ! {} ! \
         detectoverlay name=o {overlay_props} ! appsink name=sink sync=false \
         appsrc name=det format=time is-live={live} min-latency=0 \
         caps=application/x-detections ! o.detections",
        video_caps(format)
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let collected = Arc::new(Mutex::new(Vec::new()));
    let c = collected.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                c.lock().unwrap().push(sample.buffer_owned().unwrap());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let appsrc = pipeline
        .by_name("det")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for (pts, bytes) in detections {
        let mut b = gst::Buffer::from_slice(bytes.clone());
        {
            let b = b.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_nseconds(*pts));
            b.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
        }
        appsrc.push_buffer(b).unwrap();
    }
    if detections_eos {
        appsrc.end_of_stream().unwrap();
    }

    let bus = pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    let outcome = loop {
        let Some(msg) = bus.timed_pop_filtered(
            PIPELINE_TIMEOUT,
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
            ],
        ) else {
            break Err("no EOS within the timeout: the pipeline stalled".to_string());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(format!("{} ({:?})", e.error(), e.debug())),
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    outcome.unwrap();
    let buffers = std::mem::take(&mut *collected.lock().unwrap());
    Run { buffers, warnings }
}

/// The frames videotestsrc produces without the overlay.
fn reference_frames(num_frames: u32) -> Vec<Vec<u8>> {
    reference_frames_in(num_frames, "RGBx")
}

fn reference_frames_in(num_frames: u32, format: &str) -> Vec<Vec<u8>> {
    init();
    let desc = format!(
        "videotestsrc num-buffers={num_frames} pattern=smpte ! {} ! appsink name=sink sync=false",
        video_caps(format)
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    while let Some(sample) = sink.try_pull_sample(PIPELINE_TIMEOUT) {
        frames.push(sample.buffer().unwrap().map_readable().unwrap().to_vec());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(frames.len(), num_frames as usize);
    frames
}

fn bytes(b: &gst::Buffer) -> Vec<u8> {
    b.map_readable().unwrap().to_vec()
}

fn rgb_at(frame: &[u8], x: usize, y: usize) -> [u8; 3] {
    let o = (y * WIDTH + x) * 4;
    [frame[o], frame[o + 1], frame[o + 2]]
}

/// roi-type, (x, y, w, h) and the `detection` params of one region of interest.
type Roi = (String, (u32, u32, u32, u32), gst::Structure);

fn rois(b: &gst::BufferRef) -> Vec<Roi> {
    b.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| {
            (
                m.roi_type().to_string(),
                m.rect(),
                m.param("detection").expect("detection params").to_owned(),
            )
        })
        .collect()
}

fn det_at(frame: u64, text: String) -> (u64, Vec<u8>) {
    (frame * FRAME_NS, text.into_bytes())
}

#[test]
fn boxes_are_drawn_at_the_right_pixels_and_rois_attached() {
    let reference = reference_frames(5);
    let dets = vec![
        det_at(
            1,
            line(
                1,
                160,
                120,
                &[("person", 0, 0.875, [40.0, 50.0, 100.0, 110.0])],
            ),
        ),
        // Boxes given for a 320x240 frame are scaled to the 160x120 video.
        det_at(
            3,
            line(
                3,
                320,
                240,
                &[
                    ("car", 2, 0.5, [20.0, 40.0, 120.0, 200.0]),
                    ("person", 0, 0.25, [200.0, 100.0, 300.0, 220.0]),
                ],
            ),
        ),
    ];
    let run = run_overlay(5, &dets, true, false, "", "", "RGBx");
    assert_eq!(run.buffers.len(), 5);
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);

    for i in [0usize, 2, 4] {
        assert_eq!(
            bytes(&run.buffers[i]),
            reference[i],
            "frame {i} must pass unchanged"
        );
        assert!(
            rois(&run.buffers[i]).is_empty(),
            "frame {i} has no detections"
        );
    }

    let f1 = bytes(&run.buffers[1]);
    let r1 = &reference[1];
    // Outline: 2 px at x = 40,41 and 99,100; y = 50,51 and 109,110.
    for (x, y) in [
        (40, 80),
        (41, 80),
        (100, 80),
        (99, 80),
        (70, 110),
        (70, 109),
        (95, 51),
    ] {
        assert_eq!(rgb_at(&f1, x, y), CLASS0_RGB, "outline pixel ({x},{y})");
    }
    // Inside and outside the outline the frame is untouched.
    for (x, y) in [
        (42, 80),
        (98, 80),
        (70, 52),
        (70, 108),
        (39, 80),
        (101, 80),
        (70, 111),
        (10, 10),
    ] {
        assert_eq!(
            rgb_at(&f1, x, y),
            rgb_at(r1, x, y),
            "pixel ({x},{y}) must be unchanged"
        );
    }
    // The label bar (9 px tall) sits directly above the box, starting at its left edge.
    assert_eq!(rgb_at(&f1, 40, 41), CLASS0_RGB, "label bar");
    assert_eq!(
        rgb_at(&f1, 40, 40),
        rgb_at(r1, 40, 40),
        "above the label bar"
    );
    // The bar holds text: some pixel in it is not the bar colour.
    let text_pixels = (41..50)
        .flat_map(|y| (40..90).map(move |x| (x, y)))
        .filter(|&(x, y)| rgb_at(&f1, x, y) != CLASS0_RGB)
        .count();
    assert!(
        text_pixels > 20,
        "label text drawn ({text_pixels} text pixels)"
    );

    let r = rois(&run.buffers[1]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "person");
    assert_eq!(r[0].1, (40, 50, 61, 61));
    assert_eq!(r[0].2.get::<String>("label").unwrap(), "person");
    assert_eq!(r[0].2.get::<u32>("class-id").unwrap(), 0);
    assert_eq!(r[0].2.get::<f64>("confidence").unwrap(), 0.875);

    let r = rois(&run.buffers[3]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].0, "car");
    assert_eq!(r[0].1, (10, 20, 51, 81));
    assert_eq!(r[0].2.get::<u32>("class-id").unwrap(), 2);
    assert_eq!(r[1].0, "person");
    assert_eq!(r[1].1, (100, 50, 51, 61));
    let f3 = bytes(&run.buffers[3]);
    assert_eq!(rgb_at(&f3, 10, 60), CLASS2_RGB, "car outline, scaled");
    assert_eq!(rgb_at(&f3, 150, 80), CLASS0_RGB, "person outline, scaled");
    assert_eq!(
        rgb_at(&f3, 30, 60),
        rgb_at(&reference[3], 30, 60),
        "inside the car box"
    );
}

#[test]
fn draw_false_attaches_metas_and_leaves_pixels() {
    let reference = reference_frames(3);
    let dets = vec![det_at(
        1,
        line(1, 160, 120, &[("dog", 16, 0.9, [10.0, 10.0, 50.0, 50.0])]),
    )];
    let run = run_overlay(3, &dets, true, false, "draw=false", "", "RGBx");
    assert_eq!(run.buffers.len(), 3);
    for (i, b) in run.buffers.iter().enumerate() {
        assert_eq!(bytes(b), reference[i], "frame {i}");
    }
    let r = rois(&run.buffers[1]);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0.as_str(), r[0].1), ("dog", (10, 10, 41, 41)));
    assert_eq!(r[0].2.get::<u32>("class-id").unwrap(), 16);
}

#[test]
fn detections_eos_early_keeps_video_flowing() {
    let reference = reference_frames(20);
    let dets = vec![
        det_at(
            0,
            line(0, 160, 120, &[("person", 0, 0.8, [0.0, 0.0, 20.0, 20.0])]),
        ),
        det_at(
            1,
            line(1, 160, 120, &[("person", 0, 0.8, [0.0, 0.0, 20.0, 20.0])]),
        ),
    ];
    let run = run_overlay(20, &dets, true, false, "", "", "RGBx");
    assert_eq!(run.buffers.len(), 20, "every video frame comes out");
    assert_eq!(rois(&run.buffers[0]).len(), 1);
    assert_eq!(rois(&run.buffers[1]).len(), 1);
    for (i, (out, expected)) in run.buffers.iter().zip(&reference).enumerate().skip(2) {
        assert_eq!(&bytes(out), expected, "frame {i}");
        assert!(rois(out).is_empty());
    }
}

#[test]
fn frames_without_detections_and_near_timestamps() {
    let reference = reference_frames(10);
    let one = |f: u64| line(f, 160, 120, &[("bus", 5, 0.7, [30.0, 30.0, 90.0, 90.0])]);
    let dets = vec![
        det_at(0, one(0)),
        // 30 ms after frame 4 (a frame lasts 100 ms): nearest, within half a frame.
        (4 * FRAME_NS + 30_000_000, one(4).into_bytes()),
        // 70 ms after frame 6: closer to frame 7.
        (6 * FRAME_NS + 70_000_000, one(7).into_bytes()),
        det_at(9, one(9)),
    ];
    let run = run_overlay(10, &dets, true, false, "", "", "RGBx");
    assert_eq!(run.buffers.len(), 10);
    let with: Vec<usize> = (0..10)
        .filter(|&i| !rois(&run.buffers[i]).is_empty())
        .collect();
    assert_eq!(with, vec![0, 4, 7, 9]);
    for i in [1usize, 2, 3, 5, 6, 8] {
        assert_eq!(bytes(&run.buffers[i]), reference[i], "frame {i}");
    }
}

#[test]
fn stale_detections_are_dropped() {
    // Video starts at 100 ms; detections for 0 ms are older than every frame and must not
    // attach to any of them, the ones for 200 ms attach to the second frame.
    let one = |f: u64| line(f, 160, 120, &[("cat", 15, 0.6, [5.0, 5.0, 60.0, 60.0])]);
    let dets = vec![det_at(0, one(0)), det_at(2, one(2))];
    let run = run_overlay(
        4,
        &dets,
        true,
        false,
        "",
        &format!("timestamp-offset={FRAME_NS}"),
        "RGBx",
    );
    assert_eq!(run.buffers.len(), 4);
    let pts: Vec<u64> = run
        .buffers
        .iter()
        .map(|b| b.pts().unwrap().nseconds())
        .collect();
    assert_eq!(
        pts,
        vec![FRAME_NS, 2 * FRAME_NS, 3 * FRAME_NS, 4 * FRAME_NS]
    );
    let counts: Vec<usize> = run.buffers.iter().map(|b| rois(b).len()).collect();
    assert_eq!(counts, vec![0, 1, 0, 0]);
}

#[test]
fn video_eos_ends_the_stream_while_detections_stay_open() {
    let dets = vec![
        det_at(0, line(0, 160, 120, &[])),
        det_at(1, line(1, 160, 120, &[])),
        det_at(2, line(2, 160, 120, &[])),
        det_at(3, line(3, 160, 120, &[])),
        det_at(4, line(4, 160, 120, &[])),
    ];
    // No EOS on the detections pad: the stream must still end when the video does.
    let run = run_overlay(5, &dets, false, false, "", "", "RGBx");
    assert_eq!(run.buffers.len(), 5);
}

#[test]
fn live_late_detections_do_not_stall() {
    // Live sources; detections only for frame 0 and the detections pad never ends. Frames
    // whose detections never come leave after their running time + latency.
    let dets = vec![det_at(
        0,
        line(0, 160, 120, &[("person", 0, 0.9, [0.0, 0.0, 30.0, 30.0])]),
    )];
    let run = run_overlay(10, &dets, false, true, "latency=50000000", "", "RGBx");
    assert_eq!(run.buffers.len(), 10);
    assert!(rois(&run.buffers[9]).is_empty());
}

#[test]
fn unreadable_detections_warn_and_pass_through() {
    let reference = reference_frames(3);
    let dets = vec![
        (0, b"{not json".to_vec()),
        (FRAME_NS, vec![0xff, 0x00, 0xfe]),
        det_at(
            2,
            line(2, 160, 120, &[("kite", 38, 0.4, [1.0, 1.0, 9.0, 9.0])]),
        ),
    ];
    let run = run_overlay(3, &dets, true, false, "", "", "RGBx");
    assert_eq!(run.buffers.len(), 3);
    assert_eq!(bytes(&run.buffers[0]), reference[0]);
    assert_eq!(bytes(&run.buffers[1]), reference[1]);
    assert_eq!(
        rois(&run.buffers[2]).len(),
        1,
        "later valid lines still apply"
    );
    assert_eq!(
        run.warnings.len(),
        1,
        "one warning, not one per buffer: {:?}",
        run.warnings
    );
    assert!(
        run.warnings[0].contains("detections"),
        "{}",
        run.warnings[0]
    );
}

#[test]
fn i420_frames_get_boxes_too() {
    let reference = reference_frames_in(2, "I420");
    let dets = vec![det_at(
        1,
        line(
            1,
            160,
            120,
            &[("person", 0, 0.9, [40.0, 50.0, 100.0, 110.0])],
        ),
    )];
    let run = run_overlay(2, &dets, true, false, "", "", "I420");
    assert_eq!(run.buffers.len(), 2);
    assert_eq!(bytes(&run.buffers[0]), reference[0]);
    assert_eq!(rois(&run.buffers[1]).len(), 1);
    let f = bytes(&run.buffers[1]);
    let r = &reference[1];
    // Luma plane first, WIDTH bytes per row: class 0's colour (255, 56, 56) is Y = 115.
    let luma = |frame: &[u8], x: usize, y: usize| frame[y * WIDTH + x];
    for (x, y) in [(40, 80), (41, 80), (100, 80), (70, 110)] {
        assert_eq!(luma(&f, x, y), 115, "outline ({x},{y})");
    }
    for (x, y) in [(42, 80), (70, 108), (38, 80), (70, 112)] {
        assert_eq!(luma(&f, x, y), luma(r, x, y), "unchanged ({x},{y})");
    }
}

/// The overlay behind a real split detector: `tee` feeds the video to the overlay and to
/// splitinfer-front ! splitinfer-back, whose lines come back on the detections pad.
#[test]
fn overlay_follows_the_split_detector_on_footage() {
    init();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let footage = std::env::var_os("FMAP_FOOTAGE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/footage"))
        .join("vtest.avi");
    let model = root.join("models/nanodet.onnx");
    assert!(
        footage.is_file() && model.is_file(),
        "needs vtest.avi and the NanoDet model"
    );
    let frames = 8u64;
    let desc = format!(
        "filesrc location={} ! decodebin ! identity name=limit ! videoconvert ! \
         video/x-raw,format=BGRx ! tee name=t \
         t. ! queue ! o.video \
         t. ! queue ! splitinfer-front model={m} split-at=stage2 ! \
              splitinfer-back model={m} ! tee name=d \
         d. ! queue ! o.detections \
         d. ! queue ! appsink name=lines sync=false \
         detectoverlay name=o ! appsink name=sink sync=false",
        footage.display(),
        m = model.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    // Pass `frames` decoded frames, then stop the source.
    let seen = std::sync::atomic::AtomicU64::new(0);
    pipeline
        .by_name("limit")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < frames {
                gst::PadProbeReturn::Ok
            } else {
                // Handled (not Drop, which always answers OK upstream): consume the buffer
                // and return EOS so the source stops.
                drop(info.take_buffer());
                info.flow_res = Err(gst::FlowError::Eos);
                gst::PadProbeReturn::Handled
            }
        });
    let collect = |name: &str| {
        let store = Arc::new(Mutex::new(Vec::new()));
        let s = store.clone();
        pipeline
            .by_name(name)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap()
            .set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        s.lock().unwrap().push(sample.buffer_owned().unwrap());
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        store
    };
    let video = collect("sink");
    let lines = collect("lines");
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline finished");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{} ({:?})", e.error(), e.debug());
    }
    let video = video.lock().unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(video.len(), frames as usize);
    assert_eq!(lines.len(), frames as usize);
    for (v, l) in video.iter().zip(lines.iter()) {
        assert_eq!(v.pts(), l.pts());
        let text = String::from_utf8(l.map_readable().unwrap().to_vec()).unwrap();
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        let dets = line["detections"].as_array().unwrap();
        let r = rois(v);
        // Every detection of the frame is attached (all vtest boxes lie inside the frame).
        assert_eq!(r.len(), dets.len(), "frame {:?}", v.pts());
        for ((label, _, params), d) in r.iter().zip(dets) {
            assert_eq!(label, d["label"].as_str().unwrap());
            assert_eq!(
                params.get::<u32>("class-id").unwrap() as u64,
                d["class_id"].as_u64().unwrap()
            );
        }
        assert!(r.iter().filter(|(l, _, _)| l == "person").count() >= 2);
    }
}
