// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frames of any size in bounded memory (tiles, memory limits) and batching.

mod common;

use gst::prelude::*;
use gst_video::prelude::*;

use common::*;

/// A smooth moving RGB picture, frame `t`.
fn smooth(info: &gst_video::VideoInfo, t: u64) -> gst::Buffer {
    let tf = t as f32;
    rgb_frame(info, gst::ClockTime::from_mseconds(40 * t), |x, y, c| {
        127.5
            + 90.0
                * ((x * 0.23 + y * 0.11 + tf * 0.4 + c as f32).sin() * (y * 0.07 - tf * 0.2).cos())
    })
}

/// Upscales `n` frames of `w`x`h` through the x4 T=5 fixture with extra properties; returns
/// the outputs' bytes and the element.
fn upscale(
    w: u32,
    h: u32,
    n: u64,
    props: &[(&str, u32)],
    cache: bool,
) -> (Vec<Vec<u8>>, gst::Element) {
    upscale_with("fixture-x4-t5.onnx", w, h, n, props, cache)
}

/// As [`upscale`] with another model (a path relative to `tests/fixtures`).
fn upscale_with(
    model: &str,
    w: u32,
    h: u32,
    n: u64,
    props: &[(&str, u32)],
    cache: bool,
) -> (Vec<Vec<u8>>, gst::Element) {
    let mut hs = harness_cache(model, 4, cache);
    let el = hs.element().unwrap();
    // properties that load the model take effect at start: restart with them
    el.set_state(gst::State::Null).unwrap();
    for (k, v) in props {
        if *k == "max-memory" {
            el.set_property(k, *v as u64);
        } else {
            el.set_property(k, *v);
        }
    }
    el.set_state(gst::State::Playing).unwrap();
    hs.set_src_caps(caps("RGB", w, h));
    let info = gst_video::VideoInfo::from_caps(&caps("RGB", w, h)).unwrap();
    for t in 0..n {
        hs.push(smooth(&info, t)).unwrap();
    }
    assert!(hs.push_event(gst::event::Eos::new()));
    let outs = pull_all(&mut hs)
        .iter()
        .map(|b| b.map_readable().unwrap().to_vec())
        .collect();
    (outs, el)
}

fn max_diff(a: &[Vec<u8>], b: &[Vec<u8>]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| p.abs_diff(*q)))
        .max()
        .unwrap_or(0)
}

#[test]
fn tiled_output_matches_untiled() {
    init();
    for cache in [true, false] {
        // 92x70: the tile edges do not fall on the network's pyramid grid by themselves
        let (whole, _) = upscale(92, 70, 6, &[], cache);
        // 12 tiles of about 24 px with the default 16 px of context
        let (tiled, el) = upscale(92, 70, 6, &[("tile-size", 24)], cache);
        let d = max_diff(&whole, &tiled);
        assert!(d <= 1, "tiled differs by {d}/255 (feature cache {cache})");
        let st = el.property::<gst::Structure>("stats");
        assert_eq!(st.get::<u64>("inferred").unwrap(), 6);
        // it did run in tiles: 4 x 3 of them
        assert_eq!(st.get::<u64>("tiles").unwrap(), 12);
    }
}

#[test]
fn tiles_follow_the_memory_bound() {
    init();
    let (whole, _) = upscale(160, 120, 4, &[], true);
    // 160x120 at x4 needs ~230 MiB in one inference; max-memory bounds the whole process, so
    // 64 MiB more than the test process holds forces automatic tiles
    let (bounded, el) = upscale(
        160,
        120,
        4,
        &[("max-memory", (resident_mib() + 64) as u32)],
        true,
    );
    assert!(max_diff(&whole, &bounded) <= 1);
    let st = el.property::<gst::Structure>("stats");
    assert!(st.get::<u64>("tiles").unwrap() > 1, "{st}");
}

#[test]
fn batches_keep_n_in_n_out_timestamps_and_latency() {
    init();
    let (single, _) = upscale(23, 17, 7, &[], true);
    for batch in [2u32, 4, 8] {
        let mut h = harness("fixture-x4-t5.onnx", 4);
        let el = h.element().unwrap();
        el.set_state(gst::State::Null).unwrap();
        el.set_property("batch-size", batch);
        el.set_state(gst::State::Playing).unwrap();
        h.set_upstream_latency(gst::ClockTime::ZERO);
        h.set_src_caps(caps("RGB", 23, 17));
        // latency, as measured on a warm batch at caps time: (T-1)/2 + batch-1 frames at 25 fps, plus two batched inferences
        let st = el.property::<gst::Structure>("stats");
        let lat = gst::ClockTime::from_nseconds(st.get::<u64>("latency").unwrap());
        let p = gst::ClockTime::from_nseconds(st.get::<u64>("processing-time").unwrap());
        assert_eq!(
            lat,
            gst::ClockTime::from_mseconds(40) * (2 + batch as u64 - 1) + p * 2,
            "batch {batch}"
        );
        let info = gst_video::VideoInfo::from_caps(&caps("RGB", 23, 17)).unwrap();
        for t in 0..7 {
            h.push(smooth(&info, t)).unwrap();
            // the first output needs T/2 more frames and a full batch
            let expect = (t + 1).saturating_sub(2) / batch as u64 * batch as u64;
            assert_eq!(
                h.buffers_in_queue() as u64,
                expect,
                "batch {batch} after frame {t}"
            );
        }
        assert!(h.push_event(gst::event::Eos::new()));
        let outs = pull_all(&mut h);
        let pts: Vec<u64> = outs.iter().map(|b| b.pts().unwrap().mseconds()).collect();
        assert_eq!(
            pts,
            (0..7).map(|t| 40 * t).collect::<Vec<_>>(),
            "batch {batch}"
        );
        let bytes: Vec<Vec<u8>> = outs
            .iter()
            .map(|b| b.map_readable().unwrap().to_vec())
            .collect();
        assert!(max_diff(&single, &bytes) <= 1, "batch {batch}");
    }
}

#[test]
fn a_memory_limit_is_an_error_not_an_abort() {
    init();
    // 4096x2160 at x2 under ~1.2 GB of address space: the frames alone do not fit
    let model = fixture("fixture-x2-t5.onnx");
    let limited = |(w, h): (u32, u32)| {
        gst_launch_limited(
            1_200_000,
            &format!(
                "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width={w},height={h} ! \
                 mstgansr scale=2 execution-provider=cpu model-location={model} ! fakesink"
            ),
        )
    };
    let (code, text) = limited((4096, 2160));
    // an element error ends gst-launch with 1; an abort would be a signal (no code)
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("4096x2160 frames at x2") && text.contains("ulimit -v"),
        "{text}"
    );
    // a smaller stream under the same limit runs, in tiles
    let (code, text) = limited((640, 360));
    assert_eq!(code, Some(0), "{text}");
}

/// A flat 10-bit frame (Y, U, V code values) through the bilinear fixture comes out unchanged,
/// in the same format and colorimetry.
fn ten_bit_round_trip(format: &str, colorimetry: &str) {
    init();
    let mut h = harness("fixture-x2-t3-bilinear.onnx", 2);
    let in_caps = gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", 16)
        .field("height", 12)
        .field("framerate", gst::Fraction::new(25, 1))
        .field("colorimetry", colorimetry)
        .build();
    h.set_src_caps(in_caps.clone());
    let info = gst_video::VideoInfo::from_caps(&in_caps).unwrap();
    let (y, u, v) = (600u16, 400u16, 700u16);
    // P010 keeps its 10 bits at the top of each 16-bit word, the planar formats at the bottom
    let shift = if format == "P010_10LE" { 6 } else { 0 };
    let mut b = gst::Buffer::with_size(info.size()).unwrap();
    {
        let bm = b.get_mut().unwrap();
        bm.set_pts(gst::ClockTime::ZERO);
        let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(bm, &info).unwrap();
        let fill = |d: &mut [u8], vals: &[u16]| {
            for (i, px) in d.chunks_exact_mut(2).enumerate() {
                px.copy_from_slice(&(vals[i % vals.len()] << shift).to_le_bytes());
            }
        };
        fill(vf.plane_data_mut(0).unwrap(), &[y]);
        if format == "P010_10LE" {
            fill(vf.plane_data_mut(1).unwrap(), &[u, v]);
        } else {
            fill(vf.plane_data_mut(1).unwrap(), &[u]);
            fill(vf.plane_data_mut(2).unwrap(), &[v]);
        }
    }
    h.push(b).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    let out = h.pull().unwrap();
    let out_caps = h.sinkpad().unwrap().current_caps().unwrap();
    let out_info = gst_video::VideoInfo::from_caps(&out_caps).unwrap();
    assert_eq!(out_info.format(), info.format());
    assert_eq!((out_info.width(), out_info.height()), (32, 24));
    // the colorimetry (matrix, range, transfer, primaries) is carried unchanged
    assert_eq!(out_info.colorimetry(), info.colorimetry(), "{out_caps}");
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &out_info).unwrap();
    let at = |plane: u32, i: usize| {
        let d = vf.plane_data(plane).unwrap();
        u16::from_le_bytes([d[2 * i], d[2 * i + 1]]) >> shift
    };
    let stride = |p: usize| vf.plane_stride()[p] as usize / 2;
    let yc = at(0, 12 * stride(0) + 16);
    let (uc, vc) = if format == "P010_10LE" {
        (at(1, 6 * stride(1) + 16), at(1, 6 * stride(1) + 17))
    } else {
        let (cw, ch) = (
            out_info.comp_width(1) as usize,
            out_info.comp_height(1) as usize,
        );
        let i = ch / 2 * stride(1) + cw / 2;
        (at(1, i), at(2, i))
    };
    for (got, want, what) in [(yc, y, "Y"), (uc, u, "U"), (vc, v, "V")] {
        assert!(
            got.abs_diff(want) <= 2,
            "{format} {colorimetry}: {what} {got} for {want}"
        );
    }
}

#[test]
fn ten_bit_video_keeps_its_precision_and_colorimetry() {
    // HDR10 (PQ, BT.2020) and HLG are upscaled in their signal domain
    ten_bit_round_trip("P010_10LE", "bt2100-pq");
    ten_bit_round_trip("P010_10LE", "bt2100-hlg");
    ten_bit_round_trip("I420_10LE", "bt709");
    ten_bit_round_trip("I422_10LE", "bt2020");
    ten_bit_round_trip("Y444_10LE", "bt709");
}

/// BT.709 limited range at 16 bits, written out here on its own (GStreamer's VideoConverter
/// rounds its matrix to fewer bits than 16): RGB in [0, 1] to code values and back.
const KR: f64 = 0.2126;
const KB: f64 = 0.0722;
fn rgb_to_yuv16(r: f64, g: f64, b: f64) -> [u16; 3] {
    let y = KR * r + (1.0 - KR - KB) * g + KB * b;
    let cb = (b - y) / (2.0 * (1.0 - KB));
    let cr = (r - y) / (2.0 * (1.0 - KR));
    let q = |v: f64| v.round().clamp(0.0, 65535.0) as u16;
    [
        q(4096.0 + 56064.0 * y),
        q(32768.0 + 57344.0 * cb),
        q(32768.0 + 57344.0 * cr),
    ]
}
fn yuv16_to_rgb(y: u16, u: u16, v: u16) -> [f64; 3] {
    let y = (y as f64 - 4096.0) / 56064.0;
    let cb = (u as f64 - 32768.0) / 57344.0;
    let cr = (v as f64 - 32768.0) / 57344.0;
    let r = y + 2.0 * (1.0 - KR) * cr;
    let b = y + 2.0 * (1.0 - KB) * cb;
    let g = (y - KR * r - KB * b) / (1.0 - KR - KB);
    [r, g, b]
}

#[test]
fn sixteen_bit_path_matches_onnxruntime_golden() {
    // the golden frames as Y444_16LE, upscaled by the element, back to RGB: the model output
    // must survive within 1/255
    init();
    let name = "fixture-x4-t5";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let input = std::fs::read(root.join(format!("golden-{name}.in.rgb"))).unwrap();
    let expect: Vec<f32> = std::fs::read(root.join(format!("golden-{name}.out.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (n, w, hgt, s) = (7usize, 23usize, 17usize, 4usize);
    let yuv_caps = gst::Caps::builder("video/x-raw")
        .field("format", "Y444_16LE")
        .field("width", w as i32)
        .field("height", hgt as i32)
        .field("framerate", gst::Fraction::new(25, 1))
        .field("colorimetry", "bt709")
        .build();
    let yuv_info = gst_video::VideoInfo::from_caps(&yuv_caps).unwrap();
    let mut h = harness(&format!("{name}.onnx"), s as u32);
    h.set_src_caps(yuv_caps);
    for i in 0..n {
        let mut b = gst::Buffer::with_size(yuv_info.size()).unwrap();
        {
            let bm = b.get_mut().unwrap();
            bm.set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
            let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(bm, &yuv_info).unwrap();
            let strides: Vec<usize> = vf.plane_stride()[..3].iter().map(|s| *s as usize).collect();
            for y in 0..hgt {
                for x in 0..w {
                    let px = &input[((i * hgt + y) * w + x) * 3..][..3];
                    let c = |k: usize| px[k] as f64 / 255.0;
                    let codes = rgb_to_yuv16(c(0), c(1), c(2));
                    for (p, code) in codes.iter().enumerate() {
                        let d = vf.plane_data_mut(p as u32).unwrap();
                        d[y * strides[p] + 2 * x..][..2].copy_from_slice(&code.to_le_bytes());
                    }
                }
            }
        }
        h.push(b).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let outs = pull_all(&mut h);
    assert_eq!(outs.len(), n);
    let out_info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    let (ow, oh) = (w * s, hgt * s);
    let mut worst = 0.0f64;
    for (t, b) in outs.iter().enumerate() {
        let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(b.as_ref(), &out_info).unwrap();
        let code = |p: u32, y: usize, x: usize| {
            let d = vf.plane_data(p).unwrap();
            let o = y * vf.plane_stride()[p as usize] as usize + 2 * x;
            u16::from_le_bytes([d[o], d[o + 1]])
        };
        for y in 0..oh {
            for x in 0..ow {
                let rgb = yuv16_to_rgb(code(0, y, x), code(1, y, x), code(2, y, x));
                for (c, got) in rgb.iter().enumerate() {
                    let want = expect[((t * 3 + c) * oh + y) * ow + x].clamp(0.0, 1.0) as f64;
                    worst = worst.max((got.clamp(0.0, 1.0) - want).abs());
                }
            }
        }
    }
    assert!(
        worst <= 1.0 / 255.0,
        "16-bit path differs from onnxruntime by {worst}"
    );
}

#[test]
fn peak_memory_stays_within_max_memory() {
    init();
    // the bundled x2 model on a 640x360 frame wants ~1 GB in one inference; max-memory bounds
    // the whole process's peak (what time -v reports), onnxruntime's arena included
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/mstgan-x2-fidelity-int8.onnx");
    let limit_mib = 400;
    let (code, text) = gst_launch_limited(
        u64::MAX >> 10,
        &format!(
            "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=640,height=360 ! \
             mstgansr scale=2 execution-provider=cpu max-memory={limit_mib} model-location={} \
             ! fakesink",
            model.display()
        ),
    );
    assert_eq!(code, Some(0), "{text}");
    let peak = peak_rss_mib(&text);
    assert!(
        peak <= limit_mib,
        "peak RSS {peak} MiB over max-memory={limit_mib}"
    );
}

/// One call per batch: each window's outcome comes back in order, the inferred frames equal
/// the same windows run alone, a resized one is the bilinear upscale of its centre, and a
/// dropped one has no frame.
#[test]
fn a_batch_comes_back_judged_in_order() {
    use gstmstgansr::engine::{Engine, EngineConfig, Provider};
    use gstmstgansr::upscale::upscaler::{Arrival, Continuity, Judgement, Limits, Upscaler};
    init();
    let (w, h, s) = (24usize, 16usize, 2usize);
    let model = fixture("fixture-x2-t5.onnx");
    let engine = |batch: usize| {
        let e =
            Engine::new(&EngineConfig::new(&model, s as u32).with_provider(Provider::Cpu)).unwrap();
        let mut up: Upscaler<u32> = Upscaler::new(e);
        let limits = Limits {
            batch,
            ..Limits::default()
        };
        up.configure(w, h, None, limits).unwrap();
        up
    };
    let frames: Vec<Vec<f32>> = (0..6)
        .map(|i| {
            (0..3 * w * h)
                .map(|k| ((k * 7 + i * 13) % 97) as f32 / 96.0)
                .collect()
        })
        .collect();
    let c = Continuity {
        scene_cut_threshold: 0.0,
        ..Continuity::default()
    };
    let outputs = |up: &mut Upscaler<u32>, judge: &dyn Fn(u32) -> Judgement| {
        let mut got = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            up.runs()
                .push(f.clone(), i as u32, Arrival::default(), c)
                .unwrap();
        }
        up.runs().finish();
        while let Some(done) = up.process(|win| judge(win.centre().meta)).unwrap() {
            for (k, d) in done.iter().enumerate() {
                got.push((
                    d.window.centre().meta,
                    d.outcome,
                    up.output(k).map(<[f32]>::to_vec),
                ));
            }
        }
        got
    };
    let alone = outputs(&mut engine(1), &|_| Judgement::Infer);
    let pick = |i: u32| match i % 3 {
        0 => Judgement::Infer,
        1 => Judgement::Resize,
        _ => Judgement::Drop,
    };
    let judged = outputs(&mut engine(4), &pick);
    assert_eq!(judged.len(), 6);
    for (i, (centre, outcome, frame)) in judged.iter().enumerate() {
        assert_eq!(*centre, i as u32, "windows come back in order");
        assert_eq!(*outcome, pick(i as u32));
        match outcome {
            Judgement::Infer => {
                let want = alone[i].2.as_ref().unwrap();
                let d = frame
                    .as_ref()
                    .unwrap()
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(d < 1e-4, "window {i}: batched differs from alone by {d}");
            }
            Judgement::Resize => {
                let mut want = vec![0.0; 3 * w * h * s * s];
                gstmstgansr::convert::upscale_bilinear(&frames[i], w, h, s, &mut want);
                assert_eq!(frame.as_ref().unwrap(), &want, "window {i}");
            }
            Judgement::Drop => assert!(frame.is_none(), "window {i} was dropped"),
        }
    }
}
