// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element in the pipelines it is for: live sources behind a leaky queue, serialized events,
//! buffer metadata, latency, QoS, properties while running, broken models, interlaced caps.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;

use common::*;

fn stats(el: &gst::Element) -> gst::Structure {
    el.property::<gst::Structure>("stats")
}

fn stat(el: &gst::Element, key: &str) -> u64 {
    stats(el).get::<u64>(key).unwrap()
}

fn bytes(bufs: &[gst::Buffer]) -> Vec<Vec<u8>> {
    bufs.iter()
        .map(|b| b.map_readable().unwrap().to_vec())
        .collect()
}

fn pts_ms(bufs: &[gst::Buffer]) -> Vec<u64> {
    bufs.iter().map(|b| b.pts().unwrap().mseconds()).collect()
}

/// Frame `t` of a smooth moving picture; `clip` picks one of two unrelated scenes.
fn smooth_frame(
    info: &gst_video::VideoInfo,
    t: u64,
    clip: u32,
    pts: gst::ClockTime,
) -> gst::Buffer {
    let t = t as f32;
    rgb_frame(info, pts, |fx, fy, c| {
        if clip == 0 {
            127.5 + 100.0 * (0.3 * fx + 0.2 * fy + 0.5 * t + c as f32).sin()
        } else {
            127.5 + 100.0 * (0.15 * fx - 0.4 * fy + 0.3 * t + 1.3 * c as f32 + 5.0).sin()
        }
    })
}

/// An x4 T=5 harness at 23x17 RGB whose element posts to a bus of its own.
fn harness_with_bus() -> (gst_check::Harness, gst::Element, gst::Bus) {
    let mut h = harness("fixture-x4-t5.onnx", 4);
    let el = h.element().unwrap();
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    h.set_src_caps(caps("RGB", 23, 17));
    (h, el, bus)
}

fn rgb_info(w: u32, h: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::from_caps(&caps("RGB", w, h)).unwrap()
}

#[test]
fn discont_within_max_gap_continues_the_window() {
    // a leaky queue drops frames and flags the next one DISCONT: the window must go on with the
    // frames that did arrive, exactly as if they had come unflagged
    let info = rgb_info(23, 17);
    let arrived = [0u64, 2, 3, 5, 6, 8, 9];
    let run = |flagged: bool| {
        let mut h = harness("fixture-x4-t5.onnx", 4);
        h.set_src_caps(caps("RGB", 23, 17));
        for (k, &i) in arrived.iter().enumerate() {
            let mut b = frame_buffer(&info, k as u64, 3);
            let bm = b.get_mut().unwrap();
            bm.set_pts(gst::ClockTime::from_mseconds(40 * i));
            if flagged && k > 0 {
                bm.set_flags(gst::BufferFlags::DISCONT);
            }
            h.push(b).unwrap();
        }
        assert!(h.push_event(gst::event::Eos::new()));
        let outs = pull_all(&mut h);
        (outs, h.element().unwrap())
    };
    let (flagged, el) = run(true);
    let (clean, _) = run(false);
    assert_eq!(pts_ms(&flagged), arrived.map(|i| 40 * i).to_vec());
    assert_eq!(bytes(&flagged), bytes(&clean));
    assert_eq!(stat(&el, "restarts"), 0);
    // 7 outputs; the first two and last two replicate the stream's edges
    assert_eq!(stat(&el, "full-windows"), 3);
    // the DISCONT the centre frame carried is carried to its output
    assert!(flagged[1].flags().contains(gst::BufferFlags::DISCONT));
}

#[test]
fn live_source_behind_a_leaky_queue_keeps_distinct_neighbours() {
    init();
    // a 120 fps live source into a slower upscaler: the queue must drop frames
    let (pipeline, sr) = launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=RGB,width=160,height=120,framerate=120/1 ! \
         queue leaky=downstream max-size-buffers=8 max-size-bytes=0 max-size-time=0 ! \
         mstgansr name=sr model-location={} scale=4 execution-provider=cpu threads=1 ! \
         queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000 ! fakesink sync=true",
        fixture("fixture-x4-t5.onnx")
    ));
    let disconts = Arc::new(AtomicU64::new(0));
    let d = disconts.clone();
    sr.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer()
                && b.flags().contains(gst::BufferFlags::DISCONT)
            {
                d.fetch_add(1, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error],
        ) {
            panic!("{msg:?}");
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let st = stats(&sr);
    let (inferred, full) = (
        st.get::<u64>("inferred").unwrap(),
        st.get::<u64>("full-windows").unwrap(),
    );
    assert!(
        disconts.load(Ordering::Relaxed) > 0,
        "no frame was dropped: {st}"
    );
    assert!(inferred >= 5, "{st}");
    // gaps of a frame or two continue the window: (nearly) every output saw T frames
    assert!(full * 10 >= inferred * 8, "{st}");
}

#[test]
fn a_scene_cut_starts_a_clean_window() {
    let info = rgb_info(32, 24);
    let run = |clips: &[(u32, u64)], threshold: f32| {
        let mut h = harness("fixture-x4-t5.onnx", 4);
        h.element()
            .unwrap()
            .set_property("scene-cut-threshold", threshold);
        h.set_src_caps(caps("RGB", 32, 24));
        for (i, &(clip, t)) in clips.iter().enumerate() {
            h.push(smooth_frame(
                &info,
                t,
                clip,
                gst::ClockTime::from_mseconds(40 * i as u64),
            ))
            .unwrap();
        }
        assert!(h.push_event(gst::event::Eos::new()));
        (bytes(&pull_all(&mut h)), h.element().unwrap())
    };
    let a: Vec<(u32, u64)> = (0..6).map(|t| (0, t)).collect();
    let b: Vec<(u32, u64)> = (0..6).map(|t| (1, t)).collect();
    let spliced: Vec<(u32, u64)> = a.iter().chain(&b).copied().collect();
    let (alone_a, _) = run(&a, 10.0);
    let (alone_b, _) = run(&b, 10.0);
    let (cut, el) = run(&spliced, 10.0);
    assert_eq!(stat(&el, "scene-cuts"), 1);
    // each output equals the output of its own clip processed alone: no ghost of the other scene
    assert_eq!(cut.len(), 12);
    assert!(
        cut[..6] == alone_a[..],
        "clip A's outputs borrow from clip B"
    );
    assert!(
        cut[6..] == alone_b[..],
        "clip B's outputs borrow from clip A"
    );
    // without detection the frames next to the cut do borrow (what the test guards against)
    let (blind, el) = run(&spliced, 0.0);
    assert_eq!(stat(&el, "scene-cuts"), 0);
    assert!(blind[4] != alone_a[4] && blind[6] != alone_b[0]);
}

/// Pushes `items` (a frame index, or an event) through a T=5 element and returns what left its
/// source pad, in order: "b<pts ms>" for buffers, the event type name otherwise.
fn order_through(items: Vec<Result<u64, gst::Event>>) -> Vec<String> {
    let mut h = harness("fixture-x4-t5.onnx", 4);
    h.set_src_caps(caps("RGB", 23, 17));
    let info = rgb_info(23, 17);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    h.element().unwrap().static_pad("src").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let item = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => {
                    format!("b{}", b.pts().unwrap().mseconds())
                }
                Some(gst::PadProbeData::Event(e)) => match e.view() {
                    gst::EventView::CustomDownstream(c) => c
                        .structure()
                        .map(|s| s.name().to_string())
                        .unwrap_or_default(),
                    _ => e.type_().name().to_string(),
                },
                _ => String::new(),
            };
            s.lock().unwrap().push(item);
            gst::PadProbeReturn::Ok
        },
    );
    for item in items {
        match item {
            Ok(i) => {
                h.push(frame_buffer(&info, i, 0)).unwrap();
            }
            Err(e) => assert!(h.push_event(e)),
        }
    }
    let out = seen.lock().unwrap().clone();
    out.into_iter()
        .filter(|s| {
            s.starts_with('b') || ["marker", "segment", "gap", "eos", "tag"].contains(&s.as_str())
        })
        .collect()
}

#[test]
fn serialized_events_keep_their_place() {
    let marker = || {
        Err(gst::event::CustomDownstream::new(
            gst::Structure::new_empty("marker"),
        ))
    };
    let segment = |start_ms: u64| {
        let mut seg = gst::FormattedSegment::<gst::ClockTime>::new();
        seg.set_start(gst::ClockTime::from_mseconds(start_ms));
        seg.set_time(gst::ClockTime::from_mseconds(start_ms));
        Err(gst::event::Segment::new(&seg))
    };
    let gap = |ms: u64| {
        Err(gst::event::Gap::builder(gst::ClockTime::from_mseconds(ms))
            .duration(gst::ClockTime::from_mseconds(40))
            .build())
    };
    let mut items: Vec<Result<u64, gst::Event>> = (0..4).map(Ok).collect();
    items.push(marker());
    items.extend((4..7).map(Ok));
    // a non-flushing seek or a loop: a new segment while frames 5 and 6 are held
    items.push(segment(400));
    items.extend((10..14).map(Ok));
    // a one-frame gap continues the window; the event keeps its place among the frames
    items.push(gap(560));
    items.extend((15..17).map(Ok));
    items.push(Err(gst::event::Eos::new()));
    let got = order_through(items);
    let want: Vec<String> = [
        "b0", "b40", "b80", "b120", "marker", "b160", "b200", "b240", "segment", "b400", "b440",
        "b480", "b520", "gap", "b600", "b640", "eos",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // the harness's own first segment comes before everything
    assert_eq!(
        got.iter()
            .skip_while(|s| *s == "segment")
            .cloned()
            .collect::<Vec<_>>(),
        want
    );
}

#[test]
fn a_long_gap_event_ends_the_run() {
    init();
    let gap = gst::event::Gap::builder(gst::ClockTime::from_mseconds(160))
        .duration(gst::ClockTime::from_seconds(2))
        .build();
    let mut items: Vec<Result<u64, gst::Event>> = (0..4).map(Ok).collect();
    items.push(Err(gap));
    items.extend((60..62).map(Ok));
    items.push(Err(gst::event::Eos::new()));
    let got = order_through(items);
    let got: Vec<&str> = got
        .iter()
        .map(|s| s.as_str())
        .filter(|s| *s != "segment")
        .collect();
    // the run before the gap is finished before the gap goes out
    assert_eq!(
        got,
        ["b0", "b40", "b80", "b120", "gap", "b2400", "b2440", "eos"]
    );
}

#[test]
fn flags_metas_and_the_output_pool() {
    init();
    gst::meta::CustomMeta::register("MstTestMeta", &[]);
    let mut h = harness("fixture-x2-t5.onnx", 2);
    h.set_src_caps(caps("RGB", 24, 16));
    let info = rgb_info(24, 16);
    let mut kept = Vec::new();
    for i in 0..6u64 {
        let mut b = frame_buffer(&info, i, 0);
        {
            let bm = b.get_mut().unwrap();
            let mut m = gst::meta::CustomMeta::add(bm, "MstTestMeta").unwrap();
            m.mut_structure().set("index", i);
            if i == 3 {
                bm.set_flags(gst::BufferFlags::MARKER);
            }
            gst_video::VideoRegionOfInterestMeta::add(bm, "face", (2, 3, 4, 5));
        }
        kept.push(b.clone());
        h.push(b).unwrap();
    }
    // the element keeps no upstream buffer (a camera's or decoder's pool must not run dry):
    // our clones are the only references left
    for (i, b) in kept.iter().enumerate() {
        assert!(b.is_writable(), "input {i} is still held");
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let outs = pull_all(&mut h);
    assert_eq!(outs.len(), 6);
    for (i, b) in outs.iter().enumerate() {
        let m = gst::meta::CustomMeta::from_buffer(b, "MstTestMeta").expect("custom meta");
        assert_eq!(m.structure().get::<u64>("index").unwrap(), i as u64);
        assert_eq!(
            b.flags().contains(gst::BufferFlags::MARKER),
            i == 3,
            "flags of {i}"
        );
        // size-dependent metas are scaled with the picture
        let roi = b
            .meta::<gst_video::VideoRegionOfInterestMeta>()
            .expect("ROI meta");
        assert_eq!(roi.rect(), (4, 6, 8, 10));
        assert_eq!(b.offset(), i as u64);
    }
    // outputs came from the negotiated pool, not fresh allocations
    let el = h.element().unwrap();
    let pool = el
        .downcast_ref::<gst_base::BaseTransform>()
        .unwrap()
        .buffer_pool()
        .expect("a negotiated pool");
    assert!(pool.is::<gst_video::VideoBufferPool>());
    assert!(outs[0].meta::<gst_video::VideoMeta>().is_some());
}

#[test]
fn latency_query_never_waits_for_an_inference() {
    init();
    // big frames make one inference slow enough to overlap with queries
    let (w, h_px) = (960u32, 720u32);
    let mut h = harness("fixture-x2-t5.onnx", 2);
    // no QoS: every window is inferred, whatever the harness clock says
    h.element().unwrap().set_property("qos", false);
    h.set_src_caps(caps("RGB", w, h_px));
    h.set_upstream_latency(gst::ClockTime::ZERO);
    let info = rgb_info(w, h_px);
    for i in 0..2 {
        h.push(frame_buffer(&info, i, 0)).unwrap();
    }
    let el = h.element().unwrap();
    let src = el.static_pad("src").unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let (r, pad) = (running.clone(), src.clone());
    let querier = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let mut n = 0;
        while r.load(Ordering::Relaxed) {
            let mut q = gst::query::Latency::new();
            let t = Instant::now();
            // the query goes to the element's src pad as a downstream peer's would
            assert!(pad.query(&mut q));
            worst = worst.max(t.elapsed());
            n += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        (worst, n)
    });
    // frame 2 completes the first window: this push runs the first inference
    let t = Instant::now();
    h.push(frame_buffer(&info, 2, 0)).unwrap();
    let inference = t.elapsed();
    running.store(false, Ordering::Relaxed);
    let (worst, n) = querier.join().unwrap();
    assert!(n >= 3, "only {n} queries during a {inference:?} inference");
    assert!(
        worst * 4 < inference,
        "a latency query took {worst:?} while an inference took {inference:?}"
    );
}

#[test]
fn a_latency_message_announces_the_latency_once_known() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src is-live=true format=time caps=video/x-raw,format=RGB,width=32,height=24,framerate=25/1 ! \
         mstgansr name=sr model-location={} scale=2 execution-provider=cpu ! fakesink sync=false",
        fixture("fixture-x2-t5.onnx")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sr = pipeline.by_name("sr").unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    // before caps the element cannot answer: a query through it fails
    let mut q = gst::query::Latency::new();
    assert!(!sr.static_pad("src").unwrap().query(&mut q));
    let info = rgb_info(32, 24);
    src.push_buffer(frame_buffer(&info, 0, 0)).unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Latency],
        )
        .expect("a Latency message");
    assert_eq!(msg.src().map(|s| s.name()), Some(sr.name()));
    let mut q = gst::query::Latency::new();
    assert!(sr.static_pad("src").unwrap().query(&mut q));
    let (live, min, _) = q.result();
    assert!(live && min >= gst::ClockTime::from_mseconds(80), "{min}");
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn qos_drops_late_frames_before_inference() {
    let (mut h, el, bus) = harness_with_bus();
    let info = rgb_info(23, 17);
    for i in 0..4 {
        h.push(frame_buffer(&info, i, 0)).unwrap();
    }
    // the sink says: anything before 1 s of running time will be late
    assert!(h.push_upstream_event(gst::event::Qos::new(
        gst::QOSType::Underflow,
        1.5,
        gst::ClockTimeDiff::from(900_000_000i64),
        gst::ClockTime::from_mseconds(100),
    )));
    for i in 26..30 {
        h.push(frame_buffer(&info, i, 0)).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let outs = pull_all(&mut h);
    // frames 2 and 3 were still in the window: their outputs are late and never computed
    assert_eq!(pts_ms(&outs), [0, 40, 1040, 1080, 1120, 1160]);
    assert_eq!(stat(&el, "dropped"), 2);
    assert_eq!(stat(&el, "inferred"), 6);
    let qos: Vec<gst::Message> =
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Qos])).collect();
    assert_eq!(qos.len(), 2, "{qos:?}");
    if let gst::MessageView::Qos(q) = qos[0].view() {
        assert_eq!(q.get().3, Some(gst::ClockTime::from_mseconds(80)));
        assert_eq!(
            q.stats().1,
            gst::GenericFormattedValue::Buffers(Some(gst::format::Buffers::from_u64(1)))
        );
    }
    // after a drop the next output is a discontinuity
    assert!(outs[2].flags().contains(gst::BufferFlags::DISCONT));
}

/// The QoS verdict on a live stream, driven by a test clock: each output is judged when the
/// frame that completes its window arrives, against its deadline (running time + the pipeline
/// latency of the last LATENCY event). Well before it: inferred; at it exactly (an inference
/// would end after it): resized or dropped by `late-frames`; after it: dropped. At EOS the
/// run's edge windows find frames waiting (the newest is two frames old): not worth an
/// inference either.
#[test]
fn late_frames_by_the_clock_are_resized_or_dropped() {
    // per output k = 1..5: the pipeline latency (ms) and the clock, in ms from its deadline,
    // when the frame completing its window arrives (a test clock only moves forward)
    let plan = [
        (200u64, -190i64),
        (200, 0),
        (200, 1),
        (1000, -190),
        (1000, 0),
    ];
    let run = |policy: &str| {
        let mut h = harness("fixture-x4-t5.onnx", 4);
        let el = h.element().unwrap();
        el.set_property_from_str("late-frames", policy);
        h.set_upstream_latency(gst::ClockTime::ZERO);
        h.use_testclock();
        h.set_src_caps(caps("RGB", 23, 17));
        let info = rgb_info(23, 17);
        let mut latency = 0;
        for i in 0..8u64 {
            // frame i completes the window of output i - 2 (T=5)
            if let Some(&(lat, off)) = i.checked_sub(3).and_then(|k| plan.get(k as usize)) {
                if lat != latency {
                    latency = lat;
                    let event = gst::event::Latency::new(gst::ClockTime::from_mseconds(lat));
                    assert!(h.push_upstream_event(event));
                }
                let due = 40 * (i - 2) + lat;
                h.set_time(gst::ClockTime::from_mseconds((due as i64 + off) as u64))
                    .unwrap();
            }
            h.push(frame_buffer(&info, i, 0)).unwrap();
        }
        assert!(h.push_event(gst::event::Eos::new()));
        let outs = pull_all(&mut h);
        let s = stats(&el);
        let get = |k: &str| s.get::<u64>(k).unwrap();
        let counts = (get("inferred"), get("resized"), get("dropped"));
        (pts_ms(&outs), counts, s)
    };
    let (pts, counts, s) = run("resize");
    assert_eq!(pts, [0, 40, 80, 160, 200, 240, 280], "{s}");
    // inferred: 0 (the first), 1, 4; resized: 2, 5, 6 and 7; dropped: 3
    assert_eq!(counts, (3, 4, 1), "{s}");
    let (pts, counts, s) = run("drop");
    assert_eq!(pts, [0, 40, 160], "{s}");
    assert_eq!(counts, (3, 0, 5), "{s}");
}

#[test]
fn live_overload_resizes_late_frames_and_keeps_the_rate() {
    init();
    let run = |policy: &str| {
        let (pipeline, sr) = launch(&format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,format=RGB,width=160,height=120,framerate=60/1 ! \
             queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000 ! \
             mstgansr name=sr model-location={} scale=4 execution-provider=cpu threads=1 late-frames={policy} ! \
             queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000 ! fakesink sync=true",
            fixture("fixture-x4-t5.onnx")
        ));
        pipeline.set_state(gst::State::Playing).unwrap();
        // the warm-up at caps time runs two inferences first: leave time after it
        std::thread::sleep(Duration::from_secs(4));
        pipeline.set_state(gst::State::Null).unwrap();
        stats(&sr)
    };
    let resize = run("resize");
    let drop = run("drop");
    let get = |s: &gst::Structure, k: &str| s.get::<u64>(k).unwrap();
    assert!(get(&resize, "resized") > 0, "{resize}");
    assert_eq!(get(&drop, "resized"), 0, "{drop}");
    // resizing keeps more frames than dropping them
    assert!(
        get(&resize, "frames-out") > get(&drop, "frames-out"),
        "{resize} vs {drop}"
    );
    assert_eq!(
        get(&resize, "frames-out"),
        get(&resize, "inferred") + get(&resize, "resized")
    );
}

#[test]
fn ready_only_properties_are_refused_while_running() {
    let (mut h, el, bus) = harness_with_bus();
    el.set_property("scale", 2u32);
    el.set_property("model-location", "/elsewhere.onnx");
    assert_eq!(el.property::<u32>("scale"), 4);
    assert_eq!(
        el.property::<Option<String>>("model-location"),
        Some(fixture("fixture-x4-t5.onnx"))
    );
    let warn = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    if let gst::MessageView::Warning(w) = warn.view() {
        assert!(
            w.error().message().contains("`scale` can only be changed"),
            "{w:?}"
        );
    }
    // tuning knobs do change while running
    el.set_property("max-gap", 2u32);
    assert_eq!(el.property::<u32>("max-gap"), 2);
    // and the caps still follow the scale it started with
    let info = rgb_info(23, 17);
    push_frames(&mut h, &info, 3, 0);
    assert!(h.push_event(gst::event::Eos::new()));
    let out = pull_all(&mut h);
    assert_eq!(out[0].size(), 92 * 68 * 3);
}

#[test]
fn broken_models_are_refused_at_start_with_what_is_wrong() {
    for (model, scale, want) in [
        (
            "broken-rank4.onnx",
            2,
            "input `frames` is Float32 [?, 3, ?, ?]; expected float32 [N, T=5, 3, H, W]",
        ),
        ("broken-dtype.onnx", 2, "input `frames` is Float16"),
        (
            "broken-window.onnx",
            2,
            "expected float32 [N, T=3, 3, H, W] (T from the `window` metadata)",
        ),
        (
            "broken-output.onnx",
            2,
            "output `upscaled` is Float32 [?, 5, 3, ?, ?]; expected float32 [N, 3, sH, sW]",
        ),
        (
            "fixture-x4-t5.extractor.onnx",
            4,
            "is the extractor graph of a split model",
        ),
        (
            "fixture-x4-t5.fusion.onnx",
            4,
            "is the fusion graph of a split model",
        ),
    ] {
        init();
        let el = gst::ElementFactory::make("mstgansr")
            .property("model-location", fixture(model))
            .property("scale", scale as u32)
            .property_from_str("execution-provider", "cpu")
            .build()
            .unwrap();
        let bus = gst::Bus::new();
        el.set_bus(Some(&bus));
        el.set_state(gst::State::Ready).unwrap();
        assert!(
            el.set_state(gst::State::Paused).is_err(),
            "{model} was accepted"
        );
        let err = bus
            .pop_filtered(&[gst::MessageType::Error])
            .expect("an error");
        let gst::MessageView::Error(e) = err.view() else {
            unreachable!()
        };
        let headline = e.error().message().to_string();
        assert!(
            headline.contains(model) && headline.contains(want),
            "{model}: {headline}"
        );
        if model.contains(".extractor.") || model.contains(".fusion.") {
            assert!(
                headline.contains(&fixture("fixture-x4-t5.onnx")),
                "{headline}"
            );
        }
        el.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn interlaced_input_is_refused_with_a_reason() {
    let m = run_pipeline(
        &format!("model-location={} scale=2", fixture("fixture-x2-t5.onnx")),
        "video/x-raw,format=RGB,width=32,height=24,interlace-mode=interleaved",
    );
    // the first error, the one gst-launch and applications report, names interlacing and the fix
    let (err, _) = m.errors.first().expect("refused");
    assert!(
        err.contains("interlaced video is not supported") && err.contains("deinterlace"),
        "{:?}",
        m.errors
    );
}

/// A pipeline upscaling 640x360 x4 in 64 px tiles with the trained model: about 60 tiles and
/// seconds per frame on a CPU, so a stop or a flush lands inside the first frame. Enough frames
/// that some are left after a flush during the first (a T=7 window waits for 4).
fn slow_tiled_pipeline() -> (gst::Pipeline, gst::Element) {
    launch(
        "videotestsrc pattern=smpte num-buffers=12 ! video/x-raw,format=RGB,width=640,height=360,framerate=25/1 \
         ! mstgansr name=sr scale=4 variant=fidelity tile-size=64 ! fakesink sync=false",
    )
}

/// A pipeline from a gst-launch description, and its element named `sr`.
fn launch(description: &str) -> (gst::Pipeline, gst::Element) {
    let p = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sr = p.by_name("sr").unwrap();
    (p, sr)
}

fn wait_for_tiles(sr: &gst::Element, at_least: u64) {
    let t = Instant::now();
    while stat(sr, "tiles-done") < at_least {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no tile ran in 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The slow pipeline, playing, with its first frame's first tile done; and its tiles a frame.
fn inside_the_first_frame() -> (gst::Pipeline, gst::Element, u64) {
    init();
    let (p, sr) = slow_tiled_pipeline();
    p.set_state(gst::State::Playing).unwrap();
    wait_for_tiles(&sr, 1);
    let tiles = stat(&sr, "tiles");
    assert!(
        tiles >= 20,
        "only {tiles} tiles per frame: the test needs a slow frame"
    );
    (p, sr, tiles)
}

#[test]
fn stopping_does_not_wait_for_the_frame_in_progress() {
    let (p, sr, tiles) = inside_the_first_frame();
    p.set_state(gst::State::Null).unwrap();
    // stats outlive the stop: had the stop waited for the frame, all its tiles would be done
    let done = stat(&sr, "tiles-done");
    assert!(
        done < tiles,
        "{done} of the first frame's {tiles} tiles ran before the stop returned"
    );
    assert_eq!(stat(&sr, "frames-out"), 0);
}

#[test]
fn a_flush_ends_the_frame_in_progress_and_the_stream_goes_on() {
    init();
    let (p, sr) = slow_tiled_pipeline();
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    wait_for_tiles(&sr, 1);
    let tiles = stat(&sr, "tiles");
    assert!(
        p.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO)
            .is_ok()
    );
    // the seek returns once the flush has gone through: the streaming thread left the frame
    let after_flush = stat(&sr, "tiles-done");
    assert!(
        after_flush < tiles,
        "the flush waited for the frame: {after_flush} of {tiles} tiles done"
    );
    // inference runs again after FLUSH_STOP
    wait_for_tiles(&sr, after_flush + 2);
    let errors: Vec<String> = std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error]))
        .map(|m| format!("{m:?}"))
        .collect();
    assert!(errors.is_empty(), "errors after the flush: {errors:?}");
    p.set_state(gst::State::Null).unwrap();
}

/// The state lock is not held through an inference: properties that read the running model,
/// the READY-only check and the LATENCY query answer within the frame in progress.
#[test]
fn properties_and_queries_do_not_wait_for_the_frame_in_progress() {
    let (p, sr, tiles) = inside_the_first_frame();
    let t = Instant::now();
    let model = sr
        .property::<Option<String>>("model-path")
        .unwrap_or_default();
    let provider = sr
        .property::<Option<String>>("active-provider")
        .unwrap_or_default();
    let window = sr.property::<u32>("window");
    // READY-only: refused while running, and said so at once
    sr.set_property("threads", 1u32);
    let mut q = gst::query::Latency::new();
    let answered = sr.static_pad("src").unwrap().query(&mut q);
    let took = t.elapsed();
    let done = stat(&sr, "tiles-done");
    p.set_state(gst::State::Null).unwrap();
    assert!(
        model.ends_with(".onnx") && provider == "cpu" && window >= 3,
        "{model} {provider} {window}"
    );
    assert!(answered, "LATENCY query failed");
    assert!(
        done < tiles,
        "the frame finished ({done} of {tiles} tiles) before the answers came: not measured inside it"
    );
    assert!(
        took < Duration::from_secs(1),
        "answers took {took:?} inside a frame"
    );
}
