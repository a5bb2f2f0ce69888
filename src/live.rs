// SPDX-License-Identifier: MIT OR Apache-2.0

//! Live-source policy without GStreamer: the latency the element reports and when it moved
//! enough to say so, the smoothed processing time, when sustained lateness calls for a cheaper
//! model, and when `late-frames=resize` may still spend an inference.

use std::collections::VecDeque;
use std::time::Duration;

use crate::engine::CrossBatch;

/// How much of the recent past counts: two seconds of frames, at least this many outputs.
pub const MIN_SPAN: usize = 25;
/// The share of recent outputs not from the model (dropped or resized) that is sustained
/// lateness.
pub const LATE_SHARE_PERCENT: usize = 50;
/// Under `late-frames=resize`, the longest inference the element starts: the frames that arrive
/// meanwhile wait in the queue in front, and the recipes' leaky queues hold one second.
pub const MAX_STALL: Duration = Duration::from_millis(500);

/// The latency the element adds (ns): (T-1)/2 frames of look-ahead (`radius`) and batch - 1
/// frames of batching, plus two inferences (the one running when a frame's window completes,
/// and its own).
pub fn latency(frame_ns: u64, radius: u64, batch: u64, processing_ns: u64) -> u64 {
    frame_ns
        .saturating_mul(radius + batch.max(1) - 1)
        .saturating_add(processing_ns.saturating_mul(2))
}

/// Cross-stream batching for a stream: live sources only (a file is better served by a batch of
/// its own windows, which waits for nobody), with a shared engine, more than one window an
/// inference and a wait to gather them in.
pub fn cross_batch(live: bool, shared: bool, batch: u32, wait_ms: u32) -> Option<CrossBatch> {
    (live && shared && batch > 1 && wait_ms > 0).then(|| CrossBatch {
        max: batch as usize,
        wait: Duration::from_millis(u64::from(wait_ms)),
    })
}

/// Folds one inference's time into the estimate: quick to rise, slow to fall, so the latency
/// covers the slow runs.
pub fn smoothed(previous_ns: Option<u64>, took_ns: u64) -> u64 {
    match previous_ns {
        Some(p) if took_ns > p => p / 2 + took_ns / 2,
        Some(p) => (p / 8) * 7 + took_ns / 8,
        None => took_ns,
    }
}

/// Whether a new latency is worth a Latency message: first known, or moved by more than a fifth
/// (of at least 1 ms, so jitter on tiny latencies does not flood the bus).
pub fn latency_moved(reported_ns: Option<u64>, new_ns: u64) -> bool {
    match reported_ns {
        None => true,
        Some(old) => {
            let (a, b) = (old as f64, new_ns as f64);
            (a - b).abs() > 0.2 * a.max(1e6)
        }
    }
}

/// Whether the outputs of the last two seconds came from the model, to tell a burst of late
/// frames (which `late-frames` handles) from a model that no longer keeps up.
#[derive(Debug, Clone)]
pub struct Lateness {
    recent: VecDeque<bool>,
    span: usize,
}

impl Lateness {
    /// `frame_ns`: the nominal frame duration (0 or unknown: [`MIN_SPAN`] outputs).
    pub fn new(frame_ns: Option<u64>) -> Self {
        let span = frame_ns
            .filter(|f| *f > 0)
            .map_or(MIN_SPAN, |f| (2_000_000_000 / f) as usize)
            .max(MIN_SPAN);
        Self {
            recent: VecDeque::with_capacity(span),
            span,
        }
    }

    pub fn span(&self) -> usize {
        self.span
    }

    /// Records one output; true when a full span is recorded and at least
    /// [`LATE_SHARE_PERCENT`] of it was not from the model.
    pub fn record(&mut self, from_model: bool) -> bool {
        if self.recent.len() == self.span {
            self.recent.pop_front();
        }
        self.recent.push_back(from_model);
        self.recent.len() == self.span && self.late() * 100 >= self.span * LATE_SHARE_PERCENT
    }

    /// Outputs in the span not from the model.
    pub fn late(&self) -> usize {
        self.recent.iter().filter(|m| !**m).count()
    }

    /// Starts over (a new model, new caps, a flush).
    pub fn clear(&mut self) {
        self.recent.clear();
    }
}

/// Under `late-frames=resize`: whether an inference that takes `processing` may start. A longer
/// one leaves the frames arriving meanwhile to be dropped in front of the element before they
/// could be resized, and the frame rate falls; resizing every frame holds it.
pub fn resize_may_infer(processing: Option<Duration>) -> bool {
    processing.is_none_or(|p| p <= MAX_STALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_stream_batching_is_for_live_shared_streams_that_ask_for_it() {
        let on = cross_batch(true, true, 4, 20).unwrap();
        assert_eq!((on.max, on.wait), (4, Duration::from_millis(20)));
        assert_eq!(
            cross_batch(false, true, 4, 20),
            None,
            "files batch their own windows"
        );
        assert_eq!(cross_batch(true, false, 4, 20), None, "nothing to share");
        assert_eq!(
            cross_batch(true, true, 1, 20),
            None,
            "one window an inference"
        );
        assert_eq!(
            cross_batch(true, true, 4, 0),
            None,
            "batch-wait=0: own windows"
        );
    }

    #[test]
    fn latency_counts_the_look_ahead_the_batch_and_two_inferences() {
        // T=5 at 25 fps, batch 1, 100 ms a window: 2 frames + 2 inferences
        assert_eq!(latency(40_000_000, 2, 1, 100_000_000), 280_000_000);
        // batch 4 waits for 3 more frames
        assert_eq!(latency(40_000_000, 2, 4, 0), 200_000_000);
        assert_eq!(latency(40_000_000, 3, 0, 0), 120_000_000);
        assert_eq!(latency(u64::MAX, 3, 1, 1), u64::MAX);
    }

    #[test]
    fn processing_rises_quickly_and_falls_slowly() {
        assert_eq!(smoothed(None, 80), 80);
        assert_eq!(smoothed(Some(80), 160), 120);
        assert_eq!(smoothed(Some(800), 0), 700);
    }

    #[test]
    fn only_a_fifth_moves_the_latency() {
        assert!(latency_moved(None, 0));
        assert!(!latency_moved(Some(100_000_000), 119_000_000));
        assert!(latency_moved(Some(100_000_000), 121_000_000));
        assert!(latency_moved(Some(100_000_000), 79_000_000));
        // under 1 ms, a fifth of a millisecond
        assert!(!latency_moved(Some(100_000), 250_000));
    }

    #[test]
    fn the_span_is_two_seconds_of_frames_and_never_short() {
        assert_eq!(Lateness::new(Some(40_000_000)).span(), 50);
        assert_eq!(Lateness::new(Some(1_000_000_000)).span(), MIN_SPAN);
        assert_eq!(Lateness::new(None).span(), MIN_SPAN);
        assert_eq!(Lateness::new(Some(0)).span(), MIN_SPAN);
    }

    #[test]
    fn a_burst_is_not_sustained_lateness() {
        let mut l = Lateness::new(Some(40_000_000));
        // 20 late outputs in a row among 50: a burst
        for i in 0..200 {
            assert!(!l.record(!(100..120).contains(&i)), "output {i}");
        }
    }

    #[test]
    fn half_of_two_seconds_late_is_sustained() {
        let mut l = Lateness::new(Some(40_000_000));
        // one in two late (a model at twice the frame time under resize): only once the span is full
        let said: Vec<bool> = (0..60).map(|i| l.record(i % 2 == 0)).collect();
        assert!(!said[..49].iter().any(|s| *s));
        assert!(said[49]);
        l.clear();
        assert!(!l.record(false));
        assert_eq!(l.late(), 1);
    }

    #[test]
    fn resize_never_starts_an_inference_longer_than_the_queue_can_wait() {
        assert!(resize_may_infer(None));
        assert!(resize_may_infer(Some(Duration::from_millis(300))));
        assert!(resize_may_infer(Some(MAX_STALL)));
        assert!(!resize_may_infer(Some(Duration::from_millis(1200))));
    }
}
