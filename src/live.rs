// SPDX-License-Identifier: MIT OR Apache-2.0

//! Live-source policy without GStreamer: when sustained lateness calls for a cheaper model, and
//! when `late-frames=resize` may still spend an inference.

use std::collections::VecDeque;
use std::time::Duration;

/// How much of the recent past counts: two seconds of frames, at least this many outputs.
pub const MIN_SPAN: usize = 25;
/// The share of recent outputs not from the model (dropped or resized) that is sustained
/// lateness.
pub const LATE_SHARE_PERCENT: usize = 50;
/// Under `late-frames=resize`, the longest inference the element starts: the frames that arrive
/// meanwhile wait in the queue in front, and the recipes' leaky queues hold one second.
pub const MAX_STALL: Duration = Duration::from_millis(500);

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
