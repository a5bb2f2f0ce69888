"""Vid4 comparison through real GStreamer pipelines, with numbers, pictures and a plot.

Every method runs in its own ``gst-launch-1.0`` process on the Vid4 LR frames (PNG files decoded by
``pngdec``), the output frames go to a raw file, and the metrics compare them with the ground truth:

- ``mstgansr`` for every model ``models/`` ships (each scale and variant, FP32 and INT8);
- ``videoscale`` with ``method=bilinear``, ``catrom`` (bicubic Catmull-Rom) and ``lanczos``;
- Real-ESRGAN ``realesr-animevideov3`` converted from its ncnn weights (``mstgan.tools.peers``) and run
  through the same element and onnxruntime with a window of 1 frame.

Each method runs on the BI inputs and again on the same inputs after x264 at QP 24 and 32 (``--qp``;
:mod:`mstgan.data.realworld`), the compressed video cameras and the web deliver.

Metrics: PSNR/SSIM (Y of MATLAB rgb2ycbcr, crop 0, all frames, mean per clip then over clips),
LPIPS-alex, tOF and tLP (TecoGAN definitions, all frames), VMAF (imageio-ffmpeg's libvmaf), pipeline
frames/s (wall time of the whole process: PNG decoding, model loading and inference) and peak
resident memory of the process.

    python -m mstgan.tools.compare --out ../docs --readme ../README.md     # or: make compare
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mstgan.data.degradation import degrade_bi
from mstgan.core.evaluation import CLIPS, default_vid4
from mstgan.metrics.video_metrics import farneback_flows, psnr_y, ssim_y, tof_from_flows
from mstgan.core.sessions import machine
from mstgan.paths import REPO


MODELS = REPO / "models"
FPS = 25


class CompareError(RuntimeError):
    """Bad input or a pipeline that misbehaved; the message names the clip, frame and method."""


@dataclass
class Method:
    name: str  # short id used in tables and file names
    label: str  # what the reader sees
    scale: int
    fragment: str  # the gst-launch fragment between the decoded RGBx frames and the sink
    family: str  # classic | peer | mstgansr
    model: Path | None = None

    def pipeline(self, src_dir: Path, n: int, out_w: int, out_h: int, dest: Path) -> list[str]:
        launch = (
            f'multifilesrc location="{src_dir}/%08d.png" index=0 stop-index={n - 1} '
            f'caps="image/png,framerate=(fraction){FPS}/1" ! pngdec ! videoconvert ! video/x-raw,format=RGBx ! '
            f"{self.fragment} ! videoconvert ! video/x-raw,format=RGBx,width={out_w},height={out_h} ! "
            f'filesink location="{dest}"'
        )
        return ["gst-launch-1.0", "-q", *shlex.split(launch)]


def shipped_models(models_dir: Path = MODELS) -> list[tuple[int, str, str, Path]]:
    """(scale, variant, precision, path) of every mstgan-x<s>-<variant>[-int8].onnx in models/."""
    out = []
    for p in sorted(models_dir.glob("mstgan-x*-*.onnx")):
        if "." in p.stem:  # <model>.extractor.onnx / .fusion.onnx: parts of a model, not models
            continue
        parts = p.stem.split("-")  # mstgan, x4, fast, real[, int8]
        int8 = parts[-1] == "int8"
        scale, variant = int(parts[1][1:]), "-".join(parts[2 : len(parts) - int8])
        out.append((scale, variant, "int8" if int8 else "fp32", p))
    return out


def methods_for(scale: int, threads: int, peer: Path | None, models_dir: Path = MODELS) -> list[Method]:
    ms = [
        Method(f"videoscale-{m}", f"videoscale {m}", scale,
               f"videoscale method={m} ! video/x-raw,width={{w}},height={{h}}", "classic")  # fmt: skip
        for m in ("bilinear", "catrom", "lanczos")
    ]
    if peer is not None:
        ms.append(Method("realesrgan", "Real-ESRGAN animevideov3", scale,
                         f'mstgansr scale={scale} model-location="{peer}" execution-provider=cpu threads={threads}',
                         "peer", peer))  # fmt: skip
    for s, variant, prec, path in shipped_models(models_dir):
        if s == scale:
            ms.append(Method(f"mstgansr-{variant}-{prec}", f"mstgansr {variant} {prec.upper()}", scale,
                             f'mstgansr scale={scale} model-location="{path}" execution-provider=cpu threads={threads}',
                             "mstgansr", path))  # fmt: skip
    return ms


# ---- data ----------------------------------------------------------------------------------------
@dataclass
class Clip:
    name: str
    lr_dir: Path  # %08d.png, numbered from 0
    gt: np.ndarray  # [F, H, W, 3] uint8, cropped to a multiple of the scale


def _read_pngs(d: Path) -> list[Path]:
    files = sorted(d.glob("*.png"))
    for i, f in enumerate(files):
        if f.name != f"{i:08d}.png":
            raise CompareError(f"{d}: frames must be numbered 00000000.png, 00000001.png, ...; found {f.name} at {i}")
    return files


def load_clips(vid4: Path, scale: int, clips: list[str], cache: Path, frames: int | None = None) -> list[Clip]:
    """Ground truth and LR inputs: BIx4 as shipped, x2/x3 made from GT with the MATLAB-bicubic
    degradation (written once under ``cache``)."""
    if not (vid4 / "GT").is_dir():
        raise CompareError(f"Vid4 not found: {vid4}/GT is missing (pass --vid4 DIR holding GT/ and BIx4/)")
    out = []
    for name in clips:
        gt_files = _read_pngs(vid4 / "GT" / name)
        if not gt_files:
            raise CompareError(f"{name}: no ground-truth frames in {vid4 / 'GT' / name}")
        gt_files = gt_files[:frames] if frames else gt_files
        gt = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in gt_files])
        h, w = gt.shape[1] // scale * scale, gt.shape[2] // scale * scale
        gt = np.ascontiguousarray(gt[:, :h, :w])
        if scale == 4:
            lr_dir = vid4 / "BIx4" / name
            lr_files = _read_pngs(lr_dir)
            if len(lr_files) < len(gt):
                raise CompareError(f"{name}: {len(lr_files)} BIx4 frames in {lr_dir} for {len(gt)} GT frames")
            lr0 = Image.open(lr_files[0])
            if (lr0.height * 4, lr0.width * 4) != (h, w):
                raise CompareError(f"{name}: BIx4 frame 0 is {lr0.width}x{lr0.height}, GT {w}x{h} is not 4x that")
        else:
            lr_dir = cache / f"BIx{scale}" / name
            lr_dir.mkdir(parents=True, exist_ok=True)
            for i, g in enumerate(gt):
                f = lr_dir / f"{i:08d}.png"
                if not f.exists():
                    Image.fromarray(degrade_bi(g, scale)).save(f)
        out.append(Clip(name, lr_dir, gt))
    return out


def compressed_clips(data: list[Clip], qp: int, cache: Path) -> list[Clip]:
    """The clips' LR frames after x264 at ``qp`` (see :mod:`mstgan.data.realworld`), as PNGs under
    ``cache`` (written once): the compressed input cameras and web video give."""
    from mstgan.data.realworld import compress_clip

    out = []
    for c in data:
        # keyed by where the frames come from and how many: a short test clip never stands in
        key = hashlib.sha1(f"{c.lr_dir.resolve()}:{len(c.gt)}".encode()).hexdigest()[:10]
        d = cache / f"{c.name}-{key}"
        files = _read_pngs(c.lr_dir)[: len(c.gt)]
        done = d / ".complete"
        if not done.exists():
            d.mkdir(parents=True, exist_ok=True)
            lr = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
            for i, fr in enumerate(compress_clip(lr, qp)):
                Image.fromarray(fr).save(d / f"{i:08d}.png")
            done.write_text(f"{qp}\n")
        out.append(Clip(c.name, d, c.gt))
    return out


# ---- running a pipeline --------------------------------------------------------------------------
@dataclass
class Run:
    frames: np.ndarray
    seconds: float
    peak_mib: float


def run_method(m: Method, clip: Clip, work: Path, env: dict) -> Run:
    n, (h, w) = len(clip.gt), clip.gt.shape[1:3]
    dest = work / f"{m.name}-{clip.name}.raw"
    argv = m.pipeline(clip.lr_dir, n, w, h, dest)
    argv = [a.replace("{w}", str(w)).replace("{h}", str(h)) for a in argv]
    rss = work / f"{m.name}-{clip.name}.rss"
    # GNU time reports the pipeline's own peak RSS; this process's rusage would also count the
    # (torch-sized) image that fork copies before exec
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), *argv], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    stdout, stderr = proc.stdout, proc.stderr
    if proc.returncode != 0 or "ERROR" in stdout:
        raise CompareError(f"{m.label} on {clip.name}: gst-launch-1.0 failed (exit {proc.returncode}):\n"
                           f"{(stderr + stdout).strip()[-2000:]}\npipeline: {' '.join(argv)}")  # fmt: skip
    frame_bytes = h * w * 4
    size = dest.stat().st_size if dest.exists() else 0
    got = size // frame_bytes
    if size % frame_bytes or got != n:
        raise CompareError(f"{m.label} on {clip.name}: the pipeline produced {got} frames of {w}x{h} "
                           f"({size} bytes) for {n} input frames; frame {got} is missing")  # fmt: skip
    frames = np.fromfile(dest, np.uint8).reshape(n, h, w, 4)[..., :3].copy()
    dest.unlink()
    peak = int(rss.read_text().split()[-1]) / 1024
    return Run(frames, seconds, peak)


# ---- metrics -------------------------------------------------------------------------------------
def _torch_batch(frames: np.ndarray):
    import torch

    return torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float() / 255


def embed_frames(lp, frames: np.ndarray) -> list:
    """LPIPS-alex embedding of every frame (each frame is embedded once, then compared freely)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(frames), 4):
            feats = lp.embed(_torch_batch(frames[i : i + 4]))
            out += [[f[k : k + 1] for f in feats] for k in range(len(feats[0]))]
    return out


def _dist(lp, ea, eb) -> float:
    import torch

    with torch.no_grad():
        return float(lp.distance(ea, eb)[0])


def lpips_series(lp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LPIPS-alex between a[i] and b[i] for every i."""
    return np.array([_dist(lp, x, y) for x, y in zip(embed_frames(lp, a), embed_frames(lp, b))])


@dataclass
class Reference:
    """What every method of a clip is compared with, computed once: GT frames, their LPIPS
    embeddings, the GT's own frame-to-frame LPIPS (for tLP) and Farneback flows (for tOF)."""

    gt: np.ndarray
    emb: list
    steps: np.ndarray
    flows: list

    @classmethod
    def of(cls, lp, gt: np.ndarray) -> Reference:
        emb = embed_frames(lp, gt)
        return cls(gt, emb, np.array([_dist(lp, a, b) for a, b in zip(emb[:-1], emb[1:])]), farneback_flows(gt))


def tlp(lp, out: np.ndarray, gt: np.ndarray) -> float:
    """TecoGAN tLP x100: mean |LPIPS(gt[t-1], gt[t]) - LPIPS(out[t-1], out[t])|."""
    return clip_metrics(out, Reference.of(lp, gt), lp, False, 1)["tlp"]


def vmaf(out: np.ndarray, gt: np.ndarray, threads: int = 2) -> float:
    """VMAF (vmaf_v0.6.1) of the output against GT with imageio-ffmpeg's ffmpeg (built with libvmaf)."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    h, w = gt.shape[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        d, r, log = Path(tmp) / "d.rgb", Path(tmp) / "r.rgb", Path(tmp) / "vmaf.json"
        out.tofile(d)
        gt.tofile(r)
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS), "-i"]
        cmd = [ffmpeg, "-nostdin", "-loglevel", "error", *raw, str(d), *raw, str(r), "-lavfi",
               f"[0:v]format=yuv420p[d];[1:v]format=yuv420p[r];[d][r]libvmaf=log_fmt=json:log_path={log}"
               f":n_threads={threads}", "-f", "null", "-"]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not log.exists():
            raise CompareError(f"VMAF failed ({ffmpeg}): {res.stderr.strip()[-1000:]}")
        return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


def clip_metrics(out: np.ndarray, ref: Reference, lp, with_vmaf: bool, threads: int) -> dict:
    gt = ref.gt
    if out.shape != gt.shape:
        raise CompareError(f"output {out.shape} and ground truth {gt.shape} differ")
    emb = embed_frames(lp, out)
    steps = np.array([_dist(lp, a, b) for a, b in zip(emb[:-1], emb[1:])])
    row = {
        "psnr": float(np.mean([psnr_y(o, g) for o, g in zip(out, gt)])),
        "ssim": float(np.mean([ssim_y(o, g) for o, g in zip(out, gt)])),
        "lpips": float(np.mean([_dist(lp, a, b) for a, b in zip(emb, ref.emb)])),
        "tof": tof_from_flows(farneback_flows(out), ref.flows) if len(out) > 1 else float("nan"),
        "tlp": float(np.mean(np.abs(ref.steps - steps)) * 100) if len(out) > 1 else float("nan"),
    }
    if with_vmaf:
        row["vmaf"] = vmaf(out, gt, threads)
    return row


# ---- pictures ------------------------------------------------------------------------------------
def detail_box(gt: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size x size window of the middle GT frame with the most gradient energy."""
    y = gt[len(gt) // 2].astype(np.float32).mean(-1)
    e = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1]
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    r, c = np.unravel_index(int(np.argmax(s)), s.shape)
    return int(r), int(c)


def _labelled_strip(tiles: list[np.ndarray], labels: list[str], pad: int = 4) -> Image.Image:
    h = max(t.shape[0] for t in tiles)
    w = sum(t.shape[1] for t in tiles) + pad * (len(tiles) - 1)
    img = Image.new("RGB", (w, h + 16), "white")
    draw, x = ImageDraw.Draw(img), 0
    for t, label in zip(tiles, labels):
        img.paste(Image.fromarray(t), (x, 16))
        draw.text((x + 2, 2), label, fill="black")
        x += t.shape[1] + pad
    return img


PICTURE_LABELS = {"videoscale-catrom": "bicubic (catrom)", "realesrgan": "Real-ESRGAN",
                  "mstgansr-fidelity-fp32": "mstgansr fidelity", "mstgansr-perceptual-fp32": "mstgansr perceptual"}  # fmt: skip


@dataclass
class Pictures:
    """Crops of the middle frame and x-t slices, gathered while the outputs are in memory."""

    size: int = 128
    boxes: dict = field(default_factory=dict)  # clip -> (y, x, size)
    crops: dict = field(default_factory=dict)  # clip -> [(label, tile)]
    slices: dict = field(default_factory=dict)  # clip -> [(label, x-t image)]

    def add(self, clip: Clip, label: str, frames: np.ndarray, scale: int) -> None:
        if clip.name not in self.boxes:
            k = min(self.size, clip.gt.shape[1] - 1, clip.gt.shape[2] - 1)
            self.boxes[clip.name] = (*detail_box(clip.gt, k), k)
        y, x, k = self.boxes[clip.name]
        mid = frames[len(frames) // 2]
        if frames.shape[1] != clip.gt.shape[1]:  # the LR input: nearest-neighbour to HR size
            mid = mid.repeat(scale, 0).repeat(scale, 1)
            frames = frames.repeat(scale, 1).repeat(scale, 2)
        self.crops.setdefault(clip.name, []).append((label, mid[y : y + k, x : x + k]))
        xt = frames[:, y + k // 2, x : x + k].repeat(2, 0)  # one row per frame, doubled in height
        self.slices.setdefault(clip.name, []).append((label, xt))

    def save(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for clip, tiles in self.crops.items():
            p = out / f"crops-{clip}.png"
            _labelled_strip([t for _, t in tiles], [lab for lab, _ in tiles]).save(p, optimize=True)
            paths.append(p)
        for clip in ("calendar", "walk"):
            if clip in self.slices:
                p = out / f"xt-{clip}.png"
                tiles = self.slices[clip]
                _labelled_strip([t for _, t in tiles], [lab for lab, _ in tiles]).save(p, optimize=True)
                paths.append(p)
        return paths


def run_marks(rows: list[dict]) -> tuple[list[str], list[str]]:
    """A " [k]" after each row's label and a "[k] machine, date" line per run, where the rows come
    from more than one run (methods re-run alone with --only): frames/s do not compare across runs."""
    run_of = [(r.get("machine", "?"), r.get("date", "?")) for r in rows]
    runs = list(dict.fromkeys(run_of))
    if len(runs) < 2:
        return [""] * len(rows), []
    return [f" [{runs.index(k) + 1}]" for k in run_of], [f"[{i}] {m}, {d}" for i, (m, d) in enumerate(runs, 1)]


def scatter(results: list[dict], scale: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r["scale"] == scale and r.get("input", "BI") == "BI"]
    marks, notes = run_marks(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4 if notes else 4))
    colours = {"classic": "tab:grey", "peer": "tab:orange", "mstgansr": "tab:blue"}
    for ax, key, better in ((axes[0], "psnr", "higher"), (axes[1], "lpips", "lower")):
        for r, mark in zip(rows, marks):
            ax.scatter(r["fps"], r["average"][key], c=colours[r["family"]], s=36)
            ax.annotate(r["label"] + mark, (r["fps"], r["average"][key]), fontsize=7, xytext=(4, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("pipeline frames/s (log), 2-core CPU")
        ax.set_ylabel(f"{key.upper()} ({better} is better)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Vid4 x{scale} (BI input): quality vs speed through GStreamer")
    if notes:
        fig.text(0.01, 0.01, "   ".join(notes), fontsize=7)
    fig.tight_layout(rect=(0, 0.05 if notes else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- report --------------------------------------------------------------------------------------
COLS = [("psnr", "PSNR-Y", 2), ("ssim", "SSIM-Y", 4), ("lpips", "LPIPS-alex", 3), ("tof", "tOF", 3),
        ("tlp", "tLP", 3), ("vmaf", "VMAF", 1)]  # fmt: skip


def _fmt(v, nd):
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def summary_table(results: list[dict], scale: int, source: str = "BI") -> str:
    rows = [r for r in results if r["scale"] == scale and r.get("input", "BI") == source]
    cols = [c for c in COLS if c[0] in rows[0]["average"]]
    marks, notes = run_marks(rows)
    head = "| method | " + " | ".join(c[1] for c in cols) + " | frames/s | peak MiB |"
    lines = [head, "|" + "---|" * (len(cols) + 3)]
    for r, mark in zip(rows, marks):
        vals = " | ".join(_fmt(r["average"].get(k), nd) for k, _, nd in cols)
        lines.append(f"| {r['label']}{mark} | {vals} | {r['fps']:.2f} | {r['peak_mib']:.0f} |")
    if notes:
        lines += [""] + notes
    return "\n".join(lines)


def clip_table(results: list[dict], scale: int, source: str = "BI") -> str:
    rows = [r for r in results if r["scale"] == scale and r.get("input", "BI") == source]
    clips = list(rows[0]["clips"])
    lines = ["| method | " + " | ".join(clips) + " |", "|" + "---|" * (len(clips) + 1)]
    for r in rows:
        cells = [f"{r['clips'][c]['psnr']:.2f} / {r['clips'][c]['ssim']:.4f} / {r['clips'][c]['lpips']:.3f}" for c in clips]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def commit() -> str:
    r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty=+", "--exclude=*"],
                       capture_output=True, text=True)  # fmt: skip
    return r.stdout.strip() or "unknown"


def report(results: list[dict], meta: dict, pictures: list[Path], plots: list[Path], out: Path) -> str:
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    md = ["# Vid4 comparison through GStreamer", "",
          f"onnxruntime CPU provider, {meta['threads']} threads; the machine, commit (dirty trees marked +) and "
          "date of each scale's run are under its heading.", "",
          f"Command (from `models/`) of the latest run: `{meta['command']}`", "",
          *([f"**Only the first {meta['frames_per_clip']} frames of each clip: a quick check, not the protocol.**", ""]
            if meta["frames_per_clip"] != "all" else []),
          "Every method ran as its own `gst-launch-1.0` pipeline on the Vid4 PNG frames (x4: the standard "
          "BIx4 inputs; x2/x3: made from GT with MATLAB-bicubic). PSNR/SSIM on Y (MATLAB rgb2ycbcr), crop 0, all "
          "frames, mean per clip then over the 4 clips; LPIPS-alex (official v0.1 weights); tOF and tLP "
          "(x100) as defined by TecoGAN, over all frames; VMAF v0.6.1 (libvmaf, YUV 4:2:0). frames/s is the "
          "whole pipeline process (PNG decoding, model loading, inference, raw output) over all frames of "
          "the 4 clips; peak MiB is the largest resident set of any of those processes. Lower is better "
          "for LPIPS, tOF and tLP.", ""]  # fmt: skip
    for s in sorted({r["scale"] for r in results}, reverse=True):
        rows = [r for r in results if r["scale"] == s]
        runs = sorted({(r.get("machine", "?"), r.get("commit", "?"), r.get("date", "?")) for r in rows})
        md += [f"x{s} measured on " + "; ".join(f"{m}, commit {c}, {d}" for m, c, d in runs) + ".", ""]
        for src in dict.fromkeys(r.get("input", "BI") for r in results if r["scale"] == s):
            what = "BI input" if src == "BI" else f"BI input after x264 at {src} (compressed, as cameras and web video are)"
            md += [f"## x{s}, {what}", "", summary_table(results, s, src), "", "Per clip (PSNR / SSIM / LPIPS):", "",
                   clip_table(results, s, src), ""]  # fmt: skip
    if plots:
        md += ["## Quality vs speed", ""] + [f"![{p.stem}]({rel(p)})" for p in plots] + [""]
    if pictures:
        md += ["## Pictures (x4)", "",
               "Crops of the middle frame around the region of each clip with the most detail, and x-t "
               "slices (one row, all frames stacked top to bottom; flicker shows as horizontal streaks).", ""]  # fmt: skip
        md += [f"![{p.stem}]({rel(p)})" for p in pictures] + [""]
    return "\n".join(md)


def update_readme(readme: Path, results: list[dict], scale: int = 4) -> None:
    begin, end = "<!-- compare:begin -->", "<!-- compare:end -->"
    text = readme.read_text()
    if begin not in text or end not in text:
        raise CompareError(f"{readme}: no {begin} ... {end} markers to put the summary between")
    parts = []
    for src in dict.fromkeys(r.get("input", "BI") for r in results if r["scale"] == scale):
        if src != "BI":
            parts.append(f"\nx{scale} on compressed input (the BIx4 frames through x264 at {src}):\n")
        parts.append(summary_table(results, scale, src))
    block = f"{begin}\n" + "\n".join(parts) + f"\n{end}"
    readme.write_text(text[: text.index(begin)] + block + text[text.index(end) + len(end) :])


# ---- main ----------------------------------------------------------------------------------------
def merge_previous(prev: Path, results: list[dict], scales: list[int], only: list[str] | None = None) -> list[dict]:
    """``results`` with the earlier run's results of the scales this run did not redo (a run per
    scale is allowed), each keeping the machine and date it was measured on. With ``only``, the
    earlier rows of a redone scale stay too, in their places, and only the methods run again
    replace theirs."""
    if not prev.exists():
        return results
    before = json.loads(prev.read_text())
    for r in before["results"]:  # files written before each result carried its own machine and date
        r.setdefault("machine", before["meta"]["machine"])
        r.setdefault("date", before["meta"]["date"])
    if not only:
        kept = [r for r in before["results"] if r["scale"] not in scales]
        return sorted(kept + results, key=lambda r: -r["scale"])
    key = lambda r: (r["scale"], r["name"], r.get("input", "BI"))  # noqa: E731
    new = {key(r): r for r in results}
    merged = [new.pop(key(r), r) for r in before["results"]]
    return sorted(merged + list(new.values()), key=lambda r: -r["scale"])


def plugin_env(plugin_dir: Path | None) -> dict:
    cands = [plugin_dir] if plugin_dir else [REPO / "target" / "release", REPO / "target" / "debug"]
    for d in cands:
        if d and (d / "libgstmstgansr.so").exists():
            env = dict(os.environ, GST_PLUGIN_PATH=str(d))
            env.setdefault("MSTGANSR_MODEL_DIR", str(MODELS))
            return env
    raise CompareError(f"the mstgansr plugin is not built (looked in {', '.join(map(str, cands))}): "
                       "run `cargo build --release` in the repository root")  # fmt: skip


def run(scales: list[int], clips: list[str], vid4: Path, out: Path, threads: int = 2, only: list[str] | None = None,
        frames: int | None = None, with_vmaf: bool = True, plugin_dir: Path | None = None,
        models_dir: Path = MODELS, peer: bool = True, command: str = "", qps: tuple[int, ...] = (24, 32)) -> list[dict]:  # fmt: skip
    from mstgan.losses.lpips import LPIPS
    from mstgan.tools.peers import export_peer

    for tool, pkg in (("gst-launch-1.0", "gstreamer1.0-tools"), ("/usr/bin/time", "time")):
        if shutil.which(tool) is None:
            raise CompareError(f"{tool} not found: install the Debian package {pkg} (scripts/setup.sh does)")
    env = plugin_env(plugin_dir)
    cache = MODELS / ".cache" / "compare"
    lp = LPIPS("alex")
    head, host, today = commit(), machine(), time.strftime("%Y-%m-%d")
    results, pics = [], Pictures()
    for scale in scales:
        peer_path = None
        if peer:
            peer_path = cache / f"realesr-animevideov3-x{scale}.onnx"
            if not peer_path.exists():
                export_peer(scale, peer_path)
        ms = [m for m in methods_for(scale, threads, peer_path, models_dir) if not only or any(o in m.name for o in only)]
        data = load_clips(vid4, scale, clips, cache, frames)
        if scale == 4:
            for c in data:
                lr = np.stack([np.asarray(Image.open(c.lr_dir / f"{i:08d}.png").convert("RGB")) for i in range(len(c.gt))])
                pics.add(c, "LR (nearest)", lr, scale)
        refs = {c.name: Reference.of(lp, c.gt) for c in data}
        inputs = [("BI", data)] + [(f"QP {qp}", compressed_clips(data, qp, cache / f"x264-qp{qp}-x{scale}"))
                                   for qp in qps]  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            for (source, clips_in), m in [(i, m) for i in inputs for m in ms]:
                per_clip, secs, n, peak = {}, 0.0, 0, 0.0
                for c in clips_in:
                    r = run_method(m, c, Path(tmp), env)
                    secs, n, peak = secs + r.seconds, n + len(r.frames), max(peak, r.peak_mib)
                    try:
                        per_clip[c.name] = clip_metrics(r.frames, refs[c.name], lp, with_vmaf, threads)
                    except CompareError as e:
                        raise CompareError(f"{m.label} on {c.name} ({source}): {e}") from None
                    if scale == 4 and source == "BI" and m.name in PICTURE_LABELS:
                        pics.add(c, PICTURE_LABELS[m.name], r.frames, scale)
                avg = {k: float(np.mean([per_clip[c][k] for c in per_clip])) for k in per_clip[data[0].name]}
                res = {"name": m.name, "label": m.label, "family": m.family, "scale": scale, "input": source,
                       "clips": per_clip, "average": avg, "fps": n / secs, "peak_mib": peak, "frames": n, "commit": head,
                       "machine": host, "date": today,
                       "model": str(m.model.relative_to(REPO)) if m.model and m.model.is_relative_to(REPO) else None}  # fmt: skip
                results.append(res)
                print(f"x{scale} {source:6s} {m.label:32s} PSNR {avg['psnr']:.2f} SSIM {avg['ssim']:.4f} LPIPS {avg['lpips']:.3f} "
                      f"tOF {avg['tof']:.3f} tLP {avg['tlp']:.3f}" + (f" VMAF {avg['vmaf']:.1f}" if "vmaf" in avg else "")
                      + f"  {n / secs:.2f} fps  {peak:.0f} MiB", flush=True)  # fmt: skip
        if scale == 4:
            for c in data:
                pics.add(c, "GT", c.gt, scale)
    out.mkdir(parents=True, exist_ok=True)
    results = merge_previous(out / "results.json", results, scales, only)
    # a run of some methods (--only) keeps the earlier pictures, drawn from every pictured method
    redraw = 4 in scales and not (only and any((out / "compare").glob("crops-*.png")))
    (out / "compare").mkdir(parents=True, exist_ok=True)
    pictures = pics.save(out / "compare") if redraw else sorted((out / "compare").glob("*-*.png"))
    pictures = [p for p in pictures if not p.name.startswith("quality-speed")]
    plots = [scatter(results, s, out / "compare" / f"quality-speed-x{s}.png") for s in sorted({r["scale"] for r in results})]
    meta = {"machine": host, "threads": threads, "commit": head, "date": today,
            "command": command, "frames_per_clip": frames or "all"}  # fmt: skip
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (out / "results.md").write_text(report(results, meta, pictures, plots, out))
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 3, 2], choices=(2, 3, 4))
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    ap.add_argument("--vid4", default=str(default_vid4()))
    ap.add_argument("--out", default=str(REPO / "docs"), help="results.md/json and compare/*.png go here")
    ap.add_argument("--readme", help="README whose <!-- compare:begin/end --> block gets the x4 summary")
    ap.add_argument("--only", nargs="+", help="run only methods whose id contains one of these")
    ap.add_argument("--frames", type=int, help="first N frames of each clip (quick checks; not the protocol)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-vmaf", action="store_true")
    ap.add_argument("--no-peer", action="store_true", help="skip Real-ESRGAN (needs PyPI once)")
    ap.add_argument("--plugin-dir", help="folder with libgstmstgansr.so (default target/release, then target/debug)")
    ap.add_argument("--models-dir", default=str(MODELS))
    ap.add_argument("--qp", type=int, nargs="*", default=[24, 32],
                    help="also every method on the inputs after x264 at these QPs (none: BI only)")
    args = ap.parse_args(argv)
    cmd = "python -m mstgan.tools.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        results = run(args.scales, args.clips, Path(args.vid4), Path(args.out), args.threads, args.only, args.frames,
                      not args.no_vmaf, Path(args.plugin_dir) if args.plugin_dir else None, Path(args.models_dir),
                      not args.no_peer, cmd.strip(), tuple(args.qp))  # fmt: skip
        if args.readme and 4 in args.scales:
            update_readme(Path(args.readme), results)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(args.out) / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
