"""Are the codec's blocks sharpened? Vid4 through x264 at one QP, upscaled by each method.

The LR clips go through H.264 as in ``evaluate --qp`` (x264, 4:2:0, see
:mod:`mstgan.data.realworld`); each method upscales the decoded frames. Blockiness is the mean
absolute step of Y across the codec's 4-px transform grid (both directions, in HR pixels: every
``4 * scale`` px) over the mean step elsewhere: higher where block edges show; the ground
truth's own value is the reference. The crops and x-t slices of the middle frames (LR
nearest-neighbour, each method, GT) go to ``--out``.

    python -m mstgan.lab.blockcheck --qp 32 --method bicubic --method onnx:mstgan-x4-real.onnx --out ../docs/compare/qp32
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mstgan.data.realworld import compress_clip
from mstgan.tools.compare import Pictures
from mstgan.core.evaluation import CLIPS, default_vid4, load_clip, upscaler

GRID = 4  # x264's smallest transform, in LR pixels


def _luma(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def blockiness(frames: np.ndarray, period: int) -> float:
    """Mean |step| of Y across the lines every ``period`` px over the mean |step| elsewhere."""
    y = _luma(frames)
    ratios = []
    for axis in (1, 2):
        d = np.abs(np.diff(y, axis=axis))
        on = (np.arange(d.shape[axis]) + 1) % period == 0  # step between pixel k*period-1 and k*period
        ratios.append(d.compress(on, axis).mean() / max(d.compress(~on, axis).mean(), 1e-9))
    return float(np.mean(ratios))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--method", action="append", required=True, help="bicubic | onnx:<path> | ckpt:<path> (repeatable)")
    ap.add_argument("--clip", action="append", help=f"Vid4 clips (default: all of {', '.join(CLIPS)})")
    ap.add_argument("--vid4", default=str(default_vid4()))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="folder for crops-<clip>.png and xt-<clip>.png")
    args = ap.parse_args(argv)
    s, period = args.scale, GRID * args.scale
    ups = [(Path(m.split(":", 1)[-1]).stem.removeprefix("mstgan-"), upscaler(m, s, args.threads)) for m in args.method]
    pics = Pictures()
    rows: dict[str, list[float]] = {}
    for clip in args.clip or CLIPS:
        lr, gt = load_clip(Path(args.vid4), clip, s)
        lr = compress_clip(lr, args.qp)
        c = SimpleNamespace(name=clip, gt=gt)
        pics.add(c, f"LR, x264 QP {args.qp}", lr, s)
        for label, up in ups:
            out = up(lr)
            rows.setdefault(label, []).append(blockiness(out, period))
            pics.add(c, label, out, s)
        rows.setdefault("ground truth", []).append(blockiness(gt, period))
        pics.add(c, "ground truth", gt, s)
    print(f"blockiness at x264 QP {args.qp}, x{s} (step across the {period}-px grid / step elsewhere; compare with the ground truth):")
    print("| method | " + " | ".join(args.clip or CLIPS) + " | mean |")
    print("|---|" + "---|" * (len(args.clip or CLIPS) + 1))
    for label, v in rows.items():
        print(f"| {label} | " + " | ".join(f"{x:.3f}" for x in v) + f" | {np.mean(v):.3f} |")
    if args.out:
        for p in pics.save(Path(args.out)):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
