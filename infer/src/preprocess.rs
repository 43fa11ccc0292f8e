//! Video frame → network input tensor: bilinear resize (stretch or letterbox), channel order,
//! normalization, layout and element type, as described by a profile's [`InputSpec`].
//!
//! The resize uses pixel-centre alignment (source x = (x + 0.5) / scale - 0.5, clamped to the
//! image), which is what OpenCV's `INTER_LINEAR` does, so results match the Python references
//! of the models up to JPEG-decoder and rounding differences. The per-column and per-row source
//! offsets and weights are computed once per (source size) and cached, so a frame costs one pass
//! over the output with four taps per value and no allocation besides the output tensor.

use std::sync::{Arc, Mutex};

use crate::error::{InferError, Result};
use crate::profile::{ChannelOrder, InputDType, InputSpec, Layout, ResizeMode};

/// Largest accepted video frame side, to bound table sizes for untrusted frame descriptions.
pub const MAX_FRAME_SIDE: u32 = 16384;

/// Packed 8-bit pixel formats, named as in GStreamer caps (`video/x-raw,format=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Rgba,
    Bgra,
    Argb,
    Abgr,
}

impl PixelFormat {
    /// Every supported format.
    pub const ALL: [PixelFormat; 10] = [
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Xrgb,
        PixelFormat::Xbgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Argb,
        PixelFormat::Abgr,
    ];

    /// Parses a GStreamer format name (`RGB`, `BGR`, `RGBx`, `BGRx`, `xRGB`, `xBGR`, `RGBA`,
    /// `BGRA`, `ARGB`, `ABGR`). Case matters, as in GStreamer (`RGBx` ≠ `RGBX`).
    pub fn from_gst_name(name: &str) -> Option<PixelFormat> {
        Self::ALL.into_iter().find(|f| f.gst_name() == name)
    }

    /// The GStreamer format name.
    pub fn gst_name(self) -> &'static str {
        match self {
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
            PixelFormat::Xrgb => "xRGB",
            PixelFormat::Xbgr => "xBGR",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Argb => "ARGB",
            PixelFormat::Abgr => "ABGR",
        }
    }

    /// `RGB, BGR, RGBx, ...` for error messages and caps.
    pub fn all_gst_names() -> Vec<&'static str> {
        Self::ALL.iter().map(|f| f.gst_name()).collect()
    }

    /// Bytes per pixel: 3 or 4.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
            _ => 4,
        }
    }

    /// Byte offsets of red, green and blue within one pixel.
    pub fn rgb_offsets(self) -> [usize; 3] {
        match self {
            PixelFormat::Rgb | PixelFormat::Rgbx | PixelFormat::Rgba => [0, 1, 2],
            PixelFormat::Bgr | PixelFormat::Bgrx | PixelFormat::Bgra => [2, 1, 0],
            PixelFormat::Xrgb | PixelFormat::Argb => [1, 2, 3],
            PixelFormat::Xbgr | PixelFormat::Abgr => [3, 2, 1],
        }
    }
}

/// A borrowed packed video frame. `stride` is the number of bytes from one row to the next.
#[derive(Debug, Clone, Copy)]
pub struct VideoFrameRef<'a> {
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub format: PixelFormat,
    pub data: &'a [u8],
}

impl<'a> VideoFrameRef<'a> {
    /// A frame whose rows are contiguous (`stride = width * bytes_per_pixel`).
    pub fn packed(width: u32, height: u32, format: PixelFormat, data: &'a [u8]) -> Self {
        VideoFrameRef {
            width,
            height,
            stride: width as usize * format.bytes_per_pixel(),
            format,
            data,
        }
    }

    /// Checks that the sizes are sane and that `data` holds every row.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| InferError::Frame(m);
        if self.width == 0 || self.height == 0 {
            return Err(err(format!("empty frame {}x{}", self.width, self.height)));
        }
        if self.width > MAX_FRAME_SIDE || self.height > MAX_FRAME_SIDE {
            return Err(err(format!(
                "frame {}x{} is larger than {MAX_FRAME_SIDE} pixels on a side",
                self.width, self.height
            )));
        }
        let row = self.width as usize * self.format.bytes_per_pixel();
        if self.stride < row {
            return Err(err(format!(
                "stride {} is smaller than a {} row of {} pixels ({row} bytes)",
                self.stride,
                self.format.gst_name(),
                self.width
            )));
        }
        let needed = self
            .stride
            .checked_mul(self.height as usize - 1)
            .and_then(|v| v.checked_add(row))
            .ok_or_else(|| err(format!("stride {} overflows", self.stride)))?;
        if self.data.len() < needed {
            return Err(err(format!(
                "{}x{} {} frame with stride {} needs {needed} bytes, got {}",
                self.width,
                self.height,
                self.format.gst_name(),
                self.stride,
                self.data.len()
            )));
        }
        Ok(())
    }
}

/// Element data of an input tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum InputData {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

impl InputData {
    pub fn len(&self) -> usize {
        match self {
            InputData::F32(v) => v.len(),
            InputData::U8(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A network input tensor: graph input name, shape (`[1,3,H,W]` or `[1,H,W,3]`) and data.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: InputData,
}

impl InputTensor {
    /// The `(name, value)` pair [`crate::runtime::Session::run`] takes.
    pub fn into_named_value(self) -> (String, crate::runtime::TensorValue) {
        let value = match self.data {
            InputData::F32(d) => crate::runtime::TensorValue::f32(self.shape, d),
            InputData::U8(d) => crate::runtime::TensorValue::u8(self.shape, d),
        };
        (self.name, value)
    }
}

/// Maps network-input pixel coordinates back to video-frame pixels:
/// `network = source * scale + pad`, so `source = (network - pad) / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResizeMapping {
    pub src_width: u32,
    pub src_height: u32,
    pub dst_width: u32,
    pub dst_height: u32,
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl ResizeMapping {
    /// The mapping `Preprocessor` uses for a source of `src_width x src_height`.
    pub fn new(spec: &InputSpec, src_width: u32, src_height: u32) -> ResizeMapping {
        let (dw, dh) = (spec.width, spec.height);
        let (sw, sh) = (src_width.max(1), src_height.max(1));
        match spec.resize {
            ResizeMode::Stretch => ResizeMapping {
                src_width: sw,
                src_height: sh,
                dst_width: dw,
                dst_height: dh,
                scale_x: dw as f32 / sw as f32,
                scale_y: dh as f32 / sh as f32,
                pad_x: 0.0,
                pad_y: 0.0,
            },
            ResizeMode::Letterbox => {
                let s = (dw as f64 / sw as f64).min(dh as f64 / sh as f64);
                let new_w = ((sw as f64 * s).round() as u32).clamp(1, dw);
                let new_h = ((sh as f64 * s).round() as u32).clamp(1, dh);
                ResizeMapping {
                    src_width: sw,
                    src_height: sh,
                    dst_width: dw,
                    dst_height: dh,
                    scale_x: new_w as f32 / sw as f32,
                    scale_y: new_h as f32 / sh as f32,
                    pad_x: ((dw - new_w) / 2) as f32,
                    pad_y: ((dh - new_h) / 2) as f32,
                }
            }
        }
    }

    /// Identity mapping (network input = source), e.g. for outputs already in frame pixels.
    pub fn identity(width: u32, height: u32) -> ResizeMapping {
        ResizeMapping {
            src_width: width,
            src_height: height,
            dst_width: width,
            dst_height: height,
            scale_x: 1.0,
            scale_y: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
        }
    }

    /// Network-input point → source point, clamped to `[0, src_width] x [0, src_height]`.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        let sx = (x - self.pad_x) / self.scale_x;
        let sy = (y - self.pad_y) / self.scale_y;
        (
            clamp_coord(sx, self.src_width as f32),
            clamp_coord(sy, self.src_height as f32),
        )
    }

    /// Source point → network-input point (not clamped).
    pub fn to_network(&self, x: f32, y: f32) -> (f32, f32) {
        (x * self.scale_x + self.pad_x, y * self.scale_y + self.pad_y)
    }

    /// `[x1, y1, x2, y2]` in network-input pixels → source pixels, clamped to the frame.
    pub fn box_to_source(&self, b: [f32; 4]) -> [f32; 4] {
        let (x1, y1) = self.to_source(b[0], b[1]);
        let (x2, y2) = self.to_source(b[2], b[3]);
        [x1, y1, x2, y2]
    }

    /// Region of the network input covered by the image (letterbox excludes the borders):
    /// `(x0, y0, x1, y1)` in whole pixels.
    fn content_rect(&self) -> (usize, usize, usize, usize) {
        let x0 = self.pad_x as usize;
        let y0 = self.pad_y as usize;
        let w = (self.src_width as f32 * self.scale_x).round() as usize;
        let h = (self.src_height as f32 * self.scale_y).round() as usize;
        let x1 = (x0 + w).min(self.dst_width as usize);
        let y1 = (y0 + h).min(self.dst_height as usize);
        (x0, y0, x1, y1)
    }
}

fn clamp_coord(v: f32, max: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, max) }
}

/// Bilinear taps for one output column or row.
#[derive(Debug, Clone, Copy)]
struct Tap {
    /// First source index (pixel column or row).
    i0: u32,
    /// Second source index (`i0 + 1`, or `i0` at the border).
    i1: u32,
    /// Weight of `i1`.
    w: f32,
}

/// Precomputed sampling tables for one source size.
#[derive(Debug)]
struct ResizeTables {
    src: (u32, u32),
    mapping: ResizeMapping,
    /// Output columns/rows `content.0..content.2` / `content.1..content.3` sample the image.
    content: (usize, usize, usize, usize),
    /// Indexed by output column - content.0.
    cols: Vec<Tap>,
    /// Indexed by output row - content.1.
    rows: Vec<Tap>,
}

impl ResizeTables {
    fn new(spec: &InputSpec, sw: u32, sh: u32) -> ResizeTables {
        let mapping = ResizeMapping::new(spec, sw, sh);
        let content = mapping.content_rect();
        // Source positions in f64 (pixel centres, clamped to the image), weights rounded to
        // f32 once: the same arithmetic as the Python references, so u8 inputs round alike.
        let taps = |from: usize, to: usize, n: u32| -> Vec<Tap> {
            let inv_scale = n as f64 / (to - from).max(1) as f64;
            (from..to)
                .map(|d| {
                    let s = ((d - from) as f64 + 0.5) * inv_scale - 0.5;
                    let s = s.clamp(0.0, (n - 1) as f64);
                    let i0 = (s.floor() as u32).min(n - 1);
                    let i1 = (i0 + 1).min(n - 1);
                    Tap {
                        i0,
                        i1,
                        w: (s - i0 as f64) as f32,
                    }
                })
                .collect()
        };
        ResizeTables {
            src: (sw, sh),
            mapping,
            content,
            cols: taps(content.0, content.2, sw),
            rows: taps(content.1, content.3, sh),
        }
    }
}

/// Builds network inputs from video frames for one profile input.
#[derive(Debug)]
pub struct Preprocessor {
    spec: InputSpec,
    /// Per output channel: `value * mul + add` = `(value - mean) / std`.
    mul: [f32; 3],
    add: [f32; 3],
    /// Which of R, G, B (0, 1, 2) feeds each output channel.
    channel_source: [usize; 3],
    tables: Mutex<Option<Arc<ResizeTables>>>,
}

impl Preprocessor {
    /// A preprocessor for a validated input spec.
    pub fn new(spec: &InputSpec) -> Result<Preprocessor> {
        spec.validate()?;
        let mean = spec.mean_or_default();
        let std = spec.std_or_default();
        let mul = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
        let add = [-mean[0] * mul[0], -mean[1] * mul[1], -mean[2] * mul[2]];
        let channel_source = match spec.channel_order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        Ok(Preprocessor {
            spec: spec.clone(),
            mul,
            add,
            channel_source,
            tables: Mutex::new(None),
        })
    }

    /// The input spec this preprocessor was built for.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The mapping for frames of this size (without preparing one).
    pub fn mapping_for(&self, width: u32, height: u32) -> ResizeMapping {
        ResizeMapping::new(&self.spec, width, height)
    }

    fn tables_for(&self, sw: u32, sh: u32) -> Arc<ResizeTables> {
        // A poisoned lock only means another thread panicked mid-update of the cache; the
        // cache is rebuilt below when its size does not match, so its content is still usable.
        let mut guard = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(t) if t.src == (sw, sh) => t.clone(),
            _ => {
                let t = Arc::new(ResizeTables::new(&self.spec, sw, sh));
                *guard = Some(t.clone());
                t
            }
        }
    }

    /// Converts a frame into a new input tensor, and returns the mapping back to frame pixels.
    pub fn prepare(&self, frame: &VideoFrameRef) -> Result<(InputTensor, ResizeMapping)> {
        let mut tensor = InputTensor {
            name: self.spec.name.clone(),
            shape: Vec::new(),
            data: match self.spec.dtype {
                InputDType::F32 => InputData::F32(Vec::new()),
                InputDType::U8 => InputData::U8(Vec::new()),
            },
        };
        let mapping = self.prepare_into(frame, &mut tensor)?;
        Ok((tensor, mapping))
    }

    /// Like [`Preprocessor::prepare`], reusing the allocation of `tensor`.
    pub fn prepare_into(
        &self,
        frame: &VideoFrameRef,
        tensor: &mut InputTensor,
    ) -> Result<ResizeMapping> {
        frame.validate()?;
        let tables = self.tables_for(frame.width, frame.height);
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let n = w * h * 3;
        tensor.name.clone_from(&self.spec.name);
        tensor.shape.clear();
        tensor.shape.extend_from_slice(&self.spec.tensor_shape());
        let fill = self.spec.fill_or_default() as f32;
        match self.spec.dtype {
            InputDType::F32 => {
                if !matches!(tensor.data, InputData::F32(_)) {
                    tensor.data = InputData::F32(Vec::new());
                }
                let InputData::F32(out) = &mut tensor.data else {
                    unreachable!("set to F32 just above")
                };
                out.clear();
                out.resize(n, 0.0);
                let (mul, add) = (self.mul, self.add);
                let norm = |c: usize, v: f32| v * mul[c] + add[c];
                let fill_px = [norm(0, fill), norm(1, fill), norm(2, fill)];
                match self.spec.layout {
                    Layout::Nchw => {
                        let plane = w * h;
                        self.resample(frame, &tables, fill_px, norm, |i, v: [f32; 3]| {
                            out[i] = v[0];
                            out[plane + i] = v[1];
                            out[2 * plane + i] = v[2];
                        })
                    }
                    Layout::Nhwc => self.resample(frame, &tables, fill_px, norm, |i, v| {
                        out[3 * i..3 * i + 3].copy_from_slice(&v)
                    }),
                }
            }
            InputDType::U8 => {
                if !matches!(tensor.data, InputData::U8(_)) {
                    tensor.data = InputData::U8(Vec::new());
                }
                let InputData::U8(out) = &mut tensor.data else {
                    unreachable!("set to U8 just above")
                };
                out.clear();
                out.resize(n, 0);
                // Round half to even (like numpy's rint). Values are convex combinations of
                // bytes, so within 0..=255 (`as u8` saturates anyway); adding and removing 2^23
                // rounds such values to the nearest even integer without a libm call (x86-64
                // without SSE4.1 has no rounding instruction).
                let to_u8 = |_c: usize, v: f32| ((v + 8_388_608.0) - 8_388_608.0) as u8;
                let fill_px = [to_u8(0, fill); 3];
                match self.spec.layout {
                    Layout::Nchw => {
                        let plane = w * h;
                        self.resample(frame, &tables, fill_px, to_u8, |i, v: [u8; 3]| {
                            out[i] = v[0];
                            out[plane + i] = v[1];
                            out[2 * plane + i] = v[2];
                        })
                    }
                    Layout::Nhwc => self.resample(frame, &tables, fill_px, to_u8, |i, v| {
                        out[3 * i..3 * i + 3].copy_from_slice(&v)
                    }),
                }
            }
        }
        Ok(tables.mapping)
    }

    /// Walks the output pixels in row-major order and hands `store(pixel index, channels)` the
    /// converted values, in the network's channel order.
    #[inline(always)]
    fn resample<T: Copy>(
        &self,
        frame: &VideoFrameRef,
        t: &ResizeTables,
        fill: [T; 3],
        convert: impl Fn(usize, f32) -> T,
        mut store: impl FnMut(usize, [T; 3]),
    ) {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let (cx0, cy0, cx1, cy1) = t.content;
        let bpp = frame.format.bytes_per_pixel();
        let rgb = frame.format.rgb_offsets();
        let off = [
            rgb[self.channel_source[0]],
            rgb[self.channel_source[1]],
            rgb[self.channel_source[2]],
        ];
        for y in 0..h {
            let base = y * w;
            if y < cy0 || y >= cy1 {
                for x in 0..w {
                    store(base + x, fill);
                }
                continue;
            }
            let ty = t.rows[y - cy0];
            let r0 = &frame.data[ty.i0 as usize * frame.stride..];
            let r1 = &frame.data[ty.i1 as usize * frame.stride..];
            let wy = ty.w;
            for x in 0..cx0 {
                store(base + x, fill);
            }
            for (x, tx) in (cx0..cx1).zip(&t.cols) {
                let p0 = tx.i0 as usize * bpp;
                let p1 = tx.i1 as usize * bpp;
                let wx = tx.w;
                let mut v = fill;
                for c in 0..3 {
                    let o = off[c];
                    let a = r0[p0 + o] as f32;
                    let b = r0[p1 + o] as f32;
                    let cc = r1[p0 + o] as f32;
                    let d = r1[p1 + o] as f32;
                    let top = a * (1.0 - wx) + b * wx;
                    let bot = cc * (1.0 - wx) + d * wx;
                    v[c] = convert(c, top * (1.0 - wy) + bot * wy);
                }
                store(base + x, v);
            }
            for x in cx1..w {
                store(base + x, fill);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        w: u32,
        h: u32,
        layout: Layout,
        dtype: InputDType,
        order: ChannelOrder,
        resize: ResizeMode,
    ) -> InputSpec {
        InputSpec {
            name: "in".into(),
            layout,
            width: w,
            height: h,
            dtype,
            channel_order: order,
            mean: None,
            std: None,
            resize,
            letterbox_fill: None,
        }
    }

    /// A `w x h` RGB image of `bg` with a `[x0, x1) x [y0, y1)` rectangle of `fg`.
    fn rect_image(w: u32, h: u32, bg: [u8; 3], fg: [u8; 3], r: (u32, u32, u32, u32)) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let inside = x >= r.0 && x < r.1 && y >= r.2 && y < r.3;
                v.extend_from_slice(if inside { &fg } else { &bg });
            }
        }
        v
    }

    fn u8_nhwc(t: &InputTensor) -> &[u8] {
        match &t.data {
            InputData::U8(v) => v,
            _ => panic!("expected u8"),
        }
    }

    fn f32_data(t: &InputTensor) -> &[f32] {
        match &t.data {
            InputData::F32(v) => v,
            _ => panic!("expected f32"),
        }
    }

    /// Bounding box of the pixels whose red channel is > 128 in an RGB NHWC u8 tensor.
    fn red_bbox(data: &[u8], w: usize, h: usize) -> (usize, usize, usize, usize) {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..h {
            for x in 0..w {
                if data[(y * w + x) * 3] > 128 {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
            }
        }
        (x0, y0, x1, y1)
    }

    #[test]
    fn gst_names_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_gst_name(f.gst_name()), Some(f));
            let offs = f.rgb_offsets();
            assert!(offs.iter().all(|&o| o < f.bytes_per_pixel()));
        }
        assert_eq!(PixelFormat::from_gst_name("RGBX"), None);
        assert_eq!(PixelFormat::from_gst_name("I420"), None);
        assert_eq!(PixelFormat::all_gst_names().len(), 10);
    }

    #[test]
    fn stretch_places_rectangle() {
        // 200x100 image, red rectangle x 50..150, y 20..60 → 100x100 input: x 25..75, y 20..60.
        let img = rect_image(200, 100, [0, 0, 0], [255, 0, 0], (50, 150, 20, 60));
        let s = spec(
            100,
            100,
            Layout::Nhwc,
            InputDType::U8,
            ChannelOrder::Rgb,
            ResizeMode::Stretch,
        );
        let p = Preprocessor::new(&s).unwrap();
        let (t, m) = p
            .prepare(&VideoFrameRef::packed(200, 100, PixelFormat::Rgb, &img))
            .unwrap();
        assert_eq!(t.shape, vec![1, 100, 100, 3]);
        assert_eq!(red_bbox(u8_nhwc(&t), 100, 100), (25, 20, 75, 60));
        assert_eq!(
            (m.scale_x, m.scale_y, m.pad_x, m.pad_y),
            (0.5, 1.0, 0.0, 0.0)
        );
    }

    #[test]
    fn letterbox_places_rectangle_and_fills() {
        // 200x100 → 100x100 letterbox: scale 0.5, image in rows 25..75.
        let img = rect_image(200, 100, [0, 0, 0], [255, 0, 0], (50, 150, 20, 60));
        let mut s = spec(
            100,
            100,
            Layout::Nhwc,
            InputDType::U8,
            ChannelOrder::Rgb,
            ResizeMode::Letterbox,
        );
        s.letterbox_fill = Some(7);
        let p = Preprocessor::new(&s).unwrap();
        let (t, m) = p
            .prepare(&VideoFrameRef::packed(200, 100, PixelFormat::Rgb, &img))
            .unwrap();
        let d = u8_nhwc(&t);
        assert_eq!(red_bbox(d, 100, 100), (25, 35, 75, 55));
        assert_eq!(
            (m.scale_x, m.scale_y, m.pad_x, m.pad_y),
            (0.5, 0.5, 0.0, 25.0)
        );
        // Borders hold the fill, the image area the black background.
        assert_eq!(&d[0..3], &[7, 7, 7]);
        assert_eq!(&d[(24 * 100 + 50) * 3..][..3], &[7, 7, 7]);
        assert_eq!(&d[(25 * 100 + 50) * 3..][..3], &[0, 0, 0]);
        assert_eq!(&d[(75 * 100 + 50) * 3..][..3], &[7, 7, 7]);
        assert_eq!(&d[(74 * 100) * 3..][..3], &[0, 0, 0]);
        // Portrait source: pads left and right.
        let img = rect_image(50, 100, [255, 0, 0], [255, 0, 0], (0, 0, 0, 0));
        let (t, m) = p
            .prepare(&VideoFrameRef::packed(50, 100, PixelFormat::Rgb, &img))
            .unwrap();
        assert_eq!(red_bbox(u8_nhwc(&t), 100, 100), (25, 0, 75, 100));
        assert_eq!((m.pad_x, m.pad_y), (25.0, 0.0));
    }

    #[test]
    fn channel_order_and_normalization_exact() {
        // Constant colour R=10, G=20, B=30 in every input format.
        for fmt in PixelFormat::ALL {
            let bpp = fmt.bytes_per_pixel();
            let mut px = vec![99u8; bpp]; // padding/alpha bytes get a distinct value
            let o = fmt.rgb_offsets();
            px[o[0]] = 10;
            px[o[1]] = 20;
            px[o[2]] = 30;
            let (w, h) = (37u32, 23u32);
            let stride = w as usize * bpp + 5; // padded rows
            let mut img = vec![0u8; stride * h as usize];
            for y in 0..h as usize {
                for x in 0..w as usize {
                    img[y * stride + x * bpp..][..bpp].copy_from_slice(&px);
                }
            }
            let frame = VideoFrameRef {
                width: w,
                height: h,
                stride,
                format: fmt,
                data: &img,
            };
            // f32 NCHW BGR with mean/std.
            let mut s = spec(
                16,
                8,
                Layout::Nchw,
                InputDType::F32,
                ChannelOrder::Bgr,
                ResizeMode::Stretch,
            );
            s.mean = Some(vec![1.0, 2.0, 3.0]);
            s.std = Some(vec![2.0, 4.0, 0.5]);
            let (t, _) = Preprocessor::new(&s).unwrap().prepare(&frame).unwrap();
            assert_eq!(t.shape, vec![1, 3, 8, 16]);
            let d = f32_data(&t);
            let plane = 16 * 8;
            let expect = [(30.0 - 1.0) / 2.0, (20.0 - 2.0) / 4.0, (10.0 - 3.0) / 0.5];
            for c in 0..3 {
                for v in &d[c * plane..(c + 1) * plane] {
                    assert!(
                        (v - expect[c]).abs() < 1e-5,
                        "{fmt:?} c{c}: {v} vs {}",
                        expect[c]
                    );
                }
            }
            // f32 NHWC RGB, identity normalization.
            let s = spec(
                5,
                7,
                Layout::Nhwc,
                InputDType::F32,
                ChannelOrder::Rgb,
                ResizeMode::Letterbox,
            );
            let (t, _) = Preprocessor::new(&s).unwrap().prepare(&frame).unwrap();
            let d = f32_data(&t);
            // Middle row is inside the image.
            assert_eq!(&d[(3 * 5 + 2) * 3..][..3], &[10.0, 20.0, 30.0], "{fmt:?}");
            // u8 NCHW BGR.
            let s = spec(
                4,
                4,
                Layout::Nchw,
                InputDType::U8,
                ChannelOrder::Bgr,
                ResizeMode::Stretch,
            );
            let (t, _) = Preprocessor::new(&s).unwrap().prepare(&frame).unwrap();
            let d = u8_nhwc(&t);
            assert!(d[0..16].iter().all(|&v| v == 30));
            assert!(d[16..32].iter().all(|&v| v == 20));
            assert!(d[32..48].iter().all(|&v| v == 10));
        }
    }

    #[test]
    fn bilinear_matches_hand_computation() {
        // 2x1 gradient 0 → 100, upscaled to 4x1: centres at source x -0.25, 0.25, 0.75, 1.25
        // → clamped 0, 0.25, 0.75, 1 → 0, 25, 75, 100.
        let img = [0u8, 0, 0, 100, 100, 100];
        let s = spec(
            4,
            1,
            Layout::Nhwc,
            InputDType::F32,
            ChannelOrder::Rgb,
            ResizeMode::Stretch,
        );
        let (t, _) = Preprocessor::new(&s)
            .unwrap()
            .prepare(&VideoFrameRef::packed(2, 1, PixelFormat::Rgb, &img))
            .unwrap();
        let d = f32_data(&t);
        let reds: Vec<f32> = d.chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, vec![0.0, 25.0, 75.0, 100.0]);
    }

    #[test]
    fn u8_rounds_half_to_even() {
        // 2x1 → 4x1 samples source x 0, 0.25, 0.75, 1: values 1, 1.5, 2.5, 3 for a 1 → 3 ramp.
        let img = [1u8, 1, 1, 3, 3, 3];
        let s = spec(
            4,
            1,
            Layout::Nhwc,
            InputDType::U8,
            ChannelOrder::Rgb,
            ResizeMode::Stretch,
        );
        let (t, _) = Preprocessor::new(&s)
            .unwrap()
            .prepare(&VideoFrameRef::packed(2, 1, PixelFormat::Rgb, &img))
            .unwrap();
        let reds: Vec<u8> = u8_nhwc(&t).chunks(3).map(|p| p[0]).collect();
        // Ties go to the even neighbour: 1.5 → 2, 2.5 → 2.
        assert_eq!(reds, vec![1, 2, 2, 3]);
    }

    #[test]
    fn mapping_round_trips_and_clamps() {
        for resize in [ResizeMode::Stretch, ResizeMode::Letterbox] {
            let s = spec(
                416,
                416,
                Layout::Nchw,
                InputDType::F32,
                ChannelOrder::Bgr,
                resize,
            );
            let m = ResizeMapping::new(&s, 768, 576);
            for &(x, y) in &[(0.0, 0.0), (100.5, 200.25), (767.0, 575.0), (768.0, 576.0)] {
                let (nx, ny) = m.to_network(x, y);
                let (bx, by) = m.to_source(nx, ny);
                assert!(
                    (bx - x).abs() < 1e-3 && (by - y).abs() < 1e-3,
                    "{resize:?} {x},{y}"
                );
            }
            // Points outside the image (letterbox border, negative, beyond) clamp to the frame.
            assert_eq!(m.to_source(-50.0, -50.0), (0.0, 0.0));
            assert_eq!(m.to_source(1000.0, 1000.0), (768.0, 576.0));
            assert_eq!(
                m.box_to_source([-5.0, -5.0, 500.0, 500.0]),
                [0.0, 0.0, 768.0, 576.0]
            );
            assert_eq!(m.to_source(f32::NAN, 1.0).0, 0.0);
        }
        let s = spec(
            416,
            416,
            Layout::Nchw,
            InputDType::F32,
            ChannelOrder::Bgr,
            ResizeMode::Letterbox,
        );
        let m = ResizeMapping::new(&s, 768, 576);
        assert_eq!((m.pad_x, m.pad_y), (0.0, 52.0));
        assert_eq!(m.to_source(0.0, 52.0), (0.0, 0.0));
    }

    #[test]
    fn bad_frames_are_errors() {
        let s = spec(
            8,
            8,
            Layout::Nchw,
            InputDType::F32,
            ChannelOrder::Rgb,
            ResizeMode::Stretch,
        );
        let p = Preprocessor::new(&s).unwrap();
        let data = vec![0u8; 100];
        let cases = [
            VideoFrameRef {
                width: 0,
                height: 4,
                stride: 12,
                format: PixelFormat::Rgb,
                data: &data,
            },
            VideoFrameRef {
                width: 4,
                height: 4,
                stride: 11,
                format: PixelFormat::Rgb,
                data: &data,
            },
            VideoFrameRef {
                width: 10,
                height: 10,
                stride: 30,
                format: PixelFormat::Rgb,
                data: &data,
            },
            VideoFrameRef {
                width: 4,
                height: 4,
                stride: usize::MAX,
                format: PixelFormat::Rgb,
                data: &data,
            },
            VideoFrameRef {
                width: 20000,
                height: 1,
                stride: 60000,
                format: PixelFormat::Rgb,
                data: &data,
            },
        ];
        for f in cases {
            let e = p.prepare(&f).unwrap_err();
            assert!(matches!(e, InferError::Frame(_)), "{e}");
        }
        // Last row may be short of the stride padding.
        let f = VideoFrameRef {
            width: 4,
            height: 2,
            stride: 16,
            format: PixelFormat::Rgb,
            data: &data[..28],
        };
        assert!(p.prepare(&f).is_ok());
    }

    #[test]
    fn tensor_reuse_and_size_change() {
        let s = spec(
            16,
            16,
            Layout::Nchw,
            InputDType::F32,
            ChannelOrder::Rgb,
            ResizeMode::Stretch,
        );
        let p = Preprocessor::new(&s).unwrap();
        let a = vec![50u8; 32 * 32 * 3];
        let b = vec![200u8; 8 * 4 * 4];
        let (mut t, m1) = p
            .prepare(&VideoFrameRef::packed(32, 32, PixelFormat::Rgb, &a))
            .unwrap();
        let m2 = p
            .prepare_into(&VideoFrameRef::packed(8, 4, PixelFormat::Bgrx, &b), &mut t)
            .unwrap();
        assert_eq!((m1.src_width, m2.src_width, m2.src_height), (32, 8, 4));
        assert!(f32_data(&t).iter().all(|&v| v == 200.0));
        assert_eq!(t.data.len(), 3 * 16 * 16);
    }
}
