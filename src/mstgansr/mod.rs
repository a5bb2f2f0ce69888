// SPDX-License-Identifier: MIT OR Apache-2.0

use gst::glib;
use gst::prelude::*;

mod imp;

/// Which onnxruntime execution provider runs the model.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstMstGanSrExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "Auto: TensorRT, then CUDA, then CPU", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 1,
    #[enum_value(name = "CUDA", nick = "cuda")]
    Cuda = 2,
    #[enum_value(name = "TensorRT", nick = "tensorrt")]
    TensorRt = 3,
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

glib::wrapper! {
    pub struct MstGanSr(ObjectSubclass<imp::MstGanSr>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Precision::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "mstgansr",
        gst::Rank::NONE,
        MstGanSr::static_type(),
    )
}
