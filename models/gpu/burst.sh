#!/usr/bin/env bash
# One GPU training burst on the device machine (H100/H200, its own torch, no internet).
#
# Here, once per session:   make gpu-pack      (writes .gpu/pack.npz and .gpu/lpips/*.npz)
# Then with the device tool: run(command="bash models/gpu/burst.sh 7.5 x4_t7_stage2 x4_t7_stage1",
#                                carry=[".gpu"], timeout_s=600)
# (pack + LPIPS weights + the starting checkpoints must stay under the tool's 64 MiB: run
# `bash models/gpu/stage.sh aside <the same run specs>` before the call, `... back` after it)
# A run is <options> or <label>=<options>[,key=value...] (overrides in JSON, e.g.
# "x4_gan=x4_stage2,w_perceptual=1.0,photo_share=0.3"). A run whose label has a committed
# models/checkpoints/<label>.pt resumes it; otherwise it starts as its options say (stage 2:
# init_from the stage-1 checkpoint). The runs train side by side on the one GPU (these small
# models leave most of an H100 idle) for <minutes>, validate (PSNR-Y, LPIPS-alex on the held-out
# sequences) and write $OUT/<label>/last.pt (full resume state), $OUT/<label>/best.pt (generator
# EMA weights only: what export needs) and $OUT/logs.tar (<label>.csv, <label>.out): the device
# tool brings back at most 8 files of 16 MiB. Copy them back after checking the log:
# cp <files_at>/<label>/last.pt models/checkpoints/<label>.pt; append <label>.csv to
# models/lab/logs/<label>.csv.
#
# Stage-1 runs train without the LPIPS-VGG term (w_perceptual=0: the fidelity stage uses a tiny
# weight anyway, and VGG would halve the step rate); stage 2 uses it (VGG16 travels as int8).
set -euo pipefail
MINUTES=${1:-8}
shift || true
RUNS=("${@:-x4_stage1}")
DEVICE=${DEVICE:-cuda}
# committed stage-1 runs finished their cosine on CPU: a burst continues each as a warm restart
# whose cosine runs over the burst's wall time (--anneal-in-time); TOTAL is then unused
TOTAL=${TOTAL:-20000}
OUT=${OUT:-/tmp/mstgan-burst-out}
cd "$(dirname "$0")/.."
export MSTGAN_CACHE="$PWD/../.gpu"
burst() {
  local spec=$1 label opts head=${1%%,*}
  if [[ $head == *=* ]]; then label=${head%%=*} opts=${spec#*=}; else label=$head opts=$spec; fi
  local -a parts sets
  IFS=, read -ra parts <<<"$opts"
  local run=${parts[0]} dir="runs/burst-$label" out="$OUT/$label"
  sets=("${parts[@]:1}")
  # shipped recipes in options/, experiment arms in lab/options/
  local optf="options/$run.json"
  if [ ! -f "$optf" ]; then optf="lab/options/$run.json"; fi
  if [ ! -f "$optf" ]; then echo "[$label] error: no options/$run.json or lab/options/$run.json" >&2; return 2; fi
  # crops are cut on the GPU (device_sampler): the CPU sampler capped earlier bursts at ~11 steps/s
  local stage_sets=(w_perceptual=0 batch=64 lr_patch=64 device_sampler=true)
  if grep -q '"stage": 2' "$optf"; then stage_sets=(batch=16 lr_patch=48 device_sampler=true); fi
  mkdir -p "$dir" "$out"
  if [ -f "checkpoints/$label.pt" ]; then cp "checkpoints/$label.pt" "$dir/last.pt"; fi
  local rc=0
  PYTHONUNBUFFERED=1 python3 -m mstgan.training.train --opt "$optf" --device "$DEVICE" --out "$dir" \
    --max-minutes "$MINUTES" --anneal-in-time --threads 4 --set datapack='"../.gpu/pack.npz"' "${stage_sets[@]}" \
    total_steps="$TOTAL" val_every=250 ckpt_every=250 name="\"$label\"" "${sets[@]}" \
    >"$OUT/logs/$label.out" 2>&1 || rc=$?
  cp "$dir/last.pt" "$out/" || true
  cp "$dir/log.csv" "$OUT/logs/$label.csv" || true
  if [ -f "$dir/best.pt" ]; then
    python3 -c 'import sys, torch
st = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
torch.save({k: st[k] for k in ("options", "step", "best", "val_id", "ema") if k in st}, sys.argv[2])' \
      "$dir/best.pt" "$out/best.pt" || rc=1
  fi
  echo "[$label] exit $rc: $(ls "$out")"
  tail -n 4 "$OUT/logs/$label.out"
  return $rc
}
mkdir -p "$OUT/logs"
pids=()
for run in "${RUNS[@]}"; do
  burst "$run" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
tar -cf "$OUT/logs.tar" -C "$OUT" logs && rm -r "$OUT/logs"
exit $rc
