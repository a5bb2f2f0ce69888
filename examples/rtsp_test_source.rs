// SPDX-License-Identifier: MIT OR Apache-2.0
//! A stand-in RTSP camera on loopback: colour bars (with a moving ball) served with
//! gst-rtsp-server, H.264 over RTP. Used by the relay tests, and handy to try the relay.
//!
//!     cargo run --release --example rtsp_test_source -- [--port 8554] [--width 160 --height 120 --fps 15]
//!
//! Serves rtsp://127.0.0.1:<port>/cam until killed.

use gst_rtsp_server::prelude::*;

#[path = "common/cli.rs"]
mod cli;

const USAGE: &str = "\
usage: rtsp_test_source [--port 8554] [--width 160] [--height 120] [--fps 15]
Serves a stand-in camera at rtsp://127.0.0.1:PORT/cam until killed.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cli::help(USAGE);
    let (mut port, mut width, mut height, mut fps) = (8554u16, 160u32, 120u32, 15u32);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| cli::usage_error(USAGE, format!("{k} needs a value")));
        match k.as_str() {
            "--port" => port = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            "--width" => width = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            "--height" => height = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            "--fps" => fps = cli::num(&k, &v).unwrap_or_else(|e| cli::usage_error(USAGE, e)),
            _ => cli::usage_error(USAGE, format!("unknown argument {k}")),
        }
    }
    gst::init()?;
    let main_loop = glib::MainLoop::new(None, false);
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( videotestsrc is-live=true pattern=smpte horizontal-speed=2 ! \
         video/x-raw,width={width},height={height},framerate={fps}/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    ));
    factory.set_shared(true);
    server
        .mount_points()
        .ok_or("no mount points")?
        .add_factory("/cam", factory);
    let _id = server.attach(None)?;
    println!("serving rtsp://127.0.0.1:{port}/cam ({width}x{height} at {fps} fps)");
    main_loop.run();
    Ok(())
}
