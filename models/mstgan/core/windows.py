"""The edge-clamped window loop: every frame upscaled from the T frames around it, the edges
repeated (as the element does), with an onnxruntime session or a PyTorch generator."""

from __future__ import annotations

import numpy as np
import torch

from mstgan.archs.mstgan_arch import MSTGenerator
from mstgan.data.clips import window_indices


def upscale_onnx(sess, lr: np.ndarray, window: int) -> np.ndarray:
    x = lr.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    n = len(x)
    out = []
    for t in range(n):
        idx = window_indices(t, n, window)
        y = sess.run(None, {"frames": x[idx][None]})[0][0]
        out.append(np.clip(np.round(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8))
    return np.stack(out)



@torch.no_grad()
def upscale_torch(g: MSTGenerator, lr: np.ndarray) -> np.ndarray:
    """[F, h, w, 3] uint8 -> [F, sh, sw, 3] uint8, edge frames repeated (as the element does)."""
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
    n = len(x)
    out = []
    for t in range(n):
        idx = window_indices(t, n, g.n_frames)
        y = g(x[idx][None])[0].clamp(0, 1)
        out.append((y.permute(1, 2, 0) * 255).round().byte().numpy())
    return np.stack(out)

