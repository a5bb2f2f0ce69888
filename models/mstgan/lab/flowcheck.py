"""Does the generator's alignment work? Each neighbour 1-3 frames away is warped onto the centre
LR frame with the generator's own optical flow (its finest pyramid level, as the fusion uses it),
with OpenCV's Farneback flow (TecoGAN's parameters), and with no motion compensation; the table is
the PSNR of the warped neighbour against the centre, on the held-out videos' LR frames (an 8-px
border is left out: what enters the frame there cannot be warped in from anywhere). A diagnostic,
not a selection metric.

    python -m mstgan.lab.flowcheck checkpoints/x4_t7_stage1.pt [more.pt ...]

A checkpoint is a training checkpoint (the generator's flow) or a pre-trained flow network
(``flow.pt`` of :mod:`mstgan.training.flow_pretrain`); several are compared side by side.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from mstgan.data import clips as D
from mstgan.archs.mstgan_arch import PyramidFlow
from mstgan.core.checkpoint import load_generator
from mstgan.core.flow import FlowFn, warp_scores
from mstgan.metrics.video_metrics import FARNEBACK



def farneback(ref: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
    def grey(x):
        return cv2.cvtColor((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)

    flow = cv2.calcOpticalFlowFarneback(grey(ref), grey(nbr), None, *FARNEBACK)
    return torch.from_numpy(flow).permute(2, 0, 1)[None].float()


def zero(ref: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(ref[:, :2])


def load_flow(path: str) -> tuple[FlowFn, int]:
    """The flow function of a checkpoint (finest level) and the scale its LR frames are for."""
    st = torch.load(path, map_location="cpu", weights_only=False)
    if "flow" in st and "options" not in st:
        net = PyramidFlow(st["flow_ch"])
        net.load_state_dict(st["flow"])
        net.eval()
        return (lambda r, n: net(r, n)[0]), st["scale"]
    g, st = load_generator(path)
    return (lambda r, n: g.flow(r, n)[0]), st["options"]["scale"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    nets = [load_flow(c) for c in args.checkpoints]
    if len({s for _, s in nets}) > 1:
        raise SystemExit("the checkpoints are for different scales: compare one scale at a time")
    seqs = D.build_sequences(D.default_train_root(), list(D.VAL_SEQUENCES), nets[0][1], jitter=False)
    flows: dict[str, FlowFn] = {"none": zero, "farneback": farneback}
    for c, (fn, _) in zip(args.checkpoints, nets):
        flows[c if len(nets) > 1 else "generator"] = fn
    print("| held-out sequence | distance | " + " | ".join(flows) + " |")
    print("|---|---|" + "---|" * len(flows))
    for s in seqs:
        sc = warp_scores(s.lr, flows)
        for d in (1, 2, 3):
            print(f"| {s.name} | {d} | " + " | ".join(f"{sc[(m, d)]:.2f}" for m in flows) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
