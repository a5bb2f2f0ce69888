"""Two-stage MST-GAN training: resumable, seeded, CPU or CUDA, CSV log.

Stage 1 (``stage: 1``): generator alone, Charbonnier + LPIPS-VGG + flow regularisation.
Stage 2 (``stage: 2``): + temporal discriminator (hinge, instance noise annealed), temporal loss
ramped in, flow consistency between neighbouring windows. Initialised from a stage-1 checkpoint.

    python -m mstgan.training.train --opt options/x4_stage1.json [--max-minutes 60] [--resume auto]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mstgan.data import clips as D
from mstgan.archs.mstgan_arch import ResBlock, TemporalDiscriminator, generator_from_options
from mstgan.losses.video_losses import CharbonnierLoss, FlowRegularisation, GANLoss, MSELoss, PerceptualLoss, PhaseGridLoss, TemporalLoss, flow_consistency
from mstgan.losses.lpips import LPIPS
from mstgan.metrics.video_metrics import psnr_y
from mstgan.paths import CACHE, MODELS

DEFAULTS = {
    "name": "x4_stage1", "stage": 1, "scale": 4, "seed": 0,
    "arch": {"n_frames": 5, "feat_ch": 32, "ch": 48, "n_blocks": 10, "flow_ch": 24, "refine_blocks": 2,
             "skip_mode": "bicubic"},
    "batch": 16, "lr_patch": 32, "total_steps": 100000, "warmup_steps": 200,
    "lr_g": 6e-4, "lr_d": 2e-4, "lr_min": 1e-5, "ema_decay": 0.999,
    "w_pixel": 1.0, "w_perceptual": 0.02, "perceptual_items": 4, "perceptual_every": 1, "w_flow_photo": 0.1, "w_flow_smooth": 0.01,
    "w_temporal": 0.5, "temporal_ramp_steps": 2000, "w_flow_consistency": 0.01, "w_adv": 5e-3,
    "n_out": 3, "instance_noise": 0.1, "instance_noise_steps": 5000,
    "val_every": 500, "log_every": 50, "ckpt_every": 500, "select_by": "psnr",
    "init_from": None, "init_flow_from": None, "val_hr_crop": 192, "val_per_seq": 3,
    "divergence_db": 3.0, "divergence_patience": 3, "datapack": None,
    "photo_share": 0.0, "photo_clips": 12, "device_sampler": False, "texture_tries": 1,
    "degradation": "bi", "real_versions": 2, "real_val_qp": 28,
    "amp_bf16": False, "channels_last": False, "compile": False, "w_grid": 0.0, "w_flat": 0.0,
    "pixel_loss": "charbonnier",
}  # fmt: skip


def pixel_loss(kind: str, weight: float) -> nn.Module:
    """Charbonnier (robust, the default) or L2 (the conditional mean: what PSNR rewards)."""
    if kind == "charbonnier":
        return CharbonnierLoss(weight)
    if kind == "l2":
        return MSELoss(weight)
    raise ValueError(f"pixel_loss must be 'charbonnier' or 'l2', got {kind!r}")


class TrainingDiverged(RuntimeError):
    pass


def load_options(path: str | None, overrides: dict | None = None) -> dict:
    opt = json.loads(json.dumps(DEFAULTS))
    if path:
        user = json.loads(Path(path).read_text())
        user_arch = user.pop("arch", {})
        # the MST defaults are no arguments of the fast tier's generator
        arch = user_arch if user_arch.get("type") == "fast" else {**opt["arch"], **user_arch}
        opt.update(user)
        opt["arch"] = arch
    for k, v in (overrides or {}).items():
        opt[k] = v
    return opt


def lift_window(own: dict, src: dict) -> dict:
    """A longer window from a shorter one's weights, computing the same function at first: the
    temporal fusion's per-frame input weights go to the middle frames, the outer new frames get
    zero weights (the flow and extractor are shared by all frames and carry over unchanged)."""
    out = {}
    for k, v in src.items():
        w = own.get(k)
        if not (k.startswith("fusion.fuse.") and k.endswith(".weight") and w is not None and w.dim() == 4):
            continue
        if w.shape[0] != v.shape[0] or w.shape[2:] != v.shape[2:] or w.shape[1] <= v.shape[1]:
            continue
        pad = w.shape[1] - v.shape[1]
        if pad % 2:
            continue
        lifted = torch.zeros_like(w)
        lifted[:, pad // 2 : pad // 2 + v.shape[1]] = v
        out[k] = lifted
    return out


def lr_at(step: int, opt: dict, base: float, progress: float | None = None) -> float:
    """Linear warm-up, then cosine to lr_min over the steps (or over ``progress`` in [0, 1])."""
    if step < opt["warmup_steps"]:
        return base * (step + 1) / opt["warmup_steps"]
    p = progress if progress is not None else min(1.0, (step - opt["warmup_steps"]) / max(1, opt["total_steps"] - opt["warmup_steps"]))
    return opt["lr_min"] + 0.5 * (base - opt["lr_min"]) * (1 + math.cos(math.pi * p))


class Trainer:
    def __init__(self, opt: dict, out_dir: Path, device: str = "cpu", train_root: Path | None = None,
                 sequences: list[str] | None = None, cache_dir: Path | None = None):  # fmt: skip
        self.opt, self.out_dir, self.device = opt, Path(out_dir), torch.device(device)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        seed = opt["seed"]
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        s, t = opt["scale"], opt["arch"]["n_frames"]
        root = Path(train_root or D.default_train_root())
        pack = None
        if opt.get("datapack"):
            from mstgan.data.datapack import load as load_pack

            pack = load_pack(opt["datapack"])
        names = sequences or (sorted(n for n in pack if not n.startswith("photos/")) if pack is not None
                              else D.list_sequences(root))  # fmt: skip
        train_names = [n for n in names if n not in D.VAL_SEQUENCES]
        val_names = [n for n in names if n in D.VAL_SEQUENCES] or names[:1]
        cache = cache_dir or (CACHE / "frames")
        self.stage2 = opt["stage"] == 2
        n_out = opt["n_out"] if self.stage2 else 1
        # on a GPU the LR frames are degraded there (a minute of CPU otherwise, per run)
        deg = self.device if self.device.type == "cuda" else None
        train_seqs = D.build_sequences(root, train_names, s, jitter=True, cache_dir=cache, pack=pack, device=deg)
        if opt["photo_share"] > 0:
            photos = {n: f[0] for n, f in pack.items() if n.startswith("photos/")} if pack is not None else D.load_photos()
            if not photos:
                raise FileNotFoundError(f"photo_share={opt['photo_share']} but the data pack has no photos; "
                                        "rebuild it with `make gpu-pack`")  # fmt: skip
            train_seqs += D.photo_sequences(photos, s, opt["photo_clips"], max(9, t + n_out - 1), seed=seed, device=deg)
        val_seqs = D.build_sequences(root, val_names, s, jitter=False, cache_dir=cache, pack=pack)
        if opt["degradation"] == "real":
            # compressed input (see mstgan.data.realworld): every clip also in degraded versions, and
            # validation on the held-out clips at one fixed QP
            from dataclasses import replace

            from mstgan.data.realworld import compress_clip, real_sequences

            train_seqs = real_sequences(train_seqs, opt["real_versions"], seed, cache)
            val_seqs = [replace(v, lr=compress_clip(v.lr, opt["real_val_qp"])) for v in val_seqs]
        elif opt["degradation"] != "bi":
            raise ValueError(f"degradation must be 'bi' or 'real', not {opt['degradation']!r}")
        self.sampler = D.ClipSampler(train_seqs, s, t + n_out - 1, n_out, opt["lr_patch"], seed, opt["photo_share"],
                                      opt["texture_tries"])  # fmt: skip
        if opt["device_sampler"]:
            self.sampler = D.DeviceClipSampler(self.sampler, self.device)
        # a GPU step must not wait for the CPU to read its losses: check and read them every
        # log_every steps there (a non-finite loss is still caught, a few steps late)
        self.sync_every = 1 if self.device.type == "cpu" else opt["log_every"]
        self.val = D.validation_windows(val_seqs, t, s, opt["val_hr_crop"], opt["val_per_seq"])
        # identifies the validation crops: a best score measured on other crops (CPU frames vs the
        # GPU pack's JPEGs) must not block checkpoint selection after a resume
        digest = hashlib.sha1()
        for lr_v, hr_v in self.val:
            digest.update(lr_v.numpy().tobytes())
            digest.update(hr_v.numpy().tobytes())
        self.val_id = digest.hexdigest()[:16]
        self.G = generator_from_options(opt).to(self.device)
        self.ema = generator_from_options(opt).to(self.device).requires_grad_(False)
        self._project(self.G, self.ema)
        self.ema.load_state_dict(self.G.state_dict())
        self.fwd = self.G
        self.set_speed(opt["amp_bf16"], opt["channels_last"], opt["compile"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opt["lr_g"], betas=(0.9, 0.99))
        self.pixel = pixel_loss(opt["pixel_loss"], opt["w_pixel"])
        self.perceptual = PerceptualLoss(opt["w_perceptual"], "vgg", opt["perceptual_items"]).to(self.device)
        self.flow_reg = FlowRegularisation(opt["w_flow_photo"], opt["w_flow_smooth"])
        self.grid = PhaseGridLoss(opt["w_grid"], opt["scale"])
        self.flat = PhaseGridLoss(opt["w_flat"], opt["scale"])
        self.val_lpips = LPIPS("alex").to(self.device)
        if self.stage2:
            self.D = TemporalDiscriminator(n_out).to(self.device)
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=opt["lr_d"], betas=(0.9, 0.99))
            self.temporal = TemporalLoss(opt["w_temporal"])
            self.gan = GANLoss(opt["w_adv"])
        self.step = 0
        self.best = {"psnr": -1.0, "lpips": 9.0, "step": -1}
        self.bad_evals = 0
        self.log_path = self.out_dir / "log.csv"
        self.progress = None  # () -> float: a time-based schedule (fit(anneal_in_time=True))

    # ---- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        st = {
            "options": self.opt, "step": self.step, "best": self.best, "bad_evals": self.bad_evals, "val_id": self.val_id,
            "G": self.G.state_dict(), "ema": self.ema.state_dict(), "opt_g": self.opt_g.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": self.sampler.rng.bit_generator.state,
                    "python": random.getstate()},
        }  # fmt: skip
        if self.stage2:
            st["D"] = self.D.state_dict()
            st["opt_d"] = self.opt_d.state_dict()
        return st

    def save(self, name: str = "last.pt") -> Path:
        path = self.out_dir / name
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: Path) -> None:
        st = torch.load(path, map_location=self.device, weights_only=False)
        self.G.load_state_dict(st["G"])
        self.ema.load_state_dict(st["ema"])
        self._project(self.G, self.ema)
        self.opt_g.load_state_dict(st["opt_g"])
        self.step, self.best, self.bad_evals = st["step"], st["best"], st.get("bad_evals", 0)
        for what, differs in (("validation crops", st.get("val_id") != self.val_id),
                              ("architecture options", st["options"]["arch"] != self.opt["arch"])):  # fmt: skip
            if differs:
                print(f"{what} differ from the checkpoint's: best {self.best} reset", flush=True)
                self.best, self.bad_evals = {"psnr": -1.0, "lpips": 9.0, "step": -1}, 0
        torch.set_rng_state(st["rng"]["torch"].cpu())
        self.sampler.rng.bit_generator.state = st["rng"]["numpy"]
        random.setstate(st["rng"]["python"])
        if self.stage2 and "D" in st:
            self.D.load_state_dict(st["D"])
            self.opt_d.load_state_dict(st["opt_d"])

    def init_flow(self, path: Path) -> None:
        """Starts the flow network from a pre-trained one (:mod:`mstgan.training.flow_pretrain`)."""
        st = torch.load(path, map_location=self.device, weights_only=False)
        if self.G.flow is None:
            raise ValueError(f"init_flow_from={path} but this generator has no flow network")
        self.G.flow.load_state_dict(st["flow"])
        self.ema.flow.load_state_dict(st["flow"])

    def init_generator(self, path: Path) -> list[str]:
        """Starts from another checkpoint's EMA generator: stage 2 from stage 1, or another scale
        from x4 (the upsampling heads differ in shape and keep their fresh initialisation).
        Returns the names of the tensors that were not taken over."""
        st = torch.load(path, map_location=self.device, weights_only=False)
        own = self.G.state_dict()
        take = {k: v for k, v in st["ema"].items() if k in own and own[k].shape == v.shape}
        take.update(lift_window(own, st["ema"]))
        own.update(take)
        # a residual block added to a trained body starts as the identity, keeping what was learnt
        for name, m in self.G.named_modules():
            if isinstance(m, ResBlock) and not any(f"{name}.{k}" in take for k in m.state_dict()):
                conv = [n for n, c in m.body.named_modules() if isinstance(c, torch.nn.Conv2d)][-1]
                for k in ("weight", "bias"):
                    own[f"{name}.body.{conv}.{k}"] = torch.zeros_like(own[f"{name}.body.{conv}.{k}"])
        self.G.load_state_dict(own)
        self.ema.load_state_dict(own)
        self._project(self.G, self.ema)
        return sorted(set(own) - set(take))

    @staticmethod
    def _project(*gens) -> None:
        """Weight constraints of the architecture (``phase_dc``) after each change of weights."""
        for g in gens:
            if hasattr(g, "equalise_phases"):
                g.equalise_phases()

    # ---- training ----------------------------------------------------------------------------
    def set_speed(self, amp_bf16: bool, channels_last: bool, compile_: bool) -> None:
        """What the CPU offers for the generator's steps (``mstgan.tools.train_speed`` measures
        them): bf16 autocast (AMX / AVX512-BF16), channels-last weights, a compiled forward."""
        self.amp_bf16 = amp_bf16
        self.G.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        if compile_ and not hasattr(self, "_compiled"):
            self._compiled = torch.compile(self.G)
        self.fwd = self._compiled if compile_ else self.G

    def _set_lr(self) -> float:
        p = self.progress() if self.progress else None
        lr = lr_at(self.step, self.opt, self.opt["lr_g"], p)
        for g in self.opt_g.param_groups:
            g["lr"] = lr
        if self.stage2:
            for g in self.opt_d.param_groups:
                g["lr"] = lr_at(self.step, self.opt, self.opt["lr_d"], p)
        return lr

    def train_step(self) -> dict:
        opt = self.opt
        lr_in, hr = self.sampler.sample(opt["batch"])
        lr_in, hr = lr_in.to(self.device), hr.to(self.device)
        t = opt["arch"]["n_frames"]
        logs = {"lr": self._set_lr()}
        # LPIPS-VGG dominates a CPU step: optionally apply it every k-th step with k times the weight
        every = max(1, opt["perceptual_every"])
        use_perc = opt["w_perceptual"] > 0 and self.step % every == 0
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp_bf16):
            losses, sr, noise = self._losses(lr_in, hr, t, every, use_perc)
        total = sum(v.float() for v in losses.values())
        return self._update(losses, total, sr, hr, noise, logs)

    def _losses(self, lr_in, hr, t: int, every: int, use_perc: bool):
        opt = self.opt
        noise = 0.0
        if not self.stage2:
            sr, flow = self.fwd(lr_in, return_flow=True)
            losses = {
                "pixel": self.pixel(sr, hr[:, 0]),
                "perceptual": every * self.perceptual(sr, hr[:, 0]) if use_perc else sr.new_zeros(()),
                # the fast tier has no flow to regularise
                "flow": self.flow_reg(flow, lr_in) if flow is not None else sr.new_zeros(()),
            }
        else:
            k = hr.shape[1]
            windows = torch.stack([lr_in[:, i : i + t] for i in range(k)], 1).flatten(0, 1)
            sr, flow = self.fwd(windows, return_flow=True)
            sr = sr.view(-1, k, *sr.shape[1:])
            flow = flow.view(-1, k, *flow.shape[1:])
            mid = t // 2
            ramp = min(1.0, self.step / max(1, opt["temporal_ramp_steps"]))
            noise = opt["instance_noise"] * max(0.0, 1 - self.step / max(1, opt["instance_noise_steps"]))
            losses = {
                "pixel": self.pixel(sr, hr),
                "perceptual": every * self.perceptual(sr.flatten(0, 1), hr.flatten(0, 1)) if use_perc else sr.new_zeros(()),
                "flow": self.flow_reg(flow.flatten(0, 1), windows),
                "temporal": ramp * self.temporal(sr, hr),
                # window i's flow to frame i+mid+1 vs window i+1's flow back to frame i+mid
                "flow_consistency": sum(flow_consistency(flow[:, i, mid], flow[:, i + 1, mid - 1], opt["w_flow_consistency"])
                                        for i in range(k - 1)),
            }  # fmt: skip
            if opt["w_grid"] > 0:
                losses["grid"] = self.grid(sr, hr)
            if opt["w_flat"] > 0:
                losses["flat"] = self._flat_grid(t)
            self.D.requires_grad_(False)
            fake_logits = self.D(sr + noise * torch.randn_like(sr))
            losses["adversarial"] = self.gan.generator(fake_logits)
        return losses, sr, noise

    def _flat_grid(self, t: int, n: int = 4, size: int = 24):
        """The dot grid where the GAN stage makes it plainest (``mstgan.lab.gridcheck``): flat
        windows of a random grey or colour with 1 % noise; the output's scale x scale phase
        means, away from the border, should not differ from their mean."""
        s = self.opt["scale"]
        x = torch.rand(n, 1, 3, 1, 1, device=self.device) * 0.8 + 0.1
        x = (x + 0.01 * torch.randn(n, t, 3, size, size, device=self.device)).clamp(0, 1)
        y = self.fwd(x)
        m = 4 * s
        y = y[..., m:-m, m:-m]
        return self.flat(y, y.mean(dim=(-2, -1), keepdim=True).detach())

    def _update(self, losses: dict, total, sr, hr, noise: float, logs: dict) -> dict:
        if self.step % self.sync_every == 0 and not torch.isfinite(total):
            raise TrainingDiverged(f"step {self.step}: non-finite generator loss {total.item()}")
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.G.parameters(), 1.0)
        self.opt_g.step()
        self._project(self.G)
        if self.stage2:
            self.D.requires_grad_(True)
            real = hr + noise * torch.randn_like(hr)
            # under bf16 autocast sr is bf16; the discriminator's step runs in fp32
            fake = sr.detach().float() + noise * torch.randn_like(sr, dtype=torch.float32)
            d_loss = GANLoss.discriminator(self.D(real), self.D(fake))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            logs["d_loss"] = d_loss.detach()
        with torch.no_grad():
            # EMA with warm-up: a short (CPU) run must not validate weights from thousands of steps ago
            d = min(self.opt["ema_decay"], (1 + self.step) / (10 + self.step))
            ema_p, g_p = list(self.ema.parameters()), [p.detach() for p in self.G.parameters()]
            torch._foreach_mul_(ema_p, d)
            torch._foreach_add_(ema_p, g_p, alpha=1 - d)
            for be, bg in zip(self.ema.buffers(), self.G.buffers()):
                be.copy_(bg)
        logs.update({k: v.detach() if torch.is_tensor(v) else float(v) for k, v in losses.items()})
        logs["total"] = total.detach()
        self.step += 1
        return logs

    @torch.no_grad()
    def validate(self) -> dict:
        self.ema.eval()
        psnrs, lps = [], []
        for lr_in, hr in self.val:
            sr = self.ema(lr_in.to(self.device)).clamp(0, 1)
            a = (sr[0].permute(1, 2, 0).cpu().numpy() * 255).round()
            b = (hr[0].permute(1, 2, 0).numpy() * 255).round()
            psnrs.append(psnr_y(a, b))
            lps.append(float(self.val_lpips(sr, hr.to(self.device)).mean()))
        return {"val_psnr": float(np.mean(psnrs)), "val_lpips": float(np.mean(lps))}

    def check_and_select(self, val: dict) -> None:
        improved = (val["val_psnr"] > self.best["psnr"]) if self.opt["select_by"] == "psnr" else (val["val_lpips"] < self.best["lpips"])
        if improved:
            self.best = {"psnr": val["val_psnr"], "lpips": val["val_lpips"], "step": self.step}
            self.save("best.pt")
        if val["val_psnr"] < self.best["psnr"] - self.opt["divergence_db"]:
            self.bad_evals += 1
            if self.bad_evals >= self.opt["divergence_patience"]:
                raise TrainingDiverged(
                    f"step {self.step}: validation PSNR {val['val_psnr']:.2f} dB is more than "
                    f"{self.opt['divergence_db']} dB below the best ({self.best['psnr']:.2f} at step "
                    f"{self.best['step']}) for {self.bad_evals} evaluations: collapse/divergence; best.pt is kept"
                )
        else:
            self.bad_evals = 0

    def _log(self, row: dict) -> None:
        fields = ["step", "wall_s", "lr", "total", "pixel", "perceptual", "flow", "temporal", "flow_consistency",
                  "adversarial", "d_loss", "val_psnr", "val_lpips", "event"]  # fmt: skip
        new = not self.log_path.exists()
        with self.log_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

    def fit(self, max_minutes: float | None = None, max_steps: int | None = None, anneal_in_time: bool = False) -> dict:
        """Train to total_steps (or max_steps / max_minutes). anneal_in_time: the cosine runs over
        the wall time instead of the steps and ends at max_minutes (a GPU burst on a machine of
        unknown speed, beside other runs; not bit-reproducible, the step count depends on speed)."""
        opt = self.opt
        start = time.time()
        end_step = min(opt["total_steps"], max_steps) if max_steps else opt["total_steps"]
        acc: dict[str, list[float]] = {}
        if anneal_in_time and max_minutes:
            self.progress = lambda: min(1.0, (time.time() - start) / (max_minutes * 60))
            end_step = max_steps or sys.maxsize
        while self.step < end_step:
            logs = self.train_step()
            for k, v in logs.items():
                acc.setdefault(k, []).append(v)
            out_of_time = max_minutes is not None and (time.time() - start) > max_minutes * 60
            row = None
            if self.step % opt["log_every"] == 0:
                # float() waits for the GPU once here, not once per step
                row = {k: float(np.mean([float(x) for x in v])) for k, v in acc.items()}
                if not math.isfinite(row["total"]):
                    raise TrainingDiverged(f"step {self.step}: non-finite generator loss in the last {len(acc['total'])} steps")
                acc = {}
            if self.step % opt["val_every"] == 0 or self.step == end_step or out_of_time:
                val = self.validate()
                row = {**(row or {}), **val}
                print(f"[{opt['name']}] step {self.step} val PSNR-Y {val['val_psnr']:.3f} LPIPS {val['val_lpips']:.4f} "
                      f"({time.time() - start:.0f}s)", flush=True)  # fmt: skip
                try:
                    self.check_and_select(val)
                except TrainingDiverged as e:
                    self._log({"step": self.step, "wall_s": time.time() - start, **val, "event": "diverged"})
                    self.save()
                    raise e
            if row is not None:
                self._log({"step": self.step, "wall_s": round(time.time() - start, 1), **row})
            if self.step % opt["ckpt_every"] == 0 or out_of_time:
                self.save()
            if out_of_time:
                break
        self.save()
        return self.best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--opt", required=True, help="options JSON (keys override DEFAULTS)")
    ap.add_argument("--out", help="run folder (default models/runs/<name>)")
    ap.add_argument("--resume", default="auto", help="'auto' (out/last.pt if present), 'none', or a checkpoint path")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-minutes", type=float, help="stop (and checkpoint) after this much wall time")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--anneal-in-time", action="store_true",
                    help="fit the end of the LR schedule to --max-minutes (GPU bursts)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides (JSON values)")
    args = ap.parse_args(argv)
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v)
    opt = load_options(args.opt, overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        # fixed crop shapes: let cuDNN pick its fastest kernels; TF32 is ample for training
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out or MODELS / "runs" / opt["name"])
    t0 = time.time()
    trainer = Trainer(opt, out, args.device)
    print(f"data and model ready in {time.time() - t0:.0f}s", flush=True)
    resume = out / "last.pt" if args.resume == "auto" else (None if args.resume == "none" else Path(args.resume))
    if resume and resume.exists():
        trainer.load(resume)
        print(f"resumed from {resume} at step {trainer.step}", flush=True)
    elif opt.get("init_from"):
        fresh = trainer.init_generator(Path(opt["init_from"]))
        print(f"initialised generator from {opt['init_from']} (fresh: {', '.join(fresh) or 'none'})", flush=True)
    if not (resume and resume.exists()) and opt.get("init_flow_from"):
        trainer.init_flow(Path(opt["init_flow_from"]))
        print(f"flow network from {opt['init_flow_from']}", flush=True)
    try:
        best = trainer.fit(args.max_minutes, args.max_steps, args.anneal_in_time)
    except TrainingDiverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 3
    print(json.dumps({"step": trainer.step, "best": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
