// SPDX-License-Identifier: MIT OR Apache-2.0

//! Pixel conversion between 8-bit video layouts and the model's planar RGB float in [0, 1].
//!
//! RGB layouts convert exactly (v / 255 and back with rounding). YUV uses the BT.601 or BT.709
//! matrix in limited or full range, as the stream's colorimetry says; 4:2:0 chroma is replicated
//! on input and box-averaged on output. No GStreamer types here.

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
    /// Planar Y, U, V with 2x2-subsampled chroma.
    I420,
    /// Y plane + interleaved UV plane, 2x2-subsampled.
    Nv12,
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

    fn ranges(&self) -> (f32, f32, f32) {
        // (luma offset, luma scale, chroma scale) in 8-bit units
        if self.full_range {
            (0.0, 255.0, 255.0)
        } else {
            (16.0, 219.0, 224.0)
        }
    }

    #[inline]
    fn yuv_to_rgb(&self, y: u8, u: u8, v: u8) -> [f32; 3] {
        let (off, ys, cs) = self.ranges();
        let yf = (y as f32 - off) / ys;
        let cb = (u as f32 - 128.0) / cs;
        let cr = (v as f32 - 128.0) / cs;
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

    #[inline]
    fn y_byte(&self, y: f32) -> u8 {
        let (off, ys, _) = self.ranges();
        to_byte(off + ys * y)
    }

    #[inline]
    fn chroma_bytes(&self, r: f32, g: f32, b: f32) -> (u8, u8) {
        let (_, _, cs) = self.ranges();
        let y = self.luma(r, g, b);
        let cb = (b - y) / (2.0 * (1.0 - self.kb));
        let cr = (r - y) / (2.0 * (1.0 - self.kr));
        (to_byte(128.0 + cs * cb), to_byte(128.0 + cs * cr))
    }
}

#[inline]
fn to_byte(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
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
        Layout::I420 | Layout::Nv12 => {
            for y in 0..height {
                let yrow = &src.data[0][y * src.strides[0]..];
                let cy = y / 2;
                for (x, &luma) in yrow[..width].iter().enumerate() {
                    let cx = x / 2;
                    let (u, v) = if layout == Layout::I420 {
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
                let row = &mut dst.data[0][y * stride..];
                for x in 0..width {
                    let i = y * width + x;
                    let p = &mut row[x * bpp..x * bpp + bpp];
                    p[r] = unit_to_byte(rp[i]);
                    p[g] = unit_to_byte(gp[i]);
                    p[b] = unit_to_byte(bp[i]);
                    if bpp == 4 {
                        p[fourth] = match (&alpha, a_off) {
                            (Some(a), Some(_)) => a.sample(x, y, width, height),
                            _ => 255,
                        };
                    }
                }
            }
        }
        Layout::I420 | Layout::Nv12 => {
            let ys = dst.strides[0];
            for y in 0..height {
                let row = &mut dst.data[0][y * ys..y * ys + width];
                for (x, out) in row.iter_mut().enumerate() {
                    let i = y * width + x;
                    *out = matrix.y_byte(matrix.luma(rp[i], gp[i], bp[i]));
                }
            }
            let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
            for cy in 0..ch {
                for cx in 0..cw {
                    let (mut r, mut g, mut b, mut cnt) = (0.0, 0.0, 0.0, 0.0);
                    for yy in 2 * cy..(2 * cy + 2).min(height) {
                        for xx in 2 * cx..(2 * cx + 2).min(width) {
                            let i = yy * width + xx;
                            r += rp[i];
                            g += gp[i];
                            b += bp[i];
                            cnt += 1.0;
                        }
                    }
                    let (u, v) = matrix.chroma_bytes(r / cnt, g / cnt, b / cnt);
                    if layout == Layout::I420 {
                        dst.data[1][cy * dst.strides[1] + cx] = u;
                        dst.data[2][cy * dst.strides[2] + cx] = v;
                    } else {
                        let o = cy * dst.strides[1] + 2 * cx;
                        dst.data[1][o] = u;
                        dst.data[1][o + 1] = v;
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
