"""One chunk: ffmpeg decodes frames ``read_from..read_to`` (context included) to raw I420,
``gst-launch-1.0 ... ! mstgansr ! ...`` upscales them, the context frames are left out, and
x264 (ffmpeg's libx264, the H.264 High 4:2:0 8-bit profile ``upscale_file`` writes) encodes the
rest into the chunk's file, written under a temporary name and renamed when complete."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from mstgansr_library.probe import ffmpeg

# for tests: "NAME:INDEX" makes that chunk of the file NAME fail, to check retries and reports
FAULT_ENV = "MSTGANSR_LIBRARY_FAULT"


class ChunkError(Exception):
    pass


def _drain(stream, sink: list[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sink.append(line)


def _ru4(x: int) -> int:
    return (x + 3) // 4 * 4


def packed_i420(w: int, h: int) -> tuple[list[int], list[int], int]:
    """ffmpeg's yuv420p raw frames (no padding): plane strides, offsets and frame size."""
    cw, ch = (w + 1) // 2, (h + 1) // 2
    return [w, cw, cw], [0, w * h, w * h + cw * ch], w * h + 2 * cw * ch


def gst_i420(w: int, h: int) -> tuple[list[int], list[int], int]:
    """GStreamer's default I420 layout (rows padded to 4 bytes): strides, offsets, size."""
    cw, ch = (w + 1) // 2, (h + 1) // 2
    sy, sc = _ru4(w), _ru4(cw)
    return [sy, sc, sc], [0, sy * h, sy * h + sc * ch], sy * h + 2 * sc * ch


def gst_to_packed(buf: bytes, w: int, h: int) -> bytes:
    """One I420 frame in GStreamer's layout as ffmpeg's packed yuv420p."""
    strides, offsets, _ = gst_i420(w, h)
    if strides == packed_i420(w, h)[0]:
        return buf
    cw, ch = (w + 1) // 2, (h + 1) // 2
    out = bytearray()
    for (pw, ph), st, off in zip(((w, h), (cw, ch), (cw, ch)), strides, offsets):
        for r in range(ph):
            out += buf[off + r * st : off + r * st + pw]
    return bytes(out)


def run_chunk(job: dict) -> dict:
    """``job``: src, name, chunk (plan.Chunk as dict), width, height, fps (num, den), times,
    element (the mstgansr properties), scale, quantizer, out (the chunk file), env."""
    c = job["chunk"]
    fault = os.environ.get(FAULT_ENV, "") or job.get("env", {}).get(FAULT_ENV, "")
    if fault == f"{job['name']}:{c['index']}":
        raise ChunkError(f"injected fault ({FAULT_ENV}={fault})")
    started = time.time()
    w, h, s = job["width"], job["height"], job["scale"]
    num, den = job["fps"]
    n_in = c["read_to"] - c["read_from"]
    # half a frame early: the first frame at or after it is read_from, whatever the rounding
    t = max(0.0, job["times"][c["read_from"]] - 0.5 * den / num)
    env = {**os.environ, **job.get("env", {})}
    dec = subprocess.Popen(
        [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", f"{t:.6f}", "-i", job["src"],
         "-map", "0:v:0", "-frames:v", str(n_in), "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    # ffmpeg's frames are packed; GStreamer pads rows to 4 bytes: rawvideoparse is told the
    # packed layout, and the upscaled frames are unpadded on the way out
    strides, offsets, size = packed_i420(w, h)
    gst = subprocess.Popen(
        ["gst-launch-1.0", "-q", "fdsrc", "fd=0", f"blocksize={size}", "!",
         "rawvideoparse", f"width={w}", f"height={h}", "format=i420", f"framerate={num}/{den}",
         f"plane-strides=<{','.join(map(str, strides))}>", f"plane-offsets=<{','.join(map(str, offsets))}>",
         f"frame-size={size}", "!", "mstgansr", *job["element"].split(), "!", "fdsink", "fd=1"],
        stdin=dec.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    dec.stdout.close()
    out = Path(job["out"])
    tmp = out.with_name(out.name + ".part.mp4")
    enc = subprocess.Popen(
        [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
         "-s", f"{w * s}x{h * s}", "-r", f"{num}/{den}", "-i", "-", "-c:v", "libx264", "-preset", "medium",
         *(["-qp", "0"] if job["quantizer"] == 0 else ["-crf", str(job["quantizer"]), "-profile:v", "high"]),
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    errs: dict[str, list[bytes]] = {"ffmpeg decode": [], "gst-launch": [], "x264": []}
    threads = [threading.Thread(target=_drain, args=(p.stderr, errs[k]), daemon=True)
               for k, p in (("ffmpeg decode", dec), ("gst-launch", gst), ("x264", enc))]  # fmt: skip
    for th in threads:
        th.start()
    frame = gst_i420(w * s, h * s)[2]
    got = written = 0
    try:
        while True:
            buf = gst.stdout.read(frame)
            if not buf:
                break
            if len(buf) != frame:
                raise ChunkError(f"a partial upscaled frame ({len(buf)} of {frame} bytes)")
            if c["lead"] <= got < c["lead"] + c["end"] - c["start"]:
                enc.stdin.write(gst_to_packed(buf, w * s, h * s))
                written += 1
            got += 1
    except BrokenPipeError:
        pass
    finally:
        enc.stdin.close()
        rcs = {"ffmpeg decode": dec.wait(), "gst-launch": gst.wait(), "x264": enc.wait()}
        for th in threads:
            th.join(timeout=5)
    failed = {k: rc for k, rc in rcs.items() if rc != 0}
    if failed or got != n_in or written != c["end"] - c["start"]:
        tmp.unlink(missing_ok=True)
        why = "; ".join(f"{k} exited {rc}: {b''.join(errs[k][-3:]).decode(errors='replace').strip()}"
                        for k, rc in failed.items())  # fmt: skip
        raise ChunkError(f"chunk {c['index']} (frames {c['start']}-{c['end'] - 1}): {n_in} frames in, "
                         f"{got} upscaled, {written} written. {why}".strip())  # fmt: skip
    os.replace(tmp, out)
    return {"index": c["index"], "frames": written, "seconds": time.time() - started}
