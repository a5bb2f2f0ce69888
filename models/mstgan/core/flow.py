"""How well a flow aligns frames: the warped neighbour against the centre frame."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from mstgan.archs.mstgan_arch import flow_warp

FlowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def warp_scores(lr: np.ndarray, flows: dict[str, FlowFn], distances=(1, 2, 3), stride: int = 2, border: int = 8):
    """{(method, distance): mean PSNR (RGB, [0, 1]) of the warped neighbour against the centre}.
    ``lr``: [F, h, w, 3] uint8; centres every ``stride`` frames with a neighbour ``d`` ahead."""
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
    scores: dict[tuple[str, int], list[float]] = {}
    for d in distances:
        for t in range(0, len(x) - d, stride):
            ref, nbr = x[t : t + 1], x[t + d : t + d + 1]
            for name, fn in flows.items():
                diff = (flow_warp(nbr, fn(ref, nbr)) - ref)[..., border:-border, border:-border]
                mse = float((diff**2).mean())
                scores.setdefault((name, d), []).append(10 * np.log10(1 / max(mse, 1e-10)))
    return {k: float(np.mean(v)) for k, v in scores.items()}

