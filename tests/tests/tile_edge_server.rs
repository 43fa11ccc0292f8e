//! The tiled path end to end: `pipelines/tile-edge.sh` (splitinfer-front → fmaptile → x265enc
//! → rtph265pay, or the H.264 equivalent; 8-bit or, with `BITS=10`, 10-bit mosaics) and
//! `pipelines/tile-server.sh` (rtph265depay → avdec_h265 → fmapuntile → splitinfer-back) as two
//! gst-launch-1.0 processes over UDP loopback: a detection line for every frame sent; also with
//! `TRANSFORM` (the channel KLT of NanoDet's calibration file) at both ends.
//!
//! Needs the release plugin (GST_PLUGIN_PATH), the models and the sample footage.

use fmap_infer::detection::parse_detections_line;
use std::collections::BTreeSet;
use std::time::Duration;

use fmap_e2e::{
    Launch, element_message_fields, footage_video, free_udp_port, missing_elements, model,
    scratch_dir, wait_for_lines,
};

const FRAMES: usize = 30;
const TIMEOUT: Duration = Duration::from_secs(600);

/// `transform`: both ends get NanoDet stage2's calibration file as `TRANSFORM`.
fn edge_and_server(codec: &str, payloader: &str, bits: u8, transform: bool) {
    let missing = missing_elements(&[
        "splitinfer-front",
        "splitinfer-back",
        "fmaptile",
        "fmapuntile",
        payloader,
    ]);
    assert!(
        missing.is_empty(),
        "elements not found (build the plugin in release, set GST_PLUGIN_PATH): {missing:?}"
    );
    assert!(footage_video().is_file() && model("nanodet.onnx").is_file());
    let test = format!(
        "tile-{codec}-{bits}bit{}",
        if transform { "-klt" } else { "" }
    );
    let dir = scratch_dir(&test);
    let out = dir.join("detections.jsonl");
    let port = free_udp_port().to_string();
    let mut common = vec![
        ("PORT", port),
        ("CODEC", codec.to_string()),
        ("SPLIT", "stage2".to_string()),
        ("BITS", bits.to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    if transform {
        let file = model("nanodet.stage2.calib.json");
        assert!(file.is_file(), "missing {}", file.display());
        common.push(("TRANSFORM", file.display().to_string()));
    }
    let mut server_env = common.to_vec();
    server_env.push(("OUT", out.display().to_string()));
    let mut server = Launch::script("server", "tile-server.sh", &server_env, &dir, None);
    server
        .wait_for_stdout("Setting pipeline to PLAYING", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut edge_env = common.to_vec();
    edge_env.push(("FRAMES", FRAMES.to_string()));
    let mut edge = Launch::script("edge", "tile-edge.sh", &edge_env, &dir, None);
    let edge_done = edge.wait(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        edge_done.status.success(),
        "edge failed: {:?}\n{}",
        edge_done.status,
        edge.log_tail()
    );
    let tiled = element_message_fields(&edge_done.stdout, "fmaptile-stats")
        .unwrap_or_else(|| panic!("no fmaptile-stats from the edge\n{}", edge.log_tail()));
    wait_for_lines(&out, FRAMES, Duration::from_secs(15), TIMEOUT);
    server.interrupt();
    let server_done = server
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        server_done.status.success(),
        "server did not end cleanly\n{}",
        server.log_tail()
    );
    let untiled = element_message_fields(&server_done.stdout, "fmapuntile-stats")
        .unwrap_or_else(|| panic!("no fmapuntile-stats from the server\n{}", server.log_tail()));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let mut frames = BTreeSet::new();
    let mut with_person = 0;
    for line in text.lines() {
        let parsed = parse_detections_line(line)
            .unwrap_or_else(|e| panic!("not a detections line ({e}): {line}"));
        assert_eq!((parsed.width, parsed.height), (768, 576), "{line}");
        frames.insert(parsed.frame);
        with_person += parsed.detections.iter().any(|d| d.label == "person") as usize;
    }
    eprintln!(
        "{test}: {} frames tiled, {} lines ({} distinct frames, {with_person} with a person), \
         untile {untiled:?}",
        tiled["frames"],
        text.lines().count(),
        frames.len()
    );
    assert_eq!(
        tiled["frames"], FRAMES as u64,
        "{test}: the edge tiled every frame"
    );
    assert_eq!(
        frames,
        (0..FRAMES as u64).collect::<BTreeSet<_>>(),
        "{test}: a detection line for every frame"
    );
    assert_eq!(text.lines().count(), FRAMES, "{test}: one line per frame");
    assert_eq!(untiled["dropped"], 0, "{test}: no damaged header");
    assert!(
        with_person * 2 >= FRAMES,
        "{test}: people found in most frames"
    );
}

#[test]
fn tiled_features_over_rtp_h265() {
    edge_and_server("h265", "rtph265pay", 8, false);
}

#[test]
fn tiled_features_over_rtp_h264() {
    edge_and_server("h264", "rtph264pay", 8, false);
}

/// TRANSFORM on both sides: the mosaic of 64 principal components, inverted by the server.
#[test]
fn tiled_klt_features_over_rtp_h265() {
    edge_and_server("h265", "rtph265pay", 8, true);
}

/// BITS=10 on both sides: I420_10LE mosaics as H.265 Main 10, and the server insisting on them.
#[test]
fn tiled_10bit_features_over_rtp_h265() {
    edge_and_server("h265", "rtph265pay", 10, false);
}

/// The tiled scripts have no SRTP: with `SRTP_KEY` set they refuse to start instead of sending
/// the mosaic in the clear.
#[test]
fn tiled_scripts_refuse_srtp_instead_of_sending_in_the_clear() {
    let dir = scratch_dir("tile-srtp");
    let key = "ab".repeat(30);
    for script in ["tile-edge.sh", "tile-server.sh"] {
        let mut run = Launch::script(script, script, &[("SRTP_KEY", key.clone())], &dir, None);
        let done = run.wait(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        assert!(!done.status.success(), "{script} must refuse SRTP_KEY");
        assert!(
            done.stderr
                .contains("SRTP_KEY is not supported by the tiled path"),
            "{script}: {}",
            done.stderr
        );
    }
}
