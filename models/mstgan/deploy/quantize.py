"""INT8 static post-training quantisation (QDQ, per-channel weights) of an exported generator.

Calibrated on LR windows from the validation split. The per-frame feature extractor, the
upsampler's last convolution, the detail-refinement module and the bicubic skip stay in float:
quantising them costs visible quality for little speed. The flow estimator is int8 (it costs 0.004 dB on Vid4 x4).

    python -m mstgan.deploy.quantize --model mstgan-x4-fidelity.onnx --out mstgan-x4-fidelity-int8.onnx
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from mstgan.core.calibration import calibration_windows
from mstgan.deploy.export import fusion_inputs, read_metadata, set_metadata, split_paths

# Measured on the x4 fidelity model (Vid4 PSNR-Y, FP32 25.37; --float sweeps, see the model card):
# flow + last convs float -0.22 dB; + feature extractor float -0.06 dB (kept); + refinement and
# upsampling float too -0.003 dB.
# The extractor matters: its features feed the flow estimator and every aligned neighbour.
# The bicubic skip (a fixed convolution) is the base image itself: quantising it would put 8-bit
# steps into every output pixel.
# The fast tier's head (a 6x6 stride-2 conv of the raw frames at x2) is int8: it lost 0.16 dB under
# moving-average min/max ranges (lab/logs/int8-x2-fast-head.out), not with percentile ones (below).
# The flow estimator is int8 (2026-12-03): Vid4 x4 -0.004 dB against the float-flow file, and
# on OpenVINO it takes the element's x4 INT8 from 1.61x to 1.87x FP32's steady speed (its fusion graph
# is then int8 convolutions from end to end but for the warp; lab/logs/openvino-x4.out).
# The whole detail-refinement module (~7 % of the FLOPs) is float since stop 42, not only its
# last convolution: on a x4 fidelity model, INT8's loss to FP32 0.039 -> 0.019 dB on the held-out
# clips and 0.038 -> 0.031 on Vid4, speed level within this machine's noise
# (lab/logs/eval-validation-int8-texture8.out, release-x4-t7-fidelity-texture8{,-refine}.out).
FLOAT_PREFIXES = ("/g/extractor/", "/g/upsample/upsample.2/", "/g/refine/", "/g/skip/")
# Per architecture (the model's ``arch`` metadata): the operator types given int8 inputs and
# outputs (QDQ around them) and how activation ranges are calibrated.
# fast: with the residual adds and the activations in int8 too, a chain of convolutions never
# leaves int8 (QLinearConv -> QLinearAdd -> QLinearConv) where Conv alone left a dequantise /
# float add / quantise between blocks (x2 fast, 320x240: 1.43x -> 1.87x FP32's speed per
# window); ranges from the 99.999th percentile: under moving-average min/max ranges an int8 head
# alone took the output from 49.5 to 41.7 dB from FP32's, the whole chain with percentiles is at
# 52.4 (lab/logs/int8-fast-chain.out).
# mst: the fast recipe ran the x4 fidelity window 1.19x instead of 1.13x faster, at 43.7 instead
# of 53.7 dB from FP32's output: its float parts (flow, GridSample, extractor) bound it.
# Weights are 7-bit (reduce_range: -64..64). Without VNNI (AVX2, AVX512BW: most AMD EPYCs, older
# Xeons) onnxruntime's u8 x s8 kernels sum pairs of products in 16 bits with saturation: 2 x 255 x 127
# overflows it, 2 x 255 x 64 cannot. 8-bit weights cost the x4 fidelity model 0.19 dB on an AMD
# EPYC and 0.003 dB on a VNNI Xeon; 7-bit weights make one file exact on both (lab/logs/int8-isa-*.out).
WEIGHT_BITS = 7
RECIPES = {
    "fast": {"ops": ("Conv", "Add", "Relu", "LeakyRelu"), "calib": CalibrationMethod.Percentile,
             "extra": {"CalibPercentile": 99.999}},
    "mst": {"ops": ("Conv",), "calib": CalibrationMethod.MinMax, "extra": {"CalibMovingAverage": True}},
}  # fmt: skip


class WindowReader(CalibrationDataReader):
    """Feeds windows ([1,T,3,h,w] arrays for the whole graph) or ready feeds (dicts)."""

    def __init__(self, windows: list[np.ndarray] | list[dict]):
        self.it = iter(windows)

    def get_next(self):
        x = next(self.it, None)
        return x if x is None or isinstance(x, dict) else {"frames": x}


def float_nodes(graph, float_prefixes: tuple[str, ...]) -> list[str]:
    """Nodes under ``float_prefixes``, and the adds / activations that read one of their outputs:
    quantising those would put the float result on an 8-bit grid after all (the bicubic skip's
    sum with the detail is the output image)."""
    kept = {n.name for n in graph.node if n.name.startswith(float_prefixes)}
    outs = {o for n in graph.node if n.name in kept for o in n.output}
    kept |= {n.name for n in graph.node if n.op_type != "Conv" and outs.intersection(n.input)}
    return sorted(kept)


def quantize(model_path: str | Path, out_path: str | Path, windows: list[np.ndarray] | list[dict],
             float_prefixes: tuple[str, ...] = FLOAT_PREFIXES, op_types: tuple[str, ...] | None = None,
             recipe: str | None = None, weight_bits: int = WEIGHT_BITS) -> Path:  # fmt: skip
    """``recipe``: a key of ``RECIPES`` (None: the model's architecture); ``op_types`` overrides its
    operator types; ``weight_bits`` 7 (safe without VNNI) or 8."""
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, not {weight_bits}")
    model_path, out_path = Path(model_path), Path(out_path)
    meta = read_metadata(model_path)
    name = recipe or meta.get("arch", "mst")
    rc = RECIPES[name]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
        exclude = float_nodes(onnx.load(str(pre)).graph, float_prefixes)
        quantize_static(
            str(pre), str(out_path), WindowReader(windows), quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=weight_bits == 7, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
            op_types_to_quantize=list(op_types or rc["ops"]), calibrate_method=rc["calib"],
            extra_options=rc["extra"],
        )  # fmt: skip
    meta["precision"] = "int8"
    meta["float_nodes"] = ",".join(float_prefixes)
    meta["int8_recipe"] = name
    meta["int8_weight_bits"] = str(weight_bits)
    set_metadata(out_path, meta)
    return out_path


def quantize_split(fp32_full: str | Path, int8_full: str | Path, windows: list[np.ndarray],
                   float_prefixes: tuple[str, ...] = FLOAT_PREFIXES, weight_bits: int = WEIGHT_BITS) -> tuple[Path, Path]:  # fmt: skip
    """The feature-caching pair of ``int8_full``: its fusion graph quantised like the whole graph
    (same calibration windows, same float layers), its extractor the FP32 one (the extractor stays
    float in the INT8 model too)."""
    ext32, fus32 = split_paths(fp32_full)
    ext8, fus8 = split_paths(int8_full)
    feeds = [fusion_inputs(ext32, w) for w in windows]
    quantize(fus32, fus8, feeds, float_prefixes, weight_bits=weight_bits)
    shutil.copyfile(ext32, ext8)
    return ext8, fus8


def check(fp32: str | Path, int8: str | Path, scale: int, window: int, runs: int = 9,
          hw: tuple[int, int] = (144, 180)) -> dict:  # fmt: skip
    """PSNR of the INT8 output against FP32's on held-out windows (not the calibration ones) and
    the two times per ``hw`` window, run in turn (idle machine)."""
    from mstgan.core.sessions import cpu_session as _session, timed as _timed

    a, b = _session(Path(fp32), 2, spin=False), _session(Path(int8), 2, spin=False)
    wins = calibration_windows(scale, window, 6, crop=64, seed=5)
    mse = float(np.mean([np.mean((a.run(None, {"frames": x})[0] - b.run(None, {"frames": x})[0]) ** 2) for x in wins]))
    feed = {"frames": np.random.default_rng(0).random((1, window, 3, *hw), dtype=np.float32)}
    t32, t8 = _timed([a, b], [feed, feed], runs)
    out = {"psnr_vs_fp32": 10 * np.log10(1 / max(mse, 1e-12)), "ms_fp32": t32 * 1e3, "ms_int8": t8 * 1e3, "speedup": t32 / t8}
    (ext32, fus32), (_, fus8) = split_paths(fp32), split_paths(int8)
    if fus32.exists() and fus8.exists():  # what the element runs per frame with the feature cache
        fa, fb = _session(fus32, 2, spin=False), _session(fus8, 2, spin=False)
        ff = fusion_inputs(ext32, feed["frames"])
        f32, f8 = _timed([fa, fb], [ff, ff], runs)
        out.update(ms_fusion_fp32=f32 * 1e3, ms_fusion_int8=f8 * 1e3, speedup_fusion=f32 / f8)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--calib", type=int, default=24, help="calibration windows")
    ap.add_argument("--float", nargs="+", default=list(FLOAT_PREFIXES), metavar="PREFIX",
                    help="ONNX node-name prefixes kept in float (sensitivity sweeps)")
    ap.add_argument("--ops", nargs="+", metavar="OP",
                    help="operator types to quantise (default: the architecture's recipe, RECIPES)")
    ap.add_argument("--recipe", choices=sorted(RECIPES), help="default: the model's architecture's")
    ap.add_argument("--weight-bits", type=int, choices=(7, 8), default=WEIGHT_BITS,
                    help="7 (default): exact without VNNI too; 8: only for comparison")
    ap.add_argument("--check", action="store_true", help="print PSNR against FP32 and the speed-up (idle machine)")
    ap.add_argument("--hw", type=int, nargs=2, default=[144, 180], metavar=("H", "W"), help="--check's window size")
    ap.add_argument("--no-split", action="store_true", help="skip the feature-caching pair")
    args = ap.parse_args(argv)
    meta = read_metadata(args.model)
    wins = calibration_windows(int(meta["scale"]), int(meta["window"]), args.calib)
    ops = args.ops and tuple(args.ops)
    print(f"wrote {quantize(args.model, args.out, wins, tuple(args.float), ops, args.recipe, args.weight_bits)}")
    if not args.no_split and all(p.exists() for p in split_paths(args.model)):
        print(f"wrote {', '.join(map(str, quantize_split(args.model, args.out, wins, tuple(args.float), args.weight_bits)))}")
    if args.check:
        h, w = args.hw
        r = check(args.model, args.out, int(meta["scale"]), int(meta["window"]), hw=(h, w))
        print(f"INT8 vs FP32: {r['psnr_vs_fp32']:.1f} dB; {r['ms_fp32']:.1f} / {r['ms_int8']:.1f} ms per {w}x{h} window "
              f"({r['speedup']:.2f}x)")  # fmt: skip
        if "ms_fusion_fp32" in r:
            print(f"fusion graph (the element's path with the feature cache): {r['ms_fusion_fp32']:.1f} / "
                  f"{r['ms_fusion_int8']:.1f} ms ({r['speedup_fusion']:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
