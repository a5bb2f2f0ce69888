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


def table_row(g: nn.Module, label: str) -> str:
    """One row of the model card's size table (180x144 and 960x540 inputs)."""
    t = g.n_frames
    small = 2 * count_macs(g, torch.rand(1, t, 3, 144, 180))
    big = 2 * count_macs(g, torch.rand(1, t, 3, 540, 960))
    px = 144 * 180
    if not hasattr(g, "extractor"):  # the fast tier: no per-frame features to cache
        return (f"| {label} | {n_params(g):,} | {small / 1e9:.2f} | {big / 1e9:.1f} | {small / px / 1e6:.3f} | - |")  # fmt: skip
    # cached: the extractor runs once per frame instead of once per frame per window (T times)
    ext = 2 * count_macs(g.extractor, torch.rand(1, 3, 144, 180))
    cached = small - (t - 1) * ext
    return (f"| {label} | {n_params(g):,} | {small / 1e9:.1f} | {big / 1e9:.1f} | {small / px / 1e6:.2f} | "
            f"{cached / 1e9:.1f} GFLOP, {cached / px / 1e6:.2f} MFLOP/px |")  # fmt: skip


if __name__ == "__main__":
    # the model card's size table: python -m mstgan.tools.flops [--opt options/<run>.json ...]
    import argparse

    from mstgan.archs.mstgan_arch import MSTGenerator
    from mstgan.archs.mstgan_arch import generator_from_options
    from mstgan.training.train import load_options

    ap = argparse.ArgumentParser(description="size table of the default models, or of the given options' models")
    ap.add_argument("--opt", nargs="*", default=[], help="training options JSON whose generator to count")
    args = ap.parse_args()
    print("| model | parameters | GFLOP per frame at 180x144 | at 960x540 | MFLOP per LR pixel | with the feature cache |")
    print("|---|---|---|---|---|---|")
    if args.opt:
        for path in args.opt:
            opt = load_options(path)
            print(table_row(generator_from_options(opt).eval(), f"{opt['name']} (x{opt['scale']}, T={opt['arch']['n_frames']})"))
    else:
        for s in (2, 3, 4):
            print(table_row(MSTGenerator(s).eval(), f"x{s}"))
    g = MSTGenerator(4).eval()
    print(f"per-frame feature extractor at 180x144: {2 * count_macs(g.extractor, torch.rand(1, 3, 144, 180)) / 1e9:.2f} GFLOP")
