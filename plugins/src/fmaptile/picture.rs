//! What `fmaptile` and `fmapuntile` share on the GStreamer side: the raw video formats a mosaic
//! travels in, writing and reading its luma plane, and holding back the events that must follow
//! caps both elements only know at their first buffer.

use gst_video::VideoFormat;
use gst_video::prelude::*;

/// Mosaic picture formats, in order of preference: I420 (every H.264/H.265 encoder takes it;
/// the chroma planes are flat mid-grey) and GRAY8 (PNG, JPEG, encoders with a monochrome mode).
pub const FORMATS: [VideoFormat; 2] = [VideoFormat::I420, VideoFormat::Gray8];

/// Template caps: the mosaic formats at any size.
pub fn template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS)
        .build()
}

/// A picture of `info`'s format holding `luma` (`info.width()` bytes a row) with mid-grey chroma.
pub fn write_picture(luma: &[u8], info: &gst_video::VideoInfo) -> Result<gst::Buffer, String> {
    let buffer = gst::Buffer::with_size(info.size()).map_err(|e| e.to_string())?;
    let mut frame = gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| "cannot map a new picture".to_string())?;
    let width = info.width() as usize;
    for plane in 0..frame.n_planes() {
        let stride = frame.plane_stride()[plane as usize] as usize;
        let data = frame.plane_data_mut(plane).map_err(|e| e.to_string())?;
        if plane == 0 {
            for (row, src) in data.chunks_mut(stride).zip(luma.chunks_exact(width)) {
                row[..width].copy_from_slice(src);
            }
        } else {
            data.fill(128);
        }
    }
    Ok(frame.into_buffer())
}

/// Runs `f` on the luma plane of `buffer` (data, stride in bytes).
pub fn with_luma<T>(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(&[u8], usize) -> T,
) -> Result<T, String> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| {
        format!(
            "the buffer does not hold a {}x{} {:?} picture",
            info.width(),
            info.height(),
            info.format()
        )
    })?;
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).map_err(|e| e.to_string())?;
    Ok(f(data, stride))
}

/// Serialized sticky events that arrive before the element can set its output caps (segment,
/// tags): pushing them first would break the sticky order (caps before segment), so they wait
/// and follow the caps.
#[derive(Debug, Default)]
pub struct HeldEvents(Vec<gst::Event>);

impl HeldEvents {
    /// Takes `event` if `srcpad` has no caps yet and the event must come after caps; otherwise
    /// gives it back.
    pub fn hold(&mut self, srcpad: &gst::Pad, event: gst::Event) -> Option<gst::Event> {
        let after_caps = matches!(event.type_(), gst::EventType::Segment | gst::EventType::Tag);
        if after_caps && !srcpad.has_current_caps() {
            self.0.push(event);
            None
        } else {
            Some(event)
        }
    }

    /// Pushes what was held (before EOS, or right after new caps).
    pub fn release(&mut self, srcpad: &gst::Pad) {
        for e in self.0.drain(..) {
            srcpad.push_event(e);
        }
    }
}
