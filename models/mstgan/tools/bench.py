"""Throughput and memory of every scaler through ``gst-launch-1.0``, on the same frames.

For each size (the sample clip ``examples/data/tennis-214x120.mp4`` decoded and resized once to
it, stored as raw RGBx), each method runs as a real pipeline
``filesrc ! rawvideoparse ! <method> ! fakesink``: mstgansr FP32 and INT8 (the shipped model of
the scale), Real-ESRGAN ``realesr-animevideov3`` through the same element, and ``videoscale``
lanczos. Methods alternate within each round; frames/s is the whole process (model loading
included) over the frames, peak RSS is GNU time's; medians over rounds. A batch-size sweep of the
INT8 model follows (offline throughput against windows per inference), then one run of a
4096x2160 clip at x2 (INT8 and lanczos: the tiled path at 4K).

``--fast`` measures the fast tier instead (``variant=fast``, the live-camera models) against the
default model of the scale and lanczos, on 300 frames so that model loading is a small part.

    python -m mstgan.tools.bench [--rounds 2] [--out ../docs/bench/throughput.md] [--readme ../README.md]
    python -m mstgan.tools.bench --fast [--rounds 3] [--out ../docs/bench/fast-tier.md]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mstgan.tools.compare import REPO, CompareError, plugin_env, shipped_models
from mstgan.core.sessions import machine

SAMPLE = REPO / "examples" / "data" / "tennis-214x120.mp4"
# (width, height, scale, frames): enough frames that model loading is a small part
SIZES = [(180, 144, 4, 30), (320, 240, 2, 30), (640, 360, 2, 12), (960, 540, 2, 6), (1920, 1080, 2, 3)]
BATCH_SIZE = (640, 360, 2, 16)
# a 4K frame at x2 in tiles: minutes a frame, so one round of the INT8 model and lanczos only
BIG = (4096, 2160, 2, 2)
# the fast tier's target: a 320x240 camera at x2, 25 frames/s on 2 cores
FAST_SIZES = [(320, 240, 2, 300), (180, 144, 4, 150)]


@dataclass
class Method:
    label: str
    fragment: str  # between the raw frames and the sink


def methods(scale: int, peer: Path | None, threads: int, variant: str | None = None, tag: str = "") -> list[Method]:
    """The shipped model of ``variant`` (default: the element's default at ``scale``) in FP32 and
    INT8, the peer if given, and lanczos."""
    out = []
    variant = variant or ("perceptual" if scale == 4 else "fidelity")
    by_prec = {prec: p for s, v, prec, p in shipped_models() if s == scale and v == variant}
    for prec in ("fp32", "int8"):
        if prec in by_prec:
            out.append(Method(f"mstgansr {tag}{prec.upper()}",
                              f'mstgansr scale={scale} model-location="{by_prec[prec]}" execution-provider=cpu threads={threads}'))  # fmt: skip
    if peer is not None:
        out.append(Method("Real-ESRGAN animevideov3",
                          f'mstgansr scale={scale} model-location="{peer}" execution-provider=cpu threads={threads}'))  # fmt: skip
    out.append(Method("videoscale lanczos", "videoscale method=lanczos ! video/x-raw,width={W},height={H}"))
    return out


def make_frames(w: int, h: int, n: int, work: Path) -> Path:
    """The sample clip's first ``n`` frames (looped if short) resized to w x h, raw RGBx."""
    dest = work / f"frames-{w}x{h}-{n}.rgbx"
    if dest.exists():
        return dest
    launch = (f'filesrc location="{SAMPLE}" ! decodebin ! videoconvert ! videoscale method=lanczos ! '
              f"video/x-raw,format=RGBx,width={w},height={h} ! filesink location={dest}")  # fmt: skip
    subprocess.run(["gst-launch-1.0", "-q", *launch.split()], check=True, capture_output=True)
    frame = w * h * 4
    data = dest.read_bytes()
    have = len(data) // frame
    if have == 0:
        raise CompareError(f"could not decode {SAMPLE}")
    dest.write_bytes(b"".join(data[(i % have) * frame:(i % have + 1) * frame] for i in range(n)))
    return dest


def run_once(m: Method, frames: Path, w: int, h: int, s: int, n: int, env: dict, work: Path,
             extra: str = "") -> tuple[float, float]:  # fmt: skip
    """(frames/s, peak MiB) of one pipeline run; checks that every frame came out."""
    frag = m.fragment.replace("{W}", str(w * s)).replace("{H}", str(h * s))
    if extra:
        frag = frag.replace("mstgansr ", f"mstgansr {extra} ", 1)
    launch = (f"filesrc location={frames} ! rawvideoparse format=rgbx width={w} height={h} framerate=25/1 ! "
              f"{frag} ! fakesink name=out sync=false silent=false -v")  # fmt: skip
    rss = work / "rss.txt"
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), "gst-launch-1.0", *launch.split()],
                       env=env, capture_output=True, text=True)  # fmt: skip
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise CompareError(f"{m.label} at {w}x{h} x{s} failed:\n{(p.stderr + p.stdout)[-2000:]}")
    got = p.stdout.count("out: last-message = chain")
    if got != n:
        raise CompareError(f"{m.label} at {w}x{h} x{s}: {got} frames out for {n} in")
    return n / secs, int(rss.read_text().split()[-1]) / 1024


def run(rounds: int, threads: int, work: Path, with_peer: bool = True,
        big: bool = True) -> tuple[list[dict], list[dict], list[dict]]:  # fmt: skip
    env = plugin_env(None)
    work.mkdir(parents=True, exist_ok=True)
    peers: dict[int, Path | None] = {}
    for s in sorted({s for _, _, s, _ in SIZES}):
        peers[s] = None
        if with_peer:
            from mstgan.tools.peers import export_peer

            peers[s] = export_peer(s, work / f"realesr-animevideov3-x{s}.onnx")
    rows: dict[tuple, list] = {}
    plan = [(w, h, s, n, m) for w, h, s, n in SIZES for m in methods(s, peers[s], threads)]
    for r in range(rounds):
        for w, h, s, n, m in plan:
            fps, mib = run_once(m, make_frames(w, h, n, work), w, h, s, n, env, work)
            rows.setdefault((w, h, s, m.label), []).append((fps, mib))
            print(f"round {r + 1}: {m.label} {w}x{h} x{s}: {fps:.2f} frames/s, {mib:.0f} MiB", flush=True)
    table = [{"size": f"{w}x{h} x{s}", "method": label,
              "fps": statistics.median(v[0] for v in vals), "mib": statistics.median(v[1] for v in vals)}
             for (w, h, s, label), vals in rows.items()]  # fmt: skip
    # batch sweep: the INT8 model, same frames, alternated
    w, h, s, n = BATCH_SIZE
    int8 = next(m for m in methods(s, None, threads) if m.label.endswith("INT8"))
    sweep: dict[int, list] = {}
    for r in range(rounds):
        for b in (1, 2, 4, 8):
            fps, mib = run_once(int8, make_frames(w, h, n, work), w, h, s, n, env, work, extra=f"batch-size={b}")
            sweep.setdefault(b, []).append((fps, mib))
            print(f"round {r + 1}: batch {b} at {w}x{h} x{s}: {fps:.2f} frames/s, {mib:.0f} MiB", flush=True)
    batches = [{"batch": b, "fps": statistics.median(v[0] for v in vals), "mib": statistics.median(v[1] for v in vals)}
               for b, vals in sweep.items()]  # fmt: skip
    bigs = []
    if big:
        w, h, s, n = BIG
        for m in methods(s, None, threads):
            if m.label.endswith("FP32"):
                continue
            t0 = time.perf_counter()
            fps, mib = run_once(m, make_frames(w, h, n, work), w, h, s, n, env, work)
            bigs.append({"size": f"{w}x{h} x{s}", "method": m.label, "fps": fps, "mib": mib,
                         "secs": time.perf_counter() - t0})  # fmt: skip
            print(f"big: {m.label} {w}x{h} x{s}: {fps:.3f} frames/s, {mib:.0f} MiB", flush=True)
    return table, batches, bigs


def run_fast(rounds: int, threads: int, work: Path, extra: list[Path] = ()) -> list[dict]:
    """The fast tier (FP32, INT8) against the default model's INT8 and lanczos, alternated;
    ``extra`` models (e.g. a pruned one) join at the sizes of their scale."""
    from mstgan.deploy.export import read_metadata

    env = plugin_env(None)
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[tuple, list] = {}
    plan = []
    for w, h, s, n in FAST_SIZES:
        fast = methods(s, None, threads, "fast", "fast ")
        default = [m for m in methods(s, None, threads) if m.label.endswith("INT8")]
        # the default model runs ~20x slower: a tenth of the frames still takes far longer than loading
        plan += [(w, h, s, n, m) for m in fast[:-1]]
        plan += [(w, h, s, n, Method(f"{p.stem}", f'mstgansr scale={s} model-location="{p}" execution-provider=cpu threads={threads}'))
                 for p in extra if int(read_metadata(p)["scale"]) == s]  # fmt: skip
        plan += [(w, h, s, n // 10, Method(m.label.replace("mstgansr ", "mstgansr default "), m.fragment)) for m in default]
        plan += [(w, h, s, n, fast[-1])]
    steady_for = {m.label for *_, m in plan if "default" not in m.label and "lanczos" not in m.label}
    for r in range(rounds):
        for w, h, s, n, m in plan:
            fps, mib = run_once(m, make_frames(w, h, n, work), w, h, s, n, env, work)
            steady = float("nan")
            if m.label in steady_for:
                # twice the frames: the extra n frames' time is the streaming rate, start-up excluded
                fps2, _ = run_once(m, make_frames(w, h, 2 * n, work), w, h, s, 2 * n, env, work)
                steady = n / (2 * n / fps2 - n / fps)
            rows.setdefault((w, h, s, m.label), []).append((fps, mib, steady))
            print(f"round {r + 1}: {m.label} {w}x{h} x{s}: {fps:.2f} frames/s, {mib:.0f} MiB, steady {steady:.2f} frames/s",
                  flush=True)  # fmt: skip
    return [{"size": f"{w}x{h} x{s}", "method": label, "fps": statistics.median(v[0] for v in vals),
             "mib": statistics.median(v[1] for v in vals), "steady": statistics.median(v[2] for v in vals)}
            for (w, h, s, label), vals in rows.items()]  # fmt: skip


def markdown(table: list[dict], batches: list[dict], bigs: list[dict], rounds: int, threads: int) -> str:
    sizes = list(dict.fromkeys(r["size"] for r in table))
    labels = list(dict.fromkeys(r["method"] for r in table))
    cell = {(r["size"], r["method"]): r for r in table}
    lines = ["| input, scale | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for sz in sizes:
        cells = [_cell(cell[(sz, m)]) if (sz, m) in cell else "-" for m in labels]
        lines.append(f"| {sz} | " + " | ".join(cells) + " |")
    if not batches:  # the --fast table
        return _head(rounds, threads) + "\n\n" + "\n".join(lines) + "\n"
    w, h, s, n = BATCH_SIZE
    lines += ["", f"batch-size sweep, mstgansr INT8 at {w}x{h} x{s} ({n} frames):", "",
              "| batch-size | frames/s | peak MiB |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {b['batch']} | {b['fps']:.2f} | {b['mib']:.0f} |" for b in batches]
    if bigs:
        w, h, s, n = BIG
        lines += ["", f"{w}x{h} x{s} ({n} frames, one run; automatic tiles within the memory bound):", "",
                  "| method | frames/s | whole run | peak MiB |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {b['method']} | {b['fps']:.3f} | {b['secs']:.0f} s | {b['mib']:.0f} |" for b in bigs]
    return _head(rounds, threads) + "\n\n" + "\n".join(lines) + "\n"


def _cell(r: dict) -> str:
    steady = r.get("steady", float("nan"))
    return f"{r['fps']:.2f} f/s, {r['mib']:.0f} MiB" + (f" (steady {steady:.2f})" if steady == steady else "")


def _head(rounds: int, threads: int) -> str:
    return (f"{machine()}; {threads} onnxruntime threads; {datetime.date.today()}; {rounds} round(s) alternated, "
            f"medians; frames/s = frames / whole gst-launch-1.0 process time (model loading included)")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(REPO / "models" / ".cache" / "bench"))
    ap.add_argument("--out", default=str(REPO / "docs" / "bench" / "throughput.md"))
    ap.add_argument("--readme", help="README whose <!-- bench:begin/end --> block gets the table")
    ap.add_argument("--no-peer", action="store_true", help="leave Real-ESRGAN out (no PyPI download)")
    ap.add_argument("--no-big", action="store_true", help=f"leave out the {BIG[0]}x{BIG[1]} run (minutes a frame)")
    ap.add_argument("--model", action="append", default=[], help="with --fast: another model file to time (repeatable)")
    ap.add_argument("--fast", action="store_true", help="the fast tier's table only (default --out ../docs/bench/fast-tier.md)")
    args = ap.parse_args(argv)
    if args.fast:
        text = markdown(run_fast(args.rounds, args.threads, Path(args.work), [Path(p) for p in args.model]), [], [],
                        args.rounds, args.threads)  # fmt: skip
        out = Path(args.out if args.out != ap.get_default("out") else REPO / "docs" / "bench" / "fast-tier.md")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("# The fast tier through gst-launch-1.0 (`python -m mstgan.tools.bench --fast`)\n\n" + text)
        print(text)
        return 0
    table, batches, bigs = run(args.rounds, args.threads, Path(args.work), not args.no_peer, not args.no_big)
    text = markdown(table, batches, bigs, args.rounds, args.threads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("# Throughput through gst-launch-1.0 (`make bench`)\n\n" + text)
    print(text)
    if args.readme:
        readme = Path(args.readme)
        s = readme.read_text()
        a, b = s.index("<!-- bench:begin -->"), s.index("<!-- bench:end -->")
        readme.write_text(s[: a + len("<!-- bench:begin -->")] + "\n" + text + s[b:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
