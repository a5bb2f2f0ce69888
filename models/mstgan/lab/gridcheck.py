"""The faint dot grid of the x4 GAN models (issue #29): how far apart the output's 4x4 pixel
phases sit on a flat input (0.5 grey, and with 1 % noise), in 8-bit code values. A grid of
period `scale` shows as phases that differ on a picture that has none; a clean output keeps
them within a tenth of a code value.

    python -m mstgan.lab.gridcheck mstgan-x4-perceptual.onnx mstgan-x4-fidelity.onnx ...
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnxruntime as ort


def phase_range(path: str, noise: float, size: int = 48) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    scale = int(s.get_modelmeta().custom_metadata_map.get("scale", 4))
    t = s.get_inputs()[0].shape[1]
    rng = np.random.default_rng(0)
    x = np.full((3, size, size), 0.5, np.float32)
    x = np.clip(x + rng.normal(0, noise, x.shape).astype(np.float32), 0, 1)
    y = s.run(None, {"frames": np.repeat(x[None, None], t, 1)})[0][0]
    return phase_spread(y, scale, 4)


def phase_spread(y: np.ndarray, scale: int, border: int) -> float:
    """Range of the scale x scale phase means of an output ``[3, sH, sW]``, in code values,
    ``border`` LR pixels in from the edges (where padding differs)."""
    m = border * scale
    g = y.mean(0)[m:-m, m:-m]
    phases = [g[i::scale, j::scale].mean() for i in range(scale) for j in range(scale)]
    return float(max(phases) - min(phases)) * 255


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args(argv)
    print(f"{'model':40s} {'flat':>6s} {'+1% noise':>10s}   (range of the scale x scale phase means, code values)")
    for f in args.models:
        if f.endswith((".extractor.onnx", ".fusion.onnx")):
            continue  # the feature-cache pairs: their whole graph beside them is what is measured
        print(f"{f:40s} {phase_range(f, 0.0):6.2f} {phase_range(f, 0.01):10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
