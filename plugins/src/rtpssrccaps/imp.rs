use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::ssrc;
use crate::common::element;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtpssrccaps",
        gst::DebugColorFlags::empty(),
        Some("Puts each new SSRC of the packets into their caps"),
    )
});

/// Default of `max-ssrcs`: a receiver sees its sender's SSRC (and rtpbin's, for RTCP), so a
/// handful; the limit keeps packets with made-up SSRCs from growing srtpdec's streams.
const DEFAULT_MAX_SSRCS: u32 = 16;

/// Counters of the `stats` property and the `rtpssrccaps-stats` message at EOS.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    packets: u64,
    ssrcs: u64,
    /// Packets too short to carry an SSRC, or not version 2.
    invalid: u64,
    /// Packets of SSRCs beyond `max-ssrcs`.
    over_limit: u64,
}

impl Stats {
    fn to_structure(self) -> gst::Structure {
        gst::Structure::builder("rtpssrccaps-stats")
            .field("packets", self.packets)
            .field("ssrcs", self.ssrcs)
            .field("invalid", self.invalid)
            .field("over-limit", self.over_limit)
            .build()
    }
}

#[derive(Default)]
struct State {
    /// The upstream caps, and whether they are RTCP.
    caps: Option<(gst::Caps, bool)>,
    announced: HashSet<u32>,
    /// Sticky events from upstream after its caps (segment, tags) and before the first caps
    /// went downstream: they must follow those caps.
    held: Vec<gst::Event>,
    stats: Stats,
    limit_reported: bool,
}

pub struct RtpSsrcCaps {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    state: Mutex<State>,
    max_ssrcs: Mutex<u32>,
}

impl RtpSsrcCaps {
    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (announce, held) = {
            let mut state = self.state.lock().unwrap();
            let Some((caps, rtcp)) = state.caps.clone() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    [
                        "no caps before the first packet: give the source caps, e.g. udpsrc caps=\"application/x-srtcp,srtp-key=…\""
                    ]
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            state.stats.packets += 1;
            let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
            let Some(ssrc) = ssrc::packet_ssrc(&map, rtcp) else {
                state.stats.invalid += 1;
                gst::debug!(
                    CAT,
                    imp = self,
                    "dropping a packet of {} bytes without an SSRC",
                    map.len()
                );
                return Ok(gst::FlowSuccess::Ok);
            };
            if state.announced.contains(&ssrc) {
                (None, Vec::new())
            } else if state.announced.len() >= *self.max_ssrcs.lock().unwrap() as usize {
                state.stats.over_limit += 1;
                if !std::mem::replace(&mut state.limit_reported, true) {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "dropping packets of SSRC {ssrc:#010x}: max-ssrcs ({}) SSRCs announced already",
                        state.announced.len()
                    );
                }
                return Ok(gst::FlowSuccess::Ok);
            } else {
                state.announced.insert(ssrc);
                state.stats.ssrcs += 1;
                let mut caps = caps;
                caps.make_mut().set("ssrc", ssrc);
                gst::info!(CAT, imp = self, "new SSRC {ssrc:#010x}: {caps}");
                (Some(caps), std::mem::take(&mut state.held))
            }
        };
        if let Some(caps) = announce
            && !self.srcpad.push_event(gst::event::Caps::new(&caps))
        {
            gst::warning!(CAT, imp = self, "downstream refused the caps {caps}");
        }
        for event in held {
            self.srcpad.push_event(event);
        }
        self.srcpad.push(buffer)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let caps = c.caps_owned();
                let media_type = caps.structure(0).map(|s| s.name().to_string());
                let Some(rtcp) = media_type.as_deref().and_then(ssrc::is_rtcp) else {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ["caps {caps} are not (S)RTP or (S)RTCP"]
                    );
                    return false;
                };
                let mut state = self.state.lock().unwrap();
                // A new upstream format: every SSRC is announced again with it.
                state.announced.clear();
                state.caps = Some((caps, rtcp));
                // The caps go downstream with the first packet's SSRC.
                true
            }
            gst::EventView::Eos(_) => {
                let stats = self.state.lock().unwrap().stats;
                element::post_stats(&*self.obj(), stats.to_structure());
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            _ => {
                // Sticky events that must follow the caps (segment, tags) wait for them.
                if event.is_sticky() && event.type_() > gst::EventType::Caps {
                    let mut state = self.state.lock().unwrap();
                    if state.announced.is_empty() {
                        state.held.push(event);
                        return true;
                    }
                }
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtpSsrcCaps {
    const NAME: &'static str = "GstRtpSsrcCaps";
    type Type = super::RtpSsrcCaps;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = element::sink_pad(
            &klass.pad_template("sink").unwrap(),
            RtpSsrcCaps::chain,
            RtpSsrcCaps::sink_event,
        );
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap()).build();
        Self {
            sinkpad,
            srcpad,
            state: Mutex::new(State::default()),
            max_ssrcs: Mutex::new(DEFAULT_MAX_SSRCS),
        }
    }
}

impl ObjectImpl for RtpSsrcCaps {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("max-ssrcs")
                    .nick("Most SSRCs")
                    .blurb(
                        "SSRCs announced at most; packets of further SSRCs are dropped (and \
                         counted in stats as over-limit)",
                    )
                    .minimum(1)
                    .maximum(1024)
                    .default_value(DEFAULT_MAX_SSRCS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "packets, ssrcs (announced), invalid (packets too short to carry an \
                         SSRC, or not version 2: dropped), over-limit (packets of SSRCs beyond \
                         max-ssrcs: dropped)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "max-ssrcs" => {
                *self.max_ssrcs.lock().unwrap() = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "max-ssrcs" => self.max_ssrcs.lock().unwrap().to_value(),
            "stats" => self.state.lock().unwrap().stats.to_structure().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for RtpSsrcCaps {}

impl ElementImpl for RtpSsrcCaps {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SSRC into caps",
                "Filter/Network/RTP",
                "Announces each new SSRC of the (S)RTP or (S)RTCP packets passing through in \
                 the caps' ssrc field, so that srtpdec finds the key in the caps for a sender \
                 whose SSRC is not known in advance (e.g. rtpbin's RTCP)",
                "fmap developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = ssrc::MEDIA_TYPES
                .iter()
                .map(|(name, _)| gst::Structure::new_empty(*name))
                .collect::<gst::Caps>();
            element::sink_and_src_templates(&caps, &caps)
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
