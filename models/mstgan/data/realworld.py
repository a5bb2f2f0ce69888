"""The real-world degradation: low-resolution clips as cameras and the web deliver them.

On top of the BI degradation, a whole LR clip goes through H.264 (libx264 in the ffmpeg that
``imageio-ffmpeg`` bundles, the encoder users meet; 4:2:0, a real GOP with P and B frames) at a
fixed QP drawn from ``QP_RANGE``, after mild sensor noise on some clips; the decoded frames are the
model's input. Applied to whole clips, so the temporal pattern of the artefacts (GOP pulsing,
B-frame softness) is real. Still photos with simulated motion get JPEG instead, the way stills
are stored. Degraded clips are cached like the BI frames.

    python -m mstgan.data.realworld --qp 32 --clip ../../shared/data/vid4/BIx4/calendar --out /tmp/cal-qp32
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

QP_RANGE = (18, 36)
NOISE_SHARE = 0.3  # clips that get sensor noise before encoding
NOISE_SIGMA = (0.5, 2.0)  # in 8-bit levels
JPEG_QUALITY = (40, 90)
GOP = 12


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def compress_clip(lr: np.ndarray, qp: int, noise: float = 0.0, seed: int = 0, gop: int = GOP) -> np.ndarray:
    """``lr`` [F, h, w, 3] uint8 through x264 at ``qp`` (4:2:0, P and B frames) and back.

    ``noise``: Gaussian sensor noise (8-bit levels) added before encoding. Odd sizes are padded
    by edge replication for 4:2:0 and cropped back.
    """
    f, h, w, _ = lr.shape
    x = lr
    if noise > 0:
        rng = np.random.default_rng(seed)
        x = np.clip(x.astype(np.float32) + rng.normal(0, noise, x.shape), 0, 255).round().astype(np.uint8)
    ph, pw = h + (h & 1), w + (w & 1)
    if (ph, pw) != (h, w):
        x = np.pad(x, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    raw = np.ascontiguousarray(x).tobytes()
    enc = [_ffmpeg(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{pw}x{ph}", "-r", "25",
           "-i", "-", "-c:v", "libx264", "-qp", str(qp), "-g", str(gop), "-bf", "2", "-preset", "medium",
           "-pix_fmt", "yuv420p", "-f", "h264", "-"]  # fmt: skip
    stream = subprocess.run(enc, input=raw, capture_output=True, check=True).stdout
    dec = [_ffmpeg(), "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = subprocess.run(dec, input=stream, capture_output=True, check=True).stdout
    frames = np.frombuffer(out, np.uint8)
    if frames.size != f * ph * pw * 3:
        raise RuntimeError(f"x264 round trip gave {frames.size // (ph * pw * 3)} frames for {f}")
    return frames.reshape(f, ph, pw, 3)[:, :h, :w].copy()


def jpeg_frames(lr: np.ndarray, quality: int) -> np.ndarray:
    """Every frame through JPEG at ``quality`` (4:2:0, as cameras store stills)."""
    out = []
    for fr in lr:
        buf = io.BytesIO()
        Image.fromarray(fr).save(buf, "JPEG", quality=int(quality))
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.stack(out)


def draw(rng: np.random.Generator) -> dict:
    """One clip's degradation: QP, sensor noise, JPEG quality for stills."""
    noisy = rng.random() < NOISE_SHARE
    return {
        "qp": int(rng.integers(QP_RANGE[0], QP_RANGE[1] + 1)),
        "noise": float(rng.uniform(*NOISE_SIGMA)) if noisy else 0.0,
        "jpeg": int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
    }


def degrade(lr: np.ndarray, d: dict, synthetic: bool, seed: int) -> np.ndarray:
    if synthetic:
        x = lr
        if d["noise"] > 0:
            rng = np.random.default_rng(seed)
            x = np.clip(x.astype(np.float32) + rng.normal(0, d["noise"], x.shape), 0, 255).round().astype(np.uint8)
        return jpeg_frames(x, d["jpeg"])
    return compress_clip(lr, d["qp"], d["noise"], seed)


def _cached(key: str, make, cache: Path | None) -> np.ndarray:
    if cache is None:
        return make()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"real_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    out = make()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, out)
    os.replace(tmp, path)
    return out


def real_sequences(seqs: list, versions: int = 2, seed: int = 0, cache: Path | None = None) -> list:
    """``versions`` degraded copies of each sequence (the same HR, LR through its own draw of
    :func:`draw`); BI stays in as one version in ``versions + 1`` so clean input is still seen."""
    rng = np.random.default_rng(seed)
    out = []
    for s in seqs:
        out.append(s)
        for v in range(versions):
            d = draw(rng)
            key = f"{s.name}:{s.lr.shape}:{int(s.lr[::7, ::13, ::13].sum())}:{d}:{seed}:{v}"
            lr = _cached(key, lambda s=s, d=d, v=v: degrade(s.lr, d, s.synthetic, seed + v), cache)
            tag = f"jpeg{d['jpeg']}" if s.synthetic else f"qp{d['qp']}"
            out.append(replace(s, name=f"{s.name}+{tag}" + (f"+n{d['noise']:.1f}" if d["noise"] else ""), lr=lr))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True, help="folder of %%08d.png LR frames")
    ap.add_argument("--qp", type=int, required=True)
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    files = sorted(Path(args.clip).glob("*.png"))
    lr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    out = compress_clip(lr, args.qp, args.noise)
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    for i, fr in enumerate(out):
        Image.fromarray(fr).save(dest / f"{i:08d}.png")
    print(f"wrote {len(out)} frames to {dest} (x264 QP {args.qp}, noise {args.noise})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
