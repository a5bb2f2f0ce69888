"""Training checkpoints as generators."""

from __future__ import annotations

from pathlib import Path

import torch

from mstgan.archs.mstgan_arch import MSTGenerator, generator_from_options


def load_generator(ckpt: str | Path, use_ema: bool = True) -> tuple[MSTGenerator, dict]:
    st = torch.load(ckpt, map_location="cpu", weights_only=False)
    opt = st["options"]
    g = generator_from_options(opt)
    g.load_state_dict(st["ema" if use_ema else "G"])
    if hasattr(g, "equalise_phases"):
        g.equalise_phases()
    return g.eval(), st

