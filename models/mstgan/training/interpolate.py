"""Network interpolation (ESRGAN, Wang et al. 2018) between the fidelity and the perceptual model.

    theta(alpha) = alpha * theta_perceptual + (1 - alpha) * theta_fidelity

Both descend from the same stage-1 weights, so the blend is a smooth trade between the stage-2
model's texture (LPIPS) and the fidelity model's temporal stability (tOF). alpha is chosen on
held-out data, never Vid4: the largest alpha whose tOF stays within ``--tof-margin`` of the
fidelity model's in every validation group, "video" (whole frames of the held-out sequences)
and "photos" (held-out photographs under simulated camera and object motion, dense texture).

    python -m mstgan.training.interpolate --fidelity checkpoints/x4_stage1.pt \\
        --perceptual checkpoints/x4_stage2.pt --out runs/x4_perceptual.pt

With ``--base`` (the stage-1 weights the stage-2 run started from), the fidelity model may be a
later descendant of that base than the stage-2 model is: the blend then adds alpha times the
stage-2 run's change to the fidelity weights (task arithmetic),

    theta(alpha) = theta_fidelity + alpha * (theta_perceptual - theta_base)

so a fidelity model trained on after stage 2 keeps what it learned instead of being pulled back.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mstgan.data import clips as D
from mstgan.archs.mstgan_arch import MSTGenerator, generator_from_options
from mstgan.losses.lpips import LPIPS
from mstgan.metrics.video_metrics import farneback_flows, psnr_y, tof_from_flows
from mstgan.training.train import lift_window
from mstgan.paths import CACHE
from mstgan.core.windows import upscale_torch as upscale


def blend(fid: dict, perc: dict, alpha: float) -> dict:
    """Interpolated state dict; both must be the same architecture."""
    if fid.keys() != perc.keys() or any(fid[k].shape != perc[k].shape for k in fid):
        raise ValueError("the two checkpoints are different architectures: nothing to interpolate")
    return {k: (alpha * perc[k].float() + (1 - alpha) * fid[k].float()).to(fid[k].dtype) for k in fid}


def transplant(fid: dict, perc: dict, base: dict) -> dict:
    """Weights whose plain blend with ``fid`` is the task-arithmetic blend: fid + (perc - base).
    ``fid`` may have modules the other two lack (a model grown after stage 2 branched off): they
    get no stage-2 change."""
    if perc.keys() != base.keys() or not set(perc) <= set(fid) or any(
        not (fid[k].shape == perc[k].shape == base[k].shape) for k in perc
    ):
        raise ValueError("the perceptual and base weights do not fit the fidelity model: nothing to transplant")
    return {k: (v.float() + perc[k].float() - base[k].float()).to(v.dtype) if k in perc else v for k, v in fid.items()}


def match_window(fid: dict, perc: dict) -> dict:
    """The perceptual checkpoint, lifted to the fidelity model's window when that one is longer
    (a fidelity model lifted from the same stage-1 weights, then trained): the outer frames get
    zero weights, as :func:`mstgan.train.lift_window` started the fidelity model, and the blend
    happens in that space. Otherwise unchanged."""
    fa, pa = fid["options"]["arch"], perc["options"]["arch"]
    if not (fa["n_frames"] > pa["n_frames"] and {**pa, "n_frames": fa["n_frames"]} == fa):
        return perc
    opt = {**perc["options"], "arch": fa}
    own = generator_from_options(opt).state_dict()
    print(f"perceptual weights lifted from T={pa['n_frames']} to T={fa['n_frames']}", flush=True)
    return {**perc, "options": opt, "ema": {**perc["ema"], **lift_window(own, perc["ema"])}}


def val_metrics(g: MSTGenerator, seqs: list[D.Sequence], lp: LPIPS) -> dict:
    rows = []
    for s in seqs:
        out = upscale(g, s.lr)
        a = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255
        b = torch.from_numpy(s.hr).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            lpips = float(np.mean([float(lp(a[i : i + 1], b[i : i + 1])) for i in range(len(a))]))
        rows.append({"psnr": float(np.mean([psnr_y(o, h) for o, h in zip(out, s.hr)])), "lpips": lpips,
                     "tof": tof_from_flows(farneback_flows(out), farneback_flows(s.hr))})  # fmt: skip
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def validation_groups(scale: int) -> dict[str, list[D.Sequence]]:
    cache = CACHE / "frames"
    video = D.build_sequences(D.default_train_root(), list(D.VAL_SEQUENCES), scale, jitter=False, cache_dir=cache)
    photos = D.load_photos(paths=D.VAL_PHOTOS)
    return {"video": video, "photos": D.photo_sequences(photos, scale, clips_per_photo=2, n_frames=12, size=320, seed=1)}


def choose(table: list[dict], tof_margin: float) -> dict:
    """The largest alpha whose tOF is within the margin of alpha 0's (the fidelity model) in every
    group. Rows: {"alpha": a, <group>: {"tof": ..., ...}, ...}."""
    base = next(r for r in table if r["alpha"] == 0.0)
    groups = [k for k, v in base.items() if isinstance(v, dict)]
    ok = [r for r in table if all(r[k]["tof"] <= (1 + tof_margin) * base[k]["tof"] for k in groups)]
    return max(ok, key=lambda r: r["alpha"])


def blended(g: MSTGenerator, fid: dict, perc: dict, alpha: float) -> dict:
    """Loads the blend into ``g`` under the architecture's weight constraints (``phase_dc``: a
    base from before the constraint leaves the task-arithmetic blend off it) and returns a copy."""
    g.load_state_dict(blend(fid, perc, alpha))
    with torch.no_grad():
        g.equalise_phases()  # a no-op without phase_dc
    return {k: v.clone() for k, v in g.state_dict().items()}


def same_shapes(arch: dict) -> dict:
    """An architecture's options less the weight constraints, which change no tensor's shape."""
    return {k: v for k, v in arch.items() if k != "phase_dc"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fidelity", required=True, help="stage-1 checkpoint")
    ap.add_argument("--perceptual", required=True, help="stage-2 checkpoint (same lineage)")
    ap.add_argument("--base", help="stage-1 checkpoint the stage-2 run started from (task arithmetic)")
    ap.add_argument("--out", required=True, help="checkpoint to write (EMA weights = the blend)")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    ap.add_argument("--tof-margin", type=float, default=0.05, help="allowed relative tOF increase")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    fid = torch.load(args.fidelity, map_location="cpu", weights_only=False)
    perc = torch.load(args.perceptual, map_location="cpu", weights_only=False)
    perc = match_window(fid, perc)
    if args.base:
        base = match_window(fid, torch.load(args.base, map_location="cpu", weights_only=False))
        # phase_dc is a constraint on the weights, not a shape: the blend is projected below
        if same_shapes(base["options"]["arch"]) != same_shapes(perc["options"]["arch"]):
            print("error: --base differs in architecture from the perceptual checkpoint", flush=True)
            return 2
        try:
            ema = transplant(fid["ema"], perc["ema"], base["ema"])
        except ValueError as e:
            print(f"error: {e}", flush=True)
            return 2
        perc = {**perc, "options": {**perc["options"], "arch": fid["options"]["arch"]}, "ema": ema}
        print(f"task arithmetic: fidelity + alpha * (perceptual - base at step {base['step']})", flush=True)
    opt = perc["options"]
    if fid["options"]["scale"] != opt["scale"] or fid["options"]["arch"] != opt["arch"]:
        print("error: the checkpoints differ in scale or architecture", flush=True)
        return 2
    alphas = sorted(set(args.alphas) | {0.0})
    groups = validation_groups(opt["scale"])
    g = generator_from_options(opt).eval()
    lp = LPIPS("alex")
    table = []
    for a in alphas:
        blended(g, fid["ema"], perc["ema"], a)
        row = {"alpha": a, **{k: val_metrics(g, seqs, lp) for k, seqs in groups.items()}}
        table.append(row)
        print(json.dumps(row), flush=True)
    pick = choose(table, args.tof_margin)
    for k in groups:
        m = pick[k]
        print(f"alpha {pick['alpha']}, {k}: PSNR {m['psnr']:.2f}, LPIPS {m['lpips']:.3f}, tOF {m['tof']:.3f}")
    out = {
        "options": opt, "step": perc["step"], "best": perc.get("best"),
        "ema": blended(g, fid["ema"], perc["ema"], pick["alpha"]),
        "interpolation": {"alpha": pick["alpha"], "fidelity": args.fidelity, "fidelity_step": fid["step"],
                          "perceptual": args.perceptual, "base": args.base, "tof_margin": args.tof_margin, "validation": table},
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
