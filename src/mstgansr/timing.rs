// SPDX-License-Identifier: MIT OR Apache-2.0

//! Timing without a pipeline: the latency the element reports and the QoS verdict on a frame,
//! from running times and clock readings the element passes in.

use crate::live;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Infer,
    /// An inference would finish this late (ns), a cheap resize would not: `late-frames`.
    TooLateToInfer(i64),
    /// Late by this much (ns) whatever is done: dropped.
    Late(i64),
}

/// Timing for latency and QoS, kept apart from the state so that neither the LATENCY query nor
/// a QoS event ever waits for an inference.
#[derive(Debug, Default)]
pub(super) struct Timing {
    pub(super) frame: Option<gst::ClockTime>,
    pub(super) radius: u64,
    /// Windows per inference: the last of a batch waits for batch - 1 more frames.
    pub(super) batch: u64,
    /// Windows batched with other streams': each may wait this long for them.
    pub(super) cross_wait: Option<gst::ClockTime>,
    /// Smoothed time of one inference (extractor + fusion), conversions included.
    pub(super) processing: Option<gst::ClockTime>,
    /// What the LATENCY query adds to upstream's; `None` until caps are known.
    pub(super) reported: Option<gst::ClockTime>,
    pub(super) upstream_live: bool,
    /// Upstream's minimum latency at caps (a jitterbuffer's, a decoder's): frames reach this
    /// element that much after their running time, so it is part of their deadline until the
    /// pipeline's latency is known.
    pub(super) upstream_min: gst::ClockTime,
    /// The pipeline latency the sinks were given (LATENCY event).
    pub(super) pipeline_latency: Option<gst::ClockTime>,
    /// From the last QoS event: outputs with an earlier running time are late.
    pub(super) earliest: Option<gst::ClockTime>,
    pub(super) proportion: f64,
}

impl Timing {
    /// The latency this element adds: (T-1)/2 frames of look-ahead and batch - 1 frames of
    /// batching, plus two inferences (the one running when a frame's window completes, and its
    /// own).
    pub(super) fn ours(&self) -> Option<gst::ClockTime> {
        let p = self.processing.map_or(0, |p| p.nseconds());
        Some(gst::ClockTime::from_nseconds(live::latency(
            self.frame?.nseconds(),
            self.radius,
            self.batch,
            p,
        )))
    }

    /// The verdict on a frame with running time `rt`, `now` being the clock's running time
    /// (`None` without a clock): already late by the last QoS event or the deadline, too late
    /// for an inference but not for a resize, or in time. Only live sources are judged by the
    /// clock; the first output is the element's to let through.
    pub(super) fn verdict(&self, rt: gst::ClockTime, now: Option<gst::ClockTime>) -> Verdict {
        if let Some(earliest) = self.earliest
            && rt <= earliest
        {
            return Verdict::Late(earliest.nseconds() as i64 - rt.nseconds() as i64);
        }
        let Some(now) = now.filter(|_| self.upstream_live) else {
            return Verdict::Infer;
        };
        // before the sinks have prerolled the pipeline's latency is unknown (a sink answers the
        // query only once it has a buffer): upstream's and ours until then
        let latency = self
            .pipeline_latency
            .or(self.ours().map(|o| o + self.upstream_min))
            .unwrap_or(gst::ClockTime::ZERO);
        let due = rt + latency;
        let inferred_at = now + self.processing.unwrap_or_default();
        if now > due {
            Verdict::Late((now - due).nseconds() as i64)
        } else if inferred_at > due {
            Verdict::TooLateToInfer((inferred_at - due).nseconds() as i64)
        } else {
            Verdict::Infer
        }
    }

    /// Live frames wait upstream: the newest one to arrive (running time `rt`) was captured
    /// more than two frame durations before `now` (a leaky queue's backlog after a slow run).
    pub(super) fn backlogged(&self, rt: gst::ClockTime, now: gst::ClockTime) -> bool {
        match self.frame.filter(|f| *f > gst::ClockTime::ZERO) {
            Some(frame) => self.upstream_live && now > rt + frame * 2,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> gst::ClockTime = gst::ClockTime::from_mseconds;

    /// A live 25 fps stream, T=5, 100 ms an inference, nothing from QoS or the sinks yet.
    fn live() -> Timing {
        Timing {
            frame: Some(MS(40)),
            radius: 2,
            batch: 1,
            processing: Some(MS(100)),
            upstream_live: true,
            proportion: 1.0,
            ..Timing::default()
        }
    }

    #[test]
    fn latency_is_the_look_ahead_and_two_inferences() {
        assert_eq!(live().ours(), Some(MS(280)));
        assert_eq!(Timing::default().ours(), None, "unknown until caps");
    }

    #[test]
    fn a_live_frame_is_judged_against_its_deadline() {
        let t = live();
        // due at rt + 280 ms (ours, nothing upstream): in time, too late to infer, late
        assert_eq!(t.verdict(MS(1000), Some(MS(1100))), Verdict::Infer);
        assert_eq!(
            t.verdict(MS(1000), Some(MS(1200))),
            Verdict::TooLateToInfer(20_000_000)
        );
        assert_eq!(
            t.verdict(MS(1000), Some(MS(1300))),
            Verdict::Late(20_000_000)
        );
        // the pipeline's latency, once known, replaces the guess; upstream's counts before
        let known = Timing {
            pipeline_latency: Some(MS(500)),
            ..live()
        };
        assert_eq!(known.verdict(MS(1000), Some(MS(1300))), Verdict::Infer);
        let jitterbuffer = Timing {
            upstream_min: MS(200),
            ..live()
        };
        assert_eq!(
            jitterbuffer.verdict(MS(1000), Some(MS(1300))),
            Verdict::Infer
        );
    }

    #[test]
    fn qos_events_judge_every_source_and_the_clock_only_live_ones() {
        let file = Timing {
            upstream_live: false,
            earliest: Some(MS(900)),
            ..live()
        };
        assert_eq!(
            file.verdict(MS(850), Some(MS(5000))),
            Verdict::Late(50_000_000)
        );
        assert_eq!(file.verdict(MS(950), Some(MS(5000))), Verdict::Infer);
        assert_eq!(live().verdict(MS(0), None), Verdict::Infer, "no clock");
    }

    #[test]
    fn a_backlog_is_a_live_frame_two_frames_old() {
        assert!(!live().backlogged(MS(1000), MS(1080)));
        assert!(live().backlogged(MS(1000), MS(1081)));
        let file = Timing {
            upstream_live: false,
            ..live()
        };
        assert!(!file.backlogged(MS(1000), MS(5000)));
    }
}
