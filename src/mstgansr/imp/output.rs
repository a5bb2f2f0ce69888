// SPDX-License-Identifier: MIT OR Apache-2.0

//! The stream: frames into the window, the QoS verdict on each output, the batch that runs,
//! outputs with the serialized events that go before them, and the latency they add.

use super::*;

/// What the upscaler does with a window given its verdict and `late-frames`.
pub(super) fn judgement(v: Verdict, policy: LateFrames) -> Judgement {
    match v {
        Verdict::Infer => Judgement::Infer,
        Verdict::TooLateToInfer(_) if policy == LateFrames::Resize => Judgement::Resize,
        Verdict::TooLateToInfer(_) | Verdict::Late(_) => Judgement::Drop,
    }
}

impl MstGanSr {
    /// Converts an input buffer, keeps its metadata and adds it to the window.
    pub(super) fn accept(
        &self,
        state: &mut State,
        buffer: gst::Buffer,
    ) -> Result<(), gst::FlowError> {
        let continuity = self.settings.lock().unwrap().continuity;
        let Some(neg) = state.caps.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let (w, h) = (neg.in_info.width() as usize, neg.in_info.height() as usize);
        let mut rgb = Vec::new();
        if rgb.try_reserve_exact(3 * w * h).is_err() {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NoSpaceLeft,
                (
                    "out of memory for a {}x{} frame: lower max-memory use elsewhere or downscale the input",
                    w,
                    h
                )
            );
            return Err(gst::FlowError::Error);
        }
        rgb.resize(3 * w * h, 0.0);
        let alpha = {
            let vf =
                gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &neg.in_info)
                    .map_err(|_| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        (
                            "an input buffer is smaller than its caps say ({} bytes for {})",
                            buffer.size(),
                            neg.in_info.size()
                        )
                    );
                    gst::FlowError::Error
                })?;
            neg.pixels.read_frame(&vf, &mut rgb)
        };
        let holder = buffer
            .copy_region(
                gst::BufferCopyFlags::FLAGS
                    | gst::BufferCopyFlags::TIMESTAMPS
                    | gst::BufferCopyFlags::META,
                ..,
            )
            .map_err(|_| gst::FlowError::Error)?;
        let arrival = Arrival {
            pts: buffer.pts().map(|t| t.nseconds()),
            discont: buffer.flags().contains(gst::BufferFlags::DISCONT),
        };
        state.newest_pts = buffer.pts();
        drop(buffer);
        let seq = state.order.next_frame();
        let meta = FrameMeta {
            seq,
            holder: Some(holder),
            alpha,
        };
        let brk = state
            .upscaler
            .as_mut()
            .ok_or(gst::FlowError::Flushing)?
            .runs()
            .push(rgb, meta, arrival, continuity)
            .map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{e}"));
                gst::FlowError::Error
            })?;
        if let Some(b) = brk {
            gst::debug!(CAT, imp = self, "run of frames ends before #{seq}: {b:?}");
        }
        self.post_stats(|s| {
            s.frames_in += 1;
            if brk.is_some() {
                s.restarts += 1;
            }
            if brk == Some(Break::SceneCut) {
                s.scene_cuts += 1;
            }
        });
        Ok(())
    }

    /// Whether the output for a window whose centre has `pts` would be late: the sink said so
    /// (QoS), or, from a live source, it cannot be ready before the sink must show it.
    pub(super) fn verdict(&self, pts: Option<gst::ClockTime>) -> Verdict {
        let obj = self.obj();
        // the first output always goes out: a sink prerolls on it, and only then does the
        // pipeline know its latency, by which the others are judged
        if !obj.is_qos() || self.stats.lock().unwrap().frames_out == 0 {
            return Verdict::Infer;
        }
        let Some(pts) = pts else {
            return Verdict::Infer;
        };
        let rt = match obj.segment().downcast::<gst::ClockTime>() {
            Ok(seg) => seg.to_running_time(pts),
            Err(_) => None,
        };
        let Some(rt) = rt else {
            return Verdict::Infer;
        };
        let now = obj
            .clock()
            .zip(obj.base_time())
            .map(|(clock, base)| clock.time().saturating_sub(base));
        self.timing.lock().unwrap().verdict(rt, now)
    }

    /// Live, with QoS, and frames wait upstream: the newest one to arrive was captured more
    /// than two frame durations ago (a leaky queue's backlog after a slow inference).
    pub(super) fn backlogged(&self, newest: Option<gst::ClockTime>) -> bool {
        let obj = self.obj();
        if !obj.is_qos() {
            return false;
        }
        let rt = newest.and_then(|pts| {
            obj.segment()
                .downcast::<gst::ClockTime>()
                .ok()
                .and_then(|seg| seg.to_running_time(pts))
        });
        let (Some(rt), Some(clock), Some(base)) = (rt, obj.clock(), obj.base_time()) else {
            return false;
        };
        let now = clock.time().saturating_sub(base);
        self.timing.lock().unwrap().backlogged(rt, now)
    }

    /// An output buffer from the base class's allocation path (the negotiated pool), carrying
    /// the centre frame's timestamps, flags and metas, filled from `rgb` (`[3, sH, sW]`).
    pub(super) fn make_output(
        &self,
        neg: &mut Negotiated,
        meta: &FrameMeta,
        rgb: &[f32],
    ) -> Result<gst::Buffer, gst::FlowError> {
        let holder = meta.holder.as_ref().ok_or(gst::FlowError::Error)?;
        let mut out = match self.parent_prepare_output_buffer(InputBuffer::Readable(holder))? {
            PrepareOutputBufferSuccess::Buffer(b) => b,
            PrepareOutputBufferSuccess::InputBuffer => return Err(gst::FlowError::Error),
        };
        let (w, h) = (neg.in_info.width() as usize, neg.in_info.height() as usize);
        {
            let outb = out.get_mut().ok_or(gst::FlowError::Error)?;
            let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(outb, &neg.out_info)
                .map_err(|_| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("an output buffer from the pool is smaller than the output caps need")
                    );
                    gst::FlowError::Error
                })?;
            let alpha = meta.alpha.as_deref().map(|a| (a, w, h));
            neg.pixels.write_frame(rgb, alpha, &mut vf);
        }
        Ok(out)
    }

    /// The QoS verdict on a window's output; a window that replicates the edge of a run is
    /// not worth an inference when frames wait upstream (`newest`: the last PTS received).
    pub(super) fn judge(&self, win: &Ready<FrameMeta>, newest: Option<gst::ClockTime>) -> Verdict {
        let pts = win.centre().meta.holder.as_ref().and_then(|b| b.pts());
        let verdict = self.verdict(pts);
        if verdict == Verdict::Infer && !win.is_full() && self.backlogged(newest) {
            // more frames are waiting and most will go uninferred: spend the inference on a
            // window of T real neighbours, not on one that replicates the edge of a run
            return Verdict::TooLateToInfer(0);
        }
        verdict
    }

    /// The next output (with the events that go before it); processes the next batch of
    /// windows when none is waiting, on the lent upscaler, outside the state lock.
    pub(super) fn step(&self) -> Result<Step, gst::FlowError> {
        let newest = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            if let Some((events, out)) = state.order.pop() {
                return Ok(Step::Out(events, out));
            }
            if !state.upscaler.as_ref().is_some_and(|u| u.batch_ready()) {
                return Ok(Step::Idle);
            }
            state.newest_pts
        };
        let (policy, tier) = {
            let s = self.settings.lock().unwrap();
            (s.late_frames, s.live_tier)
        };
        // a live stream whose resize alone is too slow infers nothing (late-frames=resize)
        let resize_only = policy == LateFrames::Resize && {
            let t = self.timing.lock().unwrap();
            let processing = t
                .processing
                .map(|p| std::time::Duration::from_nanos(p.nseconds()));
            t.upstream_live && !live::resize_may_infer(processing)
        };
        let mut verdicts = Vec::new();
        let started = Instant::now();
        let processed = self
            .lend(|up| {
                up.process(|win| {
                    let mut v = self.judge(win, newest);
                    if resize_only && v == Verdict::Infer {
                        v = Verdict::TooLateToInfer(0);
                    }
                    verdicts.push(v);
                    judgement(v, policy)
                })
            })
            .ok_or(gst::FlowError::Flushing)?;
        let done = match processed {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(Step::Idle),
            Err(EngineError::Stopped) => {
                gst::debug!(CAT, imp = self, "inference stopped by a flush or a stop");
                return Err(gst::FlowError::Flushing);
            }
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("upscaling failed: {e}"),
                    ["model {:?}", self.settings.lock().unwrap().model_location]
                );
                return Err(gst::FlowError::Error);
            }
        };
        if verdicts.contains(&Verdict::Infer) {
            self.note_processing(started.elapsed());
        }
        let step_down = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let mut sustained = false;
            for v in &verdicts {
                sustained |= state.lateness.record(*v == Verdict::Infer);
            }
            self.queue_outputs(state, &done, &verdicts)?;
            sustained && tier == LiveTier::Auto && !state.stepped_down
        };
        if step_down {
            self.step_down_on_lateness(policy)?;
        }
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        Ok(match state.order.pop() {
            Some((events, out)) => Step::Out(events, out),
            None => Step::Idle,
        })
    }

    /// Makes each processed window's output buffer (or, for a dropped one, a QoS message) and
    /// queues it with the events that go before it.
    pub(super) fn queue_outputs(
        &self,
        state: &mut State,
        done: &[Done<FrameMeta>],
        verdicts: &[Verdict],
    ) -> Result<(), gst::FlowError> {
        let State {
            caps,
            upscaler,
            order,
            ..
        } = state;
        let (Some(neg), Some(upscaler)) = (caps.as_mut(), upscaler.as_ref()) else {
            return Err(gst::FlowError::NotNegotiated);
        };
        for (i, (d, v)) in done.iter().zip(verdicts).enumerate() {
            let meta = &d.window.centre().meta;
            let out = match (d.outcome, upscaler.output(i)) {
                (Judgement::Infer, Some(rgb)) => {
                    let full = d.window.is_full();
                    self.post_stats(|s| {
                        s.inferred += 1;
                        s.full_windows += full as u64;
                    });
                    Some(self.make_output(neg, meta, rgb)?)
                }
                (Judgement::Resize, Some(rgb)) => {
                    self.post_stats(|st| st.resized += 1);
                    Some(self.make_output(neg, meta, rgb)?)
                }
                _ => {
                    let late_ns = match *v {
                        Verdict::TooLateToInfer(ns) | Verdict::Late(ns) => ns,
                        Verdict::Infer => 0,
                    };
                    self.post_qos_drop(meta, late_ns);
                    None
                }
            };
            if out.is_some() {
                self.post_stats(|s| s.frames_out += 1);
            }
            order.queue(meta.seq, out, |b| {
                b.make_mut().set_flags(gst::BufferFlags::DISCONT);
            });
        }
        Ok(())
    }

    pub(super) fn post_qos_drop(&self, meta: &FrameMeta, late_ns: i64) {
        let obj = self.obj();
        let Some(b) = meta.holder.as_ref() else {
            return;
        };
        let (processed, dropped) = {
            let mut s = self.stats.lock().unwrap();
            s.dropped += 1;
            (s.inferred + s.resized, s.dropped)
        };
        let seg = obj.segment().downcast::<gst::ClockTime>().ok();
        let rt = seg
            .as_ref()
            .and_then(|s| b.pts().and_then(|p| s.to_running_time(p)));
        let st = seg
            .as_ref()
            .and_then(|s| b.pts().and_then(|p| s.to_stream_time(p)));
        let (live, proportion) = {
            let t = self.timing.lock().unwrap();
            (t.upstream_live, t.proportion)
        };
        let msg = gst::message::Qos::builder(live)
            .running_time_if_some(rt)
            .stream_time_if_some(st)
            .timestamp_if_some(b.pts())
            .duration_if_some(b.duration())
            .values(late_ns, proportion, 1_000_000)
            .stats(
                gst::format::Buffers::from_u64(processed),
                gst::format::Buffers::from_u64(dropped),
            )
            .src(&*obj)
            .build();
        let _ = obj.post_message(msg);
        gst::debug!(
            CAT,
            imp = self,
            "dropped a frame {late_ns} ns late ({dropped} so far)"
        );
    }

    /// Folds one inference's time into the estimate and re-announces the latency when it moved.
    pub(super) fn note_processing(&self, took: std::time::Duration) {
        let took = gst::ClockTime::from_nseconds(took.as_nanos() as u64);
        let changed = {
            let mut t = self.timing.lock().unwrap();
            t.processing = Some(gst::ClockTime::from_nseconds(live::smoothed(
                t.processing.map(|p| p.nseconds()),
                took.nseconds(),
            )));
            self.refresh_latency(&mut t)
        };
        if changed {
            self.announce_latency();
        }
    }

    /// Updates the reported latency; true when it moved by more than a fifth.
    pub(super) fn refresh_latency(&self, t: &mut Timing) -> bool {
        let Some(new) = t.ours() else {
            return false;
        };
        let moved = live::latency_moved(t.reported.map(|r| r.nseconds()), new.nseconds());
        if moved {
            t.reported = Some(new);
        }
        moved
    }

    pub(super) fn announce_latency(&self) {
        let obj = self.obj();
        gst::debug!(
            CAT,
            imp = self,
            "latency changed: posting a Latency message"
        );
        let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
    }

    /// Pushes one step's events and buffer downstream (outside the state lock).
    pub(super) fn push_step(
        &self,
        events: Vec<gst::Event>,
        out: Option<gst::Buffer>,
    ) -> Result<(), gst::FlowError> {
        let src = self.obj().src_pad().clone();
        for e in events {
            src.push_event(e);
        }
        if let Some(b) = out {
            src.push(b)?;
        }
        Ok(())
    }

    /// Ends the current run: every pending output, then every held event, goes downstream.
    pub(super) fn drain_and_push(&self) -> Result<(), gst::FlowError> {
        match self
            .state
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|s| s.upscaler.as_mut())
        {
            Some(up) => up.runs().finish(),
            None => return Ok(()),
        }
        loop {
            match self.step()? {
                Step::Idle => break,
                Step::Out(events, out) => self.push_step(events, out)?,
            }
        }
        let rest: Vec<gst::Event> = match self.state.lock().unwrap().as_mut() {
            Some(state) => state.order.drain_held(),
            None => return Ok(()),
        };
        self.push_step(rest, None)
    }

    /// Holds a serialized event behind the frames still in the window, or forwards it when
    /// none is.
    pub(super) fn hold_or_forward(&self, event: gst::Event) -> bool {
        {
            let mut guard = self.state.lock().unwrap();
            if let Some(state) = guard.as_mut()
                && let pending = state.upscaler.as_ref().map_or(0, |u| u.pending())
                && pending + state.order.queued() > 0
            {
                gst::log!(
                    CAT,
                    imp = self,
                    "holding {:?} behind {pending} frames",
                    event.type_(),
                );
                state.order.hold(event);
                return true;
            }
        }
        self.parent_sink_event(event)
    }
}
