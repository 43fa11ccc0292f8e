use std::sync::{LazyLock, Mutex};

use codec_core::rtp::{self, Depacketized, Depacketizer, DepacketizerStats, RtpPacket};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_rtp::prelude::*;
use gst_rtp::subclass::prelude::*;

use crate::common::{caps, element};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtpfmapdepay",
        gst::DebugColorFlags::empty(),
        Some("RTP depayloader of fmap coded units"),
    )
});

/// Packets in a row, from the start, that are not of this payload format before the element
/// gives up with an error (the sender is not rtpfmappay).
const FOREIGN_PACKETS_LIMIT: u64 = 50;

/// Counters reported by the `stats` property and the `rtpfmapdepay-stats` message at EOS.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    packets: DepacketizerStats,
    units_out: u64,
    no_caps: u64,
    caps_changes: u64,
}

impl Stats {
    fn to_structure(self) -> gst::Structure {
        let p = self.packets;
        gst::Structure::builder("rtpfmapdepay-stats")
            .field("packets", p.packets)
            .field("packets-lost", p.packets_lost)
            .field("packets-late", p.packets_late)
            .field("packets-invalid", p.packets_invalid)
            .field("configs", p.configs)
            .field("units", self.units_out)
            .field("complete", p.units_complete)
            .field("partial", p.units_partial)
            .field("lost", p.units_lost)
            .field("pieces-lost", p.pieces_lost)
            .field("no-caps", self.no_caps)
            .field("caps-changes", self.caps_changes)
            .build()
    }
}

#[derive(Default)]
struct State {
    depacketizer: Depacketizer,
    /// The output caps, once known (from the RTP caps or in-band config).
    caps: Option<gst::Caps>,
    stats: Stats,
    /// The foreign-stream error was posted.
    foreign_reported: bool,
}

/// What to do after the lock is released.
enum Action {
    Caps(gst::Caps),
    Push(gst::Buffer),
}

#[derive(Default)]
pub struct RtpFmapDepay {
    state: Mutex<State>,
}

impl RtpFmapDepay {
    /// Turns depacketizer output into caps changes and buffers (counting what is dropped).
    fn actions(&self, state: &mut State, outputs: Vec<Depacketized>) -> Vec<Action> {
        let mut actions = Vec::new();
        for out in outputs {
            match out {
                Depacketized::Config(text) => match caps::coded_from_text(&text) {
                    Ok(c) if state.caps.as_ref() != Some(&c) => {
                        gst::info!(CAT, imp = self, "caps from in-band config: {c}");
                        state.stats.caps_changes += 1;
                        state.caps = Some(c.clone());
                        actions.push(Action::Caps(c));
                    }
                    Ok(_) => {}
                    Err(e) => gst::debug!(CAT, imp = self, "ignoring in-band config: {e}"),
                },
                Depacketized::Unit(unit) => {
                    if state.caps.is_none() {
                        state.stats.no_caps += 1;
                        gst::debug!(
                            CAT,
                            imp = self,
                            "no caps yet (no config received): dropping unit at RTP time {}",
                            unit.timestamp
                        );
                        continue;
                    }
                    if !unit.complete {
                        gst::debug!(
                            CAT,
                            imp = self,
                            "unit at RTP time {} with {} of {} pieces",
                            unit.timestamp,
                            unit.pieces_received,
                            unit.pieces
                        );
                    }
                    let mut buffer = gst::Buffer::from_mut_slice(unit.data);
                    {
                        let b = buffer.get_mut().expect("new buffer is writable");
                        b.set_pts(unit.pts_ns.map(gst::ClockTime::from_nseconds));
                        if !unit.key {
                            b.set_flags(gst::BufferFlags::DELTA_UNIT);
                        }
                    }
                    state.stats.units_out += 1;
                    actions.push(Action::Push(buffer));
                }
            }
        }
        state.stats.packets = state.depacketizer.stats();
        actions
    }

    fn run(&self, actions: Vec<Action>) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        for a in actions {
            match a {
                Action::Caps(c) => {
                    obj.src_pad().push_event(gst::event::Caps::new(&c));
                }
                Action::Push(b) => {
                    obj.push(b)?;
                }
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Posts the error for a stream that is not this payload format, once.
    fn check_foreign(&self, state: &mut State) {
        let s = state.depacketizer.stats();
        if !state.foreign_reported
            && s.packets >= FOREIGN_PACKETS_LIMIT
            && s.packets_invalid == s.packets
        {
            state.foreign_reported = true;
            gst::element_imp_error!(
                self,
                gst::StreamError::WrongType,
                ("The RTP packets are not fmap coded units (X-FMAP)"),
                [
                    "none of the first {} packets follows codec-core/RTP-PAYLOAD.md; \
                     rtpfmapdepay reads what rtpfmappay sends. A stream from rtpgstpay \
                     (encoding-name=X-GST) is read with rtpgstdepay",
                    s.packets
                ]
            );
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtpFmapDepay {
    const NAME: &'static str = "GstRtpFmapDepay";
    type Type = super::RtpFmapDepay;
    type ParentType = gst_rtp::RTPBaseDepayload;
}

impl ObjectImpl for RtpFmapDepay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "packets (received), packets-lost (sequence gaps), packets-late, \
                         packets-invalid (not this payload format), configs (in-band configs \
                         received), units (output), complete, partial (assembled with slices \
                         missing), lost (packets arrived but no head), pieces-lost, no-caps \
                         (units dropped before any configuration), caps-changes. Replaces \
                         RTPBaseDepayload's stats",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => self.state.lock().unwrap().stats.to_structure().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for RtpFmapDepay {}

impl ElementImpl for RtpFmapDepay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTP fmap depayloader",
                "Codec/Depayloader/Network/RTP",
                "Rebuilds coded feature-map units (application/x-fmap-coded) from RTP (X-FMAP, \
                 codec-core/RTP-PAYLOAD.md): a lost packet costs its slices, not the unit; caps \
                 from the RTP caps' config field or in-band config",
                "fmap developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            element::sink_and_src_templates(
                &caps::rtp_caps(),
                &gst::Caps::new_empty_simple(caps::CODED_MEDIA_TYPE),
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

impl RTPBaseDepayloadImpl for RtpFmapDepay {
    fn set_caps(&self, rtp_caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let Some(s) = rtp_caps.structure(0) else {
            return Err(gst::loggable_error!(CAT, "empty RTP caps"));
        };
        // SDP users: `a=fmtp:<pt> config=<base64>` becomes this caps field.
        let Ok(value) = s.get::<&str>(rtp::CONFIG_PARAMETER) else {
            gst::info!(
                CAT,
                imp = self,
                "no config in the RTP caps: waiting for in-band config"
            );
            return Ok(());
        };
        let coded = caps::coded_from_rtp_config(value).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                (
                    "The '{}' field of the RTP caps is not a stream configuration",
                    rtp::CONFIG_PARAMETER
                ),
                [
                    "{e}. It must be the base64 of the application/x-fmap-coded caps, as \
                     rtpfmappay puts in its output caps (SDP: a=fmtp:<pt> config=...); or \
                     leave it out and the in-band config is used"
                ]
            );
            gst::loggable_error!(CAT, "bad config field: {e}")
        })?;
        gst::info!(CAT, imp = self, "caps from the RTP caps: {coded}");
        {
            let mut state = self.state.lock().unwrap();
            if state.caps.as_ref() == Some(&coded) {
                return Ok(());
            }
            state.caps = Some(coded.clone());
            state.stats.caps_changes += 1;
        }
        if self
            .obj()
            .src_pad()
            .push_event(gst::event::Caps::new(&coded))
        {
            Ok(())
        } else {
            Err(gst::loggable_error!(CAT, "downstream refused {coded}"))
        }
    }

    fn process_rtp_packet(
        &self,
        packet: &gst_rtp::RTPBuffer<gst_rtp::rtp_buffer::Readable>,
    ) -> Option<gst::Buffer> {
        let Ok(payload) = packet.payload() else {
            return None;
        };
        let actions = {
            let mut state = self.state.lock().unwrap();
            let outputs = state.depacketizer.push(RtpPacket {
                seq: packet.seq(),
                timestamp: packet.timestamp(),
                marker: packet.is_marker(),
                pts_ns: packet.buffer().pts().map(gst::ClockTime::nseconds),
                payload,
            });
            self.check_foreign(&mut state);
            self.actions(&mut state, outputs)
        };
        // A flow error is remembered by the base class through push().
        let _ = self.run(actions);
        None
    }

    fn handle_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                let (actions, stats) = {
                    let mut state = self.state.lock().unwrap();
                    let outputs = state.depacketizer.flush();
                    let actions = self.actions(&mut state, outputs);
                    (actions, state.stats)
                };
                let _ = self.run(actions);
                gst::info!(CAT, imp = self, "end of stream: {:?}", stats);
                element::post_stats(&*self.obj(), stats.to_structure());
            }
            gst::EventView::FlushStop(_) => {
                self.state.lock().unwrap().depacketizer.reset();
            }
            _ => {}
        }
        self.parent_handle_event(event)
    }
}
