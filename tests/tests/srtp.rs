//! Issue 11, "Security": the edge and server scripts with `SRTP_KEY` (srtpenc on the edge,
//! srtpdec on the server, AES-128-ICM + HMAC-SHA1-80, the key as a property on the edge and in
//! the udpsrc caps on the server), as two gst-launch-1.0 processes over real UDP on loopback,
//! with a relay in between ([`UdpTap`]) that keeps a copy of every datagram the edge sent.
//!
//! * the same key at both ends: every frame gets a detection line (and comes back to the edge,
//!   encrypted too), and the caps that travel in-band (`application/x-fmap-coded, model=...`),
//!   readable on the wire without SRTP, are not; the rate overhead on the wire is printed;
//! * a wrong key at the server: not a single detection line, the server stops on its own with
//!   "SRTP authentication failed for N packets: the key does not match the sender's" and a
//!   non-zero status, and the edge ends normally;
//! * with RTCP feedback and retransmission (`RTCP=1 RTX=1`) at 5% loss: the edge authenticates
//!   the server's SRTCP, lost packets are resent, at least 99% of the packets arrive in the end,
//!   and at least 99% of the frames decode without concealment;
//! * two cameras on one server (`PORTS`), each with its own SSRC: the one with the right key is
//!   served, the one with a wrong key gets an error naming it;
//! * a malformed key: both scripts refuse it, naming the expected format.
//!
//! Needs the release plugin (GST_PLUGIN_PATH), `srtpenc`/`srtpdec` (gst-plugins-bad), the models
//! and the footage. Run with `--nocapture` to see the figures (docs/robustness.md).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fmap_infer::detection::parse_detections_line;

use fmap_e2e::{
    EDGE_SERVER_ELEMENTS, Finished, Launch, SCRIPTS_SSRC, UdpTap, count_lines, datagrams_holding,
    element_message_fields, free_udp_port, plugin_path, reports_wrong_srtp_key,
    require_elements_and_footage, rtp_ssrc, scratch_dir, wait_for_lines, workspace_root,
};

/// Frames per run (vtest.avi at 10 fps).
const FRAMES: usize = 60;
const FPS: f64 = 10.0;
const TIMEOUT: Duration = Duration::from_secs(600);
/// The SSRC both scripts use by default.
const SSRC: u32 = SCRIPTS_SSRC;
/// In every in-band caps announcement (rtpgstpay's config packets, rtpfmappay's config
/// packets): plain text on the wire unless encrypted.
const CAPS_MARKER: &[u8] = b"x-fmap-coded";

fn require_everything() {
    require_elements_and_footage(
        &[
            EDGE_SERVER_ELEMENTS.as_slice(),
            &["srtpenc", "srtpdec", "rtpssrccaps"],
        ]
        .concat(),
        "; srtpenc/srtpdec are in gst-plugins-bad",
    );
}

/// A 30-byte master key and salt as 60 hex digits, every byte `byte`.
fn key(byte: u8) -> String {
    format!("{byte:02x}").repeat(30)
}

/// What one edge/server run produced.
struct Run {
    frames_sent: u64,
    /// Distinct frame indices in the server's detections file, and its line count.
    frames: BTreeSet<u64>,
    lines: usize,
    /// Lines of frames with concealed features.
    concealed: usize,
    /// Lines that came back to the edge (when asked for).
    returned: usize,
    /// Every datagram the edge sent, as the relay saw it.
    wire: Vec<Vec<u8>>,
    server: Finished,
    /// How long the edge ran, and when the server ended if it ended while the edge was still
    /// running (seconds after the edge started; watched every 100 ms).
    edge_seconds: f64,
    server_ended_during_edge: Option<f64>,
}

impl Run {
    fn wire_bytes(&self) -> usize {
        self.wire.iter().map(Vec::len).sum()
    }

    /// UDP payload bit rate over the media time sent.
    fn wire_kbit_s(&self) -> f64 {
        self.wire_bytes() as f64 * 8.0 / (self.frames_sent as f64 / FPS) / 1000.0
    }

    fn datagrams_holding(&self, needle: &[u8]) -> usize {
        datagrams_holding(&self.wire, needle)
    }

    fn report(&self, test: &str) {
        eprintln!(
            "{test}: {} frames sent, {} detection lines ({} frames, {} concealed), {} returned \
             to the edge; wire: {} datagrams, {} bytes, {:.1} kbit/s; server exit status {:?}",
            self.frames_sent,
            self.lines,
            self.frames.len(),
            self.concealed,
            self.returned,
            self.wire.len(),
            self.wire_bytes(),
            self.wire_kbit_s(),
            self.server.status.code(),
        );
    }
}

/// How the server is expected to end.
#[derive(PartialEq)]
enum End {
    /// Stopped with Ctrl-C (EOS) once every frame has its line or the lines stop coming.
    Interrupted,
    /// By itself, within a minute of the edge's end (the test fails if it does not).
    ByItself,
}

/// What else a run sets: environment of both scripts, and of the edge alone (e.g. `LOSS`).
#[derive(Default)]
struct Link {
    both: Vec<(&'static str, String)>,
    edge: Vec<(&'static str, String)>,
}

/// Starts the server (`server_key`: its SRTP_KEY, none = plain RTP), runs the edge
/// (`edge_key`) for `frames` frames through a [`UdpTap`], and collects the server as `end`
/// says. `return_path`: the server sends the detections back to the edge.
#[allow(clippy::too_many_arguments)]
fn run(
    test: &str,
    payload: &str,
    frames: usize,
    edge_key: Option<&str>,
    server_key: Option<&str>,
    return_path: bool,
    link: &Link,
    end: End,
) -> Run {
    let dir = scratch_dir(test);
    let out = dir.join("detections.jsonl");
    let returned: PathBuf = dir.join("returned.jsonl");
    let port = free_udp_port();
    let ret = free_udp_port();
    let tap = UdpTap::start(port);

    let mut server_env = vec![
        ("PORT", port.to_string()),
        ("PAYLOAD", payload.to_string()),
        ("OUT", out.display().to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    let mut edge_env = vec![
        ("SERVER_HOST", "127.0.0.1".to_string()),
        ("PORT", tap.port().to_string()),
        ("PAYLOAD", payload.to_string()),
        ("FRAMES", frames.to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    server_env.extend(link.both.iter().cloned());
    edge_env.extend(link.both.iter().chain(&link.edge).cloned());
    if let Some(k) = server_key {
        server_env.push(("SRTP_KEY", k.to_string()));
    }
    if let Some(k) = edge_key {
        edge_env.push(("SRTP_KEY", k.to_string()));
    }
    if return_path {
        server_env.push(("RETURN_HOST", "127.0.0.1".to_string()));
        server_env.push(("RETURN_PORT", ret.to_string()));
        edge_env.push(("RETURN_PORT", ret.to_string()));
        edge_env.push(("RETURN_FILE", returned.display().to_string()));
        edge_env.push(("RETURN_IDLE", "4".to_string()));
    }

    let mut server = Launch::script("server", "server.sh", &server_env, &dir, None);
    server
        .wait_for_stdout("Setting pipeline to PLAYING", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut edge = Launch::script("edge", "edge.sh", &edge_env, &dir, None);
    let edge_started = std::time::Instant::now();
    let mut server_ended_during_edge = None;
    while edge.running() && edge_started.elapsed() < TIMEOUT {
        if server_ended_during_edge.is_none() && !server.running() {
            server_ended_during_edge = Some(edge_started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let edge_done = edge.wait(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        edge_done.status.success(),
        "{test}: the edge failed: {:?}\n{}",
        edge_done.status,
        edge.log_tail()
    );
    let enc = element_message_fields(&edge_done.stdout, "fmapenc-stats").unwrap_or_else(|| {
        panic!(
            "{test}: no fmapenc-stats from the edge\n{}",
            edge.log_tail()
        )
    });

    if end == End::Interrupted {
        wait_for_lines(&out, frames, Duration::from_secs(15), TIMEOUT);
        server.interrupt();
    }
    let server_done = server
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let wire = tap.finish();

    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let mut frames = BTreeSet::new();
    let (mut lines, mut concealed) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let parsed = parse_detections_line(line)
            .unwrap_or_else(|e| panic!("{test}: not a detections line ({e}): {line}"));
        frames.insert(parsed.frame);
        concealed += usize::from(parsed.concealed);
    }
    Run {
        frames_sent: enc["frames"],
        frames,
        lines,
        concealed,
        returned: count_lines(&returned),
        wire,
        server: server_done,
        edge_seconds: edge_done.elapsed.as_secs_f64(),
        server_ended_during_edge,
    }
}

/// A plain run and an SRTP run with the same key at both ends, `payload` gst or fmap.
fn same_key_at_both_ends(payload: &str) {
    require_everything();
    let plain = run(
        &format!("plain-{payload}"),
        payload,
        FRAMES,
        None,
        None,
        false,
        &Link::default(),
        End::Interrupted,
    );
    plain.report(&format!("{payload}, no SRTP"));
    let k = key(0x5a);
    let srtp = run(
        &format!("srtp-{payload}"),
        payload,
        FRAMES,
        Some(&k),
        Some(&k),
        true,
        &Link::default(),
        End::Interrupted,
    );
    srtp.report(&format!("{payload}, SRTP, same key"));

    let overhead = srtp.wire_kbit_s() - plain.wire_kbit_s();
    let tag_kbit_s = 10.0 * srtp.wire.len() as f64 * 8.0 / (srtp.frames_sent as f64 / FPS) / 1000.0;
    eprintln!(
        "{payload}: SRTP overhead on the wire {overhead:+.1} kbit/s ({:+.1}%) = {} vs {} bytes \
         in {} vs {} datagrams; the 10-byte HMAC-SHA1-80 tag alone is {tag_kbit_s:.1} kbit/s; \
         {:?} readable in {} plain datagrams and {} SRTP datagrams",
        100.0 * overhead / plain.wire_kbit_s(),
        srtp.wire_bytes(),
        plain.wire_bytes(),
        srtp.wire.len(),
        plain.wire.len(),
        String::from_utf8_lossy(CAPS_MARKER),
        plain.datagrams_holding(CAPS_MARKER),
        srtp.datagrams_holding(CAPS_MARKER)
    );

    for (name, r) in [("no SRTP", &plain), ("SRTP", &srtp)] {
        assert_eq!(
            r.frames_sent, FRAMES as u64,
            "{payload}, {name}: frames sent"
        );
        assert_eq!(
            r.frames.len(),
            FRAMES,
            "{payload}, {name}: a detection line for every frame\n{}",
            r.server.stderr
        );
        assert_eq!(r.lines, FRAMES, "{payload}, {name}: one line per frame");
        assert!(
            r.server.status.success(),
            "{payload}, {name}: the server ended cleanly after Ctrl-C: {:?}\n{}",
            r.server.status,
            r.server.stderr
        );
    }
    assert_eq!(
        srtp.returned, FRAMES,
        "{payload}: every line came back to the edge over SRTP"
    );
    assert!(
        !srtp.server.stderr.contains("SRTP authentication failed"),
        "{payload}: no packet failed authentication\n{}",
        srtp.server.stderr
    );
    // The control: without SRTP the in-band caps are readable on the wire ...
    assert!(
        plain.datagrams_holding(CAPS_MARKER) > 0,
        "{payload}: the plain run's in-band caps should show {:?} on the wire",
        String::from_utf8_lossy(CAPS_MARKER)
    );
    // ... with SRTP they are not, and every packet has the scripts' SSRC in its clear header.
    assert_eq!(
        srtp.datagrams_holding(CAPS_MARKER),
        0,
        "{payload}: plain text on the SRTP wire"
    );
    assert!(
        srtp.wire.iter().all(|d| rtp_ssrc(d) == Some(SSRC)),
        "{payload}: every SRTP packet carries SSRC {SSRC}"
    );
    // Authenticated packets are longer: at least the 10-byte tag on each.
    assert!(
        srtp.wire_bytes() > plain.wire_bytes(),
        "{payload}: SRTP adds its tag"
    );
}

/// `PAYLOAD=gst` (rtpgstpay/rtpgstdepay) with `SRTP_KEY` at both ends: every frame gets a
/// detection line, the lines come back to the edge, and no plain text crosses the wire.
#[test]
fn srtp_same_key_rtpgstpay_every_frame_and_no_plaintext_on_the_wire() {
    same_key_at_both_ends("gst");
}

/// The same with the fmap payload format (`PAYLOAD=fmap`, rtpfmappay/rtpfmapdepay).
#[test]
fn srtp_same_key_rtpfmappay_every_frame_and_no_plaintext_on_the_wire() {
    same_key_at_both_ends("fmap");
}

/// A server given another key than the edge's: srtpdec drops every packet (authentication
/// fails), so not a single detection line is written; the server says why on stderr, stops by
/// itself with a non-zero status, and the edge ends normally.
#[test]
fn srtp_wrong_key_gives_no_detection_and_a_clear_error() {
    require_everything();
    let r = run(
        "srtp-wrong-key",
        "gst",
        FRAMES,
        Some(&key(0x5a)),
        Some(&key(0xa5)),
        false,
        &Link::default(),
        End::ByItself,
    );
    r.report("gst, SRTP, wrong key at the server");
    let errors: Vec<&str> = r
        .server
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect();
    eprintln!(
        "the server's error: {errors:?}; the edge ran {:.1} s, the server ended by itself {}",
        r.edge_seconds,
        r.server_ended_during_edge
            .map_or("after the edge".to_string(), |t| format!(
                "{t:.1} s after the edge started"
            ))
    );
    assert_eq!(r.frames_sent, FRAMES as u64, "the edge sent every frame");
    assert!(!r.wire.is_empty(), "packets reached the server's port");
    assert_eq!(r.lines, 0, "not a single detection line with a wrong key");
    assert!(
        !r.server.status.success(),
        "the server exits with an error status: {:?}",
        r.server.status
    );
    assert!(
        reports_wrong_srtp_key(&r.server.stderr),
        "a clear error on the server's stderr:\n{}",
        r.server.stderr
    );
}

/// SRTP with RTCP feedback: `RTCP=1 RTX=1` (NACK retransmission, PLI key requests) at 5% packet
/// loss, with `SRTP_KEY` at both ends. The server's RTCP leaves encrypted from an SSRC its
/// rtpbin picks at random, and the edge authenticates it through `rtpssrccaps` (which puts that
/// SSRC into srtpdec's caps). The wire shows the NACKs got through: packets dropped on the way
/// were sent again (their sequence numbers reach the server late), and at least 99% of the
/// stream's packets reached the server in the end (the sequence numbers are in the clear), where
/// 5% loss without feedback leaves 95%. At least 99% of the frames decode without concealment
/// (issue 11's "loss + RTX" row), and no plain text crosses the wire. Concealment depends on
/// the server's RTCP leaving early enough: with rtpsession's own RTCP bandwidth (5% of an
/// assumed 64 kbit/s until it has measured the stream) NACKs waited up to 0.5 s in the first
/// seconds, and 9 of 14 runs concealed 9–78 of 200 frames; `RTCP_BANDWIDTH` (common.sh) fixed it.
#[test]
fn srtp_with_rtcp_retransmission_recovers_lost_packets() {
    require_everything();
    const LOSSY_FRAMES: usize = 300;
    let k = key(0x3c);
    let link = Link {
        both: vec![
            ("RTCP", "1".to_string()),
            ("RTX", "1".to_string()),
            ("JITTER_MS", "500".to_string()),
            ("RTCP_PORT", free_udp_port().to_string()),
            ("RTCP_BACK_PORT", free_udp_port().to_string()),
        ],
        edge: vec![("LOSS", "0.05".to_string())],
    };
    let r = run(
        "srtp-rtcp-rtx-loss-0.05",
        "fmap",
        LOSSY_FRAMES,
        Some(&k),
        Some(&k),
        false,
        &link,
        End::Interrupted,
    );
    r.report("fmap, SRTP, RTCP, RTX, 5% loss");
    // Sequence numbers as they reached the server, unwrapped (each relative to the one before).
    let mut seqs: Vec<i64> = Vec::new();
    let mut previous: Option<u16> = None;
    for d in &r.wire {
        let Some(b) = d.get(2..4) else { continue };
        let seq = u16::from_be_bytes([b[0], b[1]]);
        let unwrapped = match (seqs.last(), previous) {
            (Some(&last), Some(p)) => last + i64::from(seq.wrapping_sub(p) as i16),
            _ => i64::from(seq),
        };
        seqs.push(unwrapped);
        previous = Some(seq);
    }
    let resent = seqs
        .iter()
        .scan(i64::MIN, |max, &s| {
            let late = s < *max;
            *max = (*max).max(s);
            Some(late)
        })
        .filter(|&late| late)
        .count();
    let distinct: BTreeSet<i64> = seqs.iter().copied().collect();
    let span = match (distinct.first(), distinct.last()) {
        (Some(a), Some(b)) => (b - a + 1) as usize,
        _ => 0,
    };
    eprintln!(
        "SRTP + RTCP + RTX at 5% loss: {} of {span} packets reached the server ({resent} of them \
         resent after a NACK), {} of {LOSSY_FRAMES} frames with a line, {} concealed",
        distinct.len(),
        r.frames.len(),
        r.concealed
    );
    assert_eq!(r.frames_sent, LOSSY_FRAMES as u64, "frames sent");
    assert!(
        resent > 0,
        "no packet was resent: the NACKs did not reach the edge"
    );
    assert!(
        distinct.len() * 100 >= 99 * span,
        "at least 99% of the packets reached the server: {} of {span}",
        distinct.len()
    );
    // A loss in the very last unit has no later packet to reveal it: that frame may be missing
    // or concealed, which the 1% allows.
    let exact = r.frames.len() - r.concealed.min(r.frames.len());
    assert!(
        exact * 100 >= 99 * LOSSY_FRAMES,
        "at least 99% of the frames decoded without concealment: {exact} of {LOSSY_FRAMES} \
         ({} with a line, {} concealed)\n{}",
        r.frames.len(),
        r.concealed,
        r.server.stderr
    );
    assert!(
        !r.server.stderr.contains("SRTP authentication failed"),
        "no packet failed authentication\n{}",
        r.server.stderr
    );
    assert_eq!(
        r.datagrams_holding(CAPS_MARKER),
        0,
        "plain text on the SRTP wire"
    );
    assert!(
        r.wire.iter().all(|d| rtp_ssrc(d) == Some(SSRC)),
        "every SRTP packet carries SSRC {SSRC}"
    );
}

/// A key that is not 60 hex digits is refused by both scripts before anything starts, with a
/// message naming the expected format.
#[test]
fn srtp_malformed_key_is_refused_by_both_scripts() {
    require_everything();
    for script in ["edge.sh", "server.sh"] {
        let not_hex = format!("{}zz", &key(1)[..58]);
        for bad in ["0123", not_hex.as_str()] {
            let out = Command::new("bash")
                .arg(workspace_root().join("pipelines").join(script))
                .env("GST_PLUGIN_PATH", plugin_path())
                .env("FMAP_ROOT", workspace_root())
                .env("SRTP_KEY", bad)
                .env("FRAMES", "1")
                .output()
                .expect("run the script");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{script} SRTP_KEY={bad}: {stderr}"
            );
            assert!(
                stderr.contains("60 hexadecimal digits") && !stderr.contains("gst-launch-1.0"),
                "{script} SRTP_KEY={bad}: {stderr}"
            );
        }
    }
}

/// One server for two cameras with SRTP (`PORTS="a b" SRTP_KEY=<k>`): camera i's edge sends
/// with SSRC + 2i (the server prints which), so one key never protects two streams with the same
/// SSRC. Camera 0 has the server's key and gets a line for every frame; camera 1 has another key:
/// its packets fail authentication (not "no key for this SSRC": SSRC + 2 is keyed), it gets no
/// line and an error that names it, while camera 0 is served on. The server reports the failed
/// camera with a non-zero status at the end.
#[test]
fn srtp_two_cameras_one_key_each_camera_its_own_ssrc_and_its_own_error() {
    require_everything();
    const CAMERA_FRAMES: usize = 30;
    let dir = scratch_dir("srtp-two-cameras");
    let out = dir.join("detections.jsonl");
    let ports = [free_udp_port(), free_udp_port()];
    let server_key = key(0x61);
    let keys = [server_key.clone(), key(0x16)];
    let common = [
        ("PAYLOAD", "fmap".to_string()),
        ("GST_LAUNCH_FLAGS", "-e -m".to_string()),
    ];
    let mut server_env = common.to_vec();
    server_env.push(("OUT", out.display().to_string()));
    server_env.push(("PORTS", format!("{} {}", ports[0], ports[1])));
    server_env.push(("SRTP_KEY", server_key));
    let mut server = Launch::script("server", "server.sh", &server_env, &dir, None);
    server
        .wait_for_stdout("Setting pipeline to PLAYING", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut edges: Vec<Launch> = (0..2)
        .map(|i| {
            let mut env = common.to_vec();
            env.push(("PORT", ports[i].to_string()));
            env.push(("SERVER_HOST", "127.0.0.1".to_string()));
            env.push(("FRAMES", CAMERA_FRAMES.to_string()));
            env.push(("SRTP_KEY", keys[i].clone()));
            env.push(("SSRC", (SSRC + 2 * i as u32).to_string()));
            Launch::script(&format!("edge{i}"), "edge.sh", &env, &dir, None)
        })
        .collect();
    for edge in &mut edges {
        let done = edge.wait(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        assert!(done.status.success(), "edge failed\n{}", edge.log_tail());
    }
    let files: Vec<PathBuf> = (0..2)
        .map(|i| dir.join(format!("detections.camera{i}.jsonl")))
        .collect();
    wait_for_lines(&files[0], CAMERA_FRAMES, Duration::from_secs(15), TIMEOUT);
    assert!(
        server.running(),
        "the server still serves camera 0 after camera 1 failed\n{}",
        server.log_tail()
    );
    server.interrupt();
    let done = server
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = [count_lines(&files[0]), count_lines(&files[1])];
    let errors: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("SSRC"))
        .collect();
    eprintln!("two SRTP cameras: lines {lines:?}; the server said {errors:?}");
    assert_eq!(lines[0], CAMERA_FRAMES, "camera 0: a line for every frame");
    assert_eq!(lines[1], 0, "camera 1 (wrong key): not a single line");
    assert!(
        done.stderr.contains(&format!(
            "camera 0: port {}, SRTP with SSRC {SSRC}",
            ports[0]
        )) && done.stderr.contains(&format!(
            "camera 1: port {}, SRTP with SSRC {}",
            ports[1],
            SSRC + 2
        )),
        "the server names each camera's SSRC\n{}",
        done.stderr
    );
    assert!(
        done.stderr.contains(&format!(
            "ERROR: camera 1 (port {}): SRTP authentication failed for",
            ports[1]
        )),
        "an error naming camera 1\n{}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("camera 0 (port"),
        "no complaint about camera 0\n{}",
        done.stderr
    );
    assert!(
        !done.status.success(),
        "the server ends with an error status: camera 1 failed ({:?})",
        done.status
    );
}
