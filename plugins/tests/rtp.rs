//! Feature frames over real RTP/UDP on loopback: the `application/x-fmap(-coded)` caps survive
//! `rtpgstpay`/`rtpgstdepay` (they are sent in-band as text), coded units cross a real socket
//! fragmented into MTU-sized packets, and a lossy link (a relay that drops packets) leaves both
//! ends running with every frame that comes out either bit-exact or flagged as concealed.

mod fmap_synthetic;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codec_core::FeatureFrame;
use codec_core::codec::{CodecConfig, Structure};
use codec_core::entropy::EntropyMode;
use fmap_synthetic::{FRAME_NS, frame, raw_buffer, raw_caps, reference_units};
use gst::prelude::*;

const RTP_CAPS: &str =
    "application/x-rtp,media=application,clock-rate=90000,encoding-name=X-GST,payload=96";

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstfmap::plugin_register_static().expect("register the fmap plugin");
    });
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A receiving pipeline whose `fakesink name=sink` hands every buffer to `buffers`.
struct Receiver {
    pipeline: gst::Pipeline,
    buffers: Arc<Mutex<Vec<gst::Buffer>>>,
}

impl Receiver {
    fn start(description: &str) -> Receiver {
        let pipeline = gst::parse::launch(description)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let buffers = Arc::new(Mutex::new(Vec::new()));
        let sink = pipeline.by_name("sink").unwrap();
        sink.set_property("signal-handoffs", true);
        let b = buffers.clone();
        sink.connect("handoff", false, move |args| {
            let buffer = args[1].get::<gst::Buffer>().unwrap();
            b.lock().unwrap().push(buffer);
            None
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        Receiver { pipeline, buffers }
    }

    fn count(&self) -> usize {
        self.buffers.lock().unwrap().len()
    }

    /// Waits for `want` buffers or until none arrived for `idle`, then sends EOS (a UDP source
    /// never ends by itself) and waits for it to reach the sink. Fails the test past `timeout`.
    fn finish(&self, want: usize, idle: Duration, timeout: Duration) -> Vec<gst::Buffer> {
        let deadline = Instant::now() + timeout;
        let mut last = (self.count(), Instant::now());
        while self.count() < want && last.1.elapsed() < idle {
            assert!(Instant::now() < deadline, "receiver stalled");
            std::thread::sleep(Duration::from_millis(20));
            if self.count() != last.0 {
                last = (self.count(), Instant::now());
            }
        }
        assert!(self.pipeline.send_event(gst::event::Eos::new()));
        wait_eos(&self.pipeline, deadline);
        self.buffers.lock().unwrap().clone()
    }

    fn sink_caps(&self) -> gst::Caps {
        let sink = self.pipeline.by_name("sink").unwrap();
        sink.static_pad("sink")
            .unwrap()
            .current_caps()
            .expect("caps reached the sink")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn wait_eos(pipeline: &gst::Pipeline, deadline: Instant) {
    let bus = pipeline.bus().unwrap();
    let left = deadline.saturating_duration_since(Instant::now());
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("no EOS before the deadline");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("pipeline error: {} ({:?})", e.error(), e.debug());
    }
}

/// Pushes `frames` through `appsrc ! <chain>` to EOS.
fn send(chain: &str, frames: &[FeatureFrame]) -> gst::Pipeline {
    let pipeline = gst::parse::launch(&format!("appsrc name=src format=time ! {chain}"))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline.by_name("src").unwrap();
    src.set_property("caps", raw_caps());
    pipeline.set_state(gst::State::Playing).unwrap();
    for f in frames {
        let ret = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&raw_buffer(f)]);
        assert_eq!(ret, gst::FlowReturn::Ok);
    }
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    wait_eos(&pipeline, Instant::now() + Duration::from_secs(30));
    pipeline
}

fn receiver_head(port: u16) -> String {
    format!(
        "udpsrc address=127.0.0.1 port={port} buffer-size=4194304 caps=\"{RTP_CAPS}\" \
         ! rtpjitterbuffer latency=200 ! rtpgstdepay"
    )
}

#[test]
fn raw_frames_and_their_caps_cross_udp_unchanged() {
    init();
    let port = free_port();
    let rx = Receiver::start(&format!(
        "{} ! fakesink name=sink sync=false",
        receiver_head(port)
    ));
    let input: Vec<FeatureFrame> = (0..8).map(frame).collect();
    let tx = send(
        &format!(
            "rtpgstpay config-interval=1 mtu=1400 ! udpsink host=127.0.0.1 port={port} sync=false"
        ),
        &input,
    );
    let got = rx.finish(input.len(), Duration::from_secs(3), Duration::from_secs(30));
    let _ = tx.set_state(gst::State::Null);
    assert_eq!(rx.sink_caps(), raw_caps(), "caps fields survive RTP");
    assert_eq!(got.len(), input.len());
    for (b, f) in got.iter().zip(&input) {
        // 18 KiB frames are fragmented into 14 packets and reassembled exactly.
        assert_eq!(
            FeatureFrame::from_raw(&b.map_readable().unwrap()).unwrap(),
            *f
        );
    }
}

#[test]
fn coded_units_cross_udp_and_decode_bit_exact_in_display_order() {
    init();
    let cases = [
        (
            "mode=bi bits=6 entropy=zvc-huffman",
            CodecConfig {
                structure: Structure::Bi,
                bits: 6,
                entropy: EntropyMode::ZvcHuffman,
                ..CodecConfig::default()
            },
        ),
        (
            "mode=closed-loop key-interval=5",
            CodecConfig {
                structure: Structure::ClosedLoop,
                key_interval: 5,
                ..CodecConfig::default()
            },
        ),
    ];
    for (props, cfg) in cases {
        let port = free_port();
        let rx = Receiver::start(&format!(
            "{} ! fmapdec name=dec ! fakesink name=sink sync=false",
            receiver_head(port)
        ));
        let input: Vec<FeatureFrame> = (0..11).map(frame).collect();
        let tx = send(
            &format!(
                "fmapenc {props} ! rtpgstpay config-interval=1 mtu=1400 \
                 ! udpsink host=127.0.0.1 port={port} sync=false"
            ),
            &input,
        );
        let got = rx.finish(input.len(), Duration::from_secs(3), Duration::from_secs(30));
        let _ = tx.set_state(gst::State::Null);
        assert_eq!(
            rx.sink_caps(),
            raw_caps(),
            "{props}: raw caps restored after RTP"
        );
        let mut expected: Vec<FeatureFrame> = reference_units(&cfg, &input)
            .into_iter()
            .map(|u| u.reconstruction.unwrap())
            .collect();
        expected.sort_by_key(|f| f.index);
        assert_eq!(got.len(), expected.len(), "{props}");
        for (b, e) in got.iter().zip(&expected) {
            let f = FeatureFrame::from_raw(&b.map_readable().unwrap()).unwrap();
            assert_eq!(f, *e, "{props}: frame {}", e.index);
            assert_eq!(
                b.pts(),
                Some(gst::ClockTime::from_nseconds(e.index * FRAME_NS))
            );
        }
    }
}

/// A UDP relay that forwards datagrams and drops every `nth` one, deterministically.
struct LossyRelay {
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl LossyRelay {
    fn start(to_port: u16, nth: u64) -> LossyRelay {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (s, f, d) = (stop.clone(), forwarded.clone(), dropped.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut seen = 0u64;
            while !s.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                seen += 1;
                if seen.is_multiple_of(nth) {
                    d.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = sock.send_to(&buf[..n], ("127.0.0.1", to_port));
                    f.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        LossyRelay {
            stop,
            forwarded,
            dropped,
            thread: Some(thread),
            port,
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn lossy_link_keeps_both_ends_running_and_output_exact_or_concealed() {
    init();
    let port = free_port();
    let relay = LossyRelay::start(port, 9);
    let rx = Receiver::start(&format!(
        "{} ! fmapdec name=dec ! fakesink name=sink sync=false",
        receiver_head(port)
    ));
    let input: Vec<FeatureFrame> = (0..30).map(frame).collect();
    let tx = send(
        &format!(
            "fmapenc mode=closed-loop key-interval=5 ! rtpgstpay config-interval=1 mtu=1400 \
             ! udpsink host=127.0.0.1 port={} sync=false",
            relay.port
        ),
        &input,
    );
    let got = rx.finish(input.len(), Duration::from_secs(3), Duration::from_secs(60));
    let _ = tx.set_state(gst::State::Null);
    let dropped_packets = relay.dropped.load(Ordering::Relaxed);
    assert!(dropped_packets > 0 && relay.forwarded.load(Ordering::Relaxed) > 0);

    let cfg = CodecConfig {
        structure: Structure::ClosedLoop,
        key_interval: 5,
        ..CodecConfig::default()
    };
    let reference = reference_units(&cfg, &input);
    assert!(!got.is_empty(), "frames between losses decode");
    let mut last = None;
    let mut concealed = 0;
    for b in &got {
        let f = FeatureFrame::from_raw(&b.map_readable().unwrap()).unwrap();
        let r = reference.iter().find(|u| u.frame_index == f.index).unwrap();
        // Lost units are concealed (the previous frame again, flagged); every other frame is
        // exactly the encoder's reconstruction.
        if b.flags().contains(gst::BufferFlags::CORRUPTED) {
            concealed += 1;
        } else {
            assert_eq!(
                Some(&f),
                r.reconstruction.as_ref(),
                "frame {} is exact despite the losses",
                f.index
            );
        }
        assert!(last.is_none_or(|l| f.index > l), "display order");
        last = Some(f.index);
    }
    assert!(concealed > 0, "dropping every 9th packet loses units");
    let dec = rx.pipeline.by_name("dec").unwrap();
    let stats = dec.property::<gst::Structure>("stats");
    eprintln!(
        "lossy relay: {dropped_packets} packets dropped; fmapdec {stats}; {} of {} frames out",
        got.len(),
        input.len()
    );
}
