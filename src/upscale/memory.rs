// SPDX-License-Identifier: MIT OR Apache-2.0

//! How much memory an inference may take: the smallest of what the machine has free
//! (MemAvailable), what this process's cgroup still allows, what its address-space limit
//! (RLIMIT_AS) leaves, and what the user allows (`max-memory`). Linux files only; a bound that
//! cannot be read is left out.

use std::path::Path;

use crate::engine::Arch;

/// Peak memory one inference adds to the process, onnxruntime's arena included, on a `width` x
/// `height` input with a window of `window` frames. Fitted above what `python -m
/// mstgan.tools.ort_memory` measures with the element's session options on every shipped file
/// (`models/lab/logs/ort-memory.out`): the MST network takes ~3,400 B per input pixel at T=5,
/// ~5,700 at T=7, ~8,500 at T=9 and ~8,200 at T=11 between 384 and 768 px tiles (its features
/// grow with T, in the arena's doubling regions, so not smoothly: the fit stays above all four),
/// the fast tier ~50 B x scale².
pub fn estimated_bytes(
    width: usize,
    height: usize,
    window: usize,
    scale: usize,
    arch: Arch,
) -> u64 {
    let px = (width * height) as u64;
    let per_px = match arch {
        Arch::Mst => {
            let t = window as u64;
            (50 * t * t + 600 * t).saturating_sub(850).max(1_000)
        }
        Arch::Fast => 50 * (scale * scale) as u64,
    };
    px * per_px
}

/// One limit and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub source: &'static str,
}

fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key:   <n> kB` from a /proc file like meminfo or status, in bytes.
fn proc_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

fn mem_available() -> Option<u64> {
    proc_kb(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
}

/// What the cgroup (v2, else v1) still allows: limit minus current usage.
fn cgroup_headroom() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.is_empty() {
            let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            // "max" does not parse: no limit
            if let (Some(max), Some(cur)) = (
                read_u64(dir.join("memory.max")),
                read_u64(dir.join("memory.current")),
            ) {
                return Some(max.saturating_sub(cur));
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
            if let (Some(max), Some(cur)) = (
                read_u64(dir.join("memory.limit_in_bytes")),
                read_u64(dir.join("memory.usage_in_bytes")),
            ) && max < (1u64 << 60)
            {
                return Some(max.saturating_sub(cur));
            }
        }
    }
    None
}

/// What RLIMIT_AS leaves of the address space (limit minus the current VmSize).
fn address_space_headroom() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft: u64 = line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?; // "unlimited" does not parse
    let used = proc_kb(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmSize:",
    )?;
    Some(soft.saturating_sub(used))
}

/// This process's resident memory now (VmRSS).
pub fn resident() -> Option<u64> {
    proc_kb(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmRSS:",
    )
}

/// What `max-memory` leaves: it bounds the process's peak resident memory (what `time -v`
/// reports), so what the process already holds (the model, the pipeline) is not available.
fn user_headroom(max_memory: u64, resident: Option<u64>) -> u64 {
    max_memory.saturating_sub(resident.unwrap_or(0))
}

/// Every limit that applies, smallest first; `max_memory` 0 = none from the user.
pub fn limits(max_memory: u64) -> Vec<Limit> {
    let mut l: Vec<Limit> = [
        (mem_available(), "free memory (MemAvailable)"),
        (cgroup_headroom(), "the cgroup memory limit"),
        (
            address_space_headroom(),
            "the address-space limit (ulimit -v)",
        ),
        (
            (max_memory > 0).then(|| user_headroom(max_memory, resident())),
            "max-memory (less what the process already holds)",
        ),
    ]
    .into_iter()
    .filter_map(|(b, source)| b.map(|bytes| Limit { bytes, source }))
    .collect();
    l.sort_by_key(|x| x.bytes);
    l
}

/// The tightest limit, if any can be read.
pub fn bound(max_memory: u64) -> Option<Limit> {
    limits(max_memory).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_covers_what_onnxruntime_was_measured_to_take() {
        // B per LR pixel measured at T = 5 (x2) / 7 / 9 / 11 (x4), models/lab/logs/ort-memory.out
        for (window, measured) in [(5, 3_400), (7, 5_717), (9, 8_503), (11, 8_159)] {
            let est = estimated_bytes(768, 768, window, 4, Arch::Mst) / (768 * 768);
            assert!(est >= measured, "T={window}: {est} < {measured}");
        }
        assert!(estimated_bytes(64, 64, 1, 4, Arch::Mst) > 0);
    }

    #[test]
    fn the_user_limit_wins_when_smallest() {
        let b = bound(1 << 20).unwrap();
        // a test process holds more than 1 MiB: nothing is left
        assert_eq!(b.bytes, 0);
        assert!(b.source.starts_with("max-memory"));
        assert!(
            limits(0)
                .iter()
                .all(|l| !l.source.starts_with("max-memory"))
        );
    }

    #[test]
    fn max_memory_is_what_the_process_may_hold_in_all() {
        let gib = 1 << 30;
        assert_eq!(user_headroom(gib, Some(300 << 20)), 724 << 20);
        assert_eq!(user_headroom(gib, Some(2 * gib)), 0);
        assert_eq!(user_headroom(gib, None), gib);
        // what the process holds moves while other tests run beside this one: within 256 MiB
        let held = resident().unwrap();
        let user = limits(held + gib)
            .into_iter()
            .find(|l| l.source.starts_with("max-memory"))
            .unwrap();
        assert!(user.bytes.abs_diff(gib) < 256 << 20, "{user:?}");
    }

    #[test]
    fn proc_lines_parse() {
        assert_eq!(
            proc_kb(
                "MemTotal: 10 kB\nMemAvailable:   2048 kB\n",
                "MemAvailable:"
            ),
            Some(2048 * 1024)
        );
        assert_eq!(proc_kb("VmSize:\t  12 kB", "VmSize:"), Some(12 * 1024));
    }
}
