// SPDX-License-Identifier: MIT OR Apache-2.0

//! Which formats the element takes, and how their frames map to the model's planar RGB.
//!
//! The conversions are [`crate::convert`]'s, in float: GStreamer's own `VideoConverter` into
//! 16-bit RGB and back was measured first (`cargo run --release --example convert_bench`) and
//! loses up to several code values at 10 bits in a round trip, so it is not full precision for
//! 10-bit video. The output caps carry the input's colorimetry unchanged and no transfer
//! function is applied: HDR10 (PQ) and HLG are upscaled in their signal domain.

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef, VideoInfo};

use crate::convert::{self, AlphaSource, Layout, Planes, PlanesMut, YuvLayout, YuvMatrix};

/// Formats the element takes and gives, in order of preference.
pub const FORMATS: [VideoFormat; 18] = [
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::I420,
    VideoFormat::Nv12,
    VideoFormat::Nv21,
    VideoFormat::Y42b,
    VideoFormat::Y444,
    VideoFormat::P01010le,
    VideoFormat::I42010le,
    VideoFormat::I42210le,
    VideoFormat::Y44410le,
    VideoFormat::Y44416le,
];

pub fn layout_of(format: VideoFormat) -> Option<Layout> {
    let packed = |r, g, b, alpha, bpp| Layout::Packed {
        r,
        g,
        b,
        alpha,
        bpp,
    };
    let yuv = Layout::Yuv;
    Some(match format {
        VideoFormat::Rgb => packed(0, 1, 2, None, 3),
        VideoFormat::Bgr => packed(2, 1, 0, None, 3),
        VideoFormat::Rgba => packed(0, 1, 2, Some(3), 4),
        VideoFormat::Bgra => packed(2, 1, 0, Some(3), 4),
        VideoFormat::Rgbx => packed(0, 1, 2, None, 4),
        VideoFormat::Bgrx => packed(2, 1, 0, None, 4),
        VideoFormat::Argb => packed(1, 2, 3, Some(0), 4),
        VideoFormat::Abgr => packed(3, 2, 1, Some(0), 4),
        VideoFormat::I420 => yuv(YuvLayout::I420),
        VideoFormat::Nv12 => yuv(YuvLayout::NV12),
        VideoFormat::Nv21 => yuv(YuvLayout {
            vu: true,
            ..YuvLayout::NV12
        }),
        VideoFormat::Y42b => yuv(YuvLayout::planar(2, 1, 8)),
        VideoFormat::Y444 => yuv(YuvLayout::planar(1, 1, 8)),
        VideoFormat::P01010le => yuv(YuvLayout {
            semi_planar: true,
            msb: true,
            ..YuvLayout::planar(2, 2, 10)
        }),
        VideoFormat::I42010le => yuv(YuvLayout::planar(2, 2, 10)),
        VideoFormat::I42210le => yuv(YuvLayout::planar(2, 1, 10)),
        VideoFormat::Y44410le => yuv(YuvLayout::planar(1, 1, 10)),
        VideoFormat::Y44416le => yuv(YuvLayout::planar(1, 1, 16)),
        _ => return None,
    })
}

pub fn matrix_of(info: &VideoInfo) -> YuvMatrix {
    let c = info.colorimetry();
    let base = match c.matrix() {
        gst_video::VideoColorMatrix::Bt709 => YuvMatrix::BT709,
        gst_video::VideoColorMatrix::Bt601 => YuvMatrix::BT601,
        gst_video::VideoColorMatrix::Bt2020 => YuvMatrix::BT2020,
        // unknown: BT.709 for HD, BT.601 for SD, as videoconvert assumes
        _ if info.height() >= 720 => YuvMatrix::BT709,
        _ => YuvMatrix::BT601,
    };
    YuvMatrix {
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
        ..base
    }
}

/// A negotiated format's conversion to and from planar RGB.
#[derive(Debug, Clone, Copy)]
pub struct PixelPath {
    layout: Layout,
    matrix: YuvMatrix,
}

impl PixelPath {
    pub fn new(info: &VideoInfo) -> Result<Self, String> {
        let layout = layout_of(info.format())
            .ok_or_else(|| format!("unsupported format {:?}", info.format()))?;
        Ok(Self {
            layout,
            matrix: matrix_of(info),
        })
    }

    /// Converts `frame` into planar RGB `out` (`[3, H, W]` in [0, 1]); returns its alpha plane
    /// when the format has one.
    pub fn read_frame(
        &self,
        frame: &VideoFrameRef<&gst::BufferRef>,
        out: &mut [f32],
    ) -> Option<Vec<u8>> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let n = frame.n_planes() as usize;
        let planes = Planes {
            data: frame.planes_data().into_iter().take(n).collect(),
            strides: frame.plane_stride()[..n]
                .iter()
                .map(|s| *s as usize)
                .collect(),
        };
        convert::to_rgb_planar(self.layout, self.matrix, &planes, w, h, out);
        match self.layout {
            Layout::Packed {
                alpha: Some(off),
                bpp,
                ..
            } => {
                let mut a = Vec::with_capacity(w * h);
                for y in 0..h {
                    let row = &planes.data[0][y * planes.strides[0]..];
                    a.extend((0..w).map(|x| row[x * bpp + off]));
                }
                Some(a)
            }
            _ => None,
        }
    }

    /// Writes planar RGB `rgb` (`[3, sH, sW]`) into `dst`; `alpha` is the source frame's alpha
    /// plane (`width` x `height`), upscaled nearest-neighbour.
    pub fn write_frame(
        &self,
        rgb: &[f32],
        alpha: Option<(&[u8], usize, usize)>,
        dst: &mut VideoFrameRef<&mut gst::BufferRef>,
    ) {
        let (w, h) = (dst.width() as usize, dst.height() as usize);
        let n = dst.n_planes() as usize;
        let strides: Vec<usize> = dst.plane_stride()[..n]
            .iter()
            .map(|s| *s as usize)
            .collect();
        let alpha = alpha.map(|(data, width, height)| AlphaSource {
            data,
            stride: width,
            offset: 0,
            bpp: 1,
            width,
            height,
        });
        let mut planes = PlanesMut {
            data: dst.planes_data_mut().into_iter().take(n).collect(),
            strides,
        };
        convert::from_rgb_planar(self.layout, self.matrix, rgb, w, h, &mut planes, alpha);
    }
}
