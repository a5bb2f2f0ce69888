"""Two releases of one model timed against each other in one run: the whole-window file and the
feature-cache pair (extractor, fusion FP32 and INT8), alternated so that a shared machine's
drift hits both alike. Quotes medians in ms at 180x144 input (a Vid4 frame at x4).

    git show <commit>:models/mstgan-x4-fidelity.onnx > old/mstgan-x4-fidelity.onnx  # and the pair
    python -m mstgan.lab.speedpair --old old --new . --model mstgan-x4-fidelity
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mstgan.core.sessions import cpu_speeds, machine
from mstgan.deploy.release import split_speeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="folder with the earlier files")
    ap.add_argument("--new", type=Path, required=True, help="folder with the later files")
    ap.add_argument("--model", default="mstgan-x4-fidelity", help="file stem (FP32; -int8 beside it)")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    dirs = {"old": args.old, "new": args.new}
    for d in dirs.values():
        for suffix in ("", "-int8", ".extractor", ".fusion", "-int8.fusion"):
            if not (d / f"{args.model}{suffix}.onnx").is_file():
                print(f"error: {d / (args.model + suffix + '.onnx')} is missing; the folder needs the "
                      "FP32 and INT8 files and the feature-cache pair")  # fmt: skip
                return 2
    print(machine())
    paths = [(label, d / f"{args.model}{s}.onnx") for s in ("", "-int8") for label, d in dirs.items()]
    for (label, p), t in zip(paths, cpu_speeds([p for _, p in paths], args.threads, runs=args.runs)):
        print(f"whole window, {label} {p.name}: {t * 1000:.0f} ms")
    for label, d in [*dirs.items(), *dirs.items()]:
        e, f32, f8 = split_speeds(d / f"{args.model}.extractor.onnx", d / f"{args.model}.fusion.onnx",
                                  d / f"{args.model}-int8.fusion.onnx", args.threads, runs=args.runs)  # fmt: skip
        print(f"feature cache, {label}: extractor {e * 1000:.1f} ms, "
              f"fusion FP32 {f32 * 1000:.0f} ms, INT8 {f8 * 1000:.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
