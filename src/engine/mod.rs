// SPDX-License-Identifier: MIT OR Apache-2.0

//! The inference engine: one onnxruntime session running the MST-GAN generator. No GStreamer
//! types; the element owns one [`Engine`] per running instance.
//!
//! Model contract: input float32 `[N, T, 3, H, W]` (RGB in [0, 1], T consecutive frames, the one
//! to upscale in the middle), output float32 `[N, 3, s*H, s*W]`; `metadata_props` carry `scale`,
//! `window`, `precision` and `version`.
//!
//! Feature caching: a model `X.onnx` may come with `X.extractor.onnx` (`frame [N,3,H,W]` ->
//! `feat0..2`, the per-frame features at 3 pyramid levels) and `X.fusion.onnx` (`frames` +
//! `feat0..2 [N,T,C,h,w]` -> `upscaled`), the same network cut in two. Each frame sits in T
//! windows; with the pair its features are computed once ([`Engine::extract`]) and reused
//! ([`Engine::run_cached`]) instead of T times. The output is the same.

mod gpu;
mod runtime;

use std::path::{Path, PathBuf};

use ort::ep::{self, ExecutionProvider as _};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::TensorRef;

pub use gpu::cuda_devices;
pub use runtime::find_library;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// Best available: TensorRT, then CUDA, then CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Auto,
    Fp32,
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
        model: String,
        requested: String,
    },
    #[error("execution provider {provider} is not available: {reason}")]
    ProviderUnavailable {
        provider: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("inference on a {height}x{width} window of {frames} frames failed: {reason}")]
    Inference {
        frames: usize,
        width: usize,
        height: usize,
        reason: String,
    },
}

/// Everything needed to build an [`Engine`].
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
        }
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

/// Whether the per-frame feature cache runs, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureCache {
    /// The model's extractor/fusion pair runs: one extractor pass per frame.
    Active,
    /// Switched off by the caller.
    Disabled,
    /// The model has no extractor/fusion pair next to it (an older or third-party model).
    Absent,
    /// A pair is there but cannot be used (the reason); the whole graph runs instead.
    Rejected(String),
}

/// One frame's output of the extractor graph: 3 pyramid levels, each planar `[C, h, w]`.
#[derive(Debug)]
pub struct Features {
    levels: [Vec<f32>; 3],
    dims: [(usize, usize); 3],
}

/// The extractor and fusion graphs of a model and the buffers that stack a window's features.
struct SplitGraphs {
    extractor: Session,
    fusion: Session,
    channels: usize,
    stacked: [Vec<f32>; 3],
}

/// `X.extractor.onnx` and `X.fusion.onnx` for the model file `X.onnx`.
#[must_use]
pub fn split_paths(model: &Path) -> Option<(PathBuf, PathBuf)> {
    let stem = model.file_stem()?.to_str()?;
    Some((
        model.with_file_name(format!("{stem}.extractor.onnx")),
        model.with_file_name(format!("{stem}.fusion.onnx")),
    ))
}

/// What the model file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub scale: u32,
    pub window: usize,
    pub precision: String,
    pub version: String,
}

/// Providers that `auto` tried and could not use, with the reason.
pub type SkippedProviders = Vec<(&'static str, String)>;

pub struct Engine {
    session: Session,
    info: ModelInfo,
    active_provider: &'static str,
    pub skipped_providers: SkippedProviders,
    input_name: String,
    split: Option<SplitGraphs>,
    feature_cache: FeatureCache,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .field("active_provider", &self.active_provider)
            .field("feature_cache", &self.feature_cache)
            .finish()
    }
}

fn ort_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Engine {
    pub fn new(cfg: &EngineConfig) -> Result<Self, EngineError> {
        if ![2, 3, 4].contains(&cfg.scale) {
            return Err(EngineError::Config(format!(
                "scale must be 2, 3 or 4, not {}",
                cfg.scale
            )));
        }
        if !cfg.model_path.is_file() {
            return Err(EngineError::ModelMissing(cfg.model_path.clone()));
        }
        if cfg.precision == Precision::Fp16 && !matches!(cfg.provider, Provider::TensorRt) {
            return Err(EngineError::Config(
                "precision=fp16 runs the FP32 model with TensorRT's FP16 kernels and needs \
                 execution-provider=tensorrt; use precision=fp32 or int8 elsewhere"
                    .into(),
            ));
        }
        let (mut builder, active_provider, skipped) = session_builder(cfg, cfg.provider)?;
        let session =
            builder
                .commit_from_file(&cfg.model_path)
                .map_err(|e| EngineError::ModelInvalid {
                    path: cfg.model_path.clone(),
                    reason: ort_err(e),
                })?;
        let info = read_info(&session, &cfg.model_path)?;
        if info.scale != cfg.scale {
            return Err(EngineError::ScaleMismatch {
                path: cfg.model_path.clone(),
                model: info.scale,
                requested: cfg.scale,
            });
        }
        let wanted = match cfg.precision {
            Precision::Fp32 | Precision::Fp16 => Some("fp32"),
            Precision::Int8 => Some("int8"),
            Precision::Auto => None,
        };
        if let Some(w) = wanted
            && info.precision != w
        {
            return Err(EngineError::PrecisionMismatch {
                path: cfg.model_path.clone(),
                model: info.precision.clone(),
                requested: cfg.precision.as_str().into(),
            });
        }
        let input_name = session.inputs()[0].name().to_string();
        let (split, feature_cache) = if !cfg.feature_cache {
            (None, FeatureCache::Disabled)
        } else {
            match split_paths(&cfg.model_path) {
                Some((ext, fus)) if ext.is_file() && fus.is_file() => {
                    match load_split(cfg, active_provider, &session, &ext, &fus) {
                        Ok(split) => (Some(split), FeatureCache::Active),
                        Err(reason) => (None, FeatureCache::Rejected(reason)),
                    }
                }
                _ => (None, FeatureCache::Absent),
            }
        };
        Ok(Self {
            session,
            info,
            active_provider,
            skipped_providers: skipped,
            input_name,
            split,
            feature_cache,
        })
    }

    /// Whether [`Engine::extract`] / [`Engine::run_cached`] are available, or why not.
    pub fn feature_cache(&self) -> &FeatureCache {
        &self.feature_cache
    }

    /// Runs the extractor graph on one frame (`[3, H, W]` planar RGB).
    pub fn extract(
        &mut self,
        rgb: &[f32],
        width: usize,
        height: usize,
    ) -> Result<Features, EngineError> {
        let fail = |reason: String| {
            inference_failure(1, width, height)(format!("feature extractor: {reason}"))
        };
        let split = self
            .split
            .as_mut()
            .ok_or_else(|| fail("the model has no extractor/fusion pair loaded".into()))?;
        if rgb.len() != 3 * width * height {
            return Err(fail(format!(
                "expected {} input values, got {}",
                3 * width * height,
                rgb.len()
            )));
        }
        let input = TensorRef::from_array_view(([1usize, 3, height, width], rgb))
            .map_err(|e| fail(ort_err(e)))?;
        let outputs = split
            .extractor
            .run(ort::inputs!["frame" => input])
            .map_err(|e| fail(ort_err(e)))?;
        let mut levels: [Vec<f32>; 3] = Default::default();
        let mut dims = [(0, 0); 3];
        for (lvl, (level, dim)) in levels.iter_mut().zip(dims.iter_mut()).enumerate() {
            let (shape, data) = outputs[lvl]
                .try_extract_tensor::<f32>()
                .map_err(|e| fail(ort_err(e)))?;
            if shape.len() != 4 || shape[0] != 1 || shape[1] != split.channels as i64 {
                return Err(fail(format!(
                    "level {lvl} has shape {shape:?}, expected [1, {}, h, w]",
                    split.channels
                )));
            }
            *dim = (shape[2] as usize, shape[3] as usize);
            *level = data.to_vec();
        }
        Ok(Features { levels, dims })
    }

    /// Runs one window from cached features: `frames` as for [`Engine::run`], `feats[i]` the
    /// features of `frames`' i-th frame.
    pub fn run_cached(
        &mut self,
        frames: &[f32],
        feats: &[&Features],
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let t = self.info.window;
        let s = self.info.scale as usize;
        let fail = inference_failure(t, width, height);
        let split = self
            .split
            .as_mut()
            .ok_or_else(|| fail("the model has no extractor/fusion pair loaded".into()))?;
        if frames.len() != t * 3 * width * height || feats.len() != t {
            return Err(fail(format!(
                "expected {} input values and {t} feature sets, got {} and {}",
                t * 3 * width * height,
                frames.len(),
                feats.len()
            )));
        }
        for lvl in 0..3 {
            let dims = feats[0].dims[lvl];
            if feats.iter().any(|f| f.dims[lvl] != dims) {
                return Err(fail(
                    "the window's frames have features of different sizes".into(),
                ));
            }
            let stacked = &mut split.stacked[lvl];
            stacked.clear();
            for f in feats {
                stacked.extend_from_slice(&f.levels[lvl]);
            }
        }
        let c = split.channels;
        let [s0, s1, s2] = &split.stacked;
        let [d0, d1, d2] = feats[0].dims;
        let v0 = TensorRef::from_array_view(([1usize, t, c, d0.0, d0.1], s0.as_slice()))
            .map_err(|e| fail(ort_err(e)))?;
        let v1 = TensorRef::from_array_view(([1usize, t, c, d1.0, d1.1], s1.as_slice()))
            .map_err(|e| fail(ort_err(e)))?;
        let v2 = TensorRef::from_array_view(([1usize, t, c, d2.0, d2.1], s2.as_slice()))
            .map_err(|e| fail(ort_err(e)))?;
        let input = TensorRef::from_array_view(([1usize, t, 3, height, width], frames))
            .map_err(|e| fail(ort_err(e)))?;
        let outputs = split
            .fusion
            .run(ort::inputs![
                "frames" => input,
                "feat0" => v0,
                "feat1" => v1,
                "feat2" => v2,
            ])
            .map_err(|e| fail(ort_err(e)))?;
        copy_upscaled(&outputs[0], [height * s, width * s], out).map_err(fail)
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The provider that registered (what actually runs the model).
    pub fn active_provider(&self) -> &'static str {
        self.active_provider
    }

    /// Runs one window: `frames` is `[T, 3, H, W]` planar RGB (len T*3*H*W); writes
    /// `[3, s*H, s*W]` into `out`.
    pub fn run(
        &mut self,
        frames: &[f32],
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let t = self.info.window;
        let s = self.info.scale as usize;
        let fail = inference_failure(t, width, height);
        if frames.len() != t * 3 * width * height {
            return Err(fail(format!(
                "expected {} input values, got {}",
                t * 3 * width * height,
                frames.len()
            )));
        }
        let input = TensorRef::from_array_view(([1usize, t, 3, height, width], frames))
            .map_err(|e| fail(ort_err(e)))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| fail(ort_err(e)))?;
        copy_upscaled(&outputs[0], [height * s, width * s], out).map_err(fail)
    }
}

fn inference_failure(frames: usize, width: usize, height: usize) -> impl Fn(String) -> EngineError {
    move |reason| EngineError::Inference {
        frames,
        width,
        height,
        reason,
    }
}

/// Checks that `value` is `[1, 3, sh, sw]` float32 and copies it into `out`.
fn copy_upscaled(
    value: &ort::value::DynValue,
    [sh, sw]: [usize; 2],
    out: &mut [f32],
) -> Result<(), String> {
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_err)?;
    let expect = [1i64, 3, sh as i64, sw as i64];
    if shape.as_ref() != expect {
        return Err(format!(
            "model returned shape {shape:?}, expected {expect:?}"
        ));
    }
    if out.len() < data.len() {
        return Err(format!(
            "output buffer holds {} values, the model gave {}",
            out.len(),
            data.len()
        ));
    }
    out[..data.len()].copy_from_slice(data);
    Ok(())
}

/// A session builder with the optimisation level, threads and execution provider of `cfg`.
fn session_builder(
    cfg: &EngineConfig,
    provider: Provider,
) -> Result<(SessionBuilder, &'static str, SkippedProviders), EngineError> {
    let (env, _) = runtime::environment()?;
    let mut builder = Session::builder(env).map_err(|e| EngineError::Config(ort_err(e)))?;
    builder = builder
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| EngineError::Config(ort_err(e)))?;
    if cfg.threads > 0 {
        builder = builder
            .with_intra_threads(cfg.threads)
            .map_err(|e| EngineError::Config(ort_err(e)))?;
    }
    let cfg = EngineConfig {
        provider,
        ..cfg.clone()
    };
    let (active, skipped) = register_providers(&mut builder, &cfg)?;
    Ok((builder, active, skipped))
}

/// Loads the extractor/fusion pair on the provider the whole graph got, and checks that it was
/// cut from that same model (a stale pair would silently give another network's output).
fn load_split(
    cfg: &EngineConfig,
    active_provider: &'static str,
    whole: &Session,
    ext_path: &Path,
    fus_path: &Path,
) -> Result<SplitGraphs, String> {
    let provider = match active_provider {
        "tensorrt" => Provider::TensorRt,
        "cuda" => Provider::Cuda,
        _ => Provider::Cpu,
    };
    let load = |path: &Path, spin: bool| -> Result<Session, String> {
        let (b, _, _) = session_builder(cfg, provider).map_err(|e| e.to_string())?;
        let mut b = b.with_intra_op_spinning(spin).map_err(|e| e.to_string())?;
        b.commit_from_file(path)
            .map_err(|e| format!("{} could not be loaded: {e}", path.display()))
    };
    // the two graphs run back to back on separate thread pools: a pool that spins after its run
    // takes the cores the other graph needs next (measured: fusion 235 -> 270 ms after an
    // extractor run, and no gain from the cache at all), so both pools sleep when done
    let (extractor, fusion) = (load(ext_path, false)?, load(fus_path, false)?);
    let meta = |s: &Session, key: &str| s.metadata().ok().and_then(|m| m.custom(key));
    for (s, path, part) in [
        (&extractor, ext_path, "extractor"),
        (&fusion, fus_path, "fusion"),
    ] {
        if meta(s, "part").as_deref() != Some(part) {
            return Err(format!("{} is not an MST-GAN {part} graph", path.display()));
        }
    }
    for key in [
        "scale",
        "window",
        "training_steps",
        "version",
        "variant",
        "interpolation",
    ] {
        if meta(&fusion, key) != meta(whole, key) || meta(&extractor, key) != meta(whole, key) {
            return Err(format!(
                "{} / {} were cut from another model (`{key}` differs from {}): re-export them \
                 with `python -m mstgan.release --split` or delete them",
                ext_path.display(),
                fus_path.display(),
                cfg.model_path.display()
            ));
        }
    }
    let channels = meta(&fusion, "feature_channels")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{} has no `feature_channels` metadata", fus_path.display()))?;
    let names: Vec<&str> = fusion.inputs().iter().map(|i| i.name()).collect();
    if names != ["frames", "feat0", "feat1", "feat2"] || extractor.outputs().len() != 3 {
        return Err(format!(
            "{} / {} do not have the expected inputs and outputs",
            ext_path.display(),
            fus_path.display()
        ));
    }
    Ok(SplitGraphs {
        extractor,
        fusion,
        channels,
        stacked: Default::default(),
    })
}

fn read_info(session: &Session, path: &Path) -> Result<ModelInfo, EngineError> {
    let contract = |reason: String| EngineError::Contract {
        path: path.to_path_buf(),
        reason,
    };
    let meta = session.metadata().map_err(|e| contract(ort_err(e)))?;
    let get = |key: &str| {
        meta.custom(key)
            .ok_or_else(|| contract(format!("metadata_props has no `{key}`")))
    };
    let scale: u32 = get("scale")?
        .parse()
        .map_err(|_| contract("metadata `scale` is not an integer".into()))?;
    let window: usize = get("window")?
        .parse()
        .map_err(|_| contract("metadata `window` is not an integer".into()))?;
    if window.is_multiple_of(2) {
        return Err(contract(format!("window {window} must be odd")));
    }
    let precision = get("precision")?;
    let version = get("version")?;
    if session.inputs().len() != 1 || session.outputs().is_empty() {
        return Err(contract("expected exactly one input and one output".into()));
    }
    Ok(ModelInfo {
        scale,
        window,
        precision,
        version,
    })
}

fn register_providers(
    builder: &mut SessionBuilder,
    cfg: &EngineConfig,
) -> Result<(&'static str, SkippedProviders), EngineError> {
    let mut skipped = Vec::new();
    let try_gpu = |name: &'static str| -> Result<(), String> {
        let n = gpu::cuda_devices()?;
        if cfg.device_id < 0 || cfg.device_id as usize >= n {
            return Err(format!(
                "device-id {} does not exist ({n} GPU(s) found)",
                cfg.device_id
            ));
        }
        let _ = name;
        Ok(())
    };
    let trt = || {
        let mut t = ep::TensorRT::default()
            .with_device_id(cfg.device_id)
            .with_fp16(matches!(cfg.precision, Precision::Fp16 | Precision::Auto))
            .with_int8(cfg.precision == Precision::Int8);
        if let Some(dir) = &cfg.engine_cache_dir {
            let d = dir.display().to_string();
            t = t
                .with_engine_cache(true)
                .with_engine_cache_path(&d)
                .with_timing_cache(true)
                .with_timing_cache_path(&d);
        }
        t
    };
    let cuda = || ep::CUDA::default().with_device_id(cfg.device_id);
    let attempt =
        |name: &'static str, builder: &mut SessionBuilder, tensorrt: bool| -> Result<(), String> {
            try_gpu(name)?;
            if let Some(dir) = &cfg.engine_cache_dir
                && tensorrt
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("engine-cache-dir {}: {e}", dir.display()))?;
            }
            let res = if tensorrt {
                trt().register(builder)
            } else {
                cuda().register(builder)
            };
            res.map_err(|e| {
                format!(
                    "{e} (this onnxruntime has no {name} support: install onnxruntime-gpu{})",
                    if tensorrt { " and TensorRT 10" } else { "" }
                )
            })
        };
    match cfg.provider {
        Provider::Cpu => Ok(("cpu", skipped)),
        Provider::Cuda => match attempt("CUDA", builder, false) {
            Ok(()) => Ok(("cuda", skipped)),
            Err(reason) => Err(EngineError::ProviderUnavailable {
                provider: "cuda",
                reason,
            }),
        },
        Provider::TensorRt => match attempt("TensorRT", builder, true) {
            Ok(()) => {
                // CUDA takes the nodes TensorRT leaves
                let _ = cuda().register(builder);
                Ok(("tensorrt", skipped))
            }
            Err(reason) => Err(EngineError::ProviderUnavailable {
                provider: "tensorrt",
                reason,
            }),
        },
        Provider::Auto => {
            match attempt("TensorRT", builder, true) {
                Ok(()) => {
                    let _ = cuda().register(builder);
                    return Ok(("tensorrt", skipped));
                }
                Err(r) => skipped.push(("tensorrt", r)),
            }
            match attempt("CUDA", builder, false) {
                Ok(()) => return Ok(("cuda", skipped)),
                Err(r) => skipped.push(("cuda", r)),
            }
            Ok(("cpu", skipped))
        }
    }
}
