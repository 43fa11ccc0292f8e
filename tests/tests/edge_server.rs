//! Edge and server as two separate gst-launch-1.0 processes (the `pipelines/edge.sh` and
//! `pipelines/server.sh` scripts) talking RTP over real UDP: over loopback, across a veth pair
//! between two network namespaces (when root), and over a lossy link.
//!
//! Needs the release plugin (`cargo build --release -p gst-fmap`, or GST_PLUGIN_PATH), the
//! models in `models/` and the sample footage (FMAP_FOOTAGE). Run with `--nocapture` to see the
//! measured rates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use fmap_eval::map::{COCO_MAX_DETS, ImageEval, ScoredBox, evaluate};
use fmap_infer::detection::parse_detections_line;

use fmap_e2e::{
    Launch, NetnsPair, element_message_fields, footage_video, free_udp_port, missing_elements,
    model, scratch_dir, wait_for_lines,
};

/// Frames sent per run: enough for group structures and loss to matter, few enough for 2 cores
/// (98% of 50 tolerates one lost frame).
const FRAMES: usize = 50;
/// vtest.avi's frame rate, to turn bytes per frame into a bit rate.
const FPS: f64 = 10.0;
const EDGE_TIMEOUT: Duration = Duration::from_secs(600);
const SERVER_TIMEOUT: Duration = Duration::from_secs(600);

fn require_everything() {
    let missing = missing_elements(&[
        "splitinfer-front",
        "splitinfer-back",
        "fmapenc",
        "fmapdec",
        "rtpgstpay",
        "rtpgstdepay",
        "rtpfmappay",
        "rtpfmapdepay",
    ]);
    assert!(
        missing.is_empty(),
        "elements not found (build the plugin in release, set GST_PLUGIN_PATH): {missing:?}"
    );
    assert!(
        footage_video().is_file(),
        "footage missing: {}",
        footage_video().display()
    );
    assert!(
        model("nanodet.onnx").is_file(),
        "model missing: models/nanodet.onnx"
    );
}

/// Parses the server's JSON lines; returns the distinct frame indices, and how many lines hold
/// at least one person.
fn read_detections(path: &Path) -> (BTreeSet<u64>, usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut frames = BTreeSet::new();
    let mut with_person = 0;
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let parsed = parse_detections_line(line)
            .unwrap_or_else(|e| panic!("not a detections line ({e}): {line}"));
        assert_eq!((parsed.width, parsed.height), (768, 576), "{line}");
        for d in &parsed.detections {
            assert!((0.0..=1.0).contains(&d.score), "{line}");
        }
        if parsed.detections.iter().any(|d| d.label == "person") {
            with_person += 1;
        }
        frames.insert(parsed.frame);
    }
    (frames, lines, with_person)
}

struct Run {
    frames_sent: u64,
    bytes_sent: u64,
    /// Force-key-unit requests fmapenc answered (RTCP PLI through rtpbin, with `RTCP=1`).
    key_requests_answered: u64,
    detection_frames: BTreeSet<u64>,
    detection_lines: usize,
    with_person: usize,
    returned_lines: usize,
    decoder: Option<std::collections::HashMap<String, u64>>,
    /// `rtpfmapdepay`'s counters (with `PAYLOAD=fmap`).
    depayloader: Option<std::collections::HashMap<String, u64>>,
    seconds: f64,
    /// The server's detections file.
    out: std::path::PathBuf,
}

/// Starts the server, runs the edge to its end, waits for the server to catch up, stops the
/// server with EOS (Ctrl-C), and collects what both reported.
fn run_edge_and_server(
    test: &str,
    edge_env: &[(&str, String)],
    server_env: &[(&str, String)],
    netns: Option<&NetnsPair>,
) -> Run {
    let dir = scratch_dir(test);
    let out = dir.join("detections.jsonl");
    let returned = dir.join("returned.jsonl");
    let mut server_vars = vec![
        ("OUT", out.display().to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    server_vars.extend(server_env.iter().cloned());
    let frames = edge_env
        .iter()
        .find(|(k, _)| *k == "FRAMES")
        .map_or(FRAMES, |(_, v)| v.parse().expect("FRAMES is a number"));
    let mut edge_vars = vec![
        ("FRAMES", frames.to_string()),
        ("RETURN_FILE", returned.display().to_string()),
        ("RETURN_IDLE", "4".to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    edge_vars.extend(edge_env.iter().filter(|(k, _)| *k != "FRAMES").cloned());

    let mut server = Launch::script(
        "server",
        "server.sh",
        &server_vars,
        &dir,
        netns.map(|n| n.server_ns.as_str()),
    );
    // The server must be listening before the first packet: its socket is bound once the
    // pipeline is PLAYING (caps are resent every second anyway, so a late start would only cost
    // frames).
    server
        .wait_for_stdout("Setting pipeline to PLAYING", SERVER_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));

    let started = std::time::Instant::now();
    let mut edge = Launch::script(
        "edge",
        "edge.sh",
        &edge_vars,
        &dir,
        netns.map(|n| n.edge_ns.as_str()),
    );
    let edge_done = edge.wait(EDGE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        edge_done.status.success(),
        "edge failed: {:?}\n{}",
        edge_done.status,
        edge.log_tail()
    );
    let enc = element_message_fields(&edge_done.stdout, "fmapenc-stats")
        .unwrap_or_else(|| panic!("no fmapenc-stats from the edge\n{}", edge.log_tail()));

    // The edge already waited for the returned detections to stop; the file is complete.
    wait_for_lines(&out, frames, Duration::from_secs(15), SERVER_TIMEOUT);
    let seconds = started.elapsed().as_secs_f64();
    server.interrupt();
    let server_done = server
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        server_done.status.success(),
        "server did not end cleanly: {:?}\n{}",
        server_done.status,
        server.log_tail()
    );
    let (detection_frames, detection_lines, with_person) = read_detections(&out);
    let returned_lines = fmap_e2e::count_lines(&returned);
    Run {
        frames_sent: enc["frames"],
        bytes_sent: enc["bytes"],
        key_requests_answered: enc["key-requests"],
        detection_frames,
        detection_lines,
        with_person,
        returned_lines,
        decoder: element_message_fields(&server_done.stdout, "fmapdec-stats"),
        depayloader: element_message_fields(&server_done.stdout, "rtpfmapdepay-stats"),
        seconds,
        out,
    }
}

fn report(test: &str, r: &Run) {
    let kbit_s = r.bytes_sent as f64 * 8.0 / (r.frames_sent as f64 / FPS) / 1000.0;
    eprintln!(
        "{test}: {} frames sent, {} coded bytes ({:.0} bytes/frame, {kbit_s:.0} kbit/s at {FPS} fps), \
         {} detection lines ({} frames, {} with a person), {} returned to the edge, \
         {:.1} s wall ({:.2} frames/s end to end), decoder {:?}, depayloader {:?}",
        r.frames_sent,
        r.bytes_sent,
        r.bytes_sent as f64 / r.frames_sent as f64,
        r.detection_lines,
        r.detection_frames.len(),
        r.with_person,
        r.returned_lines,
        r.seconds,
        r.frames_sent as f64 / r.seconds,
        r.decoder,
        r.depayloader
    );
}

fn assert_complete(test: &str, r: &Run) {
    assert_eq!(
        r.frames_sent, FRAMES as u64,
        "{test}: the edge encoded every frame"
    );
    let need = (r.frames_sent as f64 * 0.98).ceil() as usize;
    assert!(
        r.detection_frames.len() >= need,
        "{test}: detection lines for {} of {} frames (need {need})",
        r.detection_frames.len(),
        r.frames_sent
    );
    assert_eq!(
        r.detection_lines,
        r.detection_frames.len(),
        "{test}: one line per frame"
    );
    // vtest.avi shows people in every frame: a working chain finds them in most.
    assert!(
        r.with_person * 2 >= r.detection_lines,
        "{test}: only {} of {} lines hold a person",
        r.with_person,
        r.detection_lines
    );
    assert!(
        r.returned_lines >= need,
        "{test}: {} detection lines came back to the edge (need {need})",
        r.returned_lines
    );
}

#[test]
fn edge_and_server_over_loopback() {
    require_everything();
    let (port, ret) = (free_udp_port(), free_udp_port());
    let run = run_edge_and_server(
        "loopback",
        &[
            ("SERVER_HOST", "127.0.0.1".into()),
            ("PORT", port.to_string()),
            ("RETURN_PORT", ret.to_string()),
            ("MODE", "closed-loop".into()),
        ],
        &[
            ("PORT", port.to_string()),
            ("RETURN_HOST", "127.0.0.1".into()),
            ("RETURN_PORT", ret.to_string()),
        ],
        None,
    );
    report("loopback", &run);
    assert_complete("loopback", &run);
}

#[test]
fn edge_and_server_in_two_network_namespaces() {
    let pair = match NetnsPair::create("e2e") {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED edge_and_server_in_two_network_namespaces: {why}");
            return;
        }
    };
    require_everything();
    let (port, ret) = (5000u16, 5002u16);
    let run = run_edge_and_server(
        "netns",
        &[
            ("SERVER_HOST", pair.server_ip.clone()),
            ("PORT", port.to_string()),
            ("RETURN_PORT", ret.to_string()),
            ("MODE", "bi".into()),
        ],
        &[
            ("PORT", port.to_string()),
            ("RETURN_HOST", pair.edge_ip.clone()),
            ("RETURN_PORT", ret.to_string()),
        ],
        Some(&pair),
    );
    report("netns", &run);
    assert_complete("netns", &run);
}

/// 5% of the RTP packets are dropped between payloader and depayloader. Both pipelines still
/// reach EOS, and the server writes detections for exactly the frames its decoder could restore.
/// Intra units at 4 bits in 8000-byte packets (loopback carries them unfragmented): about 9
/// packets a unit, so roughly 60% of the units arrive whole; a unit missing a fragment is
/// dropped by the depayloader.
#[test]
fn lossy_link_keeps_both_pipelines_running() {
    require_everything();
    let port = free_udp_port();
    let run = run_edge_and_server(
        "loss",
        &[
            ("SERVER_HOST", "127.0.0.1".into()),
            ("PORT", port.to_string()),
            ("MODE", "intra".into()),
            ("BITS", "4".into()),
            ("MTU", "8000".into()),
            ("LOSS", "0.05".into()),
        ],
        &[("PORT", port.to_string())],
        None,
    );
    report("loss", &run);
    assert_eq!(run.frames_sent, FRAMES as u64);
    let dec = run
        .decoder
        .as_ref()
        .expect("fmapdec-stats at the server's EOS");
    assert!(
        !run.detection_frames.is_empty(),
        "no detections at all: no frame survived 5% packet loss"
    );
    assert_eq!(
        run.detection_lines as u64, dec["frames"],
        "one detection line per decoded frame"
    );
    assert!(dec["frames"] <= run.frames_sent);
}

/// The same lossy link with the fmap RTP payload format (`PAYLOAD=fmap`: rtpfmappay /
/// rtpfmapdepay, MTU 1400, the adaptive mode with a key unit every 10 frames): both pipelines
/// reach EOS, the server writes one line per decoded frame, and the depayloader counts what the
/// link lost. Adaptive units are a head and slices (`slice-channels`), so most lost packets cost
/// a slice, which fmapdec conceals, rather than a unit. (A lost head still costs the unit, and
/// with no rtpbin the decoder's key-unit requests reach no encoder: how many frames decode is
/// left to chance here.)
#[test]
fn rtpfmap_lossy_link_keeps_both_pipelines_running() {
    require_everything();
    let port = free_udp_port();
    let payload = ("PAYLOAD", "fmap".to_string());
    let run = run_edge_and_server(
        "rtpfmap-loss",
        &[
            ("SERVER_HOST", "127.0.0.1".into()),
            ("PORT", port.to_string()),
            ("LOSS", "0.05".into()),
            ("KEY_INTERVAL", "10".into()),
            payload.clone(),
        ],
        &[("PORT", port.to_string()), payload],
        None,
    );
    report("rtpfmap-loss", &run);
    assert_eq!(run.frames_sent, FRAMES as u64);
    let dec = run
        .decoder
        .as_ref()
        .expect("fmapdec-stats at the server's EOS");
    let depay = run
        .depayloader
        .as_ref()
        .expect("rtpfmapdepay-stats at the server's EOS");
    assert_eq!(run.detection_lines as u64, dec["frames"]);
    assert_eq!(
        depay["caps-changes"], 1,
        "caps from in-band config: {depay:?}"
    );
    assert!(depay["packets-lost"] > 0, "5% loss is seen: {depay:?}");
    assert!(
        depay["lost"] + depay["partial"] > 0,
        "units that lost packets are counted: {depay:?}"
    );
    assert_eq!(
        depay["units"], dec["units"],
        "every unit the depayloader output reached fmapdec"
    );
}

/// A server started while the edge is already sending, with the plain `rtpfmappay ! udpsink`
/// edge (no setting for late receivers): the caps arrive in-band and the server decodes from
/// the next key unit on.
#[test]
fn rtpfmap_server_started_after_the_edge_decodes() {
    require_everything();
    let dir = scratch_dir("rtpfmap-late");
    let out = dir.join("detections.jsonl");
    let port = free_udp_port();
    let payload = ("PAYLOAD", "fmap".to_string());
    let mut edge = Launch::script(
        "edge",
        "edge.sh",
        &[
            ("SERVER_HOST", "127.0.0.1".into()),
            ("PORT", port.to_string()),
            ("FRAMES", FRAMES.to_string()),
            ("MODE", "closed-loop".into()),
            ("KEY_INTERVAL", "10".into()),
            ("GST_LAUNCH_FLAGS", "-e -m".into()),
            payload.clone(),
        ],
        &dir,
        None,
    );
    edge.wait_for_stdout("Setting pipeline to PLAYING", EDGE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // udpsink paces the edge at the video's 10 frames/s: about 15 frames go unheard.
    std::thread::sleep(Duration::from_millis(1500));
    let mut server = Launch::script(
        "server",
        "server.sh",
        &[
            ("PORT", port.to_string()),
            ("OUT", out.display().to_string()),
            ("GST_LAUNCH_FLAGS", "-e -m".into()),
            payload,
        ],
        &dir,
        None,
    );
    let edge_done = edge.wait(EDGE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        edge_done.status.success(),
        "edge failed\n{}",
        edge.log_tail()
    );
    wait_for_lines(&out, FRAMES, Duration::from_secs(10), SERVER_TIMEOUT);
    server.interrupt();
    let server_done = server
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        server_done.status.success(),
        "server failed\n{}",
        server.log_tail()
    );
    let depay = element_message_fields(&server_done.stdout, "rtpfmapdepay-stats")
        .expect("rtpfmapdepay-stats at the server's EOS");
    let (frames, lines, with_person) = read_detections(&out);
    eprintln!(
        "rtpfmap late server: {lines} detection lines, frames {:?}..={:?} of {FRAMES}, \
         {with_person} with a person, depayloader {depay:?}",
        frames.first(),
        frames.last()
    );
    assert_eq!(
        depay["caps-changes"], 1,
        "caps from in-band config: {depay:?}"
    );
    assert!(lines > 0, "the late server decodes");
    assert!(
        frames.first().is_some_and(|&f| f > 0),
        "the server joined after the first frame"
    );
    // From the first key unit it heard on, every frame (key units every 10 frames).
    let first = *frames.first().unwrap();
    assert!(
        frames.len() as u64 + first >= FRAMES as u64,
        "frames {first}.. all decoded: {frames:?}"
    );
}

/// Per frame, the person boxes of a server's detections file (score, box) and whether the
/// frame was concealed.
fn persons_by_frame(path: &Path) -> BTreeMap<u64, (bool, Vec<ScoredBox>)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let parsed = parse_detections_line(line).expect("a detections line");
            let boxes = parsed
                .detections
                .iter()
                .filter(|d| d.label == "person")
                .map(|d| ScoredBox {
                    class_id: 0,
                    score: f64::from(d.score),
                    bbox: d.bbox.map(f64::from),
                })
                .collect();
            (parsed.frame, (parsed.concealed, boxes))
        })
        .collect()
}

/// Person AP@0.5 of `tested` against the detections of `reference` (every frame of the
/// reference counts; a frame missing from `tested` has no detections).
fn person_ap50(
    reference: &BTreeMap<u64, (bool, Vec<ScoredBox>)>,
    tested: &BTreeMap<u64, (bool, Vec<ScoredBox>)>,
) -> f64 {
    let images: Vec<ImageEval> = reference
        .iter()
        .map(|(frame, (_, boxes))| ImageEval {
            reference: boxes.clone(),
            detections: tested
                .get(frame)
                .map(|(_, d)| d.clone())
                .unwrap_or_default(),
        })
        .collect();
    evaluate(&images, &[0.5], COCO_MAX_DETS)
        .first()
        .map_or(0.0, |c| c.ap[0])
}

/// Frames of the long lossy-link runs: enough for person AP to mean something.
const LONG: usize = 300;

/// One edge/server run of [`LONG`] frames with the fmap payload (rtpfmappay, MTU 1400) and
/// packet loss `loss` injected after the payloader; `both` goes to both ends, `edge_only` to
/// the edge. Checks that every frame was sent.
fn long_fmap_run(
    test: &str,
    loss: &str,
    both: &[(&str, String)],
    edge_only: &[(&str, String)],
) -> Run {
    let mut common = vec![
        ("PAYLOAD", "fmap".to_string()),
        ("PORT", free_udp_port().to_string()),
    ];
    common.extend(both.iter().cloned());
    let mut edge = vec![
        ("SERVER_HOST", "127.0.0.1".to_string()),
        ("FRAMES", LONG.to_string()),
        ("LOSS", loss.to_string()),
    ];
    edge.extend(edge_only.iter().cloned());
    edge.extend(common.iter().cloned());
    let r = run_edge_and_server(test, &edge, &common, None);
    report(test, &r);
    assert_eq!(r.frames_sent, LONG as u64);
    r
}

/// The lossy-link table with the default elements and the fmap payload (rtpfmappay,
/// MTU 1400, 300 frames, random packet loss injected after the payloader): at 5% loss at least
/// 95% of the frames get a detection line, at 20% at least 80%, the concealed ones say so, and
/// both pipelines end cleanly (the helper asserts exit status 0). Person AP@0.5 against the
/// loss-free run is printed, not asserted: without a return path (RTCP PLI, retransmission) it
/// falls far below the 0.9 (see docs/robustness.md).
#[test]
fn rtpfmap_five_and_twenty_percent_loss_keep_frames_and_accuracy() {
    require_everything();
    let run = |test: &str, loss: &str| long_fmap_run(test, loss, &[], &[]);
    let clean = run("rtpfmap-loss-0", "0");
    let clean_persons = persons_by_frame(&clean.out);
    assert_eq!(clean.detection_frames.len(), LONG, "loss-free: every frame");
    for (loss, min_lines) in [("0.05", 0.95), ("0.2", 0.8)] {
        let lossy = run(&format!("rtpfmap-loss-{loss}"), loss);
        let persons = persons_by_frame(&lossy.out);
        let ap = person_ap50(&clean_persons, &persons);
        let concealed = persons.values().filter(|(c, _)| *c).count();
        eprintln!(
            "loss {loss}: {} of {LONG} frames with a detection line ({concealed} concealed), \
             person AP@0.5 against the loss-free run {ap:.3}, decoder {:?}, depayloader {:?}",
            lossy.detection_frames.len(),
            lossy.decoder,
            lossy.depayloader
        );
        assert!(
            lossy.detection_frames.len() as f64 >= min_lines * LONG as f64,
            "loss {loss}: {} of {LONG} frames",
            lossy.detection_frames.len()
        );
        assert!(
            concealed > 0,
            "loss {loss}: frames off the encoder's are flagged"
        );
        let depay = lossy.depayloader.as_ref().expect("rtpfmapdepay-stats");
        assert!(depay["packets-lost"] > 0, "loss {loss} is seen: {depay:?}");
    }
}

/// The same 5% loss with a return path (`RTCP=1`: rtpbin on both ends) and `resilient`
/// contexts: fmapdec's key-unit requests come back to fmapenc as RTCP PLI and are answered with
/// key units, and the resilient slices keep decoding between them. Every frame gets a line and
/// the encoder answered requests; person AP@0.5 against the loss-free run is printed (0.77–0.81
/// measured, docs/robustness.md; the issue asks for 0.9).
#[test]
fn rtpfmap_five_percent_loss_with_rtcp_pli_gets_key_units_back() {
    require_everything();
    let run = |test: &str, loss: &str| {
        let both = [
            ("RTCP", "1".to_string()),
            ("RTCP_PORT", free_udp_port().to_string()),
            ("RTCP_BACK_PORT", free_udp_port().to_string()),
        ];
        long_fmap_run(
            test,
            loss,
            &both,
            &[("FMAPENC_EXTRA", "resilient=true".into())],
        )
    };
    let clean = run("rtpfmap-rtcp-loss-0", "0");
    assert_eq!(clean.detection_frames.len(), LONG, "loss-free: every frame");
    assert_eq!(clean.key_requests_answered, 0, "no loss, no request");
    let lossy = run("rtpfmap-rtcp-loss-0.05", "0.05");
    let ap = person_ap50(&persons_by_frame(&clean.out), &persons_by_frame(&lossy.out));
    eprintln!(
        "loss 0.05 with RTCP PLI: {} of {LONG} frames with a line, {} key units requested and \
         sent, person AP@0.5 against the loss-free run {ap:.3}",
        lossy.detection_frames.len(),
        lossy.key_requests_answered
    );
    assert!(lossy.detection_frames.len() as f64 >= 0.95 * LONG as f64);
    assert!(
        lossy.key_requests_answered > 0,
        "PLI reached fmapenc through both rtpbins"
    );
}

/// The one-machine demo writes one detection line per frame and an MP4 with the boxes drawn.
#[test]
fn demo_writes_detections_and_an_annotated_video() {
    require_everything();
    let dir = scratch_dir("demo");
    let frames = 20;
    let mut demo = Launch::script(
        "demo",
        "demo.sh",
        &[
            ("FRAMES", frames.to_string()),
            ("OUT", "demo.jsonl".into()),
            ("VIDEO_OUT", "demo.mp4".into()),
        ],
        &dir,
        None,
    );
    let done = demo.wait(EDGE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success(), "demo failed\n{}", demo.log_tail());
    let (detection_frames, lines, with_person) = read_detections(&dir.join("demo.jsonl"));
    assert_eq!(lines, frames, "one line per frame");
    assert_eq!(detection_frames.len(), frames);
    assert!(
        with_person * 2 >= lines,
        "{with_person} of {lines} lines hold a person"
    );
    let mp4 = std::fs::read(dir.join("demo.mp4")).expect("annotated video written");
    assert!(
        mp4.len() > 10_000 && &mp4[4..8] == b"ftyp",
        "not an MP4 file"
    );
    eprintln!(
        "demo: {frames} frames in {:.1} s ({:.2} frames/s), {} byte video",
        done.elapsed.as_secs_f64(),
        frames as f64 / done.elapsed.as_secs_f64(),
        mp4.len()
    );
}
