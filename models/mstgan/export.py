"""Export a generator to ONNX following the element's model contract.

Input ``frames`` float32 [N, T, 3, H, W] (RGB in [0, 1]), output ``upscaled`` float32
[N, 3, s*H, s*W]; N, H and W dynamic; ``metadata_props``: scale, window, precision, version,
training_steps (+ extras).

    python -m mstgan.export --ckpt runs/x4_stage1/best.pt --out mstgan-x4-fidelity.onnx
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from . import __version__
from .archs import MSTGenerator

OPSET = 17


class _Clamped(torch.nn.Module):
    """The shipped graph clamps to [0, 1] so every consumer gets displayable values."""

    def __init__(self, g: torch.nn.Module):
        super().__init__()
        self.g = g

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.g(frames).clamp(0.0, 1.0)


def set_metadata(path: str | Path, meta: dict) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def trace_contract(model: torch.nn.Module, window: int, path: str | Path,
                   sample_hw: tuple[int, int] = (36, 44)) -> Path:  # fmt: skip
    """Traces ``model`` ([N,T,3,H,W] -> [N,3,sH,sW]) to ONNX with the contract's names and dynamic axes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.rand(1, window, 3, *sample_hw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), input_names=["frames"], output_names=["upscaled"], opset_version=OPSET,
            dynamic_axes={"frames": {0: "n", 3: "h", 4: "w"}, "upscaled": {0: "n", 2: "sh", 3: "sw"}},
            dynamo=False,
        )  # fmt: skip
    return path


def export_onnx(g: MSTGenerator, path: str | Path, precision: str = "fp32", steps: int = 0,
                extra: dict | None = None, sample_hw: tuple[int, int] = (36, 44)) -> Path:  # fmt: skip
    path = trace_contract(_Clamped(g.eval()).eval(), g.n_frames, path, sample_hw)
    meta = {"scale": g.scale, "window": g.n_frames, "precision": precision, "version": __version__,
            "training_steps": steps, "input": "frames [N,T,3,H,W] RGB 0..1", "output": "upscaled [N,3,sH,sW]"}  # fmt: skip
    meta.update(extra or {})
    set_metadata(path, meta)
    return path


def load_generator(ckpt: str | Path, use_ema: bool = True) -> tuple[MSTGenerator, dict]:
    st = torch.load(ckpt, map_location="cpu", weights_only=False)
    opt = st["options"]
    g = MSTGenerator(scale=opt["scale"], **opt["arch"])
    g.load_state_dict(st["ema" if use_ema else "G"])
    return g.eval(), st


def parity(g: MSTGenerator, path: str | Path, hw: tuple[int, int] = (29, 37), seed: int = 0) -> float:
    """Max |torch - onnxruntime| on a random window at an odd size."""
    import onnxruntime as ort

    torch.manual_seed(seed)
    x = torch.rand(1, g.n_frames, 3, *hw)
    with torch.no_grad():
        ref = g.eval()(x).clamp(0, 1).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"frames": x.numpy()})[0]
    return float(np.abs(out - ref).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", default="fidelity", help="metadata: fidelity | perceptual")
    args = ap.parse_args(argv)
    g, st = load_generator(args.ckpt)
    p = export_onnx(g, args.out, "fp32", st["step"], {"variant": args.variant, "stage": st["options"]["stage"]})
    print(f"wrote {p}; parity max|diff| = {parity(g, p):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
