"""The compressed training clips as frame folders, and one training root that holds them beside
``../shared/data/train``.

Sources (see ``../shared/data/README.md`` and the model card for licences):
- ``../shared/data/train_video/*.mp4``: 8 clips, 2,493 frames of real camera footage (H.264);
- Debian's ``opencv-doc`` (``scripts/setup.sh --train`` installs it): ``box.mp4.gz`` and
  ``cup.mp4.gz``, 672 frames of hand-held objects at 640x480.

The 1280x720 clips carry mild compression; halving them (area filter, antialiased) before they
serve as ground truth removes most of it (``--keep-720p`` keeps them whole). Frames are decoded
with the ffmpeg that ``imageio-ffmpeg`` bundles.

    python -m mstgan.data.videodata [--out .cache/trainroot]
    MSTGAN_TRAIN_DATA=.cache/trainroot python -m mstgan.training.train --opt ...

The validation split stays :data:`mstgan.data.clips.VAL_SEQUENCES` (three clips of ``train/``): none of
these clips is held out, so earlier held-out numbers stay comparable.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path
from mstgan.paths import MODELS, SHARED

HERE = MODELS
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/opencv4/html")
OPENCV_CLIPS = ("box.mp4.gz", "cup.mp4.gz")


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe_size(clip: Path) -> tuple[int, int]:
    """(width, height) of a clip's video stream, from ffmpeg's banner."""
    out = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(clip)], capture_output=True, text=True).stderr
    for line in out.splitlines():
        if "Video:" in line:
            for tok in line.replace(",", " ").split():
                if "x" in tok and tok.split("x")[0].isdigit() and tok.split("x")[1][:1].isdigit():
                    w, h = tok.split("x")
                    return int(w), int("".join(ch for ch in h if ch.isdigit()))
    raise ValueError(f"{clip}: no video stream found")


def decode(clip: Path, dst: Path, halve: bool) -> int:
    """Decodes every frame of ``clip`` into ``dst/%05d.png`` (halved with an area filter if asked);
    returns the frame count. A folder already complete is kept."""
    done = dst / ".complete"
    if done.exists():
        return len(list(dst.glob("*.png")))
    dst.mkdir(parents=True, exist_ok=True)
    vf = ["-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2:flags=area"] if halve else []
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(clip), *vf, "-pix_fmt", "rgb24",
                    "-start_number", "0", str(dst / "%05d.png")], check=True)  # fmt: skip
    n = len(list(dst.glob("*.png")))
    if n == 0:
        raise RuntimeError(f"{clip}: no frame decoded")
    done.write_text(f"{n}\n")
    return n


def clips(shared: Path = SHARED, opencv_doc: Path = OPENCV_DOC) -> list[tuple[str, Path]]:
    """(sequence name, clip file) for every compressed source that is present."""
    out = [(f"train_video/{p.stem}", p) for p in sorted((shared / "train_video").glob("*.mp4"))]
    for gz in OPENCV_CLIPS:
        if (opencv_doc / gz).exists():
            out.append((f"opencv_doc/{gz.split('.')[0]}", opencv_doc / gz))
    return out


def build_root(out: Path, keep_720p: bool = False, shared: Path = SHARED,
               opencv_doc: Path = OPENCV_DOC) -> dict[str, int]:  # fmt: skip
    """Decodes the clips under ``out/<source>/<clip>/`` and links each folder of ``shared/train``
    beside them; returns frames per decoded sequence."""
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted((shared / "train").iterdir()):
        link = out / src.name
        if src.is_dir() and not link.exists():
            link.symlink_to(src.resolve(), target_is_directory=True)
    counts = {}
    for name, clip in clips(shared, opencv_doc):
        with tempfile.TemporaryDirectory() as tmp:
            if clip.suffix == ".gz":
                plain = Path(tmp) / clip.stem
                with gzip.open(clip, "rb") as f, open(plain, "wb") as g:
                    shutil.copyfileobj(f, g)
                clip = plain
            w, h = probe_size(clip)
            counts[name] = decode(clip, out / name, halve=(w, h) == (1280, 720) and not keep_720p)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / ".cache" / "trainroot"))
    ap.add_argument("--keep-720p", action="store_true", help="do not halve the 1280x720 clips")
    args = ap.parse_args(argv)
    counts = build_root(Path(args.out), args.keep_720p)
    for name, n in counts.items():
        print(f"{name}: {n} frames")
    print(f"{sum(counts.values())} decoded frames in {len(counts)} clips under {args.out}")
    if not any(n.startswith("opencv_doc/") for n in counts):
        print("note: opencv-doc is not installed (`bash scripts/setup.sh --train`): box/cup left out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
