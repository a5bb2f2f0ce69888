"""Training and validation clips from real video sequences, with the BI degradation.

Frames are loaded once into memory (uint8), at several scales for scale jitter; the LR version of
every frame is degraded from the *whole* HR frame (exactly as the test inputs are made) and cached
on disk, so a training sample is just aligned LR/HR crops plus flips, transposes and temporal
reversal.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .degradation import degrade_bi

# Held out for validation (checkpoint selection): never trained on.
VAL_SEQUENCES = ("toflow_vimeo/basketball", "sintel_videoflow/seq", "cutie/judo")


def list_sequences(root: str | Path) -> list[str]:
    root = Path(root)
    seqs = []
    for d in sorted(root.glob("*/*")):
        if d.is_dir() and any(p.suffix.lower() in (".png", ".jpg") for p in d.iterdir()):
            seqs.append(str(d.relative_to(root)))
    if not seqs:
        raise FileNotFoundError(f"no frame sequences under {root} (expected <source>/<clip>/*.png|jpg)")
    return seqs


def load_frames(folder: str | Path) -> np.ndarray:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg"))
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])


def _rescale(frames: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return frames
    h, w = frames.shape[1:3]
    size = (round(w * factor), round(h * factor))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames])


def jitter_factors(h: int, w: int) -> list[float]:
    """Scale-jitter versions of a sequence: big frames also appear downscaled (denser motion)."""
    short = min(h, w)
    if short >= 700:
        return [1.0, 0.75, 0.5]
    if short >= 400:
        return [1.0, 0.75]
    return [1.0]


@dataclass
class Sequence:
    name: str
    hr: np.ndarray  # [F, H, W, 3] uint8, H and W multiples of scale
    lr: np.ndarray  # [F, H/s, W/s, 3] uint8


def _cached_lr(hr: np.ndarray, scale: int, key: str, cache_dir: Path | None) -> np.ndarray:
    if cache_dir is None:
        return np.stack([degrade_bi(f, scale) for f in hr])
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(f"{key}:{hr.shape}:{scale}".encode()).hexdigest()[:16]
    path = cache_dir / f"lr_x{scale}_{digest}.npy"
    if path.exists():
        return np.load(path)
    lr = np.stack([degrade_bi(f, scale) for f in hr])
    np.save(path, lr)
    return lr


def build_sequences(root: str | Path, names: list[str], scale: int, jitter: bool,
                    cache_dir: str | Path | None = None, pack: dict | None = None) -> list[Sequence]:  # fmt: skip
    """``pack`` (from :func:`mstgan.datapack.load`) replaces reading the folders under ``root``."""
    cache = Path(cache_dir) if cache_dir else None
    out = []
    for name in names:
        frames = pack[name] if pack is not None else load_frames(Path(root) / name)
        factors = jitter_factors(*frames.shape[1:3]) if jitter else [1.0]
        for fac in factors:
            hr = _rescale(frames, fac)
            h, w = hr.shape[1] // scale * scale, hr.shape[2] // scale * scale
            hr = np.ascontiguousarray(hr[:, :h, :w])
            lr = _cached_lr(hr, scale, f"{'pack:' if pack is not None else ''}{name}@{fac}", cache)
            out.append(Sequence(f"{name}@{fac}", hr, lr))
    return out


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    # [K, H, W, 3] uint8 -> [K, 3, H, W] float in [0, 1]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(255.0)


class ClipSampler:
    """Random training clips: ``n_lr`` consecutive LR frames and the HR frames of the centre ``n_out``.

    Args:
        sequences: from :func:`build_sequences`.
        scale: SR factor.
        n_lr: LR frames per clip (window T, or T + n_out - 1 for several consecutive outputs).
        n_out: consecutive centre outputs supervised (1 in stage 1, >= 2 for temporal losses).
        lr_patch: LR crop size.
        seed: RNG seed (the sampler's state is saved with checkpoints).
    """

    def __init__(self, sequences: list[Sequence], scale: int, n_lr: int, n_out: int,
                 lr_patch: int, seed: int = 0):  # fmt: skip
        self.seqs = [s for s in sequences if len(s.lr) >= n_lr and min(s.lr.shape[1:3]) >= lr_patch]
        if not self.seqs:
            raise ValueError(f"no sequence has {n_lr} frames of at least {lr_patch}px (LR)")
        self.scale, self.n_lr, self.n_out, self.lr_patch = scale, n_lr, n_out, lr_patch
        # weight sequences by how many distinct clips they hold (frames x area), sqrt-damped
        w = np.array([np.sqrt(len(s.lr) * s.lr.shape[1] * s.lr.shape[2]) for s in self.seqs])
        self.weights = w / w.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        lrs, hrs = [], []
        p, s = self.lr_patch, self.scale
        for _ in range(batch):
            seq = self.seqs[self.rng.choice(len(self.seqs), p=self.weights)]
            t0 = self.rng.integers(0, len(seq.lr) - self.n_lr + 1)
            y = self.rng.integers(0, seq.lr.shape[1] - p + 1)
            x = self.rng.integers(0, seq.lr.shape[2] - p + 1)
            idx = np.arange(t0, t0 + self.n_lr)
            if self.rng.random() < 0.5:
                idx = idx[::-1]  # temporal reversal
            lr = seq.lr[idx, y : y + p, x : x + p]
            off = (self.n_lr - self.n_out) // 2
            hr = seq.hr[idx[off : off + self.n_out], y * s : (y + p) * s, x * s : (x + p) * s]
            if self.rng.random() < 0.5:
                lr, hr = lr[:, :, ::-1], hr[:, :, ::-1]
            if self.rng.random() < 0.5:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
            if self.rng.random() < 0.5:
                lr, hr = lr.transpose(0, 2, 1, 3), hr.transpose(0, 2, 1, 3)
            lrs.append(_to_tensor(lr))
            hrs.append(_to_tensor(hr))
        return torch.stack(lrs), torch.stack(hrs)


def validation_windows(sequences: list[Sequence], n_frames: int, scale: int, hr_crop: int = 192,
                       per_seq: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """Fixed (LR window [1,T,3,h,w], HR centre [1,3,H,W]) pairs: centre crops at evenly spaced frames."""
    out = []
    c = hr_crop // scale
    for seq in sequences:
        nf = len(seq.lr)
        lh, lw = seq.lr.shape[1:3]
        y, x = max(0, (lh - c) // 2), max(0, (lw - c) // 2)
        for t in np.linspace(0, nf - 1, per_seq).round().astype(int):
            idx = np.clip(np.arange(t - n_frames // 2, t + n_frames // 2 + 1), 0, nf - 1)
            lr = _to_tensor(seq.lr[idx, y : y + c, x : x + c]).unsqueeze(0)
            hr = _to_tensor(seq.hr[t : t + 1, y * scale : (y + c) * scale, x * scale : (x + c) * scale])
            out.append((lr, hr))
    return out


def default_train_root() -> Path:
    return Path(os.environ.get("MSTGAN_TRAIN_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "train")).resolve()
