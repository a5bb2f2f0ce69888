// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cheap scene-cut detection on the low-resolution frames, so that no output borrows detail
//! from the other side of a cut.
//!
//! The score is FFmpeg `scdet`'s: the mean absolute luma difference to the previous frame
//! (MAFD, in percent of full scale), minus how far the previous frame differed from its own
//! predecessor, `min(mafd, mafd - prev_mafd)`. Fast motion raises both terms and cancels out;
//! a cut raises only the first. Luma is sampled on a 2x2 grid (a quarter of the pixels).

#[derive(Debug, Default)]
pub struct SceneCutDetector {
    prev: Vec<f32>,
    prev_mafd: Option<f32>,
}

impl SceneCutDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the previous frame (a new segment or a flush).
    pub fn reset(&mut self) {
        self.prev.clear();
        self.prev_mafd = None;
    }

    /// Scores `rgb` (planar `[3, H, W]` in [0, 1]) against the previous frame and keeps it;
    /// `None` for the first two frames after a reset or a size change.
    pub fn score(&mut self, rgb: &[f32], width: usize, height: usize) -> Option<f32> {
        let n = width * height;
        let (r, g, b) = (&rgb[..n], &rgb[n..2 * n], &rgb[2 * n..3 * n]);
        let mut luma = Vec::with_capacity(n.div_ceil(4));
        for y in (0..height).step_by(2) {
            for x in (0..width).step_by(2) {
                let i = y * width + x;
                luma.push(0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]);
            }
        }
        let score = if self.prev.len() == luma.len() && !luma.is_empty() {
            let sad: f32 = luma
                .iter()
                .zip(&self.prev)
                .map(|(a, b)| (a - b).abs())
                .sum();
            let mafd = 100.0 * sad / luma.len() as f32;
            // no verdict before the second difference: without the previous MAFD, fast motion
            // and a cut look alike
            let score = self.prev_mafd.map(|p| mafd.min(mafd - p).max(0.0));
            self.prev_mafd = Some(mafd);
            score
        } else {
            self.prev_mafd = None;
            None
        };
        self.prev = luma;
        score
    }

    /// Whether `rgb` starts a new scene at `threshold` (0 = detection off).
    pub fn is_cut(&mut self, rgb: &[f32], width: usize, height: usize, threshold: f32) -> bool {
        let score = self.score(rgb, width, height);
        threshold > 0.0 && score.is_some_and(|s| s >= threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        let mut v = vec![0.0; 3 * w * h];
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    v[c * w * h + y * w + x] = f(x, y);
                }
            }
        }
        v
    }

    #[test]
    fn motion_is_not_a_cut_but_a_new_scene_is() {
        let (w, h) = (64, 48);
        let mut d = SceneCutDetector::new();
        let scene_a = |t: usize| {
            frame(w, h, move |x, _| {
                0.5 + 0.4 * ((x + 3 * t) as f32 * 0.2).sin()
            })
        };
        let scene_b = |t: usize| frame(w, h, move |_, y| 0.2 + 0.6 * (((y + t) % 7) as f32 / 7.0));
        let mut cuts = vec![];
        for t in 0..6 {
            cuts.push(d.is_cut(&scene_a(t), w, h, 10.0));
        }
        for t in 0..6 {
            cuts.push(d.is_cut(&scene_b(t), w, h, 10.0));
        }
        let expect: Vec<bool> = (0..12).map(|i| i == 6).collect();
        assert_eq!(cuts, expect);
    }

    #[test]
    fn threshold_zero_is_off() {
        let mut d = SceneCutDetector::new();
        assert!(!d.is_cut(&[0.0; 12], 2, 2, 0.0));
        assert_eq!(d.score(&[1.0; 12], 2, 2), None);
        // the second jump is as large as the first: fast change, not a new cut
        assert_eq!(d.score(&[0.0; 12], 2, 2), Some(0.0));
        assert!(!d.is_cut(&[0.0; 12], 2, 2, 0.0));
    }
}
