"""Learning curve PNG from a run's log.csv: training losses and validation PSNR-Y / LPIPS-alex.

    python -m mstgan.tools.plot runs/x4_stage1/log.csv --out ../docs/learning-curve-x4-stage1.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_log(path: str | Path) -> list[dict]:
    rows: dict[int, dict] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            step = int(float(r["step"]))
            # a resumed run repeats the steps after its checkpoint: the later rows win
            rows.setdefault(step, {}).update({k: float(v) for k, v in r.items() if v not in ("", None) and k != "event"})
    return [rows[k] for k in sorted(rows)]


def plot(log: str | Path, out: str | Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("pixel", "perceptual", "flow", "temporal", "adversarial"):
        pts = [(r["step"], r[key]) for r in rows if key in r and r[key] != 0]
        if pts:
            a.plot(*zip(*pts), label=key)
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_title("training losses (weighted)")
    a.legend()
    val = [(r["step"], r["val_psnr"], r["val_lpips"]) for r in rows if "val_psnr" in r]
    if val:
        s, p, lp = zip(*val)
        b.plot(s, p, "o-", color="C0", label="PSNR-Y")
        b.set_ylabel("validation PSNR-Y (dB)", color="C0")
        b2 = b.twinx()
        b2.plot(s, lp, "s--", color="C3", label="LPIPS-alex")
        b2.set_ylabel("validation LPIPS-alex", color="C3")
    b.set_xlabel("step")
    b.set_title("validation (held-out sequences)")
    fig.suptitle(title or str(log))
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title")
    args = ap.parse_args(argv)
    print(f"wrote {plot(args.log, args.out, args.title)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
