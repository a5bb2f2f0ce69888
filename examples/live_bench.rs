// SPDX-License-Identifier: MIT OR Apache-2.0
//! A live camera into the upscaler, measured as a viewer sees it: frames shown per second, the
//! share of shown frames that came from a model (not a bilinear stand-in), steadiness (the
//! coefficient of variation of each shown frame's high-frequency energy: a pulse of sharpness
//! raises it above a run where every frame is from one model), end-to-end delay, frames lost,
//! and how many outputs the model computed from T distinct neighbours. Each recipe runs
//! for `--seconds`, alternated with the others over `--rounds`; medians over rounds are printed.
//!
//!     cargo run --release --example live_bench -- [--seconds 60] [--rounds 2] \
//!         [--width 320 --height 240 --fps 30 --scale 4] [--model PATH] [--providers cpu,openvino] [--cameras 1] [--shared true] \
//!         [--batch 1] [--batch-wait 20] [--recipes a,b,c,d] \
//!         [--variants fast,fidelity]
//!
//! `--variants` runs every recipe with each bundled variant (alternated in each round): the fast
//! tier against the default model on the same camera.
//!
//! The source is `videotestsrc is-live=true` (a moving ball, timestamped at capture); the sink a
//! `fakesink sync=true` that behaves like a display (drops frames more than 20 ms late, sends
//! QoS). Delay = the clock when a frame is shown minus the time it was captured. Run it on an
//! otherwise idle machine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gst_video::prelude::*;

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: live_bench [--seconds 60] [--rounds 2] [--width 320] [--height 240] [--fps 30] [--scale 4]
           [--model PATH] [--providers cpu,openvino] [--cameras 1] [--shared true] [--batch 1] [--batch-wait 20]
           [--recipes a,b,c,d] [--variants fast,fidelity]
A live camera into the upscaler: frames shown, delay, frames lost, per recipe.";

struct Args {
    seconds: u64,
    rounds: usize,
    width: u32,
    height: u32,
    fps: u32,
    scale: u32,
    model: Option<String>,
    providers: Vec<String>,
    cameras: usize,
    shared: bool,
    batch: u32,
    batch_wait: u32,
    recipes: Vec<String>,
    variants: Vec<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seconds: 60,
        rounds: 2,
        width: 320,
        height: 240,
        fps: 30,
        scale: 4,
        model: None,
        providers: vec!["cpu".into()],
        cameras: 1,
        shared: true,
        batch: 1,
        batch_wait: 20,
        recipes: RECIPES.iter().map(|r| r.0.to_string()).collect(),
        variants: vec![String::new()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}: not a number: {v}"))
        };
        match k.as_str() {
            "--seconds" => a.seconds = num(&v)?,
            "--rounds" => a.rounds = num(&v)? as usize,
            "--width" => a.width = num(&v)? as u32,
            "--height" => a.height = num(&v)? as u32,
            "--fps" => a.fps = num(&v)? as u32,
            "--scale" => a.scale = num(&v)? as u32,
            "--model" => a.model = Some(v),
            "--cameras" => a.cameras = num(&v)?.max(1) as usize,
            "--batch" => a.batch = num(&v)?.clamp(1, 16) as u32,
            "--batch-wait" => a.batch_wait = num(&v)?.min(1000) as u32,
            "--shared" => {
                a.shared = v
                    .parse()
                    .map_err(|_| format!("--shared: true or false, not {v}"))?
            }
            "--providers" => a.providers = v.split(',').map(str::to_string).collect(),
            "--recipes" => a.recipes = v.split(',').map(str::to_string).collect(),
            "--variants" => a.variants = v.split(',').map(str::to_string).collect(),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if !(2..=4).contains(&a.scale) {
        return Err(format!("--scale must be 2, 3 or 4, not {}", a.scale));
    }
    Ok(a)
}

/// (name, what sits between the camera caps and the display converter)
const RECIPES: [(&str, &str, &str); 4] = [
    (
        "a",
        "old README recipe, qos off",
        "queue leaky=downstream max-size-buffers=2 ! mstgansr {m} qos=false",
    ),
    (
        "b",
        "old README recipe, qos on",
        "queue leaky=downstream max-size-buffers=2 ! mstgansr {m}",
    ),
    (
        "c",
        "new recipe, late-frames=drop",
        "queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000 ! \
         mstgansr {m} late-frames=drop ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000",
    ),
    (
        "d",
        "new recipe, late-frames=resize",
        "queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000 ! \
         mstgansr {m} late-frames=resize ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=3000000000",
    ),
];

#[derive(Debug, Clone, Default)]
struct Run {
    /// Coefficient of variation (%) of the shown frames' high-frequency energy (median over
    /// cameras).
    steadiness_cv: f64,
    /// CPU time of the process over the measured seconds, % of one core.
    cpu_percent: f64,
    /// Instances sharing the first camera's session.
    engine_users: u64,
    /// Windows an inference of the shared batching thread (0: it did not run).
    windows_per_batch: f64,
    out_fps: f64,
    delay_median_ms: f64,
    delay_max_ms: f64,
    captured: u64,
    shown: u64,
    inferred: u64,
    resized: u64,
    full: u64,
}

/// Mean absolute difference between neighbouring luma samples (right and below) over every
/// fourth row: how much fine detail a shown frame carries.
fn hf_energy(frame: &gst_video::VideoFrameRef<&gst::BufferRef>) -> Option<f64> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let y = frame.plane_data(0).ok()?;
    let mut sum = 0u64;
    let mut n = 0u64;
    for r in (0..h.saturating_sub(1)).step_by(4) {
        let row = &y[r * stride..][..w];
        let below = &y[(r + 1) * stride..][..w];
        for x in 0..w - 1 {
            sum += row[x].abs_diff(row[x + 1]) as u64 + row[x].abs_diff(below[x]) as u64;
            n += 2;
        }
    }
    (n > 0).then(|| sum as f64 / n as f64)
}

fn cv_percent(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    100.0 * var.sqrt() / mean.max(1e-9)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run(
    a: &Args,
    middle: &str,
    variant: &str,
    provider: &str,
) -> Result<Run, Box<dyn std::error::Error>> {
    let n = a.cameras.max(1);
    let m = |k: usize| {
        format!(
            "name=sr{k} scale={} execution-provider={} shared-engine={} batch-size={} batch-wait={} {}",
            a.scale,
            provider,
            a.shared,
            a.batch,
            a.batch_wait,
            match (&a.model, variant) {
                (Some(p), _) => format!("model-location=\"{p}\""),
                (None, "") => String::new(),
                (None, v) => format!("variant={v}"),
            }
        )
    };
    let desc: Vec<String> = (0..n)
        .map(|k| {
            format!(
                "videotestsrc name=cam{k} is-live=true pattern=ball ! \
                 video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! {mid} ! \
                 videoconvert ! video/x-raw,format=I420 ! \
                 fakesink name=show{k} sync=true qos=true max-lateness=20000000 signal-handoffs=true",
                w = a.width,
                h = a.height,
                fps = a.fps,
                mid = middle.replace("{m}", &m(k)),
            )
        })
        .collect();
    let pipeline = gst::parse::launch(&desc.join(" "))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    let captured = Arc::new(Mutex::new(vec![0u64; n]));
    let delays = Arc::new(Mutex::new(vec![Vec::<f64>::new(); n]));
    let energies = Arc::new(Mutex::new(vec![Vec::<f64>::new(); n]));
    let mut srs = Vec::new();
    for k in 0..n {
        let c = captured.clone();
        pipeline
            .by_name(&format!("cam{k}"))
            .ok_or("no camera")?
            .static_pad("src")
            .ok_or("no pad")?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                c.lock().unwrap()[k] += 1;
                gst::PadProbeReturn::Ok
            });
        let (d, e) = (delays.clone(), energies.clone());
        let show = pipeline.by_name(&format!("show{k}")).ok_or("no sink")?;
        show.connect("handoff", false, move |vals| {
            let sink = vals[0].get::<gst::Element>().ok()?;
            let buf = vals[1].get::<gst::Buffer>().ok()?;
            let pad = vals[2].get::<gst::Pad>().ok()?;
            if let Some(info) = pad
                .current_caps()
                .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok())
                && let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(&buf, &info)
                && let Some(hf) = hf_energy(&frame)
            {
                e.lock().unwrap()[k].push(hf);
            }
            if let (Some(clock), Some(base), Some(pts)) =
                (sink.clock(), sink.base_time(), buf.pts())
            {
                let now = clock.time().saturating_sub(base);
                d.lock().unwrap()[k]
                    .push(now.nseconds().saturating_sub(pts.nseconds()) as f64 / 1e6);
            }
            None
        });
        srs.push(pipeline.by_name(&format!("sr{k}")).ok_or("no mstgansr")?);
    }
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    // measure from the first shown frame of every camera on: model loading and warm-up are not
    // the steady state
    let started = std::time::Instant::now();
    while delays.lock().unwrap().iter().any(Vec::is_empty) {
        if started.elapsed() > Duration::from_secs(120) {
            return Err("nothing was shown in 120 s".into());
        }
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Error],
        ) && let gst::MessageView::Error(e) = msg.view()
        {
            return Err(format!("{} ({:?})", e.error(), e.debug()).into());
        }
    }
    let base_captured = captured.lock().unwrap().clone();
    let base_shown: Vec<usize> = delays.lock().unwrap().iter().map(Vec::len).collect();
    let base_energies: Vec<usize> = energies.lock().unwrap().iter().map(Vec::len).collect();
    let stats0: Vec<gst::Structure> = srs.iter().map(|s| s.property("stats")).collect();
    let cpu0 = cpu_seconds();
    let t0 = std::time::Instant::now();
    let deadline = t0 + Duration::from_secs(a.seconds);
    while std::time::Instant::now() < deadline {
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(200),
            &[gst::MessageType::Error],
        ) && let gst::MessageView::Error(e) = msg.view()
        {
            return Err(format!("{} ({:?})", e.error(), e.debug()).into());
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let stats1: Vec<gst::Structure> = srs.iter().map(|s| s.property("stats")).collect();
    let shown_delays: Vec<Vec<f64>> = delays
        .lock()
        .unwrap()
        .iter()
        .zip(&base_shown)
        .map(|(d, b)| d[*b..].to_vec())
        .collect();
    let cvs: Vec<f64> = energies
        .lock()
        .unwrap()
        .iter()
        .zip(&base_energies)
        .map(|(e, b)| cv_percent(&e[*b..]))
        .collect();
    let captured: u64 = captured
        .lock()
        .unwrap()
        .iter()
        .zip(&base_captured)
        .map(|(c, b)| c - b)
        .sum();
    let users = stats1[0].get::<u64>("engine-users").unwrap_or(0);
    pipeline.set_state(gst::State::Null)?;
    let diff = |k: &str| -> u64 {
        stats0
            .iter()
            .zip(&stats1)
            .map(|(s0, s1)| s1.get::<u64>(k).unwrap_or(0) - s0.get::<u64>(k).unwrap_or(0))
            .sum()
    };
    // the batching thread's counters are the shared sessions': read from one instance
    let first = |k: &str| -> f64 {
        (stats1[0].get::<u64>(k).unwrap_or(0) - stats0[0].get::<u64>(k).unwrap_or(0)) as f64
    };
    let batches = first("batch-inferences");
    let windows_per_batch = if batches > 0.0 {
        first("batch-windows") / batches
    } else {
        0.0
    };
    let all: Vec<f64> = shown_delays.iter().flatten().copied().collect();
    let shown = all.len() as u64;
    Ok(Run {
        steadiness_cv: median(cvs),
        out_fps: shown as f64 / elapsed / n as f64,
        delay_max_ms: all.iter().copied().fold(0.0, f64::max),
        delay_median_ms: median(all),
        captured,
        shown,
        inferred: diff("inferred"),
        resized: diff("resized"),
        full: diff("full-windows"),
        cpu_percent: 100.0 * cpu / elapsed,
        engine_users: users,
        windows_per_batch,
    })
}

/// This process's CPU time (user + system), seconds.
fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15, in clock ticks (100 a second on Linux)
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Shown frames that came from the model (the rest were resized or frames from before).
fn model_share(r: &Run) -> f64 {
    100.0 * (r.inferred.min(r.shown)) as f64 / r.shown.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::help(USAGE);
    let a = parse().unwrap_or_else(|e| cli::usage_error(USAGE, e));
    gst::init()?;
    gstmstgansr::plugin_register_static()?;
    let many = a.providers.len() > 1;
    let (variants, providers) = (&a.variants, &a.providers);
    let chosen: Vec<(&str, String, &str, &str, &str)> = RECIPES
        .iter()
        .filter(|r| a.recipes.iter().any(|x| x == r.0))
        .flat_map(|r| {
            variants.iter().flat_map(move |v| {
                providers.iter().map(move |p| {
                    let mut what = r.1.to_string();
                    if !v.is_empty() {
                        what += &format!(", variant={v}");
                    }
                    if many {
                        what += &format!(", {p}");
                    }
                    (r.0, what, r.2, v.as_str(), p.as_str())
                })
            })
        })
        .collect();
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); chosen.len()];
    for round in 0..a.rounds {
        for (i, (name, what, mid, variant, provider)) in chosen.iter().enumerate() {
            let r = run(&a, mid, variant, provider)?;
            eprintln!(
                "round {} recipe {name} ({what}): {:.2} frames/s shown, {:.1} % from the model, steadiness CV {:.2} %, \
                 delay median {:.0} ms max {:.0} ms, {} captured {} shown, {} inferred ({} with T distinct frames), {} resized, \
                 CPU {:.0} %, engine users {}, windows a batch {:.2}",
                round + 1,
                r.out_fps,
                model_share(&r),
                r.steadiness_cv,
                r.delay_median_ms,
                r.delay_max_ms,
                r.captured,
                r.shown,
                r.inferred,
                r.full,
                r.resized,
                r.cpu_percent,
                r.engine_users,
                r.windows_per_batch
            );
            results[i].push(r);
        }
    }
    println!(
        "live {}x{} at {} fps -> x{}, {} camera(s) in one process (shared-engine={}), {} s per run, \
         {} round(s) alternated; medians over rounds; frames/s per camera",
        a.width, a.height, a.fps, a.scale, a.cameras, a.shared, a.seconds, a.rounds
    );
    println!(
        "| recipe | frames/s shown | from the model | steadiness CV | delay median ms | delay max ms | frames lost | inferred from T distinct frames | inferred / resized | CPU % of a core |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for ((_, what, _, _, _), runs) in chosen.iter().zip(&results) {
        let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
        let lost = med(&|r| {
            100.0 * (r.captured.saturating_sub(r.shown)) as f64 / r.captured.max(1) as f64
        });
        let full = med(&|r| 100.0 * r.full as f64 / r.inferred.max(1) as f64);
        println!(
            "| {what} | {:.2} | {:.1} % | {:.2} % | {:.0} | {:.0} | {:.1} % | {:.0} % | {:.0} / {:.0} | {:.0} |",
            med(&|r| r.out_fps),
            med(&model_share),
            med(&|r| r.steadiness_cv),
            med(&|r| r.delay_median_ms),
            med(&|r| r.delay_max_ms),
            lost,
            full,
            med(&|r| r.inferred as f64),
            med(&|r| r.resized as f64),
            med(&|r| r.cpu_percent),
        );
    }
    Ok(())
}
