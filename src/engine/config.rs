// SPDX-License-Identifier: MIT OR Apache-2.0

//! What an [`Engine`](super::Engine) is asked for, what it ends up running on, and how it fails.

use std::path::PathBuf;

/// The execution provider asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// Best available: TensorRT, then CUDA, then OpenVINO, then CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
    /// Intel's OpenVINO on the CPU (an onnxruntime built with it: onnxruntime-openvino).
    OpenVino,
}

impl Provider {
    /// Whether sessions are compiled per input shape: OpenVINO's are (see `shaped`), so a
    /// graph is first read on the CPU provider, for the checks, and the feature-cache pair runs
    /// there too.
    pub fn per_shape(self) -> bool {
        self == Provider::OpenVino
    }

    /// The provider a graph is loaded on before any input shape is known.
    pub fn loads_on(self) -> Provider {
        if self.per_shape() {
            Provider::Cpu
        } else {
            self
        }
    }
}

/// The execution provider that registered: what actually runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveProvider {
    Cpu,
    Cuda,
    TensorRt,
    OpenVino,
}

impl ActiveProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveProvider::Cpu => "cpu",
            ActiveProvider::Cuda => "cuda",
            ActiveProvider::TensorRt => "tensorrt",
            ActiveProvider::OpenVino => "openvino",
        }
    }

    /// The request that gives exactly this provider (used to load a model's other graphs).
    pub fn as_request(self) -> Provider {
        match self {
            ActiveProvider::Cpu => Provider::Cpu,
            ActiveProvider::Cuda => Provider::Cuda,
            ActiveProvider::TensorRt => Provider::TensorRt,
            ActiveProvider::OpenVino => Provider::OpenVino,
        }
    }
}

impl std::fmt::Display for ActiveProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The numeric precision asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Auto,
    Fp32,
    /// The FP32 model on TensorRT's FP16 kernels.
    Fp16,
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    /// The model file precision this request needs; `None` takes either.
    pub fn model_precision(self) -> Option<ModelPrecision> {
        match self {
            Precision::Auto => None,
            Precision::Fp32 | Precision::Fp16 => Some(ModelPrecision::Fp32),
            Precision::Int8 => Some(ModelPrecision::Int8),
        }
    }
}

/// What a model file holds (its `precision` metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelPrecision {
    Fp32,
    Int8,
}

impl ModelPrecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelPrecision::Fp32 => "fp32",
            ModelPrecision::Int8 => "int8",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fp32" => Some(ModelPrecision::Fp32),
            "int8" => Some(ModelPrecision::Int8),
            _ => None,
        }
    }
}

impl std::fmt::Display for ModelPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "onnxruntime could not be loaded ({0}). Install it with `pip install onnxruntime` (or onnxruntime-gpu) \
         or set ORT_DYLIB_PATH to the absolute path of libonnxruntime.so.<version>"
    )]
    RuntimeMissing(String),
    #[error("model file {0} does not exist: set model-location to an MST-GAN .onnx file")]
    ModelMissing(PathBuf),
    #[error("model {path} could not be loaded: {reason}. Is it a valid MST-GAN ONNX export?")]
    ModelInvalid { path: PathBuf, reason: String },
    #[error("model {path} does not follow the MST-GAN contract: {reason}")]
    Contract { path: PathBuf, reason: String },
    #[error(
        "{path} is the {part} graph of a split model, not a whole model: set model-location to {whole} \
         (the element finds the {part} next to it)"
    )]
    PartGivenAsModel {
        path: PathBuf,
        part: String,
        whole: PathBuf,
    },
    #[error(
        "model {path} upscales by {model}x but scale={requested}: set scale={model} or load a x{requested} model"
    )]
    ScaleMismatch {
        path: PathBuf,
        model: u32,
        requested: u32,
    },
    #[error(
        "model {path} is {model} but precision={requested} was asked for: pick a {requested} model or precision=auto"
    )]
    PrecisionMismatch {
        path: PathBuf,
        model: ModelPrecision,
        requested: &'static str,
    },
    #[error("execution provider {provider} is not available: {reason}")]
    ProviderUnavailable {
        provider: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    #[error(
        "{what} needs {} MiB, more than the {} MiB {limit} allows: {fix}",
        need >> 20,
        have >> 20
    )]
    OutOfMemory {
        what: String,
        need: u64,
        have: u64,
        limit: String,
        fix: &'static str,
    },
    /// A [`StopHandle`](super::StopHandle) stopped it: not a failure, the stream is flushing
    /// or shutting down.
    #[error("inference stopped: the element is flushing or shutting down")]
    Stopped,
    #[error("inference on a {height}x{width} window of {frames} frames failed: {reason}")]
    Inference {
        frames: usize,
        width: usize,
        height: usize,
        reason: String,
    },
}

/// Everything needed to build an [`Engine`](super::Engine).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub scale: u32,
    pub provider: Provider,
    pub device_id: i32,
    pub precision: Precision,
    /// TensorRT engine and timing cache folder; `None` disables caching.
    pub engine_cache_dir: Option<PathBuf>,
    /// onnxruntime intra-op threads; 0 = onnxruntime's default (one per core).
    pub threads: usize,
    /// Use the model's extractor/fusion pair when it is there.
    pub feature_cache: bool,
    /// Share the sessions with every other engine of this process built from the same
    /// configuration (see [`Engine::new`](super::Engine::new)).
    pub share: bool,
}

impl EngineConfig {
    #[must_use]
    pub fn new(model_path: impl Into<PathBuf>, scale: u32) -> Self {
        Self {
            model_path: model_path.into(),
            scale,
            provider: Provider::Auto,
            device_id: 0,
            precision: Precision::Auto,
            engine_cache_dir: None,
            threads: 0,
            feature_cache: true,
            share: false,
        }
    }

    #[must_use]
    pub fn with_sharing(mut self, share: bool) -> Self {
        self.share = share;
        self
    }

    /// What must match for two engines to share sessions: everything that shapes a session.
    pub(super) fn share_key(&self) -> String {
        let path = self
            .model_path
            .canonicalize()
            .unwrap_or_else(|_| self.model_path.clone());
        format!(
            "{}|{}|{:?}|{}|{:?}|{:?}|{}|{}",
            path.display(),
            self.scale,
            self.provider,
            self.device_id,
            self.precision,
            self.engine_cache_dir,
            self.threads,
            self.feature_cache
        )
    }

    #[must_use]
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    #[must_use]
    pub fn with_feature_cache(mut self, on: bool) -> Self {
        self.feature_cache = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_openvino_compiles_per_shape_and_loads_on_the_cpu_first() {
        assert!(Provider::OpenVino.per_shape());
        assert_eq!(Provider::OpenVino.loads_on(), Provider::Cpu);
        for p in [
            Provider::Auto,
            Provider::Cpu,
            Provider::Cuda,
            Provider::TensorRt,
        ] {
            assert!(!p.per_shape());
            assert_eq!(p.loads_on(), p);
        }
    }
}
