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
    EDGE_SERVER_ELEMENTS, Launch, NetnsPair, UdpTap, element_message_fields, free_udp_port,
    require_elements_and_footage, scratch_dir, wait_for_lines, workspace_root,
};

/// Frames sent per run: enough for group structures and loss to matter, few enough for 2 cores
/// (98% of 50 tolerates one lost frame).
const FRAMES: usize = 50;
/// vtest.avi's frame rate, to turn bytes per frame into a bit rate.
const FPS: f64 = 10.0;
const EDGE_TIMEOUT: Duration = Duration::from_secs(600);
const SERVER_TIMEOUT: Duration = Duration::from_secs(600);

fn require_everything() {
    require_elements_and_footage(&EDGE_SERVER_ELEMENTS, "");
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
    /// Key (sync) units the edge sent: the first, periodic ones and those answering requests.
    sync_units: u64,
    /// When the edge process exited.
    edge_ended: std::time::Instant,
    /// The server's stderr (its GStreamer debug log, if GST_DEBUG was given).
    server_log: String,
}

/// Held while edges and servers run: one set at a time. Two pairs (four ONNX Runtime sessions)
/// on two cores starve each other's RTCP and retransmission timing, which the lossy-link tests
/// measure.
fn one_pair() -> std::sync::MutexGuard<'static, ()> {
    static ONE_PAIR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_PAIR.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the server, runs the edge to its end, waits for the server to catch up, stops the
/// server with EOS (Ctrl-C), and collects what both reported.
fn run_edge_and_server(
    test: &str,
    edge_env: &[(&str, String)],
    server_env: &[(&str, String)],
    netns: Option<&NetnsPair>,
) -> Run {
    run_edge_and_server_with(test, edge_env, server_env, netns, &mut |_| {})
}

/// [`run_edge_and_server`], calling `during` with the edge once it has been started (e.g. to
/// cut the link for a while); the edge is then waited for.
fn run_edge_and_server_with(
    test: &str,
    edge_env: &[(&str, String)],
    server_env: &[(&str, String)],
    netns: Option<&NetnsPair>,
    during: &mut dyn FnMut(&mut Launch),
) -> Run {
    let _pair = one_pair();
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
    during(&mut edge);
    let edge_done = edge.wait(EDGE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let edge_ended = std::time::Instant::now();
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
        sync_units: enc.get("sync-units").copied().unwrap_or(0),
        edge_ended,
        server_log: server_done.stderr,
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
fn channel_transform_over_loopback_with_the_same_file_at_both_ends() {
    require_everything();
    let (port, ret) = (free_udp_port(), free_udp_port());
    let file = workspace_root().join("models/nanodet.stage2.calib.json");
    let transform = format!("channel-transform={}", file.display());
    let run = run_edge_and_server(
        "klt",
        &[
            ("SERVER_HOST", "127.0.0.1".into()),
            ("PORT", port.to_string()),
            ("RETURN_PORT", ret.to_string()),
            (
                "FMAPENC_EXTRA",
                format!("{transform} transform-components=64"),
            ),
        ],
        &[
            ("PORT", port.to_string()),
            ("RETURN_HOST", "127.0.0.1".into()),
            ("RETURN_PORT", ret.to_string()),
            ("FMAPDEC_EXTRA", transform),
        ],
        None,
    );
    report("klt", &run);
    assert_complete("klt", &run);
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

/// The same 5% loss with retransmission (`RTX=1` with `RTCP=1`: the server's jitterbuffer asks
/// for every lost packet by RTCP NACK, the edge's rtprtxqueue resends it, and resent packets
/// meet the same 5% loss) and a 500 ms jitterbuffer, which leaves room for a second request
/// when a resent packet is lost too: at least 99% of the frames decode without concealment,
/// and person AP@0.5 against the loss-free run is at least the 0.9. The
/// edge sends through a relay that counts the bytes on the wire (resent packets included).
/// Measured 300/300, 299/300 and 299/300 unconcealed (the last: the final unit lost, with
/// nothing after it to reveal the loss; JITTER_MS=200: 288/300, one round of requests; without
/// RTX: 27/300).
#[test]
fn rtpfmap_five_percent_loss_with_retransmission_decodes_without_concealment() {
    require_everything();
    let run = |test: &str, loss: &str| {
        let server_port = free_udp_port();
        let tap = UdpTap::start(server_port);
        let both = [
            ("PAYLOAD", "fmap".to_string()),
            ("RTCP", "1".to_string()),
            ("RTX", "1".to_string()),
            ("JITTER_MS", "500".to_string()),
            ("RTCP_PORT", free_udp_port().to_string()),
            ("RTCP_BACK_PORT", free_udp_port().to_string()),
        ];
        let mut edge = vec![
            ("SERVER_HOST", "127.0.0.1".to_string()),
            ("PORT", tap.port().to_string()),
            ("FRAMES", LONG.to_string()),
            ("LOSS", loss.to_string()),
        ];
        edge.extend(both.iter().cloned());
        let mut server = vec![("PORT", server_port.to_string())];
        server.extend(both.iter().cloned());
        let r = run_edge_and_server(test, &edge, &server, None);
        report(test, &r);
        assert_eq!(r.frames_sent, LONG as u64);
        let bytes: usize = tap.finish().iter().map(Vec::len).sum();
        let kbps = bytes as f64 * 8.0 / (LONG as f64 / FPS) / 1000.0;
        (r, kbps)
    };
    let (clean, clean_kbps) = run("rtpfmap-rtx-loss-0", "0");
    assert_eq!(clean.detection_frames.len(), LONG, "loss-free: every frame");
    let (lossy, lossy_kbps) = run("rtpfmap-rtx-loss-0.05", "0.05");
    let persons = persons_by_frame(&lossy.out);
    let concealed = persons.values().filter(|(c, _)| *c).count();
    let ap = person_ap50(&persons_by_frame(&clean.out), &persons);
    eprintln!(
        "loss 0.05 with RTX: {} of {LONG} frames with a line, {concealed} concealed, person \
         AP@0.5 against the loss-free run {ap:.3}, on the wire {clean_kbps:.1} kbit/s without \
         loss and {lossy_kbps:.1} with (what got through, resent packets included), decoder \
         {:?}, depayloader {:?}",
        lossy.detection_frames.len(),
        lossy.decoder,
        lossy.depayloader
    );
    // A loss in the very last unit has no later packet to reveal it (no NACK, no gap for
    // fmapdec to fill): that frame may be missing, which the 1% allows.
    let exact = lossy.detection_frames.len() - concealed;
    assert!(
        exact * 100 >= 99 * LONG,
        "at least 99% of the frames decoded without concealment: {exact} of {LONG} \
         ({} lines, {concealed} concealed)",
        lossy.detection_frames.len()
    );
    assert!(
        ap >= 0.9,
        "person AP@0.5 against the loss-free run: {ap:.3}"
    );
}

/// ULPFEC without a return path (`FEC=100` on both ends: rtpulpfecenc on the edge, rtpstorage
/// and rtpulpfecdec on the server) at 5% loss rebuilds lost packets: the depayloader misses at
/// least a third fewer pieces (slices and unit heads) than without it. fmapdec's lost slices
/// alone were measured 17 and 29 at 100% and 20% protection, 75 without, at quality 1.4, but
/// they leave out units lost whole, and a run without FEC once lost 13 units whole and only 29
/// slices, against 1 and 21 with FEC (pieces 49 against 22). Every frame still gets a line;
/// concealment stays high, since without a return path each slice FEC could not rebuild waits
/// for its refresh (docs/robustness.md).
#[test]
fn rtpfmap_fec_rebuilds_lost_packets_without_a_return_path() {
    require_everything();
    let stat = |r: &Run, name: &str| r.depayloader.as_ref().expect("rtpfmapdepay stats")[name];
    let lost_slices = |r: &Run| r.decoder.as_ref().expect("fmapdec-stats")["lost-slices"];
    let plain = long_fmap_run("rtpfmap-fec-0", "0.05", &[], &[]);
    let fec = long_fmap_run("rtpfmap-fec-100", "0.05", &[("FEC", "100".into())], &[]);
    eprintln!(
        "5% loss: pieces lost {} without FEC, {} with FEC=100 (units lost whole {} and {}, \
         slices lost {} and {}); lines {} and {}",
        stat(&plain, "pieces-lost"),
        stat(&fec, "pieces-lost"),
        stat(&plain, "lost"),
        stat(&fec, "lost"),
        lost_slices(&plain),
        lost_slices(&fec),
        plain.detection_frames.len(),
        fec.detection_frames.len()
    );
    assert_eq!(fec.detection_frames.len(), LONG, "every frame gets a line");
    assert!(stat(&plain, "pieces-lost") > 0, "5% loss costs pieces");
    assert!(
        stat(&fec, "pieces-lost") * 3 < stat(&plain, "pieces-lost") * 2,
        "FEC rebuilds lost packets: {} pieces lost against {}",
        stat(&fec, "pieces-lost"),
        stat(&plain, "pieces-lost")
    );
}

/// One server for two cameras (`PORTS="a b"` in server.sh): two edges, each with its own port
/// and frame count, through rtpbin with RTCP (`RTCP=1`, `PAYLOAD=fmap`); each camera's
/// detections land in its own file, a line for every frame it sent and none of the other's.
#[test]
fn one_server_decodes_two_cameras_told_apart_by_port() {
    require_everything();
    let _pair = one_pair();
    let dir = scratch_dir("two-cameras");
    let out = dir.join("detections.jsonl");
    let ports = [free_udp_port(), free_udp_port()];
    let frames = [30usize, 45];
    let common = [
        ("PAYLOAD", "fmap".to_string()),
        ("RTCP", "1".to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    let mut server_vars = common.to_vec();
    server_vars.push(("OUT", out.display().to_string()));
    server_vars.push(("PORTS", format!("{} {}", ports[0], ports[1])));
    let mut server = Launch::script("server", "server.sh", &server_vars, &dir, None);
    server
        .wait_for_stdout("Setting pipeline to PLAYING", SERVER_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut edges: Vec<Launch> = ports
        .iter()
        .zip(frames)
        .enumerate()
        .map(|(i, (port, n))| {
            let mut vars = common.to_vec();
            vars.push(("PORT", port.to_string()));
            vars.push(("FRAMES", n.to_string()));
            vars.push(("SERVER_HOST", "127.0.0.1".to_string()));
            Launch::script(&format!("edge{i}"), "edge.sh", &vars, &dir, None)
        })
        .collect();
    for edge in &mut edges {
        let done = edge.wait(EDGE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        assert!(done.status.success(), "edge failed\n{}", edge.log_tail());
    }
    let files: Vec<_> = (0..2)
        .map(|i| dir.join(format!("detections.camera{i}.jsonl")))
        .collect();
    for (file, n) in files.iter().zip(frames) {
        wait_for_lines(file, n, Duration::from_secs(15), SERVER_TIMEOUT);
    }
    server.interrupt();
    let done = server
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success(), "server\n{}", server.log_tail());
    for (i, (file, n)) in files.iter().zip(frames).enumerate() {
        let (got, lines, with_person) = read_detections(file);
        eprintln!("camera {i}: {lines} lines, {with_person} with a person");
        assert_eq!(got, (0..n as u64).collect::<BTreeSet<_>>(), "camera {i}");
        assert_eq!(
            lines, n,
            "camera {i}: one line per frame, no other camera's"
        );
    }
    assert!(!out.exists(), "with PORTS, no shared file");
}

/// Frames of a burst run: the burst at ~6–8 s and, without a return path, room for a whole
/// gradual-refresh cycle (key-interval 100 frames) after it.
const BURST_RUN_FRAMES: usize = 200;
/// When the link is cut, after the edge pipeline went to PLAYING, and for how long.
const BURST_AT: Duration = Duration::from_secs(6);
const BURST_LENGTH: Duration = Duration::from_secs(2);

/// One burst run: what the server wrote and when the link was down.
struct BurstRun {
    run: Run,
    /// Link cut and restored, in seconds after the test saw the edge print "Setting pipeline to
    /// PLAYING" (polled every 50 ms). The edge syncs every packet to the pipeline clock
    /// (`udpsink sync=true`), so frame `i` (pts `i / FPS`) leaves about `i / FPS` s after that.
    cut_s: f64,
    restored_s: f64,
    /// Seconds from PLAYING to the edge's exit (200 frames: 20 s if it kept real time).
    edge_s: f64,
    /// Frames `a..b` that never reached the server (fmapdec's debug log: "frames a..b lost"),
    /// the largest such gap: the frames sent while the link was cut.
    lost: Option<(u64, u64)>,
    /// Per frame of the detections file: (pts in ns, concealed).
    lines: BTreeMap<u64, (Option<u64>, bool)>,
}

impl BurstRun {
    /// The first frame sent after the link came back: the end of fmapdec's lost gap, or (if
    /// that log line is missing) the first frame whose pts is past the restore time.
    fn first_after(&self) -> u64 {
        self.lost
            .map_or((self.restored_s * FPS).ceil() as u64, |(_, b)| b)
    }

    /// The first frame from [`BurstRun::first_after`] on that is not concealed, and its pts.
    fn resumed(&self) -> Option<(u64, Option<u64>)> {
        self.lines
            .range(self.first_after()..)
            .find(|(_, (_, concealed))| !concealed)
            .map(|(&frame, &(pts, _))| (frame, pts))
    }

    /// Resume delay in media seconds: from the first frame sent after the burst, and from the
    /// wall-clock restore time mapped to media time (the larger, when the edge keeps real time).
    fn resume_delay_s(&self) -> Option<(f64, f64)> {
        let (frame, pts) = self.resumed()?;
        let from_frames = (frame - self.first_after()) as f64 / FPS;
        let pts_s = pts.map_or(frame as f64 / FPS, |p| p as f64 / 1e9);
        Some((from_frames, pts_s - self.restored_s))
    }

    fn report(&self, test: &str) {
        report(test, &self.run);
        let concealed = self.lines.values().filter(|(_, c)| *c).count();
        eprintln!(
            "{test}: edge PLAYING -> link cut at +{:.2} s (frame {:.1} on the edge's clock), \
             restored at +{:.2} s (frame {:.1}); the edge sent {} frames in {:.1} s after PLAYING \
             ({:.2}x real time); the server never received frames {:?} \
             (fmapdec: \"frames a..b lost\"); first frame sent after the burst {}",
            self.cut_s,
            self.cut_s * FPS,
            self.restored_s,
            self.restored_s * FPS,
            self.run.frames_sent,
            self.edge_s,
            self.run.frames_sent as f64 / FPS / self.edge_s,
            self.lost.map(|(a, b)| a..b),
            self.first_after()
        );
        match (self.resumed(), self.resume_delay_s()) {
            (Some((frame, pts)), Some((from_frames, from_wall))) => eprintln!(
                "{test}: detections resume (first frame not concealed) at frame {frame} \
                 (pts {:?} ns): {} frames = {from_frames:.2} s of media time after the first \
                 frame sent after the burst, {from_wall:.2} s after the restore time; \
                 {concealed} concealed lines of {}; key units sent {} (requests answered {})",
                pts,
                frame - self.first_after(),
                self.lines.len(),
                self.run.sync_units,
                self.run.key_requests_answered
            ),
            _ => eprintln!(
                "{test}: detections never resume within the run ({concealed} concealed lines of \
                 {}, the last frame {:?}); key units sent {} (requests answered {})",
                self.lines.len(),
                self.lines.keys().last(),
                self.run.sync_units,
                self.run.key_requests_answered
            ),
        }
    }
}

/// "frames a..b lost" gaps in fmapdec's debug log; the largest.
fn largest_lost_gap(log: &str) -> Option<(u64, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split_once("frames ")?.1;
            let (range, tail) = rest.split_once(' ')?;
            if !tail.starts_with("lost") {
                return None;
            }
            let (a, b) = range.split_once("..")?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .max_by_key(|&(a, b): &(u64, u64)| b.saturating_sub(a))
}

/// Edge and server in two network namespaces with the lossy-link setup (`PAYLOAD=fmap`,
/// `FMAPENC_EXTRA="resilient=true"`, and `RTCP=1` when `rtcp`); the veth link is cut in both
/// directions [`BURST_AT`] after the edge starts playing, for [`BURST_LENGTH`].
fn burst_run(test: &str, pair: &NetnsPair, rtcp: bool) -> BurstRun {
    let mut both = vec![
        ("PAYLOAD", "fmap".to_string()),
        ("PORT", "5000".to_string()),
    ];
    if rtcp {
        both.push(("RTCP", "1".to_string()));
    }
    let mut edge = vec![
        ("SERVER_HOST", pair.server_ip.clone()),
        ("FRAMES", BURST_RUN_FRAMES.to_string()),
        ("FMAPENC_EXTRA", "resilient=true".to_string()),
    ];
    edge.extend(both.iter().cloned());
    let mut server = vec![
        ("EDGE_HOST", pair.edge_ip.clone()),
        // fmapdec logs the frames that never arrived ("frames a..b lost").
        ("GST_DEBUG", "fmapdec:5".to_string()),
        ("GST_DEBUG_NO_COLOR", "1".to_string()),
    ];
    server.extend(both);

    let mut window = None;
    let run = run_edge_and_server_with(test, &edge, &server, Some(pair), &mut |edge| {
        edge.wait_for_stdout("Setting pipeline to PLAYING", EDGE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let playing = std::time::Instant::now();
        std::thread::sleep(BURST_AT);
        pair.cut_link().unwrap_or_else(|e| panic!("{e}"));
        let cut = playing.elapsed();
        std::thread::sleep(BURST_LENGTH);
        pair.restore_link().unwrap_or_else(|e| panic!("{e}"));
        window = Some((playing, cut, playing.elapsed()));
    });
    let (playing, cut, restored) = window.expect("the link was cut and restored");
    let text = std::fs::read_to_string(&run.out).unwrap_or_default();
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let d = parse_detections_line(l).expect("a detections line");
            (d.frame, (d.pts_ns, d.concealed))
        })
        .collect();
    BurstRun {
        cut_s: cut.as_secs_f64(),
        restored_s: restored.as_secs_f64(),
        edge_s: run.edge_ended.duration_since(playing).as_secs_f64(),
        lost: largest_lost_gap(&run.server_log),
        lines,
        run,
    }
}

/// Issue 11's "2-second burst of 100% loss": edge and server as two processes in two network
/// namespaces joined by a veth pair, the recommended lossy-link pipelines (`PAYLOAD=fmap
/// RTCP=1 FMAPENC_EXTRA="resilient=true"`), 200 frames of vtest.avi at 10 fps. About 6 s into
/// the run the link is cut in both directions for 2 s (a `blackhole` qdisc on both veth ends,
/// as `tc ... netem loss 100%` would), then restored. Both pipelines reach EOS with no error,
/// every frame gets a detection line (fmapdec repeats the lost ones, flagged concealed), and the
/// first frame that is not concealed comes within 1 s of media time after the burst (asserted;
/// measured 0.4–0.5 s, 4–5 frames: fmapdec's key-unit request goes back as RTCP PLI and the edge
/// answers with a key unit).
/// The same burst without a return path is measured and printed, not asserted: it waits for
/// gradual refresh (key-interval 100 frames). Skipped when not root. docs/robustness.md has the
/// figures.
#[test]
fn rtpfmap_two_second_burst_of_total_loss_resumes_within_a_second_with_pli() {
    let test = "rtpfmap_two_second_burst_of_total_loss_resumes_within_a_second_with_pli";
    // One pair for both runs (each burst ends with the link restored).
    let pair = match NetnsPair::create("burst").and_then(|p| {
        p.cut_link()
            .and_then(|()| p.restore_link())
            .map_err(|e| format!("cannot cut the veth link with tc: {e}"))?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            return;
        }
    };
    require_everything();
    let with_pli = burst_run("burst-rtcp", &pair, true);
    with_pli.report("burst with RTCP PLI");
    let without = burst_run("burst-no-rtcp", &pair, false);
    without.report("burst without a return path");

    let frames = BURST_RUN_FRAMES as u64;
    assert_eq!(
        with_pli.run.frames_sent, frames,
        "the edge sent every frame"
    );
    assert_eq!(
        with_pli.run.detection_frames.len(),
        BURST_RUN_FRAMES,
        "a detection line for every frame, the lost ones concealed"
    );
    assert_eq!(
        with_pli.run.detection_lines, BURST_RUN_FRAMES,
        "one line per frame"
    );
    // The cut really lost ~2 s of frames: 20 units at 10 fps never arrived, and fmapdec
    // repeated a frame for each (a slow edge sends fewer in 2 s, hence the range).
    let dec = with_pli.run.decoder.as_ref().expect("fmapdec-stats");
    assert!(
        (10..=30).contains(&dec["repeated"]),
        "the burst cost {} frames (expected ~20): {dec:?}, lost {:?}",
        dec["repeated"],
        with_pli.lost
    );
    assert!(
        with_pli.run.key_requests_answered >= 1,
        "the key-unit request came back as PLI and fmapenc answered it"
    );
    let (from_frames, from_wall) = with_pli
        .resume_delay_s()
        .expect("detections resume after the burst");
    assert!(
        from_frames.max(from_wall) <= 1.0,
        "detections resume {from_frames:.2} s (media time) after the first frame sent after the \
         burst, {from_wall:.2} s after the restore time: more than 1 s"
    );
    assert_eq!(
        without.run.frames_sent, frames,
        "no return path: every frame sent"
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
