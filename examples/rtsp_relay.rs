// SPDX-License-Identifier: MIT OR Apache-2.0
//! RTSP camera relay: pulls a camera with `rtspsrc`, upscales it with `mstgansr`, and serves the
//! result with gst-rtsp-server.
//!
//!     cargo run --release --example rtsp_relay -- --source rtsp://camera/stream \
//!         [--listen 127.0.0.1 --port 8555 --mount /upscaled] [--width 320 --height 240 --fps 15]
//!         [--scale 2] [--model PATH] [--provider auto] [--late-frames resize|drop]
//!         [--variant compressed|auto|perceptual|fidelity|real|fast|fast-compressed]
//!
//! Serves rtsp://<listen>:<port><mount> at (scale x width) x (scale x height). Cameras send
//! compressed video, so the default `--variant compressed` takes the model trained on it where
//! the scale has one (else fidelity).
//!
//! Policies:
//! - Reconnect: the ingest pipeline (camera -> upscaler) is separate from the served pipeline.
//!   When the camera errors, ends, or sends no frame for 3 s, the ingest is torn down and
//!   rebuilt with a backoff (0.5 s doubling to 5 s) until the camera is back. Clients stay
//!   connected all along; while the camera is away they get black frames at the served size.
//! - Live when inference is slower than the camera: every frame reaches the upscaler through a
//!   leaky queue bounded at 1 s (a longer backlog drops its oldest frames), so the model's
//!   window sees consecutive frames. With QoS the upscaler spends inference only on frames whose
//!   output can still be on time and upscales the others bilinearly (`--late-frames resize`, the
//!   default: the served stream keeps the camera's frame rate) or drops them (`drop`). The delay
//!   is bounded by the latency the element reports: (T-1)/2 frames plus two inferences.
//!   `cargo run --release --example live_bench` measures these recipes side by side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_rtsp_server::prelude::*;

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: rtsp_relay --source rtsp://camera/stream [--listen 127.0.0.1] [--port 8555]
           [--mount /upscaled] [--width 320] [--height 240] [--fps 15] [--scale 2|3|4]
           [--model PATH] [--provider auto|cpu|openvino|cuda|tensorrt] [--late-frames resize|drop]
           [--variant compressed|auto|perceptual|fidelity|real|fast|fast-compressed]
Pulls an RTSP camera, upscales it with mstgansr and serves it at rtsp://LISTEN:PORT/MOUNT.";

#[derive(Clone)]
struct Config {
    source: String,
    listen: String,
    port: u16,
    mount: String,
    width: u32,
    height: u32,
    fps: u32,
    scale: u32,
    model: Option<String>,
    provider: String,
    late_frames: String,
    variant: String,
}

const CHANNEL: &str = "mstgansr-relay";

fn parse() -> Result<Config, String> {
    let mut c = Config {
        source: String::new(),
        listen: "127.0.0.1".into(),
        port: 8555,
        mount: "/upscaled".into(),
        width: 320,
        height: 240,
        fps: 15,
        scale: 2,
        model: None,
        provider: "auto".into(),
        late_frames: "resize".into(),
        variant: "compressed".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{k}: not a number: {v}"))
        };
        match k.as_str() {
            "--source" => c.source = v,
            "--listen" => c.listen = v,
            "--port" => c.port = num(&v)? as u16,
            "--mount" => c.mount = v,
            "--width" => c.width = num(&v)?,
            "--height" => c.height = num(&v)?,
            "--fps" => c.fps = num(&v)?,
            "--scale" => c.scale = num(&v)?,
            "--model" => c.model = Some(v),
            "--provider" => c.provider = v,
            "--late-frames" if v == "resize" || v == "drop" => c.late_frames = v,
            "--variant" => c.variant = v,
            "--late-frames" => return Err(format!("--late-frames: resize or drop, not {v}")),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if c.source.is_empty() {
        return Err("--source rtsp://... is required".into());
    }
    if !(2..=4).contains(&c.scale) {
        return Err(format!("--scale must be 2, 3 or 4, not {}", c.scale));
    }
    if c.width == 0 || c.height == 0 || c.fps == 0 {
        return Err("--width, --height and --fps must be positive".into());
    }
    Ok(c)
}

fn ingest_description(c: &Config) -> String {
    format!(
        "rtspsrc location={src} latency=100 protocols=tcp ! decodebin ! videoconvert ! videoscale ! \
         videorate drop-only=true ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! \
         queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000 ! \
         mstgansr name=sr scale={s} execution-provider={p} late-frames={l} variant={v} {m} ! \
         queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000 ! \
         intervideosink channel={CHANNEL}",
        src = c.source,
        w = c.width,
        h = c.height,
        fps = c.fps,
        s = c.scale,
        p = c.provider,
        l = c.late_frames,
        v = c.variant,
        m = c
            .model
            .as_ref()
            .map(|m| format!("model-location=\"{m}\""))
            .unwrap_or_default(),
    )
}

struct Ingest {
    pipeline: Option<gst::Pipeline>,
    last_frame: Arc<AtomicU64>,
    backoff: Duration,
    started: Instant,
}

fn now_ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

fn start_ingest(c: &Config, st: &Arc<Mutex<Ingest>>, t0: Instant) {
    let mut s = st.lock().unwrap();
    if let Some(p) = s.pipeline.take() {
        let _ = p.set_state(gst::State::Null);
    }
    let pipeline = match gst::parse::launch(&ingest_description(c)) {
        Ok(p) => p.downcast::<gst::Pipeline>().unwrap(),
        Err(e) => {
            eprintln!("error: cannot build the ingest pipeline: {e}");
            std::process::exit(1);
        }
    };
    let last = s.last_frame.clone();
    if let Some(sr) = pipeline.by_name("sr") {
        sr.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                last.store(now_ms(t0), Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    let weak_state = Arc::downgrade(st);
    let cfg = c.clone();
    let bus = pipeline.bus().unwrap();
    let watch = bus
        .add_watch(move |_, msg| {
            let restart = match msg.view() {
                gst::MessageView::Error(e) => {
                    eprintln!(
                        "source lost: {} ({})",
                        e.error(),
                        e.debug().unwrap_or_default()
                    );
                    true
                }
                gst::MessageView::Eos(_) => {
                    eprintln!("source ended");
                    true
                }
                _ => false,
            };
            if restart && let Some(st) = weak_state.upgrade() {
                schedule_restart(&cfg, &st, t0);
            }
            glib::ControlFlow::Continue
        })
        .expect("one watch per bus");
    // the watch lives as long as the pipeline
    unsafe { pipeline.set_data("bus-watch", watch) };
    s.last_frame.store(now_ms(t0), Ordering::Relaxed);
    s.started = Instant::now();
    if pipeline.set_state(gst::State::Playing).is_err() {
        eprintln!("source not reachable yet");
    }
    s.pipeline = Some(pipeline);
}

fn schedule_restart(c: &Config, st: &Arc<Mutex<Ingest>>, t0: Instant) {
    let delay = {
        let mut s = st.lock().unwrap();
        if let Some(p) = s.pipeline.take() {
            // tear down off the streaming thread that posted the message
            glib::idle_add_once(move || {
                let _ = p.set_state(gst::State::Null);
            });
        }
        let d = s.backoff;
        s.backoff = (s.backoff * 2).min(Duration::from_secs(5));
        d
    };
    eprintln!("reconnecting in {:.1} s", delay.as_secs_f64());
    let cfg = c.clone();
    let st = st.clone();
    glib::timeout_add_once(delay, move || start_ingest(&cfg, &st, t0));
}

fn main() {
    cli::help(USAGE);
    let c = parse().unwrap_or_else(|e| cli::usage_error(USAGE, e));
    gst::init().unwrap_or_else(|e| cli::fail(e));
    gstmstgansr::plugin_register_static().unwrap_or_else(|e| cli::fail(e));
    // a model or provider mistake is fatal at start, not a camera to reconnect to forever
    let scale = c.scale.to_string();
    let mut props = vec![
        ("scale", scale.as_str()),
        ("execution-provider", c.provider.as_str()),
        ("variant", c.variant.as_str()),
        ("late-frames", c.late_frames.as_str()),
    ];
    if let Some(m) = &c.model {
        props.push(("model-location", m.as_str()));
    }
    cli::preflight(&props).unwrap_or_else(|e| cli::fail(e));
    let main_loop = glib::MainLoop::new(None, false);

    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address(&c.listen);
    server.set_service(&c.port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    let (ow, oh) = (c.width * c.scale, c.height * c.scale);
    factory.set_launch(&format!(
        "( intervideosrc channel={CHANNEL} timeout=1000000000 ! \
         video/x-raw,format=I420,width={ow},height={oh},framerate={fps}/1 ! videoconvert ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! \
         rtph264pay name=pay0 pt=96 config-interval=1 )",
        fps = c.fps
    ));
    factory.set_shared(true);
    server
        .mount_points()
        .expect("mount points")
        .add_factory(&c.mount, factory);
    if let Err(e) = server.attach(None) {
        eprintln!("error: cannot listen on {}:{}: {e}", c.listen, c.port);
        std::process::exit(1);
    }
    println!(
        "relaying {} -> rtsp://{}:{}{} ({ow}x{oh})",
        c.source, c.listen, c.port, c.mount
    );

    let t0 = Instant::now();
    let st = Arc::new(Mutex::new(Ingest {
        pipeline: None,
        last_frame: Arc::new(AtomicU64::new(0)),
        backoff: Duration::from_millis(500),
        started: Instant::now(),
    }));
    start_ingest(&c, &st, t0);
    // watchdog: a camera that stalls without an error is restarted too; a healthy run resets backoff
    {
        let st = st.clone();
        let cfg = c.clone();
        glib::timeout_add(Duration::from_millis(500), move || {
            let (stalled, healthy) = {
                let s = st.lock().unwrap();
                let since = now_ms(t0).saturating_sub(s.last_frame.load(Ordering::Relaxed));
                (
                    s.pipeline.is_some() && since > 3000,
                    since < 1000 && s.started.elapsed() > Duration::from_secs(2),
                )
            };
            if healthy {
                st.lock().unwrap().backoff = Duration::from_millis(500);
            }
            if stalled {
                eprintln!("no frame for 3 s");
                schedule_restart(&cfg, &st, t0);
            }
            glib::ControlFlow::Continue
        });
    }
    main_loop.run();
}
