"""INT8 static post-training quantisation (QDQ, per-channel weights) of an exported generator.

Calibrated on LR windows from the validation split. The per-frame feature extractor, the flow
estimator (it feeds GridSample's coordinates) and the last convolutions of each output head stay
in float: quantising them costs visible quality for little speed.

    python -m mstgan.quantize --model mstgan-x4-fidelity.onnx --out mstgan-x4-fidelity-int8.onnx
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from . import data as D
from .export import read_metadata, set_metadata

# Measured on the x4 fidelity model (Vid4 PSNR-Y, FP32 25.37; --float sweeps, see the model card):
# flow + last convs float -0.22 dB; + feature extractor float -0.06 dB (kept); + refinement and
# upsampling float too -0.003 dB.
# The extractor matters: its features feed the flow estimator and every aligned neighbour.
FLOAT_PREFIXES = ("/g/flow/", "/g/extractor/", "/g/upsample/upsample.2/", "/g/refine/out/")


class WindowReader(CalibrationDataReader):
    def __init__(self, windows: list[np.ndarray]):
        self.it = iter(windows)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {"frames": x}


def calibration_windows(scale: int, window: int, n: int = 24, crop: int = 64, seed: int = 0) -> list[np.ndarray]:
    """LR windows [1,T,3,crop,crop] from the validation sequences (never Vid4, never training data)."""
    root = D.default_train_root()
    names = [s for s in D.list_sequences(root) if s in D.VAL_SEQUENCES]
    seqs = D.build_sequences(root, names, scale, jitter=False)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = seqs[i % len(seqs)]
        t = int(rng.integers(0, len(s.lr)))
        idx = np.clip(np.arange(t - window // 2, t + window // 2 + 1), 0, len(s.lr) - 1)
        y = int(rng.integers(0, s.lr.shape[1] - crop + 1))
        x = int(rng.integers(0, s.lr.shape[2] - crop + 1))
        w = s.lr[idx, y : y + crop, x : x + crop].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        out.append(np.ascontiguousarray(w[None]))
    return out


def quantize(model_path: str | Path, out_path: str | Path, windows: list[np.ndarray],
             float_prefixes: tuple[str, ...] = FLOAT_PREFIXES) -> Path:  # fmt: skip
    model_path, out_path = Path(model_path), Path(out_path)
    meta = read_metadata(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
        names = [n.name for n in onnx.load(str(pre)).graph.node]
        exclude = [n for n in names if n.startswith(float_prefixes)]
        quantize_static(
            str(pre), str(out_path), WindowReader(windows), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
            op_types_to_quantize=["Conv"], extra_options={"CalibMovingAverage": True},
        )  # fmt: skip
    meta["precision"] = "int8"
    meta["float_nodes"] = ",".join(float_prefixes)
    set_metadata(out_path, meta)
    return out_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--calib", type=int, default=24, help="calibration windows")
    ap.add_argument("--float", nargs="+", default=list(FLOAT_PREFIXES), metavar="PREFIX",
                    help="ONNX node-name prefixes kept in float (sensitivity sweeps)")
    args = ap.parse_args(argv)
    meta = read_metadata(args.model)
    wins = calibration_windows(int(meta["scale"]), int(meta["window"]), args.calib)
    print(f"wrote {quantize(args.model, args.out, wins, tuple(args.float))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
