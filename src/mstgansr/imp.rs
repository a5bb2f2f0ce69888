// SPDX-License-Identifier: MIT OR Apache-2.0

/**
 * SECTION:element-mstgansr
 *
 * Upscales raw video 2x, 3x or 4x with the MST-GAN multi-frame generator on onnxruntime.
 * Each output frame is computed from a window of T neighbouring input frames (T from the
 * model), so output lags input by (T-1)/2 frames plus the processing time; the element
 * reports both in the LATENCY query. Serialized events keep their place among the frames.
 * A run of frames ends only at a real break (flush, new segment or caps, a PTS jump past
 * `max-gap` frames, a scene cut); a DISCONT from a leaky queue continues the window with the
 * frames that arrived. With `qos` (default on), a frame whose output would be late is dropped
 * before inference or, with `late-frames=resize`, upscaled bilinearly so the rate holds.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! queue ! \
 *     mstgansr scale=4 ! queue ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * gst-launch-1.0 v4l2src ! videoconvert ! queue leaky=downstream max-size-buffers=8 ! \
 *     mstgansr scale=2 ! videoconvert ! autovideosink
 * ]|
 */
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::{
    GenerateOutputSuccess, InputBuffer, PrepareOutputBufferSuccess,
};
use gst_base::subclass::prelude::*;
use gst_video::VideoInfo;

use crate::engine::{
    ActiveProvider, BatchCounters, Engine, EngineConfig, EngineError, FeatureCache, StopHandle,
    Users,
};
use crate::live::{self, Lateness};
use crate::models;
use crate::upscale::memory;
use crate::upscale::upscaler::{Arrival, Break, Done, Judgement, Limits, Plan, Ready, Upscaler};

use super::caps::{self, frame_duration};
use super::pixels::{self, PixelPath};
use super::sequence::Sequencer;
use super::settings::{self, Settings};
use super::stats::{Shared, Stats};
use super::timing::{Timing, Verdict};
use super::{ExecutionProvider, LateFrames, LiveTier, Precision};

mod load;
mod output;
mod tier;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mstgansr",
        gst::DebugColorFlags::empty(),
        Some("MST-GAN video super-resolution"),
    )
});

/// What a frame keeps while it waits in the window: not the upstream buffer (a decoder's or
/// camera's pool must not be starved), only its metadata and, for alpha formats, its alpha.
#[derive(Default)]
struct FrameMeta {
    /// Arrival order, to keep held events in place.
    seq: u64,
    /// A memory-less copy of the input buffer: timestamps, flags and metas.
    holder: Option<gst::Buffer>,
    alpha: Option<Vec<u8>>,
}

struct Negotiated {
    in_info: VideoInfo,
    out_info: VideoInfo,
    pixels: PixelPath,
}

struct State {
    /// `None` only while the streaming thread runs it without the lock ([`MstGanSr::lend`]):
    /// a flush, a stop, a property or a query never waits for an inference.
    upscaler: Option<Upscaler<FrameMeta>>,
    running: Running,
    caps: Option<Negotiated>,
    /// Held events and queued outputs, in the order they leave.
    order: Sequencer<gst::Event, gst::Buffer>,
    /// PTS of the last frame received.
    newest_pts: Option<gst::ClockTime>,
    /// Whether the outputs of the last two seconds came from the model.
    lateness: Lateness,
    /// The fast tier took over (at caps or on sustained lateness): it stays.
    stepped_down: bool,
}

/// The crop a live source's model is first timed on: 128 x 128 input pixels.
const ESTIMATE_PX: usize = 128 * 128;

/// The model that runs (read-only properties).
#[derive(Debug, Clone)]
struct Running {
    model_path: PathBuf,
    window: u32,
    active_provider: ActiveProvider,
    feature_cache_active: bool,
    stop: StopHandle,
    threads: usize,
    /// Instances sharing this one's onnxruntime session (itself included).
    engine_users: Users,
    /// The shared sessions' batching thread (cross-stream batches), when shared.
    batch_counters: Option<Arc<BatchCounters>>,
}

impl Running {
    fn of(engine: &Engine, model_path: PathBuf, threads: usize) -> Self {
        Self {
            model_path,
            window: engine.info().window as u32,
            active_provider: engine.active_provider(),
            feature_cache_active: *engine.feature_cache() == FeatureCache::Active,
            stop: engine.stop_handle(),
            threads,
            engine_users: engine.users_handle(),
            batch_counters: engine.batch_counters(),
        }
    }
}

#[derive(Default)]
pub struct MstGanSr {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Read by the LATENCY query and QoS events, which must not wait for the state.
    timing: Mutex<Timing>,
    /// Counters the streaming thread adds to at every frame and the `stats` property reads.
    stats: Mutex<Stats>,
    interlace_warned: AtomicBool,
    /// Tiles run since start: the upscaler counts them during an inference, `stats` reads them.
    tiles_done: Arc<AtomicU64>,
}

#[glib::object_subclass]
impl ObjectSubclass for MstGanSr {
    const NAME: &'static str = "GstMstGanSr";
    type Type = super::MstGanSr;
    type ParentType = gst_base::BaseTransform;
}

/// What to do with the output of a window.
/// What one step of output produced.
enum Step {
    /// No window is ready.
    Idle,
    /// Events to push, then maybe a buffer.
    Out(Vec<gst::Event>, Option<gst::Buffer>),
}

impl MstGanSr {
    fn post_stats(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap());
    }

    /// Stops (or lets run again) the inference in progress and every later one.
    fn set_stopped(&self, stopped: bool) {
        let stop = self.running().map(|r| r.stop);
        if let Some(stop) = stop {
            if stopped {
                stop.stop();
            } else {
                stop.resume();
            }
        }
    }

    fn running(&self) -> Option<Running> {
        self.state
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.running.clone())
    }

    /// Runs `f` on the upscaler without holding the state lock (an inference, a warm-up), then
    /// puts it back. Streaming thread only: nothing else takes the upscaler. `None` when the
    /// element is not started.
    fn lend<R>(&self, f: impl FnOnce(&mut Upscaler<FrameMeta>) -> R) -> Option<R> {
        let mut up = self.state.lock().unwrap().as_mut()?.upscaler.take()?;
        let r = f(&mut up);
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.upscaler = Some(up);
        }
        Some(r)
    }

    fn stats_structure(&self) -> gst::Structure {
        let s = self.stats.lock().unwrap().clone();
        let tiles_done = self.tiles_done.load(Ordering::Relaxed);
        let (engine_users, counters) = self.running().map_or((0, None), |r| {
            (r.engine_users.count(), r.batch_counters.clone())
        });
        let count = |f: fn(&BatchCounters) -> &AtomicU64| {
            counters
                .as_ref()
                .map_or(0, |c| f(c).load(Ordering::Relaxed))
        };
        let t = self.timing.lock().unwrap();
        s.structure(&Shared {
            tiles_done,
            engine_users: engine_users as u64,
            cross_stream: t.cross_wait.is_some(),
            batch_inferences: count(|c| &c.inferences),
            batch_windows: count(|c| &c.windows),
            batch_shared: count(|c| &c.shared),
            processing: t.processing,
            latency: t.reported,
        })
    }
}

impl ObjectImpl for MstGanSr {
    fn constructed(&self) {
        self.parent_constructed();
        // as GstVideoFilter: late frames are dropped unless the user turns QoS off
        self.obj().set_qos(true);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::param_specs);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        // properties that take effect when the element starts are the ones flagged mutable in READY
        if settings::ready_only(pspec) && self.state.lock().unwrap().is_some() {
            let shown = self.property(_id, pspec);
            gst::warning!(
                CAT,
                imp = self,
                "`{name}` can only change in the NULL or READY state: ignored"
            );
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                (
                    "property `{}` can only be changed in the NULL or READY state: the element keeps {:?} until it is stopped",
                    name,
                    shown
                )
            );
            return;
        }
        if !self.settings.lock().unwrap().set(name, value) {
            gst::warning!(CAT, imp = self, "unknown property {name}");
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let running = || self.running();
        if let Some(v) = self.settings.lock().unwrap().get(pspec.name()) {
            return v;
        }
        match pspec.name() {
            "feature-cache-active" => running().is_some_and(|r| r.feature_cache_active).to_value(),
            "window" => running().map(|r| r.window).unwrap_or(0).to_value(),
            "model-path" => running()
                .map(|r| r.model_path.display().to_string())
                .to_value(),
            "active-provider" => running()
                .map(|r| r.active_provider.as_str().to_string())
                .to_value(),
            "stats" => self.stats_structure().to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for MstGanSr {}

impl ElementImpl for MstGanSr {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "MST-GAN video super-resolution",
                "Filter/Effect/Converter/Video/Scaler",
                "Upscales video 2x/3x/4x with a multi-frame GAN (MST-GAN) on onnxruntime",
                "mstgansr developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // progressive only: fields of interlaced video would be upscaled as one picture
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(pixels::FORMATS)
                .field("interlace-mode", "progressive")
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::PausedToReady {
            // deactivating the pads waits for the streaming thread: end its inference first
            self.set_stopped(true);
        }
        self.parent_change_state(transition)
    }
}

impl BaseTransformImpl for MstGanSr {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.open()
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        // scale changes only in NULL or READY: a running element keeps the one it started with
        let scale = self.settings.lock().unwrap().scale as i32;
        let out = caps::scaled(caps, scale, direction == gst::PadDirection::Sink);
        gst::trace!(
            CAT,
            imp = self,
            "transformed {caps} ({direction:?}) into {out}"
        );
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        self.configure(incaps, outcaps)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_)
            | gst::EventView::Segment(_)
            | gst::EventView::StreamStart(_) => {
                // a run ends here: its frames leave before the event, in their own segment
                if let Err(e) = self.drain_and_push() {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "draining before {:?} failed: {e:?}",
                        event.type_()
                    );
                }
                self.parent_sink_event(event)
            }
            gst::EventView::FlushStop(_) => {
                self.set_stopped(false);
                let sticky: Vec<gst::Event> = {
                    let mut guard = self.state.lock().unwrap();
                    match guard.as_mut() {
                        Some(state) => {
                            if let Some(up) = state.upscaler.as_mut() {
                                up.runs().reset();
                            }
                            state.lateness.clear();
                            let held = state.order.flush();
                            held.into_iter().filter(|e| e.is_sticky()).collect()
                        }
                        None => Vec::new(),
                    }
                };
                self.timing.lock().unwrap().earliest = None;
                let ok = self.parent_sink_event(event);
                let src = self.obj().src_pad().clone();
                for e in sticky {
                    src.push_event(e);
                }
                ok
            }
            gst::EventView::Gap(g) => {
                let (pts, duration) = g.get();
                let max_gap = self.settings.lock().unwrap().continuity.max_gap;
                let brk = self.state.lock().unwrap().as_mut().and_then(|s| {
                    s.upscaler.as_mut()?.runs().gap(
                        pts.nseconds(),
                        duration.map(|d| d.nseconds()),
                        max_gap,
                    )
                });
                if brk.is_some() {
                    self.post_stats(|s| s.restarts += 1);
                    if let Err(e) = self.drain_and_push() {
                        gst::warning!(CAT, imp = self, "draining before a gap failed: {e:?}");
                    }
                }
                self.hold_or_forward(event)
            }
            gst::EventView::FlushStart(_) => {
                // before the parent: the streaming thread may be inside an inference
                self.set_stopped(true);
                self.parent_sink_event(event)
            }
            gst::EventView::Caps(_) => self.parent_sink_event(event),
            _ if event.is_serialized() => self.hold_or_forward(event),
            _ => self.parent_sink_event(event),
        }
    }

    fn src_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Qos(q) => {
                let (_, proportion, diff, timestamp) = q.get();
                let mut t = self.timing.lock().unwrap();
                t.proportion = proportion;
                t.earliest = timestamp.map(|ts| {
                    gst::ClockTime::from_nseconds(ts.nseconds().saturating_add_signed(diff))
                });
            }
            gst::EventView::Latency(l) => {
                self.timing.lock().unwrap().pipeline_latency = Some(l.latency());
            }
            _ => {}
        }
        self.parent_src_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Latency(q) if direction == gst::PadDirection::Src => {
                // no state lock here: an inference may hold it for seconds
                let Some(ours) = self.timing.lock().unwrap().reported else {
                    gst::debug!(CAT, imp = self, "latency unknown before caps");
                    return false;
                };
                let mut upstream = gst::query::Latency::new();
                if !self.obj().sink_pad().peer_query(&mut upstream) {
                    return false;
                }
                let (live, min, max) = upstream.result();
                gst::debug!(CAT, imp = self, "latency: upstream {min} + ours {ours}");
                q.set(live, min + ours, max.map(|m| m + ours));
                true
            }
            gst::QueryViewMut::AcceptCaps(q) if direction == gst::PadDirection::Sink => {
                let interlaced = q.caps().structure(0).is_some_and(|s| {
                    s.get::<&str>("interlace-mode")
                        .is_ok_and(|m| m != "progressive")
                });
                if interlaced && !self.interlace_warned.swap(true, Ordering::Relaxed) {
                    // an error, so that it is what gst-launch and applications report, not the
                    // demuxer's not-negotiated that follows
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("interlaced video is not supported: put deinterlace before mstgansr"),
                        ["refused caps {}", q.caps()]
                    );
                }
                BaseTransformImplExt::parent_query(self, direction, query)
            }
            _ => BaseTransformImplExt::parent_query(self, direction, query),
        }
    }

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        // input frames are read through VideoFrame, which honours padded strides
        query.add_allocation_meta::<gst_video::VideoMeta>(None);
        Ok(())
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        // as GstVideoFilter: downstream's pool if it offers one, else a video pool of our own
        let (caps, _) = query.get_owned();
        let caps =
            caps.ok_or_else(|| gst::loggable_error!(CAT, "allocation query without caps"))?;
        let info = VideoInfo::from_caps(&caps)
            .map_err(|_| gst::loggable_error!(CAT, "bad output caps {caps}"))?;
        let offered = query.allocation_pools().next();
        let (pool, size, min, max, update) = match offered {
            Some((pool, size, min, max)) => {
                (pool, (size as usize).max(info.size()), min, max, true)
            }
            None => (None, info.size(), 0, 0, false),
        };
        let pool = pool.unwrap_or_else(|| gst_video::VideoBufferPool::new().upcast());
        let mut config = pool.config();
        config.set_params(Some(&caps), size as u32, min, max);
        if pool.has_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META) {
            config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
        }
        if pool.set_config(config).is_err() {
            // a pool may adjust the config: take what it gives
            let config = pool.config();
            if config
                .validate_params(Some(&caps), size as u32, min, max)
                .is_err()
            {
                gst::debug!(CAT, imp = self, "pool changed its config");
            }
            let _ = pool.set_config(config);
        }
        if update {
            query.set_nth_allocation_pool(0, Some(&pool), size as u32, min, max);
        } else {
            query.add_allocation_pool(Some(&pool), size as u32, min, max);
        }
        self.parent_decide_allocation(query)
    }

    fn transform_meta<'a>(
        &self,
        outbuf: &mut gst::BufferRef,
        meta: gst::MetaRef<'a, gst::Meta>,
        inbuf: &'a gst::BufferRef,
    ) -> bool {
        // as videoscale: metas without tags, or about the picture but not its memory, are
        // copied; those tied to the size are scaled
        let tags = meta.tags();
        if tags.is_empty() {
            return true;
        }
        let ok = ["video", "colorspace", "orientation", "size"];
        if !tags.iter().all(|t| ok.contains(&t.as_str())) {
            return false;
        }
        if !meta.has_tag::<gst_video::video_meta::tags::Size>() {
            return true;
        }
        let obj = self.obj();
        let info = |pad: gst::Pad| {
            pad.current_caps()
                .and_then(|c| VideoInfo::from_caps(&c).ok())
        };
        if let (Some(in_info), Some(out_info)) =
            (info(obj.sink_pad().clone()), info(obj.src_pad().clone()))
        {
            let scale = gst_video::video_meta::VideoMetaTransformScale::new(&in_info, &out_info);
            let _ = meta.transform(outbuf, &scale);
        }
        let _ = inbuf;
        false
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        if let Some(buffer) = self.take_queued_buffer() {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            self.accept(state, buffer)?;
        }
        loop {
            match self.step()? {
                Step::Idle => return Ok(GenerateOutputSuccess::NoOutput),
                Step::Out(events, Some(buf)) => {
                    self.push_step(events, None)?;
                    return Ok(GenerateOutputSuccess::Buffer(buf));
                }
                // a dropped output: its events go out, then the next window
                Step::Out(events, None) => self.push_step(events, None)?,
            }
        }
    }

    fn transform_size(
        &self,
        _direction: gst::PadDirection,
        _caps: &gst::Caps,
        _size: usize,
        othercaps: &gst::Caps,
    ) -> Option<usize> {
        VideoInfo::from_caps(othercaps).ok().map(|i| i.size())
    }
}
