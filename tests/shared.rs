// SPDX-License-Identifier: MIT OR Apache-2.0
//! Instances in one process that load the same model share one onnxruntime session
//! (`shared-engine`, on by default): one load, outputs as if each ran alone, and one instance's
//! end, teardown or bad caps never disturbs the others.

mod common;

use common::*;
use gst::prelude::*;
use gst_check::Harness;

const MODEL: &str = "fixture-x2-t5.onnx";
const N: u64 = 7;

/// An instance of [`MODEL`]; `cache` is part of what must match to share, so the two tests
/// (threads of one process) never share with each other.
fn instance_with(shared: bool, cache: bool) -> Harness {
    let mut h = harness_cache(MODEL, 2, cache);
    let el = h.element().unwrap();
    el.set_state(gst::State::Null).unwrap();
    el.set_property("shared-engine", shared);
    el.set_state(gst::State::Playing).unwrap();
    h.set_src_caps(caps("RGB", 24, 16));
    h
}

fn instance(shared: bool) -> Harness {
    instance_with(shared, true)
}

fn users(h: &Harness) -> u64 {
    let st = h.element().unwrap().property::<gst::Structure>("stats");
    st.get::<u64>("engine-users").unwrap()
}

fn bytes(bufs: Vec<gst::Buffer>) -> Vec<Vec<u8>> {
    bufs.iter()
        .map(|b| b.map_readable().unwrap().to_vec())
        .collect()
}

fn info() -> gst_video::VideoInfo {
    gst_video::VideoInfo::from_caps(&caps("RGB", 24, 16)).unwrap()
}

/// Stream `seed` through an instance of its own, unshared.
fn alone(seed: u8) -> Vec<Vec<u8>> {
    let mut h = instance(false);
    assert_eq!(users(&h), 1);
    push_frames(&mut h, &info(), N, seed);
    h.push_event(gst::event::Eos::new());
    bytes(pull_all(&mut h))
}

#[test]
fn instances_share_one_session_and_each_stream_is_its_own() {
    init();
    let expected: Vec<_> = (0..4u8).map(alone).collect();
    for n in [2usize, 4] {
        let mut hs: Vec<Harness> = (0..n).map(|_| instance(true)).collect();
        for h in &hs {
            assert_eq!(users(h), n as u64, "{n} instances, one session");
        }
        // frames of the streams interleaved, as concurrent cameras would send them
        for i in 0..N {
            for (k, h) in hs.iter_mut().enumerate() {
                h.push(frame_buffer(&info(), i, k as u8)).unwrap();
            }
        }
        for (k, h) in hs.iter_mut().enumerate() {
            h.push_event(gst::event::Eos::new());
            let out = bytes(pull_all(h));
            assert_eq!(out.len(), N as usize);
            assert!(
                out == expected[k],
                "stream {k} of {n} differs from its run alone"
            );
        }
    }
}

#[test]
fn one_instance_ending_or_failing_leaves_the_others_streaming() {
    init();
    let mut hs: Vec<Harness> = (0..3).map(|_| instance_with(true, false)).collect();
    assert_eq!(users(&hs[0]), 3);
    for i in 0..3 {
        for (k, h) in hs.iter_mut().enumerate() {
            h.push(frame_buffer(&info(), i, k as u8)).unwrap();
        }
    }
    // stream 0 ends, stream 1 is torn down mid-stream
    hs[0].push_event(gst::event::Eos::new());
    let ended = pull_all(&mut hs[0]).len();
    assert_eq!(ended, 3);
    let torn = hs.remove(1);
    torn.element().unwrap().set_state(gst::State::Null).unwrap();
    drop(torn);
    assert_eq!(users(&hs[0]), 2);
    // a fourth instance sharing the session gets caps it refuses (interlaced)
    let mut bad = instance_with(true, false);
    let interlaced = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", 24i32)
        .field("height", 16i32)
        .field("framerate", gst::Fraction::new(25, 1))
        .field("interlace-mode", "interleaved")
        .build();
    bad.set_src_caps(interlaced);
    assert!(bad.push(frame_buffer(&info(), 0, 9)).is_err());
    drop(bad);
    // the remaining stream goes on and ends whole
    let last = hs.last_mut().unwrap();
    for i in 3..N {
        last.push(frame_buffer(&info(), i, 2)).unwrap();
    }
    last.push_event(gst::event::Eos::new());
    assert_eq!(pull_all(last).len(), N as usize);
}

/// Live streams (a harness answers the latency query as live) with `batch-size=4`: their
/// windows go into inferences shared between the streams, each stream gets its own frames back
/// in order with its own timestamps, as processed alone, and one stream ending early leaves
/// the others streaming.
#[test]
fn live_streams_share_inferences_and_each_keeps_its_frames() {
    init();
    let expected: Vec<_> = (0..4u8).map(alone).collect();
    // threads=2/3: a share key of their own, so no other test's streams join these batches
    for (cache, threads) in [(true, 2u32), (false, 3u32)] {
        let all = std::sync::Barrier::new(4);
        let rest = std::sync::Barrier::new(3);
        let results: Vec<(Vec<gst::Buffer>, gst::Structure)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u8)
                .map(|k| {
                    let (all, rest) = (&all, &rest);
                    scope.spawn(move || {
                        let mut h = harness_cache(MODEL, 2, cache);
                        let el = h.element().unwrap();
                        el.set_state(gst::State::Null).unwrap();
                        el.set_property("batch-size", 4u32);
                        el.set_property("batch-wait", 300u32);
                        el.set_property("threads", threads);
                        el.set_state(gst::State::Playing).unwrap();
                        h.set_src_caps(caps("RGB", 24, 16));
                        // stream 3 ends after three frames
                        let n = if k == 3 { 3 } else { N };
                        for i in 0..n {
                            if i < 3 {
                                all.wait()
                            } else {
                                rest.wait()
                            };
                            h.push(frame_buffer(&info(), i, k)).unwrap();
                        }
                        h.push_event(gst::event::Eos::new());
                        let out = pull_all(&mut h);
                        let stats = h.element().unwrap().property::<gst::Structure>("stats");
                        (out, stats)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut shared = 0;
        for (k, (out, stats)) in results.iter().enumerate() {
            assert!(stats.get::<bool>("cross-stream").unwrap(), "{stats}");
            shared = shared.max(stats.get::<u64>("batch-shared").unwrap());
            let n = if k == 3 { 3 } else { N as usize };
            assert_eq!(out.len(), n, "stream {k}");
            for (i, b) in out.iter().enumerate() {
                assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(40 * i as u64)));
            }
            if k < 3 {
                let got = bytes(out.clone());
                for (i, (a, e)) in got.iter().zip(&expected[k]).enumerate() {
                    let worst = a.iter().zip(e).map(|(x, y)| x.abs_diff(*y)).max();
                    assert!(
                        worst <= Some(1),
                        "stream {k} frame {i}: {worst:?} from alone"
                    );
                }
            }
        }
        assert!(
            shared > 0,
            "no inference carried more than one stream's windows (cache {cache})"
        );
    }
}

/// Four instances on one session hold less memory than four sessions: one copy of the weights
/// and one arena (peak RSS of a gst-launch with four branches, `time -v`).
#[test]
fn four_instances_on_one_session_hold_less_than_four_sessions() {
    init();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/mstgan-x2-fidelity-int8.onnx");
    let peak = |shared: bool| {
        let branch = format!(
            "t. ! queue ! mstgansr scale=2 execution-provider=cpu threads=1 shared-engine={shared} \
             model-location={} ! fakesink ",
            model.display()
        );
        let (code, text) = gst_launch_limited(
            u64::MAX >> 10,
            &format!(
                "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=160,height=120 ! tee name=t {}",
                branch.repeat(4)
            ),
        );
        assert_eq!(code, Some(0), "{text}");
        peak_rss_mib(&text)
    };
    let (one, four) = (peak(true), peak(false));
    assert!(
        one * 4 < four * 3,
        "one shared session peaked at {one} MiB, four sessions at {four} MiB"
    );
}
