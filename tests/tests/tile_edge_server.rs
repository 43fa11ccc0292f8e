//! The tiled path end to end: `pipelines/tile-edge.sh` (splitinfer-front → fmaptile → x265enc
//! → rtph265pay, or the H.264 equivalent; 8-bit or, with `BITS=10`, 10-bit mosaics) and
//! `pipelines/tile-server.sh` (rtph265depay → avdec_h265 → fmapuntile → splitinfer-back) as two
//! gst-launch-1.0 processes over UDP loopback: a detection line for every frame sent; also with
//! `TRANSFORM` (the channel KLT of NanoDet's calibration file) at both ends; with `SRTP_KEY`
//! (encrypted, through a relay that keeps every datagram), and with a wrong key.
//!
//! Needs the release plugin (GST_PLUGIN_PATH), the models and the sample footage.

use fmap_infer::detection::parse_detections_line;
use std::collections::BTreeSet;
use std::time::Duration;

use fmap_e2e::{
    Launch, SCRIPTS_SSRC, UdpTap, count_lines, datagrams_holding, element_message_fields,
    footage_video, free_udp_port, missing_elements, model, reports_wrong_srtp_key, rtp_ssrc,
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

/// In x265's first key frame (its version SEI, "x265 (build ...) - H.265/HEVC codec"): plain
/// text on the wire unless encrypted.
const X265_MARKER: &[u8] = b"H.265/HEVC codec";

/// What one tiled run with a relay in between produced.
struct TapRun {
    lines: usize,
    wire: Vec<Vec<u8>>,
    server: fmap_e2e::Finished,
}

impl TapRun {
    fn datagrams_holding(&self, needle: &[u8]) -> usize {
        datagrams_holding(&self.wire, needle)
    }
}

/// tile-edge.sh and tile-server.sh (H.265, 8-bit) through a [`UdpTap`] that keeps every
/// datagram, each end with its SRTP key (none: plain RTP). With the same key (or none) at both
/// ends the server is stopped once every frame has its line; otherwise it must end by itself.
fn tiled_through_tap(test: &str, edge_key: Option<&str>, server_key: Option<&str>) -> TapRun {
    let missing = missing_elements(&["fmaptile", "fmapuntile", "rtph265pay", "srtpenc", "srtpdec"]);
    assert!(missing.is_empty(), "elements not found: {missing:?}");
    assert!(footage_video().is_file() && model("nanodet.onnx").is_file());
    let dir = scratch_dir(test);
    let out = dir.join("detections.jsonl");
    let port = free_udp_port();
    let tap = UdpTap::start(port);
    let common = [
        ("SPLIT", "stage2".to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    let mut server_env = common.to_vec();
    server_env.push(("PORT", port.to_string()));
    server_env.push(("OUT", out.display().to_string()));
    if let Some(k) = server_key {
        server_env.push(("SRTP_KEY", k.to_string()));
    }
    let mut server = Launch::script("server", "tile-server.sh", &server_env, &dir, None);
    server
        .wait_for_stdout("Setting pipeline to PLAYING", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut edge_env = common.to_vec();
    edge_env.push(("PORT", tap.port().to_string()));
    edge_env.push(("FRAMES", FRAMES.to_string()));
    if let Some(k) = edge_key {
        edge_env.push(("SRTP_KEY", k.to_string()));
    }
    let mut edge = Launch::script("edge", "tile-edge.sh", &edge_env, &dir, None);
    let edge_done = edge.wait(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        edge_done.status.success(),
        "edge failed\n{}",
        edge.log_tail()
    );
    if edge_key == server_key {
        wait_for_lines(&out, FRAMES, Duration::from_secs(15), TIMEOUT);
        server.interrupt();
    }
    let server_done = server
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    TapRun {
        lines: count_lines(&out),
        wire: tap.finish(),
        server: server_done,
    }
}

/// The tiled path with `SRTP_KEY` at both ends: every frame gets its line, every datagram
/// carries the scripts' SSRC, and x265's version text, readable on the plain RTP wire (checked
/// in the same test), is not on the SRTP one.
#[test]
fn tiled_features_over_srtp_h265_every_frame_and_no_plaintext_on_the_wire() {
    let plain = tiled_through_tap("tile-srtp-plain", None, None);
    assert_eq!(plain.lines, FRAMES, "plain RTP: a line for every frame");
    assert!(
        plain.datagrams_holding(X265_MARKER) > 0,
        "x265's version text is readable on the plain wire"
    );
    let key = "3e".repeat(30);
    let srtp = tiled_through_tap("tile-srtp", Some(&key), Some(&key));
    let bytes = |r: &TapRun| r.wire.iter().map(Vec::len).sum::<usize>();
    eprintln!(
        "tiled H.265: plain {} datagrams, {} bytes; SRTP {} datagrams, {} bytes; lines {} / {}",
        plain.wire.len(),
        bytes(&plain),
        srtp.wire.len(),
        bytes(&srtp),
        plain.lines,
        srtp.lines
    );
    assert!(srtp.server.status.success(), "{}", srtp.server.stderr);
    assert_eq!(srtp.lines, FRAMES, "SRTP: a line for every frame");
    assert_eq!(
        srtp.datagrams_holding(X265_MARKER),
        0,
        "plain text on the SRTP wire"
    );
    assert!(
        srtp.wire.iter().all(|d| rtp_ssrc(d) == Some(SCRIPTS_SSRC)),
        "every SRTP packet carries SSRC {SCRIPTS_SSRC}"
    );
}

/// A tile-server.sh given another key than the edge's: not a single line, the error that
/// server.sh gives, and the server ends by itself with a non-zero status.
#[test]
fn tiled_srtp_wrong_key_gives_no_detection_and_a_clear_error() {
    let r = tiled_through_tap(
        "tile-srtp-wrong",
        Some(&"3e".repeat(30)),
        Some(&"e3".repeat(30)),
    );
    assert_eq!(r.lines, 0, "not a single line with a wrong key");
    assert!(!r.server.status.success(), "the server exits with an error");
    assert!(
        reports_wrong_srtp_key(&r.server.stderr),
        "a clear error on the server's stderr:\n{}",
        r.server.stderr
    );
}
