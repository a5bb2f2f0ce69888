// SPDX-License-Identifier: MIT OR Apache-2.0
//! Upscale any file GStreamer can read into H.264 in MP4, with the audio carried through.
//!
//!     cargo run --release --example upscale_file -- INPUT OUTPUT.mp4 [--scale 4] [--model PATH]
//!         [--quantizer 18] [--provider auto|cpu|cuda|tensorrt] [--chroma 420|444]
//!         [--variant compressed|auto|perceptual|fidelity|real|fast]
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

fn usage() -> ! {
    eprintln!(
        "usage: upscale_file INPUT OUTPUT.mp4 [--scale 2|3|4] [--model PATH] [--quantizer N] [--provider P] [--chroma 420|444] [--variant V]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
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
        let mut val = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--scale" => a.scale = val().parse().unwrap_or_else(|_| usage()),
            "--model" => a.model = Some(val()),
            "--quantizer" => a.quantizer = val().parse().unwrap_or_else(|_| usage()),
            "--provider" => a.provider = val(),
            "--variant" => a.variant = val(),
            "--chroma" => {
                a.chroma444 = match val().as_str() {
                    "420" => false,
                    "444" => true,
                    _ => usage(),
                }
            }
            "-h" | "--help" => usage(),
            _ => pos.push(k),
        }
    }
    if pos.len() != 2 {
        usage();
    }
    a.input = pos[0].clone().into();
    a.output = pos[1].clone().into();
    a
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
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
    let s = caps.structure(0).unwrap();
    matches!(
        s.name().as_str(),
        "audio/mpeg" | "audio/x-ac3" | "audio/x-eac3" | "audio/x-opus" | "audio/x-alac"
    )
}

fn main() {
    let a = parse();
    if let Err(e) = std::fs::File::open(&a.input) {
        fail(format!("cannot read {}: {e}", a.input.display()));
    }
    if let Err(e) = std::fs::File::create(&a.output) {
        fail(format!("cannot write {}: {e}", a.output.display()));
    }
    gst::init().unwrap_or_else(|e| fail(e));
    gstmstgansr::plugin_register_static().unwrap_or_else(|e| fail(e));

    let pipeline = gst::Pipeline::new();
    let make = |f: &str| {
        gst::ElementFactory::make(f).build().unwrap_or_else(|_| {
            fail(format!(
                "GStreamer element {f} is missing: install the gstreamer1.0-plugins-* packages"
            ))
        })
    };
    let src = make("filesrc");
    src.set_property(
        "location",
        a.input
            .to_str()
            .unwrap_or_else(|| fail("input path is not UTF-8")),
    );
    let parse = make("parsebin");
    let mux = make("mp4mux");
    // a fragmented-safe, seekable file even if interrupted: moov at the end, written on EOS
    let sink = make("filesink");
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
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let name = caps
                .structure(0)
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            let chain: Vec<gst::Element> = if name.starts_with("video/") {
                if have_video.swap(true, Ordering::SeqCst) {
                    eprintln!("note: ignoring extra video stream {name}");
                    return;
                }
                let sr = gst::ElementFactory::make("mstgansr")
                    .property("scale", scale)
                    .property_from_str("execution-provider", &provider)
                    .property_from_str("variant", &variant)
                    .build()
                    .unwrap();
                if let Some(m) = &model {
                    sr.set_property("model-location", m);
                }
                let enc = gst::ElementFactory::make("x264enc")
                    .property_from_str("pass", "qual")
                    .property("quantizer", quantizer)
                    .property_from_str("speed-preset", "medium")
                    .build()
                    .unwrap();
                let sr_src = sr.static_pad("src").unwrap();
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
                let raw = gst::ElementFactory::make("capsfilter").build().unwrap();
                let coded = gst::ElementFactory::make("capsfilter").build().unwrap();
                set_encoding(&raw, &coded, false, chroma444);
                let decode = gst::ElementFactory::make("decodebin").build().unwrap();
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
                [decode]
                    .into_iter()
                    .chain(
                        ["videoconvert", "queue"]
                            .iter()
                            .map(|f| gst::ElementFactory::make(f).build().unwrap()),
                    )
                    .chain([
                        sr,
                        gst::ElementFactory::make("queue").build().unwrap(),
                        gst::ElementFactory::make("videoconvert").build().unwrap(),
                        raw,
                        enc,
                        coded,
                        gst::ElementFactory::make("h264parse").build().unwrap(),
                    ])
                    .collect()
            } else if name.starts_with("audio/") {
                // the muxer waits for video that the encoder's lookahead holds back for seconds:
                // audio (small) must be able to wait that long without blocking the demuxer
                let audio_queue = gst::ElementFactory::make("queue")
                    .property("max-size-time", 0u64)
                    .property("max-size-buffers", 0u32)
                    .property("max-size-bytes", 64u32 << 20)
                    .build()
                    .unwrap();
                if mp4_takes(&caps) {
                    vec![audio_queue]
                } else {
                    eprintln!(
                        "note: MP4 cannot hold {name} as it is: re-encoding the audio to AAC"
                    );
                    std::iter::once(audio_queue)
                        .chain(
                            ["decodebin", "audioconvert", "audioresample", "avenc_aac"]
                                .iter()
                                .map(|f| {
                                    gst::ElementFactory::make(f)
                                        .build()
                                        .unwrap_or_else(|_| fail(format!("element {f} missing")))
                                }),
                        )
                        .collect()
                }
            } else {
                eprintln!("note: dropping stream {name}");
                return;
            };
            pipeline.add_many(&chain).unwrap();
            // decodebin links its src pad later
            for pair in chain.windows(2) {
                if pair[0].factory().map(|f| f.name()) == Some("decodebin".into()) {
                    let next = pair[1].clone();
                    pair[0].connect_pad_added(move |_, p| {
                        let _ = p.link(&next.static_pad("sink").unwrap());
                    });
                } else {
                    pair[0].link(&pair[1]).unwrap();
                }
            }
            let last = chain.last().unwrap();
            let mux_pad = mux
                .request_pad_simple(if name.starts_with("video/") {
                    "video_%u"
                } else {
                    "audio_%u"
                })
                .unwrap_or_else(|| fail(format!("mp4mux refused {name}")));
            last.static_pad("src")
                .unwrap()
                .link(&mux_pad)
                .unwrap_or_else(|e| fail(format!("linking {name} into mp4mux: {e:?}")));
            for e in &chain {
                e.sync_state_with_parent().unwrap();
            }
            pad.link(&chain[0].static_pad("sink").unwrap())
                .unwrap_or_else(|e| fail(format!("linking {name}: {e:?}")));
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
                fail(format!("{} has no video stream", a.input.display()));
            }
        }
        Err(e) => fail(format!("\n{}: {e}", a.input.display())),
    }
}
