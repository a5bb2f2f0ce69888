"""Does tiling cost quality? Vid4 through the element untiled and in forced tiles, PSNR-Y of both
against the ground truth and of one against the other.

    python -m mstgan.lab.tilecheck [--scale 4] [--model ../models/mstgan-x4-fidelity.onnx] [--tile 64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mstgan.tools.compare import MODELS, Method, load_clips, plugin_env, run_method
from mstgan.core.evaluation import CLIPS, default_vid4
from mstgan.metrics.video_metrics import psnr, psnr_y


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--model", default=str(MODELS / "mstgan-x4-fidelity.onnx"))
    ap.add_argument("--tile", type=int, default=64, help="tile-size of the tiled run (input pixels)")
    ap.add_argument("--overlap", type=int, default=0, help="tile-overlap (0 = the element's default)")
    ap.add_argument("--vid4", default=str(default_vid4()))
    ap.add_argument("--work", default=str(MODELS / ".cache" / "tilecheck"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = plugin_env(None)
    base = f'mstgansr scale={args.scale} model-location="{args.model}" execution-provider=cpu threads=2'
    runs = {
        "untiled": Method("untiled", "untiled", args.scale, base, "mstgansr"),
        "tiled": Method("tiled", f"tile-size={args.tile}", args.scale,
                        f"{base} tile-size={args.tile} tile-overlap={args.overlap}", "mstgansr"),  # fmt: skip
    }
    clips = load_clips(Path(args.vid4), args.scale, CLIPS, work)
    rows = []
    for clip in clips:
        out = {k: run_method(m, clip, work, env).frames for k, m in runs.items()}
        p = {k: float(np.mean([psnr_y(f, g) for f, g in zip(v, clip.gt)])) for k, v in out.items()}
        worst = int(np.abs(out["tiled"].astype(int) - out["untiled"].astype(int)).max())
        between = float(np.mean([psnr(a, b) for a, b in zip(out["tiled"], out["untiled"])]))
        rows.append((clip.name, p["untiled"], p["tiled"], worst, between))
        print(f"{clip.name}: untiled {p['untiled']:.4f} dB, tiled {p['tiled']:.4f} dB, "
              f"largest pixel difference {worst}/255, tiled vs untiled {between:.1f} dB", flush=True)  # fmt: skip
    mu = lambda i: float(np.mean([r[i] for r in rows]))  # noqa: E731
    print(f"Vid4 x{args.scale} ({Path(args.model).name}, tile-size={args.tile}): untiled {mu(1):.4f} dB, "
          f"tiled {mu(2):.4f} dB, difference {mu(2) - mu(1):+.4f} dB; largest pixel difference "
          f"{max(r[3] for r in rows)}/255")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
