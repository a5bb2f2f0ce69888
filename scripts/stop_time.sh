#!/usr/bin/env bash
# How long a 4K pipeline takes to stop when Ctrl-C arrives in the middle of a frame (issue #29):
# gst-launch-1.0 gets SIGINT after SECONDS (default 25, inside the first frame on a CPU) and the
# time until it has exited is printed. Uses the release plugin in target/release.
#     bash scripts/stop_time.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
after=${1:-25}
export GST_PLUGIN_PATH=$PWD/target/release
[ -f target/release/libgstmstgansr.so ] || { echo "build first: cargo build --release --lib" >&2; exit 1; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for spec in "4096 2160 2 max-memory=2048" "3840 2160 4"; do
    set -- $spec
    log=$(mktemp)
    start=$(date +%s.%N)
    timeout -s INT "$after" gst-launch-1.0 videotestsrc num-buffers=3 \
        ! "video/x-raw,width=$1,height=$2,framerate=25/1" ! mstgansr scale="$3" ${4:-} ! fakesink >"$log" 2>&1 || true
    end=$(date +%s.%N)
    printf '%sx%s x%s %s: SIGINT after %s s, exited %.2f s later\n' "$1" "$2" "$3" "${4:-}" "$after" \
        "$(echo "$end - $start - $after" | bc)"
    grep -E "ERROR|Interrupt" "$log" || true
    rm -f "$log"
done
