// SPDX-License-Identifier: MIT OR Apache-2.0
//! A live camera into the upscaler, measured: frames shown per second, end-to-end delay, frames
//! lost, and how many outputs the model computed from T distinct neighbours. Each recipe runs
//! for `--seconds`, alternated with the others over `--rounds`; medians over rounds are printed.
//!
//!     cargo run --release --example live_bench -- [--seconds 60] [--rounds 2] \
//!         [--width 320 --height 240 --fps 30 --scale 4] [--model PATH] [--recipes a,b,c,d] \
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

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: live_bench [--seconds 60] [--rounds 2] [--width 320] [--height 240] [--fps 30] [--scale 4]
           [--model PATH] [--recipes a,b,c,d] [--variants fast,fidelity]
A live camera into the upscaler: frames shown, delay, frames lost, per recipe.";

struct Args {
    seconds: u64,
    rounds: usize,
    width: u32,
    height: u32,
    fps: u32,
    scale: u32,
    model: Option<String>,
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
    out_fps: f64,
    delay_median_ms: f64,
    delay_max_ms: f64,
    captured: u64,
    shown: u64,
    inferred: u64,
    resized: u64,
    full: u64,
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

fn run(a: &Args, middle: &str, variant: &str) -> Result<Run, Box<dyn std::error::Error>> {
    let m = format!(
        "name=sr scale={} execution-provider=cpu {}",
        a.scale,
        match (&a.model, variant) {
            (Some(p), _) => format!("model-location=\"{p}\""),
            (None, "") => String::new(),
            (None, v) => format!("variant={v}"),
        }
    );
    let desc = format!(
        "videotestsrc name=cam is-live=true pattern=ball ! \
         video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! {mid} ! \
         videoconvert ! fakesink name=show sync=true qos=true max-lateness=20000000 signal-handoffs=true",
        w = a.width,
        h = a.height,
        fps = a.fps,
        mid = middle.replace("{m}", &m),
    );
    let pipeline = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    let captured = Arc::new(Mutex::new(0u64));
    let c = captured.clone();
    pipeline
        .by_name("cam")
        .ok_or("no camera")?
        .static_pad("src")
        .ok_or("no pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            *c.lock().unwrap() += 1;
            gst::PadProbeReturn::Ok
        });
    let delays = Arc::new(Mutex::new(Vec::<f64>::new()));
    let d = delays.clone();
    let show = pipeline.by_name("show").ok_or("no sink")?;
    show.connect("handoff", false, move |vals| {
        let sink = vals[0].get::<gst::Element>().ok()?;
        let buf = vals[1].get::<gst::Buffer>().ok()?;
        if let (Some(clock), Some(base), Some(pts)) = (sink.clock(), sink.base_time(), buf.pts()) {
            let now = clock.time().saturating_sub(base);
            d.lock()
                .unwrap()
                .push(now.nseconds().saturating_sub(pts.nseconds()) as f64 / 1e6);
        }
        None
    });
    let sr = pipeline.by_name("sr").ok_or("no mstgansr")?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    // measure from the first shown frame on: model loading and warm-up are not the steady state
    let started = std::time::Instant::now();
    while delays.lock().unwrap().is_empty() {
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
    let base_captured = *captured.lock().unwrap();
    let base_shown = delays.lock().unwrap().len();
    let stats0 = sr.property::<gst::Structure>("stats");
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
    let stats1 = sr.property::<gst::Structure>("stats");
    let shown_delays: Vec<f64> = delays.lock().unwrap()[base_shown..].to_vec();
    let captured = *captured.lock().unwrap() - base_captured;
    pipeline.set_state(gst::State::Null)?;
    let diff = |k: &str| stats1.get::<u64>(k).unwrap_or(0) - stats0.get::<u64>(k).unwrap_or(0);
    Ok(Run {
        out_fps: shown_delays.len() as f64 / elapsed,
        delay_max_ms: shown_delays.iter().copied().fold(0.0, f64::max),
        delay_median_ms: median(shown_delays.clone()),
        captured,
        shown: shown_delays.len() as u64,
        inferred: diff("inferred"),
        resized: diff("resized"),
        full: diff("full-windows"),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::help(USAGE);
    let a = parse().unwrap_or_else(|e| cli::usage_error(USAGE, e));
    gst::init()?;
    gstmstgansr::plugin_register_static()?;
    let chosen: Vec<(&str, String, &str, &str)> = RECIPES
        .iter()
        .filter(|r| a.recipes.iter().any(|x| x == r.0))
        .flat_map(|r| {
            a.variants.iter().map(move |v| {
                let what = if v.is_empty() {
                    r.1.to_string()
                } else {
                    format!("{}, variant={v}", r.1)
                };
                (r.0, what, r.2, v.as_str())
            })
        })
        .collect();
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); chosen.len()];
    for round in 0..a.rounds {
        for (i, (name, what, mid, variant)) in chosen.iter().enumerate() {
            let r = run(&a, mid, variant)?;
            eprintln!(
                "round {} recipe {name} ({what}): {:.2} frames/s shown, delay median {:.0} ms max {:.0} ms, \
                 {} captured {} shown, {} inferred ({} with T distinct frames), {} resized",
                round + 1,
                r.out_fps,
                r.delay_median_ms,
                r.delay_max_ms,
                r.captured,
                r.shown,
                r.inferred,
                r.full,
                r.resized
            );
            results[i].push(r);
        }
    }
    println!(
        "live {}x{} at {} fps -> x{}, {} s per run, {} round(s) alternated; medians over rounds",
        a.width, a.height, a.fps, a.scale, a.seconds, a.rounds
    );
    println!(
        "| recipe | frames/s shown | delay median ms | delay max ms | frames lost | inferred from T distinct frames | inferred / resized |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((_, what, _, _), runs) in chosen.iter().zip(&results) {
        let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
        let lost = med(&|r| {
            100.0 * (r.captured.saturating_sub(r.shown)) as f64 / r.captured.max(1) as f64
        });
        let full = med(&|r| 100.0 * r.full as f64 / r.inferred.max(1) as f64);
        println!(
            "| {what} | {:.2} | {:.0} | {:.0} | {:.1} % | {:.0} % | {:.0} / {:.0} |",
            med(&|r| r.out_fps),
            med(&|r| r.delay_median_ms),
            med(&|r| r.delay_max_ms),
            lost,
            full,
            med(&|r| r.inferred as f64),
            med(&|r| r.resized as f64),
        );
    }
    Ok(())
}
