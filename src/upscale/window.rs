// SPDX-License-Identifier: MIT OR Apache-2.0

//! The temporal window: which input frames form the model input for each output frame.
//!
//! Output frame `t` needs frames `t-r ..= t+r` (r = (T-1)/2). It is released as soon as frame
//! `t+r` has arrived; frames before the segment's first frame and after its last (at drain) are
//! replaced by the first / last frame (edge replication). No GStreamer types here.

use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug)]
pub struct FrameWindow<F> {
    radius: usize,
    /// Received frames still needed, oldest first; `frames[0]` has index `first_kept`.
    frames: VecDeque<Arc<F>>,
    first_kept: u64,
    /// Index the next pushed frame gets (= frames received since the last reset).
    next_index: u64,
    /// Index of the next frame to output.
    next_output: u64,
}

impl<F> FrameWindow<F> {
    /// `window` is the model's T (odd, >= 1).
    pub fn new(window: usize) -> Self {
        assert!(window % 2 == 1, "window must be odd");
        Self {
            radius: window / 2,
            frames: VecDeque::with_capacity(window),
            first_kept: 0,
            next_index: 0,
            next_output: 0,
        }
    }

    pub fn window(&self) -> usize {
        2 * self.radius + 1
    }

    /// Frames received but not yet output.
    pub fn pending(&self) -> usize {
        (self.next_index - self.next_output) as usize
    }

    /// Adds a frame; returns the window of the output that became ready, if any
    /// (`window[r]` is the frame to upscale).
    pub fn push(&mut self, frame: F) -> Option<Vec<Arc<F>>> {
        self.frames.push_back(Arc::new(frame));
        self.next_index += 1;
        let last = self.next_index - 1;
        if last >= self.next_output + self.radius as u64 {
            Some(self.take_output(last))
        } else {
            None
        }
    }

    /// Releases every pending output, replicating the last frame into the missing future.
    pub fn drain(&mut self) -> Vec<Vec<Arc<F>>> {
        let mut out = Vec::with_capacity(self.pending());
        if self.next_index == 0 {
            return out;
        }
        let last = self.next_index - 1;
        while self.next_output <= last {
            out.push(self.take_output(last));
        }
        self.clear();
        out
    }

    /// Forgets everything: the next pushed frame starts a new segment.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.first_kept = 0;
        self.next_index = 0;
        self.next_output = 0;
    }

    fn take_output(&mut self, last: u64) -> Vec<Arc<F>> {
        let t = self.next_output as i64;
        let r = self.radius as i64;
        let win = (t - r..=t + r)
            .map(|i| {
                let i = i.clamp(0, last as i64) as u64;
                // clamp to what is kept: frames before first_kept were only dropped once unneeded
                let k = i.max(self.first_kept) - self.first_kept;
                self.frames[k as usize].clone()
            })
            .collect();
        self.next_output += 1;
        // keep frames from next_output - r on
        let keep_from = self.next_output.saturating_sub(self.radius as u64);
        while self.first_kept < keep_from && !self.frames.is_empty() {
            self.frames.pop_front();
            self.first_kept += 1;
        }
        win
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(w: &[Arc<u32>]) -> Vec<u32> {
        w.iter().map(|f| **f).collect()
    }

    #[test]
    fn t5_stream_with_edges() {
        let mut w = FrameWindow::new(5);
        let mut outs = vec![];
        for i in 0..6 {
            if let Some(win) = w.push(i) {
                outs.push(ids(&win));
            }
        }
        assert_eq!(
            outs,
            vec![
                vec![0, 0, 0, 1, 2],
                vec![0, 0, 1, 2, 3],
                vec![0, 1, 2, 3, 4],
                vec![1, 2, 3, 4, 5]
            ]
        );
        let rest: Vec<_> = w.drain().iter().map(|x| ids(x)).collect();
        assert_eq!(rest, vec![vec![2, 3, 4, 5, 5], vec![3, 4, 5, 5, 5]]);
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn short_segment_and_t1() {
        let mut w = FrameWindow::new(5);
        assert!(w.push(7).is_none());
        let rest: Vec<_> = w.drain().iter().map(|x| ids(x)).collect();
        assert_eq!(rest, vec![vec![7, 7, 7, 7, 7]]);
        let mut w1 = FrameWindow::new(1);
        assert_eq!(ids(&w1.push(3).unwrap()), vec![3]);
        assert!(w1.drain().is_empty());
    }

    #[test]
    fn clear_starts_clean() {
        let mut w = FrameWindow::new(3);
        w.push(1);
        w.push(2);
        w.clear();
        assert!(w.push(10).is_none());
        assert_eq!(ids(&w.push(11).unwrap()), vec![10, 10, 11]);
    }
}
