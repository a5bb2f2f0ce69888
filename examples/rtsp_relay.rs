// SPDX-License-Identifier: MIT OR Apache-2.0
//! RTSP camera relay: pulls cameras with `rtspsrc`, upscales each with `mstgansr`, and serves
//! them with gst-rtsp-server, one mount per camera, from one process.
//!
//!     cargo run --release --example rtsp_relay -- --source rtsp://camera/stream \
//!         [--source name=rtsp://other/stream ...] [--config cameras.txt] [--metrics-port 9108]
//!         [--listen 127.0.0.1 --port 8555 --mount /upscaled] [--width 320 --height 240 --fps 15]
//!         [--scale 2] [--model PATH] [--provider auto] [--late-frames resize|drop]
//!         [--variant compressed|auto|perceptual|fidelity|real|fast|fast-compressed]
//!         [--batch-wait 0]
//!
//! Cameras: each `--source [NAME=]URL` and each line `NAME URL` of the `--config` file (`#`
//! starts a comment) is served at rtsp://<listen>:<port>/NAME at (scale x width) x (scale x
//! height); a single unnamed `--source` is served at `--mount`. The config file is read again
//! when it changes: cameras added to it start, cameras removed from it stop and leave their
//! mount, others are not touched. Cameras send compressed video, so the default `--variant
//! compressed` takes the model trained on it where the scale has one (else fidelity). The
//! instances share one onnxruntime session (`shared-engine`): one copy of the weights, one
//! thread pool. `--batch-wait MS` (> 0) also puts the cameras' windows into one inference
//! (`batch-size` 16, `batch-wait` MS): the lever for a GPU; on a CPU it does not pay
//! (`scripts/cameras_bench.sh`), so it is off by default.
//!
//! `--metrics-port` serves `/metrics` (Prometheus text: per camera up, frames in/out, frames
//! from the model / resized / dropped, reconnects, the element's latency, sessions shared),
//! `/healthz` (the process answers) and `/ready` (200 when every camera sends frames, else 503).
//!
//! Policies:
//! - Reconnect, per camera: the ingest pipeline (camera -> upscaler) is separate from the served
//!   pipeline. When the camera errors, ends, or sends no frame for 3 s, its ingest is torn down
//!   (10 s for a new ingest's first frame) and rebuilt with a backoff (0.5 s doubling to 5 s) until the camera is back. Clients stay
//!   connected all along; while the camera is away they get black frames at the served size.
//!   The other cameras are not touched.
//! - Live when inference is slower than the camera: every frame reaches the upscaler through a
//!   leaky queue bounded at 1 s (a longer backlog drops its oldest frames), so the model's
//!   window sees consecutive frames. With QoS the upscaler spends inference only on frames whose
//!   output can still be on time and upscales the others bilinearly (`--late-frames resize`, the
//!   default: the served stream keeps the camera's frame rate) or drops them (`drop`);
//!   `live-tier=auto` runs the fast tier where the model cannot keep up. The delay is bounded
//!   by the latency the element reports: (T-1)/2 frames plus two inferences.
//!   `cargo run --release --example live_bench` measures these recipes side by side.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gst::prelude::*;
use gst_rtsp_server::prelude::*;

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: rtsp_relay --source [NAME=]rtsp://camera/stream ... [--config cameras.txt]
           [--metrics-port PORT] [--listen 127.0.0.1] [--port 8555]
           [--mount /upscaled] [--width 320] [--height 240] [--fps 15] [--scale 2|3|4]
           [--model PATH] [--provider auto|cpu|openvino|cuda|tensorrt] [--late-frames resize|drop]
           [--variant compressed|auto|perceptual|fidelity|real|fast|fast-compressed] [--batch-wait 0]
Pulls RTSP cameras, upscales each with mstgansr and serves it at rtsp://LISTEN:PORT/NAME
(one unnamed --source: at MOUNT). The --config file (lines \"NAME URL\") is reread when it changes.";

#[derive(Clone, Debug, PartialEq, Eq)]
struct Camera {
    name: String,
    source: String,
    mount: String,
}

#[derive(Clone)]
struct Config {
    sources: Vec<String>,
    config_file: Option<PathBuf>,
    metrics_port: Option<u16>,
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
    batch_wait: u32,
}

const CHANNEL: &str = "mstgansr-relay";

fn parse() -> Result<Config, String> {
    let mut c = Config {
        sources: Vec::new(),
        config_file: None,
        metrics_port: None,
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
        batch_wait: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{k}: not a number: {v}"))
        };
        match k.as_str() {
            "--source" => c.sources.push(v),
            "--config" => c.config_file = Some(PathBuf::from(v)),
            "--metrics-port" => c.metrics_port = Some(num(&v)? as u16),
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
            "--batch-wait" => c.batch_wait = num(&v)?.min(1000),
            "--late-frames" => return Err(format!("--late-frames: resize or drop, not {v}")),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if c.sources.is_empty() && c.config_file.is_none() {
        return Err("--source rtsp://... or --config FILE is required".into());
    }
    if !(2..=4).contains(&c.scale) {
        return Err(format!("--scale must be 2, 3 or 4, not {}", c.scale));
    }
    if c.width == 0 || c.height == 0 || c.fps == 0 {
        return Err("--width, --height and --fps must be positive".into());
    }
    Ok(c)
}

/// The cameras of the command line and of the config file, in that order; names are unique.
fn cameras(c: &Config) -> Result<Vec<Camera>, String> {
    let mut out: Vec<Camera> = Vec::new();
    let single = c.sources.len() == 1 && !c.sources[0].contains('=') && c.config_file.is_none();
    for (i, src) in c.sources.iter().enumerate() {
        let (name, url) = match src.split_once('=') {
            Some((n, u)) if !n.contains('/') => (n.to_string(), u.to_string()),
            _ => (format!("cam{i}"), src.clone()),
        };
        let mount = if single {
            c.mount.clone()
        } else {
            format!("/{name}")
        };
        out.push(Camera {
            name,
            source: url,
            mount,
        });
    }
    if let Some(f) = &c.config_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("--config {}: {e}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(url), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!(
                    "--config {} line {}: expected `NAME URL`, got `{line}`",
                    f.display(),
                    n + 1
                ));
            };
            out.push(Camera {
                name: name.into(),
                source: url.into(),
                mount: format!("/{name}"),
            });
        }
    }
    for (i, cam) in out.iter().enumerate() {
        if !cam
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(format!(
                "camera name `{}`: use letters, digits, - and _ (it becomes the mount)",
                cam.name
            ));
        }
        if out[..i].iter().any(|o| o.name == cam.name) {
            return Err(format!("camera `{}` is listed twice", cam.name));
        }
    }
    Ok(out)
}

fn ingest_description(c: &Config, cam: &Camera) -> String {
    format!(
        "rtspsrc location={src} latency=100 protocols=tcp ! decodebin ! videoconvert ! videoscale ! \
         videorate drop-only=true ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! \
         queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000 ! \
         mstgansr name=sr scale={s} execution-provider={p} late-frames={l} variant={v} {b} {m} ! \
         queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000 ! \
         intervideosink channel={CHANNEL}-{name}",
        src = cam.source,
        name = cam.name,
        w = c.width,
        h = c.height,
        fps = c.fps,
        s = c.scale,
        p = c.provider,
        l = c.late_frames,
        v = c.variant,
        b = if c.batch_wait > 0 {
            format!("batch-size=16 batch-wait={}", c.batch_wait)
        } else {
            String::new()
        },
        m = c
            .model
            .as_ref()
            .map(|m| format!("model-location=\"{m}\""))
            .unwrap_or_default(),
    )
}

/// The counters a camera's upscaler reports, summed over its ingest pipelines (a reconnect
/// starts a new element at zero; Prometheus counters must not go back).
const COUNTERS: [(&str, &str, &str); 5] = [
    (
        "frames-in",
        "frames_in_total",
        "frames from the camera into the upscaler",
    ),
    ("frames-out", "frames_out_total", "upscaled frames served"),
    (
        "inferred",
        "frames_inferred_total",
        "served frames computed by the model",
    ),
    (
        "resized",
        "frames_resized_total",
        "served frames resized bilinearly (late)",
    ),
    ("dropped", "frames_dropped_total", "frames dropped (late)"),
];

struct Ingest {
    pipeline: Option<gst::Pipeline>,
    last_frame: Arc<AtomicU64>,
    backoff: Duration,
    started: Instant,
    reconnects: u64,
    carried: [u64; COUNTERS.len()],
    /// The camera left the config: no more restarts.
    removed: Arc<AtomicBool>,
}

impl Ingest {
    fn upscaler(&self) -> Option<gst::Element> {
        self.pipeline.as_ref().and_then(|p| p.by_name("sr"))
    }

    /// Adds the current element's counters to the carried ones (before it is torn down).
    fn carry(&mut self) {
        if let Some(sr) = self.upscaler() {
            let st = sr.property::<gst::Structure>("stats");
            for (i, (key, _, _)) in COUNTERS.iter().enumerate() {
                self.carried[i] += st.get::<u64>(*key).unwrap_or(0);
            }
        }
    }
}

/// One served camera: its ingest and its mount.
struct Served {
    cam: Camera,
    ingest: Arc<Mutex<Ingest>>,
}

type Cameras = Arc<Mutex<BTreeMap<String, Served>>>;

fn now_ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

fn start_ingest(c: &Config, cam: &Camera, st: &Arc<Mutex<Ingest>>, t0: Instant) {
    let mut s = st.lock().unwrap();
    if s.removed.load(Ordering::Relaxed) {
        return;
    }
    s.carry();
    if let Some(p) = s.pipeline.take() {
        let _ = p.set_state(gst::State::Null);
    }
    let pipeline = match gst::parse::launch(&ingest_description(c, cam)) {
        Ok(p) => p.downcast::<gst::Pipeline>().unwrap(),
        Err(e) => {
            eprintln!("{}: cannot build the ingest pipeline: {e}", cam.name);
            return;
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
    let (cfg, camera) = (c.clone(), cam.clone());
    let bus = pipeline.bus().unwrap();
    let watch = bus
        .add_watch(move |_, msg| {
            let restart = match msg.view() {
                gst::MessageView::Error(e) => {
                    eprintln!(
                        "{}: source lost: {} ({})",
                        camera.name,
                        e.error(),
                        e.debug().unwrap_or_default()
                    );
                    true
                }
                gst::MessageView::Eos(_) => {
                    eprintln!("{}: source ended", camera.name);
                    true
                }
                _ => false,
            };
            if restart && let Some(st) = weak_state.upgrade() {
                schedule_restart(&cfg, &camera, &st, t0);
            }
            glib::ControlFlow::Continue
        })
        .expect("one watch per bus");
    // the watch lives as long as the pipeline
    unsafe { pipeline.set_data("bus-watch", watch) };
    s.last_frame.store(now_ms(t0), Ordering::Relaxed);
    s.started = Instant::now();
    if pipeline.set_state(gst::State::Playing).is_err() {
        eprintln!("{}: source not reachable yet", cam.name);
    }
    s.pipeline = Some(pipeline);
}

fn schedule_restart(c: &Config, cam: &Camera, st: &Arc<Mutex<Ingest>>, t0: Instant) {
    let delay = {
        let mut s = st.lock().unwrap();
        if s.removed.load(Ordering::Relaxed) {
            return;
        }
        s.carry();
        if let Some(p) = s.pipeline.take() {
            // tear down off the streaming thread that posted the message
            glib::idle_add_once(move || {
                let _ = p.set_state(gst::State::Null);
            });
        }
        s.reconnects += 1;
        let d = s.backoff;
        s.backoff = (s.backoff * 2).min(Duration::from_secs(5));
        d
    };
    eprintln!("{}: reconnecting in {:.1} s", cam.name, delay.as_secs_f64());
    let (cfg, cam) = (c.clone(), cam.clone());
    let st = st.clone();
    glib::timeout_add_once(delay, move || start_ingest(&cfg, &cam, &st, t0));
}

/// Serves `cam`: its mount on the server and its ingest.
fn add_camera(
    c: &Config,
    server: &gst_rtsp_server::RTSPServer,
    cams: &Cameras,
    cam: Camera,
    t0: Instant,
) {
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    let (ow, oh) = (c.width * c.scale, c.height * c.scale);
    factory.set_launch(&format!(
        "( intervideosrc channel={CHANNEL}-{name} timeout=1000000000 ! \
         video/x-raw,format=I420,width={ow},height={oh},framerate={fps}/1 ! videoconvert ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! \
         rtph264pay name=pay0 pt=96 config-interval=1 )",
        name = cam.name,
        fps = c.fps
    ));
    factory.set_shared(true);
    server
        .mount_points()
        .expect("mount points")
        .add_factory(&cam.mount, factory);
    println!(
        "relaying {} {} -> rtsp://{}:{}{} ({ow}x{oh})",
        cam.name, cam.source, c.listen, c.port, cam.mount
    );
    let ingest = Arc::new(Mutex::new(Ingest {
        pipeline: None,
        last_frame: Arc::new(AtomicU64::new(0)),
        backoff: Duration::from_millis(500),
        started: Instant::now(),
        reconnects: 0,
        carried: [0; COUNTERS.len()],
        removed: Arc::new(AtomicBool::new(false)),
    }));
    start_ingest(c, &cam, &ingest, t0);
    cams.lock()
        .unwrap()
        .insert(cam.name.clone(), Served { cam, ingest });
}

fn remove_camera(server: &gst_rtsp_server::RTSPServer, cams: &Cameras, name: &str) {
    let Some(served) = cams.lock().unwrap().remove(name) else {
        return;
    };
    let mut s = served.ingest.lock().unwrap();
    s.removed.store(true, Ordering::Relaxed);
    if let Some(p) = s.pipeline.take() {
        let _ = p.set_state(gst::State::Null);
    }
    if let Some(m) = server.mount_points() {
        m.remove_factory(&served.cam.mount);
    }
    println!("stopped {} ({})", name, served.cam.mount);
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Prometheus text for every camera.
fn metrics(cams: &Cameras, t0: Instant) -> String {
    let cams = cams.lock().unwrap();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Served) -> f64| {
        out +=
            &format!("# HELP mstgansr_relay_{name} {help}\n# TYPE mstgansr_relay_{name} {kind}\n");
        for (cam, served) in cams.iter() {
            out += &format!(
                "mstgansr_relay_{name}{{camera=\"{cam}\"}} {}\n",
                value(served)
            );
        }
    };
    let stats = |s: &Served| {
        s.ingest
            .lock()
            .unwrap()
            .upscaler()
            .map(|sr| sr.property::<gst::Structure>("stats"))
    };
    family(
        "camera_up",
        "gauge",
        "1 when the camera sent a frame in the last 3 s",
        &|s| {
            let i = s.ingest.lock().unwrap();
            let since = now_ms(t0).saturating_sub(i.last_frame.load(Ordering::Relaxed));
            // a new ingest starts its clock without a frame
            let flowing = i.started.elapsed().as_millis() as u64 > since;
            f64::from(u8::from(flowing && since < 3000 && i.pipeline.is_some()))
        },
    );
    for (i, (key, name, help)) in COUNTERS.iter().enumerate() {
        family(name, "counter", help, &|s| {
            let carried = s.ingest.lock().unwrap().carried[i];
            (carried
                + stats(s)
                    .and_then(|st| st.get::<u64>(*key).ok())
                    .unwrap_or(0)) as f64
        });
    }
    family(
        "reconnects_total",
        "counter",
        "times the camera's ingest was rebuilt",
        &|s| s.ingest.lock().unwrap().reconnects as f64,
    );
    family(
        "latency_seconds",
        "gauge",
        "the latency the upscaler reports (its window and two inferences)",
        &|s| {
            stats(s)
                .and_then(|st| st.get::<u64>("latency").ok())
                .unwrap_or(0) as f64
                / 1e9
        },
    );
    family(
        "engine_users",
        "gauge",
        "upscalers sharing this camera's onnxruntime session",
        &|s| {
            stats(s)
                .and_then(|st| st.get::<u64>("engine-users").ok())
                .unwrap_or(0) as f64
        },
    );
    out
}

/// `/metrics`, `/healthz` and `/ready` on `port`, on a thread of its own.
fn serve_metrics(c: &Config, port: u16, cams: Cameras, t0: Instant) {
    let server = match tiny_http::Server::http((c.listen.as_str(), port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot serve metrics on {}:{port}: {e}", c.listen);
            std::process::exit(1);
        }
    };
    println!("metrics on http://{}:{port}/metrics", c.listen);
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let (code, body) = match req.url() {
                "/metrics" => (200, metrics(&cams, t0)),
                "/healthz" => (200, "ok\n".to_string()),
                "/ready" => {
                    let text = metrics(&cams, t0);
                    let down = text
                        .lines()
                        .filter(|l| l.starts_with("mstgansr_relay_camera_up{") && l.ends_with(" 0"))
                        .count();
                    if down == 0 {
                        (200, "ready\n".to_string())
                    } else {
                        (503, format!("{down} camera(s) not sending frames\n"))
                    }
                }
                _ => (404, "try /metrics, /healthz or /ready\n".to_string()),
            };
            let resp = tiny_http::Response::from_string(body).with_status_code(code);
            let _ = req.respond(resp);
        }
    });
}

fn main() {
    cli::help(USAGE);
    let c = parse().unwrap_or_else(|e| cli::usage_error(USAGE, e));
    let initial = cameras(&c).unwrap_or_else(|e| cli::usage_error(USAGE, e));
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
    if let Err(e) = server.attach(None) {
        eprintln!("error: cannot listen on {}:{}: {e}", c.listen, c.port);
        std::process::exit(1);
    }
    let t0 = Instant::now();
    let cams: Cameras = Arc::new(Mutex::new(BTreeMap::new()));
    for cam in initial {
        add_camera(&c, &server, &cams, cam, t0);
    }
    if let Some(port) = c.metrics_port {
        serve_metrics(&c, port, cams.clone(), t0);
    }
    // the config file: cameras added start, cameras removed stop, a camera whose URL changed
    // restarts; the others are not touched. A file that does not parse is reported and kept
    // as it was.
    if let Some(file) = c.config_file.clone() {
        let mut seen = modified(&file);
        let (cfg, cams, server) = (c.clone(), cams.clone(), server.clone());
        glib::timeout_add(Duration::from_secs(1), move || {
            let now = modified(&file);
            if now != seen {
                seen = now;
                match cameras(&cfg) {
                    Ok(wanted) => {
                        let current: Vec<Camera> = cams
                            .lock()
                            .unwrap()
                            .values()
                            .map(|s| s.cam.clone())
                            .collect();
                        for old in &current {
                            if !wanted.contains(old) {
                                remove_camera(&server, &cams, &old.name);
                            }
                        }
                        for cam in wanted {
                            if !current.contains(&cam) {
                                add_camera(&cfg, &server, &cams, cam, t0);
                            }
                        }
                    }
                    Err(e) => eprintln!("config not applied: {e}"),
                }
            }
            glib::ControlFlow::Continue
        });
    }
    // watchdog, per camera: one that stalls without an error is restarted too; a healthy run
    // resets its backoff
    {
        let cams = cams.clone();
        let cfg = c.clone();
        glib::timeout_add(Duration::from_millis(500), move || {
            let all: Vec<(Camera, Arc<Mutex<Ingest>>)> = cams
                .lock()
                .unwrap()
                .values()
                .map(|s| (s.cam.clone(), s.ingest.clone()))
                .collect();
            for (cam, st) in all {
                let (stalled, healthy) = {
                    let s = st.lock().unwrap();
                    let since = now_ms(t0).saturating_sub(s.last_frame.load(Ordering::Relaxed));
                    // a new ingest gets 10 s for its first frame (connecting, the model's
                    // warm-up), then 3 s between frames
                    let flowing = s.started.elapsed().as_millis() as u64 > since;
                    let allowed = if flowing { 3000 } else { 10_000 };
                    (
                        s.pipeline.is_some() && since > allowed,
                        since < 1000 && s.started.elapsed() > Duration::from_secs(2),
                    )
                };
                if healthy {
                    st.lock().unwrap().backoff = Duration::from_millis(500);
                }
                if stalled {
                    eprintln!("{}: no frame for 3 s (10 s after a start)", cam.name);
                    schedule_restart(&cfg, &cam, &st, t0);
                }
            }
            glib::ControlFlow::Continue
        });
    }
    main_loop.run();
}
