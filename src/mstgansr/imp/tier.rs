// SPDX-License-Identifier: MIT OR Apache-2.0

//! The live tier: a live source whose model cannot keep up (at caps, or with sustained
//! lateness) moves to the fast tier of the same kind, once.

use super::*;

/// Whether the settings let the element change models: `live-tier=auto` and no model file of
/// the user's own.
pub(super) fn may_step_down(settings: &Settings) -> bool {
    settings.live_tier == LiveTier::Auto && settings.model_location.is_none()
}

/// The fast tier, loaded and warmed up, ready to take over (see [`MstGanSr::install`]).
pub(super) struct FastTier {
    upscaler: Upscaler<FrameMeta>,
    running: Running,
    pub(super) took: gst::ClockTime,
    pub(super) plan: Plan,
}

impl FastTier {
    /// Whether its windows go into inferences shared with other streams.
    pub(super) fn upscaler_cross_batch(&self) -> bool {
        self.upscaler.engine().cross_batch().is_some()
    }
}

impl MstGanSr {
    /// With `live-tier=auto`, a live source whose frames the bundled model cannot keep up with
    /// (its warm-up `took` more than the live budget of a `frame`) runs the fast tier for the
    /// same kind of input instead: chosen once, before the first frame, and said on the bus.
    pub(super) fn step_down_if_slow(
        &self,
        from: &Running,
        settings: &Settings,
        size: (usize, usize),
        frame: gst::ClockTime,
        limits: Limits,
        took: gst::ClockTime,
    ) -> Result<Option<FastTier>, gst::LoggableError> {
        if models::keeps_up(took.nseconds(), frame.nseconds()) {
            return Ok(None);
        }
        let budget = frame * models::LIVE_BUDGET_PERCENT / 100;
        let why = format!(
            "takes {} ms a frame, more than {} ms ({} % of a frame)",
            took.mseconds(),
            budget.mseconds(),
            models::LIVE_BUDGET_PERCENT
        );
        self.fast_tier(from, settings, size, frame, limits, &why)
    }

    /// With `live-tier=auto`, sustained lateness on a live source (see [`Lateness`]) hands the
    /// stream to the fast tier at a clean window: the old model's pending frames leave as late
    /// frames do (`late-frames`), and the fast tier starts a new run with the next frame. Once:
    /// tiers never alternate. The fast tier loads and warms up outside the state lock.
    pub(super) fn step_down_on_lateness(&self, policy: LateFrames) -> Result<(), gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let (frame, live) = {
            let t = self.timing.lock().unwrap();
            (
                t.frame.filter(|f| *f > gst::ClockTime::ZERO),
                t.upstream_live,
            )
        };
        let Some(frame) = frame.filter(|_| live && may_step_down(&settings)) else {
            return Ok(());
        };
        let (from, size, why) = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            if std::mem::replace(&mut state.stepped_down, true) {
                return Ok(());
            }
            let why = format!(
                "had {} of the last {} frames late (sustained lateness, not a burst)",
                state.lateness.late(),
                state.lateness.span()
            );
            state.lateness.clear();
            let size = {
                let up = state.upscaler.as_mut().ok_or(gst::FlowError::Flushing)?;
                up.runs().finish();
                up.size()
            };
            // what is left of the old tier's run is late already: resized or dropped by the policy
            let too_late = Verdict::TooLateToInfer(0);
            loop {
                let up = state.upscaler.as_mut().ok_or(gst::FlowError::Flushing)?;
                let Some(done) = up
                    .process(|_| output::judgement(too_late, policy))
                    .map_err(|_| gst::FlowError::Error)?
                else {
                    break;
                };
                self.queue_outputs(state, &done, &vec![too_late; done.len()])?;
            }
            (state.running.clone(), size, why)
        };
        let limits = self.limits(&settings, true);
        let fast = match self.fast_tier(&from, &settings, size, frame, limits, &why) {
            Ok(Some(fast)) => fast,
            Ok(None) => return Ok(()),
            Err(_) => return Err(gst::FlowError::Flushing),
        };
        let (took, batch) = (fast.took, fast.plan.batch);
        match self.state.lock().unwrap().as_mut() {
            Some(state) => self.install(state, fast),
            None => return Err(gst::FlowError::Flushing),
        }
        let mut t = self.timing.lock().unwrap();
        t.processing = Some(took);
        t.batch = batch as u64;
        let changed = self.refresh_latency(&mut t);
        drop(t);
        if changed {
            self.announce_latency();
        }
        Ok(())
    }

    /// Loads and warms up the fast tier for the stream's size (without the state lock), saying
    /// on the bus why (`why` completes "live source: <model> ..."). `None` when there is no
    /// faster tier or it cannot run (a warning says why).
    pub(super) fn fast_tier(
        &self,
        from: &Running,
        settings: &Settings,
        (w, h): (usize, usize),
        frame: gst::ClockTime,
        limits: Limits,
        why: &str,
    ) -> Result<Option<FastTier>, gst::LoggableError> {
        let Some(fast) = models::Variant::from(settings.variant).fast_tier() else {
            return Ok(None);
        };
        let fast_settings = Settings {
            variant: fast.into(),
            ..settings.clone()
        };
        let keep = |reason: String| {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                (
                    "live source: {} {why}, and no faster model can take over: {reason}",
                    from.model_path.display(),
                )
            );
            Ok(None)
        };
        let (engine, path) = match self
            .resolve_model(&fast_settings)
            .and_then(|(path, _)| self.load_engine(&fast_settings, path, from.threads))
        {
            Ok(loaded) => loaded,
            Err(e) => return keep(e.to_string()),
        };
        let mut running = Running::of(&engine, path, from.threads);
        let mut upscaler = Upscaler::new(engine).with_progress(self.tiles_done.clone());
        let plan = match upscaler.configure(w, h, Some(frame.nseconds()), limits) {
            Ok(plan) => plan.clone(),
            Err(e) => return keep(e.to_string()),
        };
        running.feature_cache_active &= plan.feature_cache;
        let took = match upscaler.warm_up() {
            Ok(d) => gst::ClockTime::from_nseconds(d.as_nanos() as u64),
            Err(EngineError::Stopped) => {
                return Err(gst::loggable_error!(CAT, "stopped during the warm-up"));
            }
            Err(e) => return keep(e.to_string()),
        };
        let said = format!(
            "live source: {} {why}, so the fast tier {} runs instead ({} ms a frame{}); \
             live-tier=pinned keeps the model asked for",
            from.model_path.display(),
            running.model_path.display(),
            took.mseconds(),
            if models::keeps_up(took.nseconds(), frame.nseconds()) {
                ""
            } else {
                ", which does not keep up either: late frames follow late-frames"
            }
        );
        gst::element_imp_info!(self, gst::LibraryError::Settings, ("{said}"), ["{said}"]);
        Ok(Some(FastTier {
            upscaler,
            running,
            took,
            plan,
        }))
    }

    /// Makes the fast tier the element's model.
    pub(super) fn install(&self, state: &mut State, fast: FastTier) {
        self.timing.lock().unwrap().radius = (fast.running.window / 2) as u64;
        self.post_stats(|s| {
            s.tiles = fast.plan.tiles.len() as u64;
            s.tier_changes += 1;
        });
        state.upscaler = Some(fast.upscaler);
        state.running = fast.running;
    }
}
