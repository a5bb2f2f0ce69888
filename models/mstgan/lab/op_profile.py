"""Where an ONNX model's CPU time goes: onnxruntime's profiler, summed per operator type.

    python -m mstgan.lab.op_profile mstgan-x4-fidelity.onnx [--hw 144 180] [--runs 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np


def op_times(model: str | Path, hw: tuple[int, int] = (144, 180), runs: int = 4, threads: int = 2) -> dict[str, float]:
    """Mean milliseconds per run of each operator type (whole-graph models: input ``frames``)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "prof")
        sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        window = int(sess.get_modelmeta().custom_metadata_map["window"])
        x = np.random.default_rng(0).random((1, window, 3, *hw), dtype=np.float32)
        for _ in range(runs):
            sess.run(None, {"frames": x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1000 / runs
    return dict(per_op.most_common())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--hw", type=int, nargs=2, default=[144, 180])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    times = op_times(args.model, tuple(args.hw), args.runs, args.threads)
    total = sum(times.values())
    for op, ms in list(times.items())[:12]:
        print(f"{op:20s} {ms:8.1f} ms  {100 * ms / total:5.1f} %")
    print(f"{'total (kernels)':20s} {total:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
