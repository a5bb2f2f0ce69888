#!/usr/bin/env bash
# One GPU training burst on the device machine (H100/H200, its own torch, no internet).
#
# Here, once per session:   make gpu-pack      (writes .gpu/pack.npz and .gpu/lpips/alexnet.npz)
# Then with the device tool: run(command="bash models/gpu/burst.sh 8 x4_stage1 x3_stage1",
#                                carry=[".gpu"], timeout_s=600)
# Each named run resumes from the committed models/checkpoints/<run>.pt; the runs train side by
# side on the one GPU (these small models leave most of an H100 idle) for <minutes>, validate
# (PSNR-Y, LPIPS-alex on the held-out sequences) and write last.pt, best.pt, log.csv and
# train.out to $OUT/<run>/. Copy them back: cp <files_at>/<run>/last.pt models/checkpoints/<run>.pt
# (after checking the log), and append log.csv to models/logs/<run>.csv.
#
# The pack has no room for VGG16 (57 MB), so GPU bursts train without the LPIPS-VGG term
# (w_perceptual=0; the fidelity stage uses a tiny weight anyway). Validation uses LPIPS-alex.
set -euo pipefail
MINUTES=${1:-8}
shift || true
RUNS=("${@:-x4_stage1}")
DEVICE=${DEVICE:-cuda}
# committed stage-1 runs finished their cosine on CPU: a burst continues each as a warm restart
# whose cosine is refitted to end within the burst (--anneal-in-time); TOTAL only seeds it
TOTAL=${TOTAL:-20000}
OUT=${OUT:-/tmp/mstgan-burst-out}
cd "$(dirname "$0")/.."
export MSTGAN_CACHE="$PWD/../.gpu"
burst() {
  local run=$1 dir="runs/burst-$1" out="$OUT/$1"
  mkdir -p "$dir" "$out"
  if [ -f "checkpoints/$run.pt" ]; then cp "checkpoints/$run.pt" "$dir/last.pt"; fi
  local rc=0
  PYTHONUNBUFFERED=1 python3 -m mstgan.train --opt "options/$run.json" --device "$DEVICE" --out "$dir" \
    --max-minutes "$MINUTES" --anneal-in-time --threads 4 --set datapack='"../.gpu/pack.npz"' w_perceptual=0 batch=32 \
    lr_patch=48 total_steps="$TOTAL" val_every=250 ckpt_every=250 >"$out/train.out" 2>&1 || rc=$?
  cp "$dir/last.pt" "$dir/log.csv" "$out/" || true
  if [ -f "$dir/best.pt" ]; then cp "$dir/best.pt" "$out/"; fi
  echo "[$run] exit $rc: $(ls "$out")"
  tail -n 4 "$out/train.out"
  return $rc
}
pids=()
for run in "${RUNS[@]}"; do
  burst "$run" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
