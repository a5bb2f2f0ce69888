// SPDX-License-Identifier: MIT OR Apache-2.0

//! The live tier: a live source whose model cannot keep up (at caps, or with sustained
//! lateness) moves to the fast tier of the same kind, once.

use super::*;

impl MstGanSr {
    /// With `live-tier=auto`, a live source whose frames the bundled model cannot keep up with
    /// (its warm-up `took` more than the live budget of a `frame`) runs the fast tier for the
    /// same kind of input instead: chosen once, before the first frame, and said on the bus.
    /// Returns the new model's warm-up time and plan, `None` when the model stays.
    pub(super) fn step_down_if_slow(
        &self,
        state: &mut State,
        settings: &Settings,
        size: (usize, usize),
        frame: gst::ClockTime,
        limits: Limits,
        took: gst::ClockTime,
    ) -> Result<Option<(gst::ClockTime, Plan)>, gst::LoggableError> {
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
        self.step_down(state, settings, size, frame, limits, &why)
    }

    /// With `live-tier=auto`, sustained lateness on a live source (see [`Lateness`]) hands the
    /// stream to the fast tier at a clean window: the old model's pending frames leave as late
    /// frames do (`late-frames`), and the fast tier starts a new run with the next frame. Once:
    /// tiers never alternate.
    pub(super) fn step_down_on_lateness(
        &self,
        state: &mut State,
        policy: LateFrames,
    ) -> Result<(), gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let (frame, live) = {
            let t = self.timing.lock().unwrap();
            (
                t.frame.filter(|f| *f > gst::ClockTime::ZERO),
                t.upstream_live,
            )
        };
        let Some(frame) = frame.filter(|_| live && !state.stepped_down) else {
            return Ok(());
        };
        let late = state.lateness.late();
        let span = state.lateness.span();
        state.lateness.clear();
        state.upscaler.runs().finish();
        // what is left of the old tier's run is late already: resized or dropped by the policy
        let too_late = Verdict::TooLateToInfer(0);
        while let Some(done) = state
            .upscaler
            .process(|_| output::judgement(too_late, policy))
            .map_err(|_| gst::FlowError::Error)?
        {
            self.queue_outputs(state, &done, &vec![too_late; done.len()])?;
        }
        let size = state.upscaler.size();
        let limits = self.limits(&settings, true);
        let why =
            format!("had {late} of the last {span} frames late (sustained lateness, not a burst)");
        match self.step_down(state, &settings, size, frame, limits, &why) {
            Ok(Some((took, plan))) => {
                let mut t = self.timing.lock().unwrap();
                t.processing = Some(took);
                t.batch = plan.batch as u64;
                let changed = self.refresh_latency(&mut t);
                drop(t);
                if changed {
                    self.announce_latency();
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(_) => Err(gst::FlowError::Flushing),
        }
    }

    /// Loads and warms up the fast tier for the stream's size and makes it the element's model,
    /// saying on the bus why (`why` completes "live source: <model> ..."). `None` when the
    /// settings pin the model, there is no faster tier, or it cannot run (a warning says why).
    pub(super) fn step_down(
        &self,
        state: &mut State,
        settings: &Settings,
        (w, h): (usize, usize),
        frame: gst::ClockTime,
        limits: Limits,
        why: &str,
    ) -> Result<Option<(gst::ClockTime, Plan)>, gst::LoggableError> {
        if settings.live_tier == LiveTier::Pinned || settings.model_location.is_some() {
            return Ok(None);
        }
        // after one step down the stream stays on the fast tier
        if std::mem::replace(&mut state.stepped_down, true) {
            return Ok(None);
        }
        let Some(fast) = models::Variant::from(settings.variant).fast_tier() else {
            return Ok(None);
        };
        let (from, threads) = match self.running.lock().unwrap().as_ref() {
            Some(r) => (r.model_path.clone(), r.threads),
            None => return Ok(None),
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
                    from.display(),
                )
            );
            Ok(None)
        };
        let (engine, path) = match self
            .resolve_model(&fast_settings)
            .and_then(|(path, _)| self.load_engine(&fast_settings, path, threads))
        {
            Ok(loaded) => loaded,
            Err(e) => return keep(e.to_string()),
        };
        let mut upscaler = Upscaler::new(engine).with_progress(self.tiles_done.clone());
        let plan = match upscaler.configure(w, h, Some(frame.nseconds()), limits) {
            Ok(plan) => plan.clone(),
            Err(e) => return keep(e.to_string()),
        };
        let fast_took = match upscaler.warm_up() {
            Ok(d) => gst::ClockTime::from_nseconds(d.as_nanos() as u64),
            Err(EngineError::Stopped) => {
                return Err(gst::loggable_error!(CAT, "stopped during the warm-up"));
            }
            Err(e) => return keep(e.to_string()),
        };
        let said = format!(
            "live source: {} {why}, so the fast tier {} runs instead ({} ms a frame{}); \
             live-tier=pinned keeps the model asked for",
            from.display(),
            path.display(),
            fast_took.mseconds(),
            if models::keeps_up(fast_took.nseconds(), frame.nseconds()) {
                ""
            } else {
                ", which does not keep up either: late frames follow late-frames"
            }
        );
        gst::element_imp_info!(self, gst::LibraryError::Settings, ("{said}"), ["{said}"]);
        let engine = upscaler.engine();
        if let Some(r) = self.running.lock().unwrap().as_mut() {
            r.model_path = path;
            r.window = engine.info().window as u32;
            r.active_provider = engine.active_provider();
            r.feature_cache_active =
                *engine.feature_cache() == FeatureCache::Active && plan.feature_cache;
            r.stop = engine.stop_handle();
            r.engine_users = engine.users_handle();
            r.batch_counters = engine.batch_counters();
        }
        self.timing.lock().unwrap().radius = (engine.info().window / 2) as u64;
        self.post_stats(|s| {
            s.tiles = plan.tiles.len() as u64;
            s.tier_changes += 1;
        });
        state.upscaler = upscaler;
        Ok(Some((fast_took, plan)))
    }
}
