#!/usr/bin/env bash
# Peak resident memory of a whole gst-launch pipeline against `max-memory` (issue #29): one
# frame of videotestsrc at each size through the default model, under /usr/bin/time -v; prints
# the element's plan (its "~N MiB" line) and the measured peak RSS. Uses target/release.
#     bash scripts/memory_peak.sh > docs/bench/memory-peak.out
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH=$PWD/target/release MSTGANSR_MODEL_DIR=${MSTGANSR_MODEL_DIR:-$PWD/models}
[ -f target/release/libgstmstgansr.so ] || { echo "build first: cargo build --release --lib" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time: apt-get install time" >&2; exit 1; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(date -u +%F)"
for spec in "1920 1080 2 1024" "4096 2160 2 2048" "3840 2160 4 5120" "${EXTRA:-}"; do
    [ -n "$spec" ] || continue
    set -- $spec
    log=$(mktemp)
    GST_DEBUG=mstgansr:4 /usr/bin/time -v gst-launch-1.0 -q videotestsrc num-buffers=1 \
        ! "video/x-raw,width=$1,height=$2,framerate=25/1" ! mstgansr scale="$3" max-memory="$4" \
        ! fakesink >"$log" 2>&1 || true
    plan=$(grep -o '[0-9]*x[0-9]*: [0-9]* tile(s).*MiB' "$log" | head -1)
    rss=$(awk '/Maximum resident/ {print int($6/1024)}' "$log")
    wall=$(awk '/Elapsed \(wall/ {print $8}' "$log")
    printf '%sx%s x%s max-memory=%s: plan "%s"; peak RSS %s MiB (%s of the limit); %s wall\n' \
        "$1" "$2" "$3" "$4" "$plan" "$rss" "$(awk -v r="$rss" -v m="$4" 'BEGIN {printf "%.0f%%", 100*r/m}')" "$wall"
    grep -E "ERROR|WARN" "$log" | grep -v "^0:.*DEBUG" | head -3 || true
    rm -f "$log"
done
