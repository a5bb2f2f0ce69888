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
from pathlib import Path

from mstgan.core.evaluation import default_vid4, evaluate


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
