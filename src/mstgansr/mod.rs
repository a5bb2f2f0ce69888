// SPDX-License-Identifier: MIT OR Apache-2.0

use gst::glib;
use gst::prelude::*;

use crate::{engine, models};

mod caps;
mod imp;
mod pixels;
mod sequence;
mod settings;
mod stats;
mod timing;

/// Which onnxruntime execution provider runs the model.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstMstGanSrExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(
        name = "Auto: TensorRT, then CUDA, then OpenVINO, then CPU",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 1,
    #[enum_value(name = "CUDA", nick = "cuda")]
    Cuda = 2,
    #[enum_value(name = "TensorRT", nick = "tensorrt")]
    TensorRt = 3,
    #[enum_value(
        name = "OpenVINO on the CPU (needs onnxruntime-openvino, see ORT_DYLIB_PATH)",
        nick = "openvino"
    )]
    OpenVino = 4,
}

/// Numeric precision of the model run.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstMstGanSrPrecision")]
pub enum Precision {
    #[default]
    #[enum_value(
        name = "Auto: INT8 on CPU when shipped, FP16 on TensorRT, else FP32",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "FP32", nick = "fp32")]
    Fp32 = 1,
    #[enum_value(name = "FP16 (TensorRT)", nick = "fp16")]
    Fp16 = 2,
    #[enum_value(name = "INT8", nick = "int8")]
    Int8 = 3,
}

/// What happens to a frame whose output would be late (QoS).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstMstGanSrLateFrames")]
pub enum LateFrames {
    #[default]
    #[enum_value(name = "Drop: no output for a late frame", nick = "drop")]
    Drop = 0,
    #[enum_value(
        name = "Resize: a late frame is upscaled bilinearly instead, so the frame rate holds",
        nick = "resize"
    )]
    Resize = 1,
}

/// Whether a live source may run a cheaper model than the one asked for.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstMstGanSrLiveTier")]
pub enum LiveTier {
    #[default]
    #[enum_value(
        name = "Auto: a live source whose frames the model cannot keep up with runs the fast tier of the same kind",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "Pinned: always the model asked for", nick = "pinned")]
    Pinned = 1,
}

/// Which bundled model serves a scale.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstMstGanSrVariant")]
pub enum Variant {
    #[default]
    #[enum_value(
        name = "Auto: perceptual where it ships (x4), else fidelity",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "Perceptual (GAN): sharpest on clean input",
        nick = "perceptual"
    )]
    Perceptual = 1,
    #[enum_value(name = "Fidelity: highest PSNR on clean input", nick = "fidelity")]
    Fidelity = 2,
    #[enum_value(
        name = "Real: trained on compressed, noisy input (cameras, web video)",
        nick = "real"
    )]
    Real = 3,
    #[enum_value(
        name = "Compressed input: real where it ships, else fidelity",
        nick = "compressed"
    )]
    Compressed = 4,
    #[enum_value(
        name = "Fast: the CPU / live-camera tier (x2, x4), less sharp",
        nick = "fast"
    )]
    Fast = 5,
    #[enum_value(
        name = "Fast, for compressed input: the fast tier trained on x264-compressed video where it ships, else fast",
        nick = "fast-compressed"
    )]
    FastCompressed = 6,
}

impl From<Variant> for models::Variant {
    fn from(v: Variant) -> Self {
        match v {
            Variant::Auto => models::Variant::Auto,
            Variant::Perceptual => models::Variant::Perceptual,
            Variant::Fidelity => models::Variant::Fidelity,
            Variant::Real => models::Variant::Real,
            Variant::Compressed => models::Variant::Compressed,
            Variant::Fast => models::Variant::Fast,
            Variant::FastCompressed => models::Variant::FastCompressed,
        }
    }
}

impl From<models::Variant> for Variant {
    fn from(v: models::Variant) -> Self {
        match v {
            models::Variant::Auto => Variant::Auto,
            models::Variant::Perceptual => Variant::Perceptual,
            models::Variant::Fidelity => Variant::Fidelity,
            models::Variant::Real => Variant::Real,
            models::Variant::Compressed => Variant::Compressed,
            models::Variant::Fast => Variant::Fast,
            models::Variant::FastCompressed => Variant::FastCompressed,
        }
    }
}

impl From<ExecutionProvider> for engine::Provider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Auto => engine::Provider::Auto,
            ExecutionProvider::Cpu => engine::Provider::Cpu,
            ExecutionProvider::Cuda => engine::Provider::Cuda,
            ExecutionProvider::TensorRt => engine::Provider::TensorRt,
            ExecutionProvider::OpenVino => engine::Provider::OpenVino,
        }
    }
}

impl From<Precision> for engine::Precision {
    fn from(p: Precision) -> Self {
        match p {
            Precision::Auto => engine::Precision::Auto,
            Precision::Fp32 => engine::Precision::Fp32,
            Precision::Fp16 => engine::Precision::Fp16,
            Precision::Int8 => engine::Precision::Int8,
        }
    }
}

glib::wrapper! {
    pub struct MstGanSr(ObjectSubclass<imp::MstGanSr>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Precision::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        LateFrames::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        LiveTier::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Variant::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "mstgansr",
        gst::Rank::NONE,
        MstGanSr::static_type(),
    )
}
