#!/usr/bin/env bash
# One GPU training burst on the device machine (H100/H200, its own torch, no internet).
#
# Here, once per session:   make gpu-pack      (writes .gpu/pack.npz and .gpu/lpips/alexnet.npz)
# Then with the device tool: run(command="bash models/gpu/burst.sh x4_stage1 8", carry=[".gpu"],
#                                timeout_s=600)
# It resumes from the committed models/checkpoints/<run>.pt, trains for <minutes> on CUDA,
# validates (PSNR-Y, LPIPS-alex on the held-out sequences) and writes last.pt, best.pt and
# log.csv to $OUT. Copy them back: cp <files_at>/last.pt models/checkpoints/<run>.pt (after
# checking the log), and append log.csv to the run's log.
#
# The pack has no room for VGG16 (57 MB), so GPU bursts train without the LPIPS-VGG term
# (w_perceptual=0; the fidelity stage uses a tiny weight anyway). Validation uses LPIPS-alex.
set -euo pipefail
RUN=${1:-x4_stage1}
MINUTES=${2:-8}
DEVICE=${DEVICE:-cuda}
# the committed x4_stage1 run finished its cosine at 4800 steps: a burst continues it as a warm
# restart of the schedule up to TOTAL steps (keep TOTAL fixed across bursts)
TOTAL=${TOTAL:-20000}
OUT=${OUT:-/tmp/mstgan-burst-out}
cd "$(dirname "$0")/.."
mkdir -p "$OUT" "runs/burst-$RUN"
export MSTGAN_CACHE="$PWD/../.gpu"
if [ -f "checkpoints/$RUN.pt" ]; then cp "checkpoints/$RUN.pt" "runs/burst-$RUN/last.pt"; fi
PYTHONUNBUFFERED=1 python3 -m mstgan.train --opt "options/$RUN.json" --device "$DEVICE" --out "runs/burst-$RUN" \
  --max-minutes "$MINUTES" --set datapack='"../.gpu/pack.npz"' w_perceptual=0 batch=32 lr_patch=48 total_steps="$TOTAL" \
  val_every=250 ckpt_every=250 2>&1 | tee "$OUT/train.out"
cp "runs/burst-$RUN/last.pt" "runs/burst-$RUN/log.csv" "$OUT/"
if [ -f "runs/burst-$RUN/best.pt" ]; then cp "runs/burst-$RUN/best.pt" "$OUT/"; fi
echo "burst done: $(ls "$OUT")"
