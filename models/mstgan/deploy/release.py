"""From training checkpoints to the shipped models and the model card's numbers.

Exports each checkpoint to ONNX (FP32), quantises it to INT8, evaluates FP32, INT8 and bicubic
on Vid4 (PSNR/SSIM-Y; LPIPS-alex and tOF at x4), times FP32 vs INT8 on CPU in the same run, and
writes ``release.json`` + ``release.md`` next to the models.

    python -m mstgan.deploy.release --model x4:fidelity:checkpoints/x4_stage1.pt \\
        --model x4:perceptual:checkpoints/x4_stage2.pt --out ..
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

from mstgan.core.evaluation import default_vid4, evaluate
from mstgan.core.sessions import cpu_session, cpu_speeds, machine, timed
from mstgan.core.calibration import calibration_windows
from mstgan.core.checkpoint import load_generator
from mstgan.deploy.export import export_onnx, export_split, parity, read_metadata, split_parity, split_paths
from mstgan.deploy.quantize import quantize, quantize_split
from mstgan.paths import MODELS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="x<scale>:<variant>:<checkpoint> (repeatable)")
    ap.add_argument("--speed", action="store_true",
                    help="only re-time FP32 vs INT8 of every model in release.json (run on an idle machine)")
    ap.add_argument("--out", default=str(MODELS), help="folder for the .onnx files")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--split", action="store_true",
                    help="only (re)write the feature-caching pairs of every model in release.json from its checkpoint")
    args = ap.parse_args(argv)
    out = Path(args.out)
    res_path = out / "release.json"
    # models released earlier stay in the results unless released again
    results = json.loads(res_path.read_text()) if res_path.exists() else {"models": [], "bicubic": {}}
    results.update({"machine": machine(), "threads": args.threads})
    if args.speed:
        for m in results["models"]:
            m["cpu_s_fp32"], m["cpu_s_int8"] = cpu_speeds([out / m["fp32"], out / m["int8"]], args.threads, runs=15)
            print(f"x{m['scale']} {m['variant']}: FP32 {m['cpu_s_fp32'] * 1000:.0f} ms, INT8 {m['cpu_s_int8'] * 1000:.0f} ms "
                  f"({m['cpu_s_fp32'] / m['cpu_s_int8']:.2f}x)")  # fmt: skip
        res_path.write_text(json.dumps(results, indent=1) + "\n")
        (out / "release.md").write_text(to_markdown(results))
        return 0
    if args.split:
        for m in results["models"]:
            g, _ = load_generator(m["checkpoint"])
            if not hasattr(g, "extract"):
                continue
            m.update(write_split(g, out / m["fp32"], out / m["int8"], args.threads))
            print(f"x{m['scale']} {m['variant']}: split parity FP32 {m['split_parity_fp32']:.1e}, "
                  f"INT8 {m['split_parity_int8']:.1e}; extractor {m['cpu_s_extractor'] * 1000:.0f} ms, "
                  f"fusion FP32 {m['cpu_s_fusion_fp32'] * 1000:.0f} / INT8 {m['cpu_s_fusion_int8'] * 1000:.0f} ms")  # fmt: skip
        res_path.write_text(json.dumps(results, indent=1) + "\n")
        return 0
    try:
        results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    scales = set()
    for spec in args.model:
        scale_s, variant, ckpt = spec.split(":", 2)
        scale = int(scale_s.lstrip("x"))
        scales.add(scale)
        g, st = load_generator(ckpt)
        meta = {"variant": variant, "stage": st["options"]["stage"]}
        interp = st.get("interpolation")
        if interp:  # a blend made by mstgan.training.interpolate: say so in the file
            meta["interpolation"] = f"{interp['alpha']} x {interp['perceptual']} + {1 - interp['alpha']:.2f} x {interp['fidelity']}"
        fp32 = export_onnx(g, out / f"mstgan-x{scale}-{variant}.onnx", "fp32", st["step"], meta)
        diff = parity(g, fp32)
        int8 = quantize(fp32, out / f"mstgan-x{scale}-{variant}-int8.onnx",
                        calibration_windows(scale, g.n_frames))  # fmt: skip
        t_fp32, t_int8 = cpu_speeds([fp32, int8], args.threads, runs=15)
        entry = {"scale": scale, "variant": variant, "checkpoint": str(ckpt), "steps": st["step"],
                 "parity_max_abs": diff, "fp32": str(fp32.name), "int8": str(int8.name),
                 "cpu_s_fp32": t_fp32, "cpu_s_int8": t_int8}  # fmt: skip
        if hasattr(g, "extract"):  # the fast tier (early fusion) has no per-frame features to cache
            entry.update(write_split(g, fp32, int8, args.threads))
        if interp:
            entry["interpolation"] = {k: interp[k] for k in ("alpha", "fidelity", "fidelity_step", "perceptual")}
        if not args.skip_eval:
            perceptual = scale == 4
            entry["vid4_fp32"] = evaluate(f"onnx:{fp32}", scale, _vid4(), perceptual, args.threads)["average"]
            entry["vid4_int8"] = evaluate(f"onnx:{int8}", scale, _vid4(), perceptual, args.threads)["average"]
        results["models"] = [m for m in results["models"] if (m["scale"], m["variant"]) != (scale, variant)]
        results["models"].append(entry)
        results["models"].sort(key=lambda m: (-m["scale"], m["variant"]))
        print(json.dumps(entry), flush=True)
    if not args.skip_eval:
        for s in sorted(scales - {int(k[1:]) for k in results["bicubic"]}):
            results["bicubic"][f"x{s}"] = evaluate("bicubic", s, _vid4(), s == 4, args.threads)["average"]
    (out / "release.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "release.md").write_text(to_markdown(results))
    print((out / "release.md").read_text())
    return 0


def write_split(g, fp32: Path, int8: Path, threads: int) -> dict:
    """Exports the feature-caching pairs of both precisions, checks them against the whole graphs
    and times their parts (one extractor run + one fusion run = the cached cost of a frame)."""
    export_split(g, fp32, read_metadata(fp32))
    quantize_split(fp32, int8, calibration_windows(g.scale, g.n_frames))
    ext, fus32 = split_paths(fp32)
    _, fus8 = split_paths(int8)
    t_ext, t_f32, t_f8 = split_speeds(ext, fus32, fus8, threads)
    return {"split_parity_fp32": split_parity(fp32), "split_parity_int8": split_parity(int8),
            "cpu_s_extractor": t_ext, "cpu_s_fusion_fp32": t_f32, "cpu_s_fusion_int8": t_f8}  # fmt: skip


def split_speeds(ext: Path, fus32: Path, fus8: Path, threads: int = 2, hw: tuple[int, int] = (144, 180),
                 runs: int = 15) -> list[float]:  # fmt: skip
    """Median seconds of one extractor run and one fusion run (FP32, INT8) at ``hw``, timed in turn."""
    from mstgan.deploy.export import fusion_inputs

    sessions = [cpu_session(p, threads, spin=False) for p in (ext, fus32, fus8)]
    window = int(sessions[1].get_modelmeta().custom_metadata_map["window"])
    x = np.random.default_rng(0).random((1, window, 3, *hw), dtype=np.float32)
    feed = fusion_inputs(ext, x)
    return timed(sessions, [{"frame": np.ascontiguousarray(x[:, 0])}, feed, feed], runs)


def _vid4() -> Path:

    return default_vid4()


def to_markdown(r: dict) -> str:
    lines = [f"Machine: {r['machine']}; onnxruntime CPU provider, {r['threads']} threads; commit {r.get('commit', '?')}.", "",
             "| model | steps | Vid4 PSNR-Y | SSIM-Y | LPIPS-alex | tOF | CPU ms / 180x144 frame |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s, b in sorted(r["bicubic"].items()):
        lines.append(f"| bicubic {s} | - | {b['psnr']:.2f} | {b['ssim']:.4f} | {b.get('lpips', float('nan')):.3f} | "
                     f"{b.get('tof', float('nan')):.3f} | - |")  # fmt: skip
    for m in r["models"]:
        for prec in ("fp32", "int8"):
            v = m.get(f"vid4_{prec}")
            if v is None:
                continue
            lines.append(f"| x{m['scale']} {m['variant']} {prec.upper()} | {m['steps']} | {v['psnr']:.2f} | {v['ssim']:.4f} | "
                         f"{v.get('lpips', float('nan')):.3f} | {v.get('tof', float('nan')):.3f} | {m[f'cpu_s_{prec}'] * 1000:.0f} |")  # fmt: skip
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
