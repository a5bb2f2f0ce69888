"""Parameter and multiply-accumulate counts of a generator (conv and linear layers, which
dominate; elementwise ops, interpolation and grid sampling are left out and said so)."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            macs += out.numel() * k
        elif isinstance(mod, nn.Linear):
            macs += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return macs


def flops_per_lr_pixel(model: nn.Module, n_frames: int, h: int = 64, w: int = 64) -> float:
    """FLOPs (2 x MACs) per LR pixel of one output frame."""
    return 2 * count_macs(model, torch.rand(1, n_frames, 3, h, w)) / (h * w)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    # the model card's size table: python -m mstgan.flops
    from .archs import MSTGenerator

    print("| scale | parameters | GFLOP per frame at 180x144 | at 960x540 | MFLOP per LR pixel | with the feature cache |")
    print("|---|---|---|---|---|---|")
    for s in (2, 3, 4):
        g = MSTGenerator(s).eval()
        small = 2 * count_macs(g, torch.rand(1, 5, 3, 144, 180))
        big = 2 * count_macs(g, torch.rand(1, 5, 3, 540, 960))
        # cached: the extractor runs once per frame instead of once per frame per window (T times)
        ext = 2 * count_macs(g.extractor, torch.rand(1, 3, 144, 180))
        cached = small - (g.n_frames - 1) * ext
        px = 144 * 180
        print(f"| x{s} | {n_params(g):,} | {small / 1e9:.1f} | {big / 1e9:.1f} | {small / px / 1e6:.2f} | "
              f"{cached / 1e9:.1f} GFLOP, {cached / px / 1e6:.2f} MFLOP/px |")  # fmt: skip
    print(f"per-frame feature extractor at 180x144: {ext / 1e9:.2f} GFLOP")
