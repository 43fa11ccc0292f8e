//! Small pieces every element of the plugin repeats: the usual pair of always-present pads, and
//! posting the `stats` counters as an element message at end of stream.

use gst::prelude::*;

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

/// Posts `stats` (an element's counters) on the bus as an element message, as `gst-launch-1.0
/// -m` prints it.
pub fn post_stats(element: &impl IsA<gst::Element>, stats: gst::Structure) {
    let element = element.as_ref();
    let _ = element.post_message(gst::message::Element::builder(stats).src(element).build());
}
