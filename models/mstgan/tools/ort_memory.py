"""What one inference really allocates in onnxruntime (issue #29): for each ONNX file, the peak
resident memory a CPU session adds when it runs one window (or, for a feature-cache part, one
frame / one window of features) at two tile sizes, with the session options the element uses
(CPU arena on, memory pattern off). Each measurement runs in a fresh process (peak RSS only
grows), and the slope between the sizes gives bytes per low-resolution pixel, which the
element's memory plan (``src/memory.rs``) must not underestimate.

    python -m mstgan.tools.ort_memory [--sizes 160 320] [--pattern] FILE.onnx ...
    python -m mstgan.tools.ort_memory --speed 360 FILE.onnx    # pattern on vs off, alternated
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


CHILD = r"""
import json, resource, sys
import numpy as np, onnxruntime as ort
path, size, pattern = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
so = ort.SessionOptions()
so.enable_mem_pattern = pattern
so.intra_op_num_threads = 2
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
feeds = {}
for i in s.get_inputs():
    shape = []
    for d in i.shape:
        if isinstance(d, int):
            shape.append(d)
        elif d == "n":
            shape.append(1)
        else:  # h, w at full size; h1/w1 and h2/w2 are the pyramid's halvings (ceil)
            level = int(d[1:]) if d[1:].isdigit() else 0
            v = size
            for _ in range(level):
                v = (v + 1) // 2
            shape.append(v)
    feeds[i.name] = np.random.rand(*shape).astype(np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(2):
    s.run(None, feeds)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"loaded_kib": before, "peak_kib": after}))
"""


def measure(path: str, size: int, pattern: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, path, str(size), "1" if pattern else "0"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(path: str, size: int, rounds: int = 6) -> None:
    import statistics
    import time

    import numpy as np
    import onnxruntime as ort

    sessions = {}
    for pattern in (True, False):
        so = ort.SessionOptions()
        so.enable_mem_pattern = pattern
        so.intra_op_num_threads = 2
        sessions[pattern] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    i = sessions[True].get_inputs()[0]
    feeds = {i.name: np.random.rand(1, i.shape[1], 3, size, size).astype(np.float32)}
    times: dict[bool, list[float]] = {True: [], False: []}
    for s in sessions.values():
        s.run(None, feeds)
    for _ in range(rounds):
        for pattern, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feeds)
            times[pattern].append(time.perf_counter() - t)
    for pattern, t in times.items():
        print(f"{path} {size}x{size}: memory pattern {'on ' if pattern else 'off'} median "
              f"{statistics.median(t) * 1000:.0f} ms over {rounds} runs, alternated")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--sizes", type=int, nargs=2, default=[160, 320], help="two square tile sizes, LR px")
    ap.add_argument("--pattern", action="store_true", help="memory pattern on (onnxruntime's default)")
    ap.add_argument("--json", help="write the table here")
    ap.add_argument("--speed", type=int, metavar="PX", help="time runs with the memory pattern on and off instead")
    args = ap.parse_args(argv)
    if args.speed:
        for f in args.files:
            speed(f, args.speed)
        return 0
    a, b = args.sizes
    print(f"# {'memory pattern on' if args.pattern else 'memory pattern off'}, CPU arena on, 2 threads; "
          f"peak RSS added by two runs at {a}x{a} and {b}x{b} LR px")  # fmt: skip
    print(f"{'file':48s} {'loaded MiB':>10s} {f'+MiB @{a}':>10s} {f'+MiB @{b}':>10s} {'B/px':>7s} {'fixed MiB':>9s}")
    rows = []
    for f in args.files:
        m = [measure(f, s, args.pattern) for s in (a, b)]
        grow = [(x["peak_kib"] - x["loaded_kib"]) * 1024 for x in m]
        per_px = (grow[1] - grow[0]) / (b * b - a * a)
        fixed = grow[0] - per_px * a * a
        rows.append({"file": f, "loaded_bytes": m[0]["loaded_kib"] * 1024, "grow": grow,
                     "bytes_per_px": per_px, "fixed_bytes": fixed})  # fmt: skip
        print(f"{f:48s} {m[0]['loaded_kib'] / 1024:10.0f} {grow[0] / 2**20:10.0f} {grow[1] / 2**20:10.0f} "
              f"{per_px:7.0f} {fixed / 2**20:9.0f}", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
