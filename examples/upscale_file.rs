// SPDX-License-Identifier: MIT OR Apache-2.0
//! Upscale any file GStreamer can read into H.264 in MP4, with the audio carried through.
//!
//!     cargo run --release --example upscale_file -- INPUT OUTPUT.mp4 [--scale 4] [--model PATH]
//!         [--quantizer 18] [--provider auto|cpu|cuda|tensorrt] [--chroma 420|444]
//!         [--variant compressed|auto|perceptual|fidelity|real|fast|fast-compressed]
//!
//! Files are compressed video, so the model is the one trained on compressed input where the
//! scale has one (`--variant compressed`: real, else fidelity; `auto` for clean sources).
//! The video is decoded, upscaled by `mstgansr` and encoded with x264: H.264 High (4:2:0,
//! 8-bit), which browsers, phones and hardware decoders play; a 10-bit input stays 10-bit as
//! H.264 High 10 (4:2:0); `--chroma 444` keeps full chroma instead (High 4:4:4, which fewer
//! players take). The audio stream is not
//! decoded: it is parsed and muxed as it is (if MP4 cannot hold its codec, it is re-encoded to
//! AAC, and the program says so). Progress, frames/s and ETA go to stderr. Ctrl-C finishes the
//! file properly (EOS through the muxer), so what was written so far stays playable; a second
//! Ctrl-C quits at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: upscale_file INPUT OUTPUT.mp4 [--scale 2|3|4] [--model PATH] [--quantizer 0-51]
           [--provider auto|cpu|openvino|cuda|tensorrt] [--chroma 420|444]
           [--variant compressed|auto|perceptual|fidelity|real|fast|fast-compressed]
Upscales the video of INPUT with mstgansr into H.264 in MP4, audio carried through.";

struct Args {
    input: PathBuf,
    output: PathBuf,
    scale: u32,
    model: Option<String>,
    quantizer: u32,
    provider: String,
    chroma444: bool,
    variant: String,
}

fn parse() -> Result<Args, String> {
    let mut pos = vec![];
    let mut a = Args {
        input: PathBuf::new(),
        output: PathBuf::new(),
        scale: 4,
        model: None,
        quantizer: 18,
        provider: "auto".into(),
        chroma444: false,
        variant: "compressed".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if !k.starts_with("--") {
            pos.push(k);
            continue;
        }
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--scale" => a.scale = cli::num(&k, &v)?,
            "--model" => a.model = Some(v),
            "--quantizer" => a.quantizer = cli::num(&k, &v)?,
            "--provider" => a.provider = v,
            "--variant" => a.variant = v,
            "--chroma" => {
                a.chroma444 = match v.as_str() {
                    "420" => false,
                    "444" => true,
                    _ => return Err(format!("--chroma must be 420 or 444, not {v:?}")),
                }
            }
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if pos.len() != 2 {
        return Err(format!(
            "expected INPUT and OUTPUT, got {} path(s)",
            pos.len()
        ));
    }
    if !(2..=4).contains(&a.scale) {
        return Err(format!("--scale must be 2, 3 or 4, not {}", a.scale));
    }
    if a.quantizer > 51 {
        return Err(format!(
            "--quantizer must be 0-51 (x264), not {}",
            a.quantizer
        ));
    }
    a.input = pos[0].clone().into();
    a.output = pos[1].clone().into();
    Ok(a)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    cli::fail(msg)
}

/// The raw format and H.264 profile for the encoder: High (4:2:0, 8-bit) unless the input is
/// deeper than 8 bits (High 10) or 4:4:4 is asked for.
fn set_encoding(raw: &gst::Element, coded: &gst::Element, deep: bool, chroma444: bool) {
    let (format, profile) = match (deep, chroma444) {
        (false, false) => ("I420", "high"),
        (true, false) => ("I420_10LE", "high-10"),
        (false, true) => ("Y444", "high-4:4:4"),
        (true, true) => ("Y444_10LE", "high-4:4:4"),
    };
    raw.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", format)
            .build(),
    );
    coded.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("profile", profile)
            .build(),
    );
}

/// Audio codecs mp4mux takes as they are.
fn mp4_takes(caps: &gst::CapsRef) -> bool {
    let Some(s) = caps.structure(0) else {
        return false;
    };
    matches!(
        s.name().as_str(),
        "audio/mpeg" | "audio/x-ac3" | "audio/x-eac3" | "audio/x-opus" | "audio/x-alac"
    )
}

fn make(f: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(f).build().map_err(|_| {
        format!("GStreamer element {f} is missing: install the gstreamer1.0-plugins-* packages")
    })
}

fn main() {
    cli::help(USAGE);
    let a = parse().unwrap_or_else(|e| cli::usage_error(USAGE, e));
    if let Err(e) = std::fs::File::open(&a.input) {
        fail(format!("cannot read {}: {e}", a.input.display()));
    }
    // writable? (checked without leaving a file: nothing is written before the model loaded)
    let existed = a.output.exists();
    match std::fs::File::create(&a.output) {
        Err(e) => fail(format!("cannot write {}: {e}", a.output.display())),
        Ok(_) if !existed => {
            let _ = std::fs::remove_file(&a.output);
        }
        Ok(_) => {}
    }
    gst::init().unwrap_or_else(|e| fail(e));
    gstmstgansr::plugin_register_static().unwrap_or_else(|e| fail(e));
    for (prop, value) in [("execution-provider", &a.provider), ("variant", &a.variant)] {
        cli::check_enum(prop, value).unwrap_or_else(|e| cli::usage_error(USAGE, e));
    }
    // the model and provider are loaded once here, so their errors come before any file is written
    let scale = a.scale.to_string();
    let mut props = vec![
        ("scale", scale.as_str()),
        ("execution-provider", a.provider.as_str()),
        ("variant", a.variant.as_str()),
    ];
    if let Some(m) = &a.model {
        props.push(("model-location", m.as_str()));
    }
    if let Err(e) = cli::preflight(&props) {
        fail(e);
    }

    let pipeline = gst::Pipeline::new();
    let make_or_fail = |f: &str| make(f).unwrap_or_else(|e| fail(e));
    let src = make_or_fail("filesrc");
    src.set_property(
        "location",
        a.input
            .to_str()
            .unwrap_or_else(|| fail("input path is not UTF-8")),
    );
    let parse = make_or_fail("parsebin");
    let mux = make_or_fail("mp4mux");
    // a fragmented-safe, seekable file even if interrupted: moov at the end, written on EOS
    let sink = make_or_fail("filesink");
    sink.set_property(
        "location",
        a.output
            .to_str()
            .unwrap_or_else(|| fail("output path is not UTF-8")),
    );
    pipeline.add_many([&src, &parse, &mux, &sink]).unwrap();
    src.link(&parse).unwrap();
    mux.link(&sink).unwrap();

    let frames = Arc::new(AtomicU64::new(0));
    let have_video = Arc::new(AtomicBool::new(false));
    let fps_guess = Arc::new(std::sync::Mutex::new(None::<gst::Fraction>));
    {
        let pipeline_weak = pipeline.downgrade();
        let mux = mux.clone();
        let frames = frames.clone();
        let have_video = have_video.clone();
        let fps_guess = fps_guess.clone();
        let scale = a.scale;
        let model = a.model.clone();
        let provider = a.provider.clone();
        let quantizer = a.quantizer;
        let chroma444 = a.chroma444;
        let variant = a.variant.clone();
        parse.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            // a stream that cannot be set up ends the run with an error on the bus (the
            // element posts its own there first when it is the one that failed)
            let link = || -> Result<(), String> {
                let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
                let name = caps
                    .structure(0)
                    .map(|s| s.name().to_string())
                    .unwrap_or_default();
                let chain: Vec<gst::Element> = if name.starts_with("video/") {
                    if have_video.swap(true, Ordering::SeqCst) {
                        eprintln!("note: ignoring extra video stream {name}");
                        return Ok(());
                    }
                    // provider and variant were checked against the element's enums in main
                    let sr = gst::ElementFactory::make("mstgansr")
                        .property("scale", scale)
                        .property_from_str("execution-provider", &provider)
                        .property_from_str("variant", &variant)
                        .build()
                        .map_err(|e| e.to_string())?;
                    if let Some(m) = &model {
                        sr.set_property("model-location", m);
                    }
                    let enc = make("x264enc")?;
                    enc.set_property_from_str("pass", "qual");
                    enc.set_property("quantizer", quantizer);
                    enc.set_property_from_str("speed-preset", "medium");
                    let sr_src = sr.static_pad("src").ok_or("mstgansr has no src pad")?;
                    let frames = frames.clone();
                    sr_src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                        frames.fetch_add(1, Ordering::Relaxed);
                        gst::PadProbeReturn::Ok
                    });
                    if let Some(s) = caps.structure(0)
                        && let Ok(f) = s.get::<gst::Fraction>("framerate")
                    {
                        *fps_guess.lock().unwrap() = Some(f);
                    }
                    // what the encoder gets and makes: set once the decoder says its bit depth
                    let raw = make("capsfilter")?;
                    let coded = make("capsfilter")?;
                    set_encoding(&raw, &coded, false, chroma444);
                    let decode = make("decodebin")?;
                    let (raw2, coded2) = (raw.clone(), coded.clone());
                    decode.connect_pad_added(move |_, p| {
                        let deep = p
                            .current_caps()
                            .and_then(|c| {
                                c.structure(0)?
                                    .get::<&str>("format")
                                    .ok()
                                    .map(gst_video::VideoFormat::from_string)
                            })
                            .map(|f| gst_video::VideoFormatInfo::from_format(f).depth()[0] > 8)
                            .unwrap_or(false);
                        set_encoding(&raw2, &coded2, deep, chroma444);
                    });
                    vec![
                        decode,
                        make("videoconvert")?,
                        make("queue")?,
                        sr,
                        make("queue")?,
                        make("videoconvert")?,
                        raw,
                        enc,
                        coded,
                        make("h264parse")?,
                    ]
                } else if name.starts_with("audio/") {
                    // the muxer waits for video that the encoder's lookahead holds back for seconds:
                    // audio (small) must be able to wait that long without blocking the demuxer
                    let audio_queue = make("queue")?;
                    audio_queue.set_property("max-size-time", 0u64);
                    audio_queue.set_property("max-size-buffers", 0u32);
                    audio_queue.set_property("max-size-bytes", 64u32 << 20);
                    if mp4_takes(&caps) {
                        vec![audio_queue]
                    } else {
                        eprintln!(
                            "note: MP4 cannot hold {name} as it is: re-encoding the audio to AAC"
                        );
                        let mut chain = vec![audio_queue];
                        for f in ["decodebin", "audioconvert", "audioresample", "avenc_aac"] {
                            chain.push(make(f)?);
                        }
                        chain
                    }
                } else {
                    eprintln!("note: dropping stream {name}");
                    return Ok(());
                };
                pipeline.add_many(&chain).map_err(|e| e.to_string())?;
                // decodebin links its src pad later
                for pair in chain.windows(2) {
                    if pair[0].factory().map(|f| f.name()) == Some("decodebin".into()) {
                        let next = pair[1].clone();
                        pair[0].connect_pad_added(move |_, p| {
                            if let Some(sink) = next.static_pad("sink") {
                                let _ = p.link(&sink);
                            }
                        });
                    } else {
                        pair[0].link(&pair[1]).map_err(|e| e.to_string())?;
                    }
                }
                let last = chain.last().ok_or("empty chain")?;
                let mux_pad = mux
                    .request_pad_simple(if name.starts_with("video/") {
                        "video_%u"
                    } else {
                        "audio_%u"
                    })
                    .ok_or(format!("mp4mux refused {name}"))?;
                last.static_pad("src")
                    .ok_or("no src pad")?
                    .link(&mux_pad)
                    .map_err(|e| format!("linking {name} into mp4mux: {e:?}"))?;
                for e in &chain {
                    // a failing element (mstgansr with a bad model, say) has posted why on the bus
                    e.sync_state_with_parent()
                        .map_err(|_| format!("{} could not start", e.name()))?;
                }
                pad.link(&chain[0].static_pad("sink").ok_or("no sink pad")?)
                    .map_err(|e| format!("linking {name}: {e:?}"))?;
                Ok(())
            };
            if let Err(e) = link() {
                let _ = pipeline.post_message(
                    gst::message::Error::builder(gst::CoreError::Failed, &e)
                        .src(&pipeline)
                        .build(),
                );
            }
        });
    }

    // Ctrl-C: first one finishes the file, second one quits
    let interrupted = Arc::new(AtomicU64::new(0));
    {
        let pipeline_weak = pipeline.downgrade();
        let interrupted = interrupted.clone();
        ctrlc::set_handler(move || {
            if interrupted.fetch_add(1, Ordering::SeqCst) > 0 {
                eprintln!("\naborted");
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: finishing the file (Ctrl-C again to abort)");
            if let Some(p) = pipeline_weak.upgrade() {
                p.send_event(gst::event::Eos::new());
            }
        })
        .unwrap_or_else(|e| fail(e));
    }

    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        let msg = pipeline
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            .map(|m| match m.view() {
                gst::MessageView::Error(err) => format!("{} ({:?})", err.error(), err.debug()),
                _ => String::new(),
            })
            .unwrap_or_default();
        let _ = std::fs::remove_file(&a.output);
        fail(format!("could not start: {e} {msg}"));
    }
    let bus = pipeline.bus().unwrap();
    let start = Instant::now();
    let mut last_print = Instant::now() - Duration::from_secs(1);
    let mut result = Ok(());
    loop {
        let msg = bus.timed_pop(gst::ClockTime::from_mseconds(250));
        if let Some(msg) = msg {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => {
                    let src = e.src().map(|s| s.path_string()).unwrap_or_default();
                    result = Err(format!(
                        "{src}: {} ({})",
                        e.error(),
                        e.debug().unwrap_or_default()
                    ));
                    break;
                }
                gst::MessageView::Warning(w) => eprintln!(
                    "\nwarning: {} ({})",
                    w.error(),
                    w.debug().unwrap_or_default()
                ),
                _ => {}
            }
        }
        if last_print.elapsed() >= Duration::from_millis(500) {
            last_print = Instant::now();
            let done = frames.load(Ordering::Relaxed);
            let elapsed = start.elapsed().as_secs_f64();
            let fps = done as f64 / elapsed.max(1e-3);
            let total = pipeline
                .query_duration::<gst::ClockTime>()
                .zip(*fps_guess.lock().unwrap())
                .filter(|(_, f)| f.numer() > 0)
                .map(|(d, f)| {
                    (d.nseconds() as f64 / 1e9 * f.numer() as f64 / f.denom() as f64).round() as u64
                });
            match total {
                Some(t) if t > 0 => {
                    let pct = (done as f64 / t as f64).min(1.0);
                    let bar: String = (0..30)
                        .map(|i| if (i as f64) < pct * 30.0 { '#' } else { '.' })
                        .collect();
                    let eta = if fps > 0.0 {
                        (t.saturating_sub(done)) as f64 / fps
                    } else {
                        f64::NAN
                    };
                    eprint!("\r[{bar}] {done}/{t} frames  {fps:.2} fps  ETA {eta:.0} s   ");
                }
                _ => eprint!("\r{done} frames  {fps:.2} fps   "),
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    let done = frames.load(Ordering::Relaxed);
    match result {
        Ok(()) => {
            eprintln!(
                "\nwrote {} ({done} frames in {:.1} s{})",
                a.output.display(),
                start.elapsed().as_secs_f64(),
                if interrupted.load(Ordering::SeqCst) > 0 {
                    ", interrupted"
                } else {
                    ""
                }
            );
            if !have_video.load(Ordering::SeqCst) {
                let _ = std::fs::remove_file(&a.output);
                fail(format!("{} has no video stream", a.input.display()));
            }
        }
        Err(e) => {
            // nothing playable was written: leave no file that looks like a result
            let _ = std::fs::remove_file(&a.output);
            fail(format!("\n{}: {e}", a.input.display()))
        }
    }
}
