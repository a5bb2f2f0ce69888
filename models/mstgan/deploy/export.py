"""Export a generator to ONNX following the element's model contract.

Input ``frames`` float32 [N, T, 3, H, W] (RGB in [0, 1]), output ``upscaled`` float32
[N, 3, s*H, s*W]; N, H and W dynamic; ``metadata_props``: scale, window, precision, version,
training_steps (+ extras).

Feature caching: the same generator is also exported as two graphs that an element runs with a
cache of per-frame features, so each frame goes through the feature extractor once instead of
T times. ``<stem>.extractor.onnx``: ``frame`` [N, 3, H, W] -> ``feat0..2`` (3 pyramid levels);
``<stem>.fusion.onnx``: ``frames`` [N, T, 3, H, W] + ``feat0..2`` [N, T, C, h, w] -> ``upscaled``,
identical to the whole graph (parity checked).

    python -m mstgan.deploy.export --ckpt runs/x4_stage1/best.pt --out mstgan-x4-fidelity.onnx
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from mstgan import __version__
from mstgan.archs.mstgan_arch import FastGenerator, MSTGenerator
from mstgan.core.checkpoint import load_generator

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
            "training_steps": steps, "input": "frames [N,T,3,H,W] RGB 0..1", "output": "upscaled [N,3,sH,sW]",
            "arch": "fast" if isinstance(g, FastGenerator) else "mst"}  # fmt: skip
    meta.update(extra or {})
    set_metadata(path, meta)
    return path


class _Extractor(torch.nn.Module):
    def __init__(self, g: MSTGenerator):
        super().__init__()
        self.g = g

    def forward(self, frame: torch.Tensor):
        return tuple(self.g.extract(frame))


class _Fusion(torch.nn.Module):
    def __init__(self, g: MSTGenerator):
        super().__init__()
        self.g = g

    def forward(self, frames, feat0, feat1, feat2):
        return self.g(frames, feats=[feat0, feat1, feat2]).clamp(0.0, 1.0)


def split_paths(full: str | Path) -> tuple[Path, Path]:
    """(extractor, fusion) file names that go with the whole-graph model ``full``."""
    full = Path(full)
    return full.with_name(f"{full.stem}.extractor.onnx"), full.with_name(f"{full.stem}.fusion.onnx")


def export_split(g: MSTGenerator, full: str | Path, meta: dict, sample_hw: tuple[int, int] = (36, 44)) -> tuple[Path, Path]:
    """Writes the extractor and fusion graphs of ``g`` next to ``full``, with ``meta`` plus ``part``."""
    ext_path, fus_path = split_paths(full)
    g = g.eval()
    frame = torch.rand(1, 3, *sample_hw)
    with torch.no_grad():
        feats = g.extract(torch.rand(g.n_frames, 3, *sample_hw))
    feats = [f.unsqueeze(0) for f in feats]
    x = torch.rand(1, g.n_frames, 3, *sample_hw)
    lv = {f"feat{i}": {0: "n", 3: f"h{i}", 4: f"w{i}"} for i in range(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Extractor(g).eval(), (frame,), str(ext_path), input_names=["frame"],
            output_names=["feat0", "feat1", "feat2"], opset_version=OPSET, dynamo=False,
            dynamic_axes={"frame": {0: "n", 2: "h", 3: "w"}, **{k: {0: "n", 2: f"h{i}", 3: f"w{i}"} for i, k in enumerate(lv)}},
        )  # fmt: skip
        torch.onnx.export(
            _Fusion(g).eval(), (x, *feats), str(fus_path), input_names=["frames", *lv],
            output_names=["upscaled"], opset_version=OPSET, dynamo=False,
            dynamic_axes={"frames": {0: "n", 3: "h", 4: "w"}, **lv, "upscaled": {0: "n", 2: "sh", 3: "sw"}},
        )  # fmt: skip
    channels = int(feats[0].shape[2])
    set_metadata(ext_path, {**meta, "part": "extractor", "feature_channels": channels,
                            "input": "frame [N,3,H,W] RGB 0..1", "output": "feat0..2 [N,C,h,w] (levels 1, 1/2, 1/4)"})  # fmt: skip
    set_metadata(fus_path, {**meta, "part": "fusion", "feature_channels": channels,
                            "input": "frames [N,T,3,H,W] RGB 0..1 + feat0..2 [N,T,C,h,w]", "output": "upscaled [N,3,sH,sW]"})  # fmt: skip
    return ext_path, fus_path


def run_split(ext_path: str | Path, fus_path: str | Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime through the split graphs: the extractor once per frame of the window ``x``
    [N, T, 3, H, W], then the fusion graph."""
    import onnxruntime as ort

    fus = ort.InferenceSession(str(fus_path), providers=["CPUExecutionProvider"])
    return fus.run(None, fusion_inputs(ext_path, x))[0]


def fusion_inputs(ext_path: str | Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The fusion graph's feed for window ``x`` [N, T, 3, H, W]: the extractor run per frame."""
    import onnxruntime as ort

    ext = ort.InferenceSession(str(ext_path), providers=["CPUExecutionProvider"])
    per_frame = [ext.run(None, {"frame": np.ascontiguousarray(x[:, i])}) for i in range(x.shape[1])]
    return {"frames": x, **{f"feat{lvl}": np.stack([p[lvl] for p in per_frame], 1) for lvl in range(3)}}


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


def split_parity(full: str | Path, hw: tuple[int, int] = (29, 37), seed: int = 0) -> float:
    """Max |whole graph - split graphs| (onnxruntime both) on a random window at an odd size."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(full), providers=["CPUExecutionProvider"])
    t = int(read_metadata(full)["window"])
    x = np.random.default_rng(seed).random((1, t, 3, *hw), dtype=np.float32)
    return float(np.abs(sess.run(None, {"frames": x})[0] - run_split(*split_paths(full), x)).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", default="fidelity", help="metadata: fidelity | perceptual")
    args = ap.parse_args(argv)
    g, st = load_generator(args.ckpt)
    extra = {"variant": args.variant, "stage": st["options"]["stage"]}
    p = export_onnx(g, args.out, "fp32", st["step"], extra)
    print(f"wrote {p}; parity max|diff| = {parity(g, p):.2e}")
    export_split(g, p, read_metadata(p))
    print(f"wrote {', '.join(map(str, split_paths(p)))}; split parity max|diff| = {split_parity(p):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
