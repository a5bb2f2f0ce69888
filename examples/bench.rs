// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frames/s through the element in a real pipeline versus the bare upscaler (window + engine,
//! no GStreamer) on the same frames, and the element with and without its feature cache.
//!
//!     cargo run --release --example bench -- [--model PATH] [--frames 20] [--width 180 --height 144] [--threads 2]
//!
//! Prints the rates, the element's overhead over the bare engine (both running the whole graph)
//! and the feature cache's speed-up; run it on an otherwise idle machine.

use std::path::PathBuf;
use std::time::Instant;

use gst::prelude::*;
use gst_video::prelude::*;
use gstmstgansr::engine::{Engine, EngineConfig, FeatureCache, Provider};
use gstmstgansr::upscale::upscaler::{Arrival, Continuity, Limits, Upscaler};

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: bench [--model PATH] [--frames 20] [--width 180] [--height 144] [--threads 2] [--scale 4]
Frames/s through the element versus the bare upscaler, and with its feature cache.";

struct Args {
    model: Option<PathBuf>,
    frames: usize,
    width: usize,
    height: usize,
    threads: usize,
    scale: u32,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        frames: 20,
        width: 180,
        height: 144,
        threads: 2,
        scale: 4,
    };
    for (k, v) in cli::pairs()? {
        match k.as_str() {
            "--model" => a.model = Some(v.into()),
            "--frames" => a.frames = cli::num(&k, &v)?,
            "--width" => a.width = cli::num(&k, &v)?,
            "--height" => a.height = cli::num(&k, &v)?,
            "--threads" => a.threads = cli::num(&k, &v)?,
            "--scale" => a.scale = cli::num(&k, &v)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !(2..=4).contains(&a.scale) {
        return Err(format!("--scale must be 2, 3 or 4, not {}", a.scale));
    }
    if a.frames == 0 || a.width == 0 || a.height == 0 {
        return Err("--frames, --width and --height must be positive".into());
    }
    Ok(a)
}

fn frames(n: usize, w: usize, h: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|t| {
            let mut f = vec![0u8; w * h * 3];
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        let v = 127.5
                            + 100.0
                                * ((x as f32 * 0.21 + y as f32 * 0.13 + t as f32 * 0.5 + c as f32)
                                    .sin());
                        f[(y * w + x) * 3 + c] = v as u8;
                    }
                }
            }
            f
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::help(USAGE);
    let a = parse().unwrap_or_else(|e| cli::usage_error(USAGE, e));
    gst::init()?;
    gstmstgansr::plugin_register_static()?;
    let model = match &a.model {
        Some(m) => m.clone(),
        None => {
            gstmstgansr::models::resolve(a.scale, None, Default::default(), None)
                .map_err(|tried| format!("no bundled model, tried {tried:?}"))?
                .path
        }
    };
    let input = frames(a.frames, a.width, a.height);

    let planar = to_planar(&input, a.width, a.height);
    let t = Engine::new(&bare_config(&a, &model, false))?.info().window;

    // alternated rounds, best of each: a shared machine's speed drifts between runs
    let (mut engine_fps, mut bare_cached_fps) = (0.0f64, None::<f64>);
    let (mut plain_fps, mut cached_fps, mut cached) = (0.0f64, 0.0f64, false);
    for _ in 0..2 {
        engine_fps = engine_fps.max(bare_run(&a, &model, &planar, false)?.unwrap_or(0.0));
        if let Some(fps) = bare_run(&a, &model, &planar, true)? {
            bare_cached_fps = Some(bare_cached_fps.unwrap_or(0.0).max(fps));
        }
        plain_fps = plain_fps.max(element_run(&a, &model, &input, false)?.0);
        let (fps, active) = element_run(&a, &model, &input, true)?;
        cached_fps = cached_fps.max(fps);
        cached = active;
    }

    println!(
        "model: {} ({}x{} -> {}x{}, T={t}, {} threads)",
        model.display(),
        a.width,
        a.height,
        a.width * a.scale as usize,
        a.height * a.scale as usize,
        a.threads
    );
    println!("bare engine, whole graph : {engine_fps:.2} frames/s");
    if let Some(fps) = bare_cached_fps {
        println!("bare engine, feature cache: {fps:.2} frames/s");
    }
    println!("element, whole graph     : {plain_fps:.2} frames/s");
    println!(
        "overhead                 : {:.1} %",
        (engine_fps / plain_fps - 1.0) * 100.0
    );
    if cached {
        println!("element, feature cache   : {cached_fps:.2} frames/s");
        println!("cache speed-up           : {:.2}x", cached_fps / plain_fps);
    } else {
        println!(
            "element, feature cache   : not available (the model has no extractor/fusion pair)"
        );
    }
    Ok(())
}

fn bare_config(a: &Args, model: &std::path::Path, cache: bool) -> EngineConfig {
    EngineConfig::new(model, a.scale)
        .with_provider(Provider::Cpu)
        .with_threads(a.threads)
        .with_feature_cache(cache)
}

fn to_planar(input: &[Vec<u8>], w: usize, h: usize) -> Vec<Vec<f32>> {
    input
        .iter()
        .map(|f| {
            let mut p = vec![0.0f32; 3 * w * h];
            for (i, px) in f.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    p[c * w * h + i] = px[c] as f32 / 255.0;
                }
            }
            p
        })
        .collect()
}

/// The upscaler without GStreamer (what the element runs, minus pixel conversion and
/// buffers) over the same frames: the whole graph per window, or (`cache`) the extractor once
/// per frame and the fusion graph per window. `None` when `cache` is asked and the model has
/// no pair.
fn bare_run(
    a: &Args,
    model: &std::path::Path,
    planar: &[Vec<f32>],
    cache: bool,
) -> Result<Option<f64>, Box<dyn std::error::Error>> {
    let engine = Engine::new(&bare_config(a, model, cache))?;
    if cache && *engine.feature_cache() != FeatureCache::Active {
        return Ok(None);
    }
    let mut up: Upscaler<()> = Upscaler::new(engine);
    up.configure(a.width, a.height, None, Limits::default())?;
    up.warm_up()?;
    let continuity = Continuity {
        scene_cut_threshold: 0.0,
        ..Continuity::default()
    };
    let start = Instant::now();
    for f in planar {
        up.runs()
            .push(f.clone(), (), Arrival::default(), continuity)?;
        up.run_ready()?;
    }
    up.runs().finish();
    up.run_ready()?;
    Ok(Some(planar.len() as f64 / start.elapsed().as_secs_f64()))
}

/// appsrc ! mstgansr ! fakesink over `input`; returns frames/s and whether the cache ran.
fn element_run(
    a: &Args,
    model: &std::path::Path,
    input: &[Vec<u8>],
    cache: bool,
) -> Result<(f64, bool), Box<dyn std::error::Error>> {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time is-live=false caps=video/x-raw,format=RGB,width={w},height={h},framerate=25/1 ! \
         mstgansr name=sr scale={s} model-location=\"{m}\" execution-provider=cpu threads={th} feature-cache={cache} ! \
         fakesink sync=false",
        w = a.width,
        h = a.height,
        s = a.scale,
        m = model.display(),
        th = a.threads
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    let info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, a.width as u32, a.height as u32)
            .build()?;
    let buffers: Vec<gst::Buffer> = input
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut b = gst::Buffer::with_size(info.size()).unwrap();
            {
                let bm = b.get_mut().unwrap();
                bm.set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
                bm.set_duration(gst::ClockTime::from_mseconds(40));
                let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(bm, &info).unwrap();
                let stride = vf.plane_stride()[0] as usize;
                let d = vf.plane_data_mut(0).unwrap();
                for y in 0..a.height {
                    d[y * stride..y * stride + a.width * 3]
                        .copy_from_slice(&f[y * a.width * 3..(y + 1) * a.width * 3]);
                }
            }
            b
        })
        .collect();
    src.set_property("max-bytes", 0u64);
    pipeline.set_state(gst::State::Paused)?;
    let active = pipeline
        .by_name("sr")
        .map(|e| e.property::<bool>("feature-cache-active"))
        .unwrap_or(false);
    // the model is loaded in READY->PAUSED: time only the streaming
    let start = Instant::now();
    for b in buffers {
        src.push_buffer(b)?;
    }
    src.end_of_stream()?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null)?;
                return Err(format!("{} {:?}", e.error(), e.debug()).into());
            }
            _ => {}
        }
    }
    let fps = input.len() as f64 / start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    Ok((fps, active))
}
