//! What `fmaptile` and `fmapuntile` share on the GStreamer side: the raw video formats a mosaic
//! travels in, writing and reading its luma plane, and holding back the events that must follow
//! caps both elements only know at their first buffer.

use codec_core::tile::{CHROMA_NEUTRAL, HeaderPlace, Mosaic, Plane};
use gst_video::VideoFormat;
use gst_video::prelude::*;

/// Mosaic picture formats, in order of preference: I420 (every H.264/H.265 encoder takes it;
/// V is flat mid-grey, U too apart from the header) and GRAY8 (PNG, JPEG, encoders with a
/// monochrome mode; the header is a luma band).
pub const FORMATS: [VideoFormat; 2] = [VideoFormat::I420, VideoFormat::Gray8];

/// Where a picture of `format` carries the mosaic header.
pub fn header_place(format: VideoFormat) -> HeaderPlace {
    match format {
        VideoFormat::Gray8 => HeaderPlace::Luma,
        _ => HeaderPlace::Chroma,
    }
}

/// Template caps: the mosaic formats at any size.
pub fn template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS)
        .build()
}

/// A picture of `info`'s format holding `mosaic`: its luma, its U plane when it has one, the
/// other chroma mid-grey.
pub fn write_picture(mosaic: &Mosaic, info: &gst_video::VideoInfo) -> Result<gst::Buffer, String> {
    let buffer = gst::Buffer::with_size(info.size()).map_err(|e| e.to_string())?;
    let mut frame = gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| "cannot map a new picture".to_string())?;
    for plane in 0..frame.n_planes() {
        let stride = frame.plane_stride()[plane as usize] as usize;
        let (src, width) = match plane {
            0 => (Some(&mosaic.luma), mosaic.layout.width),
            1 => (mosaic.chroma_u.as_ref(), mosaic.layout.width / 2),
            _ => (None, 0),
        };
        let data = frame.plane_data_mut(plane).map_err(|e| e.to_string())?;
        match src {
            Some(src) => {
                for (row, src) in data.chunks_mut(stride).zip(src.chunks_exact(width)) {
                    row[..width].copy_from_slice(src);
                }
            }
            None => data.fill(CHROMA_NEUTRAL),
        }
    }
    Ok(frame.into_buffer())
}

/// Runs `f` on the luma plane of `buffer` and, for a YUV picture, its U plane.
pub fn with_planes<T>(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(&Plane, Option<&Plane>) -> T,
) -> Result<T, String> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| {
        format!(
            "the buffer does not hold a {}x{} {:?} picture",
            info.width(),
            info.height(),
            info.format()
        )
    })?;
    let plane = |i: u32| -> Result<Plane, String> {
        Ok(Plane {
            data: frame.plane_data(i).map_err(|e| e.to_string())?,
            stride: frame.plane_stride()[i as usize] as usize,
            width: frame.comp_width(i) as usize,
            height: frame.comp_height(i) as usize,
        })
    };
    let luma = plane(0)?;
    let chroma = match header_place(info.format()) {
        HeaderPlace::Chroma => Some(plane(1)?),
        HeaderPlace::Luma => None,
    };
    Ok(f(&luma, chroma.as_ref()))
}

/// Serialized sticky events that arrive before the element can set its output caps (segment,
/// tags): pushing them first would break the sticky order (caps before segment), so they wait
/// and follow the caps.
#[derive(Debug, Default)]
pub struct HeldEvents(Vec<gst::Event>);

impl HeldEvents {
    /// Takes `event` if `srcpad` has no caps yet and the event must come after caps; otherwise
    /// gives it back.
    fn hold(&mut self, srcpad: &gst::Pad, event: gst::Event) -> Option<gst::Event> {
        let after_caps = matches!(event.type_(), gst::EventType::Segment | gst::EventType::Tag);
        if after_caps && !srcpad.has_current_caps() {
            self.0.push(event);
            None
        } else {
            Some(event)
        }
    }

    /// Pushes what was held (right after new caps, or before EOS).
    pub fn release(&mut self, srcpad: &gst::Pad) {
        for e in self.0.drain(..) {
            srcpad.push_event(e);
        }
    }

    /// Every sink event but caps, as both elements handle it: segment and tags wait for caps;
    /// EOS releases them and posts `stats` as an element message. Returns the event to forward
    /// (with `gst::Pad::event_default`, once the caller's lock is dropped).
    pub fn pass(
        &mut self,
        (cat, element): (gst::DebugCategory, &gst::Element),
        srcpad: &gst::Pad,
        event: gst::Event,
        stats: impl FnOnce() -> gst::Structure,
    ) -> Option<gst::Event> {
        if event.type_() == gst::EventType::Eos {
            self.release(srcpad);
            let stats = stats();
            gst::info!(cat, obj = element, "end of stream: {stats}");
            let _ =
                element.post_message(gst::message::Element::builder(stats).src(element).build());
            return Some(event);
        }
        self.hold(srcpad, event)
    }
}

/// The always-present sink and src pads of both elements, the sink's buffers and events going
/// to `chain` and `event` of the element's implementation `T`.
pub fn pads<T: gst::subclass::prelude::ElementImpl>(
    sink: &gst::PadTemplate,
    src: &gst::PadTemplate,
    chain: fn(&T, &gst::Pad, gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError>,
    event: fn(&T, &gst::Pad, gst::Event) -> bool,
) -> (gst::Pad, gst::Pad) {
    use gst::subclass::prelude::ElementImplExt;
    let sinkpad = gst::Pad::builder_from_template(sink)
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
        .build();
    (sinkpad, gst::Pad::builder_from_template(src).build())
}

/// Mean milliseconds per frame of `busy` over `frames`.
pub fn ms_per_frame(busy: std::time::Duration, frames: u64) -> f64 {
    if frames == 0 {
        0.0
    } else {
        busy.as_secs_f64() * 1e3 / frames as f64
    }
}
