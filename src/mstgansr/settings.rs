// SPDX-License-Identifier: MIT OR Apache-2.0

//! The element's properties, defined once: the settings they write, their ParamSpecs (whose
//! `mutable_ready` flag is the READY-only rule), and reading and writing them by name. No
//! element state: the element adds the read-only properties it computes.

use gst::glib;
use gst::prelude::*;

use crate::upscale::upscaler::Continuity;

use super::{ExecutionProvider, LateFrames, LiveTier, Precision, Variant};

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) scale: u32,
    pub(super) model_location: Option<String>,
    pub(super) variant: Variant,
    pub(super) execution_provider: ExecutionProvider,
    pub(super) device_id: i32,
    pub(super) precision: Precision,
    pub(super) engine_cache_dir: Option<String>,
    pub(super) threads: u32,
    pub(super) feature_cache: bool,
    pub(super) max_memory_mib: u64,
    pub(super) tile_size: u32,
    pub(super) tile_overlap: u32,
    pub(super) batch_size: u32,
    pub(super) batch_wait_ms: u32,
    pub(super) continuity: Continuity,
    pub(super) late_frames: LateFrames,
    pub(super) live_tier: LiveTier,
    pub(super) shared_engine: bool,
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
            batch_wait_ms: 0,
            continuity: Continuity::default(),
            late_frames: LateFrames::Drop,
            live_tier: LiveTier::Auto,
            shared_engine: true,
        }
    }
}

/// Every property of the element, with the defaults of [`Settings`].
pub(super) fn param_specs() -> Vec<glib::ParamSpec> {
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
                "Windows per inference: a stream's own (throughput; each adds a frame of \
                 latency), or, for live sources with shared-engine and batch-wait > 0, \
                 those of the streams sharing the model, each stream's one at a time",
            )
            .minimum(1)
            .maximum(16)
            .default_value(d.batch_size)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("batch-wait")
            .nick("Batch wait")
            .blurb(
                "Live sources with batch-size > 1 and shared-engine: milliseconds a window \
                 waits for other streams' windows to join its inference (added to the \
                 latency); 0 = each stream batches its own windows, as for files",
            )
            .maximum(1000)
            .default_value(d.batch_wait_ms)
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
                 (instances sharing this one's session, itself included), cross-stream \
                 (windows batched with other streams'), batch-inferences, batch-windows and \
                 batch-shared (the shared batching thread's inferences, their windows, and \
                 those with more than one stream's), processing-time and latency (ns)",
            )
            .read_only()
            .build(),
    ]
}

/// Properties that take effect when the element starts: refused while it runs.
pub(super) fn ready_only(pspec: &glib::ParamSpec) -> bool {
    pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY)
}

impl Settings {
    /// Writes the setting named `name`; false when no setting has that name (the element's
    /// read-only properties).
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "scale" => self.scale = value.get().expect("type checked upstream"),
            "model-location" => self.model_location = value.get().expect("type checked upstream"),
            "variant" => self.variant = value.get().expect("type checked upstream"),
            "execution-provider" => {
                self.execution_provider = value.get().expect("type checked upstream")
            }
            "device-id" => self.device_id = value.get().expect("type checked upstream"),
            "precision" => self.precision = value.get().expect("type checked upstream"),
            "engine-cache-dir" => {
                self.engine_cache_dir = value.get().expect("type checked upstream")
            }
            "threads" => self.threads = value.get().expect("type checked upstream"),
            "feature-cache" => self.feature_cache = value.get().expect("type checked upstream"),
            "max-memory" => self.max_memory_mib = value.get().expect("type checked upstream"),
            "tile-size" => self.tile_size = value.get().expect("type checked upstream"),
            "tile-overlap" => self.tile_overlap = value.get().expect("type checked upstream"),
            "batch-size" => self.batch_size = value.get().expect("type checked upstream"),
            "batch-wait" => self.batch_wait_ms = value.get().expect("type checked upstream"),
            "max-gap" => self.continuity.max_gap = value.get().expect("type checked upstream"),
            "scene-cut-threshold" => {
                self.continuity.scene_cut_threshold = value.get().expect("type checked upstream")
            }
            "late-frames" => self.late_frames = value.get().expect("type checked upstream"),
            "live-tier" => self.live_tier = value.get().expect("type checked upstream"),
            "shared-engine" => self.shared_engine = value.get().expect("type checked upstream"),
            _ => return false,
        }
        true
    }

    /// The setting named `name`, or `None` for properties that are not settings.
    pub(super) fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "scale" => self.scale.to_value(),
            "model-location" => self.model_location.to_value(),
            "variant" => self.variant.to_value(),
            "execution-provider" => self.execution_provider.to_value(),
            "device-id" => self.device_id.to_value(),
            "precision" => self.precision.to_value(),
            "engine-cache-dir" => self.engine_cache_dir.to_value(),
            "threads" => self.threads.to_value(),
            "feature-cache" => self.feature_cache.to_value(),
            "max-memory" => self.max_memory_mib.to_value(),
            "tile-size" => self.tile_size.to_value(),
            "tile-overlap" => self.tile_overlap.to_value(),
            "batch-size" => self.batch_size.to_value(),
            "batch-wait" => self.batch_wait_ms.to_value(),
            "max-gap" => self.continuity.max_gap.to_value(),
            "scene-cut-threshold" => self.continuity.scene_cut_threshold.to_value(),
            "late-frames" => self.late_frames.to_value(),
            "live-tier" => self.live_tier.to_value(),
            "shared-engine" => self.shared_engine.to_value(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_a_writable_property_whose_default_is_the_settings_default() {
        gst::init().unwrap();
        let d = Settings::default();
        let mut n = 0;
        for p in param_specs() {
            let writable = p.flags().contains(glib::ParamFlags::WRITABLE);
            match d.get(p.name()) {
                Some(v) => {
                    n += 1;
                    assert!(writable, "{} is a setting but read-only", p.name());
                    assert_eq!(
                        format!("{v:?}"),
                        format!("{:?}", p.default_value()),
                        "default of {}",
                        p.name()
                    );
                }
                None => assert!(!writable, "{} is writable but no setting", p.name()),
            }
        }
        assert_eq!(n, 19);
    }

    #[test]
    fn a_setting_reads_back_what_was_written_and_other_names_are_not_settings() {
        gst::init().unwrap();
        let mut s = Settings::default();
        assert!(s.set("batch-wait", &55u32.to_value()));
        assert!(s.set("late-frames", &LateFrames::Resize.to_value()));
        assert!(s.set("model-location", &Some("m.onnx").to_value()));
        assert_eq!(s.get("batch-wait").unwrap().get::<u32>().unwrap(), 55);
        assert_eq!(s.late_frames, LateFrames::Resize);
        assert_eq!(s.model_location.as_deref(), Some("m.onnx"));
        assert!(!s.set("stats", &0u32.to_value()));
        assert!(s.get("window").is_none() && s.get("active-provider").is_none());
    }

    #[test]
    fn what_loads_the_model_or_plans_the_frames_is_ready_only_and_the_rest_is_not() {
        gst::init().unwrap();
        let ready: Vec<String> = param_specs()
            .iter()
            .filter(|p| ready_only(p))
            .map(|p| p.name().to_string())
            .collect();
        for name in [
            "scale",
            "model-location",
            "variant",
            "threads",
            "batch-size",
            "batch-wait",
        ] {
            assert!(ready.iter().any(|r| r == name), "{name}");
        }
        for name in ["max-gap", "scene-cut-threshold", "late-frames", "stats"] {
            assert!(!ready.iter().any(|r| r == name), "{name}");
        }
    }
}
