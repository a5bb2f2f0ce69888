// SPDX-License-Identifier: MIT OR Apache-2.0
//! The examples, run as users run them (built by `cargo test --all-targets`), on CPU with the
//! small fixture models and short clips. RTSP traffic stays on 127.0.0.1.

use std::io::Read;
mod common;

use std::path::{Path, PathBuf};

use common::fixture;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Ctrl-C, as a user at a terminal sends it.
fn interrupt(child: &Child) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
}

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo test --all-targets` (builds the examples)",
        p.display()
    );
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mstgansr-examples-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Runs an example to success and returns its stdout.
fn stdout_of(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

fn gst_launch(args: &str) {
    let st = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(st.success(), "gst-launch-1.0 {args}");
}

/// Streams of an MP4: (caps name, width, height) per stream, and decoded video frames.
fn probe_mp4(path: &Path) -> (Vec<(String, i32, i32)>, u64) {
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux name=d d.video_0 ! queue ! h264parse ! avdec_h264 ! fakesink name=v",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let demux = p.by_name("d").unwrap();
    let streams = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let s2 = streams.clone();
    let pipe_weak = p.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap();
        let s = caps.structure(0).unwrap();
        s2.lock().unwrap().push((
            s.name().to_string(),
            s.get::<i32>("width").unwrap_or(0),
            s.get::<i32>("height").unwrap_or(0),
        ));
        if pad.name().starts_with("audio") {
            let p = pipe_weak.upgrade().unwrap();
            let sink = gst::ElementFactory::make("fakesink")
                .property("async", false)
                .build()
                .unwrap();
            p.add(&sink).unwrap();
            sink.sync_state_with_parent().unwrap();
            pad.link(&sink.static_pad("sink").unwrap()).unwrap();
        }
    });
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let f2 = frames.clone();
    p.by_name("v")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            f2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    p.set_state(gst::State::Playing).unwrap();
    for msg in p
        .bus()
        .unwrap()
        .iter_timed(gst::ClockTime::from_seconds(30))
    {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                panic!("{} is not playable: {}", path.display(), e.error())
            }
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    let s = streams.lock().unwrap().clone();
    (s, frames.load(std::sync::atomic::Ordering::SeqCst))
}

fn av_input(name: &str, frames: u32, w: u32, h: u32) -> PathBuf {
    let p = tmp(name);
    gst_launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width={w},height={h},framerate=25/1 ! x264enc ! \
         mp4mux name=m ! filesink location={} audiotestsrc num-buffers={} samplesperbuffer=1764 ! \
         audio/x-raw,rate=44100 ! avenc_aac ! m.",
        p.display(),
        frames
    ));
    p
}

/// `upscale_file INPUT OUT --scale S` on CPU with the fixture model of that scale.
fn upscale_file(input: &Path, out: &Path, scale: u32) -> Command {
    let mut c = Command::new(example("upscale_file"));
    c.args([
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--provider",
        "cpu",
    ])
    .args(["--scale", &scale.to_string()])
    .args(["--model", &fixture(&format!("fixture-x{scale}-t5.onnx"))]);
    c
}

#[test]
fn upscale_file_keeps_audio_and_upscales_every_frame() {
    let input = av_input("av.mp4", 20, 48, 32);
    let out = tmp("av-x4.mp4");
    let o = upscale_file(&input, &out, 4).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("20/20 frames") || err.contains("(20 frames"),
        "progress: {err}"
    );
    let (streams, frames) = probe_mp4(&out);
    assert!(
        streams
            .iter()
            .any(|s| s.0 == "video/x-h264" && s.1 == 192 && s.2 == 128),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|s| s.0 == "audio/mpeg"),
        "audio carried through: {streams:?}"
    );
    assert_eq!(frames, 20);
}

/// `gst-discoverer-1.0`'s video line and depth for a file: ("H.264 (High Profile)", 24).
fn discover(path: &Path) -> (String, u32) {
    let out = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0 (gstreamer1.0-plugins-base-apps, scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let video = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once("video #")
                .map(|(_, r)| r.split_once(": ").unwrap().1.to_string())
        })
        .unwrap_or_else(|| panic!("no video stream: {text}"));
    let depth = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Depth: ")
                .and_then(|d| d.parse().ok())
        })
        .unwrap_or_else(|| panic!("no depth: {text}"));
    (video, depth)
}

#[test]
fn upscale_file_writes_profiles_that_play_everywhere() {
    // 8-bit in: H.264 High, 4:2:0 8-bit
    let input = tmp("profile8.mp4");
    gst_launch(&format!(
        "videotestsrc num-buffers=6 pattern=ball ! video/x-raw,format=I420,width=32,height=24,framerate=25/1 ! \
         x264enc ! mp4mux ! filesink location={}",
        input.display()
    ));
    let out = tmp("profile8-x2.mp4");
    stdout_of(&mut upscale_file(&input, &out, 2));
    assert_eq!(discover(&out), ("H.264 (High Profile)".into(), 24));
    // 10-bit in: stays 10-bit, as High 10
    let input10 = tmp("profile10.mp4");
    gst_launch(&format!(
        "videotestsrc num-buffers=6 pattern=ball ! video/x-raw,format=I420_10LE,width=32,height=24,framerate=25/1 ! \
         x264enc ! video/x-h264,profile=high-10 ! mp4mux ! filesink location={}",
        input10.display()
    ));
    let out = tmp("profile10-x2.mp4");
    stdout_of(&mut upscale_file(&input10, &out, 2));
    assert_eq!(discover(&out), ("H.264 (High 10 Profile)".into(), 30));
    // full chroma on request
    let out = tmp("profile444-x2.mp4");
    stdout_of(upscale_file(&input, &out, 2).args(["--chroma", "444"]));
    assert_eq!(discover(&out).0, "H.264 (High 4:4:4 Profile)");
}

#[test]
fn upscale_file_errors_are_clear() {
    let o = Command::new(example("upscale_file"))
        .args(["/nonexistent/in.mp4", "/tmp/x.mp4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read /nonexistent/in.mp4"));
    let input = av_input("small.mp4", 3, 16, 16);
    let o = Command::new(example("upscale_file"))
        .args([input.to_str().unwrap(), "/nonexistent-dir/out.mp4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write /nonexistent-dir/out.mp4"));
    // element-level mistakes: the element's words, a non-zero exit, no output file left behind
    let out = tmp("never-written.mp4");
    for (args, code, says) in [
        (vec!["--scale", "5"], 2, "--scale must be 2, 3 or 4, not 5"),
        (vec!["--variant", "bogus"], 2, "variant must be one of"),
        (
            vec!["--provider", "bogus"],
            2,
            "execution-provider must be one of",
        ),
        (
            vec!["--model", "/nonexistent/model.onnx"],
            1,
            "model file /nonexistent/model.onnx does not exist",
        ),
        (
            vec!["--provider", "cuda"],
            1,
            "execution provider cuda is not available",
        ),
        (
            vec!["--scale", "3", "--variant", "fast"],
            1,
            "no bundled x3 fast model",
        ),
    ] {
        let o = Command::new(example("upscale_file"))
            .args([input.to_str().unwrap(), out.to_str().unwrap()])
            .args(&args)
            .env(
                "MSTGANSR_MODEL_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
}

#[test]
fn every_example_answers_help() {
    for name in [
        "upscale_file",
        "rtsp_relay",
        "rtsp_test_source",
        "embed_app",
        "bench",
        "live_bench",
        "convert_bench",
    ] {
        let o = Command::new(example(name)).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{name} --help: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            text.starts_with(&format!("usage: {name}")),
            "{name}: {text}"
        );
        // and a mistake is an error that names it, not a panic
        let o = Command::new(example(name))
            .args(["--bogus", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains("--bogus") && !err.contains("panicked"),
            "{name}: {err}"
        );
    }
}

#[test]
fn rtsp_relay_stops_at_once_on_a_model_mistake() {
    let o = Command::new(example("rtsp_relay"))
        .args([
            "--source",
            "rtsp://127.0.0.1:9/cam",
            "--model",
            "/nonexistent/model.onnx",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("model file /nonexistent/model.onnx does not exist"),
        "{err}"
    );
}

#[test]
fn upscale_file_ctrl_c_leaves_a_playable_file() {
    let input = av_input("long.mp4", 3000, 96, 64);
    let out = tmp("long-x2.mp4");
    let mut child = upscale_file(&input, &out, 2)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    interrupt(&child);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let (streams, frames) = probe_mp4(&out);
    assert!(
        streams.iter().any(|s| s.0 == "video/x-h264" && s.1 == 192),
        "{streams:?}"
    );
    assert!(
        frames > 0 && frames < 3000,
        "an interrupted but playable file: {frames} frames"
    );
}

#[test]
fn embed_app_shows_latency_and_eos_drain() {
    let text = stdout_of(Command::new(example("embed_app")).args([
        "--frames",
        "12",
        "--model",
        &fixture("fixture-x4-t5.onnx"),
    ]));
    assert!(
        text.contains("first output came after input #3 (latency 2 frames)"),
        "{text}"
    );
    assert!(text.contains("before EOS: 10 of 12"), "{text}");
    assert!(text.contains("after EOS: 12 of 12"), "{text}");
    assert!(text.contains("256x192"), "{text}");
}

#[test]
fn live_bench_prints_its_table() {
    let text = stdout_of(
        Command::new(example("live_bench"))
            .args(["--seconds", "2", "--rounds", "1", "--recipes", "c,d"])
            .args(["--width", "64", "--height", "48", "--scale", "4"])
            .args(["--model", &fixture("fixture-x4-t5.onnx")]),
    );
    for recipe in [
        "new recipe, late-frames=drop",
        "new recipe, late-frames=resize",
    ] {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| {recipe} |")))
            .unwrap_or_else(|| panic!("no row for {recipe}:\n{text}"));
        let fps: f64 = row.split('|').nth(2).unwrap().trim().parse().unwrap();
        // a tiny model on 64x48 keeps up with the 30 fps camera
        assert!(fps > 10.0, "{row}");
    }
}

// ---- RTSP relay --------------------------------------------------------------------------------

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Held by the tests whose live pipelines must keep up with a clock (RTSP cameras, the live
/// recipes): run together on 2 cores they starve each other, and a starved live test measures
/// the machine, not the code.
fn live_slot() -> std::sync::MutexGuard<'static, ()> {
    static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn source(port: u16) -> Kill {
    Kill(
        Command::new(example("rtsp_test_source"))
            .args([
                "--port",
                &port.to_string(),
                "--width",
                "160",
                "--height",
                "120",
                "--fps",
                "15",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn relay(src_port: u16, port: u16) -> Kill {
    Kill(
        Command::new(example("rtsp_relay"))
            .args([
                "--source",
                &format!("rtsp://127.0.0.1:{src_port}/cam"),
                "--port",
                &port.to_string(),
            ])
            .args([
                "--width",
                "160",
                "--height",
                "120",
                "--fps",
                "15",
                "--scale",
                "2",
                "--provider",
                "cpu",
            ])
            .args(["--model", &fixture("fixture-x2-t5.onnx")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// An RTSP client on the relay's `mount`: returns an appsink delivering RGB frames.
fn client_at(port: u16, mount: &str) -> (gst::Pipeline, gst_app::AppSink) {
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "rtspsrc location=rtsp://127.0.0.1:{port}{mount} protocols=tcp latency=100 ! decodebin ! videoconvert ! \
         video/x-raw,format=RGB ! appsink name=out sync=false max-buffers=2 drop=true"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    (p, sink)
}

/// Next frame as (width, height, mean byte value), waiting up to `secs`.
fn next_frame(sink: &gst_app::AppSink, secs: u64) -> Option<(i32, i32, f64)> {
    let s = sink.try_pull_sample(gst::ClockTime::from_seconds(secs))?;
    let st = s.caps()?.structure(0)?.to_owned();
    let m = s.buffer()?.map_readable().ok()?;
    let mean = m.iter().map(|&v| v as u64).sum::<u64>() as f64 / m.len() as f64;
    Some((st.get("width").ok()?, st.get("height").ok()?, mean))
}

/// Waits until the relay delivers a frame of camera content (colour bars; black = no camera).
fn wait_for_camera_frames(sink: &gst_app::AppSink, deadline: Duration) -> Option<(i32, i32, f64)> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Some(f) = next_frame(sink, 2)
            && f.2 > 60.0
        {
            return Some(f);
        }
    }
    None
}

fn connect_client(port: u16) -> (gst::Pipeline, gst_app::AppSink) {
    connect_client_at(port, "/upscaled")
}

fn connect_client_at(port: u16, mount: &str) -> (gst::Pipeline, gst_app::AppSink) {
    // the server may need a moment to listen
    for _ in 0..20 {
        let (p, s) = client_at(port, mount);
        if next_frame(&s, 3).is_some() {
            return (p, s);
        }
        p.set_state(gst::State::Null).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("no RTSP client could connect to the relay on port {port}");
}

#[test]
fn rtsp_relay_serves_upscaled_frames() {
    let _live = live_slot();
    let (sp, rp) = (free_port(), free_port());
    let _src = source(sp);
    std::thread::sleep(Duration::from_millis(500));
    let _relay = relay(sp, rp);
    let (p, sink) = connect_client(rp);
    let f = wait_for_camera_frames(&sink, Duration::from_secs(30))
        .expect("camera frames through the relay");
    assert_eq!((f.0, f.1), (320, 240), "upscaled x2");
    let mut n = 0;
    while n < 10 && next_frame(&sink, 5).is_some() {
        n += 1;
    }
    assert_eq!(n, 10, "frames keep coming");
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn rtsp_relay_recovers_when_the_camera_comes_back() {
    let _live = live_slot();
    let (sp, rp) = (free_port(), free_port());
    let src = source(sp);
    std::thread::sleep(Duration::from_millis(500));
    let _relay = relay(sp, rp);
    let (p, sink) = connect_client(rp);
    wait_for_camera_frames(&sink, Duration::from_secs(30))
        .expect("camera frames before the outage");
    drop(src); // the camera dies
    // the relay stays live: the client keeps getting (black) frames at the served size
    std::thread::sleep(Duration::from_secs(2));
    let during = next_frame(&sink, 5).expect("frames during the outage");
    assert_eq!((during.0, during.1), (320, 240));
    let _src2 = source(sp); // and comes back on the same address
    let f = wait_for_camera_frames(&sink, Duration::from_secs(40))
        .expect("camera frames after the camera came back");
    assert_eq!((f.0, f.1), (320, 240));
    p.set_state(gst::State::Null).unwrap();
}

/// The body of `GET path` on the relay's metrics port.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn rtsp_relay_serves_many_cameras_each_on_its_own() {
    let _live = live_slot();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut sources: Vec<Option<Kill>> = ports.iter().map(|p| Some(source(*p))).collect();
    std::thread::sleep(Duration::from_millis(500));
    let dir = std::env::temp_dir().join(format!("mstgansr-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("cameras.txt");
    let line = |name: &str, port: u16| format!("{name} rtsp://127.0.0.1:{port}/cam\n");
    std::fs::write(
        &config,
        format!(
            "# three loopback cameras\n{}{}{}",
            line("a", ports[0]),
            line("b", ports[1]),
            line("c", ports[2])
        ),
    )
    .unwrap();
    let (rp, mp) = (free_port(), free_port());
    let _relay = Kill(
        Command::new(example("rtsp_relay"))
            .args(["--config", config.to_str().unwrap()])
            .args(["--port", &rp.to_string(), "--metrics-port", &mp.to_string()])
            .args([
                "--width", "160", "--height", "120", "--fps", "15", "--scale", "2",
            ])
            .args([
                "--provider",
                "cpu",
                "--model",
                &fixture("fixture-x2-t5.onnx"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let clients: Vec<_> = ["/a", "/b", "/c"]
        .iter()
        .map(|m| connect_client_at(rp, m))
        .collect();
    for (m, (_, sink)) in ["/a", "/b", "/c"].iter().zip(&clients) {
        let f = wait_for_camera_frames(sink, Duration::from_secs(40))
            .unwrap_or_else(|| panic!("camera frames on {m}"));
        assert_eq!((f.0, f.1), (320, 240), "{m} upscaled x2");
    }
    // one instance of the model for the three cameras
    let text = http_get(mp, "/metrics");
    assert!(
        text.contains("mstgansr_relay_engine_users{camera=\"a\"} 3"),
        "{text}"
    );
    // camera b dies: a and c keep serving camera frames
    sources[1] = None;
    std::thread::sleep(Duration::from_secs(4));
    for i in [0, 2] {
        assert!(
            wait_for_camera_frames(&clients[i].1, Duration::from_secs(10)).is_some(),
            "camera {i} while b is away"
        );
    }
    assert!(http_get(mp, "/ready").contains("503"));
    // and comes back on its address
    sources[1] = Some(source(ports[1]));
    assert!(
        wait_for_camera_frames(&clients[1].1, Duration::from_secs(40)).is_some(),
        "camera b after it came back"
    );
    // a camera added to the config while running gets its own mount
    std::fs::write(
        &config,
        format!(
            "{}{}{}{}",
            line("a", ports[0]),
            line("b", ports[1]),
            line("c", ports[2]),
            line("d", ports[0])
        ),
    )
    .unwrap();
    let (pd, sd) = connect_client_at(rp, "/d");
    assert!(
        wait_for_camera_frames(&sd, Duration::from_secs(40)).is_some(),
        "camera d added at run time"
    );
    let text = http_get(mp, "/metrics");
    for cam in ["a", "b", "c", "d"] {
        assert!(
            text.contains(&format!("mstgansr_relay_camera_up{{camera=\"{cam}\"}} 1")),
            "{cam}: {text}"
        );
    }
    let reconnects: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mstgansr_relay_reconnects_total{camera=\"b\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(reconnects >= 1, "{text}");
    pd.set_state(gst::State::Null).unwrap();
    for (p, _) in clients {
        p.set_state(gst::State::Null).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- the README's gst-launch recipes --------------------------------------------------------------

/// The `gst-launch-1.0` command lines of the README's recipes block, continuation lines joined.
fn readme_recipes() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("## gst-launch recipes")
        .nth(1)
        .and_then(|r| r.split("```sh").nth(1))
        .and_then(|r| r.split("```").next())
        .expect("README has a gst-launch recipes block");
    let mut out = vec![];
    let mut cur = String::new();
    for line in block.lines() {
        let l = line.trim();
        if cur.is_empty() && !l.starts_with("gst-launch-1.0") {
            continue;
        }
        cur.push_str(l.trim_end_matches('\\'));
        cur.push(' ');
        if !l.ends_with('\\') {
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

/// gst-launch-1.0 with the built plugin and the bundled models, as the README's `export` sets up.
fn recipe_command(recipe: &str) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plugins = example("upscale_file")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut c = Command::new("gst-launch-1.0");
    c.args(recipe.split_whitespace().skip(1))
        .env("GST_PLUGIN_PATH", plugins)
        .env("MSTGANSR_MODEL_DIR", root.join("models"))
        .env(
            "GST_REGISTRY",
            std::env::temp_dir().join(format!("mstgansr-readme-{}.bin", std::process::id())),
        );
    c
}

fn run_recipe(recipe: &str, secs: u64) -> String {
    let mut child = recipe_command(recipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        let _ = child.kill();
    }
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!text.contains("ERROR"), "recipe failed:\n{recipe}\n{text}");
    if finished {
        assert!(o.status.success(), "recipe failed:\n{recipe}\n{text}");
    }
    text
}

#[test]
fn readme_recipes_run_as_written() {
    let _live = live_slot();
    let recipes = readme_recipes();
    assert_eq!(recipes.len(), 5, "{recipes:#?}");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/tennis-214x120.mp4");
    let with_audio = av_input("recipe-av.mp4", 10, 48, 32);
    let png_in = tmp("recipe-png-in");
    let png_out = tmp("recipe-png-out");
    std::fs::create_dir_all(&png_in).unwrap();
    std::fs::create_dir_all(&png_out).unwrap();
    gst_launch(&format!(
        "videotestsrc num-buffers=6 pattern=ball ! video/x-raw,width=40,height=32 ! videoconvert ! pngenc ! \
         multifilesink location={}/%05d.png",
        png_in.display()
    ));
    let port = free_port();
    let _camera = source(port);
    for recipe in &recipes {
        let out = tmp("recipe-out.mp4");
        let _ = std::fs::remove_file(&out);
        // only what the recipe says it needs is put in: inputs, outputs, devices
        let r = recipe
            .replace("location=in.mp4", &format!("location={}", sample.display()))
            .replace(
                "location=in-with-audio.mp4",
                &format!("location={}", with_audio.display()),
            )
            .replace("location=out.mp4", &format!("location={}", out.display()))
            .replace("in/%05d.png", &format!("{}/%05d.png", png_in.display()))
            .replace("out/%05d.png", &format!("{}/%05d.png", png_out.display()))
            .replace("v4l2src", "videotestsrc is-live=true num-buffers=40")
            .replace(
                "rtsp://camera/stream",
                &format!("rtsp://127.0.0.1:{port}/cam"),
            )
            // a display that prints a line per frame it shows, on time
            .replace("autovideosink", "checksumsink sync=true");
        if recipe.contains(".mp4") {
            run_recipe(&r, 240);
            let (streams, frames) = probe_mp4(&out);
            assert!(frames > 0, "{recipe}: {streams:?}");
            let audio = streams.iter().any(|s| s.0.starts_with("audio/"));
            assert_eq!(audio, recipe.contains("avenc_aac"), "{recipe}: {streams:?}");
        } else if recipe.contains(".png") {
            run_recipe(&r, 240);
            assert_eq!(std::fs::read_dir(&png_out).unwrap().count(), 6, "{recipe}");
        } else {
            // live: frames reach the display
            let text = run_recipe(&r, 25);
            let shown = text.lines().filter(|l| l.starts_with("0:")).count();
            assert!(shown >= 10, "{recipe}: {shown} frames shown\n{text}");
        }
    }
}

#[test]
fn readme_file_recipe_ctrl_c_finishes_a_playable_file() {
    let recipe = readme_recipes()
        .into_iter()
        .find(|r| r.contains("location=in.mp4"))
        .expect("the file recipe");
    let input = av_input("recipe-long.mp4", 3000, 64, 48);
    // video only, as the recipe is for: the sample clip is too short to interrupt
    let video_only = tmp("recipe-long-video.mp4");
    gst_launch(&format!(
        "filesrc location={} ! qtdemux ! video/x-h264 ! h264parse ! mp4mux ! filesink location={}",
        input.display(),
        video_only.display()
    ));
    let out = tmp("recipe-interrupted.mp4");
    let r = recipe
        .replace(
            "location=in.mp4",
            &format!("location={}", video_only.display()),
        )
        .replace("location=out.mp4", &format!("location={}", out.display()));
    let mut child = recipe_command(&r)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    interrupt(&child);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    assert!(
        done,
        "Ctrl-C did not finish within 60 s: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let (_, frames) = probe_mp4(&out);
    assert!(frames > 0 && frames < 3000, "{frames} frames");
}
