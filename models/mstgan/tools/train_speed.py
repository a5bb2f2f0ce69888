"""Training steps per second on this machine, per speed setting, and whether bf16 trains as well.

Profiles the generator's training step of an options file under what the CPU offers (bf16
autocast where it has AMX / AVX512-BF16, channels-last weights, ``torch.compile``), each setting
run for ``--steps`` steps in turn, ``--rounds`` times (the medians hold on a shared machine;
run it idle). ``--match N`` then trains N steps from the same weights and random state in fp32
and in bf16 and validates both on the held-out crops.

    python -m mstgan.tools.train_speed --opt options/x4_t7_stage1.json --set batch=16 lr_patch=32
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mstgan.tools.int8_isa import cpu_features
from mstgan.training.train import Trainer, TrainingDiverged, load_options

SETTINGS = {  # name: (amp_bf16, channels_last, compile)
    "fp32": (False, False, False),
    "channels-last": (False, True, False),
    "bf16": (True, False, False),
    "bf16+channels-last": (True, True, False),
    "compile": (False, False, True),
    "bf16+compile": (True, False, True),
}


def timed_steps(tr: Trainer, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        logs = tr.train_step()
    float(logs["total"])  # the last step's work is done
    return n / (time.perf_counter() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--opt", required=True)
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides (JSON values)")
    ap.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--steps", type=int, default=8, help="steps per setting and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--match", type=int, default=0, help="then train this many steps in fp32 and in bf16, and validate")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    opt = load_options(args.opt, {**overrides, "perceptual_every": overrides.get("perceptual_every", 8)})
    feats = cpu_features()
    print(f"torch {torch.__version__}, {args.threads} threads; CPU {', '.join(k for k, v in feats.items() if v)}; "
          f"bf16 kernels: {torch.backends.mkldnn.is_available() and feats['AVX512_SPR'] and 'AMX' or 'emulated'}; "
          f"{opt['name']}: batch {opt['batch']}, {opt['lr_patch']} px LR crops", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(opt, Path(tmp))
        if opt.get("init_from"):  # as the run itself starts: from trained weights
            tr.init_generator(Path(opt["init_from"]))
        start = tr.save("start.pt")
        settings = []
        for name in args.settings:  # warm-up, and the compile, outside the timing
            tr.set_speed(*SETTINGS[name])
            try:
                timed_steps(tr, 2)
                settings.append(name)
            except TrainingDiverged as e:
                print(f"{name}: left out, its first steps diverged ({e})", flush=True)
                tr.load(start)
        rates: dict[str, list[float]] = {n: [] for n in settings}
        for r in range(args.rounds):
            for name in settings:
                tr.set_speed(*SETTINGS[name])
                rates[name].append(timed_steps(tr, args.steps))
            print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.3f}" for n in settings), flush=True)
        base = float(np.median(rates["fp32"])) if "fp32" in rates else None
        for name in settings:
            m = float(np.median(rates[name]))
            print(f"{name}: {m:.3f} steps/s" + (f" ({m / base:.2f}x fp32)" if base else ""), flush=True)
        if args.match:
            for name in ("fp32", "bf16"):
                tr.load(start)
                tr.set_speed(*SETTINGS[name])
                for _ in range(args.match):
                    tr.train_step()
                v = tr.validate()
                print(f"{name} after {args.match} steps from the same start: validation PSNR-Y {v['val_psnr']:.3f} "
                      f"LPIPS {v['val_lpips']:.4f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
