#!/usr/bin/env bash
# The library command against upscale_file (issue #33): a library of 4 short clips cut from the
# bundled sample (looped to 120 frames each, 30 fps, a keyframe every second), x2 fidelity on CPU.
# Prints: upscale_file one clip after the other vs the library on a local Ray (wall time); a
# library run killed at about half its chunks and rerun (the rerun's time against a full run);
# and the seam check (chunked vs unchunked, lossless, max difference). Run it on an idle machine.
#     bash scripts/library_bench.sh > docs/bench/library.md
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH=$PWD/target/release MSTGANSR_MODEL_DIR=${MSTGANSR_MODEL_DIR:-$PWD/models}
cargo build --release --lib --example upscale_file -q
PY=.venv/bin/python
FF=$($PY -c "import imageio_ffmpeg as i; print(i.get_ffmpeg_exe())")
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/lib"
for i in 0 1 2 3; do
    "$FF" -loglevel error -stream_loop 3 -i examples/data/tennis-214x120.mp4 -ss "0.$i" -frames:v 120 \
        -c:v libx264 -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p -an "$w/lib/clip$i.mp4"
done
echo "# The library command against upscale_file (scripts/library_bench.sh)"
echo
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(date -u +%F)."
echo "4 clips of 120 frames (214x120, from the bundled sample), x2 fidelity, CPU provider, x264 CRF 18."
echo
t() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>"$w/err" || { echo "failed: $*" >&2; tail -5 "$w/err" >&2; exit 1; }; echo "$(date +%s.%N) - $s" | bc; }
lib() { $PY -m mstgansr_library "$w/lib" --scale 2 --variant fidelity --chunk-seconds 1 "$@"; }
for round in 1 2; do
    rm -rf "$w/seq" "$w/ray"; mkdir -p "$w/seq"
    seq_s=$(t bash -c "for f in $w/lib/*.mp4; do target/release/examples/upscale_file \$f $w/seq/\$(basename \$f) --scale 2 --variant fidelity --provider cpu || exit 1; done")
    ray_s=$(t lib --out "$w/ray")
    echo "round $round: upscale_file one after the other ${seq_s%.*}.$(echo "$seq_s" | cut -d. -f2 | cut -c1) s; library on local Ray (16 chunks, 2 tasks at a time) ${ray_s%.*}.$(echo "$ray_s" | cut -d. -f2 | cut -c1) s"
done
# killed at about half of the 16 chunks, then rerun
rm -rf "$w/resume"
$PY -m mstgansr_library "$w/lib" --out "$w/resume" --scale 2 --variant fidelity --chunk-seconds 1 >/dev/null 2>&1 &
pid=$!
while [ "$(cat "$w"/resume/.mstgansr-library/*/manifest.json 2>/dev/null | grep -c '"seconds"' || true)" -lt 8 ]; do
    kill -0 $pid 2>/dev/null || { echo "the library run ended before half its chunks" >&2; exit 1; }
    sleep 0.1
done
kill -9 $pid; wait $pid 2>/dev/null || true
.venv/bin/ray stop --force >/dev/null 2>&1 || true
done_before=$(cat "$w"/resume/.mstgansr-library/*/manifest.json | grep -c '"seconds"')
rerun_s=$(t lib --out "$w/resume")
echo "killed after $done_before of 16 chunks; the rerun took $(printf %.1f "$rerun_s") s (a whole run: the library rows above)"
# seams: chunked vs unchunked, both lossless
lib --out "$w/c" --quantizer 0 >/dev/null 2>&1
$PY -m mstgansr_library "$w/lib" --out "$w/u" --scale 2 --variant fidelity --chunk-seconds 1000 --quantizer 0 >/dev/null 2>&1
$PY - "$w" <<'PYEOF'
import subprocess, sys, numpy as np, imageio_ffmpeg
w = sys.argv[1]
def frames(p):
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", p, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(120, -1).astype(int)
d = max(int(np.abs(frames(f"{w}/c/clip{i}.mp4") - frames(f"{w}/u/clip{i}.mp4")).max()) for i in range(4))
print(f"seams: 4 clips x 4 chunks, lossless, chunked vs unchunked: max difference {d}/255 over all 480 frames")
PYEOF
