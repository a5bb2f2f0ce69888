// SPDX-License-Identifier: MIT OR Apache-2.0

//! Loading and planning: which model file runs (variant, precision, the CPU's INT8 kernels), its
//! engine, the memory budget, tiling and batching the settings allow, and what new caps need
//! (the plan for the frame size, the warm-up, the latency).

use super::*;

impl MstGanSr {
    /// Starting: resolves and opens the model (threads capped at the cores, the provider said
    /// once) and sets up the state.
    pub(super) fn open(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let (model_path, is_fixture) = self.resolve_model(&settings)?;
        if is_fixture {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                (
                    "no trained x{} model is installed: using the untrained test fixture {} \
                     (output is close to bilinear)",
                    settings.scale,
                    model_path.display()
                ),
                ["set model-location to a trained model or install the bundled models"]
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = settings.threads as usize;
        let threads = if threads > cores {
            // more threads than cores only makes onnxruntime's workers wait on each other
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("threads={threads} is more than the {cores} core(s) available: using {cores}")
            );
            cores
        } else {
            threads
        };
        let (engine, model_path) = self.load_engine(&settings, model_path, threads)?;
        if settings.execution_provider == ExecutionProvider::Auto
            && engine.active_provider() == ActiveProvider::Cpu
        {
            let why: Vec<String> = engine
                .skipped_providers()
                .iter()
                .map(|(p, r)| format!("{p}: {r}"))
                .collect();
            if crate::engine::gpu_present() {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Init,
                    ("execution-provider=auto fell back to CPU: a GPU is present but no GPU provider could be used"),
                    ["{}", why.join("; ")]
                );
            } else {
                // the normal case on a machine without a GPU: say what runs, not a warning
                gst::element_imp_info!(
                    self,
                    gst::LibraryError::Init,
                    ("running on the CPU provider (no NVIDIA GPU here, no OpenVINO build loaded)"),
                    [
                        "execution-provider=auto runs on the CPU provider: {}",
                        why.join("; ")
                    ]
                );
            }
        }
        let info = engine.info().clone();
        gst::info!(
            CAT,
            imp = self,
            "loaded {} (x{}, T={}, {}, v{}) on {}",
            model_path.display(),
            info.scale,
            info.window,
            info.precision,
            info.version,
            engine.active_provider()
        );
        match engine.feature_cache() {
            FeatureCache::Rejected(why) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("feature cache off, running the whole graph: {}", why)
            ),
            other => gst::info!(CAT, imp = self, "feature cache: {other:?}"),
        }
        self.tiles_done.store(0, Ordering::Relaxed);
        let running = Running::of(&engine, model_path, threads);
        let upscaler = Upscaler::new(engine).with_progress(self.tiles_done.clone());
        *self.timing.lock().unwrap() = Timing {
            radius: (info.window / 2) as u64,
            proportion: 1.0,
            ..Timing::default()
        };
        *self.stats.lock().unwrap() = Stats::default();
        *self.state.lock().unwrap() = Some(State {
            upscaler: Some(upscaler),
            running,
            caps: None,
            order: Sequencer::default(),
            newest_pts: None,
            lateness: Lateness::new(None),
            stepped_down: false,
        });
        Ok(())
    }

    /// New caps: the previous caps' frames leave first, then the frame size is planned and, for
    /// a live source, the model timed (see [`MstGanSr::prepare`]) and the latency announced.
    pub(super) fn configure(
        &self,
        incaps: &gst::Caps,
        outcaps: &gst::Caps,
    ) -> Result<(), gst::LoggableError> {
        // frames of the previous caps leave with the previous caps
        self.drain_and_push()
            .map_err(|e| gst::loggable_error!(CAT, "draining before new caps failed: {e:?}"))?;
        let in_info = VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "bad input caps {incaps}"))?;
        let out_info = VideoInfo::from_caps(outcaps)
            .map_err(|_| gst::loggable_error!(CAT, "bad output caps {outcaps}"))?;
        let settings = self.settings.lock().unwrap().clone();
        let mut upstream = gst::query::Latency::new();
        let answered = self.obj().sink_pad().peer_query(&mut upstream);
        let live = answered && upstream.result().0;
        let upstream_min = if answered {
            upstream.result().1
        } else {
            gst::ClockTime::ZERO
        };
        let s = settings.scale;
        if in_info.format() != out_info.format()
            || out_info.width() != in_info.width() * s
            || out_info.height() != in_info.height() * s
        {
            return Err(gst::loggable_error!(
                CAT,
                "output caps {outcaps} are not the input at x{s}"
            ));
        }
        let pixels = PixelPath::new(&in_info).map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        let (w, h) = (in_info.width() as usize, in_info.height() as usize);
        let frame = frame_duration(&in_info);
        let limits = self.limits(&settings, live);
        // one step down at most, decided here or on sustained lateness
        let (running, may_step_down) = {
            let guard = self.state.lock().unwrap();
            let state = guard
                .as_ref()
                .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
            let may = tier::may_step_down(&settings) && !state.stepped_down;
            (state.running.clone(), may)
        };
        // planning and the warm-up run on the upscaler outside the state lock
        let prepared = self
            .lend(|up| {
                self.prepare(
                    up,
                    &settings,
                    (w, h),
                    frame,
                    limits,
                    live,
                    &running,
                    may_step_down,
                )
            })
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "stopped while configuring"))?;
        let Prepared {
            warm,
            plan,
            feature_cache_active,
            cross_wait,
            stepped_down,
            fast,
        } = prepared?;
        state.running.feature_cache_active = feature_cache_active;
        state.stepped_down |= stepped_down;
        if let Some(fast) = fast {
            self.install(state, fast);
        }
        state.lateness = Lateness::new(frame.map(|f| f.nseconds()));
        state.caps = Some(Negotiated {
            in_info,
            out_info,
            pixels,
        });
        drop(guard);
        let changed = {
            let mut t = self.timing.lock().unwrap();
            t.frame = frame.or(Some(gst::ClockTime::ZERO));
            t.batch = plan.batch as u64;
            t.cross_wait = cross_wait;
            t.upstream_live = live;
            t.upstream_min = upstream_min;
            if warm.is_some() {
                t.processing = warm;
            }
            self.refresh_latency(&mut t)
        };
        if changed {
            self.announce_latency();
        }
        gst::debug!(
            CAT,
            imp = self,
            "configured {incaps} -> {outcaps} (live: {live}, warm-up {warm:?})"
        );
        Ok(())
    }

    /// Opens `model_path` with the settings' provider and precision; `precision=auto` says which
    /// INT8 file it loaded and why, or takes the FP32 file beside one that would lose quality on
    /// this CPU. Returns the file that runs.
    pub(super) fn load_engine(
        &self,
        settings: &Settings,
        model_path: PathBuf,
        threads: usize,
    ) -> Result<(Engine, PathBuf), gst::ErrorMessage> {
        let mut cfg = EngineConfig {
            model_path: model_path.clone(),
            scale: settings.scale,
            provider: settings.execution_provider.into(),
            device_id: settings.device_id,
            precision: settings.precision.into(),
            engine_cache_dir: settings.engine_cache_dir.as_ref().map(PathBuf::from),
            threads,
            feature_cache: settings.feature_cache,
            share: settings.shared_engine,
        };
        let load = |cfg: &EngineConfig| {
            Engine::new(cfg).map_err(|e| {
                let kind = match e {
                    EngineError::ModelMissing(_) => gst::ResourceError::NotFound,
                    EngineError::RuntimeMissing(_) | EngineError::ProviderUnavailable { .. } => {
                        gst::ResourceError::OpenRead
                    }
                    _ => gst::ResourceError::Settings,
                };
                gst::error_msg!(
                    kind,
                    ("{e}"),
                    [
                        "model-location={} scale={} execution-provider={:?} precision={:?}",
                        cfg.model_path.display(),
                        settings.scale,
                        settings.execution_provider,
                        settings.precision
                    ]
                )
            })
        };
        let mut engine = load(&cfg)?;
        if let (Some(bits), ActiveProvider::Cpu) =
            (engine.info().int8_weight_bits, engine.active_provider())
        {
            match models::auto_int8(bits, models::cpu_has_vnni()) {
                // gst-launch-1.0 prints an INFO message's debug text: it carries the whole story
                models::AutoInt8::Keep(why) => gst::element_imp_info!(
                    self,
                    gst::LibraryError::Init,
                    ("loaded {}: {why}", cfg.model_path.display()),
                    ["loaded {}: {why}", cfg.model_path.display()]
                ),
                models::AutoInt8::PreferFp32(why) => {
                    let fp32 = (settings.precision == Precision::Auto
                        && settings.model_location.is_none())
                    .then(|| {
                        self.resolve_model(&Settings {
                            precision: Precision::Fp32,
                            ..settings.clone()
                        })
                    })
                    .and_then(Result::ok)
                    .filter(|(_, is_fixture)| !is_fixture);
                    if let Some((path, _)) = fp32 {
                        cfg.model_path = path;
                        engine = load(&cfg)?;
                        let said = format!(
                            "precision=auto loaded {} (FP32): {why}",
                            cfg.model_path.display()
                        );
                        gst::element_imp_info!(
                            self,
                            gst::LibraryError::Init,
                            ("{said}"),
                            ["{said}"]
                        );
                    } else {
                        gst::element_imp_warning!(
                            self,
                            gst::LibraryError::Settings,
                            (
                                "{} loses quality on this CPU: {why}",
                                cfg.model_path.display()
                            ),
                            ["or set precision=fp32 with the FP32 file"]
                        );
                    }
                }
            }
        }
        Ok((engine, cfg.model_path))
    }

    /// The memory budget, tiling and batching the settings allow now, for a live source or not.
    pub(super) fn limits(&self, settings: &Settings, live: bool) -> Limits {
        let bound = memory::bound(settings.max_memory_mib << 20);
        Limits {
            tile: settings.tile_size as usize,
            overlap: settings.tile_overlap as usize,
            batch: settings.batch_size as usize,
            cross: live::cross_batch(
                live,
                settings.shared_engine,
                settings.batch_size,
                settings.batch_wait_ms,
            ),
            memory: bound.as_ref().map_or(u64::MAX, |b| b.bytes),
            memory_source: bound.as_ref().map_or("nothing", |b| b.source),
        }
    }

    pub(super) fn resolve_model(
        &self,
        settings: &Settings,
    ) -> Result<(PathBuf, bool), gst::ErrorMessage> {
        if let Some(loc) = &settings.model_location {
            return Ok((PathBuf::from(loc), false));
        }
        let plugin_file = self
            .obj()
            .factory()
            .and_then(|f| f.plugin())
            .and_then(|p| p.filename());
        // GPUs take the FP32 model (TensorRT builds FP16 kernels from it); INT8 is the fast
        // path on CPU, which is also where `auto` lands without onnxruntime-gpu
        let gpu = matches!(
            settings.execution_provider,
            ExecutionProvider::Cuda | ExecutionProvider::TensorRt
        );
        let want = crate::engine::Precision::from(settings.precision)
            .model_precision()
            .or(gpu.then_some(crate::engine::ModelPrecision::Fp32));
        match models::resolve(
            settings.scale,
            want,
            settings.variant.into(),
            plugin_file.as_deref(),
        ) {
            Ok(r) => Ok((r.path, r.is_fixture)),
            Err(tried) => Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                (
                    "no bundled x{} {} model is installed: set model-location, another variant, or {}",
                    settings.scale,
                    models::Variant::from(settings.variant).names().join(" or "),
                    models::MODEL_DIR_ENV
                ),
                [
                    "looked for {}",
                    tried
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ]
            )),
        }
    }

    /// Plans tiles, batch and feature cache for a frame size and, for a live source, measures
    /// the model on a warm session (stepping down to the fast tier when it cannot keep up and
    /// `may_step_down`). Runs on the lent upscaler, outside the state lock.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepare(
        &self,
        up: &mut Upscaler<FrameMeta>,
        settings: &Settings,
        (w, h): (usize, usize),
        frame: Option<gst::ClockTime>,
        limits: Limits,
        live: bool,
        running: &Running,
        may_step_down: bool,
    ) -> Result<Prepared, gst::LoggableError> {
        let plan = match up.configure(w, h, frame.map(|f| f.nseconds()), limits) {
            Ok(plan) => plan.clone(),
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("{e}"),
                    [
                        "memory limits: {:?}",
                        memory::limits(settings.max_memory_mib << 20)
                    ]
                );
                return Err(gst::loggable_error!(CAT, "frames too large for memory"));
            }
        };
        for note in crate::upscale::tiling::bounded(
            settings.tile_size as usize,
            settings.tile_overlap as usize,
        )
        .notes
        {
            gst::element_imp_warning!(self, gst::ResourceError::Settings, ("{note}"));
        }
        gst::info!(
            CAT,
            imp = self,
            "{w}x{h}: {} tile(s) of {} px (+{} px context), batch {}, feature cache {}, ~{} MiB",
            plan.tiles.len(),
            plan.tile,
            plan.overlap,
            plan.batch,
            plan.feature_cache,
            plan.peak_bytes >> 20
        );
        self.post_stats(|s| s.tiles = plan.tiles.len() as u64);
        let feature_cache_active =
            *up.engine().feature_cache() == FeatureCache::Active && plan.feature_cache;
        // a live pipeline needs the processing time in its latency before the first frame;
        // measure it on a warm session. The source's first frames wait meanwhile: a model far
        // too slow for its frame rate is told from a crop (CPU: other providers build a graph
        // per shape), not from two whole frames (2.4 s at 640x360 for the x2 real model)
        let too_slow = match frame {
            Some(f) if live && up.engine().active_provider() == ActiveProvider::Cpu => {
                match up.estimate(ESTIMATE_PX) {
                    Ok(d) => {
                        let d = gst::ClockTime::from_nseconds(d.as_nanos() as u64);
                        // over 1.5x the live budget: the estimate's error cannot explain it
                        (!models::keeps_up(d.nseconds() / 3 * 2, f.nseconds())).then_some(d)
                    }
                    Err(EngineError::Stopped) => {
                        return Err(gst::loggable_error!(CAT, "stopped during the warm-up"));
                    }
                    // the warm-up below says what is wrong
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let warm = if let Some(estimate) = too_slow {
            gst::debug!(
                CAT,
                imp = self,
                "estimated {} ms a frame from a crop",
                estimate.mseconds()
            );
            Some(estimate)
        } else if live {
            match up.warm_up() {
                Ok(d) => Some(gst::ClockTime::from_nseconds(d.as_nanos() as u64)),
                Err(EngineError::Stopped) => {
                    return Err(gst::loggable_error!(CAT, "stopped during the warm-up"));
                }
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("the model cannot run on {}x{} frames: {}", w, h, e)
                    );
                    return Err(gst::loggable_error!(CAT, "warm-up failed"));
                }
            }
        } else {
            None
        };
        let (mut stepped_down, mut fast) = (false, None);
        if let (Some(took), Some(frame), true) = (warm, frame, may_step_down) {
            stepped_down = !models::keeps_up(took.nseconds(), frame.nseconds());
            fast = self.step_down_if_slow(running, settings, (w, h), frame, limits, took)?;
        }
        let (warm, plan, cross) = match &fast {
            Some(f) => (Some(f.took), f.plan.clone(), f.upscaler_cross_batch()),
            None => (warm, plan, up.engine().cross_batch().is_some()),
        };
        // a window batched with other streams' waits for them before its inference: part of
        // each inference's time as the stream sees it
        let cross_wait = limits
            .cross
            .filter(|_| cross)
            .map(|c| gst::ClockTime::from_nseconds(c.wait.as_nanos() as u64));
        Ok(Prepared {
            warm: warm.map(|w| w + cross_wait.unwrap_or(gst::ClockTime::ZERO)),
            plan,
            feature_cache_active,
            cross_wait,
            stepped_down,
            fast,
        })
    }
}

/// What [`MstGanSr::prepare`] found for the negotiated size.
pub(super) struct Prepared {
    pub(super) warm: Option<gst::ClockTime>,
    pub(super) plan: Plan,
    pub(super) feature_cache_active: bool,
    pub(super) cross_wait: Option<gst::ClockTime>,
    /// A step down was tried (the model did not keep up): never again for this stream.
    pub(super) stepped_down: bool,
    pub(super) fast: Option<tier::FastTier>,
}
