// SPDX-License-Identifier: MIT OR Apache-2.0

//! The upscaler without GStreamer: the run of frames ([`FrameRuns`]), the engine, the
//! per-frame feature cache and the scratch buffers.
//!
//! Frames go in through [`Upscaler::runs`]. [`Upscaler::process`] takes the next batch of complete
//! windows and, in one call, judges each (infer, resize or drop), runs the inferred ones
//! together, tile by tile (see [`tiling`](crate::upscale::tiling)) within the memory budget
//! given to [`Upscaler::configure`], and resizes the late ones; [`Upscaler::output`] then reads
//! each window's frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::convert;
use crate::engine::{CrossBatch, Engine, EngineError, FeatureCache, Features};
use crate::upscale::memory;
pub use crate::upscale::runs::{Arrival, Break, Continuity, Frame, FrameRuns, Ready};
use crate::upscale::tiling::MIN_TILE;
use crate::upscale::tiling::{self, Tile};

/// What the frames may cost: tiles (0 = automatic), windows per inference, and the memory
/// budget (bytes) everything must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub tile: usize,
    pub overlap: usize,
    pub batch: usize,
    pub memory: u64,
    /// Where the budget comes from, for messages ("max-memory", "free memory", ...).
    pub memory_source: &'static str,
    /// Windows of this stream go into inferences shared with other streams (the engine's
    /// batching thread) one by one, instead of `batch` of its own at a time.
    pub cross: Option<CrossBatch>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tile: 0,
            overlap: 0,
            batch: 1,
            memory: u64::MAX,
            memory_source: "nothing",
            cross: None,
        }
    }
}

/// Context around each tile when `overlap` is automatic (low-resolution pixels): measured to
/// keep tiled output within rounding of the untiled one (the model card has the numbers).
pub const DEFAULT_OVERLAP: usize = 32;
/// What automatic tiles let one inference use at most, so that large frames stay well inside
/// ordinary machines (a 1080p x2 stream in about 2 GiB).
pub const AUTO_INFERENCE_BYTES: u64 = 1 << 30;

/// What [`Upscaler::configure`] chose for a frame size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub tiles: Vec<Tile>,
    /// Interior size asked for or chosen (the frame's larger side when untiled).
    pub tile: usize,
    pub overlap: usize,
    pub batch: usize,
    /// Whether the per-frame feature cache runs at this size (its features must fit too).
    pub feature_cache: bool,
    /// Estimated peak: frames, outputs, activations and cached features.
    pub peak_bytes: u64,
}

/// What is to become of a window's output, judged before its batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Through the model.
    Infer,
    /// Too late for the model: the cheap bilinear upscale of the centre frame.
    Resize,
    /// Too late for anything: no output.
    Drop,
}

/// A processed window, in batch order; [`Upscaler::output`] reads its frame unless dropped.
pub struct Done<M> {
    pub window: Ready<M>,
    pub outcome: Judgement,
}

pub struct Upscaler<M> {
    engine: Engine,
    runs: FrameRuns<M>,
    plan: Plan,
    input: Vec<f32>,
    tile_out: Vec<f32>,
    crop: Vec<f32>,
    outputs: Vec<Vec<f32>>,
    /// Per window of the last [`Upscaler::process`]: which of `outputs` holds its frame.
    slots: Vec<Option<usize>>,
    /// Tiles run, readable while a run is in progress (see [`Upscaler::with_progress`]).
    tiles_done: Arc<AtomicU64>,
}

fn alloc(buf: &mut Vec<f32>, len: usize, what: &str, limits: &Limits) -> Result<(), EngineError> {
    if len > buf.capacity() && buf.try_reserve_exact(len - buf.len()).is_err() {
        return Err(EngineError::OutOfMemory {
            what: what.to_string(),
            need: (len * 4) as u64,
            have: limits.memory.min(u64::MAX >> 1),
            limit: "the allocator".into(),
            fix: "lower tile-size, batch-size or max-memory, or downscale the input",
        });
    }
    buf.resize(len, 0.0);
    Ok(())
}

impl<M> Upscaler<M> {
    pub fn new(engine: Engine) -> Self {
        let t = engine.info().window;
        Self {
            engine,
            runs: FrameRuns::new(t),
            plan: Plan {
                tiles: Vec::new(),
                tile: 0,
                overlap: 0,
                batch: 1,
                feature_cache: false,
                peak_bytes: 0,
            },
            input: Vec::new(),
            tile_out: Vec::new(),
            crop: Vec::new(),
            outputs: Vec::new(),
            slots: Vec::new(),
            tiles_done: Arc::default(),
        }
    }

    /// Counts the tiles run into `counter`, which other threads read: a frame of many tiles
    /// shows its progress before it is done.
    pub fn with_progress(mut self, counter: Arc<AtomicU64>) -> Self {
        self.tiles_done = counter;
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn scale(&self) -> usize {
        self.engine.info().scale as usize
    }

    /// T, the frames each output is computed from.
    pub fn window_len(&self) -> usize {
        self.runs.window_len()
    }

    /// Frames an output waits for after its own: (T-1)/2.
    pub fn radius(&self) -> usize {
        self.window_len() / 2
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Sets the frame size and nominal frame duration (ns) and plans tiles, batch and feature
    /// cache within `limits`; forgets every frame. Fails when nothing fits, saying what to lower.
    pub fn configure(
        &mut self,
        width: usize,
        height: usize,
        frame_duration: Option<u64>,
        limits: Limits,
    ) -> Result<&Plan, EngineError> {
        self.runs.reset();
        let (t, s) = (self.window_len(), self.scale());
        self.engine.set_cross_batch(limits.cross);
        // across streams, a stream's windows go one at a time: none waits for its own next frames
        let batch = if self.engine.cross_batch().is_some() {
            1
        } else {
            limits.batch.max(1)
        };
        let bounded = tiling::bounded(limits.tile, limits.overlap);
        let overlap = if bounded.overlap == 0 {
            DEFAULT_OVERLAP
        } else {
            bounded.overlap
        };
        let arch = self.engine.info().arch;
        let per_inference = |w: usize, h: usize| {
            memory::estimated_bytes(w, h, t, s, arch).saturating_mul(batch as u64)
        };
        // frames in the window and the batch as float planes and as the buffers they came in
        // (at most 4 bytes a pixel), and the upscaled outputs of a batch as floats and as the
        // buffers that go out (two in flight)
        let px = width * height;
        let frames = ((t + batch) * px * (3 * 4 + 4)) as u64;
        let outputs = ((batch * 3 * 4 + 2 * 4) * px * s * s) as u64;
        let fixed = frames + outputs;
        let oom = |what: String, need: u64, fix| EngineError::OutOfMemory {
            what,
            need,
            have: limits.memory,
            limit: limits.memory_source.into(),
            fix,
        };
        if fixed >= limits.memory {
            return Err(oom(
                format!(
                    "{width}x{height} frames at x{s} (the window and the upscaled frames alone)"
                ),
                fixed,
                "downscale the input or use a smaller scale",
            ));
        }
        let room = limits.memory - fixed;
        let tile = if bounded.tile > 0 {
            bounded.tile
        } else {
            let budget = AUTO_INFERENCE_BYTES.min(room);
            tiling::auto_tile(width, height, overlap, MIN_TILE, budget, per_inference).ok_or_else(
                || {
                    oom(
                        format!("the smallest tile ({MIN_TILE} px with {overlap} px of context)"),
                        per_inference(MIN_TILE + 2 * overlap, MIN_TILE + 2 * overlap),
                        "allow more memory (max-memory, ulimit -v) or downscale the input",
                    )
                },
            )?
        };
        let tiles = tiling::grid(width, height, tile, overlap);
        let biggest = tiles
            .iter()
            .map(|t| per_inference(t.w, t.h))
            .max()
            .unwrap_or(0);
        if biggest > room {
            return Err(oom(
                format!("one inference on {tile} px tiles of {width}x{height} frames at x{s}"),
                fixed + biggest,
                "lower tile-size or batch-size (or set tile-size=0), or allow more memory",
            ));
        }
        let tiled_px: u64 = tiles.iter().map(|t| (t.w * t.h) as u64).sum();
        // cached features live as long as their frame is in a window
        let cache_bytes = self
            .engine
            .feature_bytes_per_pixel()
            .map(|b| b * tiled_px * (t + batch) as u64);
        let feature_cache = *self.engine.feature_cache() == FeatureCache::Active
            && cache_bytes.is_some_and(|c| c <= AUTO_INFERENCE_BYTES.min(room - biggest));
        self.runs
            .configure((width, height), tiles.len(), frame_duration);
        self.plan = Plan {
            tiles,
            tile,
            overlap,
            batch,
            feature_cache,
            peak_bytes: fixed
                + biggest
                + if feature_cache {
                    cache_bytes.unwrap_or(0)
                } else {
                    0
                },
        };
        Ok(&self.plan)
    }

    pub fn size(&self) -> (usize, usize) {
        self.runs.size()
    }

    /// The run of frames: frames go in here ([`FrameRuns::push`]), runs end and reset here.
    pub fn runs(&mut self) -> &mut FrameRuns<M> {
        &mut self.runs
    }

    /// Frames received whose output has not been taken yet.
    pub fn pending(&self) -> usize {
        self.runs.pending()
    }

    /// Whether [`Upscaler::process`] has a batch to run.
    pub fn batch_ready(&self) -> bool {
        self.runs.batch_ready(self.plan.batch)
    }

    /// The next batch, each window judged by `judge` before any runs: the inferred windows
    /// run as one batch, the late ones are resized or dropped. Returns the windows with their
    /// outcomes in order (`None`: no batch is ready); [`Upscaler::output`] reads the frames.
    pub fn process(
        &mut self,
        mut judge: impl FnMut(&Ready<M>) -> Judgement,
    ) -> Result<Option<Vec<Done<M>>>, EngineError> {
        // a full batch, or what is left at the end of a run
        let Some(batch) = self.runs.take_batch(self.plan.batch) else {
            return Ok(None);
        };
        let done: Vec<Done<M>> = batch
            .into_iter()
            .map(|window| {
                let outcome = judge(&window);
                Done { window, outcome }
            })
            .collect();
        let infer: Vec<Ready<M>> = done
            .iter()
            .filter(|d| d.outcome == Judgement::Infer)
            .map(|d| d.window.clone())
            .collect();
        self.run(&infer)?;
        let (w, h) = self.size();
        let s = self.scale();
        // the inferred frames are outputs[..n] in run order; resized ones go after them
        let (mut inferred, mut resized) = (0, infer.len());
        self.slots.clear();
        for d in &done {
            let slot = match d.outcome {
                Judgement::Infer => {
                    inferred += 1;
                    Some(inferred - 1)
                }
                Judgement::Resize => {
                    let i = resized;
                    resized += 1;
                    if self.outputs.len() <= i {
                        self.outputs.resize_with(i + 1, Vec::new);
                    }
                    alloc(
                        &mut self.outputs[i],
                        3 * w * h * s * s,
                        "a resized frame",
                        &Limits::default(),
                    )?;
                    convert::upscale_bilinear(
                        &d.window.centre().rgb,
                        w,
                        h,
                        s,
                        &mut self.outputs[i],
                    );
                    Some(i)
                }
                Judgement::Drop => None,
            };
            self.slots.push(slot);
        }
        Ok(Some(done))
    }

    /// Runs `wins` as one batch, tile by tile, into `outputs[..wins.len()]`.
    fn run(&mut self, wins: &[Ready<M>]) -> Result<(), EngineError> {
        let (w, h) = self.size();
        let (n, t, s) = (wins.len(), self.window_len(), self.scale());
        if n == 0 {
            return Ok(());
        }
        let limits = Limits::default();
        let hr = 3 * w * h * s * s;
        if self.outputs.len() < n {
            self.outputs.resize_with(n, Vec::new);
        }
        for out in &mut self.outputs[..n] {
            alloc(out, hr, "an upscaled frame", &limits)?;
        }
        let cached = self.plan.feature_cache;
        for ti in 0..self.plan.tiles.len() {
            let tile = self.plan.tiles[ti];
            let plane = 3 * tile.w * tile.h;
            alloc(&mut self.input, n * t * plane, "a tile's input", &limits)?;
            for (k, f) in wins.iter().flat_map(|win| win.frames.iter()).enumerate() {
                tiling::crop(&f.rgb, w, h, &tile, &mut self.input[k * plane..][..plane]);
            }
            // one window, untiled: the engine writes the upscaled frame itself, no paste
            let direct = n == 1 && tile.covers(w, h);
            if !direct {
                alloc(
                    &mut self.tile_out,
                    n * plane * s * s,
                    "a tile's output",
                    &limits,
                )?;
            }
            let dst = if direct {
                &mut self.outputs[0]
            } else {
                &mut self.tile_out
            };
            if cached {
                for f in wins.iter().flat_map(|win| win.frames.iter()) {
                    if f.features[ti].get().is_none() {
                        alloc(&mut self.crop, plane, "a tile", &limits)?;
                        tiling::crop(&f.rgb, w, h, &tile, &mut self.crop);
                        let feats = self.engine.extract(&self.crop, tile.w, tile.h)?;
                        let _ = f.features[ti].set(feats);
                    }
                }
                let feats: Vec<&Features> = wins
                    .iter()
                    .flat_map(|win| win.frames.iter())
                    .filter_map(|f| f.features[ti].get())
                    .collect();
                self.engine
                    .run_cached(&self.input, &feats, n, tile.w, tile.h, dst)?;
            } else {
                self.engine.run(&self.input, n, tile.w, tile.h, dst)?;
            }
            self.tiles_done.fetch_add(1, Ordering::Relaxed);
            if direct {
                continue;
            }
            let tile_hr = plane * s * s;
            for (i, out) in self.outputs[..n].iter_mut().enumerate() {
                tiling::paste(
                    &self.tile_out[i * tile_hr..][..tile_hr],
                    &tile,
                    s,
                    w,
                    h,
                    out,
                );
            }
        }
        Ok(())
    }

    /// The frame of window `i` of the last [`Upscaler::process`], planar RGB `[3, sH, sW]`:
    /// upscaled or resized; `None` when it was dropped.
    pub fn output(&self, i: usize) -> Option<&[f32]> {
        self.slots
            .get(i)
            .copied()
            .flatten()
            .map(|k| self.outputs[k].as_slice())
    }

    /// Runs every window that can run now (a full batch, or the end of a run) and forgets the
    /// outputs: for benchmarks and warm-ups.
    pub fn run_ready(&mut self) -> Result<usize, EngineError> {
        let mut n = 0;
        while let Some(done) = self.process(|_| Judgement::Infer)? {
            n += done.len();
        }
        Ok(n)
    }

    /// A quick estimate of one batch's time at the configured size, from two runs of the whole
    /// graph on a black crop of at most `max_px` pixels (the first run of a session is slow),
    /// scaled by the pixels the plan's tiles cover. Much cheaper than [`Upscaler::warm_up`] on
    /// big frames; it overstates a cached run (it extracts every frame's features), so it can
    /// only tell that a model is too slow, not that it keeps up.
    pub fn estimate(&mut self, max_px: usize) -> Result<Duration, EngineError> {
        let (w, h) = self.size();
        let side = (max_px as f64).sqrt() as usize / tiling::ALIGN * tiling::ALIGN;
        let (cw, ch) = (
            w.min(side.max(tiling::ALIGN)),
            h.min(side.max(tiling::ALIGN)),
        );
        let (t, s) = (self.window_len(), self.scale());
        let frames = vec![0.0; t * 3 * cw * ch];
        let mut out = vec![0.0; 3 * cw * ch * s * s];
        // the model's own time, without waiting for other streams
        let cross = self.engine.set_cross_batch(None);
        let runs = (|| {
            self.engine.run(&frames, 1, cw, ch, &mut out)?;
            let start = Instant::now();
            self.engine.run(&frames, 1, cw, ch, &mut out)?;
            Ok(start.elapsed())
        })();
        self.engine.set_cross_batch(cross);
        let took = runs?;
        let tiled: usize = self.plan.tiles.iter().map(|t| t.w * t.h).sum();
        let ratio = (tiled * self.plan.batch) as f64 / (cw * ch) as f64;
        Ok(took.mul_f64(ratio.max(1.0)))
    }

    /// Runs one batch of black frames at the configured size, outside the stream: the first
    /// run of a session is slow (allocation, kernel choice), and this measures a steady one.
    pub fn warm_up(&mut self) -> Result<Duration, EngineError>
    where
        M: Default,
    {
        let (w, h) = self.size();
        let tiles = self.plan.tiles.len();
        let black = || Arc::new(Frame::new(vec![0.0; 3 * w * h], M::default(), tiles));
        let shared = black();
        let (n, t) = (self.plan.batch, self.window_len());
        let batch = |fresh: bool| -> Vec<Ready<M>> {
            (0..n)
                .map(|_| {
                    let mut frames = vec![shared.clone(); t];
                    if fresh {
                        // steady state: one new frame's features, the rest cached
                        *frames.last_mut().unwrap() = black();
                    }
                    Ready { frames }
                })
                .collect()
        };
        let (first, second) = (batch(false), batch(true));
        // the model's own time, without waiting for other streams
        let cross = self.engine.set_cross_batch(None);
        let runs = self.run(&first).and_then(|()| {
            let start = Instant::now();
            self.run(&second)?;
            Ok(start.elapsed())
        });
        self.engine.set_cross_batch(cross);
        runs
    }
}
