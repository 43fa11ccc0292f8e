use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use codec_core::rtp;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_rtp::prelude::*;
use gst_rtp::subclass::prelude::*;

use crate::common::{caps, element};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtpfmappay",
        gst::DebugColorFlags::empty(),
        Some("RTP payloader of fmap coded units"),
    )
});

const DEFAULT_CONFIG_INTERVAL: u32 = 1;

/// Counters reported by the `stats` property and the `rtpfmappay-stats` message at EOS.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    units: u64,
    key_units: u64,
    unit_bytes: u64,
    packets: u64,
    /// Payload-format header bytes of the unit packets (RTP headers not included).
    header_bytes: u64,
    config_packets: u64,
    /// Bytes of the config packets' payloads.
    config_bytes: u64,
    key_requests: u64,
}

impl Stats {
    fn to_structure(self) -> gst::Structure {
        gst::Structure::builder("rtpfmappay-stats")
            .field("units", self.units)
            .field("key-units", self.key_units)
            .field("unit-bytes", self.unit_bytes)
            .field("packets", self.packets)
            .field("header-bytes", self.header_bytes)
            .field("config-packets", self.config_packets)
            .field("config-bytes", self.config_bytes)
            .field("key-requests", self.key_requests)
            .build()
    }
}

#[derive(Default)]
struct State {
    /// The input caps as text: what config packets carry.
    config: Option<String>,
    /// A config is owed before the next unit (first unit, caps change).
    config_pending: bool,
    last_config_pts: Option<gst::ClockTime>,
    last_config_at: Option<Instant>,
    stats: Stats,
}

impl State {
    /// Whether a config goes before this unit.
    fn config_due(&self, key: bool, pts: Option<gst::ClockTime>, interval: u32) -> bool {
        if self.config_pending || key {
            return true;
        }
        if interval == 0 {
            return false;
        }
        let interval = gst::ClockTime::from_seconds(interval.into());
        match (pts, self.last_config_pts) {
            (Some(now), Some(last)) => now.saturating_sub(last) >= interval,
            _ => self
                .last_config_at
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from(interval)),
        }
    }
}

#[derive(Default)]
pub struct RtpFmapPay {
    config_interval: Mutex<u32>,
    state: Mutex<State>,
}

impl RtpFmapPay {
    /// One RTP packet with `payload`, stamped like `input`.
    fn packet(
        &self,
        payload: &[u8],
        marker: bool,
        input: &gst::BufferRef,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let mut out = self
            .obj()
            .allocate_output_buffer(payload.len() as u32, 0, 0);
        {
            let out = out.get_mut().expect("new buffer is writable");
            out.set_pts(input.pts());
            out.set_dts(input.dts());
            let mut packet = gst_rtp::RTPBuffer::from_buffer_writable(out).map_err(|_| {
                gst::error!(CAT, imp = self, "cannot map an RTP output buffer");
                gst::FlowError::Error
            })?;
            packet
                .payload_mut()
                .map_err(|_| gst::FlowError::Error)?
                .copy_from_slice(payload);
            packet.set_marker(marker);
        }
        Ok(out)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtpFmapPay {
    const NAME: &'static str = "GstRtpFmapPay";
    type Type = super::RtpFmapPay;
    type ParentType = gst_rtp::RTPBasePayload;

    fn with_class(_klass: &Self::Class) -> Self {
        RtpFmapPay {
            config_interval: Mutex::new(DEFAULT_CONFIG_INTERVAL),
            state: Mutex::default(),
        }
    }
}

impl ObjectImpl for RtpFmapPay {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj()
            .set_options("application", true, rtp::ENCODING_NAME, rtp::CLOCK_RATE);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("config-interval")
                    .nick("Config interval")
                    .blurb(
                        "Longest time in seconds between two in-band config packets (the coded \
                         caps, for receivers that join late). Config is also sent before the \
                         first unit, after a caps change and with every key unit; 0 = only then",
                    )
                    .maximum(3600)
                    .default_value(DEFAULT_CONFIG_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "units, key-units, unit-bytes (coded bytes in), packets (unit packets \
                         out), header-bytes (payload headers of those packets, RTP headers \
                         excluded), config-packets, config-bytes, key-requests (force-key-unit \
                         events passed upstream). Replaces RTPBasePayload's stats; its seqnum and \
                         timestamp are properties of their own",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "config-interval" => {
                *self.config_interval.lock().unwrap() = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "config-interval" => self.config_interval.lock().unwrap().to_value(),
            "stats" => self.state.lock().unwrap().stats.to_structure().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for RtpFmapPay {}

impl ElementImpl for RtpFmapPay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTP fmap payloader",
                "Codec/Payloader/Network/RTP",
                "Payloads coded feature-map units (application/x-fmap-coded) as RTP (X-FMAP, \
                 codec-core/RTP-PAYLOAD.md): slices aggregated or fragmented to the MTU, marker \
                 on a unit's last packet, in-band config for late joiners",
                "fmap developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            element::sink_and_src_templates(
                &gst::Caps::new_empty_simple(caps::CODED_MEDIA_TYPE),
                &caps::rtp_caps_dynamic(),
            )
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            *self.state.lock().unwrap() = State::default();
        }
        self.parent_change_state(transition)
    }
}

impl RTPBasePayloadImpl for RtpFmapPay {
    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let config = caps.to_string();
        gst::info!(CAT, imp = self, "stream configuration {config}");
        {
            let mut state = self.state.lock().unwrap();
            if state.config.as_deref() != Some(config.as_str()) {
                state.config = Some(config);
                state.config_pending = true;
            }
        }
        let fields = gst::Structure::builder("fields")
            .field(rtp::CONFIG_PARAMETER, caps::rtp_config_value(caps))
            .build();
        self.obj()
            .set_outcaps(Some(&fields))
            .map_err(|_| gst::loggable_error!(CAT, "downstream refused the RTP caps"))
    }

    fn handle_buffer(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        let max_payload = gst_rtp::calc_payload_len(obj.mtu(), 0, 0) as usize;
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot map input"));
            gst::FlowError::Error
        })?;
        let payloads = rtp::packetize_unit(&map, key, max_payload).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Cannot packetize a coded unit: {}", e),
                [
                    "rtpfmappay carries the coded units of fmapenc (application/x-fmap-coded) \
                     in packets of at least {} bytes (mtu {}); put fmapenc before it, raise \
                     mtu, or use rtpgstpay for other data",
                    rtp::MIN_PAYLOAD_SIZE,
                    obj.mtu()
                ]
            );
            gst::FlowError::Error
        })?;

        let interval = *self.config_interval.lock().unwrap();
        let mut state = self.state.lock().unwrap();
        let mut list = gst::BufferList::new_sized(payloads.len() + 1);
        let list_mut = list.get_mut().expect("new list is writable");
        if state.config_due(key, buffer.pts(), interval)
            && let Some(config) = state.config.clone()
        {
            let packets = rtp::packetize_config(&config, max_payload).map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("Cannot packetize the stream configuration: {}", e)
                );
                gst::FlowError::Error
            })?;
            for p in &packets {
                list_mut.add(self.packet(p, false, &buffer)?);
                state.stats.config_packets += 1;
                state.stats.config_bytes += p.len() as u64;
            }
            gst::debug!(
                CAT,
                imp = self,
                "config in {} packets before unit {:?}",
                packets.len(),
                buffer.pts()
            );
            state.config_pending = false;
            state.last_config_pts = buffer.pts();
            state.last_config_at = Some(Instant::now());
        }
        let n = payloads.len();
        for (i, p) in payloads.iter().enumerate() {
            list_mut.add(self.packet(p, i + 1 == n, &buffer)?);
        }
        let sent: usize = payloads.iter().map(Vec::len).sum();
        let s = &mut state.stats;
        s.units += 1;
        s.key_units += u64::from(key);
        s.unit_bytes += map.len() as u64;
        s.packets += n as u64;
        s.header_bytes += (sent - map.len()) as u64;
        gst::trace!(
            CAT,
            imp = self,
            "unit {:?}: {} bytes in {n} packets",
            buffer.pts(),
            map.len()
        );
        drop(state);
        drop(map);
        obj.push_list(list)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            let stats = self.state.lock().unwrap().stats;
            gst::info!(CAT, imp = self, "end of stream: {:?}", stats);
            element::post_stats(&*self.obj(), stats.to_structure());
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if gst_video::UpstreamForceKeyUnitEvent::parse(&event).is_ok() {
            // A receiver lost sync (RTCP PLI/FIR through rtpbin): fmapenc upstream answers.
            gst::debug!(
                CAT,
                imp = self,
                "key unit requested downstream, passing upstream"
            );
            self.state.lock().unwrap().stats.key_requests += 1;
        }
        self.parent_src_event(event)
    }
}
