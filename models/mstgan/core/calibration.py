"""Calibration windows for INT8: LR crops of the held-out validation clips."""

from __future__ import annotations

import numpy as np

from mstgan.data import clips as D
from mstgan.data.clips import window_indices


def calibration_windows(scale: int, window: int, n: int = 24, crop: int = 64, seed: int = 0) -> list[np.ndarray]:
    """LR windows [1,T,3,crop,crop] from the validation sequences (never Vid4, never training data)."""
    root = D.default_train_root()
    names = [s for s in D.list_sequences(root) if s in D.VAL_SEQUENCES]
    seqs = D.build_sequences(root, names, scale, jitter=False)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = seqs[i % len(seqs)]
        t = int(rng.integers(0, len(s.lr)))
        idx = window_indices(t, len(s.lr), window)
        y = int(rng.integers(0, s.lr.shape[1] - crop + 1))
        x = int(rng.integers(0, s.lr.shape[2] - crop + 1))
        w = s.lr[idx, y : y + crop, x : x + crop].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        out.append(np.ascontiguousarray(w[None]))
    return out

