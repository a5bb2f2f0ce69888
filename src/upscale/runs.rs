// SPDX-License-Identifier: MIT OR Apache-2.0

//! The bookkeeping of a run of frames, apart from inference: frames go into the temporal
//! window, complete windows queue up, and batches are taken in order. A run ends at a real
//! break only: a PTS jump past `max_gap` frame durations, a PTS going backwards, a DISCONT when
//! the frame rate is unknown, or a scene cut; the old run's last windows are then queued with
//! edge replication and the new frame starts a clean window. A DISCONT buffer that follows its
//! predecessor closely continues the window with the frames that did arrive.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use crate::engine::Features;
use crate::upscale::scenecut::SceneCutDetector;
use crate::upscale::window::FrameWindow;

/// A received frame: planar RGB `[3, H, W]` in [0, 1] and what the caller keeps with it.
pub struct Frame<M> {
    pub rgb: Vec<f32>,
    pub meta: M,
    /// Extractor output per tile, computed by the first window that needs it.
    pub(crate) features: Vec<OnceLock<Features>>,
}

impl<M> Frame<M> {
    pub(crate) fn new(rgb: Vec<f32>, meta: M, tiles: usize) -> Self {
        Self {
            rgb,
            meta,
            features: (0..tiles).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// A complete window, ready to run: `frames[T/2]` is the frame to upscale.
pub struct Ready<M> {
    pub(crate) frames: Vec<Arc<Frame<M>>>,
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

    /// Whether the window holds T distinct frames (no edge replication).
    pub fn is_full(&self) -> bool {
        self.distinct() == self.frames.len()
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

/// How a frame arrived: its PTS (ns) and whether upstream flagged a discontinuity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arrival {
    pub pts: Option<u64>,
    pub discont: bool,
}

/// Frames in, windows out, in batches: see the module documentation.
pub struct FrameRuns<M> {
    window: FrameWindow<Frame<M>>,
    ready: VecDeque<Ready<M>>,
    /// Ready windows at the end of a run: they run without waiting for a full batch.
    flush: usize,
    size: (usize, usize),
    /// Tiles per frame: how many feature slots a frame carries.
    tiles: usize,
    frame_duration: Option<u64>,
    last_pts: Option<u64>,
    run_len: u64,
    scenes: SceneCutDetector,
}

impl<M> FrameRuns<M> {
    /// `window` is the model's T (odd).
    pub fn new(window: usize) -> Self {
        Self {
            window: FrameWindow::new(window),
            ready: VecDeque::new(),
            flush: 0,
            size: (0, 0),
            tiles: 0,
            frame_duration: None,
            last_pts: None,
            run_len: 0,
            scenes: SceneCutDetector::new(),
        }
    }

    /// Sets the frame size, the tiles each frame is run in and the nominal frame duration
    /// (ns); forgets every frame.
    pub fn configure(&mut self, size: (usize, usize), tiles: usize, frame_duration: Option<u64>) {
        self.reset();
        self.size = size;
        self.tiles = tiles;
        self.frame_duration = frame_duration.filter(|d| *d > 0);
    }

    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// T, the frames each output is computed from.
    pub fn window_len(&self) -> usize {
        self.window.window()
    }

    /// Frames received whose output has not been taken yet.
    pub fn pending(&self) -> usize {
        self.window.pending() + self.ready.len()
    }

    /// Windows queued to run.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Adds a frame; returns the break that ended the previous run before it, if any. Fails
    /// when `rgb` does not hold a frame of the configured size.
    pub fn push(
        &mut self,
        rgb: Vec<f32>,
        meta: M,
        arrival: Arrival,
        continuity: Continuity,
    ) -> Result<Option<Break>, String> {
        let (w, h) = self.size;
        if rgb.len() != 3 * w * h {
            return Err(format!(
                "a {w}x{h} frame has {} values, got {}",
                3 * w * h,
                rgb.len()
            ));
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
        if let Some(win) = self.window.push(Frame::new(rgb, meta, self.tiles)) {
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

    /// Whether [`FrameRuns::take_batch`] has windows to give.
    pub fn batch_ready(&self, batch: usize) -> bool {
        self.flush > 0 || (!self.ready.is_empty() && self.ready.len() >= batch)
    }

    /// The next windows to run together: `batch` of them, or what is left at the end of a run.
    pub fn take_batch(&mut self, batch: usize) -> Option<Vec<Ready<M>>> {
        let n = if self.flush > 0 {
            self.flush.min(batch)
        } else if self.ready.len() >= batch {
            batch
        } else {
            return None;
        };
        self.flush -= n.min(self.flush);
        Some(self.ready.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FD: u64 = 40_000_000;

    fn runs(t: usize) -> FrameRuns<u32> {
        let mut r = FrameRuns::new(t);
        r.configure((4, 2), 1, Some(FD));
        r
    }

    fn grey(v: f32) -> Vec<f32> {
        vec![v; 3 * 4 * 2]
    }

    fn at(pts: u64) -> Arrival {
        Arrival {
            pts: Some(pts),
            discont: false,
        }
    }

    fn push(r: &mut FrameRuns<u32>, i: u32, a: Arrival) -> Option<Break> {
        r.push(grey(0.5), i, a, Continuity::default()).unwrap()
    }

    fn centres(b: &[Ready<u32>]) -> Vec<u32> {
        b.iter().map(|w| w.centre().meta).collect()
    }

    #[test]
    fn ready_counts_distinct_frames() {
        let a = Arc::new(Frame::new(vec![], 0u8, 0));
        let b = Arc::new(Frame::new(vec![], 1u8, 0));
        let r = Ready {
            frames: vec![a.clone(), a.clone(), a.clone(), b.clone(), b],
        };
        assert_eq!(r.distinct(), 2);
        assert!(!r.is_full());
        assert_eq!(r.centre().meta, 0);
    }

    #[test]
    fn windows_wait_for_their_future_and_batches_fill() {
        let mut r = runs(3);
        assert!(r.take_batch(1).is_none());
        push(&mut r, 0, at(0));
        assert_eq!(r.ready_len(), 0, "frame 0 waits for frame 1");
        push(&mut r, 1, at(FD));
        assert_eq!(r.ready_len(), 1);
        assert!(
            r.take_batch(2).is_none(),
            "a batch of 2 waits for 2 windows"
        );
        push(&mut r, 2, at(2 * FD));
        let b = r.take_batch(2).unwrap();
        assert_eq!(centres(&b), [0, 1]);
        assert_eq!(b[0].distinct(), 2, "the first window replicates its past");
        assert!(b[1].is_full());
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn a_run_ends_at_a_pts_jump_not_at_a_small_gap() {
        let mut r = runs(3);
        push(&mut r, 0, at(0));
        push(&mut r, 1, at(FD));
        // 4 frame durations is the default max-gap: a missing frame or three continue
        assert_eq!(push(&mut r, 2, at(5 * FD)), None);
        assert_eq!(push(&mut r, 3, at(10 * FD)), Some(Break::PtsJump));
        // the old run's last windows are ready at once, without a full batch
        let b = r.take_batch(8).unwrap();
        assert_eq!(centres(&b), [0, 1, 2]);
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn backwards_pts_and_discont_without_a_rate_break_the_run() {
        let mut r = runs(3);
        push(&mut r, 0, at(FD));
        assert_eq!(push(&mut r, 1, at(0)), Some(Break::PtsBackwards));

        let mut r = FrameRuns::new(3);
        r.configure((4, 2), 1, None);
        push(&mut r, 0, at(0));
        assert_eq!(push(&mut r, 1, at(FD)), None);
        let discont = Arrival {
            pts: Some(2 * FD),
            discont: true,
        };
        assert_eq!(push(&mut r, 2, discont), Some(Break::Discont));
        // with a known rate, a DISCONT that follows closely continues the window
        let mut r = runs(3);
        push(&mut r, 0, at(0));
        assert_eq!(
            push(
                &mut r,
                1,
                Arrival {
                    pts: Some(FD),
                    discont: true
                }
            ),
            None
        );
    }

    #[test]
    fn a_scene_cut_breaks_the_run() {
        let mut r = runs(3);
        let c = Continuity::default();
        r.push(grey(0.0), 0, at(0), c).unwrap();
        r.push(grey(0.0), 1, at(FD), c).unwrap();
        let brk = r.push(grey(1.0), 2, at(2 * FD), c).unwrap();
        assert_eq!(brk, Some(Break::SceneCut));
        let off = Continuity {
            scene_cut_threshold: 0.0,
            ..c
        };
        assert_eq!(r.push(grey(0.0), 3, at(3 * FD), off).unwrap(), None);
    }

    #[test]
    fn gaps_finish_and_reset() {
        let mut r = runs(3);
        push(&mut r, 0, at(0));
        push(&mut r, 1, at(FD));
        assert_eq!(
            r.gap(2 * FD, Some(FD), 4),
            None,
            "a one-frame gap continues"
        );
        assert_eq!(r.gap(3 * FD, Some(20 * FD), 4), Some(Break::PtsJump));
        assert_eq!(centres(&r.take_batch(4).unwrap()), [0, 1]);
        push(&mut r, 2, at(30 * FD));
        r.finish();
        assert_eq!(centres(&r.take_batch(4).unwrap()), [2]);
        push(&mut r, 3, at(31 * FD));
        push(&mut r, 4, at(32 * FD));
        r.reset();
        assert_eq!(r.pending(), 0);
        assert!(r.take_batch(1).is_none());
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_refused() {
        let mut r = runs(3);
        let err = r
            .push(vec![0.0; 5], 0, at(0), Continuity::default())
            .unwrap_err();
        assert!(err.contains("4x2"), "{err}");
        assert_eq!(r.pending(), 0);
    }
}
