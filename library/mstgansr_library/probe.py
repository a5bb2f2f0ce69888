"""What a video file holds, from one decoding pass of ffmpeg (imageio-ffmpeg's binary): size,
frame rate, every frame's time, which frames are keyframes, and its audio and subtitle streams."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction

import imageio_ffmpeg


def ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


class ProbeError(Exception):
    """The file cannot be read as a video."""


@dataclass
class Video:
    path: str
    width: int
    height: int
    fps: Fraction
    times: list[float] = field(default_factory=list)  # pts of each frame, seconds
    keyframes: list[int] = field(default_factory=list)
    audio: int = 0  # audio streams
    subtitles: int = 0  # subtitle streams
    pix_fmt: str = "yuv420p"

    @property
    def deep(self) -> bool:
        """More than 8 bits a sample (yuv420p10le, p010le, ...): kept as 10-bit on output."""
        return re.search(r"(9|10|12|14|16)(le|be)$", self.pix_fmt) is not None

    @property
    def n_frames(self) -> int:
        return len(self.times)


_FRAME = re.compile(r"\bn:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:(-?[\d.]+).*?iskey:(\d)")


def probe(path: str) -> Video:
    cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    text = out.stderr
    video = next((l for l in text.splitlines() if re.search(r"Stream #0:\d+.*: Video:", l)), None)
    if out.returncode != 0 or video is None:
        last = [l for l in text.splitlines() if l.strip()][-1:] or ["no output"]
        raise ProbeError(f"{path}: not a readable video ({last[0].strip()})")
    size = re.search(r"\b(\d{2,5})x(\d{2,5})\b", video)
    rate = re.search(r"([\d.]+) (?:fps|tbr)", video)
    if not size or not rate:
        raise ProbeError(f"{path}: no frame size or frame rate in `{video.strip()}`")
    v = Video(path, int(size[1]), int(size[2]), Fraction(rate[1]).limit_denominator(1001))
    fmt = re.search(r": Video: [^,]+, ([a-z0-9]+)", video)
    if fmt:
        v.pix_fmt = fmt[1]
    for m in _FRAME.finditer(text):
        v.times.append(float(m[2]))
        if m[3] == "1":
            v.keyframes.append(int(m[1]))
    if not v.times:
        raise ProbeError(f"{path}: no video frame could be decoded")
    streams = [l for l in text.splitlines() if re.search(r"^\s*Stream #0:\d+", l)]
    v.audio = sum(": Audio:" in l for l in streams)
    v.subtitles = sum(": Subtitle:" in l for l in streams)
    return v
