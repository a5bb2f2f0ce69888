// SPDX-License-Identifier: MIT OR Apache-2.0

//! Sequencing, without GStreamer: a serialized event that arrives behind frames still in the
//! window is held, and goes out just before the output of the first frame that arrived after
//! it; outputs leave in arrival order, each with the events before it (a dropped output's
//! events still go); the first output after a dropped one is a discontinuity.

use std::collections::VecDeque;

/// Events `E` and output buffers `B` in the order they must leave.
#[derive(Debug)]
pub struct Sequencer<E, B> {
    /// Held events, with the number of the first frame they precede.
    held: VecDeque<(u64, E)>,
    next_frame: u64,
    /// An output was dropped: the next one is a discontinuity.
    discont_next: bool,
    /// Outputs (with the events before each) not yet handed downstream.
    outbox: VecDeque<(Vec<E>, Option<B>)>,
}

impl<E, B> Default for Sequencer<E, B> {
    fn default() -> Self {
        Self {
            held: VecDeque::new(),
            next_frame: 0,
            discont_next: false,
            outbox: VecDeque::new(),
        }
    }
}

impl<E, B> Sequencer<E, B> {
    /// Numbers an arriving frame: its output's place among the held events.
    pub fn next_frame(&mut self) -> u64 {
        self.next_frame += 1;
        self.next_frame - 1
    }

    /// Holds `event` behind every frame received so far.
    pub fn hold(&mut self, event: E) {
        self.held.push_back((self.next_frame, event));
    }

    /// Queues the output of frame `frame` (`None`: dropped) with the held events that go before
    /// it; `mark` flags the first output after a drop as a discontinuity. Outputs are queued in
    /// frame order.
    pub fn queue(&mut self, frame: u64, out: Option<B>, mark: impl FnOnce(&mut B)) {
        let out = match out {
            Some(mut b) => {
                if std::mem::take(&mut self.discont_next) {
                    mark(&mut b);
                }
                Some(b)
            }
            None => {
                self.discont_next = true;
                None
            }
        };
        let mut events = Vec::new();
        while self.held.front().is_some_and(|(f, _)| *f <= frame) {
            events.extend(self.held.pop_front().map(|(_, e)| e));
        }
        self.outbox.push_back((events, out));
    }

    /// The next output to hand downstream, with the events that go before it.
    pub fn pop(&mut self) -> Option<(Vec<E>, Option<B>)> {
        self.outbox.pop_front()
    }

    /// Outputs queued and not yet taken.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// The held events that no output will carry: at the end of a run, once every output has
    /// been taken.
    pub fn drain_held(&mut self) -> Vec<E> {
        self.held.drain(..).map(|(_, e)| e).collect()
    }

    /// A flush: forgets the queued outputs and the pending discontinuity; returns the held
    /// events (the caller keeps the sticky ones).
    pub fn flush(&mut self) -> Vec<E> {
        self.outbox.clear();
        self.discont_next = false;
        self.drain_held()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffers are (frame, discont) pairs, events strings.
    type Seq = Sequencer<&'static str, (u64, bool)>;
    type Out = (Vec<&'static str>, Option<(u64, bool)>);

    fn out(s: &mut Seq, frame: u64, dropped: bool) {
        s.queue(frame, (!dropped).then_some((frame, false)), |b| b.1 = true);
    }

    fn drain(s: &mut Seq) -> Vec<Out> {
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn held_events_go_out_before_the_first_frame_that_followed_them() {
        let mut s = Seq::default();
        let f0 = s.next_frame();
        s.hold("tag");
        let f1 = s.next_frame();
        s.hold("segment");
        s.hold("tag2");
        let f2 = s.next_frame();
        for f in [f0, f1, f2] {
            out(&mut s, f, false);
        }
        assert_eq!(s.queued(), 3);
        assert_eq!(
            drain(&mut s),
            [
                (vec![], Some((0, false))),
                (vec!["tag"], Some((1, false))),
                (vec!["segment", "tag2"], Some((2, false))),
            ]
        );
        s.hold("eos");
        assert_eq!(
            s.drain_held(),
            ["eos"],
            "no output carries an event after the last frame"
        );
    }

    #[test]
    fn a_dropped_output_keeps_its_events_and_the_next_one_is_a_discontinuity() {
        let mut s = Seq::default();
        let frames: Vec<u64> = (0..4)
            .map(|i| {
                if i == 2 {
                    s.hold("tag");
                }
                s.next_frame()
            })
            .collect();
        out(&mut s, frames[0], false);
        out(&mut s, frames[1], true);
        out(&mut s, frames[2], true);
        out(&mut s, frames[3], false);
        assert_eq!(
            drain(&mut s),
            [
                (vec![], Some((0, false))),
                (vec![], None),
                (vec!["tag"], None),
                (vec![], Some((3, true))),
            ]
        );
        // only the first output after a drop
        let f = s.next_frame();
        out(&mut s, f, false);
        assert_eq!(drain(&mut s), [(vec![], Some((4, false)))]);
    }

    #[test]
    fn a_flush_forgets_outputs_and_the_discontinuity_and_returns_held_events() {
        let mut s = Seq::default();
        let f0 = s.next_frame();
        out(&mut s, f0, false);
        let f1 = s.next_frame();
        out(&mut s, f1, true);
        s.hold("stream-start");
        s.next_frame();
        assert_eq!(s.flush(), ["stream-start"]);
        assert_eq!(s.queued(), 0);
        let f = s.next_frame();
        out(&mut s, f, false);
        assert_eq!(drain(&mut s), [(vec![], Some((3, false)))]);
    }
}
