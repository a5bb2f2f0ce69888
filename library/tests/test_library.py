"""The library command end to end on small clips through a fixture model (CPU, local Ray):
chunk borders match an unchunked run, a killed run resumes with only the missing chunks, a
failing chunk is retried and reported, a corrupt file is reported while the others complete,
audio survives. Needs the plugin on GST_PLUGIN_PATH (make test-library sets it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mstgansr_library.plan import plan
from mstgansr_library.probe import ffmpeg, probe

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/fixtures/fixture-x2-t5.onnx"


def make_clip(path: Path, seconds: float, gop: int = 10, audio: bool = True, size: str = "64x48") -> None:
    cmd = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
           f"testsrc2=size={size}:rate=10:duration={seconds}"]  # fmt: skip
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-pix_fmt", "yuv420p", "-shortest", str(path)]  # fmt: skip
    subprocess.run(cmd, check=True)


def frames(path: Path) -> np.ndarray:
    v = probe(str(path))
    raw = subprocess.run([ffmpeg(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(v.n_frames, -1)


def library(args: list[str], env_extra: dict | None = None, **kw):
    env = {**os.environ, **(env_extra or {})}
    cmd = [sys.executable, "-m", "mstgansr_library", "--scale", "2", "--model", str(MODEL), "--quantizer", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, **kw)


def test_chunks_start_at_keyframes_and_carry_their_context():
    chunks = plan([0, 10, 20, 25, 30], 40, min_frames=10, context=3)
    assert [(c.start, c.end) for c in chunks] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    assert [(c.read_from, c.read_to) for c in chunks] == [(0, 13), (7, 23), (17, 33), (27, 40)]
    assert chunks[1].lead == 3 and chunks[0].lead == 0
    assert plan([], 5, 10) == plan([0], 5, 10) and len(plan([], 5, 10)) == 1
    assert plan([0], 0, 10) == []


def test_chunked_output_equals_the_unchunked_run_with_audio(tmp_path):
    clip = tmp_path / "in" / "clip.mp4"
    clip.parent.mkdir()
    # 70x50: rows whose chroma GStreamer pads (35 -> 36 bytes), in and out (70 -> 72)
    make_clip(clip, 3, size="70x50")
    whole = library([str(clip), "--out", str(tmp_path / "whole"), "--chunk-seconds", "100"])
    assert whole.returncode == 0, whole.stderr
    chunked = library([str(clip), "--out", str(tmp_path / "chunked"), "--chunk-seconds", "1"])
    assert chunked.returncode == 0, chunked.stderr
    assert "3 chunks" in chunked.stderr and "1 chunks" in whole.stderr
    a, b = frames(tmp_path / "whole/clip.mp4"), frames(tmp_path / "chunked/clip.mp4")
    assert a.shape == b.shape == (30, 140 * 100 * 3 // 2)
    # every frame, the chunk borders (9/10, 19/20) included, within 1/255
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    src, out = probe(str(clip)), probe(str(tmp_path / "chunked/clip.mp4"))
    assert out.n_frames == src.n_frames and np.allclose(out.times, src.times, atol=1e-3)
    assert (out.width, out.height) == (140, 100) and out.audio == 1


def test_a_killed_run_resumes_with_the_missing_chunks_only(tmp_path):
    clip = tmp_path / "in" / "long.mp4"
    clip.parent.mkdir()
    make_clip(clip, 8)
    out = tmp_path / "out"
    # one task at a time, so the kill lands between chunks
    args = [str(clip), "--out", str(out), "--chunk-seconds", "1", "--cpus-per-task", "2"]
    env = {**os.environ}
    p = subprocess.Popen([sys.executable, "-m", "mstgansr_library", "--scale", "2", "--model", str(MODEL),
                          "--quantizer", "0", *args], stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    manifest = None
    while time.time() < deadline and p.poll() is None:
        found = list(out.glob(".mstgansr-library/*/manifest.json"))
        if found and '"0"' in found[0].read_text():
            manifest = found[0]
            break
        time.sleep(0.05)
    assert manifest is not None, "no chunk finished"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    # the killed driver's local Ray (its raylet outlives a SIGKILL)
    subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True, check=True)
    assert not (out / "long.mp4").exists()
    again = library(args)
    assert again.returncode == 0, again.stderr
    done = int(again.stderr.split("resuming: ")[1].split(" of ")[0])
    assert 1 <= done < 8, again.stderr
    fresh = library([str(clip), "--out", str(tmp_path / "fresh"), "--chunk-seconds", "1"])
    assert fresh.returncode == 0, fresh.stderr
    assert np.array_equal(frames(out / "long.mp4"), frames(tmp_path / "fresh/long.mp4"))
    # a finished output is never rewritten
    before = (out / "long.mp4").stat().st_mtime_ns
    third = library(args)
    assert third.returncode == 0 and "left as it is" in third.stderr
    assert (out / "long.mp4").stat().st_mtime_ns == before


def test_a_failing_chunk_is_retried_and_reported_and_a_corrupt_file_skipped(tmp_path):
    lib = tmp_path / "in"
    lib.mkdir()
    make_clip(lib / "a.mp4", 3)
    make_clip(lib / "b.mp4", 3, audio=False)
    (lib / "broken.mp4").write_bytes((lib / "a.mp4").read_bytes()[:3000])
    out = tmp_path / "out"
    args = [str(lib), "--out", str(out), "--chunk-seconds", "1", "--retries", "1"]
    r = library(args, {"MSTGANSR_LIBRARY_FAULT": "b.mp4:1"})
    assert r.returncode == 1
    assert "broken.mp4: not a readable video" in r.stderr
    assert "b.mp4: chunk 1 failed after 1 retries: " in r.stderr and "injected fault" in r.stderr
    assert (out / "a.mp4").exists() and not (out / "b.mp4").exists()
    # the fault gone, a rerun leaves a.mp4 as it is and runs only b's failed chunk
    r = library(args)
    assert "a.mp4 exists, left as it is" in r.stderr, r.stderr
    assert "resuming: 2 of 3 chunks already done" in r.stderr and "1 chunks to run" in r.stderr, r.stderr
    assert (out / "b.mp4").exists() and probe(str(out / "b.mp4")).n_frames == 30


@pytest.fixture(autouse=True)
def _plugin():
    if not os.environ.get("GST_PLUGIN_PATH"):
        pytest.fail("GST_PLUGIN_PATH must name the built plugin's folder (make test-library sets it)")
