"""The BI degradation: MATLAB ``imresize(img, 1/s, 'bicubic')`` with antialiasing.

Written as two dense resampling matrices (rows x cols), so a whole frame or a batch of frames is
degraded with two matrix products. The weights follow MATLAB's ``contributions`` exactly
(cubic kernel a=-0.5, kernel widened by 1/s when shrinking, symmetric edge padding).
"""

from functools import lru_cache

import numpy as np
import torch


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _contributions(in_len: int, out_len: int, scale: float):
    kwidth = 4.0
    if scale < 1:
        kernel = lambda x: scale * _cubic(scale * x)  # noqa: E731
        kwidth /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kwidth / 2)
    taps = int(np.ceil(kwidth)) + 2
    ind = left[:, None] + np.arange(taps)[None, :]
    w = kernel(u[:, None] - ind)
    w = w / w.sum(1, keepdims=True)
    ind = ind - 1
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    ind = mirror[np.mod(ind.astype(np.int64), mirror.size)]
    keep = np.any(w != 0, axis=0)
    return w[:, keep], ind[:, keep]


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Dense (out_len, in_len) float64 matrix M with ``out = M @ in`` along one axis."""
    w, ind = _contributions(in_len, out_len, scale)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), w.shape[1])
    np.add.at(m, (rows, ind.ravel()), w.ravel())
    return m


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB imresize (bicubic, antialiased) of an HxWxC image; returns float64 in input units."""
    x = img.astype(np.float64)
    h, w = x.shape[:2]
    oh, ow = int(np.ceil(h * scale)), int(np.ceil(w * scale))
    mh = resize_matrix(h, oh, scale)
    mw = resize_matrix(w, ow, scale)
    return np.einsum("ih,hwc,jw->ijc", mh, x, mw, optimize=True)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def degrade_bi(hr: np.ndarray, s: int) -> np.ndarray:
    """uint8 HxWx3 HR frame -> uint8 LR frame, the standard BIx<s> input (HR cropped to a multiple of s)."""
    h, w = hr.shape[0] // s * s, hr.shape[1] // s * s
    return to_uint8(imresize(hr[:h, :w], 1.0 / s))


def degrade_bi_torch(hr: torch.Tensor, s: int) -> torch.Tensor:
    """Batched float degradation for [..., H, W] tensors in [0, 1] (no uint8 rounding)."""
    h, w = hr.shape[-2:]
    mh = torch.from_numpy(resize_matrix(h, h // s, 1.0 / s)).to(hr)
    mw = torch.from_numpy(resize_matrix(w, w // s, 1.0 / s)).to(hr)
    return mh @ hr @ mw.transpose(0, 1)


def degrade_bi_frames(frames: np.ndarray, s: int, device: torch.device | str | None = None) -> np.ndarray:
    """:func:`degrade_bi` of every frame of [F, H, W, 3] uint8; with ``device`` the same float64
    matrices run there in batches (a GPU machine degrades the whole training set in seconds
    instead of a minute; rounding can differ from numpy's in the last bit, i.e. rarely by 1)."""
    if device is None:
        return np.stack([degrade_bi(f, s) for f in frames])
    h, w = frames.shape[1] // s * s, frames.shape[2] // s * s
    mh = torch.from_numpy(resize_matrix(h, h // s, 1.0 / s)).to(device)
    mw = torch.from_numpy(resize_matrix(w, w // s, 1.0 / s)).to(device)
    out = []
    for i in range(0, len(frames), 16):
        x = torch.from_numpy(np.ascontiguousarray(frames[i : i + 16, :h, :w])).to(device, torch.float64)
        y = torch.einsum("ih,bhwc,jw->bijc", mh, x, mw)
        out.append(y.round().clamp_(0, 255).to(torch.uint8).cpu().numpy())
    return np.concatenate(out)
