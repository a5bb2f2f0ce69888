// SPDX-License-Identifier: MIT OR Apache-2.0

//! The upscaler without GStreamer: the temporal window, the engine, the per-frame feature
//! cache and the scratch buffers, with the rules that decide where a run of frames breaks.
//!
//! Frames go in with [`Upscaler::push`]; each window that becomes complete is queued and run
//! (or skipped) in order with [`Upscaler::run_next`] / [`Upscaler::skip_next`]. A run of frames
//! ends at a real break only: a PTS jump past `max_gap` frame durations, a PTS going backwards,
//! a DISCONT when the frame rate is unknown, or a scene cut; then the old run's last windows are
//! queued with edge replication and the new frame starts a clean window. A DISCONT buffer that
//! follows its predecessor closely continues the window with the frames that did arrive.
//! [`Upscaler::finish`] ends a run (EOS, a new segment, new caps); [`Upscaler::reset`] forgets
//! everything (flush).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineError, FeatureCache, Features};
use crate::scenecut::SceneCutDetector;
use crate::window::FrameWindow;

/// A received frame: planar RGB `[3, H, W]` in [0, 1] and what the caller keeps with it.
pub struct Frame<M> {
    pub rgb: Vec<f32>,
    pub meta: M,
    /// Extractor output, computed by the first window that needs it.
    features: OnceLock<Features>,
}

/// A complete window, ready to run: `frames[T/2]` is the frame to upscale.
pub struct Ready<M> {
    frames: Vec<Arc<Frame<M>>>,
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

/// A window that ran, and its output: planar RGB `[3, sH, sW]`.
pub type Upscaled<'a, M> = (Ready<M>, &'a [f32]);

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
    size: (usize, usize),
    frame_duration: Option<u64>,
    last_pts: Option<u64>,
    run_len: u64,
    scenes: SceneCutDetector,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl<M> Upscaler<M> {
    pub fn new(engine: Engine) -> Self {
        let t = engine.info().window;
        Self {
            engine,
            window: FrameWindow::new(t),
            ready: VecDeque::new(),
            size: (0, 0),
            frame_duration: None,
            last_pts: None,
            run_len: 0,
            scenes: SceneCutDetector::new(),
            input: Vec::new(),
            output: Vec::new(),
        }
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

    /// Sets the frame size and nominal frame duration (ns); forgets every frame.
    pub fn configure(&mut self, width: usize, height: usize, frame_duration: Option<u64>) {
        self.reset();
        self.size = (width, height);
        self.frame_duration = frame_duration.filter(|d| *d > 0);
    }

    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Frames received whose output has not been taken yet.
    pub fn pending(&self) -> usize {
        self.window.pending() + self.ready.len()
    }

    /// Windows ready to run.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub fn next_ready(&self) -> Option<&Ready<M>> {
        self.ready.front()
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
        if let Some(win) = self.window.push(Frame {
            rgb,
            meta,
            features: OnceLock::new(),
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
        self.run_len = 0;
        self.last_pts = None;
        self.scenes.reset();
    }

    /// Drops the next ready window without running it.
    pub fn skip_next(&mut self) -> Option<Ready<M>> {
        self.ready.pop_front()
    }

    /// Runs the next ready window; returns it with the upscaled `[3, sH, sW]` planar RGB.
    pub fn run_next(&mut self) -> Result<Option<Upscaled<'_, M>>, EngineError> {
        let Some(win) = self.ready.pop_front() else {
            return Ok(None);
        };
        self.run_window(&win)?;
        Ok(Some((win, &self.output)))
    }

    fn run_window(&mut self, win: &Ready<M>) -> Result<(), EngineError> {
        let (w, h) = self.size;
        let plane = 3 * w * h;
        let s = self.scale();
        self.input.resize(win.frames.len() * plane, 0.0);
        for (i, f) in win.frames.iter().enumerate() {
            self.input[i * plane..(i + 1) * plane].copy_from_slice(&f.rgb);
        }
        self.output.resize(plane * s * s, 0.0);
        if *self.engine.feature_cache() == FeatureCache::Active {
            for f in &win.frames {
                if f.features.get().is_none() {
                    let feats = self.engine.extract(&f.rgb, w, h)?;
                    let _ = f.features.set(feats);
                }
            }
            let feats: Vec<&Features> =
                win.frames.iter().filter_map(|f| f.features.get()).collect();
            self.engine
                .run_cached(&self.input, &feats, w, h, &mut self.output)
        } else {
            self.engine.run(&self.input, w, h, &mut self.output)
        }
    }

    /// Runs one window of black frames at the configured size, outside the stream: the first
    /// run of a session is slow (allocation, kernel choice), and this measures a steady one.
    pub fn warm_up(&mut self) -> Result<Duration, EngineError>
    where
        M: Default,
    {
        let (w, h) = self.size;
        let black = || {
            Arc::new(Frame {
                rgb: vec![0.0; 3 * w * h],
                meta: M::default(),
                features: OnceLock::new(),
            })
        };
        let mut win = Ready {
            frames: vec![black(); self.window_len()],
        };
        self.run_window(&win)?;
        let last = win.frames.len() - 1;
        win.frames[last] = black();
        // steady state: one new frame's features, the rest cached
        let start = Instant::now();
        self.run_window(&win)?;
        Ok(start.elapsed())
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
            features: OnceLock::new(),
        });
        let b = Arc::new(Frame {
            rgb: vec![],
            meta: 1u8,
            features: OnceLock::new(),
        });
        let r = Ready {
            frames: vec![a.clone(), a.clone(), a.clone(), b.clone(), b],
        };
        assert_eq!(r.distinct(), 2);
        assert_eq!(r.centre().meta, 0);
    }
}
