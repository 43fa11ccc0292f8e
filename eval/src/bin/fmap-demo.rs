//! `fmap-demo`: the main job. Runs the edge and the server as two processes talking RTP/UDP,
//! then renders the detections onto the video, and prints a summary.
//!
//! ```text
//! fmap-demo [--video FILE] [--model FILE] [--split NAME] [--frames N] [--out DIR]
//!           [--port PORT] [--path fmapenc|tiled|tiled-10bit] [--encoder "PROPS"] [--no-render]
//! ```
//!
//! Edge:   file → decode → splitinfer-front → fmapenc → rtpgstpay → udpsink (paced at the video's rate)
//! Server: udpsrc → rtpjitterbuffer → rtpgstdepay → fmapdec → splitinfer-back → detections.jsonl
//! Render: file → decode ─┐
//!         detections.jsonl ┴→ detectoverlay → x264 → annotated.mp4
//!
//! With `--path tiled` (`tiled-10bit`) the link is a standard video stream instead: fmaptile
//! (8-bit I420, or 10-bit I420_10LE mosaics) → x265enc → rtph265pay on the edge, rtph265depay →
//! avdec_h265 → fmapuntile on the server; `--encoder` then holds x265enc's properties.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fmap_eval::evaluate::decoder_props;
use fmap_eval::runner::{count_src_pad, limiter, parse_pipeline, run_to_end};
use fmap_infer::detection::parse_detections_line;
use gst::prelude::*;

const STATS_PREFIX: &str = "FMAP-STATS ";
/// fmapenc's own defaults (the adaptive mode).
const DEFAULT_ENCODER: &str = "";
/// x265enc's properties on the tiled path: pipelines/tile-edge.sh's defaults.
const DEFAULT_TILED_ENCODER: &str = "tune=zerolatency speed-preset=fast key-int-max=20 qp=22";
const RTP_CAPS: &str =
    "application/x-rtp,media=(string)application,clock-rate=(int)90000,encoding-name=(string)X-GST";
const RTP_H265_CAPS: &str =
    "application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)H265";

/// How the edge sends the cut to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkPath {
    /// fmapenc → rtpgstpay … rtpgstdepay → fmapdec.
    Fmapenc,
    /// fmaptile → x265enc → rtph265pay … rtph265depay → avdec_h265 → fmapuntile, with mosaics
    /// in this picture format.
    Tiled { format: &'static str },
}

/// The `--path` names.
const PATHS: [(&str, LinkPath); 3] = [
    ("fmapenc", LinkPath::Fmapenc),
    ("tiled", LinkPath::Tiled { format: "I420" }),
    (
        "tiled-10bit",
        LinkPath::Tiled {
            format: "I420_10LE",
        },
    ),
];

impl LinkPath {
    fn parse(name: &str) -> Option<LinkPath> {
        PATHS.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
    }

    fn name(&self) -> &'static str {
        PATHS
            .iter()
            .find(|(_, p)| p == self)
            .map(|&(n, _)| n)
            .expect("every path has a name")
    }

    /// The encoder properties used when `--encoder` is not given.
    fn default_encoder(&self) -> &'static str {
        match self {
            LinkPath::Fmapenc => DEFAULT_ENCODER,
            LinkPath::Tiled { .. } => DEFAULT_TILED_ENCODER,
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    role: Option<String>,
    video: PathBuf,
    model: PathBuf,
    split: String,
    frames: u64,
    out: PathBuf,
    port: u16,
    path: LinkPath,
    /// The encoder's properties; `None` = the path's defaults.
    encoder: Option<String>,
    render: bool,
}

impl Options {
    fn encoder(&self) -> &str {
        self.encoder
            .as_deref()
            .unwrap_or(self.path.default_encoder())
    }
}

fn workspace_root() -> PathBuf {
    std::env::var_os("FMAP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn usage() -> ! {
    eprintln!(
        "usage: fmap-demo [--video FILE] [--model FILE] [--split NAME] [--frames N] [--out DIR]\n\
         \x20                [--port PORT] [--path {paths}]\n\
         \x20                [--encoder \"fmapenc properties, or x265enc's on a tiled path\"] [--no-render]\n\
         defaults: --video $FMAP_FOOTAGE/vtest.avi --model models/nanodet.onnx --split stage2\n\
         \x20         --frames 0 (all) --out out --port 5600 --path fmapenc --encoder \"{DEFAULT_ENCODER}\"\n\
         \x20         (fmapenc's defaults; \"{DEFAULT_TILED_ENCODER}\" on a tiled path)\n\
         --path tiled sends the features as 8-bit mosaic pictures (fmaptile) in H.265 over RTP,\n\
         tiled-10bit as 10-bit ones (I420_10LE, H.265 Main 10)",
        paths = PATHS.map(|(n, _)| n).join("|")
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let root = workspace_root();
    let footage = std::env::var_os("FMAP_FOOTAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/footage"));
    let mut o = Options {
        role: None,
        video: footage.join("vtest.avi"),
        model: root.join("models/nanodet.onnx"),
        split: "stage2".into(),
        frames: 0,
        out: PathBuf::from("out"),
        port: 5600,
        path: LinkPath::Fmapenc,
        encoder: None,
        render: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--role" => o.role = Some(value()),
            "--video" => o.video = value().into(),
            "--model" => o.model = value().into(),
            "--split" => o.split = value(),
            "--frames" => o.frames = value().parse().unwrap_or_else(|_| usage()),
            "--out" => o.out = value().into(),
            "--port" => o.port = value().parse().unwrap_or_else(|_| usage()),
            "--path" => {
                let v = value();
                o.path = LinkPath::parse(&v).unwrap_or_else(|| {
                    eprintln!("fmap-demo: unknown --path '{v}'");
                    usage()
                })
            }
            "--encoder" => o.encoder = Some(value()),
            "--no-render" => o.render = false,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("fmap-demo: unknown argument '{other}'");
                usage()
            }
        }
    }
    o
}

fn quoted(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// The edge pipeline: what a camera-side device runs. The element whose output is the coded
/// cut is named `enc`.
fn edge_pipeline(o: &Options) -> String {
    let link = match o.path {
        LinkPath::Fmapenc => format!(
            "fmapenc name=enc {} ! rtpgstpay name=pay config-interval=1 mtu=1400",
            o.encoder()
        ),
        LinkPath::Tiled { format } => format!(
            "fmaptile ! video/x-raw,format={format} ! x265enc name=enc {} ! \
             rtph265pay name=pay config-interval=-1 mtu=1400",
            o.encoder()
        ),
    };
    format!(
        "filesrc location={video} ! decodebin ! videoconvert ! video/x-raw,format=BGRx ! {limit}\
         splitinfer-front name=front model={model} split-at={split} ! {link} ! \
         udpsink host=127.0.0.1 port={port} sync=true",
        video = quoted(&o.video),
        limit = limiter(o.frames),
        model = quoted(&o.model),
        split = o.split,
        port = o.port,
    )
}

/// The server pipeline: receives feature frames and writes one JSON line of detections per frame.
/// The element whose output is the feature frames is named `dec`.
fn server_pipeline(o: &Options) -> String {
    let (caps, link) = match o.path {
        LinkPath::Fmapenc => (
            RTP_CAPS,
            format!(
                "rtpgstdepay ! fmapdec name=dec {}",
                decoder_props(o.encoder())
            ),
        ),
        LinkPath::Tiled { .. } => (
            RTP_H265_CAPS,
            format!(
                "rtph265depay ! h265parse ! avdec_h265 ! fmapuntile name=dec model={} split-at={}",
                quoted(&o.model),
                o.split
            ),
        ),
    };
    format!(
        "udpsrc name=src port={port} timeout=3000000000 caps=\"{caps}\" ! \
         queue max-size-buffers=0 max-size-time=0 max-size-bytes=268435456 ! \
         rtpjitterbuffer latency=300 ! {link} ! \
         splitinfer-back name=back model={model} ! filesink location={out}",
        port = o.port,
        model = quoted(&o.model),
        out = quoted(&o.out.join("detections.jsonl")),
    )
}

fn render_pipeline(o: &Options) -> String {
    format!(
        "filesrc location={video} ! decodebin ! videoconvert ! video/x-raw,format=BGRx ! {limit}\
         ov.video appsrc name=dets format=time caps=application/x-detections ! ov.detections \
         detectoverlay name=ov ! videoconvert ! x264enc speed-preset=veryfast ! mp4mux ! \
         filesink location={out}",
        video = quoted(&o.video),
        limit = limiter(o.frames),
        out = quoted(&o.out.join("annotated.mp4")),
    )
}

fn print_stats(stats: serde_json::Value) {
    println!("{STATS_PREFIX}{stats}");
}

fn run_edge(o: &Options) -> Result<(), String> {
    let pipeline = parse_pipeline(&edge_pipeline(o))?;
    let raw = count_src_pad(&pipeline, "front")?;
    let coded = count_src_pad(&pipeline, "enc")?;
    let rtp = count_src_pad(&pipeline, "pay")?;
    let front_src = pipeline
        .by_name("front")
        .and_then(|f| f.static_pad("src"))
        .ok_or("edge pipeline has no splitinfer-front")?;
    let start = Instant::now();
    let mut duration = None;
    let mut fps = None;
    let mut last = 0;
    run_to_end(
        &pipeline,
        Duration::from_secs(3600),
        || true,
        || {
            if duration.is_none() {
                duration = pipeline.query_duration::<gst::ClockTime>();
            }
            if fps.is_none() {
                fps = front_src.current_caps().and_then(|c| {
                    let f = c.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
                    (f.numer() > 0 && f.denom() > 0).then(|| f.numer() as f64 / f.denom() as f64)
                });
            }
            let n = coded.buffers();
            if n >= last + 50 {
                last = n;
                eprintln!(
                    "edge: {n} frames sent, {:.1} kbit/s so far",
                    coded.bytes() as f64 * 8.0 / n as f64 * fps.unwrap_or(10.0) / 1000.0
                );
            }
        },
    )?;
    print_stats(serde_json::json!({
        "frames": coded.buffers(),
        "raw_bytes": raw.bytes(),
        "coded_bytes": coded.bytes(),
        "rtp_bytes": rtp.bytes(),
        "rtp_packets": rtp.buffers(),
        "seconds": start.elapsed().as_secs_f64(),
        "source_duration_ns": duration.map(|d| d.nseconds()),
        "fps": fps,
    }));
    Ok(())
}

fn run_server(o: &Options) -> Result<(), String> {
    let pipeline = parse_pipeline(&server_pipeline(o))?;
    let received = count_src_pad(&pipeline, "src")?;
    let decoded = count_src_pad(&pipeline, "dec")?;
    let detected = count_src_pad(&pipeline, "back")?;
    let end = run_to_end(
        &pipeline,
        Duration::from_secs(3600),
        || received.buffers() > 0,
        || {},
    )?;
    let _ = end;
    print_stats(serde_json::json!({
        "packets": received.buffers(),
        "decoded_frames": decoded.buffers(),
        "detection_lines": detected.buffers(),
    }));
    Ok(())
}

/// Pushes every line of the JSON-lines file into the overlay with its PTS.
fn run_render(o: &Options) -> Result<(), String> {
    let pipeline = parse_pipeline(&render_pipeline(o))?;
    let appsrc = pipeline
        .by_name("dets")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("render pipeline has no appsrc")?;
    let text = std::fs::read_to_string(o.out.join("detections.jsonl"))
        .map_err(|e| format!("cannot read detections: {e}"))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed =
            parse_detections_line(line).map_err(|e| format!("bad detections line: {e}"))?;
        let mut buffer = gst::Buffer::from_mut_slice(line.as_bytes().to_vec());
        if let Some(pts) = parsed.pts_ns {
            buffer
                .get_mut()
                .expect("new buffer is writable")
                .set_pts(gst::ClockTime::from_nseconds(pts));
        }
        appsrc
            .push_buffer(buffer)
            .map_err(|e| format!("overlay refused detections: {e:?}"))?;
    }
    let _ = appsrc.end_of_stream();
    run_to_end(&pipeline, Duration::from_secs(3600), || true, || {})?;
    Ok(())
}

fn spawn_role(o: &Options, role: &str) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["--role", role])
        .arg("--video")
        .arg(&o.video)
        .arg("--model")
        .arg(&o.model)
        .args(["--split", &o.split])
        .args(["--frames", &o.frames.to_string()])
        .arg("--out")
        .arg(&o.out)
        .args(["--port", &o.port.to_string()])
        .args(["--path", o.path.name()])
        .args(["--encoder", o.encoder()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn().map_err(|e| format!("cannot start {role}: {e}"))
}

fn collect_stats(role: &str, child: Child) -> Result<serde_json::Value, String> {
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{role} process: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{role} process failed ({})", out.status));
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(STATS_PREFIX))
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| format!("{role} process printed no statistics"))
}

fn orchestrate(o: &Options) -> Result<(), String> {
    for (what, path) in [("video", &o.video), ("model", &o.model)] {
        if !path.is_file() {
            return Err(format!(
                "{what} {} not found (run scripts/setup.sh, or pass --{what})",
                path.display()
            ));
        }
    }
    std::fs::create_dir_all(&o.out)
        .map_err(|e| format!("cannot create {}: {e}", o.out.display()))?;
    println!("edge pipeline:\n  gst-launch-1.0 {}\n", edge_pipeline(o));
    println!(
        "server pipeline:\n  gst-launch-1.0 {}\n",
        server_pipeline(o)
    );
    let start = Instant::now();
    let server = spawn_role(o, "server")?;
    // Let the server bind its port and load its model before the first packet arrives.
    std::thread::sleep(Duration::from_secs(2));
    let edge = spawn_role(o, "edge")?;
    let edge_stats = collect_stats("edge", edge)?;
    let server_stats = collect_stats("server", server)?;
    let wall = start.elapsed().as_secs_f64();

    let text = std::fs::read_to_string(o.out.join("detections.jsonl")).unwrap_or_default();
    let (mut lines, mut detections) = (0u64, 0u64);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let parsed = parse_detections_line(line).map_err(|e| e.to_string())?;
        detections += parsed.detections.len() as u64;
    }
    if o.render {
        eprintln!("rendering detections onto the video ...");
        run_render(o)?;
    }

    let frames = edge_stats["frames"].as_u64().unwrap_or(0);
    let coded = edge_stats["coded_bytes"].as_u64().unwrap_or(0);
    let raw = edge_stats["raw_bytes"].as_u64().unwrap_or(0);
    let rtp = edge_stats["rtp_bytes"].as_u64().unwrap_or(0);
    let edge_secs = edge_stats["seconds"].as_f64().unwrap_or(0.0);
    let source_bytes = std::fs::metadata(&o.video).map(|m| m.len()).unwrap_or(0);
    let source_secs = edge_stats["source_duration_ns"].as_f64().map(|ns| ns / 1e9);
    let fps = edge_stats["fps"]
        .as_f64()
        .ok_or("the edge did not report the video's frame rate")?;
    let kbps = |bytes: u64| bytes as f64 * 8.0 / (frames.max(1) as f64 / fps) / 1000.0;
    let source_kbps = source_secs.map(|s| source_bytes as f64 * 8.0 / s / 1000.0);
    println!();
    println!("fmap demo summary");
    println!("  video                  {}", o.video.display());
    println!(
        "  model / split          {} / {}",
        o.model.display(),
        o.split
    );
    match o.path {
        LinkPath::Fmapenc => println!(
            "  fmapenc                {}",
            if o.encoder().is_empty() {
                "(defaults: the adaptive mode)"
            } else {
                o.encoder()
            }
        ),
        LinkPath::Tiled { format } => println!(
            "  link                   {} path: fmaptile ({format}) ! x265enc {}",
            o.path.name(),
            o.encoder()
        ),
    }
    println!("  frames sent            {frames}");
    println!(
        "  frames decoded         {} (server), {lines} detection lines",
        server_stats["decoded_frames"]
    );
    println!(
        "  detections             {detections} ({:.2} per frame)",
        detections as f64 / lines.max(1) as f64
    );
    println!(
        "  bytes sent             {coded} coded ({:.0} per frame); {rtp} as RTP payload+headers in {} packets",
        coded as f64 / frames.max(1) as f64,
        edge_stats["rtp_packets"]
    );
    println!(
        "  rate                   {:.1} kbit/s at {fps:.1} fps ({:.1} kbit/s with RTP headers)",
        kbps(coded),
        kbps(rtp)
    );
    println!(
        "  vs raw float32 cut     {raw} bytes: {:.1}x smaller",
        raw as f64 / coded.max(1) as f64
    );
    if let Some(s) = source_kbps {
        println!(
            "  vs source video        {s:.1} kbit/s ({source_bytes} bytes): {:.2}x smaller",
            s / kbps(coded).max(1e-9)
        );
    }
    println!(
        "  speed                  {:.1} frames/s end to end (edge ran {edge_secs:.1} s, wall {wall:.1} s; paced at the video's rate)",
        frames as f64 / edge_secs.max(1e-9)
    );
    println!(
        "  detections (JSON)      {}",
        o.out.join("detections.jsonl").display()
    );
    if o.render {
        println!(
            "  annotated video        {}",
            o.out.join("annotated.mp4").display()
        );
    }
    if lines < frames {
        return Err(format!(
            "only {lines} of {frames} frames produced detections"
        ));
    }
    Ok(())
}

fn main() {
    let o = parse_args();
    if let Err(e) = gst::init() {
        eprintln!("fmap-demo: cannot initialize GStreamer: {e}");
        std::process::exit(1);
    }
    let result = match o.role.as_deref() {
        None => orchestrate(&o),
        Some("edge") => run_edge(&o),
        Some("server") => run_server(&o),
        Some(other) => Err(format!("unknown role '{other}'")),
    };
    if let Err(e) = result {
        eprintln!("fmap-demo: {e}");
        std::process::exit(1);
    }
}
