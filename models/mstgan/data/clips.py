"""Training and validation clips from real video sequences, with the BI degradation.

Frames are loaded once into memory (uint8), at several scales for scale jitter; the LR version of
every frame is degraded from the *whole* HR frame (exactly as the test inputs are made) and cached
on disk, so a training sample is just aligned LR/HR crops plus flips, transposes and temporal
reversal.

Extra material (``photo_share`` > 0): still photographs turned into short clips with simulated
camera motion (a panning, shaking crop window) and object motion (a patch of the photo moving on
its own path over the background, with occlusion edges), see :func:`simulate_motion`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mstgan.data.degradation import degrade_bi_frames
from mstgan.paths import SHARED

# Held out for validation (checkpoint selection): never trained on.
VAL_SEQUENCES = ("toflow_vimeo/basketball", "sintel_videoflow/seq", "cutie/judo")


def list_sequences(root: str | Path) -> list[str]:
    root = Path(root)
    seqs = []
    for d in sorted(root.glob("*/*")):
        if d.is_dir() and any(p.suffix.lower() in (".png", ".jpg") for p in d.iterdir()):
            seqs.append(str(d.relative_to(root)))
    if not seqs:
        raise FileNotFoundError(f"no frame sequences under {root} (expected <source>/<clip>/*.png|jpg)")
    return seqs


def load_frames(folder: str | Path) -> np.ndarray:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg"))
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])


def _rescale(frames: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return frames
    h, w = frames.shape[1:3]
    size = (round(w * factor), round(h * factor))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames])


def jitter_factors(h: int, w: int) -> list[float]:
    """Scale-jitter versions of a sequence: big frames also appear downscaled (denser motion)."""
    short = min(h, w)
    if short >= 700:
        return [1.0, 0.75, 0.5]
    if short >= 400:
        return [1.0, 0.75]
    return [1.0]


@dataclass
class Sequence:
    name: str
    hr: np.ndarray  # [F, H, W, 3] uint8, H and W multiples of scale
    lr: np.ndarray  # [F, H/s, W/s, 3] uint8
    synthetic: bool = False  # a still photo with simulated motion


def _cached_lr(hr: np.ndarray, scale: int, key: str, cache_dir: Path | None, device=None) -> np.ndarray:
    if cache_dir is None:
        return degrade_bi_frames(hr, scale, device)
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(f"{key}:{hr.shape}:{scale}".encode()).hexdigest()[:16]
    path = cache_dir / f"lr_x{scale}_{digest}.npy"
    if path.exists():
        return np.load(path)
    lr = degrade_bi_frames(hr, scale, device)
    # write then rename: runs started side by side share the cache and must never read half a file
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, lr)
    os.replace(tmp, path)
    return lr


def build_sequences(root: str | Path, names: list[str], scale: int, jitter: bool,
                    cache_dir: str | Path | None = None, pack: dict | None = None, device=None) -> list[Sequence]:  # fmt: skip
    """``pack`` (from :func:`mstgan.datapack.load`) replaces reading the folders under ``root``;
    ``device``: degrade there (see :func:`degrade_bi_frames`)."""
    cache = Path(cache_dir) if cache_dir else None
    out = []
    for name in names:
        frames = pack[name] if pack is not None else load_frames(Path(root) / name)
        factors = jitter_factors(*frames.shape[1:3]) if jitter else [1.0]
        for fac in factors:
            hr = _rescale(frames, fac)
            h, w = hr.shape[1] // scale * scale, hr.shape[2] // scale * scale
            hr = np.ascontiguousarray(hr[:, :h, :w])
            lr = _cached_lr(hr, scale, f"{'pack:' if pack is not None else ''}{name}@{fac}", cache, device)
            out.append(Sequence(f"{name}@{fac}", hr, lr))
    return out


# Real photographs that Debian wallpaper packages install under /usr/share (renders and
# illustrations left out): lomiri-wallpapers-16.04 (CC-BY / CC-BY-SA / CC0 per file),
# mate-backgrounds and plasma-workspace-wallpapers (GPL-2+). ``scripts/setup.sh --train`` installs them.
PHOTO_PACKAGES = ("lomiri-wallpapers-16.04", "mate-backgrounds", "plasma-workspace-wallpapers")
PHOTOS = (
    "backgrounds/Bridge_by_Sander_Klootwijk.jpg", "backgrounds/Dragonfly_by_Bolly.jpg",
    "backgrounds/Picture_0B_by_freespace.jpg", "backgrounds/Picture_1A_by_freespace.jpg",
    "backgrounds/Wine_by_Jakkub_Mede.jpg", "backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg",
    "backgrounds/free_by_Peter_Nerlich.jpg", "backgrounds/friends_by_Aitzol_Berasategi.jpg",
    "backgrounds/greentock_by_Peter_Nerlich.jpg", "backgrounds/life_by_Aitzol_Berasategi.jpg",
    "backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg", "backgrounds/seeding_by_Clements_Engelhardt.jpg",
    "backgrounds/sunset_by_Aitzol_Berasategi.jpg", "backgrounds/mate/nature/Blinds.jpg",
    "backgrounds/mate/nature/Dune.jpg", "backgrounds/mate/nature/LadyBird.jpg",
    "backgrounds/mate/nature/RainDrops.jpg", "backgrounds/mate/nature/Storm.jpg",
    "backgrounds/mate/nature/Wood.jpg", "wallpapers/BytheWater/contents/images/2560x1600.jpg",
    "wallpapers/ColdRipple/contents/images/2560x1600.jpg", "wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
    "wallpapers/EveningGlow/contents/images/2560x1600.jpg", "wallpapers/FallenLeaf/contents/images/2560x1600.jpg",
    "wallpapers/OneStandsOut/contents/images/2560x1600.jpg", "wallpapers/Path/contents/images/2560x1600.jpg",
)  # fmt: skip
# Held out like VAL_SEQUENCES: real photographs from the same packages that training never sees.
# The held-out videos are short and mostly smooth (one is CG), so their tOF did not tell a steady
# model from a flickering one; these add dense texture under camera motion (grass, a facade, petals).
VAL_PHOTOS = (
    "backgrounds/mate/nature/GreenMeadow.jpg", "wallpapers/Grey/contents/images/2560x1600.jpg",
    "backgrounds/mate/nature/Garden.jpg", "backgrounds/mate/nature/YellowFlower.jpg",
    "backgrounds/mate/nature/TwoWings.jpg",
)  # fmt: skip
PHOTO_MAX_SHORT = 720  # photos are kept at most this tall (also in the GPU pack), then shrunk further per clip


def photo_root() -> Path:
    return Path(os.environ.get("MSTGAN_PHOTO_ROOT", "/usr/share"))


def load_photos(max_short: int = PHOTO_MAX_SHORT, root: Path | None = None,
                paths: tuple[str, ...] = PHOTOS) -> dict[str, np.ndarray]:  # fmt: skip
    """{"photos/<stem>": image [H, W, 3] uint8} downscaled (Lanczos) to a short side <= ``max_short``."""
    root = root or photo_root()
    missing = [p for p in paths if not (root / p).exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} photos missing under {root} (first: {missing[0]}); install them with "
            f"`bash scripts/setup.sh --train` (apt-get install {' '.join(PHOTO_PACKAGES)}); training can also "
            f"do without them: photo_share=0"
        )
    out = {}
    for rel in paths:
        img = Image.open(root / rel).convert("RGB")
        f = max_short / min(img.size)
        if f < 1:
            img = img.resize((round(img.width * f), round(img.height * f)), Image.LANCZOS)
        stem = rel.split("/contents/")[0].split("/")[-1] if "/contents/" in rel else Path(rel).stem
        out[f"photos/{stem}"] = np.asarray(img)
    return out


def _texture(a: np.ndarray) -> float:
    g = a.astype(np.float32).mean(-1)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def _path(n: int, vmax: float, shake: float, rng: np.random.Generator) -> np.ndarray:
    """[n, 2] integer (y, x) positions: constant velocity plus hand-held jitter, starting at 0."""
    v = rng.uniform(-vmax, vmax, 2) + rng.normal(0, shake, (n - 1, 2))
    return np.concatenate([[[0.0, 0.0]], np.cumsum(v, 0)]).round().astype(int)


def simulate_motion(photo: np.ndarray, n_frames: int, size: int, rng: np.random.Generator,
                    vmax: float = 6.0, shake: float = 1.0, p_object: float = 0.5) -> np.ndarray:  # fmt: skip
    """A clip [n_frames, size, size, 3] uint8 cut from a still photo.

    Camera motion: the crop window pans (random velocity up to ``vmax`` px/frame, hand-held
    jitter); object motion (probability ``p_object``): an elliptical patch of the same photo moves
    on its own path over it. Positions are whole HR pixels so ground-truth frames are never
    resampled; at xs they are sub-pixel shifts of the LR frames, which is what alignment must learn.
    The photo is first shrunk by a random factor in [0.5, 1] (denser detail, varied scale).
    """
    f = rng.uniform(0.5, 1.0)
    h, w = photo.shape[:2]
    nh, nw = max(size, round(h * f)), max(size, round(w * f))
    img = np.asarray(Image.fromarray(photo).resize((nw, nh), Image.LANCZOS)) if (nh, nw) != (h, w) else photo
    cam = _path(n_frames, vmax, shake, rng)
    span = cam.max(0) - cam.min(0)
    room = np.array([nh, nw]) - size - span
    if (room < 0).any():  # too small for this path: stand still (shake only)
        cam = _path(n_frames, 0.0, shake, rng)
        cam = np.clip(cam - cam.min(0), 0, np.maximum(0, np.array([nh, nw]) - size))
        room = np.array([nh, nw]) - size - (cam.max(0) - cam.min(0))
    cam = cam - cam.min(0)
    # the most textured of a few starting points: flat sky teaches nothing
    starts = [(rng.integers(0, room[0] + 1), rng.integers(0, room[1] + 1)) for _ in range(6)]
    y0, x0 = max(starts, key=lambda p: _texture(img[p[0] : p[0] + size : 2, p[1] : p[1] + size : 2]))
    clip = np.stack([img[y0 + dy : y0 + dy + size, x0 + dx : x0 + dx + size] for dy, dx in cam])
    if rng.random() < p_object:
        ry, rx = rng.integers(size // 8, size // 3 + 1, 2)
        sy, sx = rng.integers(0, nh - 2 * ry), rng.integers(0, nw - 2 * rx)
        patch = img[sy : sy + 2 * ry, sx : sx + 2 * rx]
        yy, xx = np.mgrid[: 2 * ry, : 2 * rx]
        mask = ((yy + 0.5 - ry) / ry) ** 2 + ((xx + 0.5 - rx) / rx) ** 2 <= 1.0
        obj = _path(n_frames, vmax * 1.5, shake, rng) + rng.integers(-ry, size - ry, 2)
        for k, (oy, ox) in enumerate(obj):
            # clip the patch to the frame
            y1, x1 = max(oy, 0), max(ox, 0)
            y2, x2 = min(oy + 2 * ry, size), min(ox + 2 * rx, size)
            if y2 <= y1 or x2 <= x1:
                continue
            m = mask[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
            region = clip[k, y1:y2, x1:x2]
            region[m] = patch[y1 - oy : y2 - oy, x1 - ox : x2 - ox][m]
    return np.ascontiguousarray(clip)


def photo_sequences(photos: dict[str, np.ndarray], scale: int, clips_per_photo: int = 12, n_frames: int = 9,
                    size: int = 288, seed: int = 0, device=None) -> list[Sequence]:  # fmt: skip
    """Synthetic clips from still photos, deterministic in ``seed``; LR by the BI degradation."""
    size = size // scale * scale
    out = []
    for i, name in enumerate(sorted(photos)):
        for k in range(clips_per_photo):
            rng = np.random.default_rng([seed, i, k])
            hr = simulate_motion(photos[name], n_frames, size, rng)
            lr = degrade_bi_frames(hr, scale, device)
            out.append(Sequence(f"{name}#{k}", hr, lr, synthetic=True))
    return out


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    # [K, H, W, 3] uint8 -> [K, 3, H, W] float in [0, 1]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(255.0)


class ClipSampler:
    """Random training clips: ``n_lr`` consecutive LR frames and the HR frames of the centre ``n_out``.

    Args:
        sequences: from :func:`build_sequences`.
        scale: SR factor.
        n_lr: LR frames per clip (window T, or T + n_out - 1 for several consecutive outputs).
        n_out: consecutive centre outputs supervised (1 in stage 1, >= 2 for temporal losses).
        lr_patch: LR crop size.
        seed: RNG seed (the sampler's state is saved with checkpoints).
        texture_tries: candidate crops drawn from a real clip, of which the most textured (mean
            absolute gradient of the centre LR frame) is kept; 1 draws uniformly. Flat walls and
            sky are most of a video's area but teach little; synthetic clips already start textured.
    """

    def __init__(self, sequences: list[Sequence], scale: int, n_lr: int, n_out: int,
                 lr_patch: int, seed: int = 0, photo_share: float = 0.0, texture_tries: int = 1):  # fmt: skip
        if texture_tries < 1:
            raise ValueError(f"texture_tries must be at least 1, not {texture_tries}")
        self.texture_tries = texture_tries
        self.seqs = [s for s in sequences if len(s.lr) >= n_lr and min(s.lr.shape[1:3]) >= lr_patch]
        if not self.seqs:
            raise ValueError(f"no sequence has {n_lr} frames of at least {lr_patch}px (LR)")
        self.scale, self.n_lr, self.n_out, self.lr_patch = scale, n_lr, n_out, lr_patch
        # weight sequences by how many distinct clips they hold (frames x area), sqrt-damped
        w = np.array([np.sqrt(len(s.lr) * s.lr.shape[1] * s.lr.shape[2]) for s in self.seqs])
        synth = np.array([s.synthetic for s in self.seqs])
        if synth.any() and not synth.all():
            # photo clips get exactly ``photo_share`` of the samples, real video the rest
            w = np.where(synth, photo_share * w / w[synth].sum(), (1 - photo_share) * w / w[~synth].sum())
        self.weights = w / w.sum()
        self.rng = np.random.default_rng(seed)

    def position(self, seq: Sequence) -> tuple[int, int, int]:
        """(first frame, y, x) of an LR crop of ``seq``: the most textured of ``texture_tries``
        uniform draws for real clips, one draw for synthetic ones."""
        p, rng, c = self.lr_patch, self.rng, self.n_lr // 2
        draws = [(int(rng.integers(0, len(seq.lr) - self.n_lr + 1)), int(rng.integers(0, seq.lr.shape[1] - p + 1)),
                  int(rng.integers(0, seq.lr.shape[2] - p + 1)))
                 for _ in range(1 if seq.synthetic else self.texture_tries)]  # fmt: skip
        if len(draws) == 1:
            return draws[0]
        return max(draws, key=lambda d: _texture(seq.lr[d[0] + c, d[1] : d[1] + p, d[2] : d[2] + p]))

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        lrs, hrs = [], []
        p, s = self.lr_patch, self.scale
        for _ in range(batch):
            seq = self.seqs[self.rng.choice(len(self.seqs), p=self.weights)]
            t0, y, x = self.position(seq)
            idx = np.arange(t0, t0 + self.n_lr)
            if self.rng.random() < 0.5:
                idx = idx[::-1]  # temporal reversal
            lr = seq.lr[idx, y : y + p, x : x + p]
            off = (self.n_lr - self.n_out) // 2
            hr = seq.hr[idx[off : off + self.n_out], y * s : (y + p) * s, x * s : (x + p) * s]
            if self.rng.random() < 0.5:
                lr, hr = lr[:, :, ::-1], hr[:, :, ::-1]
            if self.rng.random() < 0.5:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
            if self.rng.random() < 0.5:
                lr, hr = lr.transpose(0, 2, 1, 3), hr.transpose(0, 2, 1, 3)
            lrs.append(_to_tensor(lr))
            hrs.append(_to_tensor(hr))
        return torch.stack(lrs), torch.stack(hrs)


class DeviceClipSampler:
    """:class:`ClipSampler`'s clips cut on the training device from frames kept there (uint8).

    On a GPU the CPU sampler is the bottleneck (~90 ms for 64 clips of 7 x 64x64 on one core,
    copying and converting every crop): here the CPU only draws positions with the same RNG
    (saved with checkpoints as before) and the crops, flips and conversion run on the device.
    Flips, transposes and temporal reversal are drawn per clip as on the CPU, in another order,
    so the two samplers give different (equally distributed) batches for one seed.
    """

    def __init__(self, base: ClipSampler, device: torch.device | str):
        self.base = base
        self.device = torch.device(device)
        self.lr = [torch.from_numpy(s.lr).to(self.device) for s in base.seqs]
        self.hr = [torch.from_numpy(s.hr).to(self.device) for s in base.seqs]

    @property
    def rng(self) -> np.random.Generator:
        return self.base.rng

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        b, rng = self.base, self.base.rng
        p, s, n_lr, n_out = b.lr_patch, b.scale, b.n_lr, b.n_out
        off = (n_lr - n_out) // 2
        lrs, hrs = [], []
        for k in rng.choice(len(b.seqs), size=batch, p=b.weights):
            lr, hr = self.lr[k], self.hr[k]
            t0, y, x = b.position(b.seqs[k])
            lrs.append(lr[t0 : t0 + n_lr, y : y + p, x : x + p])
            hrs.append(hr[t0 + off : t0 + off + n_out, y * s : (y + p) * s, x * s : (x + p) * s])
        lr, hr = torch.stack(lrs), torch.stack(hrs)  # [B, K, h, w, 3] uint8
        # temporal reversal (the supervised centre frames are symmetric: they reverse with the clip),
        # horizontal / vertical flips, transposes (crops are square)
        masks = torch.from_numpy(rng.random((4, batch)) < 0.5).to(self.device).view(4, batch, 1, 1, 1, 1)
        for m, flip in zip(masks, (lambda a: a.flip(1), lambda a: a.flip(3), lambda a: a.flip(2),
                                   lambda a: a.transpose(2, 3))):  # fmt: skip
            lr, hr = torch.where(m, flip(lr), lr), torch.where(m, flip(hr), hr)
        return (lr.permute(0, 1, 4, 2, 3).float().div_(255.0), hr.permute(0, 1, 4, 2, 3).float().div_(255.0))


def window_indices(t: int, n: int, window: int) -> np.ndarray:
    """Frame indices of the window centred on ``t`` in a clip of ``n`` frames, edges replicated
    (what the element does at the ends of a stream)."""
    r = window // 2
    return np.clip(np.arange(t - r, t + r + 1), 0, n - 1)


def validation_windows(sequences: list[Sequence], n_frames: int, scale: int, hr_crop: int = 192,
                       per_seq: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """Fixed (LR window [1,T,3,h,w], HR centre [1,3,H,W]) pairs: centre crops at evenly spaced frames."""
    out = []
    c = hr_crop // scale
    for seq in sequences:
        nf = len(seq.lr)
        lh, lw = seq.lr.shape[1:3]
        y, x = max(0, (lh - c) // 2), max(0, (lw - c) // 2)
        for t in np.linspace(0, nf - 1, per_seq).round().astype(int):
            idx = window_indices(t, nf, n_frames)
            lr = _to_tensor(seq.lr[idx, y : y + c, x : x + c]).unsqueeze(0)
            hr = _to_tensor(seq.hr[t : t + 1, y * scale : (y + c) * scale, x * scale : (x + c) * scale])
            out.append((lr, hr))
    return out


def default_train_root() -> Path:
    return Path(os.environ.get("MSTGAN_TRAIN_DATA", SHARED / "train")).resolve()
