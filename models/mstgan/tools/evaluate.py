"""Vid4 evaluation of ONNX models (onnxruntime, CPU) and bicubic, BasicSR/TecoGAN conventions.

PSNR / SSIM on the Y channel of MATLAB rgb2ycbcr, all frames, crop_border 0, mean per clip then
over the 4 clips; LPIPS-alex and tOF (TecoGAN definitions) with ``--perceptual``.

    python -m mstgan.tools.evaluate --scale 4 --method bicubic --method onnx:mstgan-x4-fidelity.onnx

``ckpt:<checkpoint>`` evaluates a training checkpoint's EMA generator in PyTorch (CPU), e.g. a
model trained but not (yet) exported. ``--qp N`` feeds every method the LR clips after H.264 at
QP N (x264, 4:2:0, see :mod:`mstgan.data.realworld`): compressed input, as cameras and the web give
it; bicubic then upscales the same decoded frames. ``--dataset validation`` runs the same
protocol on the three held-out training clips (``data.clips.VAL_SEQUENCES``, whole frames, LR by
the BI degradation), which no model was trained on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mstgan.data.degradation import degrade_bi, imresize, to_uint8
from mstgan.metrics.video_metrics import farneback_flows, psnr_y, ssim_y, tof_from_flows
from mstgan.paths import SHARED
from mstgan.data.clips import window_indices

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


def upscale_onnx(sess, lr: np.ndarray, window: int) -> np.ndarray:
    x = lr.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    n = len(x)
    out = []
    for t in range(n):
        idx = window_indices(t, n, window)
        y = sess.run(None, {"frames": x[idx][None]})[0][0]
        out.append(np.clip(np.round(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8))
    return np.stack(out)


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

        from mstgan.deploy.export import load_generator
        from mstgan.training.interpolate import upscale

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--method", action="append", required=True, help="bicubic | onnx:<path> | ckpt:<path> (repeatable)")
    ap.add_argument("--vid4", default=str(default_vid4()))
    ap.add_argument("--perceptual", action="store_true", help="also LPIPS-alex and tOF")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--qp", type=int, action="append", help="also on x264-compressed input at this QP (repeatable)")
    ap.add_argument("--dataset", choices=("vid4", "validation"), default="vid4",
                    help="Vid4, or the held-out training clips")
    args = ap.parse_args(argv)
    results = [evaluate(m, args.scale, Path(args.vid4), args.perceptual, args.threads, qp, args.dataset)
               for qp in [None, *(args.qp or [])] for m in args.method]  # fmt: skip
    for r in results:
        a = r["average"]
        extra = f"  LPIPS {a['lpips']:.4f}  tOF {a['tof']:.4f}" if "lpips" in a else ""
        src = "BI" if r["qp"] is None else f"BI + x264 QP {r['qp']}"
        print(f"{r['dataset']} x{r['scale']} {src} {r['method']}: PSNR {a['psnr']:.3f}  SSIM {a['ssim']:.4f}{extra}  "
              f"({r['seconds_per_frame'] * 1000:.0f} ms/frame, {r['threads']} threads)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
