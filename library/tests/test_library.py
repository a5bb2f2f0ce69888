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
MODEL = ROOT / "tests/fixtures/fixture-x2-t5.onnx"


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


def test_context_covers_the_largest_window_shipped():
    import onnxruntime as ort

    from mstgansr_library.plan import CONTEXT

    parts = (".extractor.onnx", ".fusion.onnx")
    files = [p for p in (ROOT / "models").glob("mstgan-*.onnx") if not p.name.endswith(parts)]
    meta = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).get_modelmeta() for p in files]
    windows = [int(m.custom_metadata_map["window"]) for m in meta]
    assert len(files) >= 10 and CONTEXT >= (max(windows) - 1) // 2, (CONTEXT, max(windows))


def test_a_user_model_gets_the_context_its_window_needs():
    from mstgansr_library.plan import CONTEXT, context_for

    assert context_for(None) == CONTEXT and context_for(3) == CONTEXT
    assert context_for(2 * CONTEXT + 5) == CONTEXT + 2
    chunks = plan([0, 10, 20], 30, 10, context_for(2 * CONTEXT + 5))
    assert chunks[1].lead == CONTEXT + 2 and chunks[1].read_to == 20 + CONTEXT + 2


def test_a_model_the_element_would_refuse_is_refused_before_any_work(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    clip = tmp_path / "clip.mp4"
    make_clip(clip, 1, audio=False)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    bare = tmp_path / "bare.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])), bare)
    for model, says in ((junk, "not a loadable ONNX file"), (bare, "no odd 'window' in its metadata")):
        r = library([str(clip), "--out", str(tmp_path / "out"), "--model", str(model)])
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


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


def stream_line(path: Path, kind: str) -> str:
    text = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(l for l in text.splitlines() if f": {kind}:" in l)


def test_ten_bit_stays_ten_bit_full_chroma_on_request_and_subtitles_survive(tmp_path):
    lib = tmp_path / "in"
    lib.mkdir()
    src = "testsrc2=size=70x50:rate=10:duration=2"
    for name, fmt in (("deep.mp4", "yuv420p10le"), ("eight.mp4", "yuv420p")):
        subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src, "-c:v", "libx264",
                        "-qp", "0", "-g", "10", "-pix_fmt", fmt, str(tmp_path / name)], check=True)  # fmt: skip
    (tmp_path / "subs.srt").write_text("1\n00:00:00,500 --> 00:00:01,500\nhello from the library\n\n")
    # subtitles muxed in a second step: an SRT input beside -shortest never ends
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(tmp_path / "deep.mp4"),
                    "-i", str(tmp_path / "subs.srt"), "-map", "0", "-map", "1", "-c:v", "copy", "-c:s", "mov_text",
                    str(lib / "deep.mp4")], check=True)  # fmt: skip
    assert probe(str(lib / "deep.mp4")).deep and probe(str(lib / "deep.mp4")).subtitles == 1

    # lossless and chunked: the 10-bit path's layouts (70 px: padded chroma rows) against 8-bit
    r = library([str(lib / "deep.mp4"), "--out", str(tmp_path / "lossless"), "--chunk-seconds", "1"])
    assert r.returncode == 0, r.stderr
    ref = library([str(tmp_path / "eight.mp4"), "--out", str(tmp_path / "ref"), "--chunk-seconds", "100"])
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "lossless/deep.mp4"
    assert "yuv420p10le" in stream_line(out, "Video")
    a, b = frames(out).astype(int), frames(tmp_path / "ref/eight.mp4").astype(int)
    assert a.shape == b.shape == (20, 140 * 100 * 3 // 2)
    # the same picture from 10-bit input: rounding apart, no layout garbage
    assert np.abs(a - b).mean() < 0.6 and np.percentile(np.abs(a - b), 99.9) <= 3
    text = subprocess.run([ffmpeg(), "-loglevel", "error", "-i", str(out), "-map", "0:s:0", "-f", "srt", "-"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "hello from the library" in text and "00:00:00,500 --> 00:00:01,500" in text

    # the playable profiles upscale_file writes
    for chroma, profile, fmt in (("420", "(High 10)", "yuv420p10le"), ("444", "(High 4:4:4 Predictive)", "yuv444p10le")):
        r = library([str(lib / "deep.mp4"), "--out", str(tmp_path / chroma), "--chunk-seconds", "1",
                     "--quantizer", "18", "--chroma", chroma])  # fmt: skip
        assert r.returncode == 0, r.stderr
        line = stream_line(tmp_path / chroma / "deep.mp4", "Video")
        assert profile in line and fmt in line and "140x100" in line, line
        assert probe(str(tmp_path / chroma / "deep.mp4")).n_frames == 20


@pytest.fixture(autouse=True)
def _plugin():
    if not os.environ.get("GST_PLUGIN_PATH"):
        pytest.fail("GST_PLUGIN_PATH must name the built plugin's folder (make test-library sets it)")
