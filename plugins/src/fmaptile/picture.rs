//! What `fmaptile` and `fmapuntile` share on the GStreamer side: the raw video formats a mosaic
//! travels in, writing and reading its luma plane, and holding back the events that must follow
//! caps both elements only know at their first buffer.

use codec_core::tile::{CHROMA_NEUTRAL, HeaderPlace, Mosaic, PictureFormat, Plane, at_depth};
use gst_video::VideoFormat;
use gst_video::prelude::*;

/// Mosaic picture formats, in order of preference (the first one downstream accepts is used;
/// a caps filter picks another), with what each means for the mosaic:
/// - I420: 8-bit codes for every H.264/H.265 encoder; V is flat mid-grey, U too apart from the
///   header;
/// - GRAY8: 8-bit codes for PNG, JPEG, encoders with a monochrome mode; the header is a luma
///   band;
/// - I420_10LE: 10-bit codes (MPEG FCM's depth) for encoders that take it, such as x265enc
///   (Main 10) and x264enc (High 10); chroma as in I420.
pub const FORMATS: [(VideoFormat, PictureFormat); 3] = [
    (
        VideoFormat::I420,
        PictureFormat {
            place: HeaderPlace::Chroma,
            bits: 8,
        },
    ),
    (
        VideoFormat::Gray8,
        PictureFormat {
            place: HeaderPlace::Luma,
            bits: 8,
        },
    ),
    (
        VideoFormat::I42010le,
        PictureFormat {
            place: HeaderPlace::Chroma,
            bits: 10,
        },
    ),
];

/// What a picture of `format` means for a mosaic, if it is one of [`FORMATS`].
pub fn picture_format(format: VideoFormat) -> Option<PictureFormat> {
    FORMATS.iter().find(|(f, _)| *f == format).map(|&(_, p)| p)
}

/// The names of [`FORMATS`], for messages: "I420, GRAY8, I420_10LE".
pub fn format_names() -> String {
    FORMATS
        .iter()
        .map(|(f, _)| f.to_str().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Template caps: the mosaic formats at any size.
pub fn template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS.map(|(f, _)| f))
        .build()
}

/// Writes `samples` into `row` at `bits` per sample (one byte, or two little-endian).
fn put_row(row: &mut [u8], samples: &[u16], bits: u8) {
    if bits > 8 {
        for (d, &v) in row.chunks_exact_mut(2).zip(samples) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    } else {
        for (d, &v) in row.iter_mut().zip(samples) {
            *d = v as u8;
        }
    }
}

/// A picture of `info`'s format holding `mosaic`: its luma, its U plane when it has one, the
/// other chroma mid-grey.
pub fn write_picture(mosaic: &Mosaic, info: &gst_video::VideoInfo) -> Result<gst::Buffer, String> {
    let buffer = gst::Buffer::with_size(info.size()).map_err(|e| e.to_string())?;
    let mut frame = gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| "cannot map a new picture".to_string())?;
    let bits = mosaic.bits;
    let neutral = vec![at_depth(CHROMA_NEUTRAL, bits); mosaic.layout.width];
    for plane in 0..frame.n_planes() {
        let stride = frame.plane_stride()[plane as usize] as usize;
        let width = frame.comp_width(plane) as usize;
        let src = match plane {
            0 => Some(&mosaic.luma),
            1 => mosaic.chroma_u.as_ref(),
            _ => None,
        };
        let data = frame.plane_data_mut(plane).map_err(|e| e.to_string())?;
        match src {
            Some(src) => {
                for (row, src) in data.chunks_mut(stride).zip(src.chunks_exact(width)) {
                    put_row(row, src, bits);
                }
            }
            None => {
                for row in data.chunks_mut(stride) {
                    put_row(row, &neutral[..width], bits);
                }
            }
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
    let format = picture_format(info.format()).ok_or_else(|| {
        format!(
            "{:?} is not a mosaic format ({})",
            info.format(),
            format_names()
        )
    })?;
    let plane = |i: u32| -> Result<Plane, String> {
        Ok(Plane {
            data: frame.plane_data(i).map_err(|e| e.to_string())?,
            stride: frame.plane_stride()[i as usize] as usize,
            width: frame.comp_width(i) as usize,
            height: frame.comp_height(i) as usize,
            bits: format.bits,
        })
    };
    let luma = plane(0)?;
    let chroma = match format.place {
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
