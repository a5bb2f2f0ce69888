"""The element on onnxruntime's CPU provider against OpenVINO's, FP32 and INT8, on Vid4.

Every (provider, model) pair runs the Vid4 clips through ``gst-launch-1.0`` (PNG frames,
``pngdec``, ``mstgansr execution-provider=cpu|openvino``, raw frames to a file), in turn within
each round, on one idle machine. ``cpu`` loads the venv's onnxruntime, ``openvino`` the
onnxruntime-openvino build that ``scripts/setup.sh`` puts in ``.ort-openvino`` (ORT_DYLIB_PATH).
Frames/s is the whole process over all clips (PNG decoding, model loading and OpenVINO's compile
of each clip's frame size included); "steady" takes start-up out: each clip also runs on its first
``SHORT`` frames, and the extra frames of the full runs over their extra time is the streaming
rate. Medians over rounds; PSNR/SSIM (Y, as ``compare``) from the first round. Ratios are to the
first model on the CPU provider and on the same provider, in steady frames/s.

    python -m mstgan.tools.openvino --scale 4 --model mstgan-x4-fidelity.onnx \\
        --model mstgan-x4-fidelity-int8.onnx [--rounds 3] [--out ../docs/bench/openvino.md]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import statistics
import tempfile
from pathlib import Path

import numpy as np

from mstgan.core.sessions import machine
from mstgan.metrics.video_metrics import psnr_y, ssim_y
from mstgan.tools.compare import MODELS, REPO, CompareError, Method, load_clips, plugin_env, run_method
from mstgan.core.evaluation import CLIPS, default_vid4

PROVIDERS = ("cpu", "openvino")
SHORT = 8


def openvino_library(root: Path = REPO / ".ort-openvino") -> Path:
    """The libonnxruntime.so.<version> of the onnxruntime-openvino install under ``root``."""
    capi = root / "onnxruntime" / "capi"
    libs = sorted(capi.glob("libonnxruntime.so.*"), key=lambda p: len(p.name))
    if not libs:
        raise CompareError(f"no libonnxruntime.so.<version> in {capi}: run scripts/setup.sh, which installs "
                           "onnxruntime-openvino there")  # fmt: skip
    return libs[-1]


def provider_env(base: dict, provider: str, ov_lib: Path) -> dict:
    env = dict(base)
    env.pop("ORT_DYLIB_PATH", None)
    if provider == "openvino":
        env["ORT_DYLIB_PATH"] = str(ov_lib)
    return env


def run(scale: int, models: list[Path], rounds: int, threads: int, clips: list[str], frames: int | None,
        vid4: Path, ov_lib: Path) -> list[dict]:  # fmt: skip
    base = plugin_env(None)
    work = Path(tempfile.mkdtemp(prefix="mstgan-openvino-"))
    data = load_clips(vid4, scale, clips, MODELS / ".cache" / "compare", frames)
    short = load_clips(vid4, scale, clips, MODELS / ".cache" / "compare", SHORT)
    rows = {}
    for p in PROVIDERS:
        for m in models:
            frag = f'mstgansr scale={scale} model-location="{m}" execution-provider={p} threads={threads}'
            label = f"{m.relative_to(MODELS) if m.is_relative_to(MODELS) else m} on {p}"
            rows[(p, m)] = {"provider": p, "model": m, "fps": [], "steady": [],
                            "method": Method(f"{p}-{len(rows)}", label, scale, frag, "mstgansr", m)}  # fmt: skip
    for r in range(rounds):
        for row in rows.values():
            env = provider_env(base, row["provider"], ov_lib)
            seconds, n, psnr, ssim = 0.0, 0, [], []
            for clip in data:
                res = run_method(row["method"], clip, work, env)
                seconds += res.seconds
                n += len(clip.gt)
                if r == 0:
                    psnr.append(np.mean([psnr_y(o, g) for o, g in zip(res.frames, clip.gt)]))
                    ssim.append(np.mean([ssim_y(o, g) for o, g in zip(res.frames, clip.gt)]))
            s_sec = sum(run_method(row["method"], c, work, env).seconds for c in short)
            s_n = sum(len(c.gt) for c in short)
            row["fps"].append(n / seconds)
            row["steady"].append((n - s_n) / (seconds - s_sec))
            if r == 0:
                row["psnr"], row["ssim"] = float(np.mean(psnr)), float(np.mean(ssim))
            print(f"round {r + 1}: {row['method'].label}: {n / seconds:.2f} f/s, steady {row['steady'][-1]:.2f}"
                  + (f", PSNR {row['psnr']:.3f}" if r == 0 else ""), flush=True)  # fmt: skip
    out = []
    for row in rows.values():
        row["fps_median"] = statistics.median(row["fps"])
        row["steady_median"] = statistics.median(row["steady"])
        out.append(row)
    base_cpu = rows[("cpu", models[0])]["steady_median"]
    for row in out:
        row["vs_cpu_first"] = row["steady_median"] / base_cpu
        row["vs_same_first"] = row["steady_median"] / rows[(row["provider"], models[0])]["steady_median"]
    return out


def table(rows: list[dict]) -> str:
    lines = ["| provider | model | Vid4 PSNR (dB) | SSIM | frames/s, whole process | steady frames/s (rounds) "
             "| steady vs CPU, first model | steady vs same provider, first model |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        rel = r["model"].relative_to(MODELS) if r["model"].is_relative_to(MODELS) else r["model"]
        lines.append(f"| {r['provider']} | `{rel}` | {r['psnr']:.3f} | {r['ssim']:.4f} | {r['fps_median']:.2f} "
                     f"| {r['steady_median']:.2f} ({' / '.join(f'{v:.2f}' for v in r['steady'])}) "
                     f"| {r['vs_cpu_first']:.2f}x | {r['vs_same_first']:.2f}x |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--model", action="append", required=True, help="model file (repeatable); the first is the baseline")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", nargs="+", default=list(CLIPS))
    ap.add_argument("--frames", type=int, help="first N frames of each clip (default all)")
    ap.add_argument("--vid4", default=str(default_vid4()))
    ap.add_argument("--openvino-root", default=str(REPO / ".ort-openvino"))
    ap.add_argument("--out", help="also write the table here (markdown)")
    args = ap.parse_args(argv)
    models = [Path(m).resolve() for m in args.model]
    for m in models:
        if not m.is_file():
            raise SystemExit(f"error: model {m} does not exist")
    try:
        ov_lib = openvino_library(Path(args.openvino_root))
        rows = run(args.scale, models, args.rounds, args.threads, args.clips, args.frames, Path(args.vid4), ov_lib)
    except CompareError as e:
        raise SystemExit(f"error: {e}") from None
    head = (f"x{args.scale}, Vid4 ({', '.join(args.clips)}{f', {args.frames} frames each' if args.frames else ''}), "
            f"{args.threads} threads, {args.rounds} rounds alternated; {machine()}; "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; OpenVINO build: {ov_lib.name}")  # fmt: skip
    text = f"{head}\n\n{table(rows)}\n"
    print("\n" + text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(f"# The element on onnxruntime's CPU provider and on OpenVINO\n\n"
                                  f"`python -m mstgan.tools.openvino {' '.join(argv if argv is not None else sys.argv[1:])}`"
                                  f"\n\n{text}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
