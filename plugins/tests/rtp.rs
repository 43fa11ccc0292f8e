//! Feature frames over real RTP/UDP on loopback: the `application/x-fmap(-coded)` caps survive
//! `rtpgstpay`/`rtpgstdepay` (they are sent in-band as text), coded units cross a real socket
//! fragmented into MTU-sized packets, and a lossy link (a relay that drops packets) leaves both
//! ends running with every frame that comes out either bit-exact or flagged as concealed.
//!
//! The same for the fmap payload format (`rtpfmappay`/`rtpfmapdepay`): bit-identical units,
//! loss counted per piece, caps in-band for a receiver started late, errors that name the fix,
//! and key-unit requests passed through both elements.

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
    let pipeline = start_sending(chain, frames, |_| {});
    wait_eos(&pipeline, Instant::now() + Duration::from_secs(30));
    pipeline
}

/// Starts `appsrc ! <chain>` and queues `frames` and EOS, without waiting for them to leave.
/// `setup` runs before the pipeline starts (to add probes).
fn start_sending(
    chain: &str,
    frames: &[FeatureFrame],
    setup: impl FnOnce(&gst::Pipeline),
) -> gst::Pipeline {
    let pipeline = gst::parse::launch(&format!("appsrc name=src format=time ! {chain}"))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline.by_name("src").unwrap();
    src.set_property("caps", raw_caps());
    setup(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    for f in frames {
        let ret = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&raw_buffer(f)]);
        assert_eq!(ret, gst::FlowReturn::Ok);
    }
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    pipeline
}

fn receiver_head(port: u16) -> String {
    format!(
        "udpsrc address=127.0.0.1 port={port} buffer-size=4194304 caps=\"{RTP_CAPS}\" \
         ! rtpjitterbuffer latency=200 ! rtpgstdepay"
    )
}

/// `udpsrc ! rtpjitterbuffer ! rtpfmapdepay name=depay` with the plain X-FMAP caps (no config:
/// the caps come in-band).
fn fmap_receiver_head(port: u16) -> String {
    format!(
        "udpsrc address=127.0.0.1 port={port} buffer-size=4194304 caps=\"{}\" \
         ! rtpjitterbuffer latency=200 ! rtpfmapdepay name=depay",
        fmap_rtp_caps()
    )
}

fn fmap_rtp_caps() -> String {
    let mut caps = gstfmap::common::caps::rtp_caps();
    caps.make_mut()
        .structure_mut(0)
        .unwrap()
        .set("payload", 96i32);
    caps.to_string()
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

/// A closed-loop encoder with key units every 5 frames.
fn closed_loop_5() -> CodecConfig {
    CodecConfig {
        structure: Structure::ClosedLoop,
        key_interval: 5,
        ..CodecConfig::default()
    }
}

/// Checks that every decoded frame in `got` is exactly what an encoder with `cfg` reconstructs
/// for it, or flagged as concealed, and that they leave in display order. Returns how many were
/// concealed.
fn assert_exact_or_concealed(
    got: &[gst::Buffer],
    input: &[FeatureFrame],
    cfg: &CodecConfig,
) -> usize {
    let reference = reference_units(cfg, input);
    let mut last = None;
    let mut concealed = 0;
    for b in got {
        let f = FeatureFrame::from_raw(&b.map_readable().unwrap()).unwrap();
        let r = reference.iter().find(|u| u.frame_index == f.index).unwrap();
        // Lost units are concealed (flagged); every other frame is exactly the encoder's
        // reconstruction.
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
    concealed
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

    assert!(!got.is_empty(), "frames between losses decode");
    let concealed = assert_exact_or_concealed(&got, &input, &closed_loop_5());
    assert!(concealed > 0, "dropping every 9th packet loses units");
    let dec = rx.pipeline.by_name("dec").unwrap();
    let stats = dec.property::<gst::Structure>("stats");
    eprintln!(
        "lossy relay: {dropped_packets} packets dropped; fmapdec {stats}; {} of {} frames out",
        got.len(),
        input.len()
    );
}

// ---- rtpfmappay / rtpfmapdepay: the fmap RTP payload format (codec-core/RTP-PAYLOAD.md) ----

fn stats(pipeline: &gst::Pipeline, element: &str) -> gst::Structure {
    pipeline
        .by_name(element)
        .unwrap()
        .property::<gst::Structure>("stats")
}

fn counter(s: &gst::Structure, field: &str) -> u64 {
    s.get::<u64>(field)
        .unwrap_or_else(|e| panic!("{field} in {s}: {e}"))
}

/// Buffers seen on a pad: (bytes, DELTA_UNIT).
type Recorded = Arc<Mutex<Vec<(Vec<u8>, bool)>>>;

/// Every buffer entering `element`'s sink pad.
fn record_input(pipeline: &gst::Pipeline, element: &str) -> Recorded {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let pad = pipeline
        .by_name(element)
        .unwrap()
        .static_pad("sink")
        .unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            let delta = b.flags().contains(gst::BufferFlags::DELTA_UNIT);
            s.lock()
                .unwrap()
                .push((b.map_readable().unwrap().to_vec(), delta));
        }
        gst::PadProbeReturn::Ok
    });
    seen
}

/// Counts upstream force-key-unit events leaving `element` through its sink pad.
fn count_key_requests(pipeline: &gst::Pipeline, element: &str) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    let pad = pipeline
        .by_name(element)
        .unwrap()
        .static_pad("sink")
        .unwrap();
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(e) = info.event()
            && gst_video::UpstreamForceKeyUnitEvent::parse(e).is_ok()
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    n
}

#[test]
fn rtpfmap_units_cross_udp_bit_identical_at_mtu_1400() {
    init();
    for props in [
        "mode=intra bits=8 entropy=none",
        "mode=closed-loop key-interval=5",
        "mode=bi",
        "",
    ] {
        let port = free_port();
        let rx = Receiver::start(&format!(
            "{} ! fakesink name=sink sync=false",
            fmap_receiver_head(port)
        ));
        let input: Vec<FeatureFrame> = (0..12).map(frame).collect();
        let mut sent = None;
        let tx = start_sending(
            &format!(
                "fmapenc {props} ! rtpfmappay name=pay mtu=1400 \
                 ! udpsink host=127.0.0.1 port={port} sync=false"
            ),
            &input,
            |p| sent = Some(record_input(p, "pay")),
        );
        wait_eos(&tx, Instant::now() + Duration::from_secs(30));
        let sent = sent.unwrap().lock().unwrap().clone();
        let got = rx.finish(sent.len(), Duration::from_secs(3), Duration::from_secs(30));
        let coded_caps = tx
            .by_name("pay")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .current_caps()
            .unwrap();
        let pay = stats(&tx, "pay");
        let _ = tx.set_state(gst::State::Null);
        assert_eq!(
            rx.sink_caps(),
            coded_caps,
            "{props}: caps from in-band config"
        );
        assert_eq!(got.len(), sent.len(), "{props}");
        for (i, (b, (unit, delta))) in got.iter().zip(&sent).enumerate() {
            assert_eq!(
                &*b.map_readable().unwrap(),
                unit.as_slice(),
                "{props}: unit {i} bit-identical"
            );
            assert_eq!(
                b.flags().contains(gst::BufferFlags::DELTA_UNIT),
                *delta,
                "{props}: unit {i} DELTA_UNIT"
            );
        }
        let depay = stats(&rx.pipeline, "depay");
        assert_eq!(counter(&depay, "complete"), sent.len() as u64, "{depay}");
        assert_eq!(counter(&depay, "packets-lost"), 0, "{depay}");
        assert_eq!(counter(&depay, "no-caps"), 0, "{depay}");
        let (units, packets) = (counter(&pay, "units"), counter(&pay, "packets"));
        let bytes = counter(&pay, "unit-bytes");
        let header = counter(&pay, "header-bytes") + 12 * packets;
        let config = counter(&pay, "config-bytes") + 12 * counter(&pay, "config-packets");
        eprintln!(
            "rtpfmap [{props}]: {units} units, {:.0} bytes/unit, {:.2} packets/unit, \
             {:.2} header bytes/packet (RTP 12 + payload header), headers {:.2}% of the units, \
             config {} packets {:.2}%",
            bytes as f64 / units as f64,
            packets as f64 / units as f64,
            header as f64 / packets as f64,
            100.0 * header as f64 / bytes as f64,
            counter(&pay, "config-packets"),
            100.0 * config as f64 / bytes as f64,
        );
    }
}

#[test]
fn rtpfmap_lossy_link_costs_slices_not_units() {
    init();
    let port = free_port();
    let relay = LossyRelay::start(port, 9);
    let rx = Receiver::start(&format!(
        "{} ! fmapdec name=dec ! fakesink name=sink sync=false",
        fmap_receiver_head(port)
    ));
    let key_requests_through_depay = count_key_requests(&rx.pipeline, "depay");
    let input: Vec<FeatureFrame> = (0..30).map(frame).collect();
    // Adaptive units with one slice per channel (10 slices), a few packets each.
    let tx = send(
        &format!(
            "fmapenc mode=adaptive key-interval=5 slice-channels=1 quality=0.02 \
             ! rtpfmappay mtu=1400 ! udpsink host=127.0.0.1 port={} sync=false",
            relay.port
        ),
        &input,
    );
    let got = rx.finish(input.len(), Duration::from_secs(3), Duration::from_secs(60));
    let _ = tx.set_state(gst::State::Null);
    let dropped = relay.dropped.load(Ordering::Relaxed);
    assert!(dropped > 0);

    let depay = stats(&rx.pipeline, "depay");
    let dec = stats(&rx.pipeline, "dec");
    eprintln!(
        "rtpfmap lossy relay: {dropped} packets dropped; rtpfmapdepay {depay}; fmapdec {dec}; \
         {} of {} frames out; {} key requests passed upstream",
        got.len(),
        input.len(),
        key_requests_through_depay.load(Ordering::Relaxed)
    );
    assert_eq!(counter(&depay, "packets-lost"), dropped, "{depay}");
    assert!(counter(&depay, "pieces-lost") > 0, "{depay}");
    // Most losses hit slices: the unit still goes out, without them.
    assert!(
        counter(&depay, "partial") > counter(&depay, "lost"),
        "{depay}"
    );
    assert_eq!(
        counter(&depay, "units"),
        counter(&depay, "complete") + counter(&depay, "partial")
    );
    let cfg = CodecConfig {
        structure: Structure::Adaptive,
        key_interval: 5,
        slice_channels: 1,
        quality: 0.02,
        ..CodecConfig::default()
    };
    let concealed = assert_exact_or_concealed(&got, &input, &cfg);
    assert!(concealed > 0, "lost slices are concealed");
    assert!(
        got.len() as u64 >= input.len() as u64 - counter(&depay, "lost"),
        "a frame comes out for every unit with its head"
    );
    // fmapdec's requests for a key unit go upstream through the depayloader (to rtpbin).
    assert_eq!(
        key_requests_through_depay.load(Ordering::Relaxed),
        counter(&dec, "key-requests")
    );
}

#[test]
fn rtpfmap_late_joiner_gets_caps_in_band_and_decodes() {
    init();
    let port = free_port();
    let input: Vec<FeatureFrame> = (0..40).map(frame).collect();
    // The plain edge: no payloader setting at all; sync=true paces it at 10 frames/s.
    let tx = start_sending(
        &format!(
            "fmapenc mode=closed-loop key-interval=5 ! rtpfmappay name=pay \
             ! udpsink host=127.0.0.1 port={port} sync=true"
        ),
        &input,
        |_| {},
    );
    // The receiver starts once the sender is well into the stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(&stats(&tx, "pay"), "units") < 8 {
        assert!(Instant::now() < deadline, "sender stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    let rx = Receiver::start(&format!(
        "{} ! fmapdec name=dec ! fakesink name=sink sync=false",
        fmap_receiver_head(port)
    ));
    wait_eos(&tx, Instant::now() + Duration::from_secs(60));
    let got = rx.finish(input.len(), Duration::from_secs(2), Duration::from_secs(30));
    let pay = stats(&tx, "pay");
    let _ = tx.set_state(gst::State::Null);
    let depay = stats(&rx.pipeline, "depay");
    eprintln!(
        "late joiner: rtpfmappay {pay}; rtpfmapdepay {depay}; {} of {} frames out",
        got.len(),
        input.len()
    );
    assert_eq!(rx.sink_caps(), raw_caps(), "caps reached fmapdec in-band");
    assert!(counter(&depay, "configs") >= 1 && counter(&depay, "caps-changes") == 1);
    assert!(!got.is_empty(), "the late receiver decodes");
    let first = FeatureFrame::from_raw(&got[0].map_readable().unwrap()).unwrap();
    assert!(
        first.index >= 8,
        "the receiver joined late (first frame {})",
        first.index
    );
    assert_exact_or_concealed(&got, &input, &closed_loop_5());
    // Every frame from the first key unit after joining on: at most the frames before the
    // next key (key-interval 5) are lost.
    assert!(got.len() as u64 >= input.len() as u64 - first.index);
}

/// Waits for an error on `pipeline`'s bus and returns its text (message and debug).
fn expect_error(pipeline: &gst::Pipeline, timeout: Duration) -> String {
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Error],
        )
        .expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    format!("{} ({:?})", e.error(), e.debug())
}

#[test]
fn rtpfmapdepay_names_the_fix_for_foreign_rtp_and_a_bad_config() {
    init();
    // An rtpgstpay stream sent to an X-FMAP receiver.
    let port = free_port();
    let rx = gst::parse::launch(&format!("{} ! fakesink", fmap_receiver_head(port)))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    rx.set_state(gst::State::Playing).unwrap();
    let input: Vec<FeatureFrame> = (0..20).map(frame).collect();
    let tx = send(
        &format!(
            "fmapenc mode=intra bits=8 entropy=none ! rtpgstpay config-interval=1 mtu=1400 \
             ! udpsink host=127.0.0.1 port={port} sync=false"
        ),
        &input,
    );
    let _ = tx.set_state(gst::State::Null);
    let err = expect_error(&rx, Duration::from_secs(10));
    let _ = rx.set_state(gst::State::Null);
    assert!(
        err.contains("rtpgstdepay") && err.contains("X-FMAP"),
        "{err}"
    );

    // RTP caps whose config field is not coded caps (here: the raw frames' caps).
    let port = free_port();
    let rx = gst::parse::launch(&format!(
        "udpsrc name=src address=127.0.0.1 port={port} ! rtpfmapdepay ! fakesink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let mut caps: gst::Caps = fmap_rtp_caps().parse().unwrap();
    let bad = gst::glib::base64_encode(raw_caps().to_string().as_bytes());
    caps.make_mut()
        .structure_mut(0)
        .unwrap()
        .set("config", bad.as_str());
    rx.by_name("src").unwrap().set_property("caps", caps);
    rx.set_state(gst::State::Playing).unwrap();
    let tx = send(
        &format!("fmapenc ! rtpfmappay ! udpsink host=127.0.0.1 port={port} sync=false"),
        &input[..3],
    );
    let _ = tx.set_state(gst::State::Null);
    let err = expect_error(&rx, Duration::from_secs(10));
    let _ = rx.set_state(gst::State::Null);
    assert!(
        err.contains("config") && err.contains("application/x-fmap-coded"),
        "{err}"
    );
}

#[test]
fn rtpfmappay_passes_key_unit_requests_to_fmapenc() {
    init();
    let input: Vec<FeatureFrame> = (0..8).map(frame).collect();
    let pipeline = gst::parse::launch(
        "appsrc name=src format=time ! fmapenc name=enc mode=closed-loop key-interval=100 \
         ! rtpfmappay name=pay ! fakesink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap();
    src.set_property("caps", raw_caps());
    pipeline.set_state(gst::State::Playing).unwrap();
    let push = |frames: &[FeatureFrame]| {
        for f in frames {
            let ret = src.emit_by_name::<gst::FlowReturn>("push-buffer", &[&raw_buffer(f)]);
            assert_eq!(ret, gst::FlowReturn::Ok);
        }
    };
    push(&input[..4]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(&stats(&pipeline, "pay"), "units") < 4 {
        assert!(Instant::now() < deadline, "stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    // What rtpbin sends upstream when an RTCP PLI arrives.
    let pli = gst_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    assert!(
        pipeline
            .by_name("pay")
            .unwrap()
            .static_pad("src")
            .unwrap()
            .send_event(pli)
    );
    push(&input[4..]);
    let _ = src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    wait_eos(&pipeline, Instant::now() + Duration::from_secs(30));
    let (pay, enc) = (stats(&pipeline, "pay"), stats(&pipeline, "enc"));
    let _ = pipeline.set_state(gst::State::Null);
    assert_eq!(counter(&pay, "key-requests"), 1, "{pay}");
    assert_eq!(counter(&enc, "key-requests"), 1, "{enc}");
    // The first unit and the requested one are keys, each with config before it.
    assert_eq!(counter(&pay, "key-units"), 2, "{pay}");
    assert!(counter(&pay, "config-packets") >= 2, "{pay}");
}

/// `rtpssrccaps` announces each new SSRC of the packets in the caps (the upstream caps plus
/// `ssrc`), before that SSRC's first packet and only once; the upstream segment follows those
/// caps; a packet too short to carry an SSRC is dropped, and packets of SSRCs beyond
/// `max-ssrcs` too, all counted in `stats`.
#[test]
fn rtpssrccaps_announces_each_new_ssrc_in_the_caps_once() {
    init();
    let mut h = gst_check::Harness::new("rtpssrccaps");
    h.element().unwrap().set_property("max-ssrcs", 2u32);
    h.set_src_caps_str("application/x-srtcp,srtp-key=(buffer)00");
    // RTCP receiver reports (V=2, PT 201, length 1) from SSRCs 1, 2, 1, 3, then 4 bytes.
    let rtcp = |ssrc: u32| {
        let mut p = vec![0x80, 201, 0, 1];
        p.extend_from_slice(&ssrc.to_be_bytes());
        gst::Buffer::from_mut_slice(p)
    };
    for ssrc in [1u32, 2, 1, 3] {
        h.push(rtcp(ssrc)).unwrap();
    }
    h.push(gst::Buffer::from_mut_slice(vec![0x80, 201, 0, 1]))
        .unwrap();
    assert_eq!(
        h.buffers_received(),
        3,
        "SSRC 3 (over max-ssrcs) and the short packet dropped"
    );
    let mut announced = Vec::new();
    let mut segment_after_caps = false;
    while let Some(event) = h.try_pull_event() {
        match event.view() {
            gst::EventView::Caps(c) => {
                let s = c.caps().structure(0).unwrap();
                assert_eq!(s.name(), "application/x-srtcp");
                assert!(s.has_field("srtp-key"), "the upstream fields stay: {s}");
                announced.push(s.get::<u32>("ssrc").unwrap());
            }
            gst::EventView::Segment(_) => segment_after_caps = !announced.is_empty(),
            _ => {}
        }
    }
    assert_eq!(announced, vec![1, 2], "each SSRC once, in order");
    assert!(segment_after_caps, "the segment follows the first caps");
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("packets").unwrap(), 5);
    assert_eq!(stats.get::<u64>("ssrcs").unwrap(), 2);
    assert_eq!(stats.get::<u64>("over-limit").unwrap(), 1);
    assert_eq!(stats.get::<u64>("invalid").unwrap(), 1);
}
