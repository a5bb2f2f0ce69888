#!/usr/bin/env bash
# Before a device call, keep in the working tree only what a burst needs, so the tree plus the
# carried .gpu/ stay under the device tool's 64 MiB; afterwards put everything back.
#
#   bash models/gpu/stage.sh aside x4_t7_stage2 "x4_t7_stage1,lr_g=2e-4"   # the burst's run specs
#   run(command="bash models/gpu/burst.sh 7.5 x4_t7_stage2 ...", carry=[".gpu"])
#   bash models/gpu/stage.sh back
#
# "aside" deletes the committed ONNX files, the fixtures and the checkpoints that no run resumes
# or starts from (all tracked: "back" restores them with git checkout), and moves the LPIPS-VGG
# weights to .gpu-aside/ when no run is a stage-2 run. It refuses if any of those files has
# uncommitted changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-}
shift || true
if [ "$mode" = back ]; then
  git checkout -- models/*.onnx tests/fixtures models/checkpoints
  if [ -f .gpu-aside/vgg16.npz ]; then mv .gpu-aside/vgg16.npz .gpu/lpips/; fi
  rmdir .gpu-aside 2>/dev/null || true
  git status --short
  exit 0
fi
if [ "$mode" != aside ] || [ $# -eq 0 ]; then
  echo "usage: $0 aside <run spec>... | $0 back" >&2
  exit 2
fi
if ! git diff --quiet -- models/*.onnx tests/fixtures models/checkpoints; then
  echo "error: models/ has uncommitted ONNX/fixture/checkpoint changes: commit them first" >&2
  exit 1
fi
keep=() stage2=0
for spec in "$@"; do
  head=${spec%%,*}
  if [[ $head == *=* ]]; then label=${head%%=*} opts=${spec#*=}; else label=$head opts=$spec; fi
  run=${opts%%,*}
  optf="models/options/$run.json"
  if [ ! -f "$optf" ]; then optf="models/lab/options/$run.json"; fi
  # a run resumes its own checkpoint if there is one (burst.sh), else starts from init_from
  if [ -f "models/checkpoints/$label.pt" ]; then
    keep+=("models/checkpoints/$label.pt")
  else
    init=$(sed -n 's/.*"init_from": *"\([^"]*\)".*/\1/p' "$optf")
    if [ -n "$init" ]; then keep+=("models/$init"); fi
  fi
  if grep -q '"stage": 2' "$optf"; then stage2=1; fi
done
for f in models/checkpoints/*.pt; do
  if [[ " ${keep[*]} " != *" $f "* ]]; then rm "$f"; fi
done
rm -f models/*.onnx
rm -rf tests/fixtures
if [ $stage2 = 0 ] && [ -f .gpu/lpips/vgg16.npz ]; then
  mkdir -p .gpu-aside
  mv .gpu/lpips/vgg16.npz .gpu-aside/
fi
total=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s}' || true)
gpu=$(du -sb .gpu | cut -f1)
echo "kept: $(ls models/checkpoints 2>/dev/null | tr '\n' ' ')"
echo "travels: $(( (total + gpu) / 1048576 )) MiB (tree $(( total / 1048576 )), .gpu $(( gpu / 1048576 ))); the limit is 64"
