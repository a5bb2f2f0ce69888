"""INT8 against FP32 on Vid4, on the CPU this runs on: does the INT8 file keep its quality here?

onnxruntime's int8 convolutions take a different kernel per instruction set: with VNNI (AVX512-VNNI
or AVX-VNNI) u8 x s8 products accumulate in 32 bits; without it (AVX2, AVX512BW: most AMD EPYCs,
older Xeons) pairs of products are summed in 16 bits with saturation, so 8-bit weights can clip.
Run it on each kind of CPU, or emulate one without VNNI on any x86 machine with QEMU's user mode:

    python -m mstgan.tools.int8_isa mstgan-x4-fidelity.onnx --stride 4
    qemu-x86_64 -cpu EPYC-Rome .venv/bin/python -m mstgan.tools.int8_isa mstgan-x4-fidelity.onnx --stride 8 --crop 48

Each FP32 file is compared with the ``-int8`` file beside it (or ``--int8``), PSNR-Y against the
ground truth on every ``stride``-th frame of each Vid4 clip (whole frames, edge-clamped windows).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mstgan.data.clips import window_indices
from mstgan.metrics.video_metrics import psnr_y
from mstgan.core.evaluation import CLIPS, default_vid4, load_clip


def cpu_features() -> dict[str, bool]:
    """What the int8 kernels depend on, from numpy's own CPUID probe (under QEMU: the emulated CPU)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as f
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as f
    return {k: bool(f.get(k, False)) for k in ("AVX2", "AVX512BW", "AVX512VNNI", "AVX512_SPR")}


def int8_path(fp32: Path) -> Path:
    return fp32.with_name(fp32.name.removesuffix(".onnx") + "-int8.onnx")


def frames_psnr(sess, lr: np.ndarray, gt: np.ndarray, window: int, stride: int) -> tuple[list[float], list[np.ndarray]]:
    x = lr.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    scores, outs = [], []
    for t in range(0, len(x), stride):
        y = sess.run(None, {"frames": x[window_indices(t, len(x), window)][None]})[0][0]
        o = np.clip(np.round(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
        scores.append(psnr_y(o, gt[t]))
        outs.append(o)
    return scores, outs


def centre_crop(lr: np.ndarray, gt: np.ndarray, scale: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """An LR crop of ``crop`` px at the frame centre and its GT: emulated CPUs run ~100x slower."""
    y, x = max(0, (lr.shape[1] - crop) // 2), max(0, (lr.shape[2] - crop) // 2)
    return lr[:, y : y + crop, x : x + crop], gt[:, y * scale : (y + crop) * scale, x * scale : (x + crop) * scale]


def compare(fp32: Path, int8: Path, vid4: Path, stride: int, threads: int, crop: int | None = None,
            clips: tuple[str, ...] = CLIPS) -> dict:  # fmt: skip
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    a = ort.InferenceSession(str(fp32), so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"])
    meta = a.get_modelmeta().custom_metadata_map
    meta8 = b.get_modelmeta().custom_metadata_map
    scale, window = int(meta["scale"]), int(meta["window"])
    rows = {}
    t0 = time.time()
    for clip in clips:
        lr, gt = load_clip(vid4, clip, scale)
        if crop:
            lr, gt = centre_crop(lr, gt, scale, crop)
        p32, o32 = frames_psnr(a, lr, gt, window, stride)
        p8, o8 = frames_psnr(b, lr, gt, window, stride)
        mse = np.mean([np.mean((u.astype(np.float64) - v) ** 2) for u, v in zip(o32, o8)])
        rows[clip] = {"fp32": float(np.mean(p32)), "int8": float(np.mean(p8)),
                      "int8_vs_fp32": float(10 * np.log10(255.0**2 / max(mse, 1e-12)))}  # fmt: skip
    avg = {k: float(np.mean([r[k] for r in rows.values()])) for k in ("fp32", "int8", "int8_vs_fp32")}
    return {"fp32": str(fp32), "int8": str(int8), "scale": scale, "window": window, "stride": stride, "crop": crop, "clip_names": list(clips),
            "int8_weight_bits": meta8.get("int8_weight_bits", "8"), "clips": rows, "average": avg,
            "delta_db": avg["int8"] - avg["fp32"], "seconds": time.time() - t0}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fp32", nargs="+", type=Path, help="FP32 model files")
    ap.add_argument("--int8", type=Path, nargs="+", help="the INT8 files, in the same order (default: <name>-int8.onnx)")
    ap.add_argument("--stride", type=int, default=1, help="every n-th frame of each clip (1: all)")
    ap.add_argument("--crop", type=int, help="only an LR crop of this size at each frame's centre (emulated CPUs)")
    ap.add_argument("--clip", action="append", choices=CLIPS, help="Vid4 clips (default: all)")
    ap.add_argument("--vid4", type=Path, default=default_vid4())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--speed-against", type=Path, nargs="+", metavar="INT8",
                    help="also time each INT8 file against this one (same order; the files it replaces), "
                         "one 180x144 window, runs alternated, idle machine")
    ap.add_argument("--json", type=Path, help="append one JSON line per model here")
    args = ap.parse_args(argv)
    if args.int8 and len(args.int8) != len(args.fp32):
        ap.error("--int8 needs one file per FP32 file")
    if args.speed_against and len(args.speed_against) != len(args.fp32):
        ap.error("--speed-against needs one file per FP32 file")
    if args.stride < 1:
        ap.error("--stride must be at least 1")
    feats = cpu_features()
    vnni = feats["AVX512VNNI"]
    print(f"CPU: {', '.join(k for k, v in feats.items() if v) or 'none of AVX2/AVX512'}; "
          f"int8 kernels {'with VNNI (32-bit sums)' if vnni else 'without VNNI (16-bit saturating pair sums)'}")  # fmt: skip
    for i, fp32 in enumerate(args.fp32):
        int8 = args.int8[i] if args.int8 else int8_path(fp32)
        for p in (fp32, int8):
            if not p.is_file():
                ap.error(f"{p} does not exist")
        r = compare(fp32, int8, args.vid4, args.stride, args.threads, args.crop, tuple(args.clip or CLIPS))
        r["cpu"] = feats
        print(f"{int8.name} ({r['int8_weight_bits']}-bit weights): FP32 {r['average']['fp32']:.3f} INT8 "
              f"{r['average']['int8']:.3f} dB ({r['delta_db']:+.3f}); INT8 vs FP32 output "
              f"{r['average']['int8_vs_fp32']:.1f} dB; every {args.stride}. frame{f', {args.crop} px crops' if args.crop else ''}, "
              f"{r['seconds']:.0f} s", flush=True)  # fmt: skip
        if args.speed_against:
            from mstgan.core.sessions import cpu_speeds

            t_old, t_new = cpu_speeds([args.speed_against[i], int8], args.threads, runs=15)
            r["ms_before"], r["ms_after"] = t_old * 1e3, t_new * 1e3
            print(f"  window 180x144: {args.speed_against[i]} {t_old * 1e3:.1f} ms, {int8} {t_new * 1e3:.1f} ms "
                  f"({t_old / t_new:.2f}x; medians of 15 alternated runs)", flush=True)  # fmt: skip
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
