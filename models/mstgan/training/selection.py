"""Picks among candidate checkpoints (e.g. the runs of one GPU burst) on held-out data, never Vid4.

Each candidate's EMA generator upscales the whole frames of the held-out sequences
(``data.VAL_SEQUENCES``) and the held-out photographs under simulated motion
(``data.VAL_PHOTOS``), the two groups :mod:`mstgan.training.interpolate` uses; the pick is the highest
mean PSNR-Y over the two groups (``--by lpips``: the lowest mean LPIPS-alex). A burst's own
validation (9 crops of JPEG-packed frames) is too small to tell runs apart by a few hundredths
of a dB; this is the whole held-out set at full quality.

    python -m mstgan.training.selection checkpoints/x4_stage1.pt runs/a/best.pt runs/b/best.pt
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from mstgan.core.checkpoint import load_generator
from mstgan.training.interpolate import val_metrics, validation_groups
from mstgan.losses.lpips import LPIPS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--by", choices=("psnr", "lpips"), default="psnr")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    scales = {torch.load(p, map_location="cpu", weights_only=False)["options"]["scale"] for p in args.checkpoints}
    if len(scales) != 1:
        print(f"error: the candidates are of different scales {sorted(scales)}", flush=True)
        return 2
    groups = validation_groups(scales.pop())
    lp = LPIPS("alex")
    table = []
    for path in args.checkpoints:
        g, st = load_generator(path)
        row = {"checkpoint": path, "step": st.get("step"), "window": g.n_frames,
               **{k: val_metrics(g, seqs, lp) for k, seqs in groups.items()}}  # fmt: skip
        row["score"] = float(np.mean([row[k][args.by] for k in groups]))
        table.append(row)
        print(json.dumps(row), flush=True)
    best = (max if args.by == "psnr" else min)(table, key=lambda r: r["score"])
    for r in table:
        cells = "  ".join(f"{k} PSNR {r[k]['psnr']:.3f} LPIPS {r[k]['lpips']:.4f} tOF {r[k]['tof']:.3f}" for k in groups)
        print(f"{'*' if r is best else ' '} {r['checkpoint']} (T={r['window']}, step {r['step']}): {cells}")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
