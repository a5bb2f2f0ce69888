"""A compact pack of the training and validation sequences (JPEG bytes in one .npz) that fits
the GPU machine's 64 MiB transfer limit together with the repository and the LPIPS weights.

    python -m mstgan.data.datapack --out ../.gpu/pack.npz [--budget-mib 40]

Big sequences are stored downscaled (short side <= 540, which is also the scale jitter the CPU
recipe uses most); every sequence keeps its consecutive frames from the start. With ``--photos``
the still photos for simulated-motion clips travel too (``photos/<stem>``, one frame each, at
the same size the CPU recipe loads them).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from mstgan.data import clips as D


def _encode(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def build(out: Path, budget_mib: float = 40.0, quality: int = 92, max_short: int = 540,
          names: list[str] | None = None, photos: bool = False) -> Path:  # fmt: skip
    """``budget_mib`` bounds the video frames; photos (if any) come on top."""
    root = D.default_train_root()
    names = names or D.list_sequences(root)
    seqs = {}
    for n in names:
        frames = D.load_frames(root / n)
        short = min(frames.shape[1:3])
        if short > max_short:
            frames = D._rescale(frames, max_short / short)
        seqs[n] = frames
    # share the byte budget by frame count, keeping at least 7 frames (one stage-2 clip) each
    est = {n: len(_encode(f[0], quality)) for n, f in seqs.items()}
    budget = budget_mib * 2**20
    keep = {n: len(f) for n, f in seqs.items()}
    while sum(keep[n] * est[n] for n in seqs) > budget:
        n = max(keep, key=lambda k: keep[k] * est[k])
        if keep[n] <= 7:
            break
        keep[n] = max(7, int(keep[n] * 0.9))
    blobs, index = [], []
    for n, f in seqs.items():
        for i in range(keep[n]):
            b = _encode(f[i], quality)
            index.append((n, i, len(b)))
            blobs.append(np.frombuffer(b, np.uint8))
    for n, img in (D.load_photos() if photos else {}).items():
        b = _encode(img, quality)
        index.append((n, 0, len(b)))
        blobs.append(np.frombuffer(b, np.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, data=np.concatenate(blobs), names=np.array([x[0] for x in index]),
             frame=np.array([x[1] for x in index]), size=np.array([x[2] for x in index]))  # fmt: skip
    return out


def load(path: str | Path) -> dict[str, np.ndarray]:
    """{sequence name: frames [F, H, W, 3] uint8} from a pack."""
    z = np.load(path)
    data, names, sizes = z["data"], z["names"], z["size"]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    seqs: dict[str, list[np.ndarray]] = {}
    for i, n in enumerate(names):
        jpg = data[offsets[i] : offsets[i + 1]].tobytes()
        seqs.setdefault(str(n), []).append(np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB")))
    return {n: np.stack(f) for n, f in seqs.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-mib", type=float, default=40.0, help="for the video frames")
    ap.add_argument("--photos", action="store_true", help="add the still photos (photo_share > 0 runs)")
    args = ap.parse_args(argv)
    p = build(Path(args.out), args.budget_mib, photos=args.photos)
    print(f"wrote {p} ({p.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
