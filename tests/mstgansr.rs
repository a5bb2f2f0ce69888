// SPDX-License-Identifier: MIT OR Apache-2.0
//! Element tests on CPU with the fixture models from `tests/fixtures` (made by
//! `python -m mstgan.deploy.fixtures`).

mod common;

use gst::prelude::*;
use gst_video::prelude::*;

use common::*;

#[test]
fn every_format_negotiates_and_upscales() {
    for format in [
        "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "ARGB", "ABGR", "I420", "NV12",
    ] {
        let mut h = harness("fixture-x2-t5.onnx", 2);
        h.set_src_caps(caps(format, 23, 17));
        let info = gst_video::VideoInfo::from_caps(&caps(format, 23, 17)).unwrap();
        push_frames(&mut h, &info, 3, 0);
        assert!(h.push_event(gst::event::Eos::new()));
        let outs = pull_all(&mut h);
        assert_eq!(outs.len(), 3, "{format}: 3 in, 3 out");
        let out_caps = h.sinkpad().unwrap().current_caps().unwrap();
        let out_info = gst_video::VideoInfo::from_caps(&out_caps).unwrap();
        assert_eq!((out_info.width(), out_info.height()), (46, 34), "{format}");
        assert_eq!(out_info.format().to_str(), format);
        assert_eq!(out_info.fps(), gst::Fraction::new(25, 1));
        assert_eq!(out_info.par(), gst::Fraction::new(1, 1));
        for b in &outs {
            assert_eq!(b.size(), out_info.size(), "{format}");
        }
    }
}

#[test]
fn caps_transform_both_directions() {
    // upstream-constrained: a fixed input size gives the x4 output size on the src pad
    let mut h = harness("fixture-x4-t5.onnx", 4);
    h.set_src_caps(caps("I420", 180, 144));
    let el = h.element().unwrap();
    let out = el.static_pad("src").unwrap().query_caps(None);
    let s = out.structure(0).unwrap();
    assert_eq!(
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap()
        ),
        (720, 576)
    );
    assert_eq!(s.get::<&str>("format").unwrap(), "I420");

    // downstream-constrained: a sink that only takes 720x576 means the input must be 180x144
    let mut h = harness("fixture-x4-t5.onnx", 4);
    h.set_sink_caps(caps("RGB", 720, 576));
    let el = h.element().unwrap();
    let inp = el.static_pad("sink").unwrap().query_caps(None);
    let s = inp.structure(0).unwrap();
    assert_eq!(
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap()
        ),
        (180, 144)
    );

    // an output size that is not a multiple of the scale has no input at all
    let mut h = harness("fixture-x4-t5.onnx", 4);
    h.set_sink_caps(caps("RGB", 721, 576));
    let el = h.element().unwrap();
    assert!(el.static_pad("sink").unwrap().query_caps(None).is_empty());

    // ranges map to stepped ranges
    let mut h = harness("fixture-x4-t5.onnx", 4);
    h.set_sink_caps_str("video/x-raw,format=RGB,width=[64,400],height=[64,400]");
    let el = h.element().unwrap();
    let inp = el.static_pad("sink").unwrap().query_caps(None);
    let accepts = |w: i32| inp.can_intersect(&caps("RGB", w as u32, 64));
    assert!(accepts(16) && accepts(100), "{inp}");
    assert!(!accepts(15) && !accepts(101), "{inp}");
}

#[test]
fn n_in_n_out_with_timestamps_after_eos() {
    let mut h = harness("fixture-x4-t5.onnx", 4);
    let c = caps("RGB", 23, 17);
    h.set_src_caps(c.clone());
    let info = gst_video::VideoInfo::from_caps(&c).unwrap();
    for i in 0..7u64 {
        h.push(frame_buffer(&info, i, 0)).unwrap();
        // T=5: output t leaves once frame t+2 has arrived
        assert_eq!(h.buffers_in_queue() as u64, i.saturating_sub(1));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let outs = pull_all(&mut h);
    assert_eq!(outs.len(), 7);
    for (i, b) in outs.iter().enumerate() {
        assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(40 * i as u64)));
        assert_eq!(b.duration(), Some(gst::ClockTime::from_mseconds(40)));
        assert_eq!(b.offset(), i as u64);
        assert_eq!(b.size(), 92 * 68 * 3);
    }
}

/// (latency, processing-time) from the element's `stats`.
fn reported_latency(el: &gst::Element) -> (gst::ClockTime, gst::ClockTime) {
    let st = el.property::<gst::Structure>("stats");
    let ns = |k: &str| gst::ClockTime::from_nseconds(st.get::<u64>(k).unwrap());
    (ns("latency"), ns("processing-time"))
}

#[test]
fn latency_adds_half_window_and_processing_time() {
    let ms = gst::ClockTime::from_mseconds;
    for (model, window, look_ahead) in [
        ("fixture-x4-t5.onnx", 5, ms(80)),
        ("fixture-x4-t3.onnx", 3, ms(40)),
    ] {
        let mut h = harness(model, 4);
        h.set_upstream_latency(ms(10));
        // before caps the frame rate is unknown: no answer rather than a wrong one
        assert_eq!(h.query_latency(), None, "{model}");
        h.set_src_caps(caps("RGB", 23, 17));
        let info = gst_video::VideoInfo::from_caps(&caps("RGB", 23, 17)).unwrap();
        h.push(frame_buffer(&info, 0, 0)).unwrap();
        let el = h.element().unwrap();
        assert_eq!(el.property::<u32>("window"), window);
        // the harness source is live, so the element measured an inference at caps time
        let (ours, processing) = reported_latency(&el);
        assert!(processing > gst::ClockTime::ZERO, "{model}");
        // (T-1)/2 frames at 25 fps, plus one inference in flight and its own
        assert_eq!(ours, look_ahead + processing * 2, "{model}");
        assert_eq!(h.query_latency(), Some(ms(10) + ours), "{model}");
    }
}

fn outputs_for(seeds_before: Option<u8>, seed_after: u8) -> Vec<Vec<u8>> {
    let mut h = harness("fixture-x4-t5.onnx", 4);
    let c = caps("RGB", 23, 17);
    h.set_src_caps(c.clone());
    let info = gst_video::VideoInfo::from_caps(&c).unwrap();
    if let Some(seed) = seeds_before {
        push_frames(&mut h, &info, 4, seed);
        assert!(h.push_event(gst::event::FlushStart::new()));
        assert!(h.push_event(gst::event::FlushStop::new(true)));
        pull_all(&mut h);
        // the harness needs a segment again after a flush
        assert!(
            h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()))
        );
    }
    push_frames(&mut h, &info, 4, seed_after);
    assert!(h.push_event(gst::event::Eos::new()));
    pull_all(&mut h)
        .iter()
        .map(|b| b.map_readable().unwrap().to_vec())
        .collect()
}

#[test]
fn flush_resets_the_window() {
    let clean = outputs_for(None, 9);
    let flushed = outputs_for(Some(3), 9);
    assert_eq!(clean.len(), 4);
    assert_eq!(
        flushed.len(),
        4,
        "frames before the flush are dropped, not output"
    );
    assert_eq!(
        clean, flushed,
        "no frame from before the flush may influence the output after it"
    );
}

#[test]
fn neighbours_do_influence_the_output() {
    // guards the flush test: with the same centre frame, other neighbours change the output
    let a = outputs_for(None, 9);
    let mut h = harness("fixture-x4-t5.onnx", 4);
    let c = caps("RGB", 23, 17);
    h.set_src_caps(c.clone());
    let info = gst_video::VideoInfo::from_caps(&c).unwrap();
    h.push(frame_buffer(&info, 0, 9)).unwrap();
    h.push(frame_buffer(&info, 1, 77)).unwrap();
    h.push(frame_buffer(&info, 2, 77)).unwrap();
    let b = h.pull().unwrap().map_readable().unwrap().to_vec();
    assert_ne!(a[0], b);
}

#[test]
fn discont_starts_a_new_window_without_losing_frames() {
    let mut h = harness("fixture-x4-t5.onnx", 4);
    let c = caps("RGB", 23, 17);
    h.set_src_caps(c.clone());
    let info = gst_video::VideoInfo::from_caps(&c).unwrap();
    push_frames(&mut h, &info, 3, 1);
    let mut b = frame_buffer(&info, 10, 2);
    b.get_mut().unwrap().set_flags(gst::BufferFlags::DISCONT);
    h.push(b).unwrap();
    for i in 11..13 {
        h.push(frame_buffer(&info, i, 2)).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let pts: Vec<_> = pull_all(&mut h)
        .iter()
        .map(|b| b.pts().unwrap().mseconds())
        .collect();
    assert_eq!(pts, vec![0, 40, 80, 400, 440, 480]);
}

#[test]
fn caps_change_mid_stream() {
    let mut h = harness("fixture-x2-t5.onnx", 2);
    let c1 = caps("RGB", 23, 17);
    h.set_src_caps(c1.clone());
    let i1 = gst_video::VideoInfo::from_caps(&c1).unwrap();
    push_frames(&mut h, &i1, 3, 0);
    let c2 = caps("I420", 20, 14);
    h.set_src_caps(c2.clone());
    let i2 = gst_video::VideoInfo::from_caps(&c2).unwrap();
    push_frames(&mut h, &i2, 2, 0);
    assert!(h.push_event(gst::event::Eos::new()));
    let sizes: Vec<_> = pull_all(&mut h).iter().map(|b| b.size()).collect();
    let o1 = gst_video::VideoInfo::from_caps(&caps("RGB", 46, 34))
        .unwrap()
        .size();
    let o2 = gst_video::VideoInfo::from_caps(&caps("I420", 40, 28))
        .unwrap()
        .size();
    assert_eq!(sizes, vec![o1, o1, o1, o2, o2]);
}

fn golden(name: &str, window_check: u32) {
    golden_on(name, window_check, "cpu");
}

#[test]
fn output_matches_onnxruntime_golden_t5() {
    // both have extractor/fusion pairs: cached and whole-graph paths
    golden("fixture-x4-t5", 5);
    golden("fixture-x3-t5", 5);
}

#[test]
fn a_stale_feature_pair_is_refused_with_a_warning() {
    // the x4 model with the x3 model's pair next to it: using it would give the wrong network
    let dir = std::env::temp_dir().join(format!("mstgansr-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("fixture-x4-t5.onnx"), dir.join("m.onnx")).unwrap();
    for part in ["extractor", "fusion"] {
        std::fs::copy(
            fixture(&format!("fixture-x3-t5.{part}.onnx")),
            dir.join(format!("m.{part}.onnx")),
        )
        .unwrap();
    }
    let model = dir.join("m.onnx");
    let warn = run_expect_message(
        &format!(
            "model-location={} scale=4 execution-provider=cpu",
            model.display()
        ),
        CAPS,
        true,
    );
    let warn = warn.expect("a warning about the pair");
    assert!(
        warn.contains("cut from another model") && warn.contains("m.fusion.onnx"),
        "{warn}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_matches_onnxruntime_golden_t7() {
    // the shipped x4 fidelity model's window, cached and whole-graph paths
    golden("fixture-x4-t7", 7);
}

#[test]
fn output_matches_onnxruntime_golden_t3() {
    golden("fixture-x4-t3", 3);
}

#[test]
fn fast_tier_output_matches_onnxruntime_golden() {
    // early fusion, no extractor/fusion pair: the whole graph, at an odd size (23x17)
    golden("fixture-x2-t5-fast", 5);
}

#[test]
fn fast_tier_at_lr_resolution_matches_onnxruntime_golden() {
    // the x4 fast model's layout: no folding, detail and bicubic skip shuffled together
    golden("fixture-x4-t5-fast", 5);
}

#[test]
fn odd_sizes_in_yuv() {
    let mut h = harness("fixture-x3-t5.onnx", 3);
    let c = caps("I420", 177, 101);
    h.set_src_caps(c.clone());
    let info = gst_video::VideoInfo::from_caps(&c).unwrap();
    push_frames(&mut h, &info, 2, 0);
    assert!(h.push_event(gst::event::Eos::new()));
    let outs = pull_all(&mut h);
    assert_eq!(outs.len(), 2);
    let out_info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    assert_eq!((out_info.width(), out_info.height()), (531, 303));
    assert_eq!(outs[0].size(), out_info.size());
}

#[test]
fn yuv_colour_survives_the_round_trip() {
    // a flat colour in, the same colour out (this fixture is a plain bilinear upscale)
    let mut h = harness("fixture-x2-t3-bilinear.onnx", 2);
    let c = gst::Caps::builder("video/x-raw")
        .field("format", "NV12")
        .field("width", 16)
        .field("height", 12)
        .field("framerate", gst::Fraction::new(25, 1))
        .field("colorimetry", "bt709")
        .build();
    h.set_src_caps(c.clone());
    let info = gst_video::VideoInfo::from_caps(&c).unwrap();
    let mut b = gst::Buffer::with_size(info.size()).unwrap();
    {
        let bm = b.get_mut().unwrap();
        let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(bm, &info).unwrap();
        vf.plane_data_mut(0).unwrap().fill(120);
        for (i, v) in vf.plane_data_mut(1).unwrap().iter_mut().enumerate() {
            *v = if i % 2 == 0 { 90 } else { 160 };
        }
    }
    h.push(b).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    let out = h.pull().unwrap();
    let out_info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &out_info).unwrap();
    let y = vf.plane_data(0).unwrap();
    let uv = vf.plane_data(1).unwrap();
    let centre = 12 * vf.plane_stride()[0] as usize + 16;
    assert!((y[centre] as i32 - 120).abs() <= 3, "Y {}", y[centre]);
    let c = 6 * vf.plane_stride()[1] as usize + 8;
    assert!(
        (uv[c] as i32 - 90).abs() <= 3 && (uv[c + 1] as i32 - 160).abs() <= 3,
        "UV {} {}",
        uv[c],
        uv[c + 1]
    );
}

#[test]
fn missing_model_is_a_clear_error() {
    let err = run_expect_message("model-location=/nonexistent/model.onnx", CAPS, false);
    let err = err.expect("an error");
    assert!(
        err.contains("/nonexistent/model.onnx") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn corrupt_model_is_a_clear_error() {
    let path = std::env::temp_dir().join("mstgansr-corrupt.onnx");
    std::fs::write(&path, b"this is not an onnx model").unwrap();
    let err = run_expect_message(&format!("model-location={}", path.display()), CAPS, false);
    let err = err.expect("an error");
    assert!(
        err.contains("could not be loaded") && err.contains("mstgansr-corrupt.onnx"),
        "{err}"
    );
}

#[test]
fn scale_mismatch_is_a_clear_error() {
    let err = run_expect_message(
        &format!("model-location={} scale=4", fixture("fixture-x2-t5.onnx")),
        CAPS,
        false,
    );
    let err = err.expect("an error");
    assert!(err.contains("upscales by 2x but scale=4"), "{err}");
}

#[test]
fn unsupported_caps_fail_negotiation() {
    let err = run_expect_message(
        &format!("model-location={} scale=2", fixture("fixture-x2-t5.onnx")),
        "video/x-raw,format=GRAY8,width=32,height=24",
        false,
    );
    let err = err.expect("an error");
    assert!(
        err.contains("not-negotiated") || err.contains("negotiat"),
        "{err}"
    );
}

#[test]
fn frames_too_large_for_memory_fail_clearly() {
    // 640x480 at x2: the window and the upscaled frames alone take ~51 MiB, more than the 16
    // that max-memory leaves above what the process holds
    let m = run_pipeline(
        &format!(
            "model-location={} scale=2 max-memory={}",
            fixture("fixture-x2-t5.onnx"),
            resident_mib() + 16
        ),
        "video/x-raw,format=RGB,width=640,height=480",
    );
    let (headline, _) = m.errors.first().expect("an error");
    assert!(
        headline.contains("640x480 frames at x2")
            && headline.contains("max-memory (less what the process already holds) allows")
            && headline.contains("downscale the input"),
        "{headline}"
    );
    // with 200 MiB more it fits, in tiles
    let m = run_pipeline(
        &format!(
            "model-location={} scale=2 max-memory={}",
            fixture("fixture-x2-t5.onnx"),
            resident_mib() + 200
        ),
        "video/x-raw,format=RGB,width=640,height=480",
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

/// What `execution-provider=auto` must pick on this machine, asked of onnxruntime and the GPU.
fn expected_auto_provider() -> &'static str {
    use gstmstgansr::engine::{ActiveProvider, usable};
    [
        ActiveProvider::TensorRt,
        ActiveProvider::Cuda,
        ActiveProvider::OpenVino,
    ]
    .into_iter()
    .find(|p| usable(*p, 0))
    .unwrap_or(ActiveProvider::Cpu)
    .as_str()
}

#[test]
fn explicit_gpu_provider_runs_or_fails_clearly() {
    use gstmstgansr::engine::{ActiveProvider, usable};
    for (ep, which) in [
        ("cuda", ActiveProvider::Cuda),
        ("tensorrt", ActiveProvider::TensorRt),
    ] {
        let m = run_pipeline(
            &format!(
                "model-location={} scale=2 execution-provider={ep}",
                fixture("fixture-x2-t5.onnx")
            ),
            CAPS,
        );
        if usable(which, 0) {
            // a machine with the GPU and onnxruntime-gpu runs it
            assert!(m.errors.is_empty(), "{ep}: {:?}", m.errors);
        } else {
            let (headline, _) = m.errors.first().expect("an error");
            assert!(
                headline.contains("is not available") && headline.contains(ep),
                "{ep}: {headline}"
            );
        }
    }
}

#[test]
fn openvino_runs_or_says_which_onnxruntime_it_needs() {
    use gstmstgansr::engine::{ActiveProvider, usable};
    let m = run_pipeline(
        &format!(
            "model-location={} scale=2 execution-provider=openvino",
            fixture("fixture-x2-t5.onnx")
        ),
        CAPS,
    );
    if usable(ActiveProvider::OpenVino, 0) {
        assert!(m.errors.is_empty(), "{:?}", m.errors);
    } else {
        // this process loads the venv's plain onnxruntime (tests/openvino.rs runs the other)
        let (headline, _) = m.errors.first().expect("an error");
        assert!(
            headline.contains("openvino is not available")
                && headline.contains("onnxruntime-openvino")
                && headline.contains("ORT_DYLIB_PATH"),
            "{headline}"
        );
    }
}

#[test]
fn auto_provider_falls_back_to_cpu_with_a_warning_only_where_a_gpu_failed() {
    let m = run_pipeline(
        &format!("model-location={} scale=2", fixture("fixture-x2-t5.onnx")),
        CAPS,
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let fallback = m
        .warnings
        .iter()
        .find(|(h, _)| h.contains("fell back to CPU"));
    if expected_auto_provider() == "cpu" && !gstmstgansr::engine::gpu_present() {
        // no GPU here: the normal case, an INFO message (tests/launch.rs), not a warning
        assert!(fallback.is_none(), "{:?}", m.warnings);
    } else if expected_auto_provider() == "cpu" {
        // the headline says what happened; the details name each provider and why
        let (headline, debug) = fallback.expect("a fallback warning");
        assert!(!headline.contains("supporting library"), "{headline}");
        assert!(
            debug.contains("cuda") && debug.contains("tensorrt") && debug.contains("openvino"),
            "{debug}"
        );
    } else {
        assert!(fallback.is_none(), "{:?}", m.warnings);
    }
}

#[test]
fn active_provider_tells_the_truth() {
    init();
    let el = gst::ElementFactory::make("mstgansr")
        .property("model-location", fixture("fixture-x2-t5.onnx"))
        .property("scale", 2u32)
        .build()
        .unwrap();
    assert_eq!(el.property::<Option<String>>("active-provider"), None);
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    h.set_src_caps(caps("RGB", 8, 8));
    assert_eq!(
        el.property::<Option<String>>("active-provider").as_deref(),
        Some(expected_auto_provider())
    );
    // an explicit CPU request gets the CPU whatever the machine has
    let mut h = harness("fixture-x2-t5.onnx", 2);
    h.set_src_caps(caps("RGB", 8, 8));
    assert_eq!(
        h.element()
            .unwrap()
            .property::<Option<String>>("active-provider")
            .as_deref(),
        Some("cpu")
    );
}

#[test]
fn variant_picks_the_bundled_model() {
    init();
    for (scale, variant, want) in [
        (4u32, "fidelity", "mstgan-x4-fidelity-int8.onnx"),
        (4, "perceptual", "mstgan-x4-perceptual-int8.onnx"),
        (4, "auto", "mstgan-x4-perceptual-int8.onnx"),
        (4, "real", "mstgan-x4-real-int8.onnx"),
        (4, "compressed", "mstgan-x4-real-int8.onnx"),
        (2, "real", "mstgan-x2-real-int8.onnx"),
        (2, "compressed", "mstgan-x2-real-int8.onnx"),
        // no x3 real model ships: compressed input falls back to fidelity, not the GAN
        (3, "compressed", "mstgan-x3-fidelity-int8.onnx"),
        (2, "fast", "mstgan-x2-fast-int8.onnx"),
        (4, "fast", "mstgan-x4-fast-int8.onnx"),
        (4, "fast-compressed", "mstgan-x4-fast-real-int8.onnx"),
        (2, "fast-compressed", "mstgan-x2-fast-real-int8.onnx"),
    ] {
        let el = gst::ElementFactory::make("mstgansr")
            .property("scale", scale)
            .property_from_str("variant", variant)
            .property_from_str("execution-provider", "cpu")
            .build()
            .unwrap();
        el.set_state(gst::State::Paused).unwrap();
        let path = el.property::<Option<String>>("model-path").unwrap();
        assert!(path.ends_with(want), "{variant}: {path}");
        el.set_state(gst::State::Null).unwrap();
    }
    // a variant that is not installed is an error that says so, not the untrained fixture
    let m = run_pipeline("scale=3 variant=real", CAPS);
    let (headline, _) = m.errors.first().expect("an error");
    assert!(headline.contains("no bundled x3 real model"), "{headline}");
    let m = run_pipeline("scale=3 variant=fast", CAPS);
    let (headline, _) = m.errors.first().expect("an error");
    assert!(headline.contains("no bundled x3 fast model"), "{headline}");
}
