"""Upscale a library of videos with the mstgansr element, chunked at keyframes, as Ray tasks.

    python -m mstgansr_library IN [IN ...] --out DIR [--scale 4] [--variant auto]
        [--provider cpu] [--model FILE.onnx] [--quantizer 18] [--chroma 420|444] [--chunk-seconds 10]
        [--address auto|ray://host:10001] [--cpus-per-task 1] [--gpus-per-task 0] [--retries 2]

IN: video files or folders (searched recursively for common video extensions). Each file is
split at keyframes into chunks of at least --chunk-seconds; each chunk is upscaled with (T-1)/2
frames of context on both sides (T: the largest bundled window, or --model's own) that the
element sees but that are not written, so the joined file equals an unchunked run. Chunks run
as Ray tasks: a local Ray is started unless --address names a cluster. The output is H.264 as
upscale_file writes it: High (4:2:0, 8-bit), High 10 for a source deeper than 8 bits, High
4:4:4 with --chroma 444. The joined file keeps the source's
audio and subtitle streams. A manifest per
file (DIR/.mstgansr-library/) records finished chunks: rerunning the same command after a kill
redoes only what is missing; a finished output is never rewritten. Needs the mstgansr plugin on
GST_PLUGIN_PATH (and MSTGANSR_MODEL_DIR for the bundled models), as gst-launch-1.0 does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mstgansr_library import plan as planning
from mstgansr_library.probe import ProbeError, Video, ffmpeg, probe
from mstgansr_library.work import FAULT_ENV, run_chunk

VIDEO_EXT = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".mpg", ".mpeg", ".flv"}
STATE = ".mstgansr-library"


def inputs(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXT)
        else:
            out.append(p)
    return out


def model_window(path: str) -> int:
    """The window (frames per output) an ONNX file declares, as the element reads it; a file the
    element would refuse is refused here, before any cluster starts."""
    import onnxruntime as ort

    try:
        meta = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_modelmeta()
    except Exception as e:  # onnxruntime's own message says what is wrong with the file
        raise ValueError(f"--model {path}: not a loadable ONNX file: {str(e).strip().splitlines()[0]}") from e
    window = meta.custom_metadata_map.get("window", "")
    if not window.isdigit() or int(window) < 1 or int(window) % 2 == 0:
        raise ValueError(f"--model {path}: no odd 'window' in its metadata ({window or 'none'}): "
                         "export it with python -m mstgan.deploy.export (in models/)")  # fmt: skip
    return int(window)


def write_json(path: Path, data: dict) -> None:
    """Atomically: a reader (or a rerun after a kill) sees the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class Job:
    """One file: its chunks, its manifest, its output."""

    def __init__(self, src: Path, video: Video, args, element: str, context: int):
        self.src, self.video = src, video
        self.out = Path(args.out) / (src.stem + ".mp4")
        settings = {"element": element, "quantizer": args.quantizer, "chunk_seconds": args.chunk_seconds,
                    "chroma": args.chroma}  # fmt: skip
        st = src.stat()
        key = hashlib.sha1(json.dumps([str(src.resolve()), st.st_size, st.st_mtime_ns, settings]).encode())
        self.dir = Path(args.out) / STATE / f"{src.stem}-{key.hexdigest()[:10]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        min_frames = max(1, round(args.chunk_seconds * float(video.fps)))
        self.chunks = planning.plan(video.keyframes, video.n_frames, min_frames, context)
        self.manifest_path = self.dir / "manifest.json"
        self.manifest = {"source": str(src), "settings": settings, "chunks": {}, "failed": {}}
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text())
            self.manifest["failed"] = {}

    def chunk_file(self, index: int) -> Path:
        return self.dir / f"chunk-{index:05d}.mp4"

    def done(self, index: int) -> bool:
        return str(index) in self.manifest["chunks"] and self.chunk_file(index).exists()

    def record(self, index: int, result: dict) -> None:
        self.manifest["chunks"][str(index)] = result
        write_json(self.manifest_path, self.manifest)

    def join(self) -> None:
        """The chunks in order, with the source's audio and subtitles, into the output."""
        listing = self.dir / "chunks.txt"
        listing.write_text("".join(f"file '{self.chunk_file(c.index).name}'\n" for c in self.chunks))
        tmp = self.out.with_name(self.out.stem + ".part.mp4")
        base = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                "-i", str(listing), "-i", str(self.src), "-map", "0:v", "-map", "1:a?", "-map", "1:s?",
                "-c:v", "copy", "-c:s", "mov_text"]  # fmt: skip
        res = subprocess.run([*base, "-c:a", "copy", "-movflags", "+faststart", str(tmp)], capture_output=True, text=True)
        if res.returncode != 0:
            # an audio codec MP4 cannot hold: AAC, as upscale_file does
            res = subprocess.run([*base, "-c:a", "aac", "-movflags", "+faststart", str(tmp)], capture_output=True, text=True)
            if res.returncode == 0:
                print(f"{self.src}: audio re-encoded to AAC (MP4 cannot hold the source's codec)", file=sys.stderr)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"joining the chunks failed: {res.stderr.strip()[-300:]}")
        os.replace(tmp, self.out)
        self.manifest["complete"] = True
        write_json(self.manifest_path, self.manifest)


def bar(done_c: int, total_c: int, done_f: int, total_f: int, started: float) -> str:
    el = time.time() - started
    fps = done_f / el if el > 0 else 0.0
    eta = (total_f - done_f) / fps if fps > 0 else float("nan")
    width = 24
    fill = int(width * done_f / max(1, total_f))
    eta_s = f"{eta:.0f} s" if eta == eta else "?"
    return (f"\r[{'#' * fill}{'.' * (width - fill)}] {done_c}/{total_c} chunks  {done_f}/{total_f} frames  "
            f"{fps:.2f} frames/s  ETA {eta_s}   ")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="mstgansr_library", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("inputs", nargs="+", help="video files or folders")
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
    ap.add_argument("--variant", default="auto", help="the element's variant (auto, fidelity, real, fast, ...)")
    ap.add_argument("--provider", default="cpu", help="the element's execution-provider")
    ap.add_argument("--model", help="an ONNX file (the element's model-location) instead of a bundled variant")
    ap.add_argument("--quantizer", type=int, default=18, help="x264 CRF (0: lossless)")
    ap.add_argument("--chroma", default="420", choices=["420", "444"],
                    help="4:2:0 (plays everywhere) or 4:4:4 (full chroma, High 4:4:4: fewer players)")
    ap.add_argument("--chunk-seconds", type=float, default=10.0, help="least length of a chunk")
    ap.add_argument("--address", help="a Ray cluster to join (default: start a local one)")
    ap.add_argument("--cpus-per-task", type=float, default=1.0)
    ap.add_argument("--gpus-per-task", type=float, default=0.0)
    ap.add_argument("--retries", type=int, default=2, help="times a failing chunk is retried")
    args = ap.parse_args(argv)

    if args.quantizer < 0 or args.quantizer > 51:
        ap.error("--quantizer is x264's CRF, 0 (lossless) to 51")
    if args.chunk_seconds <= 0:
        ap.error("--chunk-seconds must be positive")
    if args.model and not Path(args.model).is_file():
        ap.error(f"--model {args.model}: no such file")
    try:
        context = planning.context_for(model_window(args.model) if args.model else None)
    except ValueError as e:
        ap.error(str(e))
    files = inputs(args.inputs)
    missing = [f for f in files if not f.exists()]
    if missing:
        ap.error(f"no such file or folder: {missing[0]}")
    if not files:
        ap.error("no video files in the inputs")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    threads = max(1, int(args.cpus_per_task))
    element = (f"scale={args.scale} execution-provider={args.provider} threads={threads} "
               + (f"model-location={args.model}" if args.model else f"variant={args.variant}"))  # fmt: skip

    started = time.time()
    jobs: list[Job] = []
    failed: dict[str, str] = {}
    skipped: list[str] = []
    for f in files:
        try:
            video = probe(str(f))
        except ProbeError as e:
            failed[str(f)] = str(e)
            print(f"skipped: {e}", file=sys.stderr)
            continue
        job = Job(f, video, args, element, context)
        if job.out.exists():
            skipped.append(str(f))
            print(f"{f}: {job.out} exists, left as it is", file=sys.stderr)
            continue
        jobs.append(job)

    import ray  # after the arguments: --help and mistakes need no cluster

    env = {k: os.environ[k] for k in ("GST_PLUGIN_PATH", "MSTGANSR_MODEL_DIR", "ORT_DYLIB_PATH", FAULT_ENV)
           if k in os.environ}  # fmt: skip
    ray.init(address=args.address, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": env} if args.address else None)  # fmt: skip
    task = ray.remote(num_cpus=args.cpus_per_task, num_gpus=args.gpus_per_task,
                      max_retries=args.retries, retry_exceptions=True)(run_chunk)  # fmt: skip
    pending: dict = {}
    total_c = sum(len(j.chunks) for j in jobs)
    total_f = sum(j.video.n_frames for j in jobs)
    done_c = done_f = resumed = 0
    for j in jobs:
        for c in j.chunks:
            if j.done(c.index):
                resumed += 1
                done_c += 1
                done_f += c.frames
                continue
            job = {"src": str(j.src), "name": j.src.name, "chunk": {**c.to_dict(), "lead": c.lead},
                   "width": j.video.width, "height": j.video.height,
                   "fps": (j.video.fps.numerator, j.video.fps.denominator), "times": j.video.times,
                   "element": element, "scale": args.scale, "quantizer": args.quantizer,
                   "deep": j.video.deep, "chroma444": args.chroma == "444", "out": str(j.chunk_file(c.index)), "env": env}  # fmt: skip
            pending[task.remote(job)] = (j, c)
    if resumed:
        print(f"resuming: {resumed} of {total_c} chunks already done", file=sys.stderr)
    print(f"{len(jobs)} file(s), {total_c} chunks, {total_f} frames; {len(pending)} chunks to run", file=sys.stderr)
    work_started = time.time()
    done_before = done_f
    remaining = {id(j): sum(not j.done(c.index) for c in j.chunks) for j in jobs}
    to_join = [j for j in jobs if remaining[id(j)] == 0]
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        j, c = pending.pop(ref)
        try:
            j.record(c.index, ray.get(ref))
            done_c += 1
            done_f += c.frames
        except Exception as e:  # the task's error after its retries
            reason = str(getattr(e, "cause", None) or e).strip().splitlines()[-1]
            j.manifest["failed"][str(c.index)] = reason
            write_json(j.manifest_path, j.manifest)
            print(f"\n{j.src}: chunk {c.index} failed after {args.retries} retries: {reason}", file=sys.stderr)
        remaining[id(j)] -= 1
        if remaining[id(j)] == 0:
            to_join.append(j)
        sys.stderr.write(bar(done_c, total_c, done_f - done_before, total_f - done_before, work_started))
        sys.stderr.flush()
        for jj in [x for x in to_join if not x.manifest["failed"]]:
            to_join.remove(jj)
            try:
                jj.join()
            except RuntimeError as e:
                failed[str(jj.src)] = str(e)
    for jj in to_join:
        if jj.manifest["failed"]:
            failed[str(jj.src)] = f"{len(jj.manifest['failed'])} chunk(s) failed; rerun to retry them"
        else:
            try:
                jj.join()
            except RuntimeError as e:
                failed[str(jj.src)] = str(e)
    for j in jobs:
        if j.manifest["failed"] and str(j.src) not in failed:
            failed[str(j.src)] = f"{len(j.manifest['failed'])} chunk(s) failed; rerun to retry them"
    ray.shutdown()
    el = time.time() - started
    ran = done_f - done_before
    ok = sum(1 for j in jobs if j.out.exists())
    print(f"\ndone: {ok} file(s) written, {len(failed)} failed, {len(skipped)} left as they were; "
          f"{el:.1f} s, {ran} frames upscaled ({ran / el:.2f} frames/s)", file=sys.stderr)  # fmt: skip
    for f, why in failed.items():
        print(f"failed: {f}: {why}", file=sys.stderr)
    return 1 if failed else 0
