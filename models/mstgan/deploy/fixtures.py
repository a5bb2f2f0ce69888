"""Tiny untrained generators that follow the model contract, and golden outputs, for the
element's tests. Deterministic (seeded); each file is a few tens of kB.

    python -m mstgan.deploy.fixtures --out ../tests/fixtures
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mstgan.archs.mstgan_arch import FastGenerator, MSTGenerator
from mstgan.deploy.export import export_onnx, export_split, read_metadata, split_parity
from mstgan.paths import FIXTURES
from mstgan.data.clips import window_indices

FIXTURES = [(2, 5), (3, 5), (4, 5), (4, 3), (4, 7)]  # (scale, window); T=7 as the shipped x4 fidelity model


def tiny_generator(scale: int, window: int, seed: int = 1234) -> MSTGenerator:
    torch.manual_seed(seed)
    g = MSTGenerator(scale, window, feat_ch=4, ch=8, n_blocks=2, flow_ch=4, refine_blocks=1)
    with torch.no_grad():
        for p in g.parameters():
            if p.abs().sum() == 0:  # zero-initialised heads: give them weight so every input matters
                p.normal_(0, 0.05)
    return g.eval()


def tiny_fast_generator(scale: int, window: int, seed: int = 1234, fold: int = 2) -> FastGenerator:
    """The fast tier's architecture, tiny: odd sizes go through its pad-and-crop path (fold 2)."""
    torch.manual_seed(seed)
    g = FastGenerator(scale, window, ch=8, n_blocks=1, fold=fold)
    with torch.no_grad():
        g.out.weight.normal_(0, 0.05)
    return g.eval()


def write_golden(path: Path, out: Path, name: str, scale: int, window: int) -> None:
    """Golden input (7 frames of 23x17, odd) and onnxruntime's output for the element's tests."""
    frames = golden_frames(7, 23, 17)
    ref = run_reference(path, frames, window)
    frames.tofile(out / f"golden-{name}.in.rgb")
    ref.astype("<f4").tofile(out / f"golden-{name}.out.f32")
    meta = {"frames": len(frames), "width": 23, "height": 17, "scale": scale, "window": window}
    (out / f"golden-{name}.json").write_text(json.dumps(meta) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and its golden files")


class BilinearUpscale(torch.nn.Module):
    """Upscales the centre frame bilinearly and ignores the neighbours: exact on flat colour,
    so the element's colour conversion can be checked through a real model run."""

    def __init__(self, scale: int, window: int):
        super().__init__()
        self.scale, self.n_frames = scale, window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x[:, self.n_frames // 2]
        return torch.nn.functional.interpolate(centre, scale_factor=self.scale, mode="bilinear", align_corners=False)


def golden_frames(n: int, w: int, h: int, seed: int = 7) -> np.ndarray:
    """n smooth, moving RGB frames [n, h, w, 3] uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    phases = rng.uniform(0, 2 * np.pi, size=3)
    for t in range(n):
        ch = [127.5 + 110 * np.sin(0.35 * xx + 0.21 * yy + 0.6 * t + phases[c] + c) for c in range(3)]
        frames.append(np.stack(ch, -1))
    return np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8)


def run_reference(onnx_path: Path, frames: np.ndarray, window: int) -> np.ndarray:
    """onnxruntime output for every frame with edge-replicated windows: [n, 3, sH, sW] float32."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = frames.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    n = len(x)
    outs = []
    for t in range(n):
        idx = window_indices(t, n, window)
        outs.append(sess.run(None, {"frames": x[idx][None]})[0][0])
    return np.stack(outs).astype(np.float32)


# models that break the contract in one way each, for the element's load-time checks
BROKEN = {
    "broken-rank4": "input frames is [N,3,H,W] (a single-frame model)",
    "broken-dtype": "input frames is float16",
    "broken-window": "metadata window=3, graph T=5",
    "broken-output": "output is rank 5",
}


def broken_models(out: Path) -> list[Path]:
    """Tiny ONNX graphs (onnx.helper, no torch) that load in onnxruntime but break the contract."""
    import onnx
    from onnx import TensorProto, helper

    def save(name, inp, nodes, outp, window=5):
        graph = helper.make_graph(nodes, name, [inp], [outp])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        for k, v in {"scale": 2, "window": window, "precision": "fp32", "version": "0.1.0",
                     "variant": "broken", "broken": BROKEN[name]}.items():
            e = model.metadata_props.add()
            e.key, e.value = k, str(v)
        onnx.checker.check_model(model)
        path = out / f"{name}.onnx"
        onnx.save(model, str(path))
        return path

    f32, f16 = TensorProto.FLOAT, TensorProto.FLOAT16
    frames5 = lambda ty: helper.make_tensor_value_info("frames", ty, ["n", 5, 3, "h", "w"])  # noqa: E731
    up4 = helper.make_tensor_value_info("upscaled", f32, ["n", 3, "h", "w"])
    mean = helper.make_node("ReduceMean", ["x"], ["upscaled"], axes=[1], keepdims=0)
    return [
        save("broken-rank4", helper.make_tensor_value_info("frames", f32, ["n", 3, "h", "w"]),
             [helper.make_node("Identity", ["frames"], ["upscaled"])], up4),
        save("broken-dtype", frames5(f16),
             [helper.make_node("Cast", ["frames"], ["x"], to=f32), mean], up4),
        save("broken-window", frames5(f32),
             [helper.make_node("Identity", ["frames"], ["x"]), mean], up4, window=3),
        save("broken-output", frames5(f32), [helper.make_node("Identity", ["frames"], ["upscaled"])],
             helper.make_tensor_value_info("upscaled", f32, ["n", 5, 3, "h", "w"])),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(FIXTURES))
    ap.add_argument("--only", choices=["all", "broken", "fast", "t7"], default="all",
                    help="broken / fast / t7: only the contract-breaking / fast-tier / T=7 models (the others stay byte for byte)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only in ("all", "broken"):
        for path in broken_models(out):
            print(f"wrote {path} ({BROKEN[path.stem]})")
    if args.only in ("all", "fast"):
        # as shipped: x2 folded to half LR resolution, x4 at LR resolution
        for scale, fold in ((2, 2), (4, 1)):
            name = f"fixture-x{scale}-t5-fast"
            g = tiny_fast_generator(scale, 5, fold=fold)
            path = export_onnx(g, out / f"{name}.onnx", "fp32", 0, {"variant": "fixture"})
            write_golden(path, out, name, scale, 5)
    if args.only not in ("all", "t7"):
        return 0
    for scale, window in FIXTURES:
        if args.only == "t7" and window != 7:
            continue
        name = f"fixture-x{scale}-t{window}"
        path = export_onnx(tiny_generator(scale, window), out / f"{name}.onnx", "fp32", 0, {"variant": "fixture"})
        if window >= 5 and scale != 2:
            # feature-caching pairs: the element's golden tests then run the cached path too
            export_split(tiny_generator(scale, window), path, read_metadata(path))
            assert split_parity(path) < 1e-5
        write_golden(path, out, name, scale, window)
    if args.only != "all":
        return 0
    path = export_onnx(BilinearUpscale(2, 3), out / "fixture-x2-t3-bilinear.onnx", "fp32", 0, {"variant": "fixture"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
