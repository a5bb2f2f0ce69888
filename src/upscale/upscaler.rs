// SPDX-License-Identifier: MIT OR Apache-2.0

//! The upscaler without GStreamer: the temporal window, the engine, the per-frame feature
//! cache and the scratch buffers, with the rules that decide where a run of frames breaks.
//!
//! Frames go in with [`Upscaler::push`]; each window that becomes complete is queued; batches
//! of `batch` windows are taken in order with [`Upscaler::take_batch`] and run with
//! [`Upscaler::run`] (or not, for a late frame). Each window runs tile by tile (see
//! [`tiling`](crate::upscale::tiling)) within the memory budget given to [`Upscaler::configure`]. A run of frames
//! ends at a real break only: a PTS jump past `max_gap` frame durations, a PTS going backwards,
//! a DISCONT when the frame rate is unknown, or a scene cut; then the old run's last windows are
//! queued with edge replication and the new frame starts a clean window. A DISCONT buffer that
//! follows its predecessor closely continues the window with the frames that did arrive.
//! [`Upscaler::finish`] ends a run (EOS, a new segment, new caps); [`Upscaler::reset`] forgets
//! everything (flush).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::engine::{CrossBatch, Engine, EngineError, FeatureCache, Features};
use crate::upscale::memory;
use crate::upscale::scenecut::SceneCutDetector;
use crate::upscale::tiling::MIN_TILE;
use crate::upscale::tiling::{self, Tile};
use crate::upscale::window::FrameWindow;

/// A received frame: planar RGB `[3, H, W]` in [0, 1] and what the caller keeps with it.
pub struct Frame<M> {
    pub rgb: Vec<f32>,
    pub meta: M,
    /// Extractor output per tile, computed by the first window that needs it.
    features: Vec<OnceLock<Features>>,
}

/// A complete window, ready to run: `frames[T/2]` is the frame to upscale.
pub struct Ready<M> {
    frames: Vec<Arc<Frame<M>>>,
}

impl<M> Clone for Ready<M> {
    fn clone(&self) -> Self {
        Self {
            frames: self.frames.clone(),
        }
    }
}

impl<M> Ready<M> {
    pub fn centre(&self) -> &Frame<M> {
        &self.frames[self.frames.len() / 2]
    }

    /// How many different frames the window holds (T unless edges were replicated).
    pub fn distinct(&self) -> usize {
        let mut n = 0;
        for (i, f) in self.frames.iter().enumerate() {
            if !self.frames[..i].iter().any(|g| Arc::ptr_eq(f, g)) {
                n += 1;
            }
        }
        n
    }
}

/// Why a run of frames ended before a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// The PTS moved on by more than the allowed gap.
    PtsJump,
    /// The PTS went backwards.
    PtsBackwards,
    /// A DISCONT buffer with no frame duration to judge the gap by.
    Discont,
    /// The picture changed completely.
    SceneCut,
}

/// Where a run may continue (tuning knobs, changeable while running).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Continuity {
    /// Largest PTS step, in frame durations, that still continues the window.
    pub max_gap: u32,
    /// Scene-cut score that starts a new window (0 = off); see [`SceneCutDetector`].
    pub scene_cut_threshold: f32,
}

impl Default for Continuity {
    fn default() -> Self {
        Self {
            max_gap: 4,
            scene_cut_threshold: 10.0,
        }
    }
}

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

/// How a frame arrived: its PTS (ns) and whether upstream flagged a discontinuity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arrival {
    pub pts: Option<u64>,
    pub discont: bool,
}

pub struct Upscaler<M> {
    engine: Engine,
    window: FrameWindow<Frame<M>>,
    ready: VecDeque<Ready<M>>,
    /// Ready windows at the end of a run: they run without waiting for a full batch.
    flush: usize,
    size: (usize, usize),
    plan: Plan,
    frame_duration: Option<u64>,
    last_pts: Option<u64>,
    run_len: u64,
    scenes: SceneCutDetector,
    input: Vec<f32>,
    tile_out: Vec<f32>,
    crop: Vec<f32>,
    outputs: Vec<Vec<f32>>,
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
            window: FrameWindow::new(t),
            ready: VecDeque::new(),
            flush: 0,
            size: (0, 0),
            plan: Plan {
                tiles: Vec::new(),
                tile: 0,
                overlap: 0,
                batch: 1,
                feature_cache: false,
                peak_bytes: 0,
            },
            frame_duration: None,
            last_pts: None,
            run_len: 0,
            scenes: SceneCutDetector::new(),
            input: Vec::new(),
            tile_out: Vec::new(),
            crop: Vec::new(),
            outputs: Vec::new(),
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
        self.window.window()
    }

    /// Frames an output waits for after its own: (T-1)/2.
    pub fn radius(&self) -> usize {
        self.window.window() / 2
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
        self.reset();
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
        self.size = (width, height);
        self.frame_duration = frame_duration.filter(|d| *d > 0);
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
        self.size
    }

    /// Frames received whose output has not been taken yet.
    pub fn pending(&self) -> usize {
        self.window.pending() + self.ready.len()
    }

    /// Windows queued to run.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Adds a frame; returns the break that ended the previous run before it, if any.
    pub fn push(
        &mut self,
        rgb: Vec<f32>,
        meta: M,
        arrival: Arrival,
        continuity: Continuity,
    ) -> Result<Option<Break>, EngineError> {
        let (w, h) = self.size;
        if rgb.len() != 3 * w * h {
            return Err(EngineError::Config(format!(
                "a {w}x{h} frame has {} values, got {}",
                3 * w * h,
                rgb.len()
            )));
        }
        let cut = self
            .scenes
            .is_cut(&rgb, w, h, continuity.scene_cut_threshold);
        let brk = if self.run_len == 0 {
            None
        } else if cut {
            Some(Break::SceneCut)
        } else {
            self.timing_break(arrival, continuity.max_gap)
        };
        if brk.is_some() {
            self.end_run();
        }
        let features = (0..self.plan.tiles.len())
            .map(|_| OnceLock::new())
            .collect();
        if let Some(win) = self.window.push(Frame {
            rgb,
            meta,
            features,
        }) {
            self.ready.push_back(Ready { frames: win });
        }
        self.run_len += 1;
        self.last_pts = arrival.pts.or(self.last_pts);
        Ok(brk)
    }

    fn timing_break(&self, arrival: Arrival, max_gap: u32) -> Option<Break> {
        match (self.last_pts, arrival.pts, self.frame_duration) {
            (Some(last), Some(pts), _) if pts < last => Some(Break::PtsBackwards),
            (Some(last), Some(pts), Some(fd)) => {
                // half a frame of slack for jittery live timestamps
                let limit = fd.saturating_mul(max_gap.max(1) as u64) + fd / 2;
                (pts - last > limit).then_some(Break::PtsJump)
            }
            _ => arrival.discont.then_some(Break::Discont),
        }
    }

    /// A GAP event (no data from `pts` for `duration`, ns): it counts as missing frames, so a
    /// gap past the limit ends the run. Returns the break, if it was one.
    pub fn gap(&mut self, pts: u64, duration: Option<u64>, max_gap: u32) -> Option<Break> {
        if self.run_len == 0 {
            return None;
        }
        let end = pts.saturating_add(duration.unwrap_or(0));
        let brk = self.timing_break(
            Arrival {
                pts: Some(end),
                discont: true,
            },
            max_gap,
        )?;
        self.finish();
        Some(brk)
    }

    /// Queues the current run's remaining windows (edge-replicated) and starts a clean one.
    fn end_run(&mut self) {
        for win in self.window.drain() {
            self.ready.push_back(Ready { frames: win });
        }
        self.flush = self.ready.len();
        self.run_len = 0;
    }

    /// Ends the run (EOS, new segment, new caps): every pending output becomes ready.
    pub fn finish(&mut self) {
        self.end_run();
        self.last_pts = None;
        self.scenes.reset();
    }

    /// Forgets every frame and pending output (flush).
    pub fn reset(&mut self) {
        self.window.clear();
        self.ready.clear();
        self.flush = 0;
        self.run_len = 0;
        self.last_pts = None;
        self.scenes.reset();
    }

    /// The next windows to run together: a full batch, or what is left at the end of a run.
    pub fn take_batch(&mut self) -> Option<Vec<Ready<M>>> {
        let n = if self.flush > 0 {
            self.flush.min(self.plan.batch)
        } else if self.ready.len() >= self.plan.batch {
            self.plan.batch
        } else {
            return None;
        };
        self.flush -= n.min(self.flush);
        Some(self.ready.drain(..n).collect())
    }

    /// Runs `wins` as one batch, tile by tile; [`Upscaler::output`] `(i)` is then window i's
    /// upscaled planar RGB `[3, sH, sW]`.
    pub fn run(&mut self, wins: &[Ready<M>]) -> Result<(), EngineError> {
        let (w, h) = self.size;
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

    /// Window `i`'s output of the last [`Upscaler::run`].
    pub fn output(&self, i: usize) -> &[f32] {
        &self.outputs[i]
    }

    /// Runs every window that can run now (a full batch, or the end of a run) and forgets the
    /// outputs: for benchmarks and warm-ups.
    pub fn run_ready(&mut self) -> Result<usize, EngineError> {
        let mut n = 0;
        while let Some(batch) = self.take_batch() {
            self.run(&batch)?;
            n += batch.len();
        }
        Ok(n)
    }

    /// A quick estimate of one batch's time at the configured size, from two runs of the whole
    /// graph on a black crop of at most `max_px` pixels (the first run of a session is slow),
    /// scaled by the pixels the plan's tiles cover. Much cheaper than [`Upscaler::warm_up`] on
    /// big frames; it overstates a cached run (it extracts every frame's features), so it can
    /// only tell that a model is too slow, not that it keeps up.
    pub fn estimate(&mut self, max_px: usize) -> Result<Duration, EngineError> {
        let (w, h) = self.size;
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
        let (w, h) = self.size;
        let tiles = self.plan.tiles.len();
        let black = || {
            Arc::new(Frame {
                rgb: vec![0.0; 3 * w * h],
                meta: M::default(),
                features: (0..tiles).map(|_| OnceLock::new()).collect(),
            })
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_counts_distinct_frames() {
        let a = Arc::new(Frame {
            rgb: vec![],
            meta: 0u8,
            features: vec![],
        });
        let b = Arc::new(Frame {
            rgb: vec![],
            meta: 1u8,
            features: vec![],
        });
        let r = Ready {
            frames: vec![a.clone(), a.clone(), a.clone(), b.clone(), b],
        };
        assert_eq!(r.distinct(), 2);
        assert_eq!(r.centre().meta, 0);
    }
}
