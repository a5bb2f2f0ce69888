// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's pixel conversion (`gstmstgansr::convert`, float) against GStreamer's
//! `VideoConverter` through 16-bit ARGB64, for the formats where the choice matters: time per
//! frame (to planar float RGB and back) and the worst round-trip error in code values.
//!
//!     cargo run --release --example convert_bench -- [--width 1920 --height 1080] [--rounds 5]

use std::time::Instant;

use gst_video::prelude::*;
use gstmstgansr::convert::{self, Layout, Planes, PlanesMut, YuvLayout, YuvMatrix};

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: convert_bench [--width 1920] [--height 1080] [--rounds 5]
The element's pixel conversion against GStreamer's VideoConverter: time per frame, worst error.";

fn layout(format: gst_video::VideoFormat) -> YuvLayout {
    match format {
        gst_video::VideoFormat::I420 => YuvLayout::I420,
        gst_video::VideoFormat::P01010le => YuvLayout {
            semi_planar: true,
            msb: true,
            ..YuvLayout::planar(2, 2, 10)
        },
        gst_video::VideoFormat::Y44410le => YuvLayout::planar(1, 1, 10),
        other => panic!("not benchmarked: {other:?}"),
    }
}

/// A natural-looking test frame: smooth gradients with some texture, in `info`'s format
/// (written through GStreamer, from 16-bit RGB).
fn frame(info: &gst_video::VideoInfo) -> gst::Buffer {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let rgb = gst_video::VideoInfo::builder(gst_video::VideoFormat::Argb64, w as u32, h as u32)
        .fps(info.fps())
        .build()
        .unwrap();
    let mut src = gst::Buffer::with_size(rgb.size()).unwrap();
    {
        let mut vf =
            gst_video::VideoFrameRef::from_buffer_ref_writable(src.get_mut().unwrap(), &rgb)
                .unwrap();
        let stride = vf.plane_stride()[0] as usize;
        let d = vf.plane_data_mut(0).unwrap();
        for y in 0..h {
            for x in 0..w {
                for c in 0..4usize {
                    let v = if c == 0 {
                        1.0
                    } else {
                        0.5 + 0.35
                            * ((x as f32 * 0.013 + c as f32).sin() * (y as f32 * 0.021).cos())
                            + 0.1 * ((x * 7 + y * 13 + c) as f32 * 0.37).sin()
                    };
                    let q = (v.clamp(0.0, 1.0) * 65535.0) as u16;
                    d[y * stride + x * 8 + 2 * c..][..2].copy_from_slice(&q.to_ne_bytes());
                }
            }
        }
    }
    let mut out = gst::Buffer::with_size(info.size()).unwrap();
    {
        let conv = gst_video::VideoConverter::new(&rgb, info, None).unwrap();
        let sf = gst_video::VideoFrameRef::from_buffer_ref_readable(src.as_ref(), &rgb).unwrap();
        let mut df =
            gst_video::VideoFrameRef::from_buffer_ref_writable(out.get_mut().unwrap(), info)
                .unwrap();
        conv.frame_ref(&sf, &mut df);
    }
    out
}

/// Worst difference in code values between two frames of `info`.
fn worst_codes(info: &gst_video::VideoInfo, a: &gst::Buffer, b: &gst::Buffer) -> u32 {
    let fa = gst_video::VideoFrameRef::from_buffer_ref_readable(a.as_ref(), info).unwrap();
    let fb = gst_video::VideoFrameRef::from_buffer_ref_readable(b.as_ref(), info).unwrap();
    let wide = info.format_info().depth()[0] > 8;
    let shift = if info.format() == gst_video::VideoFormat::P01010le {
        6
    } else {
        0
    };
    let mut worst = 0;
    for p in 0..fa.n_planes() {
        let (da, db) = (fa.plane_data(p).unwrap(), fb.plane_data(p).unwrap());
        if wide {
            for (x, y) in da.chunks_exact(2).zip(db.chunks_exact(2)) {
                let (x, y) = (
                    u16::from_le_bytes([x[0], x[1]]) >> shift,
                    u16::from_le_bytes([y[0], y[1]]) >> shift,
                );
                worst = worst.max(x.abs_diff(y) as u32);
            }
        } else {
            for (x, y) in da.iter().zip(db) {
                worst = worst.max(x.abs_diff(*y) as u32);
            }
        }
    }
    worst
}

fn ours(info: &gst_video::VideoInfo, src: &gst::Buffer, rgb: &mut [f32]) -> gst::Buffer {
    let l = Layout::Yuv(layout(info.format()));
    let m = YuvMatrix::BT709;
    let (w, h) = (info.width() as usize, info.height() as usize);
    {
        let f = gst_video::VideoFrameRef::from_buffer_ref_readable(src.as_ref(), info).unwrap();
        let n = f.n_planes() as usize;
        let planes = Planes {
            data: f.planes_data().into_iter().take(n).collect(),
            strides: f.plane_stride()[..n].iter().map(|s| *s as usize).collect(),
        };
        convert::to_rgb_planar(l, m, &planes, w, h, rgb);
    }
    let mut out = gst::Buffer::with_size(info.size()).unwrap();
    {
        let mut f =
            gst_video::VideoFrameRef::from_buffer_ref_writable(out.get_mut().unwrap(), info)
                .unwrap();
        let n = f.n_planes() as usize;
        let strides = f.plane_stride()[..n].iter().map(|s| *s as usize).collect();
        let mut planes = PlanesMut {
            data: f.planes_data_mut().into_iter().take(n).collect(),
            strides,
        };
        convert::from_rgb_planar(l, m, rgb, w, h, &mut planes, None);
    }
    out
}

struct Gst {
    to: gst_video::VideoConverter,
    back: gst_video::VideoConverter,
    rgb: gst_video::VideoInfo,
    mid: gst::Buffer,
}

fn gst_path(
    g: &mut Gst,
    info: &gst_video::VideoInfo,
    src: &gst::Buffer,
    rgb: &mut [f32],
) -> gst::Buffer {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let n = w * h;
    {
        let sf = gst_video::VideoFrameRef::from_buffer_ref_readable(src.as_ref(), info).unwrap();
        let mut mf =
            gst_video::VideoFrameRef::from_buffer_ref_writable(g.mid.get_mut().unwrap(), &g.rgb)
                .unwrap();
        g.to.frame_ref(&sf, &mut mf);
        let stride = mf.plane_stride()[0] as usize;
        let d = mf.plane_data(0).unwrap();
        for y in 0..h {
            for (x, px) in d[y * stride..][..w * 8].chunks_exact(8).enumerate() {
                for c in 0..3 {
                    rgb[c * n + y * w + x] =
                        u16::from_ne_bytes([px[2 + 2 * c], px[3 + 2 * c]]) as f32 / 65535.0;
                }
            }
        }
    }
    {
        let mut mf =
            gst_video::VideoFrameRef::from_buffer_ref_writable(g.mid.get_mut().unwrap(), &g.rgb)
                .unwrap();
        let stride = mf.plane_stride()[0] as usize;
        let d = mf.plane_data_mut(0).unwrap();
        for y in 0..h {
            for (x, px) in d[y * stride..][..w * 8].chunks_exact_mut(8).enumerate() {
                px[..2].copy_from_slice(&u16::MAX.to_ne_bytes());
                for c in 0..3 {
                    let q = (rgb[c * n + y * w + x] * 65535.0)
                        .round()
                        .clamp(0.0, 65535.0) as u16;
                    px[2 + 2 * c..4 + 2 * c].copy_from_slice(&q.to_ne_bytes());
                }
            }
        }
    }
    let mut out = gst::Buffer::with_size(info.size()).unwrap();
    {
        let mf =
            gst_video::VideoFrameRef::from_buffer_ref_readable(g.mid.as_ref(), &g.rgb).unwrap();
        let mut df =
            gst_video::VideoFrameRef::from_buffer_ref_writable(out.get_mut().unwrap(), info)
                .unwrap();
        g.back.frame_ref(&mf, &mut df);
    }
    out
}

fn main() {
    cli::help(USAGE);
    let (mut w, mut h, mut rounds) = (1920u32, 1080u32, 5usize);
    let args = cli::pairs().unwrap_or_else(|e| cli::usage_error(USAGE, e));
    for (k, v) in args {
        let v: usize = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e));
        match k.as_str() {
            "--width" if v > 0 => w = v as u32,
            "--height" if v > 0 => h = v as u32,
            "--rounds" if v > 0 => rounds = v,
            _ => cli::usage_error(USAGE, format!("unknown option or zero value: {k} {v}")),
        }
    }
    gst::init().unwrap();
    println!(
        "{w}x{h}, BT.709 limited range, one frame to planar float RGB and back, {rounds} rounds alternated, medians"
    );
    println!(
        "| format | mstgansr convert: ms / worst codes | GStreamer VideoConverter via ARGB64: ms / worst codes |"
    );
    println!("|---|---|---|");
    for format in [
        gst_video::VideoFormat::I420,
        gst_video::VideoFormat::P01010le,
        gst_video::VideoFormat::Y44410le,
    ] {
        let info = gst_video::VideoInfo::builder(format, w, h)
            .fps(gst::Fraction::new(25, 1))
            .colorimetry(&"bt709".parse().unwrap())
            .build()
            .unwrap();
        let rgb_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Argb64, w, h)
            .fps(gst::Fraction::new(25, 1))
            .build()
            .unwrap();
        let mut cfg = gst_video::VideoConverterConfig::new();
        cfg.set_dither_method(gst_video::VideoDitherMethod::None);
        cfg.set_threads(2);
        let mut g = Gst {
            to: gst_video::VideoConverter::new(&info, &rgb_info, Some(cfg.clone())).unwrap(),
            back: gst_video::VideoConverter::new(&rgb_info, &info, Some(cfg)).unwrap(),
            mid: gst::Buffer::with_size(rgb_info.size()).unwrap(),
            rgb: rgb_info,
        };
        let src = frame(&info);
        let mut rgb = vec![0.0f32; 3 * (w * h) as usize];
        let (mut t_ours, mut t_gst) = (vec![], vec![]);
        let (mut e_ours, mut e_gst) = (0, 0);
        for _ in 0..rounds {
            let t = Instant::now();
            let a = ours(&info, &src, &mut rgb);
            t_ours.push(t.elapsed().as_secs_f64() * 1e3);
            e_ours = e_ours.max(worst_codes(&info, &src, &a));
            let t = Instant::now();
            let b = gst_path(&mut g, &info, &src, &mut rgb);
            t_gst.push(t.elapsed().as_secs_f64() * 1e3);
            e_gst = e_gst.max(worst_codes(&info, &src, &b));
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {} | {:.1} / {e_ours} | {:.1} / {e_gst} |",
            format.to_str(),
            med(t_ours),
            med(t_gst)
        );
    }
}
