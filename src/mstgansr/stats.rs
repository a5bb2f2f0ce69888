// SPDX-License-Identifier: MIT OR Apache-2.0

//! The `stats` property: the element's counters, and what it reads from elsewhere when asked
//! (the upscaler's progress, the shared engine, the timing), as one structure.

/// Counters of this element's stream.
#[derive(Debug, Default, Clone)]
pub(super) struct Stats {
    pub(super) frames_in: u64,
    pub(super) frames_out: u64,
    pub(super) inferred: u64,
    pub(super) dropped: u64,
    pub(super) resized: u64,
    pub(super) restarts: u64,
    pub(super) scene_cuts: u64,
    pub(super) full_windows: u64,
    /// Tiles per frame at the current caps.
    pub(super) tiles: u64,
    /// Times a live source's stream moved to the fast tier.
    pub(super) tier_changes: u64,
}

/// What `stats` reads outside the counters when it is asked.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub tiles_done: u64,
    pub engine_users: u64,
    pub cross_stream: bool,
    pub batch_inferences: u64,
    pub batch_windows: u64,
    pub batch_shared: u64,
    pub processing: Option<gst::ClockTime>,
    pub latency: Option<gst::ClockTime>,
}

impl Stats {
    pub(super) fn structure(&self, o: &Shared) -> gst::Structure {
        let ns = |t: Option<gst::ClockTime>| t.map_or(0, gst::ClockTime::nseconds);
        gst::Structure::builder("application/x-mstgansr-stats")
            .field("frames-in", self.frames_in)
            .field("frames-out", self.frames_out)
            .field("inferred", self.inferred)
            .field("dropped", self.dropped)
            .field("resized", self.resized)
            .field("restarts", self.restarts)
            .field("scene-cuts", self.scene_cuts)
            .field("full-windows", self.full_windows)
            .field("tiles", self.tiles)
            .field("tiles-done", o.tiles_done)
            .field("tier-changes", self.tier_changes)
            .field("engine-users", o.engine_users)
            .field("cross-stream", o.cross_stream)
            .field("batch-inferences", o.batch_inferences)
            .field("batch-windows", o.batch_windows)
            .field("batch-shared", o.batch_shared)
            .field("processing-time", ns(o.processing))
            .field("latency", ns(o.latency))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structure_carries_each_counter_under_its_documented_name() {
        gst::init().unwrap();
        let s = Stats {
            frames_in: 9,
            frames_out: 8,
            dropped: 1,
            tier_changes: 1,
            ..Stats::default()
        };
        let st = s.structure(&Shared {
            engine_users: 3,
            cross_stream: true,
            batch_windows: 12,
            latency: Some(gst::ClockTime::from_mseconds(280)),
            ..Shared::default()
        });
        assert_eq!(st.get::<u64>("frames-in").unwrap(), 9);
        assert_eq!(st.get::<u64>("frames-out").unwrap(), 8);
        assert_eq!(st.get::<u64>("dropped").unwrap(), 1);
        assert_eq!(st.get::<u64>("tier-changes").unwrap(), 1);
        assert_eq!(st.get::<u64>("engine-users").unwrap(), 3);
        assert!(st.get::<bool>("cross-stream").unwrap());
        assert_eq!(st.get::<u64>("batch-windows").unwrap(), 12);
        assert_eq!(st.get::<u64>("latency").unwrap(), 280_000_000);
        assert_eq!(st.get::<u64>("processing-time").unwrap(), 0);
        assert_eq!(st.n_fields(), 18);
    }
}
