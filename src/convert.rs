// SPDX-License-Identifier: MIT OR Apache-2.0

//! Pixel conversion between video layouts and the model's planar RGB float in [0, 1].
//!
//! RGB layouts convert exactly (v / 255 and back with rounding). Y'CbCr at 8, 10 or 16 bits
//! (planar or semi-planar, 4:2:0, 4:2:2 or 4:4:4) uses the stream's matrix (BT.601, BT.709 or
//! BT.2020) in limited or full range, in float: a round trip is exact to the rounding of the
//! code values at every depth. Subsampled chroma is replicated on input and box-averaged on
//! output. No GStreamer types here.

/// Supported memory layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Interleaved 8-bit components: byte offsets of R, G, B (and alpha) and bytes per pixel.
    Packed {
        r: usize,
        g: usize,
        b: usize,
        alpha: Option<usize>,
        bpp: usize,
    },
    /// Y'CbCr, planar or semi-planar.
    Yuv(YuvLayout),
}

/// How a Y'CbCr frame is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvLayout {
    /// Chroma in one interleaved plane (NV12, P010) rather than two.
    pub semi_planar: bool,
    /// V before U in the interleaved plane (NV21).
    pub vu: bool,
    /// Chroma subsampling: 2, 2 for 4:2:0; 2, 1 for 4:2:2; 1, 1 for 4:4:4.
    pub sub_x: usize,
    pub sub_y: usize,
    /// Bits per code value: 8, 10 or 16.
    pub depth: u32,
    /// Samples are 16-bit little-endian words (depth above 8).
    pub wide: bool,
    /// The code value sits in the top bits of its word (P010).
    pub msb: bool,
}

impl YuvLayout {
    pub const I420: Self = Self::planar(2, 2, 8);
    pub const NV12: Self = Self {
        semi_planar: true,
        ..Self::I420
    };

    /// Planar with the given subsampling and depth (LSB-aligned words above 8 bits).
    pub const fn planar(sub_x: usize, sub_y: usize, depth: u32) -> Self {
        Self {
            semi_planar: false,
            vu: false,
            sub_x,
            sub_y,
            depth,
            wide: depth > 8,
            msb: false,
        }
    }

    #[inline]
    fn read(&self, plane: &[u8], i: usize) -> f32 {
        if self.wide {
            let w = u16::from_le_bytes([plane[2 * i], plane[2 * i + 1]]);
            (if self.msb { w >> (16 - self.depth) } else { w }) as f32
        } else {
            plane[i] as f32
        }
    }

    #[inline]
    fn write(&self, plane: &mut [u8], i: usize, v: f32) {
        let q = round_code(v).min(((1u32 << self.depth) - 1) as u16);
        if self.wide {
            let w = if self.msb { q << (16 - self.depth) } else { q };
            plane[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
        } else {
            plane[i] = q as u8;
        }
    }
}

/// Y'CbCr coefficients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvMatrix {
    pub kr: f32,
    pub kb: f32,
    pub full_range: bool,
}

impl YuvMatrix {
    pub const BT601: Self = Self {
        kr: 0.299,
        kb: 0.114,
        full_range: false,
    };
    pub const BT709: Self = Self {
        kr: 0.2126,
        kb: 0.0722,
        full_range: false,
    };
    pub const BT2020: Self = Self {
        kr: 0.2627,
        kb: 0.0593,
        full_range: false,
    };

    /// (luma offset, luma scale, chroma scale, chroma midpoint) in code values at `depth` bits
    /// (BT.2100 / BT.709: the 8-bit ranges times 2^(depth-8) for limited range).
    fn ranges(&self, depth: u32) -> (f32, f32, f32, f32) {
        let k = (1u32 << (depth - 8)) as f32;
        let mid = 128.0 * k;
        if self.full_range {
            let max = ((1u32 << depth) - 1) as f32;
            (0.0, max, max, mid)
        } else {
            (16.0 * k, 219.0 * k, 224.0 * k, mid)
        }
    }

    #[inline]
    fn yuv_to_rgb(&self, y: u8, u: u8, v: u8) -> [f32; 3] {
        self.codes_to_rgb(y as f32, u as f32, v as f32, 8)
    }

    #[inline]
    fn codes_to_rgb(&self, y: f32, u: f32, v: f32, depth: u32) -> [f32; 3] {
        let (off, ys, cs, mid) = self.ranges(depth);
        let yf = (y - off) / ys;
        let cb = (u - mid) / cs;
        let cr = (v - mid) / cs;
        let kg = 1.0 - self.kr - self.kb;
        let r = yf + 2.0 * (1.0 - self.kr) * cr;
        let b = yf + 2.0 * (1.0 - self.kb) * cb;
        let g = (yf - self.kr * r - self.kb * b) / kg;
        [r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0)]
    }

    #[inline]
    fn luma(&self, r: f32, g: f32, b: f32) -> f32 {
        self.kr * r + (1.0 - self.kr - self.kb) * g + self.kb * b
    }

    #[cfg(test)]
    fn y_byte(&self, y: f32) -> u8 {
        to_byte(self.y_code(y, 8))
    }

    #[cfg(test)]
    fn chroma_bytes(&self, r: f32, g: f32, b: f32) -> (u8, u8) {
        let (u, v) = self.chroma_codes(r, g, b, 8);
        (to_byte(u), to_byte(v))
    }

    /// Luma code value (unrounded) for luma `y` in [0, 1].
    #[inline]
    fn y_code(&self, y: f32, depth: u32) -> f32 {
        let (off, ys, _, _) = self.ranges(depth);
        off + ys * y
    }

    /// Cb, Cr code values (unrounded) for an RGB colour.
    #[inline]
    fn chroma_codes(&self, r: f32, g: f32, b: f32, depth: u32) -> (f32, f32) {
        let (_, _, cs, mid) = self.ranges(depth);
        let y = self.luma(r, g, b);
        let cb = (b - y) / (2.0 * (1.0 - self.kb));
        let cr = (r - y) / (2.0 * (1.0 - self.kr));
        (mid + cs * cb, mid + cs * cr)
    }
}

#[inline]
fn to_byte(v: f32) -> u8 {
    // `+ 0.5` then a saturating cast (NaN and negatives to 0) is `round().clamp()` for these
    // values without the libm `roundf` call that baseline x86-64 makes of `round`, which took
    // most of the time of writing an output frame
    (v + 0.5) as u8
}

#[inline]
fn round_code(v: f32) -> u16 {
    (v + 0.5) as u16
}

#[inline]
fn unit_to_byte(v: f32) -> u8 {
    to_byte(v * 255.0)
}

/// One frame's planes (up to 3) with their strides in bytes.
pub struct Planes<'a> {
    pub data: Vec<&'a [u8]>,
    pub strides: Vec<usize>,
}

pub struct PlanesMut<'a> {
    pub data: Vec<&'a mut [u8]>,
    pub strides: Vec<usize>,
}

/// Converts a `width` x `height` frame into planar RGB `out` (len 3*w*h, [R plane, G, B]).
pub fn to_rgb_planar(
    layout: Layout,
    matrix: YuvMatrix,
    src: &Planes,
    width: usize,
    height: usize,
    out: &mut [f32],
) {
    let n = width * height;
    assert!(out.len() >= 3 * n);
    let (rp, rest) = out.split_at_mut(n);
    let (gp, bp) = rest.split_at_mut(n);
    const INV: f32 = 1.0 / 255.0;
    match layout {
        Layout::Packed { r, g, b, bpp, .. } => {
            for y in 0..height {
                let row = &src.data[0][y * src.strides[0]..];
                for x in 0..width {
                    let p = &row[x * bpp..x * bpp + bpp];
                    let i = y * width + x;
                    rp[i] = p[r] as f32 * INV;
                    gp[i] = p[g] as f32 * INV;
                    bp[i] = p[b] as f32 * INV;
                }
            }
        }
        Layout::Yuv(l) if l == YuvLayout::I420 || l == YuvLayout::NV12 => {
            // the common 8-bit 4:2:0 layouts, kept on their own fast loop
            for y in 0..height {
                let yrow = &src.data[0][y * src.strides[0]..];
                let cy = y / 2;
                for (x, &luma) in yrow[..width].iter().enumerate() {
                    let cx = x / 2;
                    let (u, v) = if !l.semi_planar {
                        (
                            src.data[1][cy * src.strides[1] + cx],
                            src.data[2][cy * src.strides[2] + cx],
                        )
                    } else {
                        let o = cy * src.strides[1] + 2 * cx;
                        (src.data[1][o], src.data[1][o + 1])
                    };
                    let [r, g, b] = matrix.yuv_to_rgb(luma, u, v);
                    let i = y * width + x;
                    rp[i] = r;
                    gp[i] = g;
                    bp[i] = b;
                }
            }
        }
        Layout::Yuv(l) => {
            let bps = if l.wide { 2 } else { 1 };
            for y in 0..height {
                let yrow = &src.data[0][y * src.strides[0]..];
                let cy = y / l.sub_y;
                for x in 0..width {
                    let cx = x / l.sub_x;
                    let (u, v) = if l.semi_planar {
                        let row = &src.data[1][cy * src.strides[1]..];
                        let (a, b) = (l.read(row, 2 * cx), l.read(row, 2 * cx + 1));
                        if l.vu { (b, a) } else { (a, b) }
                    } else {
                        (
                            l.read(&src.data[1][cy * src.strides[1]..], cx),
                            l.read(&src.data[2][cy * src.strides[2]..], cx),
                        )
                    };
                    let [r, g, b] = matrix.codes_to_rgb(l.read(yrow, x), u, v, l.depth);
                    let i = y * width + x;
                    rp[i] = r;
                    gp[i] = g;
                    bp[i] = b;
                }
                debug_assert!(yrow.len() >= width * bps);
            }
        }
    }
}

/// Writes planar RGB `rgb` (len 3*w*h) into `dst`. For packed layouts with alpha, `alpha` gives
/// the source frame (plane 0, stride, byte offset, bpp, source width/height) to upscale the
/// alpha channel from (nearest neighbour); without it alpha is opaque.
pub fn from_rgb_planar(
    layout: Layout,
    matrix: YuvMatrix,
    rgb: &[f32],
    width: usize,
    height: usize,
    dst: &mut PlanesMut,
    alpha: Option<AlphaSource>,
) {
    let n = width * height;
    assert!(rgb.len() >= 3 * n);
    let (rp, gp, bp) = (&rgb[..n], &rgb[n..2 * n], &rgb[2 * n..3 * n]);
    match layout {
        Layout::Packed {
            r,
            g,
            b,
            alpha: a_off,
            bpp,
        } => {
            let stride = dst.strides[0];
            // the byte that is neither R, G nor B: alpha, or the padding of xRGB layouts
            let fourth = a_off
                .unwrap_or_else(|| (0..4).find(|k| *k != r && *k != g && *k != b).unwrap_or(3));
            for y in 0..height {
                let row = &mut dst.data[0][y * stride..y * stride + width * bpp];
                let span = y * width..(y + 1) * width;
                let pixels = row.chunks_exact_mut(bpp).zip(&rp[span.clone()]);
                for ((p, &rv), (&gv, &bv)) in pixels.zip(gp[span.clone()].iter().zip(&bp[span])) {
                    p[r] = unit_to_byte(rv);
                    p[g] = unit_to_byte(gv);
                    p[b] = unit_to_byte(bv);
                }
                if bpp == 4 {
                    for (x, p) in row.chunks_exact_mut(4).enumerate() {
                        p[fourth] = match (&alpha, a_off) {
                            (Some(a), Some(_)) => a.sample(x, y, width, height),
                            _ => 255,
                        };
                    }
                }
            }
        }
        Layout::Yuv(l) => {
            let ys = dst.strides[0];
            for y in 0..height {
                let row = &mut dst.data[0][y * ys..];
                for x in 0..width {
                    let i = y * width + x;
                    l.write(
                        row,
                        x,
                        matrix.y_code(matrix.luma(rp[i], gp[i], bp[i]), l.depth),
                    );
                }
            }
            let (cw, ch) = (width.div_ceil(l.sub_x), height.div_ceil(l.sub_y));
            for cy in 0..ch {
                for cx in 0..cw {
                    let (mut r, mut g, mut b, mut cnt) = (0.0, 0.0, 0.0, 0.0);
                    for yy in l.sub_y * cy..(l.sub_y * cy + l.sub_y).min(height) {
                        for xx in l.sub_x * cx..(l.sub_x * cx + l.sub_x).min(width) {
                            let i = yy * width + xx;
                            r += rp[i];
                            g += gp[i];
                            b += bp[i];
                            cnt += 1.0;
                        }
                    }
                    let (u, v) = matrix.chroma_codes(r / cnt, g / cnt, b / cnt, l.depth);
                    if l.semi_planar {
                        let row = &mut dst.data[1][cy * dst.strides[1]..];
                        let (a, b) = if l.vu { (v, u) } else { (u, v) };
                        l.write(row, 2 * cx, a);
                        l.write(row, 2 * cx + 1, b);
                    } else {
                        l.write(&mut dst.data[1][cy * dst.strides[1]..], cx, u);
                        l.write(&mut dst.data[2][cy * dst.strides[2]..], cx, v);
                    }
                }
            }
        }
    }
}

/// Bilinear `scale`x upscale of planar RGB `[3, H, W]` into `out` (`[3, sH, sW]`), pixel centres
/// aligned: the cheap stand-in for a frame the model has no time for.
pub fn upscale_bilinear(rgb: &[f32], width: usize, height: usize, scale: usize, out: &mut [f32]) {
    let (ow, oh) = (width * scale, height * scale);
    assert!(rgb.len() >= 3 * width * height && out.len() >= 3 * ow * oh);
    let inv = 1.0 / scale as f32;
    // source coordinate and weight for each output column / row
    let taps = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|o| {
                let x = ((o as f32 + 0.5) * inv - 0.5).clamp(0.0, (n_in - 1) as f32);
                let x0 = x.floor() as usize;
                (x0, (x0 + 1).min(n_in - 1), x - x0 as f32)
            })
            .collect()
    };
    let (cols, rows) = (taps(ow, width), taps(oh, height));
    for c in 0..3 {
        let src = &rgb[c * width * height..(c + 1) * width * height];
        let dst = &mut out[c * ow * oh..(c + 1) * ow * oh];
        for (oy, &(y0, y1, fy)) in rows.iter().enumerate() {
            let (r0, r1) = (&src[y0 * width..][..width], &src[y1 * width..][..width]);
            let drow = &mut dst[oy * ow..][..ow];
            for (d, &(x0, x1, fx)) in drow.iter_mut().zip(&cols) {
                let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
                let bot = r1[x0] + (r1[x1] - r1[x0]) * fx;
                *d = top + (bot - top) * fy;
            }
        }
    }
}

/// The alpha channel of a packed source frame, sampled nearest-neighbour at the output size.
pub struct AlphaSource<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub offset: usize,
    pub bpp: usize,
    pub width: usize,
    pub height: usize,
}

impl AlphaSource<'_> {
    #[inline]
    fn sample(&self, x: usize, y: usize, out_w: usize, out_h: usize) -> u8 {
        let sx = (x * self.width / out_w).min(self.width - 1);
        let sy = (y * self.height / out_h).min(self.height - 1);
        self.data[sy * self.stride + sx * self.bpp + self.offset]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_rounding_matches_round_and_clamp() {
        // a sweep finer than a code value, over and beyond the range, NaN and infinities
        let mut vals: Vec<f32> = (-4096..300 * 1024).map(|k| k as f32 / 1024.0).collect();
        vals.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e9, -1e9]);
        for v in vals {
            assert_eq!(to_byte(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
            assert_eq!(
                round_code(v).min(1023),
                v.round().clamp(0.0, 1023.0) as u16,
                "{v}"
            );
        }
    }

    #[test]
    fn rgb_roundtrip_is_exact() {
        let (w, h) = (5, 3);
        let layout = Layout::Packed {
            r: 2,
            g: 1,
            b: 0,
            alpha: None,
            bpp: 4,
        };
        let src: Vec<u8> = (0..w * h * 4).map(|i| (i * 37 % 256) as u8).collect();
        let mut rgb = vec![0.0; 3 * w * h];
        let planes = Planes {
            data: vec![&src],
            strides: vec![w * 4],
        };
        to_rgb_planar(layout, YuvMatrix::BT601, &planes, w, h, &mut rgb);
        let mut out = vec![0u8; w * h * 4];
        let mut dst = PlanesMut {
            data: vec![&mut out],
            strides: vec![w * 4],
        };
        from_rgb_planar(layout, YuvMatrix::BT601, &rgb, w, h, &mut dst, None);
        for i in 0..w * h {
            assert_eq!(&out[i * 4..i * 4 + 3], &src[i * 4..i * 4 + 3]);
            assert_eq!(out[i * 4 + 3], 255);
        }
    }

    /// Planar RGB through `layout` and back, on a colour ramp; returns the worst error in code
    /// values of the RGB side scaled to `depth` bits.
    fn yuv_round_trip(l: YuvLayout, m: YuvMatrix) -> f32 {
        let (w, h) = (8, 6);
        let n = w * h;
        let mut rgb = vec![0.0f32; 3 * n];
        for i in 0..n {
            // a smooth ramp: chroma subsampling loses nothing where neighbours agree
            let v = (i / (w * 2)) as f32 / 3.0;
            rgb[i] = 0.1 + 0.8 * v;
            rgb[n + i] = 0.9 - 0.7 * v;
            rgb[2 * n + i] = 0.3 + 0.4 * v;
        }
        let bps = if l.wide { 2 } else { 1 };
        let (cw, ch) = (w.div_ceil(l.sub_x), h.div_ceil(l.sub_y));
        let mut y_plane = vec![0u8; w * h * bps];
        let cstride = if l.semi_planar {
            2 * cw * bps
        } else {
            cw * bps
        };
        let mut u_plane = vec![0u8; cstride * ch];
        let mut v_plane = vec![0u8; cstride * ch];
        {
            let mut data: Vec<&mut [u8]> = vec![&mut y_plane, &mut u_plane];
            let mut strides = vec![w * bps, cstride];
            if !l.semi_planar {
                data.push(&mut v_plane);
                strides.push(cstride);
            }
            let mut dst = PlanesMut { data, strides };
            from_rgb_planar(Layout::Yuv(l), m, &rgb, w, h, &mut dst, None);
        }
        let mut back = vec![0.0f32; 3 * n];
        let mut data: Vec<&[u8]> = vec![&y_plane, &u_plane];
        let mut strides = vec![w * bps, cstride];
        if !l.semi_planar {
            data.push(&v_plane);
            strides.push(cstride);
        }
        to_rgb_planar(
            Layout::Yuv(l),
            m,
            &Planes { data, strides },
            w,
            h,
            &mut back,
        );
        let max = ((1u32 << l.depth) - 1) as f32;
        rgb.iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs() * max)
            .fold(0.0, f32::max)
    }

    #[test]
    fn deep_yuv_round_trips_to_the_rounding_of_its_codes() {
        let p010 = YuvLayout {
            semi_planar: true,
            msb: true,
            ..YuvLayout::planar(2, 2, 10)
        };
        let nv21 = YuvLayout {
            vu: true,
            ..YuvLayout::NV12
        };
        for (l, name) in [
            (p010, "P010"),
            (YuvLayout::planar(2, 2, 10), "I420_10LE"),
            (YuvLayout::planar(2, 1, 10), "I422_10LE"),
            (YuvLayout::planar(1, 1, 10), "Y444_10LE"),
            (YuvLayout::planar(1, 1, 16), "Y444_16LE"),
            (YuvLayout::I420, "I420"),
            (nv21, "NV21"),
        ] {
            for m in [
                YuvMatrix::BT709,
                YuvMatrix::BT2020,
                YuvMatrix {
                    full_range: true,
                    ..YuvMatrix::BT601
                },
            ] {
                let err = yuv_round_trip(l, m);
                // limited range has fewer codes than RGB: within 1.5 codes of its depth
                assert!(err <= 1.5, "{name} {m:?}: {err} codes");
            }
        }
    }

    #[test]
    fn bilinear_keeps_flat_colour_and_interpolates() {
        let (w, h) = (3, 2);
        let mut rgb = vec![0.25f32; 3 * w * h];
        // red plane: a horizontal ramp 0, 0.5, 1
        for y in 0..h {
            for x in 0..w {
                rgb[y * w + x] = x as f32 * 0.5;
            }
        }
        let mut out = vec![0.0; 3 * w * h * 4];
        upscale_bilinear(&rgb, w, h, 2, &mut out);
        let (ow, oh) = (6, 4);
        assert!(out[ow * oh..].iter().all(|v| (*v - 0.25).abs() < 1e-6));
        let row: Vec<f32> = out[..ow].to_vec();
        let expect = [0.0, 0.125, 0.375, 0.625, 0.875, 1.0];
        for (a, b) in row.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{row:?}");
        }
    }

    #[test]
    fn yuv_matrices_roundtrip_grey_and_colours() {
        for m in [
            YuvMatrix::BT601,
            YuvMatrix::BT709,
            YuvMatrix {
                full_range: true,
                ..YuvMatrix::BT709
            },
        ] {
            for rgb in [
                [0.0, 0.0, 0.0],
                [1.0, 1.0, 1.0],
                [0.8, 0.2, 0.1],
                [0.1, 0.6, 0.9],
            ] {
                let y = m.y_byte(m.luma(rgb[0], rgb[1], rgb[2]));
                let (u, v) = m.chroma_bytes(rgb[0], rgb[1], rgb[2]);
                let back = m.yuv_to_rgb(y, u, v);
                for c in 0..3 {
                    assert!(
                        (back[c] - rgb[c]).abs() < 0.012,
                        "{m:?} {rgb:?} -> {back:?}"
                    );
                }
            }
        }
        // BT.601 limited-range white and black
        assert_eq!(YuvMatrix::BT601.y_byte(1.0), 235);
        assert_eq!(YuvMatrix::BT601.y_byte(0.0), 16);
    }
}
