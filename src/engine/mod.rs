// SPDX-License-Identifier: MIT OR Apache-2.0

//! The inference engine: onnxruntime sessions running the MST-GAN generator. No GStreamer
//! types; the element owns one [`Engine`] per running instance (through the
//! [`Upscaler`](crate::upscale::upscaler::Upscaler)).
//!
//! - [`config`]: what is asked for ([`EngineConfig`]), what runs, and the errors;
//! - [`providers`]: execution provider registration (TensorRT, CUDA, OpenVINO, CPU, `auto`);
//! - [`shaped`]: sessions built per input size, for OpenVINO;
//! - [`contract`]: the model contract, checked at load time;
//! - [`split`]: the extractor/fusion pair behind the per-frame feature cache.
//!
//! Model contract: input float32 `frames [N, T, 3, H, W]` (RGB in [0, 1], T consecutive
//! frames, the one to upscale in the middle), output float32 `[N, 3, s*H, s*W]`;
//! `metadata_props` carry `scale`, `window`, `precision` and `version`.

mod batching;
mod config;
mod contract;
mod gpu;
mod providers;
mod runtime;
mod shaped;
mod split;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ort::session::RunOptions;
use ort::value::TensorRef;

pub use batching::{BatchCounters, CrossBatch};
pub use config::{ActiveProvider, EngineConfig, EngineError, ModelPrecision, Precision, Provider};
pub use contract::{Arch, ModelInfo};
pub use gpu::cuda_devices;
pub use providers::{SkippedProviders, openvino_available, usable};
pub use runtime::find_library;
pub use split::{FeatureCache, Features, split_paths};

use batching::{Job, Room, Shape};
use providers::session_builder;
use shaped::Graph;
use split::SplitGraphs;

/// Whether the CUDA driver reports a GPU: a CPU fallback is then worth a warning; without one
/// it is the normal case.
pub fn gpu_present() -> bool {
    cuda_devices().is_ok()
}

/// Stops an engine's inference from another thread (a flush, a pipeline stopping): the run in
/// progress ends as soon as onnxruntime checks its terminate flag, and every later one fails at
/// once with [`EngineError::Stopped`] until [`StopHandle::resume`].
#[derive(Clone)]
pub struct StopHandle(Arc<StopInner>);

struct StopInner {
    stopped: AtomicBool,
    run_options: RunOptions,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StopHandle")
            .field(&self.is_stopped())
            .finish()
    }
}

impl StopHandle {
    fn new() -> Result<Self, EngineError> {
        let run_options = RunOptions::new()
            .map_err(|e| EngineError::Config(format!("onnxruntime run options: {e}")))?;
        Ok(Self(Arc::new(StopInner {
            stopped: AtomicBool::new(false),
            run_options,
        })))
    }

    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        // only fails on an invalid handle, which an owned RunOptions is not
        let _ = self.0.run_options.terminate();
    }

    pub fn resume(&self) {
        self.0.stopped.store(false, Ordering::SeqCst);
        let _ = self.0.run_options.unterminate();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    fn options(&self) -> &RunOptions {
        &self.0.run_options
    }

    /// `Stopped` when a stop explains a failure, else the failure.
    fn explain(&self, fail: impl FnOnce() -> EngineError) -> EngineError {
        if self.is_stopped() {
            EngineError::Stopped
        } else {
            fail()
        }
    }

    /// `Err(Stopped)` once stopped: checked before each run.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.is_stopped() {
            Err(EngineError::Stopped)
        } else {
            Ok(())
        }
    }
}

/// The sessions: what engines built from the same configuration share.
struct Sessions {
    whole: Graph,
    split: Option<SplitGraphs>,
}

/// What an engine knows about its sessions, copied into every engine that shares them.
#[derive(Clone)]
struct Described {
    info: ModelInfo,
    active_provider: ActiveProvider,
    skipped_providers: SkippedProviders,
    feature_cache: FeatureCache,
    feature_channels: Option<usize>,
}

/// Sessions in use by engines with `share`, by [`EngineConfig::share_key`]; the last engine
/// that drops them frees them.
static SHARED: LazyLock<Mutex<SharedSessions>> = LazyLock::new(|| Mutex::new(HashMap::new()));

type SharedSessions = HashMap<String, (Weak<Mutex<Sessions>>, Described, Weak<Room>)>;

/// Counts the engines sharing one set of sessions, without holding them (for statistics):
/// by the batching room of shared sessions, which only engines hold (its thread holds the
/// sessions during a run), else by the sessions.
#[derive(Clone)]
pub struct Users(UsersOf);

#[derive(Clone)]
enum UsersOf {
    Sessions(Weak<Mutex<Sessions>>),
    Room(Weak<Room>),
}

impl Users {
    pub fn count(&self) -> usize {
        match &self.0 {
            UsersOf::Sessions(w) => w.strong_count(),
            UsersOf::Room(w) => w.strong_count(),
        }
    }
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Users").field(&self.count()).finish()
    }
}

pub struct Engine {
    sessions: Arc<Mutex<Sessions>>,
    stop: StopHandle,
    described: Described,
    /// The batching thread of shared sessions, and how this engine's windows use it.
    room: Option<Arc<Room>>,
    cross: Option<CrossBatch>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.described.info)
            .field("active_provider", &self.described.active_provider)
            .field("feature_cache", &self.described.feature_cache)
            .field("users", &self.users())
            .finish()
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

impl Engine {
    /// Loads the model's sessions, or, with `cfg.share`, takes those another engine of this
    /// process already loaded from the same configuration: one copy of the weights, one thread
    /// pool and one arena for all of them, runs taking turns. Each engine keeps its own stop
    /// handle, and its window and caches live outside the engine.
    pub fn new(cfg: &EngineConfig) -> Result<Self, EngineError> {
        if !cfg.share {
            let (sessions, described) = Self::load(cfg)?;
            return Ok(Self {
                sessions: Arc::new(Mutex::new(sessions)),
                stop: StopHandle::new()?,
                described,
                room: None,
                cross: None,
            });
        }
        let key = cfg.share_key();
        // held through a load, so that two instances starting together load once
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        shared.retain(|_, (w, _, _)| w.strong_count() > 0);
        if let Some((sessions, described, room)) = shared
            .get(&key)
            .and_then(|(w, d, r)| Some((w.upgrade()?, d.clone(), r.upgrade()?)))
        {
            return Ok(Self {
                sessions,
                stop: StopHandle::new()?,
                described,
                room: Some(room),
                cross: None,
            });
        }
        let (sessions, described) = Self::load(cfg)?;
        let sessions = Arc::new(Mutex::new(sessions));
        let room = Arc::new(Room::new(
            Arc::downgrade(&sessions),
            Shape {
                window: described.info.window,
                scale: described.info.scale as usize,
                channels: described.feature_channels.unwrap_or(0),
            },
        ));
        shared.insert(
            key,
            (
                Arc::downgrade(&sessions),
                described.clone(),
                Arc::downgrade(&room),
            ),
        );
        Ok(Self {
            sessions,
            stop: StopHandle::new()?,
            described,
            room: Some(room),
            cross: None,
        })
    }

    /// Whether this engine's windows go through the batching thread shared with other streams.
    pub fn cross_batch(&self) -> Option<CrossBatch> {
        self.cross.filter(|_| self.room.is_some())
    }

    /// Sends this engine's windows through the batching thread (`Some`, with at least two
    /// windows an inference; only engines that share sessions have one) or runs them itself,
    /// as it does until this is called. Returns the previous setting.
    pub fn set_cross_batch(&mut self, cross: Option<CrossBatch>) -> Option<CrossBatch> {
        std::mem::replace(&mut self.cross, cross.filter(|c| c.max > 1))
    }

    /// The shared batching thread's counters, when this engine shares sessions.
    pub fn batch_counters(&self) -> Option<Arc<BatchCounters>> {
        self.room.as_ref().map(|r| r.counters.clone())
    }

    /// Hands `batch` windows (with their stacked features for the fusion graph) to the batching
    /// thread and waits for their result, or until this engine is stopped (the result is then
    /// dropped, the others' run goes on).
    fn run_cross(
        &self,
        frames: &[f32],
        features: Option<batching::Stacked>,
        (n, width, height): (usize, usize, usize),
        out: &mut [f32],
        fail: &dyn Fn(String) -> EngineError,
    ) -> Result<(), EngineError> {
        let (Some(room), Some(batch)) = (&self.room, self.cross) else {
            return Err(fail("no batching thread: the engine is not shared".into()));
        };
        let (reply, result) = std::sync::mpsc::channel();
        let job = Job {
            frames: frames.to_vec(),
            features,
            n,
            width,
            height,
            batch,
            submitted: std::time::Instant::now(),
            reply,
        };
        room.submit(job).map_err(fail)?;
        loop {
            self.stop.check()?;
            match result.recv_timeout(Duration::from_millis(2)) {
                Ok(Ok(v)) if out.len() >= v.len() => {
                    out[..v.len()].copy_from_slice(&v);
                    return Ok(());
                }
                Ok(Ok(v)) => {
                    return Err(fail(format!(
                        "output buffer holds {} values, the model gave {}",
                        out.len(),
                        v.len()
                    )));
                }
                Ok(Err(e)) => return Err(self.stop.explain(|| fail(e))),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(fail("the batching thread ended".into()));
                }
            }
        }
    }

    /// Engines using these sessions, this one included.
    pub fn users(&self) -> usize {
        self.users_handle().count()
    }

    /// [`Engine::users`] for another thread, without keeping the sessions alive.
    pub fn users_handle(&self) -> Users {
        Users(match &self.room {
            Some(room) => UsersOf::Room(Arc::downgrade(room)),
            None => UsersOf::Sessions(Arc::downgrade(&self.sessions)),
        })
    }

    /// The sessions, once no other engine is running them; gives up when this engine is
    /// stopped, so a flush never waits for another stream's inference.
    fn sessions(&self) -> Result<MutexGuard<'_, Sessions>, EngineError> {
        loop {
            match self.sessions.try_lock() {
                Ok(g) => return Ok(g),
                Err(std::sync::TryLockError::Poisoned(e)) => return Ok(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {
                    self.stop.check()?;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }

    fn load(cfg: &EngineConfig) -> Result<(Sessions, Described), EngineError> {
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
        if cfg.provider == Provider::OpenVino {
            openvino_available()?;
        }
        // a per-shape provider compiles when the first frame's size is known
        let load_on = cfg.provider.loads_on();
        let (mut builder, mut active_provider, mut skipped_providers) =
            session_builder(cfg, load_on)?;
        if cfg.provider == Provider::OpenVino {
            active_provider = ActiveProvider::OpenVino;
        } else if cfg.provider == Provider::Auto && active_provider == ActiveProvider::Cpu {
            // after the GPU providers: OpenVINO when this onnxruntime has it
            match openvino_available() {
                Ok(()) => active_provider = ActiveProvider::OpenVino,
                Err(e) => skipped_providers.push((ActiveProvider::OpenVino, e.to_string())),
            }
        }
        let session =
            builder
                .commit_from_file(&cfg.model_path)
                .map_err(|e| EngineError::ModelInvalid {
                    path: cfg.model_path.clone(),
                    reason: e.to_string(),
                })?;
        let info = contract::whole_model(&session, &cfg.model_path)?;
        if info.scale != cfg.scale {
            return Err(EngineError::ScaleMismatch {
                path: cfg.model_path.clone(),
                model: info.scale,
                requested: cfg.scale,
            });
        }
        if let Some(wanted) = cfg.precision.model_precision()
            && info.precision != wanted
        {
            return Err(EngineError::PrecisionMismatch {
                path: cfg.model_path.clone(),
                model: info.precision,
                requested: cfg.precision.as_str(),
            });
        }
        let (split, feature_cache) = split::load(cfg, active_provider, &session);
        let whole = Graph::new(
            session,
            &cfg.model_path,
            cfg,
            active_provider.as_request(),
            true,
        );
        let feature_channels = split.as_ref().map(SplitGraphs::channels);
        Ok((
            Sessions { whole, split },
            Described {
                info,
                active_provider,
                skipped_providers,
                feature_cache,
                feature_channels,
            },
        ))
    }

    pub fn info(&self) -> &ModelInfo {
        &self.described.info
    }

    /// A handle that stops this engine's inference from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The provider that registered (what actually runs the model).
    pub fn active_provider(&self) -> ActiveProvider {
        self.described.active_provider
    }

    /// Providers `auto` tried before the active one, with the reason each was skipped.
    pub fn skipped_providers(&self) -> &SkippedProviders {
        &self.described.skipped_providers
    }

    /// Bytes one frame's cached features take per low-resolution pixel (3 pyramid levels of
    /// `feature_channels` floats), when the feature cache is loaded.
    pub fn feature_bytes_per_pixel(&self) -> Option<u64> {
        self.described
            .feature_channels
            .map(|c| (c as u64 * 4 * 21).div_ceil(16))
    }

    /// Whether [`Engine::extract`] / [`Engine::run_cached`] are available, or why not.
    pub fn feature_cache(&self) -> &FeatureCache {
        &self.described.feature_cache
    }

    /// What every run checks first: the input's size (`frames` values, `feats` feature sets for
    /// a cached run), then the stop flag. Returns T, the scale and the run's failure wording.
    fn begin(
        &self,
        frames: usize,
        feats: Option<usize>,
        batch: usize,
        width: usize,
        height: usize,
    ) -> Result<(usize, usize, impl Fn(String) -> EngineError + use<>), EngineError> {
        let t = self.described.info.window;
        let s = self.described.info.scale as usize;
        let fail = inference_failure(batch * t, width, height);
        check_batch(frames, feats, batch, t, width * height).map_err(&fail)?;
        self.stop.check()?;
        Ok((t, s, fail))
    }

    /// Runs `batch` windows: `frames` is `[N, T, 3, H, W]` planar RGB (len N*T*3*H*W); writes
    /// `[N, 3, s*H, s*W]` into `out`.
    pub fn run(
        &mut self,
        frames: &[f32],
        batch: usize,
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let (t, s, fail) = self.begin(frames.len(), None, batch, width, height)?;
        if self.cross_batch().is_some() {
            return self.run_cross(frames, None, (batch, width, height), out, &fail);
        }
        let input = TensorRef::from_array_view(([batch, t, 3, height, width], frames))
            .map_err(|e| fail(e.to_string()))?;
        let stop = &self.stop;
        let mut sessions = self.sessions()?;
        let outputs = sessions
            .whole
            .session(&[("frames", &[batch, t, 3, height, width])])
            .map_err(&fail)?
            .run_with_options(ort::inputs!["frames" => input], stop.options())
            .map_err(|e| stop.explain(|| fail(e.to_string())))?;
        copy_upscaled(&outputs[0], [batch, height * s, width * s], out).map_err(fail)
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
        let mut sessions = self.sessions()?;
        let split = sessions
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
        self.stop.check()?;
        let stop = &self.stop;
        split
            .extract(rgb, width, height, stop.options())
            .map_err(|e| stop.explain(|| fail(e)))
    }

    /// Runs `batch` windows from cached features: `frames` as for [`Engine::run`], `feats`
    /// the features of `frames`' frames in the same order (N*T of them).
    pub fn run_cached(
        &mut self,
        frames: &[f32],
        feats: &[&Features],
        batch: usize,
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let (_, s, fail) = self.begin(frames.len(), Some(feats.len()), batch, width, height)?;
        if self.cross_batch().is_some() {
            let mut stacked: [Vec<f32>; 3] = Default::default();
            let dims = split::stack(feats, &mut stacked).map_err(&fail)?;
            let features = Some((stacked, dims));
            return self.run_cross(frames, features, (batch, width, height), out, &fail);
        }
        let mut sessions = self.sessions()?;
        let split = sessions
            .split
            .as_mut()
            .ok_or_else(|| fail("the model has no extractor/fusion pair loaded".into()))?;
        let stop = &self.stop;
        split
            .fuse(frames, feats, (batch, width, height), stop.options(), |v| {
                copy_upscaled(v, [batch, height * s, width * s], out)
            })
            .map_err(|e| stop.explain(|| fail(e)))
    }
}

/// Checks the input of `batch` windows of `t` frames of `px` pixels: `frames` values and, for a
/// cached run, `feats` feature sets.
fn check_batch(
    frames: usize,
    feats: Option<usize>,
    batch: usize,
    t: usize,
    px: usize,
) -> Result<(), String> {
    let want = batch * t * 3 * px;
    if batch > 0 && frames == want && feats.is_none_or(|f| f == batch * t) {
        return Ok(());
    }
    Err(match feats {
        None => format!("expected {want} input values for {batch} window(s), got {frames}"),
        Some(f) => format!(
            "expected {want} input values and {} feature sets for {batch} window(s), got {frames} and {f}",
            batch * t
        ),
    })
}

/// Checks that `value` is `[n, 3, sh, sw]` float32 and copies it into `out`.
fn copy_upscaled(
    value: &ort::value::DynValue,
    [n, sh, sw]: [usize; 3],
    out: &mut [f32],
) -> Result<(), String> {
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    let expect = [n as i64, 3, sh as i64, sw as i64];
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

#[cfg(test)]
mod tests {
    use super::check_batch;

    #[test]
    fn a_batch_must_hold_its_windows_and_their_features() {
        // 2 windows of 3 frames of 4 pixels
        assert_eq!(check_batch(72, None, 2, 3, 4), Ok(()));
        assert_eq!(check_batch(72, Some(6), 2, 3, 4), Ok(()));
        let short = check_batch(71, None, 2, 3, 4).unwrap_err();
        assert!(
            short.contains("expected 72 input values for 2 window(s), got 71"),
            "{short}"
        );
        let feats = check_batch(72, Some(5), 2, 3, 4).unwrap_err();
        assert!(
            feats.contains("6 feature sets") && feats.ends_with("got 72 and 5"),
            "{feats}"
        );
        assert!(check_batch(0, None, 0, 3, 4).is_err(), "an empty batch");
    }
}
