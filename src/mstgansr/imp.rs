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
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
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

use crate::convert;
use crate::engine::{
    ActiveProvider, Engine, EngineConfig, EngineError, FeatureCache, StopHandle, Users,
};
use crate::live::{self, Lateness};
use crate::memory;
use crate::models;
use crate::upscaler::{Arrival, Break, Continuity, Limits, Plan, Ready, Upscaler};

use super::pixels::{self, PixelPath};
use super::{ExecutionProvider, LateFrames, LiveTier, Precision, Variant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mstgansr",
        gst::DebugColorFlags::empty(),
        Some("MST-GAN video super-resolution"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    scale: u32,
    model_location: Option<String>,
    variant: Variant,
    execution_provider: ExecutionProvider,
    device_id: i32,
    precision: Precision,
    engine_cache_dir: Option<String>,
    threads: u32,
    feature_cache: bool,
    max_memory_mib: u64,
    tile_size: u32,
    tile_overlap: u32,
    batch_size: u32,
    continuity: Continuity,
    late_frames: LateFrames,
    live_tier: LiveTier,
    shared_engine: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            scale: 4,
            model_location: None,
            variant: Variant::Auto,
            execution_provider: ExecutionProvider::Auto,
            device_id: 0,
            precision: Precision::Auto,
            engine_cache_dir: None,
            threads: 0,
            feature_cache: true,
            max_memory_mib: 0,
            tile_size: 0,
            tile_overlap: 0,
            batch_size: 1,
            continuity: Continuity::default(),
            late_frames: LateFrames::Drop,
            live_tier: LiveTier::Auto,
            shared_engine: true,
        }
    }
}

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
    upscaler: Upscaler<FrameMeta>,
    caps: Option<Negotiated>,
    /// Serialized events that arrived behind frames still in the window, with the `seq` of
    /// the first frame they precede.
    held: VecDeque<(u64, gst::Event)>,
    next_seq: u64,
    /// An output was dropped: the next one is a discontinuity.
    discont_next: bool,
    /// PTS of the last frame received.
    newest_pts: Option<gst::ClockTime>,
    /// Outputs of a batch (with the events before each) not yet handed downstream.
    outbox: VecDeque<(Vec<gst::Event>, Option<gst::Buffer>)>,
    resize_scratch: Vec<f32>,
    /// Whether the outputs of the last two seconds came from the model.
    lateness: Lateness,
    /// The fast tier took over (at caps or on sustained lateness): it stays.
    stepped_down: bool,
}

/// The crop a live source's model is first timed on: 128 x 128 input pixels.
const ESTIMATE_PX: usize = 128 * 128;

/// What the element started with (read-only properties, caps transformation).
#[derive(Debug, Clone)]
struct Running {
    model_path: PathBuf,
    scale: u32,
    window: u32,
    active_provider: ActiveProvider,
    feature_cache_active: bool,
    /// Outside the state lock, which an inference holds: a flush or a stop must reach it.
    stop: StopHandle,
    threads: usize,
    /// Instances sharing this one's onnxruntime session (itself included).
    engine_users: Users,
}

/// Timing for latency and QoS, kept apart from the state so that neither the LATENCY query nor
/// a QoS event ever waits for an inference.
#[derive(Debug, Default)]
struct Timing {
    frame: Option<gst::ClockTime>,
    radius: u64,
    /// Windows per inference: the last of a batch waits for batch - 1 more frames.
    batch: u64,
    /// Smoothed time of one inference (extractor + fusion), conversions included.
    processing: Option<gst::ClockTime>,
    /// What the LATENCY query adds to upstream's; `None` until caps are known.
    reported: Option<gst::ClockTime>,
    upstream_live: bool,
    /// Upstream's minimum latency at caps (a jitterbuffer's, a decoder's): frames reach this
    /// element that much after their running time, so it is part of their deadline until the
    /// pipeline's latency is known.
    upstream_min: gst::ClockTime,
    /// The pipeline latency the sinks were given (LATENCY event).
    pipeline_latency: Option<gst::ClockTime>,
    /// From the last QoS event: outputs with an earlier running time are late.
    earliest: Option<gst::ClockTime>,
    proportion: f64,
}

impl Timing {
    /// The latency this element adds: (T-1)/2 frames of look-ahead and batch - 1 frames of
    /// batching, plus two inferences (the one running when a frame's window completes, and its
    /// own).
    fn ours(&self) -> Option<gst::ClockTime> {
        let p = self.processing.map_or(0, |p| p.nseconds());
        Some(gst::ClockTime::from_nseconds(live::latency(
            self.frame?.nseconds(),
            self.radius,
            self.batch,
            p,
        )))
    }
}

#[derive(Debug, Default, Clone)]
struct Stats {
    frames_in: u64,
    frames_out: u64,
    inferred: u64,
    dropped: u64,
    resized: u64,
    restarts: u64,
    scene_cuts: u64,
    full_windows: u64,
    /// Tiles per frame at the current caps.
    tiles: u64,
    /// Times a live source's stream moved to the fast tier.
    tier_changes: u64,
}

#[derive(Default)]
pub struct MstGanSr {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    running: Mutex<Option<Running>>,
    timing: Mutex<Timing>,
    stats: Mutex<Stats>,
    /// In/out video info for `transform_meta` (called inside output allocation).
    meta_infos: Mutex<Option<(VideoInfo, VideoInfo)>>,
    interlace_warned: Mutex<bool>,
    /// Tiles run since start, counted during an inference (which holds the state lock).
    tiles_done: Arc<AtomicU64>,
}

#[glib::object_subclass]
impl ObjectSubclass for MstGanSr {
    const NAME: &'static str = "GstMstGanSr";
    type Type = super::MstGanSr;
    type ParentType = gst_base::BaseTransform;
}

/// Multiplies (sink -> src) or divides (src -> sink) a width/height field by the scale.
fn scale_field(value: &glib::SendValue, scale: i32, up: bool) -> Option<glib::SendValue> {
    if let Ok(v) = value.get::<i32>() {
        return if up {
            v.checked_mul(scale).map(|x| x.to_send_value())
        } else if v % scale == 0 {
            Some((v / scale).to_send_value())
        } else {
            None
        };
    }
    if let Ok(r) = value.get::<gst::IntRange<i32>>() {
        let (lo, hi) = (r.min(), r.max());
        return if up {
            let hi = hi.saturating_mul(scale) / scale * scale;
            let lo = lo.saturating_mul(scale).min(hi);
            Some(if lo == hi {
                lo.to_send_value()
            } else {
                gst::IntRange::with_step(lo, hi, scale).to_send_value()
            })
        } else {
            let lo = (lo + scale - 1) / scale;
            let hi = hi / scale;
            match lo.cmp(&hi) {
                std::cmp::Ordering::Less => Some(gst::IntRange::new(lo, hi).to_send_value()),
                std::cmp::Ordering::Equal => Some(lo.to_send_value()),
                std::cmp::Ordering::Greater => None,
            }
        };
    }
    if let Ok(list) = value.get::<gst::List>() {
        let items: Vec<glib::SendValue> = list
            .iter()
            .filter_map(|v| scale_field(v, scale, up))
            .collect();
        return if items.is_empty() {
            None
        } else {
            Some(gst::List::new(items).to_send_value())
        };
    }
    None
}

fn frame_duration(info: &VideoInfo) -> Option<gst::ClockTime> {
    let f = info.fps();
    if f.numer() <= 0 {
        return None;
    }
    gst::ClockTime::SECOND.mul_div_floor(f.denom() as u64, f.numer() as u64)
}

/// What to do with the output of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Infer,
    /// An inference would finish this late (ns), a cheap resize would not: `late-frames`.
    TooLateToInfer(i64),
    /// Late by this much (ns) whatever is done: dropped.
    Late(i64),
}

/// What one step of output produced.
enum Step {
    /// No window is ready.
    Idle,
    /// Events to push, then maybe a buffer.
    Out(Vec<gst::Event>, Option<gst::Buffer>),
}

impl MstGanSr {
    /// Opens `model_path` with the settings' provider and precision; `precision=auto` says which
    /// INT8 file it loaded and why, or takes the FP32 file beside one that would lose quality on
    /// this CPU. Returns the file that runs.
    fn load_engine(
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

    /// With `live-tier=auto`, a live source whose frames the bundled model cannot keep up with
    /// (its warm-up `took` more than the live budget of a `frame`) runs the fast tier for the
    /// same kind of input instead: chosen once, before the first frame, and said on the bus.
    /// Returns the new model's warm-up time and plan, `None` when the model stays.
    fn step_down_if_slow(
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
    fn step_down_on_lateness(
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
        state.upscaler.finish();
        let t = state.upscaler.window_len();
        while let Some(batch) = state.upscaler.take_batch() {
            let verdicts = batch
                .iter()
                .map(|w| (Verdict::TooLateToInfer(0), w.distinct() == t))
                .collect();
            self.queue_outputs(state, &batch, verdicts, policy)?;
        }
        let size = state.upscaler.size();
        let limits = self.limits(&settings);
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
    fn step_down(
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
        }
        self.timing.lock().unwrap().radius = (engine.info().window / 2) as u64;
        self.post_stats(|s| {
            s.tiles = plan.tiles.len() as u64;
            s.tier_changes += 1;
        });
        state.upscaler = upscaler;
        Ok(Some((fast_took, plan)))
    }

    /// The memory budget and tiling the settings allow now.
    fn limits(&self, settings: &Settings) -> Limits {
        let bound = memory::bound(settings.max_memory_mib << 20);
        Limits {
            tile: settings.tile_size as usize,
            overlap: settings.tile_overlap as usize,
            batch: settings.batch_size as usize,
            memory: bound.as_ref().map_or(u64::MAX, |b| b.bytes),
            memory_source: bound.as_ref().map_or("nothing", |b| b.source),
        }
    }

    fn resolve_model(&self, settings: &Settings) -> Result<(PathBuf, bool), gst::ErrorMessage> {
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
                    match settings.variant {
                        Variant::Auto => "",
                        Variant::Perceptual => "perceptual",
                        Variant::Fidelity => "fidelity",
                        Variant::Real => "real",
                        Variant::Compressed => "real or fidelity",
                        Variant::Fast => "fast",
                        Variant::FastCompressed => "fast-real or fast",
                    },
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

    fn post_stats(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap());
    }

    /// Converts an input buffer, keeps its metadata and adds it to the window.
    fn accept(&self, state: &mut State, buffer: gst::Buffer) -> Result<(), gst::FlowError> {
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
        let seq = state.next_seq;
        state.next_seq += 1;
        let meta = FrameMeta {
            seq,
            holder: Some(holder),
            alpha,
        };
        let brk = state
            .upscaler
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
    fn verdict(&self, pts: Option<gst::ClockTime>) -> Verdict {
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
        let t = self.timing.lock().unwrap();
        if let Some(earliest) = t.earliest
            && rt <= earliest
        {
            return Verdict::Late(earliest.nseconds() as i64 - rt.nseconds() as i64);
        }
        if !t.upstream_live {
            return Verdict::Infer;
        }
        let (Some(clock), Some(base)) = (obj.clock(), obj.base_time()) else {
            return Verdict::Infer;
        };
        // before the sinks have prerolled the pipeline's latency is unknown (a sink answers the
        // query only once it has a buffer): upstream's and ours until then
        let latency = t
            .pipeline_latency
            .or(t.ours().map(|o| o + t.upstream_min))
            .unwrap_or(gst::ClockTime::ZERO);
        let now = clock.time().saturating_sub(base);
        let due = rt + latency;
        let inferred_at = now + t.processing.unwrap_or_default();
        if now > due {
            Verdict::Late((now - due).nseconds() as i64)
        } else if inferred_at > due {
            Verdict::TooLateToInfer((inferred_at - due).nseconds() as i64)
        } else {
            Verdict::Infer
        }
    }

    /// Live, with QoS, and frames wait upstream: the newest one to arrive was captured more
    /// than two frame durations ago (a leaky queue's backlog after a slow inference).
    fn backlogged(&self, newest: Option<gst::ClockTime>) -> bool {
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
        let t = self.timing.lock().unwrap();
        let Some(frame) = t.frame.filter(|f| *f > gst::ClockTime::ZERO) else {
            return false;
        };
        t.upstream_live && clock.time().saturating_sub(base) > rt + frame * 2
    }

    /// An output buffer from the base class's allocation path (the negotiated pool), carrying
    /// the centre frame's timestamps, flags and metas, filled from `rgb` (`[3, sH, sW]`).
    fn make_output(
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

    /// Takes the held events that must go out before the frame `seq`.
    fn events_before(state: &mut State, seq: u64) -> Vec<gst::Event> {
        let mut out = Vec::new();
        while state.held.front().is_some_and(|(s, _)| *s <= seq) {
            out.push(state.held.pop_front().unwrap().1);
        }
        out
    }

    /// What happens to a window's output: the verdict of QoS, and whether its window holds
    /// T distinct frames.
    fn judge(&self, state: &State, win: &Ready<FrameMeta>) -> (Verdict, bool) {
        let full = win.distinct() == state.upscaler.window_len();
        let pts = win.centre().meta.holder.as_ref().and_then(|b| b.pts());
        let verdict = self.verdict(pts);
        if verdict == Verdict::Infer && !full && self.backlogged(state.newest_pts) {
            // more frames are waiting and most will go uninferred: spend the inference on a
            // window of T real neighbours, not on one that replicates the edge of a run
            return (Verdict::TooLateToInfer(0), full);
        }
        (verdict, full)
    }

    /// The next output (with the events that go before it); runs the next batch of windows
    /// when none is waiting.
    fn step(&self, state: &mut State) -> Result<Step, gst::FlowError> {
        if let Some((events, out)) = state.outbox.pop_front() {
            return Ok(Step::Out(events, out));
        }
        let Some(batch) = state.upscaler.take_batch() else {
            return Ok(Step::Idle);
        };
        let (policy, tier) = {
            let s = self.settings.lock().unwrap();
            (s.late_frames, s.live_tier)
        };
        let mut verdicts: Vec<(Verdict, bool)> =
            batch.iter().map(|w| self.judge(state, w)).collect();
        if policy == LateFrames::Resize {
            let (live, processing) = {
                let t = self.timing.lock().unwrap();
                (t.upstream_live, t.processing)
            };
            let processing = processing.map(|p| std::time::Duration::from_nanos(p.nseconds()));
            if live && !live::resize_may_infer(processing) {
                for v in verdicts.iter_mut().filter(|(v, _)| *v == Verdict::Infer) {
                    v.0 = Verdict::TooLateToInfer(0);
                }
            }
        }
        let run: Vec<Ready<FrameMeta>> = batch
            .iter()
            .zip(&verdicts)
            .filter(|(_, (v, _))| *v == Verdict::Infer)
            .map(|(w, _)| w.clone())
            .collect();
        if !run.is_empty() {
            let started = Instant::now();
            if let Err(e) = state.upscaler.run(&run) {
                if matches!(e, EngineError::Stopped) {
                    gst::debug!(CAT, imp = self, "inference stopped by a flush or a stop");
                    return Err(gst::FlowError::Flushing);
                }
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("upscaling failed: {e}"),
                    ["model {:?}", self.settings.lock().unwrap().model_location]
                );
                return Err(gst::FlowError::Error);
            }
            self.note_processing(started.elapsed());
        }
        let mut sustained = false;
        for (v, _) in &verdicts {
            sustained |= state.lateness.record(*v == Verdict::Infer);
        }
        self.queue_outputs(state, &batch, verdicts, policy)?;
        if sustained && tier == LiveTier::Auto && !state.stepped_down {
            self.step_down_on_lateness(state, policy)?;
        }
        let (events, out) = state.outbox.pop_front().expect("a batch has windows");
        Ok(Step::Out(events, out))
    }

    /// Makes each window's output by its verdict (the model's output for the inferred ones, in
    /// the order they ran; a bilinear upscale or a drop for late ones) and queues it with the
    /// events that go before it.
    fn queue_outputs(
        &self,
        state: &mut State,
        batch: &[Ready<FrameMeta>],
        verdicts: Vec<(Verdict, bool)>,
        policy: LateFrames,
    ) -> Result<(), gst::FlowError> {
        let State {
            caps,
            upscaler,
            resize_scratch,
            discont_next,
            ..
        } = state;
        let Some(neg) = caps.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let mut ran = 0;
        let mut outs = Vec::with_capacity(batch.len());
        for (win, (verdict, full)) in batch.iter().zip(verdicts) {
            let meta = &win.centre().meta;
            let out = match verdict {
                Verdict::Infer => {
                    let b = self.make_output(neg, meta, upscaler.output(ran))?;
                    ran += 1;
                    self.post_stats(|s| {
                        s.inferred += 1;
                        s.full_windows += full as u64;
                    });
                    Some(b)
                }
                Verdict::TooLateToInfer(_) if policy == LateFrames::Resize => {
                    let (w, h) = upscaler.size();
                    let s = upscaler.scale();
                    resize_scratch.resize(3 * w * h * s * s, 0.0);
                    convert::upscale_bilinear(&win.centre().rgb, w, h, s, resize_scratch);
                    self.post_stats(|st| st.resized += 1);
                    Some(self.make_output(neg, meta, resize_scratch)?)
                }
                Verdict::TooLateToInfer(late_ns) | Verdict::Late(late_ns) => {
                    *discont_next = true;
                    self.post_qos_drop(meta, late_ns);
                    None
                }
            };
            let out = out.map(|mut b| {
                if std::mem::take(discont_next) {
                    b.make_mut().set_flags(gst::BufferFlags::DISCONT);
                }
                self.post_stats(|s| s.frames_out += 1);
                b
            });
            outs.push((meta.seq, out));
        }
        for (seq, out) in outs {
            let events = Self::events_before(state, seq);
            state.outbox.push_back((events, out));
        }
        Ok(())
    }

    fn post_qos_drop(&self, meta: &FrameMeta, late_ns: i64) {
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
    fn note_processing(&self, took: std::time::Duration) {
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
    fn refresh_latency(&self, t: &mut Timing) -> bool {
        let Some(new) = t.ours() else {
            return false;
        };
        let moved = live::latency_moved(t.reported.map(|r| r.nseconds()), new.nseconds());
        if moved {
            t.reported = Some(new);
        }
        moved
    }

    fn announce_latency(&self) {
        let obj = self.obj();
        gst::debug!(
            CAT,
            imp = self,
            "latency changed: posting a Latency message"
        );
        let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
    }

    /// Pushes one step's events and buffer downstream (outside the state lock).
    fn push_step(
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
    fn drain_and_push(&self) -> Result<(), gst::FlowError> {
        match self.state.lock().unwrap().as_mut() {
            Some(state) => state.upscaler.finish(),
            None => return Ok(()),
        }
        loop {
            let step = match self.state.lock().unwrap().as_mut() {
                Some(state) => self.step(state)?,
                None => return Ok(()),
            };
            match step {
                Step::Idle => break,
                Step::Out(events, out) => self.push_step(events, out)?,
            }
        }
        let rest: Vec<gst::Event> = match self.state.lock().unwrap().as_mut() {
            Some(state) => state.held.drain(..).map(|(_, e)| e).collect(),
            None => return Ok(()),
        };
        self.push_step(rest, None)
    }

    /// Holds a serialized event behind the frames still in the window, or forwards it when
    /// none is.
    fn hold_or_forward(&self, event: gst::Event) -> bool {
        {
            let mut guard = self.state.lock().unwrap();
            if let Some(state) = guard.as_mut()
                && state.upscaler.pending() + state.outbox.len() > 0
            {
                gst::log!(
                    CAT,
                    imp = self,
                    "holding {:?} behind {} frames",
                    event.type_(),
                    state.upscaler.pending()
                );
                let seq = state.next_seq;
                state.held.push_back((seq, event));
                return true;
            }
        }
        self.parent_sink_event(event)
    }

    /// Stops (or lets run again) the inference in progress and every later one, without the
    /// state lock that inference holds.
    fn set_stopped(&self, stopped: bool) {
        if let Some(r) = self.running.lock().unwrap().as_ref() {
            if stopped {
                r.stop.stop();
            } else {
                r.stop.resume();
            }
        }
    }

    fn stats_structure(&self) -> gst::Structure {
        let s = self.stats.lock().unwrap().clone();
        let tiles_done = self.tiles_done.load(Ordering::Relaxed);
        let engine_users = self
            .running
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |r| r.engine_users.count());
        let t = self.timing.lock().unwrap();
        gst::Structure::builder("application/x-mstgansr-stats")
            .field("frames-in", s.frames_in)
            .field("frames-out", s.frames_out)
            .field("inferred", s.inferred)
            .field("dropped", s.dropped)
            .field("resized", s.resized)
            .field("restarts", s.restarts)
            .field("scene-cuts", s.scene_cuts)
            .field("full-windows", s.full_windows)
            .field("tiles", s.tiles)
            .field("tiles-done", tiles_done)
            .field("tier-changes", s.tier_changes)
            .field("engine-users", engine_users as u64)
            .field(
                "processing-time",
                t.processing.map(|p| p.nseconds()).unwrap_or(0),
            )
            .field("latency", t.reported.map(|p| p.nseconds()).unwrap_or(0))
            .build()
    }
}

impl ObjectImpl for MstGanSr {
    fn constructed(&self) {
        self.parent_constructed();
        // as GstVideoFilter: late frames are dropped unless the user turns QoS off
        self.obj().set_qos(true);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecUInt::builder("scale")
                    .nick("Scale")
                    .blurb("Upscaling factor: 2, 3 or 4 (output is scale x the input width and height)")
                    .minimum(2)
                    .maximum(4)
                    .default_value(d.scale)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model-location")
                    .nick("Model location")
                    .blurb(
                        "MST-GAN ONNX model file; unset = the bundled model for the scale \
                         (next to the plugin, or in $MSTGANSR_MODEL_DIR)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("variant", d.variant)
                    .nick("Variant")
                    .blurb(
                        "Which bundled model (without model-location): perceptual or fidelity for \
                         clean input, real for compressed camera and web video, fast for live \
                         cameras on a CPU",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", d.execution_provider)
                    .nick("Execution provider")
                    .blurb("onnxruntime execution provider; auto = best available, CPU as the last resort")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("Device ID")
                    .blurb("GPU index for the CUDA and TensorRT providers")
                    .minimum(0)
                    .default_value(d.device_id)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("precision", d.precision)
                    .nick("Precision")
                    .blurb("Numeric precision: picks the bundled model file (int8 / fp32) and TensorRT's kernels")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("engine-cache-dir")
                    .nick("Engine cache directory")
                    .blurb("Folder for TensorRT engines and timing caches (unset = rebuild each start)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb(
                        "CPU threads onnxruntime may use per inference (0 = one per core; more \
                         than the cores available are capped to them, with a warning)",
                    )
                    .default_value(d.threads)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("feature-cache")
                    .nick("Feature cache")
                    .blurb(
                        "Run the model's per-frame feature extractor once per frame and reuse it in \
                         every window the frame is in (needs the model's .extractor.onnx and \
                         .fusion.onnx next to it; same output, less work)",
                    )
                    .default_value(d.feature_cache)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-memory")
                    .nick("Maximum memory")
                    .blurb(
                        "MiB the process may hold at its peak (peak RSS, onnxruntime's arena \
                         included; 0 = no limit of its own): tiles are sized to fit what the \
                         process does not already hold; the element also respects free memory, \
                         the cgroup limit and ulimit -v",
                    )
                    .default_value(d.max_memory_mib)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-size")
                    .nick("Tile size")
                    .blurb(
                        "Frames are upscaled in tiles of at most this many input pixels a side, \
                         each over the whole window (0 = automatic: the whole frame, or tiles \
                         whose inference fits the memory bound)",
                    )
                    .default_value(d.tile_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-overlap")
                    .nick("Tile overlap")
                    .blurb(
                        "Input pixels of context around each tile (rounded up to 8, at most 64), \
                         cut off after inference so tiles meet without seams (0 = automatic, 32)",
                    )
                    .default_value(d.tile_overlap)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb(
                        "Windows per inference (offline throughput); each adds a frame of latency, \
                         so keep 1 for live sources",
                    )
                    .minimum(1)
                    .maximum(16)
                    .default_value(d.batch_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-gap")
                    .nick("Maximum gap")
                    .blurb(
                        "Largest PTS step, in frame durations, that continues the window (frames \
                         dropped by a leaky queue); a larger jump starts a clean window",
                    )
                    .minimum(1)
                    .maximum(1000)
                    .default_value(d.continuity.max_gap)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("scene-cut-threshold")
                    .nick("Scene-cut threshold")
                    .blurb(
                        "Scene-cut score (0-100, FFmpeg scdet's) at which a clean window starts, so \
                         no output borrows from across a cut; 0 = detection off",
                    )
                    .minimum(0.0)
                    .maximum(100.0)
                    .default_value(d.continuity.scene_cut_threshold)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("late-frames", d.late_frames)
                    .nick("Late frames")
                    .blurb(
                        "With qos: what happens to a frame whose output would be late: drop it \
                         before inference, or upscale it bilinearly so the frame rate holds",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("live-tier", d.live_tier)
                    .nick("Live tier")
                    .blurb(
                        "auto: a live source whose frames the model cannot keep up with (its \
                         warm-up takes over 80 % of a frame) runs the fast tier for the same kind \
                         of input instead, and says so; pinned: always the model asked for",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("shared-engine")
                    .nick("Shared engine")
                    .blurb(
                        "Instances in one process that load the same model file with the same \
                         provider, device, precision, threads and feature cache share one \
                         onnxruntime session (one copy of the weights, one thread pool, one \
                         arena); inferences take turns. Windows, caches, QoS and latency stay \
                         per instance; the last one frees the session",
                    )
                    .default_value(true)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("feature-cache-active")
                    .nick("Feature cache active")
                    .blurb("Whether the feature cache runs (known once started)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("window")
                    .nick("Window")
                    .blurb("Frames the model sees per output (from the model; known once started)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("model-path")
                    .nick("Model path")
                    .blurb("The model file that was loaded (known once started)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("active-provider")
                    .nick("Active provider")
                    .blurb("Execution provider that actually runs the model (known once started)")
                    .read_only()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "frames-in, frames-out, inferred, dropped (QoS), resized (QoS), restarts \
                         (clean windows), scene-cuts, full-windows (inferred from T distinct \
                         frames), tiles (per frame), tiles-done (so far: a frame's progress), \
                         tier-changes (a live source moved to the fast tier), engine-users \
                         (instances sharing this one's session, itself included), \
                         processing-time and latency (ns)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        // properties that take effect when the element starts are the ones flagged mutable in READY
        if pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY)
            && self.running.lock().unwrap().is_some()
        {
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
        let mut s = self.settings.lock().unwrap();
        match name {
            "scale" => s.scale = value.get().expect("type checked upstream"),
            "model-location" => s.model_location = value.get().expect("type checked upstream"),
            "variant" => s.variant = value.get().expect("type checked upstream"),
            "execution-provider" => {
                s.execution_provider = value.get().expect("type checked upstream")
            }
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "precision" => s.precision = value.get().expect("type checked upstream"),
            "engine-cache-dir" => s.engine_cache_dir = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "feature-cache" => s.feature_cache = value.get().expect("type checked upstream"),
            "max-memory" => s.max_memory_mib = value.get().expect("type checked upstream"),
            "tile-size" => s.tile_size = value.get().expect("type checked upstream"),
            "tile-overlap" => s.tile_overlap = value.get().expect("type checked upstream"),
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "max-gap" => s.continuity.max_gap = value.get().expect("type checked upstream"),
            "scene-cut-threshold" => {
                s.continuity.scene_cut_threshold = value.get().expect("type checked upstream")
            }
            "late-frames" => s.late_frames = value.get().expect("type checked upstream"),
            "live-tier" => s.live_tier = value.get().expect("type checked upstream"),
            "shared-engine" => s.shared_engine = value.get().expect("type checked upstream"),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let running = || self.running.lock().unwrap().clone();
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "scale" => s.scale.to_value(),
            "model-location" => s.model_location.to_value(),
            "variant" => s.variant.to_value(),
            "execution-provider" => s.execution_provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "precision" => s.precision.to_value(),
            "engine-cache-dir" => s.engine_cache_dir.to_value(),
            "threads" => s.threads.to_value(),
            "feature-cache" => s.feature_cache.to_value(),
            "max-memory" => s.max_memory_mib.to_value(),
            "tile-size" => s.tile_size.to_value(),
            "tile-overlap" => s.tile_overlap.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "max-gap" => s.continuity.max_gap.to_value(),
            "scene-cut-threshold" => s.continuity.scene_cut_threshold.to_value(),
            "late-frames" => s.late_frames.to_value(),
            "live-tier" => s.live_tier.to_value(),
            "shared-engine" => s.shared_engine.to_value(),
            "feature-cache-active" => running().is_some_and(|r| r.feature_cache_active).to_value(),
            "window" => running().map(|r| r.window).unwrap_or(0).to_value(),
            "model-path" => running()
                .map(|r| r.model_path.display().to_string())
                .to_value(),
            "active-provider" => running()
                .map(|r| r.active_provider.as_str().to_string())
                .to_value(),
            "stats" => {
                drop(s);
                self.stats_structure().to_value()
            }
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
        let upscaler = Upscaler::new(engine).with_progress(self.tiles_done.clone());
        let engine = upscaler.engine();
        *self.running.lock().unwrap() = Some(Running {
            model_path: model_path.clone(),
            scale: info.scale,
            window: info.window as u32,
            active_provider: engine.active_provider(),
            feature_cache_active: *engine.feature_cache() == FeatureCache::Active,
            stop: engine.stop_handle(),
            threads,
            engine_users: engine.users_handle(),
        });
        *self.timing.lock().unwrap() = Timing {
            radius: (info.window / 2) as u64,
            proportion: 1.0,
            ..Timing::default()
        };
        *self.stats.lock().unwrap() = Stats::default();
        *self.state.lock().unwrap() = Some(State {
            upscaler,
            caps: None,
            held: VecDeque::new(),
            next_seq: 0,
            discont_next: false,
            newest_pts: None,
            outbox: VecDeque::new(),
            resize_scratch: Vec::new(),
            lateness: Lateness::new(None),
            stepped_down: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        *self.running.lock().unwrap() = None;
        *self.meta_infos.lock().unwrap() = None;
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        // a running element keeps the scale it started with
        let scale = match self.running.lock().unwrap().as_ref() {
            Some(r) => r.scale,
            None => self.settings.lock().unwrap().scale,
        } as i32;
        let up = direction == gst::PadDirection::Sink;
        let mut out = gst::Caps::new_empty();
        {
            let out = out.get_mut().expect("new caps are writable");
            for (s, features) in caps.iter_with_features() {
                let mut s = s.to_owned();
                let mut ok = true;
                for field in ["width", "height"] {
                    if let Some(v) = s.value(field).ok().cloned() {
                        match scale_field(&v, scale, up) {
                            Some(nv) => s.set_value(field, nv),
                            None => ok = false,
                        }
                    }
                }
                if ok {
                    out.append_structure_full(s, Some(features.to_owned()));
                }
            }
        }
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
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        let s = state.upscaler.scale() as u32;
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
        let limits = self.limits(&settings);
        let plan = match state
            .upscaler
            .configure(w, h, frame.map(|f| f.nseconds()), limits)
        {
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
        for note in
            crate::tiling::bounded(settings.tile_size as usize, settings.tile_overlap as usize)
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
        if let Some(r) = self.running.lock().unwrap().as_mut() {
            r.feature_cache_active = *state.upscaler.engine().feature_cache()
                == FeatureCache::Active
                && plan.feature_cache;
        }
        // a live pipeline needs the processing time in its latency before the first frame;
        // measure it on a warm session. The source's first frames wait meanwhile: a model far
        // too slow for its frame rate is told from a crop (CPU: other providers build a graph
        // per shape), not from two whole frames (2.4 s at 640x360 for the x2 real model)
        let too_slow = match frame {
            Some(f) if live && state.upscaler.engine().active_provider() == ActiveProvider::Cpu => {
                match state.upscaler.estimate(ESTIMATE_PX) {
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
            match state.upscaler.warm_up() {
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
        let (warm, plan) = match (warm, frame) {
            (Some(took), Some(frame)) => {
                match self.step_down_if_slow(state, &settings, (w, h), frame, limits, took)? {
                    Some((d, p)) => (Some(d), p),
                    None => (Some(took), plan),
                }
            }
            _ => (warm, plan),
        };
        *self.meta_infos.lock().unwrap() = Some((in_info.clone(), out_info.clone()));
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
                            state.upscaler.reset();
                            state.lateness.clear();
                            state.outbox.clear();
                            state.discont_next = false;
                            state
                                .held
                                .drain(..)
                                .map(|(_, e)| e)
                                .filter(|e| e.is_sticky())
                                .collect()
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
                    s.upscaler
                        .gap(pts.nseconds(), duration.map(|d| d.nseconds()), max_gap)
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
                if interlaced
                    && !std::mem::replace(&mut *self.interlace_warned.lock().unwrap(), true)
                {
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
        if let Some((in_info, out_info)) = self.meta_infos.lock().unwrap().as_ref() {
            let scale = gst_video::video_meta::VideoMetaTransformScale::new(in_info, out_info);
            let _ = meta.transform(outbuf, &scale);
        }
        let _ = inbuf;
        false
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        loop {
            let step = {
                let mut guard = self.state.lock().unwrap();
                let Some(state) = guard.as_mut() else {
                    return Err(gst::FlowError::Flushing);
                };
                if let Some(buffer) = self.take_queued_buffer() {
                    self.accept(state, buffer)?;
                }
                self.step(state)?
            };
            match step {
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
