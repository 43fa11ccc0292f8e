//! Drawing labelled boxes into packed RGB frames (no GStreamer types).

use super::font;

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Black or white, whichever reads better on top of `self`.
    pub fn contrasting(self) -> Rgb {
        let luma = 299 * self.0 as u32 + 587 * self.1 as u32 + 114 * self.2 as u32;
        if luma > 128_000 {
            Rgb(0, 0, 0)
        } else {
            Rgb(255, 255, 255)
        }
    }
}

/// Distinct colours; class `i` gets `PALETTE[i % len]`.
const PALETTE: [Rgb; 12] = [
    Rgb(255, 56, 56),
    Rgb(72, 249, 10),
    Rgb(0, 194, 255),
    Rgb(255, 157, 151),
    Rgb(255, 178, 29),
    Rgb(207, 210, 49),
    Rgb(146, 204, 23),
    Rgb(61, 219, 134),
    Rgb(26, 147, 52),
    Rgb(0, 212, 187),
    Rgb(132, 56, 255),
    Rgb(255, 55, 199),
];

/// The outline colour of a class.
pub fn class_colour(class_id: u32) -> Rgb {
    PALETTE[class_id as usize % PALETTE.len()]
}

/// Thickness of box outlines in pixels.
pub const OUTLINE: usize = 2;

/// Where the colour components sit inside one pixel of a packed RGB format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelLayout {
    pub bytes_per_pixel: usize,
    pub r: usize,
    pub g: usize,
    pub b: usize,
    /// Alpha byte, set opaque where we draw.
    pub a: Option<usize>,
}

/// A mutable view of one packed RGB plane.
pub struct Canvas<'a> {
    data: &'a mut [u8],
    stride: usize,
    width: usize,
    height: usize,
    layout: PixelLayout,
}

impl<'a> Canvas<'a> {
    /// `None` when the plane is too small for the given geometry.
    pub fn new(
        data: &'a mut [u8],
        stride: usize,
        width: usize,
        height: usize,
        layout: PixelLayout,
    ) -> Option<Self> {
        let row = width.checked_mul(layout.bytes_per_pixel)?;
        if height == 0 || width == 0 {
            return Some(Canvas {
                data,
                stride,
                width,
                height,
                layout,
            });
        }
        let needed = stride.checked_mul(height - 1)?.checked_add(row)?;
        (stride >= row && data.len() >= needed).then_some(Canvas {
            data,
            stride,
            width,
            height,
            layout,
        })
    }

    fn put(&mut self, x: usize, y: usize, c: Rgb) {
        let o = y * self.stride + x * self.layout.bytes_per_pixel;
        let px = &mut self.data[o..o + self.layout.bytes_per_pixel];
        px[self.layout.r] = c.0;
        px[self.layout.g] = c.1;
        px[self.layout.b] = c.2;
        if let Some(a) = self.layout.a {
            px[a] = 255;
        }
    }
}

/// Something boxes and labels can be drawn on; only `fill_rect` differs between formats.
pub trait Surface {
    fn width(&self) -> usize;

    /// Fills `[x0, x1) x [y0, y1)`, clipped to the surface.
    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb);

    /// Draws `text` with its top-left corner at (`x`, `y`), each font pixel `scale` wide.
    fn draw_text(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        let s = scale.max(1) as i64;
        for (i, ch) in text.chars().enumerate() {
            let gx = x + (i * font::ADVANCE) as i64 * s;
            for fy in 0..font::GLYPH_HEIGHT {
                for fx in 0..font::GLYPH_WIDTH {
                    if font::is_set(ch, fx, fy) {
                        let px = gx + fx as i64 * s;
                        let py = y + fy as i64 * s;
                        self.fill_rect(px, py, px + s, py + s, c);
                    }
                }
            }
        }
    }

    /// Draws a box outline (`OUTLINE` pixels wide, inside `[x1, x2] x [y1, y2]`, both ends
    /// inclusive, clipped to the canvas) and a label bar above it (inside the box when there
    /// is no room above).
    fn draw_labelled_box(&mut self, bbox: PixelBox, label: &str, colour: Rgb, scale: usize) {
        let PixelBox { x1, y1, x2, y2 } = bbox;
        let t = OUTLINE as i64;
        self.fill_rect(x1, y1, x2 + 1, y1 + t, colour);
        self.fill_rect(x1, y2 + 1 - t, x2 + 1, y2 + 1, colour);
        self.fill_rect(x1, y1, x1 + t, y2 + 1, colour);
        self.fill_rect(x2 + 1 - t, y1, x2 + 1, y2 + 1, colour);
        if label.is_empty() {
            return;
        }
        let s = scale.max(1) as i64;
        let bar_w = (font::text_width(label) as i64 + 2) * s;
        let bar_h = (font::GLYPH_HEIGHT as i64 + 2) * s;
        let bar_y = if y1 >= bar_h { y1 - bar_h } else { y1 };
        // Keep the label on screen when the box touches the right edge.
        let bar_x = x1.min(self.width() as i64 - bar_w).max(0);
        self.fill_rect(bar_x, bar_y, bar_x + bar_w, bar_y + bar_h, colour);
        self.draw_text(bar_x + s, bar_y + s, label, scale, colour.contrasting());
    }
}

impl Surface for Canvas<'_> {
    fn width(&self) -> usize {
        self.width
    }

    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        let cx0 = x0.clamp(0, self.width as i64) as usize;
        let cx1 = x1.clamp(0, self.width as i64) as usize;
        let cy0 = y0.clamp(0, self.height as i64) as usize;
        let cy1 = y1.clamp(0, self.height as i64) as usize;
        for y in cy0..cy1 {
            for x in cx0..cx1 {
                self.put(x, y, c);
            }
        }
    }
}

/// Clipped `[v0, v1)` as indices into `0..len`.
fn clip_span(v0: i64, v1: i64, len: usize) -> std::ops::Range<usize> {
    let a = v0.clamp(0, len as i64) as usize;
    let b = v1.clamp(0, len as i64) as usize;
    a..b.max(a)
}

/// The three planes of an I420 frame (chroma subsampled 2x2).
pub struct I420Canvas<'a> {
    planes: [&'a mut [u8]; 3],
    strides: [usize; 3],
    width: usize,
    height: usize,
}

impl<'a> I420Canvas<'a> {
    /// `None` when a plane is too small for the geometry.
    pub fn new(
        planes: [&'a mut [u8]; 3],
        strides: [usize; 3],
        width: usize,
        height: usize,
    ) -> Option<Self> {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        for (i, (w, h)) in [(width, height), (cw, ch), (cw, ch)]
            .into_iter()
            .enumerate()
        {
            if h > 0 && w > 0 {
                let needed = strides[i].checked_mul(h - 1)?.checked_add(w)?;
                if strides[i] < w || planes[i].len() < needed {
                    return None;
                }
            }
        }
        Some(I420Canvas {
            planes,
            strides,
            width,
            height,
        })
    }
}

impl Rgb {
    /// BT.601 limited-range Y, U, V.
    pub fn to_yuv(self) -> (u8, u8, u8) {
        let (r, g, b) = (self.0 as f32, self.1 as f32, self.2 as f32);
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
        let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
        let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
        let q = |x: f32| x.round().clamp(0.0, 255.0) as u8;
        (q(y), q(u), q(v))
    }
}

impl Surface for I420Canvas<'_> {
    fn width(&self) -> usize {
        self.width
    }

    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        let (y, u, v) = c.to_yuv();
        let xs = clip_span(x0, x1, self.width);
        let ys = clip_span(y0, y1, self.height);
        if xs.is_empty() || ys.is_empty() {
            return;
        }
        for row in ys.clone() {
            let o = row * self.strides[0];
            self.planes[0][o + xs.start..o + xs.end].fill(y);
        }
        // Every chroma sample touched by a filled luma pixel takes the colour.
        let cxs = xs.start / 2..xs.end.div_ceil(2);
        let cys = ys.start / 2..ys.end.div_ceil(2);
        for (plane, value) in [(1usize, u), (2, v)] {
            for row in cys.clone() {
                let o = row * self.strides[plane];
                self.planes[plane][o + cxs.start..o + cxs.end].fill(value);
            }
        }
    }
}

/// A box in integer pixel coordinates, both corners inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x1: i64,
    pub y1: i64,
    pub x2: i64,
    pub y2: i64,
}

impl PixelBox {
    /// Rounds a float box to pixels and clips it to a `width` x `height` frame; `None` when
    /// nothing of it is visible or a coordinate is not finite.
    pub fn from_float(b: [f64; 4], width: usize, height: usize) -> Option<PixelBox> {
        if !b.iter().all(|v| v.is_finite()) || width == 0 || height == 0 {
            return None;
        }
        let (xa, xb) = (b[0].min(b[2]), b[0].max(b[2]));
        let (ya, yb) = (b[1].min(b[3]), b[1].max(b[3]));
        let max_x = (width - 1) as f64;
        let max_y = (height - 1) as f64;
        if xb < 0.0 || yb < 0.0 || xa > max_x || ya > max_y {
            return None;
        }
        Some(PixelBox {
            x1: xa.round().clamp(0.0, max_x) as i64,
            y1: ya.round().clamp(0.0, max_y) as i64,
            x2: xb.round().clamp(0.0, max_x) as i64,
            y2: yb.round().clamp(0.0, max_y) as i64,
        })
    }

    /// (x, y, width, height), as a region-of-interest rectangle.
    pub fn rect(&self) -> (u32, u32, u32, u32) {
        (
            self.x1 as u32,
            self.y1 as u32,
            (self.x2 - self.x1 + 1) as u32,
            (self.y2 - self.y1 + 1) as u32,
        )
    }
}

/// Label text as drawn: "`label` `score`%".
pub fn label_text(label: &str, score: f64) -> String {
    let pct = (score * 100.0).round().clamp(0.0, 100.0) as u32;
    format!("{label} {pct}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RGBX: PixelLayout = PixelLayout {
        bytes_per_pixel: 4,
        r: 0,
        g: 1,
        b: 2,
        a: None,
    };

    fn px(data: &[u8], stride: usize, x: usize, y: usize) -> [u8; 4] {
        let o = y * stride + x * 4;
        [data[o], data[o + 1], data[o + 2], data[o + 3]]
    }

    #[test]
    fn outline_is_two_pixels_and_interior_untouched() {
        let (w, h, stride) = (64usize, 48usize, 64 * 4 + 8);
        let mut data = vec![7u8; stride * h];
        let c = Rgb(10, 20, 30);
        {
            let mut canvas = Canvas::new(&mut data, stride, w, h, RGBX).unwrap();
            let b = PixelBox::from_float([10.2, 20.0, 40.0, 39.6], w, h).unwrap();
            assert_eq!((b.x1, b.y1, b.x2, b.y2), (10, 20, 40, 40));
            canvas.draw_labelled_box(b, "", c, 1);
        }
        for (x, y) in [
            (10, 30),
            (11, 30),
            (40, 30),
            (39, 30),
            (25, 20),
            (25, 21),
            (25, 40),
            (25, 39),
        ] {
            assert_eq!(px(&data, stride, x, y)[..3], [10, 20, 30], "({x},{y})");
            assert_eq!(px(&data, stride, x, y)[3], 7, "padding byte kept");
        }
        for (x, y) in [
            (12, 30),
            (38, 30),
            (25, 22),
            (25, 38),
            (9, 30),
            (41, 30),
            (25, 19),
            (25, 41),
        ] {
            assert_eq!(px(&data, stride, x, y), [7; 4], "({x},{y})");
        }
        // Row padding beyond the visible width is never written.
        assert!(data[w * 4..stride].iter().all(|&b| b == 7));
    }

    #[test]
    fn label_bar_sits_above_the_box_and_holds_text() {
        let (w, h, stride) = (80usize, 60usize, 320usize);
        let mut data = vec![0u8; stride * h];
        let c = Rgb(255, 255, 255);
        let mut canvas = Canvas::new(&mut data, stride, w, h, RGBX).unwrap();
        let b = PixelBox::from_float([5.0, 30.0, 70.0, 55.0], w, h).unwrap();
        canvas.draw_labelled_box(b, "-", c, 1);
        // Bar is 9 px tall directly above y=30; the '-' glyph row 3 is black text at y=21+1+3.
        assert_eq!(px(&data, stride, 5, 21)[..3], [255, 255, 255]);
        assert_eq!(px(&data, stride, 5, 20)[..3], [0, 0, 0]);
        assert_eq!(px(&data, stride, 6, 25)[..3], [0, 0, 0], "text pixel");
        assert_eq!(px(&data, stride, 6, 24)[..3], [255, 255, 255], "bar pixel");
    }

    #[test]
    fn boxes_are_clipped_and_never_write_out_of_bounds() {
        let (w, h) = (16usize, 8usize);
        let mut data = vec![0u8; w * h * 3];
        let layout = PixelLayout {
            bytes_per_pixel: 3,
            r: 2,
            g: 1,
            b: 0,
            a: None,
        };
        let mut canvas = Canvas::new(&mut data, w * 3, w, h, layout).unwrap();
        let b = PixelBox::from_float([-50.0, -50.0, 500.0, 500.0], w, h).unwrap();
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0, 0, 15, 7));
        canvas.draw_labelled_box(b, "a very long label 100%", Rgb(1, 2, 3), 3);
        assert_eq!(&data[..3], &[3, 2, 1], "BGR order respected");
        assert!(PixelBox::from_float([20.0, 0.0, 30.0, 5.0], w, h).is_none());
        assert!(PixelBox::from_float([f64::NAN, 0.0, 3.0, 5.0], w, h).is_none());
        assert!(Canvas::new(&mut [0u8; 10], 3, 4, 4, layout).is_none());
    }

    #[test]
    fn i420_fills_luma_and_the_chroma_it_touches() {
        let (w, h) = (8usize, 6usize);
        let mut y = vec![0u8; 10 * h];
        let mut u = vec![128u8; 5 * 3];
        let mut v = vec![128u8; 5 * 3];
        let white = Rgb(255, 255, 255);
        assert_eq!(white.to_yuv(), (235, 128, 128));
        let red = Rgb(255, 0, 0);
        let (ry, ru, rv) = red.to_yuv();
        assert_eq!((ry, ru, rv), (81, 90, 240));
        {
            let mut c = I420Canvas::new([&mut y, &mut u, &mut v], [10, 5, 5], w, h).unwrap();
            c.fill_rect(3, 1, 5, 3, red);
            c.fill_rect(-5, -5, 0, 100, white);
        }
        for row in 0..h {
            for col in 0..10 {
                let inside = (3..5).contains(&col) && (1..3).contains(&row);
                assert_eq!(
                    y[row * 10 + col],
                    if inside { ry } else { 0 },
                    "({col},{row})"
                );
            }
        }
        // Luma columns 3..5 and rows 1..3 touch chroma columns 1..3 and rows 0..2.
        for row in 0..3 {
            for col in 0..5 {
                let inside = (1..3).contains(&col) && (0..2).contains(&row);
                assert_eq!(u[row * 5 + col], if inside { ru } else { 128 });
                assert_eq!(v[row * 5 + col], if inside { rv } else { 128 });
            }
        }
        assert!(
            I420Canvas::new(
                [&mut [0u8; 47], &mut [0; 12], &mut [0; 12]],
                [8, 4, 4],
                w,
                h
            )
            .is_none()
        );
    }

    #[test]
    fn labels_and_colours() {
        assert_eq!(label_text("dog", 0.876), "dog 88%");
        assert_eq!(class_colour(0), class_colour(12));
        assert_ne!(class_colour(0), class_colour(1));
        assert_eq!(Rgb(255, 255, 0).contrasting(), Rgb(0, 0, 0));
        assert_eq!(Rgb(0, 0, 128).contrasting(), Rgb(255, 255, 255));
    }
}
