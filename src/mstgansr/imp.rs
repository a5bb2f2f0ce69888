// SPDX-License-Identifier: MIT OR Apache-2.0

/**
 * SECTION:element-mstgansr
 *
 * Upscales raw video 2x, 3x or 4x with the MST-GAN multi-frame generator on onnxruntime.
 * Each output frame is computed from a window of T neighbouring input frames (T from the
 * model), so output lags input by (T-1)/2 frames; the element reports that in the LATENCY
 * query, drains every pending frame on EOS and starts clean after a flush, a caps change or a
 * DISCONT buffer. With `feature-cache` (default) and a model that ships its extractor/fusion
 * pair, each frame's features are computed once and reused in all T windows it is part of.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! queue ! \
 *     mstgansr scale=4 ! queue ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * ]|
 */
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoInfo};

use crate::convert::{self, AlphaSource, Layout, Planes, PlanesMut, YuvMatrix};
use crate::engine::{self, Engine, EngineConfig, EngineError, FeatureCache, Features};
use crate::models;
use crate::window::FrameWindow;

use super::{ExecutionProvider, Precision};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mstgansr",
        gst::DebugColorFlags::empty(),
        Some("MST-GAN video super-resolution"),
    )
});

const FORMATS: [VideoFormat; 10] = [
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

const DEFAULT_SCALE: u32 = 4;

#[derive(Debug, Clone)]
struct Settings {
    scale: u32,
    model_location: Option<String>,
    execution_provider: ExecutionProvider,
    device_id: i32,
    precision: Precision,
    engine_cache_dir: Option<String>,
    threads: u32,
    feature_cache: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            scale: DEFAULT_SCALE,
            model_location: None,
            execution_provider: ExecutionProvider::Auto,
            device_id: 0,
            precision: Precision::Auto,
            engine_cache_dir: None,
            threads: 0,
            feature_cache: true,
        }
    }
}

/// What a received frame keeps until its last window has been run.
struct Frame {
    rgb: Vec<f32>,
    buffer: gst::Buffer,
    /// Extractor output, computed by the first window that needs it (with the feature cache).
    features: OnceLock<Features>,
}

struct Negotiated {
    in_info: VideoInfo,
    out_info: VideoInfo,
    layout: Layout,
    matrix: YuvMatrix,
}

struct State {
    engine: Engine,
    scale: u32,
    window: FrameWindow<Frame>,
    caps: Option<Negotiated>,
    /// Outputs computed but not yet handed to the base class (several after a DISCONT drain).
    ready: VecDeque<gst::Buffer>,
    input_scratch: Vec<f32>,
    output_scratch: Vec<f32>,
}

#[derive(Default)]
pub struct MstGanSr {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Read-only properties, kept apart so reading them never waits for an inference.
    window_len: Mutex<u32>,
    active_provider: Mutex<String>,
    feature_cache_active: Mutex<bool>,
}

#[glib::object_subclass]
impl ObjectSubclass for MstGanSr {
    const NAME: &'static str = "GstMstGanSr";
    type Type = super::MstGanSr;
    type ParentType = gst_base::BaseTransform;
}

fn layout_of(format: VideoFormat) -> Option<Layout> {
    let packed = |r, g, b, alpha, bpp| Layout::Packed {
        r,
        g,
        b,
        alpha,
        bpp,
    };
    Some(match format {
        VideoFormat::Rgb => packed(0, 1, 2, None, 3),
        VideoFormat::Bgr => packed(2, 1, 0, None, 3),
        VideoFormat::Rgba => packed(0, 1, 2, Some(3), 4),
        VideoFormat::Bgra => packed(2, 1, 0, Some(3), 4),
        VideoFormat::Rgbx => packed(0, 1, 2, None, 4),
        VideoFormat::Bgrx => packed(2, 1, 0, None, 4),
        VideoFormat::Argb => packed(1, 2, 3, Some(0), 4),
        VideoFormat::Abgr => packed(3, 2, 1, Some(0), 4),
        VideoFormat::I420 => Layout::I420,
        VideoFormat::Nv12 => Layout::Nv12,
        _ => return None,
    })
}

fn matrix_of(info: &VideoInfo) -> YuvMatrix {
    let c = info.colorimetry();
    let base = match c.matrix() {
        gst_video::VideoColorMatrix::Bt709 => YuvMatrix::BT709,
        gst_video::VideoColorMatrix::Bt601 => YuvMatrix::BT601,
        // unknown: BT.709 for HD, BT.601 for SD, as videoconvert assumes
        _ if info.height() >= 720 => YuvMatrix::BT709,
        _ => YuvMatrix::BT601,
    };
    YuvMatrix {
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
        ..base
    }
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

/// Rough peak memory of one inference (activations dominate), to refuse sizes that cannot fit.
fn estimated_bytes(width: usize, height: usize, window: usize, scale: usize) -> u64 {
    let px = (width * height) as u64;
    // T frames of 32-ch features at 3 pyramid levels, ~6 live 48-ch maps, HR output and skip
    px * 4 * (window as u64 * 32 * 2 + 48 * 6 + 3 * (scale * scale) as u64 * 4)
}

fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl MstGanSr {
    fn resolve_model(&self, settings: &Settings) -> Result<(PathBuf, bool), gst::ErrorMessage> {
        if let Some(loc) = &settings.model_location {
            return Ok((PathBuf::from(loc), false));
        }
        let plugin_file = self
            .obj()
            .factory()
            .and_then(|f| f.plugin())
            .and_then(|p| p.filename());
        let precision = match settings.precision {
            Precision::Int8 => "int8",
            Precision::Fp32 | Precision::Fp16 => "fp32",
            // GPUs take the FP32 model (TensorRT builds FP16 kernels from it); INT8 is the
            // fast path on CPU, which is also where `auto` lands without onnxruntime-gpu
            Precision::Auto
                if matches!(
                    settings.execution_provider,
                    ExecutionProvider::Cuda | ExecutionProvider::TensorRt
                ) =>
            {
                "fp32"
            }
            Precision::Auto => "auto",
        };
        match models::resolve(settings.scale, precision, plugin_file.as_deref()) {
            Ok(r) => Ok((r.path, r.is_fixture)),
            Err(tried) => Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                [
                    "no bundled x{} model found (looked for {}); set model-location or {}",
                    settings.scale,
                    tried
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    models::MODEL_DIR_ENV
                ]
            )),
        }
    }

    /// Runs the model on one window and returns the output buffer.
    fn process(
        &self,
        state: &mut State,
        win: &[Arc<Frame>],
    ) -> Result<gst::Buffer, gst::FlowError> {
        let Some(neg) = state.caps.as_ref() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let (w, h) = (neg.in_info.width() as usize, neg.in_info.height() as usize);
        let plane = 3 * w * h;
        state.input_scratch.resize(win.len() * plane, 0.0);
        for (i, f) in win.iter().enumerate() {
            state.input_scratch[i * plane..(i + 1) * plane].copy_from_slice(&f.rgb);
        }
        let s = state.scale as usize;
        state.output_scratch.resize(plane * s * s, 0.0);
        let res = if *state.engine.feature_cache() == FeatureCache::Active {
            Self::run_cached(
                &mut state.engine,
                &state.input_scratch,
                &mut state.output_scratch,
                win,
                (w, h),
            )
        } else {
            state
                .engine
                .run(&state.input_scratch, w, h, &mut state.output_scratch)
        };
        if let Err(e) = res {
            gst::element_imp_error!(self, gst::StreamError::Failed, ["{e}"]);
            return Err(gst::FlowError::Error);
        }
        let centre = &win[win.len() / 2].buffer;
        let out_info = &neg.out_info;
        let mut out = gst::Buffer::with_size(out_info.size()).map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NoSpaceLeft,
                ["cannot allocate {} bytes", out_info.size()]
            );
            gst::FlowError::Error
        })?;
        {
            let outb = out.get_mut().ok_or(gst::FlowError::Error)?;
            outb.set_pts(centre.pts());
            outb.set_dts(centre.dts());
            outb.set_duration(centre.duration());
            outb.set_offset(centre.offset());
            outb.set_offset_end(centre.offset_end());
            let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(outb, out_info)
                .map_err(|_| gst::FlowError::Error)?;
            let n_planes = vf.n_planes() as usize;
            let strides: Vec<usize> = vf.plane_stride()[..n_planes]
                .iter()
                .map(|s| *s as usize)
                .collect();
            let in_frame =
                gst_video::VideoFrameRef::from_buffer_ref_readable(centre.as_ref(), &neg.in_info)
                    .map_err(|_| gst::FlowError::Error)?;
            let alpha = match neg.layout {
                Layout::Packed {
                    alpha: Some(offset),
                    bpp,
                    ..
                } => Some(AlphaSource {
                    data: in_frame.plane_data(0).map_err(|_| gst::FlowError::Error)?,
                    stride: in_frame.plane_stride()[0] as usize,
                    offset,
                    bpp,
                    width: w,
                    height: h,
                }),
                _ => None,
            };
            let mut dst = PlanesMut {
                data: vf.planes_data_mut().into_iter().take(n_planes).collect(),
                strides,
            };
            convert::from_rgb_planar(
                neg.layout,
                neg.matrix,
                &state.output_scratch,
                w * s,
                h * s,
                &mut dst,
                alpha,
            );
        }
        Ok(out)
    }

    /// The window through the fusion graph, running the extractor only on frames that have no
    /// features yet (the newest one, in steady state).
    fn run_cached(
        engine: &mut Engine,
        input: &[f32],
        output: &mut [f32],
        win: &[Arc<Frame>],
        (w, h): (usize, usize),
    ) -> Result<(), EngineError> {
        for f in win {
            if f.features.get().is_none() {
                let feats = engine.extract(&f.rgb, w, h)?;
                let _ = f.features.set(feats);
            }
        }
        let feats: Vec<&Features> = win.iter().filter_map(|f| f.features.get()).collect();
        engine.run_cached(input, &feats, w, h, output)
    }

    fn to_frame(&self, neg: &Negotiated, buffer: gst::Buffer) -> Result<Frame, gst::FlowError> {
        let (w, h) = (neg.in_info.width() as usize, neg.in_info.height() as usize);
        let mut rgb = vec![0.0f32; 3 * w * h];
        {
            let vf =
                gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &neg.in_info)
                    .map_err(|_| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ["input buffer is smaller than the caps say"]
                    );
                    gst::FlowError::Error
                })?;
            let n = vf.n_planes() as usize;
            let planes = Planes {
                data: vf.planes_data().into_iter().take(n).collect(),
                strides: vf
                    .plane_stride()
                    .iter()
                    .take(n)
                    .map(|s| *s as usize)
                    .collect(),
            };
            convert::to_rgb_planar(neg.layout, neg.matrix, &planes, w, h, &mut rgb);
        }
        Ok(Frame {
            rgb,
            buffer,
            features: OnceLock::new(),
        })
    }

    /// Runs every pending window (end of a segment) and returns the outputs in order.
    fn drain_state(&self, state: &mut State) -> Result<Vec<gst::Buffer>, gst::FlowError> {
        let wins = state.window.drain();
        let mut outs: Vec<gst::Buffer> = state.ready.drain(..).collect();
        for win in wins {
            outs.push(self.process(state, &win)?);
        }
        Ok(outs)
    }

    fn drain_and_push(&self) -> Result<(), gst::FlowError> {
        let outs = {
            let mut guard = self.state.lock().unwrap();
            match guard.as_mut() {
                Some(state) => self.drain_state(state)?,
                None => return Ok(()),
            }
        };
        gst::debug!(CAT, imp = self, "draining {} frames", outs.len());
        let src = self.obj().src_pad().clone();
        for b in outs {
            src.push(b)?;
        }
        Ok(())
    }
}

impl ObjectImpl for MstGanSr {
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
                    .blurb("CPU threads onnxruntime may use per inference (0 = one per core)")
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
                glib::ParamSpecString::builder("active-provider")
                    .nick("Active provider")
                    .blurb("Execution provider that actually runs the model (known once started)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "scale" => s.scale = value.get().expect("type checked upstream"),
            "model-location" => s.model_location = value.get().expect("type checked upstream"),
            "execution-provider" => {
                s.execution_provider = value.get().expect("type checked upstream")
            }
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "precision" => s.precision = value.get().expect("type checked upstream"),
            "engine-cache-dir" => s.engine_cache_dir = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "feature-cache" => s.feature_cache = value.get().expect("type checked upstream"),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "scale" => s.scale.to_value(),
            "model-location" => s.model_location.to_value(),
            "execution-provider" => s.execution_provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "precision" => s.precision.to_value(),
            "engine-cache-dir" => s.engine_cache_dir.to_value(),
            "threads" => s.threads.to_value(),
            "feature-cache" => s.feature_cache.to_value(),
            "feature-cache-active" => (*self.feature_cache_active.lock().unwrap()).to_value(),
            "window" => (*self.window_len.lock().unwrap()).to_value(),
            "active-provider" => {
                let p = self.active_provider.lock().unwrap();
                if p.is_empty() {
                    None::<String>
                } else {
                    Some(p.clone())
                }
                .to_value()
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
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
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
                [
                    "no trained x{} model is installed: using the untrained test fixture {} \
                     (output is close to bilinear); set model-location to a trained model",
                    settings.scale,
                    model_path.display()
                ]
            );
        }
        let cfg = EngineConfig {
            model_path: model_path.clone(),
            scale: settings.scale,
            provider: match settings.execution_provider {
                ExecutionProvider::Auto => engine::Provider::Auto,
                ExecutionProvider::Cpu => engine::Provider::Cpu,
                ExecutionProvider::Cuda => engine::Provider::Cuda,
                ExecutionProvider::TensorRt => engine::Provider::TensorRt,
            },
            device_id: settings.device_id,
            precision: match settings.precision {
                Precision::Auto => engine::Precision::Auto,
                Precision::Fp32 => engine::Precision::Fp32,
                Precision::Fp16 => engine::Precision::Fp16,
                Precision::Int8 => engine::Precision::Int8,
            },
            engine_cache_dir: settings.engine_cache_dir.as_ref().map(PathBuf::from),
            threads: settings.threads as usize,
            feature_cache: settings.feature_cache,
        };
        let engine = Engine::new(&cfg).map_err(|e| {
            let kind = match e {
                EngineError::ModelMissing(_) => gst::ResourceError::NotFound,
                EngineError::RuntimeMissing(_) | EngineError::ProviderUnavailable { .. } => {
                    gst::ResourceError::OpenRead
                }
                _ => gst::ResourceError::Settings,
            };
            gst::error_msg!(kind, ["{e}"])
        })?;
        if settings.execution_provider == ExecutionProvider::Auto
            && engine.active_provider() == "cpu"
        {
            let why: Vec<String> = engine
                .skipped_providers
                .iter()
                .map(|(p, r)| format!("{p}: {r}"))
                .collect();
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Init,
                [
                    "execution-provider=auto fell back to CPU ({})",
                    why.join("; ")
                ]
            );
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
                ["feature cache off, running the whole graph: {why}"]
            ),
            other => gst::info!(CAT, imp = self, "feature cache: {other:?}"),
        }
        *self.feature_cache_active.lock().unwrap() =
            *engine.feature_cache() == FeatureCache::Active;
        *self.window_len.lock().unwrap() = info.window as u32;
        *self.active_provider.lock().unwrap() = engine.active_provider().to_string();
        *self.state.lock().unwrap() = Some(State {
            scale: info.scale,
            window: FrameWindow::new(info.window),
            engine,
            caps: None,
            ready: VecDeque::new(),
            input_scratch: Vec::new(),
            output_scratch: Vec::new(),
        });
        Ok(())
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
        let scale = self.settings.lock().unwrap().scale as i32;
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
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        let s = state.scale;
        if in_info.format() != out_info.format()
            || out_info.width() != in_info.width() * s
            || out_info.height() != in_info.height() * s
        {
            return Err(gst::loggable_error!(
                CAT,
                "output caps {outcaps} are not the input at x{s}"
            ));
        }
        let Some(layout) = layout_of(in_info.format()) else {
            return Err(gst::loggable_error!(
                CAT,
                "unsupported format {:?}",
                in_info.format()
            ));
        };
        let need = estimated_bytes(
            in_info.width() as usize,
            in_info.height() as usize,
            state.window.window(),
            s as usize,
        );
        if let Some(avail) = available_memory()
            && need > avail
        {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                [
                    "{}x{} frames need about {} MiB per inference but only {} MiB are available: \
                     downscale the input first (videoscale) or use a smaller scale",
                    in_info.width(),
                    in_info.height(),
                    need >> 20,
                    avail >> 20
                ]
            );
            return Err(gst::loggable_error!(CAT, "frames too large for memory"));
        }
        state.window.clear();
        state.caps = Some(Negotiated {
            matrix: matrix_of(&in_info),
            in_info,
            out_info,
            layout,
        });
        gst::debug!(CAT, imp = self, "configured {incaps} -> {outcaps}");
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                if let Err(e) = self.drain_and_push() {
                    gst::warning!(CAT, imp = self, "draining at EOS failed: {e:?}");
                }
            }
            gst::EventView::FlushStop(_) => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.window.clear();
                    state.ready.clear();
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            let mut upstream = gst::query::Latency::new();
            if !self.obj().sink_pad().peer_query(&mut upstream) {
                return false;
            }
            let (live, min, max) = upstream.result();
            let radius = (*self.window_len.lock().unwrap()).saturating_sub(1) / 2;
            let frame = self
                .state
                .lock()
                .unwrap()
                .as_ref()
                .and_then(|s| s.caps.as_ref())
                .map(|c| c.in_info.fps())
                .filter(|f| f.numer() > 0)
                .and_then(|f| {
                    gst::ClockTime::SECOND.mul_div_floor(f.denom() as u64, f.numer() as u64)
                })
                .unwrap_or(gst::ClockTime::ZERO);
            let ours = frame * radius as u64;
            gst::debug!(
                CAT,
                imp = self,
                "latency: upstream {min} + {radius} frames = {}",
                min + ours
            );
            q.set(live, min + ours, max.map(|m| m + ours));
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        if let Some(buffer) = self.take_queued_buffer() {
            if buffer.flags().contains(gst::BufferFlags::DISCONT) && state.window.pending() > 0 {
                // a gap: finish the old run of frames, then start clean
                let outs = self.drain_state(state)?;
                state.ready.extend(outs);
            }
            let Some(neg) = state.caps.as_ref() else {
                return Err(gst::FlowError::NotNegotiated);
            };
            let frame = self.to_frame(neg, buffer)?;
            if let Some(win) = state.window.push(frame) {
                let out = self.process(state, &win)?;
                state.ready.push_back(out);
            }
        }
        Ok(match state.ready.pop_front() {
            Some(b) => GenerateOutputSuccess::Buffer(b),
            None => GenerateOutputSuccess::NoOutput,
        })
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
