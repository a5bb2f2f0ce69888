"""onnxruntime CPU sessions as the tools open them, and timing them against each other."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np


def cpu_session(path: Path, threads: int, spin: bool = True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if not spin:  # as the element runs its extractor/fusion pair: pools sleep when done
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def timed(sessions: list, feeds: list[dict], runs: int) -> list[float]:
    """Median seconds per run of each session, timed in turn (run after run) so that drifts of a
    shared machine's speed hit them all alike and their ratios hold."""
    for sess, feed in zip(sessions, feeds):
        sess.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for sess, feed, ts in zip(sessions, feeds, times):
            t = time.perf_counter()
            sess.run(None, feed)
            ts.append(time.perf_counter() - t)
    return [float(np.median(ts)) for ts in times]


def cpu_speeds(paths: list[Path], threads: int = 2, hw: tuple[int, int] = (144, 180), runs: int = 5) -> list[float]:
    """Median seconds per window of each model."""
    # timed in turn: a spinning thread pool of the session before would take the cores from the
    # next one
    sessions = [cpu_session(p, threads, spin=False) for p in paths]
    rng = np.random.default_rng(0)
    feeds = [{"frames": rng.random((1, int(s.get_modelmeta().custom_metadata_map["window"]), 3, *hw), dtype=np.float32)}
             for s in sessions]  # fmt: skip
    return timed(sessions, feeds, runs)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"

