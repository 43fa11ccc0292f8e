//! Small pieces every element of the plugin repeats: the usual pair of always-present pads, the
//! sink pad of an element that takes buffers and events itself, and posting the `stats`
//! counters as an element message at end of stream.

use gst::prelude::*;
use gst::subclass::prelude::*;

/// An always-present `sink` pad accepting `sink` and an always-present `src` pad producing `src`.
pub fn sink_and_src_templates(sink: &gst::Caps, src: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("sink", gst::PadDirection::Sink, sink),
        ("src", gst::PadDirection::Src, src),
    ]
    .into_iter()
    .map(|(name, direction, caps)| {
        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
            .expect("valid pad template")
    })
    .collect()
}

/// The sink pad, from `template`, of an element (implementation `T`) that takes buffers in
/// `chain` and events in `event` itself. A panic in either posts an error on the bus and fails
/// the call (a flow error, a refused event) instead of unwinding into GStreamer.
pub fn sink_pad<T: ElementImpl>(
    template: &gst::PadTemplate,
    chain: fn(&T, &gst::Pad, gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError>,
    event: fn(&T, &gst::Pad, gst::Event) -> bool,
) -> gst::Pad {
    gst::Pad::builder_from_template(template)
        .chain_function(move |pad, parent, buffer| {
            T::catch_panic_pad_function(
                parent,
                || Err(gst::FlowError::Error),
                |imp| chain(imp, pad, buffer),
            )
        })
        .event_function(move |pad, parent, e| {
            T::catch_panic_pad_function(parent, || false, |imp| event(imp, pad, e))
        })
        .build()
}

/// Posts `stats` (an element's counters) on the bus as an element message, as `gst-launch-1.0
/// -m` prints it.
pub fn post_stats(element: &impl IsA<gst::Element>, stats: gst::Structure) {
    let element = element.as_ref();
    let _ = element.post_message(gst::message::Element::builder(stats).src(element).build());
}
