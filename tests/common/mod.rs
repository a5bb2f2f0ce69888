// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers shared by the element tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::sync::Once;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstmstgansr::plugin_register_static().expect("register plugin");
    });
}

pub fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

pub fn harness(model: &str, scale: u32) -> Harness {
    harness_cache(model, scale, true)
}

pub fn harness_cache(model: &str, scale: u32, feature_cache: bool) -> Harness {
    harness_on(model, scale, feature_cache, "cpu")
}

pub fn harness_on(model: &str, scale: u32, feature_cache: bool, provider: &str) -> Harness {
    init();
    let el = gst::ElementFactory::make("mstgansr")
        .property("model-location", fixture(model))
        .property("scale", scale)
        .property("feature-cache", feature_cache)
        .property_from_str("execution-provider", provider)
        .property("threads", 1u32)
        .build()
        .unwrap();
    Harness::with_element(&el, Some("sink"), Some("src"))
}

pub fn caps(format: &str, w: u32, h: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(25, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

pub fn frame_buffer(info: &gst_video::VideoInfo, index: u64, seed: u8) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        let mut map = b.map_writable().unwrap();
        for (i, v) in map.iter_mut().enumerate() {
            *v = ((i as u64 * 31 + index * 17 + seed as u64 * 101) % 251) as u8;
        }
        drop(map);
        b.set_pts(gst::ClockTime::from_mseconds(40 * index));
        b.set_duration(gst::ClockTime::from_mseconds(40));
        b.set_offset(index);
    }
    buf
}

pub fn push_frames(h: &mut Harness, info: &gst_video::VideoInfo, n: u64, seed: u8) {
    for i in 0..n {
        h.push(frame_buffer(info, i, seed)).unwrap();
    }
}

pub fn pull_all(h: &mut Harness) -> Vec<gst::Buffer> {
    let mut out = vec![];
    while let Some(b) = h.try_pull() {
        out.push(b);
    }
    out
}

/// What the bus said: (headline, debug) of every error and warning.
#[derive(Debug, Default)]
pub struct Messages {
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
}

/// Runs `appsrc caps=<src_caps> ! mstgansr <props> ! fakesink` with 3 frames until EOS or the
/// first error.
pub fn run_pipeline(props: &str, src_caps: &str) -> Messages {
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=\"{src_caps},framerate=25/1\" ! mstgansr name=sr {props} ! fakesink"
    ))
    .unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let appsrc = bin
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    let started = pipeline.set_state(gst::State::Playing).is_ok();
    if started {
        let caps = gst::Caps::from_str(src_caps).unwrap();
        // formats the element cannot take have no VideoInfo size we trust: a token buffer is enough
        let size = gst_video::VideoInfo::from_caps(&caps)
            .map(|i| i.size())
            .unwrap_or(1)
            .min(1 << 24);
        for i in 0..3u64 {
            let mut b = gst::Buffer::with_size(size).unwrap();
            b.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(40 * i));
            if appsrc.push_buffer(b).is_err() {
                break;
            }
        }
        let _ = appsrc.end_of_stream();
    }
    let mut m = Messages::default();
    let text = |e: &glib::Error, d: Option<glib::GString>| {
        (
            e.message().to_string(),
            d.map(|d| d.to_string()).unwrap_or_default(),
        )
    };
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                m.errors.push(text(&e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => m.warnings.push(text(&w.error(), w.debug())),
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    m
}

/// The first error (or, with `want_warning`, every warning) as "headline | debug" lines, or
/// None if there was none. An error when a warning is wanted fails the test.
pub fn run_expect_message(props: &str, src_caps: &str, want_warning: bool) -> Option<String> {
    let m = run_pipeline(props, src_caps);
    let join = |v: &[(String, String)]| {
        (!v.is_empty()).then(|| {
            v.iter()
                .map(|(h, d)| format!("{h} | {d}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
    };
    if want_warning {
        assert!(m.errors.is_empty(), "unexpected error {:?}", m.errors);
        join(&m.warnings)
    } else {
        join(&m.errors[..m.errors.len().min(1)])
    }
}

pub const CAPS: &str = "video/x-raw,format=RGB,width=32,height=24";

/// The golden comparison with the feature cache on and off: both must match onnxruntime, and
/// the cache must run exactly when the fixture has its extractor/fusion pair.
pub fn golden_on(name: &str, window_check: u32, provider: &str) {
    let has_pair = std::path::Path::new(&fixture(&format!("{name}.fusion.onnx"))).is_file();
    for cache in [true, false] {
        let active = golden_run(name, window_check, cache, provider);
        assert_eq!(active, cache && has_pair, "{name}: feature-cache={cache}");
    }
}

/// Runs the golden input of fixture `name` through the element on `provider` and checks the
/// output against onnxruntime's (CPU, from Python); returns whether the feature cache ran.
pub fn golden_run(name: &str, window_check: u32, cache: bool, provider: &str) -> bool {
    let meta: String = std::fs::read_to_string(fixture(&format!("golden-{name}.json"))).unwrap();
    let num = |k: &str| -> usize {
        let i = meta.find(&format!("\"{k}\": ")).unwrap() + k.len() + 4;
        meta[i..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (n, w, hgt, s) = (num("frames"), num("width"), num("height"), num("scale"));
    let input = std::fs::read(fixture(&format!("golden-{name}.in.rgb"))).unwrap();
    let expect: Vec<f32> = std::fs::read(fixture(&format!("golden-{name}.out.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut h = harness_on(&format!("{name}.onnx"), s as u32, cache, provider);
    let in_caps = caps("RGB", w as u32, hgt as u32);
    h.set_src_caps(in_caps.clone());
    let in_info = gst_video::VideoInfo::from_caps(&in_caps).unwrap();
    let row = w * 3;
    for i in 0..n {
        let mut b = gst::Buffer::with_size(in_info.size()).unwrap();
        {
            let bm = b.get_mut().unwrap();
            bm.set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
            let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(bm, &in_info).unwrap();
            let stride = vf.plane_stride()[0] as usize;
            let plane = vf.plane_data_mut(0).unwrap();
            for y in 0..hgt {
                let src = &input[(i * hgt + y) * row..(i * hgt + y + 1) * row];
                plane[y * stride..y * stride + row].copy_from_slice(src);
            }
        }
        h.push(b).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    assert_eq!(h.element().unwrap().property::<u32>("window"), window_check);
    assert_eq!(
        h.element()
            .unwrap()
            .property::<Option<String>>("active-provider")
            .as_deref(),
        Some(provider)
    );
    let outs = pull_all(&mut h);
    assert_eq!(outs.len(), n);
    let (ow, oh) = (w * s, hgt * s);
    let out_info = gst_video::VideoInfo::from_caps(&caps("RGB", ow as u32, oh as u32)).unwrap();
    let ostride = out_info.stride()[0] as usize;
    let mut worst = 0.0f32;
    for (t, b) in outs.iter().enumerate() {
        let m = b.map_readable().unwrap();
        for y in 0..oh {
            for x in 0..ow {
                for c in 0..3 {
                    let got = m[y * ostride + x * 3 + c] as f32;
                    let want = expect[((t * 3 + c) * oh + y) * ow + x] * 255.0;
                    worst = worst.max((got - want).abs());
                }
            }
        }
    }
    // rounding to 8 bits costs 0.5; anything past 1/255 of range is a real difference
    assert!(
        worst <= 1.0,
        "{name}: element on {provider} differs from onnxruntime by {worst} / 255 (feature-cache={cache})"
    );
    h.element()
        .unwrap()
        .property::<bool>("feature-cache-active")
}

/// What this test process holds now (VmRSS), MiB: `max-memory` bounds the whole process.
pub fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        >> 10
}

/// An RGB frame (40 ms long, at `pts`) painted by `paint(x, y, channel)`, a value in 0..=255.
pub fn rgb_frame(
    info: &gst_video::VideoInfo,
    pts: gst::ClockTime,
    paint: impl Fn(f32, f32, usize) -> f32,
) -> gst::Buffer {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(pts);
        b.set_duration(gst::ClockTime::from_mseconds(40));
        let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(b, info).unwrap();
        let stride = vf.plane_stride()[0] as usize;
        let d = vf.plane_data_mut(0).unwrap();
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    d[y * stride + x * 3 + c] = paint(x as f32, y as f32, c) as u8;
                }
            }
        }
    }
    buf
}

pub fn gst_launch_limited(limit_kib: u64, pipeline: &str) -> (Option<i32>, String) {
    let plugin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {limit} && exec /usr/bin/time -v gst-launch-1.0 {pipeline}",
            limit = if limit_kib >= u64::MAX >> 10 {
                "unlimited".to_string()
            } else {
                limit_kib.to_string()
            }
        ))
        .env("GST_PLUGIN_PATH", &plugin_dir)
        .env(
            "GST_REGISTRY",
            std::env::temp_dir().join(format!("mstgansr-registry-mem-{}.bin", std::process::id())),
        )
        .output()
        .unwrap();
    let text = output_text(&out);
    (out.status.code(), text)
}

/// The peak RSS (MiB) in a `/usr/bin/time -v` report.
pub fn peak_rss_mib(text: &str) -> u64 {
    let kib: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or_else(|| panic!("no time -v report in {text}"))
        .parse()
        .unwrap();
    kib >> 10
}

/// A finished command's stdout then stderr, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
