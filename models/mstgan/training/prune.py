"""Structured pruning (the paper's way): rank whole channels by importance, remove the weakest,
then fine-tune with the usual training.

The channels pruned are the middle ones of each residual block of the fast tier's body (conv ->
ReLU -> conv): removing middle channel k deletes filter k of the first convolution and input
channel k of the second, so the graph stays dense and simply gets narrower. A channel's
importance is the product of the L1 norms of its filter in the first convolution and of its
column in the second (what it reads times what it writes); a channel whose ReLU never fires
(bias and weights that keep it negative) contributes nothing whatever its norm, so channels
are also scored by how often they fire on calibration windows, and the two ranks are multiplied.

    python -m mstgan.training.prune --ckpt runs/x2_fast/best.pt --keep 0.75 --out runs/x2_fast_pruned_init.pt
    python -m mstgan.training.train --opt lab/options/x2_fast_pruned.json   # init_from that file
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mstgan.archs.mstgan_arch import FastGenerator, generator_from_options


def channel_importance(g: FastGenerator, windows: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per block, the importance of each middle channel (higher = keep)."""
    scores = []
    acts: list[torch.Tensor] = []
    hooks = []
    if windows is not None:
        for blk in g.body:
            hooks.append(blk.body[1].register_forward_hook(lambda m, i, o: acts.append((o > 0).float().mean((0, 2, 3)))))
        with torch.no_grad():
            g(windows)
        for h in hooks:
            h.remove()
    for i, blk in enumerate(g.body):
        c1, c2 = blk.body[0], blk.body[2]
        s = c1.weight.abs().sum((1, 2, 3)) * c2.weight.abs().sum((0, 2, 3))
        if acts:
            s = s * (acts[i] + 1e-3)
        scores.append(s)
    return scores


def prune(g: FastGenerator, keep: float, windows: torch.Tensor | None = None,
          multiple: int = 1) -> tuple[FastGenerator, list[int]]:  # fmt: skip
    """A narrower copy of ``g`` keeping ``keep`` of each block's middle channels (the most
    important), rounded to a ``multiple``: onnxruntime's CPU kernels work on blocks of 8 / 16
    channels, and at 320x240 x2 a 25-wide middle ran slower than 24 or 32 (14.1 ms a window in
    INT8 against 10.3 / 10.5; random weights, one run of a scratch script not in the repo)."""
    scores = channel_importance(g, windows)
    widths = [max(multiple, round(keep * len(s) / multiple) * multiple) for s in scores]
    ch = g.head[0].out_channels
    p = FastGenerator(g.scale, g.n_frames, ch, len(g.body), widths, fold=g.fold)
    sd = g.state_dict()
    new = p.state_dict()
    for i, (s, w) in enumerate(zip(scores, widths)):
        idx = torch.sort(torch.topk(s, w).indices).values
        pre = f"body.{i}.body."
        new[pre + "0.weight"] = sd[pre + "0.weight"][idx]
        new[pre + "0.bias"] = sd[pre + "0.bias"][idx]
        new[pre + "2.weight"] = sd[pre + "2.weight"][:, idx]
        new[pre + "2.bias"] = sd[pre + "2.bias"]
    for k in new:
        if not k.startswith("body."):
            new[k] = sd[k]
    p.load_state_dict(new)
    return p.eval(), widths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="a fast-tier training checkpoint")
    ap.add_argument("--keep", type=float, default=0.75, help="share of each block's middle channels kept")
    ap.add_argument("--out", required=True, help="checkpoint to start the fine-tuning from (init_from)")
    ap.add_argument("--multiple", type=int, default=8, help="round the kept widths to this (1: exact)")
    ap.add_argument("--calib", type=int, default=16, help="calibration windows for the firing rates (0: norms only)")
    args = ap.parse_args(argv)
    st = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    g = generator_from_options(st["options"])
    if not isinstance(g, FastGenerator):
        raise SystemExit(f"{args.ckpt}: not a fast-tier checkpoint (arch type {st['options']['arch'].get('type', 'mst')})")
    g.load_state_dict(st["ema"])
    g.eval()
    windows = None
    if args.calib:
        import numpy as np

        from mstgan.core.calibration import calibration_windows

        windows = torch.from_numpy(np.concatenate(calibration_windows(g.scale, g.n_frames, args.calib, crop=48)))
    p, widths = prune(g, args.keep, windows, args.multiple)
    before = sum(x.numel() for x in g.parameters())
    after = sum(x.numel() for x in p.parameters())
    opt = json.loads(json.dumps(st["options"]))
    opt["arch"]["inner"] = widths
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"ema": p.state_dict(), "G": p.state_dict(), "options": opt, "step": st["step"],
                "pruned_from": str(args.ckpt)}, args.out)  # fmt: skip
    print(json.dumps({"inner": widths, "params_before": before, "params_after": after,
                      "removed": round(1 - after / before, 3), "out": args.out}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
