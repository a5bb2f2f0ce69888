"""One chunk: ffmpeg decodes frames ``read_from..read_to`` (context included) to raw I420,
``gst-launch-1.0 ... ! mstgansr ! ...`` upscales them, the context frames are left out, and
x264 (ffmpeg's libx264, in the profile ``upscale_file`` would write: :class:`Encoding`) encodes the
rest into the chunk's file, written under a temporary name and renamed when complete."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Encoding:
    """What a chunk is decoded to, upscaled in and encoded as: the profiles ``upscale_file``
    writes. High (4:2:0, 8-bit) plays everywhere; a deeper source stays 10-bit (High 10);
    ``--chroma 444`` keeps full chroma (High 4:4:4 Predictive, 8 or 10 bits)."""

    pix_fmt: str  # ffmpeg's name
    gst_format: str  # rawvideoparse's name
    sample_bytes: int
    chroma_sub: int  # 2 for 4:2:0, 1 for 4:4:4
    profile: str  # x264's

    @staticmethod
    def choose(deep: bool, chroma444: bool) -> "Encoding":
        return {
            (False, False): Encoding("yuv420p", "i420", 1, 2, "high"),
            (True, False): Encoding("yuv420p10le", "i420-10le", 2, 2, "high10"),
            (False, True): Encoding("yuv444p", "y444", 1, 1, "high444"),
            (True, True): Encoding("yuv444p10le", "y444-10le", 2, 1, "high444"),
        }[(deep, chroma444)]

    def _planes(self, w: int, h: int) -> list[tuple[int, int]]:
        """(bytes a row, rows) of each plane, unpadded."""
        cw, ch = -(-w // self.chroma_sub), -(-h // self.chroma_sub)
        b = self.sample_bytes
        return [(w * b, h), (cw * b, ch), (cw * b, ch)]

    def packed(self, w: int, h: int) -> tuple[list[int], list[int], int]:
        """ffmpeg's raw frames (no padding): plane strides, offsets and frame size."""
        planes = self._planes(w, h)
        offsets = [0, planes[0][0] * planes[0][1], planes[0][0] * planes[0][1] + planes[1][0] * planes[1][1]]
        return [p[0] for p in planes], offsets, sum(r * n for r, n in planes)

    def gst(self, w: int, h: int) -> tuple[list[int], list[int], int]:
        """GStreamer's default layout for the format (rows padded to 4 bytes): strides, offsets, size."""
        planes = [(_ru4(r), n) for r, n in self._planes(w, h)]
        offsets = [0, planes[0][0] * planes[0][1], planes[0][0] * planes[0][1] + planes[1][0] * planes[1][1]]
        return [p[0] for p in planes], offsets, sum(r * n for r, n in planes)

    def gst_to_packed(self, buf: bytes, w: int, h: int) -> bytes:
        """One frame in GStreamer's layout as ffmpeg's packed one."""
        strides, offsets, _ = self.gst(w, h)
        if strides == self.packed(w, h)[0]:
            return buf
        out = bytearray()
        for (row, rows), st, off in zip(self._planes(w, h), strides, offsets):
            for r in range(rows):
                out += buf[off + r * st : off + r * st + row]
        return bytes(out)


def run_chunk(job: dict) -> dict:
    """``job``: src, name, chunk (plan.Chunk as dict), width, height, fps (num, den), times,
    element (the mstgansr properties), scale, quantizer, deep, chroma444, out (the chunk file), env."""
    c = job["chunk"]
    fault = os.environ.get(FAULT_ENV, "") or job.get("env", {}).get(FAULT_ENV, "")
    if fault == f"{job['name']}:{c['index']}":
        raise ChunkError(f"injected fault ({FAULT_ENV}={fault})")
    started = time.time()
    w, h, s = job["width"], job["height"], job["scale"]
    num, den = job["fps"]
    n_in = c["read_to"] - c["read_from"]
    enc_fmt = Encoding.choose(job.get("deep", False), job.get("chroma444", False))
    # half a frame early: the first frame at or after it is read_from, whatever the rounding
    t = max(0.0, job["times"][c["read_from"]] - 0.5 * den / num)
    env = {**os.environ, **job.get("env", {})}
    dec = subprocess.Popen(
        [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", f"{t:.6f}", "-i", job["src"],
         "-map", "0:v:0", "-frames:v", str(n_in), "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", enc_fmt.pix_fmt, "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    # ffmpeg's frames are packed; GStreamer pads rows to 4 bytes: rawvideoparse is told the
    # packed layout, and the upscaled frames are unpadded on the way out
    strides, offsets, size = enc_fmt.packed(w, h)
    gst = subprocess.Popen(
        ["gst-launch-1.0", "-q", "fdsrc", "fd=0", f"blocksize={size}", "!",
         "rawvideoparse", f"width={w}", f"height={h}", f"format={enc_fmt.gst_format}", f"framerate={num}/{den}",
         f"plane-strides=<{','.join(map(str, strides))}>", f"plane-offsets=<{','.join(map(str, offsets))}>",
         f"frame-size={size}", "!", "mstgansr", *job["element"].split(), "!", "fdsink", "fd=1"],
        stdin=dec.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    dec.stdout.close()
    out = Path(job["out"])
    tmp = out.with_name(out.name + ".part.mp4")
    enc = subprocess.Popen(
        [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", enc_fmt.pix_fmt,
         "-s", f"{w * s}x{h * s}", "-r", f"{num}/{den}", "-i", "-", "-c:v", "libx264", "-preset", "medium",
         *(["-qp", "0"] if job["quantizer"] == 0 else ["-crf", str(job["quantizer"]), "-profile:v", enc_fmt.profile]),
         "-pix_fmt", enc_fmt.pix_fmt, "-movflags", "+faststart", str(tmp)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    errs: dict[str, list[bytes]] = {"ffmpeg decode": [], "gst-launch": [], "x264": []}
    threads = [threading.Thread(target=_drain, args=(p.stderr, errs[k]), daemon=True)
               for k, p in (("ffmpeg decode", dec), ("gst-launch", gst), ("x264", enc))]  # fmt: skip
    for th in threads:
        th.start()
    frame = enc_fmt.gst(w * s, h * s)[2]
    got = written = 0
    try:
        while True:
            buf = gst.stdout.read(frame)
            if not buf:
                break
            if len(buf) != frame:
                raise ChunkError(f"a partial upscaled frame ({len(buf)} of {frame} bytes)")
            if c["lead"] <= got < c["lead"] + c["end"] - c["start"]:
                enc.stdin.write(enc_fmt.gst_to_packed(buf, w * s, h * s))
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
