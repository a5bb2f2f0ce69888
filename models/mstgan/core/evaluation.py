"""The evaluation protocol (BasicSR/TecoGAN conventions): Vid4 or the held-out clips, PSNR /
SSIM on Y, LPIPS-alex and tOF; ``python -m mstgan.tools.evaluate`` is its command."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from mstgan.core.windows import upscale_onnx
from mstgan.data.degradation import degrade_bi, imresize, to_uint8
from mstgan.metrics.video_metrics import farneback_flows, psnr_y, ssim_y, tof_from_flows
from mstgan.paths import SHARED

CLIPS = ("calendar", "city", "foliage", "walk")


def default_vid4() -> Path:
    return SHARED / "vid4"


def load_clip(vid4: Path, clip: str, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR frames, GT frames cropped to a multiple of scale), uint8 [F, H, W, 3]."""
    gt_dir = vid4 / "GT" / clip
    files = sorted(gt_dir.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no Vid4 ground truth in {gt_dir}")
    gt = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    h, w = gt.shape[1] // scale * scale, gt.shape[2] // scale * scale
    gt = gt[:, :h, :w]
    if scale == 4:
        lr_files = sorted((vid4 / "BIx4" / clip).glob("*.png"))
        if len(lr_files) != len(files):
            raise ValueError(f"{clip}: {len(lr_files)} BIx4 frames for {len(files)} GT frames")
        lr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in lr_files])
    else:
        lr = np.stack([degrade_bi(f, scale) for f in gt])
    return lr, gt


def load_validation(scale: int, root: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The held-out clips as {name: (LR, GT)}: GT cropped to a multiple of ``scale``, LR by BI."""
    from mstgan.data.clips import VAL_SEQUENCES, load_frames

    root = root or SHARED / "train"
    out = {}
    for name in VAL_SEQUENCES:
        hr = load_frames(root / name)
        h, w = hr.shape[1] // scale * scale, hr.shape[2] // scale * scale
        out[name] = (np.stack([degrade_bi(f, scale) for f in hr]), hr[:, :h, :w])
    return out


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    return np.stack([to_uint8(imresize(f, scale)) for f in lr])


def tof(out: np.ndarray, gt: np.ndarray) -> float:
    """TecoGAN tOF: mean L2 distance between Farneback flows of consecutive output and GT frames."""
    return tof_from_flows(farneback_flows(out), farneback_flows(gt))


def upscaler(method: str, scale: int, threads: int = 2):
    """``bicubic``, ``onnx:<path>`` or ``ckpt:<path>`` as a function of the LR clip
    ([F, H, W, 3] uint8) to the upscaled one; a model of another scale is an error."""
    if method == "bicubic":
        return lambda lr: upscale_bicubic(lr, scale)
    if method.startswith("ckpt:"):
        import torch

        from mstgan.core.checkpoint import load_generator
        from mstgan.core.windows import upscale_torch as upscale

        torch.set_num_threads(threads)
        gen, _ = load_generator(method[5:])
        if gen.scale != scale:
            raise ValueError(f"{method[5:]} is a x{gen.scale} model, evaluation asked for x{scale}")
        return lambda lr: upscale(gen, lr)
    if method.startswith("onnx:"):
        import onnxruntime as ort

        path = method[5:]
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        if int(meta["scale"]) != scale:
            raise ValueError(f"{path} is a x{meta['scale']} model, evaluation asked for x{scale}")
        window = int(meta["window"])
        return lambda lr: upscale_onnx(sess, lr, window)
    raise ValueError(f"method must be bicubic, onnx:<path> or ckpt:<path>, not {method!r}")


def evaluate(method: str, scale: int, vid4: Path, perceptual: bool = False, threads: int = 2,
             qp: int | None = None, dataset: str = "vid4") -> dict:  # fmt: skip
    up = upscaler(method, scale, threads)
    lp = None
    if perceptual:
        import torch

        from mstgan.losses.lpips import LPIPS

        lp = LPIPS("alex")
    per_clip = {}
    t_total, n_total = 0.0, 0
    if dataset == "vid4":
        data = {clip: load_clip(vid4, clip, scale) for clip in CLIPS}
    elif dataset == "validation":
        data = load_validation(scale)
    else:
        raise ValueError(f"dataset must be 'vid4' or 'validation', not {dataset!r}")
    for clip, (lr, gt) in data.items():
        if qp is not None:
            from mstgan.data.realworld import compress_clip

            lr = compress_clip(lr, qp)
        t0 = time.time()
        out = up(lr)
        t_total += time.time() - t0
        n_total += len(lr)
        if out.shape != gt.shape:
            raise ValueError(f"{clip}: output {out.shape} vs GT {gt.shape}")
        row = {
            "psnr": float(np.mean([psnr_y(o, g) for o, g in zip(out, gt)])),
            "ssim": float(np.mean([ssim_y(o, g) for o, g in zip(out, gt)])),
        }
        if lp is not None:
            with torch.no_grad():
                a = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255
                b = torch.from_numpy(gt).permute(0, 3, 1, 2).float() / 255
                row["lpips"] = float(np.mean([float(lp(a[i : i + 1], b[i : i + 1])) for i in range(len(a))]))
            row["tof"] = tof(out, gt)
        per_clip[clip] = row
    first = next(iter(per_clip.values()))
    avg = {k: float(np.mean([row[k] for row in per_clip.values()])) for k in first}
    return {"method": method, "scale": scale, "dataset": dataset, "clips": per_clip, "average": avg, "qp": qp,
            "seconds_per_frame": t_total / n_total, "threads": threads}  # fmt: skip
