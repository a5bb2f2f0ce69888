"""Does the alignment pay? Trains the arms of an ablation with one recipe (same data, steps, batch,
crops, learning rate; the options files differ only in ``arch``) and reports each arm's FLOPs,
parameters, training time and PSNR-Y on the held-out clips and on Vid4.

    python -m mstgan.lab.ablation lab/options/ablation/abl_x4_mst.json \\
        lab/options/ablation/abl_x4_noalign.json lab/options/ablation/abl_x4_early.json

Each arm trains in ``runs/<name>`` (resumed if it stopped, skipped if it finished) one after the
other, with ``MSTGAN_TRAIN_DATA`` as for training; the best-on-validation EMA weights are evaluated.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mstgan.archs.mstgan_arch import generator_from_options
from mstgan.core.evaluation import default_vid4, evaluate
from mstgan.tools.flops import flops_per_lr_pixel, n_params
from mstgan.training.train import load_options

RECIPE_KEYS = ("scale", "batch", "lr_patch", "total_steps", "warmup_steps", "lr_g", "w_perceptual", "photo_share")


def check_same_recipe(opts: list[dict]) -> None:
    """An ablation compares architectures: any other difference would confound it."""
    for key in RECIPE_KEYS:
        values = {json.dumps(o[key]) for o in opts}
        if len(values) > 1:
            raise SystemExit(f"the arms differ in {key!r} ({', '.join(sorted(values))}): give them one recipe")


def train_seconds(log_csv: Path) -> float:
    """Training wall time from a run's log: wall_s restarts at 0 in each resumed process."""
    total, last = 0.0, 0.0
    for row in csv.DictReader(log_csv.open()):
        if not row["wall_s"]:
            continue
        wall = float(row["wall_s"])
        if wall < last:
            total += last
        last = wall
    return total + last


def train_arm(opt_path: str, opt: dict, run: Path, threads: int) -> float:
    """Trains (or resumes) one arm to its total steps; returns its training wall time in seconds."""
    last = run / "last.pt"
    step = torch.load(last, map_location="cpu", weights_only=False)["step"] if last.exists() else 0
    if step < opt["total_steps"]:
        cmd = [sys.executable, "-m", "mstgan.training.train", "--opt", opt_path, "--out", str(run), "--threads", str(threads)]
        with open(run.parent / f"{run.name}-cpu.out", "a") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    return train_seconds(run / "log.csv")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("opts", nargs="+", help="options JSON of each arm")
    ap.add_argument("--runs", default="runs", help="folder of the arms' run folders")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the table's numbers here")
    args = ap.parse_args(argv)
    opts = [load_options(p) for p in args.opts]
    check_same_recipe(opts)
    rows = []
    for path, opt in zip(args.opts, opts):
        g = generator_from_options(opt)
        run = Path(args.runs) / opt["name"]
        run.mkdir(parents=True, exist_ok=True)
        wall = train_arm(path, opt, run, args.threads)
        ckpt = f"ckpt:{run / 'best.pt'}"
        val = evaluate(ckpt, opt["scale"], default_vid4(), threads=args.threads, dataset="validation")
        vid4 = evaluate(ckpt, opt["scale"], default_vid4(), threads=args.threads)
        rows.append({"arm": opt["name"], "arch": opt["arch"], "params": n_params(g),
                     "mflop_per_px": flops_per_lr_pixel(g, opt["arch"]["n_frames"]) / 1e6,
                     "steps": opt["total_steps"], "train_s": wall,
                     "validation": val["average"]["psnr"], "vid4": vid4["average"]["psnr"],
                     "vid4_clips": {c: r["psnr"] for c, r in vid4["clips"].items()}})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print("\n" + table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| arm | params | MFLOP/LR px | steps | train min | validation PSNR-Y | Vid4 PSNR-Y |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['params']:,} | {r['mflop_per_px']:.3f} | {r['steps']} | {r['train_s'] / 60:.1f} | "
              f"{r['validation']:.3f} | {r['vid4']:.3f} |" for r in rows]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
