// SPDX-License-Identifier: MIT OR Apache-2.0
//! Embedding `mstgansr` in an application: frames in through `appsrc`, upscaled frames out of
//! `appsink`, used by the application (here: a checksum and the mean brightness per frame).
//!
//!     cargo run --release --example embed_app -- [--frames 12] [--width 64 --height 48]
//!         [--scale 4] [--model PATH]
//!
//! What an embedder must know, and what this prints:
//! - latency: the element needs (T-1)/2 future frames before it can output a frame, so the first
//!   upscaled frame comes out only after that many more frames went in (see "in before first out");
//! - EOS: the last (T-1)/2 frames come out only when the application ends the stream
//!   (`appsrc.end_of_stream()`); without it they stay inside the element;
//! - timestamps: each output carries its input's PTS and duration, so A/V sync holds.

use gst::prelude::*;

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: embed_app [--frames 12] [--width 64] [--height 48] [--scale 2|3|4] [--model PATH]
mstgansr between appsrc and appsink: latency, EOS drain, timestamps.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::help(USAGE);
    let mut frames = 12u64;
    let (mut width, mut height, mut scale) = (64u32, 48u32, 4u32);
    let mut model: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| cli::usage_error(USAGE, format!("{k} needs a value")));
        match k.as_str() {
            "--frames" => frames = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            "--width" => width = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            "--height" => height = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            "--scale" => scale = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            "--model" => model = Some(v),
            _ => cli::usage_error(USAGE, format!("unknown argument {k}")),
        }
    }
    if !(2..=4).contains(&scale) {
        cli::usage_error(USAGE, format!("--scale must be 2, 3 or 4, not {scale}"));
    }
    if frames == 0 || width == 0 || height == 0 {
        cli::usage_error(USAGE, "--frames, --width and --height must be positive");
    }
    gst::init()?;
    gstmstgansr::plugin_register_static()?;

    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .fps(gst::Fraction::new(25, 1))
        .build()?;
    let appsrc = gst_app::AppSrc::builder()
        .caps(&info.to_caps()?)
        .format(gst::Format::Time)
        .build();
    let sr = gst::ElementFactory::make("mstgansr")
        .property("scale", scale)
        .property_from_str("execution-provider", "cpu")
        .build()?;
    if let Some(m) = &model {
        sr.set_property("model-location", m);
    }
    let appsink = gst_app::AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([appsrc.upcast_ref(), &sr, appsink.upcast_ref()])?;
    gst::Element::link_many([appsrc.upcast_ref(), &sr, appsink.upcast_ref()])?;
    pipeline.set_state(gst::State::Playing)?;
    let window: u32 = sr.property("window");
    println!(
        "model window T={window}: an output leaves once {} later frame(s) have arrived",
        window / 2
    );

    let mut received = 0u64;
    let mut first_out_after = None;
    let use_frame =
        |sample: gst::Sample, received: &mut u64| -> Result<(), Box<dyn std::error::Error>> {
            let buf = sample.buffer().ok_or("sample without buffer")?;
            let caps = sample.caps().ok_or("sample without caps")?;
            let out_info = gst_video::VideoInfo::from_caps(caps)?;
            let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &out_info)?;
            let data = vf.plane_data(0)?;
            let mean = data.iter().map(|&v| v as u64).sum::<u64>() as f64 / data.len() as f64;
            println!(
                "out frame pts={} {}x{} mean={mean:.1}",
                buf.pts().map(|t| t.mseconds()).unwrap_or(0),
                out_info.width(),
                out_info.height()
            );
            *received += 1;
            Ok(())
        };
    for i in 0..frames {
        let mut b = gst::Buffer::with_size(info.size())?;
        {
            let bm = b.get_mut().unwrap();
            bm.set_pts(gst::ClockTime::from_mseconds(40 * i));
            bm.set_duration(gst::ClockTime::from_mseconds(40));
            let mut m = bm.map_writable()?;
            for (j, v) in m.iter_mut().enumerate() {
                *v = ((j as u64 + 3 * i) % 256) as u8;
            }
        }
        appsrc.push_buffer(b)?;
        // drain whatever is ready without blocking, as a real-time application would
        while let Some(s) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(
            if i + 1 > (window / 2) as u64 {
                2000
            } else {
                50
            },
        )) {
            if first_out_after.is_none() {
                first_out_after = Some(i + 1);
            }
            use_frame(s, &mut received)?;
            if received + (window / 2) as u64 > i {
                break;
            }
        }
    }
    println!(
        "first output came after input #{} (latency {} frames)",
        first_out_after.unwrap_or(0),
        first_out_after.unwrap_or(1) - 1
    );
    println!("before EOS: {received} of {frames} frames out");
    appsrc.end_of_stream()?;
    while let Some(s) = appsink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        use_frame(s, &mut received)?;
    }
    println!("after EOS: {received} of {frames} frames out");
    pipeline.set_state(gst::State::Null)?;
    if received != frames {
        return Err(format!("{received} frames out for {frames} in").into());
    }
    Ok(())
}
