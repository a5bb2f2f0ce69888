// SPDX-License-Identifier: MIT OR Apache-2.0
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

//! GStreamer video super-resolution element `mstgansr` (MST-GAN generator on onnxruntime).
//!
//! Layout: [`mstgansr`] is the element (GStreamer only), [`engine`] runs the ONNX model
//! (onnxruntime only), [`convert`] moves pixels between video formats and the model's planar
//! RGB, [`upscale`] upscales a stream of frames without GStreamer (the temporal window, scene
//! cuts, tiles, the memory plan, and the upscaler that ties them to the engine), [`live`] is the
//! policy for live sources, [`models`] finds the bundled model files.

use gst::glib;

pub mod convert;
pub mod engine;
pub mod live;
pub mod models;
mod mstgansr;
pub mod upscale;

pub use mstgansr::{ExecutionProvider, LateFrames, LiveTier, MstGanSr, Precision, Variant};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    mstgansr::register(plugin)
}

gst::plugin_define!(
    mstgansr,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
