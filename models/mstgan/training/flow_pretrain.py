"""Pre-trains the MST generator's flow network alone, before the fusion leans on it.

The flow learned only through the super-resolution loss (plus the photometric term) is still about
Farneback's quality after a CPU budget of joint training (``flowcheck``), and fusing features
warped by a half-learned flow is worse than fusing them unwarped. So the flow is taught first, on
its own and cheaply: it distils OpenCV's DIS flow, computed once over the training clips' LR
frames and cached, at every pyramid level, together with the photometric loss (what lets it do
better than its teacher where DIS is wrong) and an edge-aware smoothness term. Pairs are 1 to
``max_distance`` frames apart in both directions: the neighbours a window of T frames aligns.

    python -m mstgan.training.flow_pretrain --opt lab/options/ablation/abl_x4_mst.json \\
        --out runs/flow_abl_x4 --steps 3000

The result (``<out>/flow.pt``: the flow network's weights and how they were made) is what a
training options file names in ``init_flow_from``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mstgan.archs.mstgan_arch import PyramidFlow, flow_warp
from mstgan.data import clips as D
from mstgan.paths import CACHE
from mstgan.training.train import load_options

DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def dis_flow(ref: np.ndarray, nbr: np.ndarray, dis=None) -> np.ndarray:
    """DIS flow [h, w, 2] (pixels, x then y) mapping ``ref`` onto ``nbr`` (RGB uint8 frames): the
    generator's convention, ``ref(p) ~ nbr(p + flow(p))``."""
    dis = dis or cv2.DISOpticalFlow_create(DIS_PRESET)
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (ref, nbr)]
    return dis.calc(grey[0], grey[1], None)


def sequence_flows(lr: np.ndarray, max_distance: int, key: str, cache_dir: Path | None) -> np.ndarray:
    """DIS flows of every pair (t, t + d), d in +-1..max_distance, as float16
    [F, 2 * max_distance, h, w, 2] (slot k: d = k + 1 for k < max_distance, else -(k - max_distance + 1);
    pairs that fall outside the clip are zero and never sampled). Cached on disk per clip."""
    path = None
    if cache_dir is not None:
        digest = hashlib.sha1(f"{key}:{lr.shape}:{max_distance}:dis{DIS_PRESET}".encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"dis_{digest}.npy"
        if path.exists():
            return np.load(path)
    n, h, w, _ = lr.shape
    out = np.zeros((n, 2 * max_distance, h, w, 2), np.float16)
    dis = cv2.DISOpticalFlow_create(DIS_PRESET)
    for t in range(n):
        for k, d in enumerate(list(range(1, max_distance + 1)) + [-d for d in range(1, max_distance + 1)]):
            if 0 <= t + d < n:
                out[t, k] = dis_flow(lr[t], lr[t + d], dis)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


class FlowPairSampler:
    """Random (centre, neighbour, teacher flow) LR crops with flips, transposes and both temporal
    directions; the teacher flow's components follow each geometric transform."""

    def __init__(self, seqs: list[D.Sequence], flows: list[np.ndarray], max_distance: int, patch: int, seed: int = 0):
        keep = [i for i, s in enumerate(seqs) if len(s.lr) > 1 and min(s.lr.shape[1:3]) >= patch]
        if not keep:
            raise ValueError(f"no clip has two frames of at least {patch}px (LR)")
        self.seqs, self.flows = [seqs[i] for i in keep], [flows[i] for i in keep]
        self.max_distance, self.patch = max_distance, patch
        w = np.array([np.sqrt(len(s.lr) * s.lr.shape[1] * s.lr.shape[2]) for s in self.seqs])
        self.weights = w / w.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        refs, nbrs, flows = [], [], []
        p, m = self.patch, self.max_distance
        while len(refs) < batch:
            i = self.rng.choice(len(self.seqs), p=self.weights)
            seq, fl = self.seqs[i], self.flows[i]
            k = int(self.rng.integers(0, 2 * m))
            d = k + 1 if k < m else -(k - m + 1)
            t = int(self.rng.integers(0, len(seq.lr)))
            if not 0 <= t + d < len(seq.lr):
                continue
            y = self.rng.integers(0, seq.lr.shape[1] - p + 1)
            x = self.rng.integers(0, seq.lr.shape[2] - p + 1)
            ref, nbr = seq.lr[t, y : y + p, x : x + p], seq.lr[t + d, y : y + p, x : x + p]
            f = fl[t, k, y : y + p, x : x + p].astype(np.float32)
            if self.rng.random() < 0.5:  # mirror left-right: x motion reverses
                ref, nbr, f = ref[:, ::-1], nbr[:, ::-1], f[:, ::-1] * np.array([-1, 1], np.float32)
            if self.rng.random() < 0.5:  # mirror top-bottom: y motion reverses
                ref, nbr, f = ref[::-1], nbr[::-1], f[::-1] * np.array([1, -1], np.float32)
            if self.rng.random() < 0.5:  # transpose: x and y swap
                ref, nbr, f = ref.transpose(1, 0, 2), nbr.transpose(1, 0, 2), f.transpose(1, 0, 2)[..., ::-1]
            refs.append(torch.from_numpy(np.ascontiguousarray(ref)).permute(2, 0, 1))
            nbrs.append(torch.from_numpy(np.ascontiguousarray(nbr)).permute(2, 0, 1))
            flows.append(torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1))
        return (torch.stack(refs).float() / 255, torch.stack(nbrs).float() / 255, torch.stack(flows))


def teacher_pyramid(flow: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The teacher flow at each pyramid level, in that level's pixels (as PyramidFlow returns)."""
    out = [flow]
    for _ in range(levels - 1):
        out.append(F.avg_pool2d(out[-1], 2, 2, ceil_mode=True) / 2)
    return out


def pretrain_loss(flows: list[torch.Tensor], teacher: torch.Tensor, ref: torch.Tensor, nbr: torch.Tensor,
                  w_distil: float, w_photo: float, w_smooth: float) -> dict[str, torch.Tensor]:  # fmt: skip
    """Distillation (Charbonnier end-point error, coarse levels weighted by their pixel size),
    photometric error of the warped neighbour and edge-aware smoothness at full resolution."""
    target = teacher_pyramid(teacher, len(flows))
    distil = sum((2.0**lvl) * torch.sqrt(((f - t) ** 2).sum(1) + 1e-6).mean() / len(flows)
                 for lvl, (f, t) in enumerate(zip(flows, target)))  # fmt: skip
    f0 = flows[0]
    photo = torch.sqrt((flow_warp(nbr, f0) - ref) ** 2 + 1e-6).mean()
    gx, gy = ref[..., :, 1:] - ref[..., :, :-1], ref[..., 1:, :] - ref[..., :-1, :]
    wx, wy = torch.exp(-10 * gx.abs().mean(1, keepdim=True)), torch.exp(-10 * gy.abs().mean(1, keepdim=True))
    smooth = (wx * (f0[..., :, 1:] - f0[..., :, :-1]).abs()).mean() + (wy * (f0[..., 1:, :] - f0[..., :-1, :]).abs()).mean()
    return {"distil": w_distil * distil, "photo": w_photo * photo, "smooth": w_smooth * smooth}


@torch.no_grad()
def validation_warp_psnr(net: PyramidFlow, seqs: list[D.Sequence], max_distance: int, border: int = 8) -> dict:
    """Mean photometric PSNR of the warped neighbour (RGB, [0, 1]) on the held-out clips' LR
    frames, per distance: the same measure as ``flowcheck``."""
    from mstgan.core.flow import warp_scores

    net.eval()
    scores: dict[int, list[float]] = {}
    for s in seqs:
        sc = warp_scores(s.lr, {"net": lambda r, n: net(r, n)[0]}, tuple(range(1, max_distance + 1)), 4, border)
        for (_, d), v in sc.items():
            scores.setdefault(d, []).append(v)
    net.train()
    return {d: float(np.mean(v)) for d, v in sorted(scores.items())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--opt", required=True, help="the training options whose arch (flow_ch, n_frames) to pre-train for")
    ap.add_argument("--out", required=True, help="run folder: flow.pt, last.pt (resume), log.csv")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64, help="LR crop size")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--w-distil", type=float, default=0.1, help="weight of the DIS end-point error (pixels)")
    ap.add_argument("--w-photo", type=float, default=1.0)
    ap.add_argument("--w-smooth", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-every", type=int, default=500)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    opt = load_options(args.opt)
    if opt["arch"].get("type") == "fast" or opt["arch"].get("align") is False:
        raise SystemExit(f"{args.opt} describes a generator without a flow network: nothing to pre-train")
    t_frames, flow_ch = opt["arch"]["n_frames"], opt["arch"]["flow_ch"]
    max_d = t_frames // 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    root = D.default_train_root()
    names = D.list_sequences(root)
    train = D.build_sequences(root, [n for n in names if n not in D.VAL_SEQUENCES], opt["scale"], jitter=True,
                              cache_dir=CACHE / "frames")  # fmt: skip
    val = D.build_sequences(root, [n for n in names if n in D.VAL_SEQUENCES], opt["scale"], jitter=False,
                            cache_dir=CACHE / "frames")  # fmt: skip
    flows = [sequence_flows(s.lr, max_d, f"{s.name}:x{opt['scale']}", CACHE / "flows") for s in train]
    print(f"{len(train)} clips, DIS flows ready in {time.time() - t0:.0f}s", flush=True)
    sampler = FlowPairSampler(train, flows, max_d, args.patch)
    net = PyramidFlow(flow_ch)
    optim = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.99))
    step, last = 0, out / "last.pt"
    if last.exists():
        st = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(st["flow"])
        optim.load_state_dict(st["optim"])
        sampler.rng.bit_generator.state = st["rng"]
        step = st["step"]
        print(f"resumed at step {step}", flush=True)
    log = (out / "log.csv").open("a")
    if step == 0:
        log.write("step,wall_s,distil,photo,smooth," + ",".join(f"val_d{d}" for d in range(1, max_d + 1)) + "\n")
    start, acc = time.time(), {}

    def save(path: Path, extra: dict) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"flow": net.state_dict(), "flow_ch": flow_ch, "scale": opt["scale"], "n_frames": t_frames,
                    "step": step, **extra}, tmp)  # fmt: skip
        os.replace(tmp, path)

    while step < args.steps:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in optim.param_groups:
            g["lr"] = lr
        ref, nbr, teacher = sampler.sample(args.batch)
        losses = pretrain_loss(net(ref, nbr), teacher, ref, nbr, args.w_distil, args.w_photo, args.w_smooth)
        total = sum(losses.values())
        optim.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optim.step()
        step += 1
        for k, v in losses.items():
            acc.setdefault(k, []).append(float(v.detach()))
        if step % args.val_every == 0 or step == args.steps:
            val_scores = validation_warp_psnr(net, val, max_d)
            row = {k: float(np.mean(v)) for k, v in acc.items()}
            acc = {}
            log.write(f"{step},{time.time() - start:.1f},{row['distil']:.5f},{row['photo']:.5f},{row['smooth']:.5f},"
                      + ",".join(f"{val_scores[d]:.3f}" for d in range(1, max_d + 1)) + "\n")  # fmt: skip
            log.flush()
            print(f"step {step} ({time.time() - start:.0f}s) distil {row['distil']:.4f} photo {row['photo']:.4f} "
                  "held-out warp PSNR " + " ".join(f"d{d} {v:.2f}" for d, v in val_scores.items()), flush=True)  # fmt: skip
            save(last, {"optim": optim.state_dict(), "rng": sampler.rng.bit_generator.state})
    save(out / "flow.pt", {"recipe": {k: v for k, v in vars(args).items() if k not in ("out", "threads")},
                           "train_s": time.time() - start})  # fmt: skip
    print(json.dumps({"flow": str(out / "flow.pt"), "steps": step}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
