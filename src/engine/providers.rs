// SPDX-License-Identifier: MIT OR Apache-2.0

//! Session builders with the execution provider asked for: TensorRT, CUDA, OpenVINO, CPU, or
//! the best of the GPU ones and CPU (`auto`), with the reason each skipped provider could not be
//! used.

use ort::ep::{self, ExecutionProvider as _};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use super::config::{ActiveProvider, EngineConfig, EngineError, Precision, Provider};
use super::{gpu, runtime};

/// Providers that `auto` tried and could not use, with the reason.
pub type SkippedProviders = Vec<(ActiveProvider, String)>;

fn config_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Config(e.to_string())
}

/// Whether `which` can run here: onnxruntime was built with it and, for the GPU providers, a
/// GPU answers. What `auto` would pick is the first of TensorRT, CUDA, OpenVINO, CPU for which
/// this holds.
pub fn usable(which: ActiveProvider, device_id: i32) -> bool {
    if which == ActiveProvider::Cpu {
        return true;
    }
    if which == ActiveProvider::OpenVino {
        return openvino_available().is_ok();
    }
    if runtime::environment().is_err()
        || gpu::cuda_devices().map_or(true, |n| device_id < 0 || device_id as usize >= n)
    {
        return false;
    }
    let built = match which {
        ActiveProvider::TensorRt => ep::TensorRT::is_available(),
        _ => ep::CUDA::is_available(),
    };
    built.unwrap_or(false)
}

/// Whether the loaded onnxruntime has the OpenVINO provider, or what to do about it.
pub fn openvino_available() -> Result<(), EngineError> {
    let (_, path) = runtime::environment()?;
    if ep::OpenVINO::is_available().unwrap_or(false) {
        return Ok(());
    }
    Err(EngineError::ProviderUnavailable {
        provider: ActiveProvider::OpenVino.as_str(),
        reason: format!(
            "{} was built without it: install onnxruntime-openvino in a folder of its own \
             (scripts/setup.sh puts it in .ort-openvino) and set ORT_DYLIB_PATH to the \
             libonnxruntime.so.<version> in its onnxruntime/capi",
            path.display()
        ),
    })
}

/// A session builder with the optimisation level, threads and `provider` registered.
pub(super) fn session_builder(
    cfg: &EngineConfig,
    provider: Provider,
) -> Result<(SessionBuilder, ActiveProvider, SkippedProviders), EngineError> {
    let (env, _) = runtime::environment()?;
    let mut builder = Session::builder(env).map_err(config_err)?;
    // without the memory pattern a tile's peak is 40-45 % lower at the same speed
    // (mstgan.tools.ort_memory), and the memory plan is calibrated without it
    builder = builder
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(config_err)?
        .with_memory_pattern(false)
        .map_err(config_err)?;
    if cfg.threads > 0 {
        builder = builder
            .with_intra_threads(cfg.threads)
            .map_err(config_err)?;
    }
    let (active, skipped) = register(&mut builder, cfg, provider)?;
    Ok((builder, active, skipped))
}

fn register(
    builder: &mut SessionBuilder,
    cfg: &EngineConfig,
    provider: Provider,
) -> Result<(ActiveProvider, SkippedProviders), EngineError> {
    let mut skipped = Vec::new();
    let gpu_present = || -> Result<(), String> {
        let n = gpu::cuda_devices()?;
        if cfg.device_id < 0 || cfg.device_id as usize >= n {
            return Err(format!(
                "device-id {} does not exist ({n} GPU(s) found)",
                cfg.device_id
            ));
        }
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
    let openvino = |builder: &mut SessionBuilder| -> Result<(), EngineError> {
        openvino_available()?;
        let mut ov = ep::OpenVINO::default().with_device_type("CPU");
        if cfg.threads > 0 {
            ov = ov.with_num_threads(cfg.threads);
        }
        ov.register(builder)
            .map_err(|e| EngineError::ProviderUnavailable {
                provider: ActiveProvider::OpenVino.as_str(),
                reason: e.to_string(),
            })
    };
    let attempt = |which: ActiveProvider, builder: &mut SessionBuilder| -> Result<(), String> {
        gpu_present()?;
        let tensorrt = which == ActiveProvider::TensorRt;
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
                "{e} (this onnxruntime has no {which} support: install onnxruntime-gpu{})",
                if tensorrt { " and TensorRT 10" } else { "" }
            )
        })
    };
    let unavailable = |which: ActiveProvider, reason| EngineError::ProviderUnavailable {
        provider: which.as_str(),
        reason,
    };
    match provider {
        Provider::Cpu => Ok((ActiveProvider::Cpu, skipped)),
        Provider::OpenVino => openvino(builder).map(|()| (ActiveProvider::OpenVino, skipped)),
        Provider::Cuda => attempt(ActiveProvider::Cuda, builder)
            .map(|()| (ActiveProvider::Cuda, skipped))
            .map_err(|r| unavailable(ActiveProvider::Cuda, r)),
        Provider::TensorRt => {
            attempt(ActiveProvider::TensorRt, builder)
                .map_err(|r| unavailable(ActiveProvider::TensorRt, r))?;
            // CUDA takes the nodes TensorRT leaves
            let _ = cuda().register(builder);
            Ok((ActiveProvider::TensorRt, skipped))
        }
        Provider::Auto => {
            match attempt(ActiveProvider::TensorRt, builder) {
                Ok(()) => {
                    let _ = cuda().register(builder);
                    return Ok((ActiveProvider::TensorRt, skipped));
                }
                Err(r) => skipped.push((ActiveProvider::TensorRt, r)),
            }
            match attempt(ActiveProvider::Cuda, builder) {
                Ok(()) => return Ok((ActiveProvider::Cuda, skipped)),
                Err(r) => skipped.push((ActiveProvider::Cuda, r)),
            }
            Ok((ActiveProvider::Cpu, skipped))
        }
    }
}
