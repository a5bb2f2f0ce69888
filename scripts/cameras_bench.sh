#!/usr/bin/env bash
# N live 25 fps 320x240 cameras at x2 in one process (issue #32): one onnxruntime session each,
# one session shared by the N instances (shared-engine=true), and the shared session with the
# cameras' windows batched into one inference (batch-size=N, batch-wait=BATCH_WAIT ms, 20 by
# default), alternated; each run is its
# own process under /usr/bin/time -v for its peak RSS. Per run: frames/s shown per camera, share
# from the model, delay, CPU. Run it on an idle machine; SECONDS_PER_RUN / ROUNDS / VARIANT override.
#     bash scripts/cameras_bench.sh > docs/bench/cameras.md
set -euo pipefail
cd "$(dirname "$0")/.."
export MSTGANSR_MODEL_DIR=${MSTGANSR_MODEL_DIR:-$PWD/models}
cargo build --release --example live_bench -q
secs=${SECONDS_PER_RUN:-30}
rounds=${ROUNDS:-2}
variant=${VARIANT:-fast-compressed}
echo "# N cameras in one process, shared engine against one session each (scripts/cameras_bench.sh)"
echo
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(date -u +%F);"
echo "live 320x240 25 fps cameras -> x2, variant=$variant, late-frames=resize; $secs s per run, $rounds rounds alternated."
echo
wait_ms=${BATCH_WAIT:-20}
echo "| round | cameras | sessions | frames/s per camera | from the model | delay median / max ms | CPU % of a core | peak RSS MiB | engine users | windows an inference |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
    for n in 1 2 4; do
        for mode in separate shared batched; do
            shared=true batch=1
            [ "$mode" = separate ] && shared=false
            [ "$mode" = batched ] && batch=$n
            [ "$mode" = batched ] && [ "$n" = 1 ] && continue
            log=$(mktemp)
            /usr/bin/time -v target/release/examples/live_bench --recipes d --variants "$variant" --scale 2 \
                --width 320 --height 240 --fps 25 --seconds "$secs" --rounds 1 --cameras "$n" --shared "$shared" \
                --batch "$batch" --batch-wait "$wait_ms" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
            row=$(grep -m1 '^round 1' "$log")
            fps=$(sed -E 's/.*: ([0-9.]+) frames\/s shown.*/\1/' <<<"$row")
            share=$(sed -E 's/.*, ([0-9.]+) % from the model.*/\1/' <<<"$row")
            delay=$(sed -E 's/.*delay median ([0-9]+) ms max ([0-9]+) ms.*/\1 \/ \2/' <<<"$row")
            cpu=$(sed -E 's/.*CPU ([0-9]+) %.*/\1/' <<<"$row")
            users=$(sed -E 's/.*engine users ([0-9]+).*/\1/' <<<"$row")
            per=$(sed -E 's/.*windows a batch ([0-9.]+).*/\1/' <<<"$row")
            rss=$(awk '/Maximum resident/ {print int($6/1024)}' "$log")
            [ "$mode" = batched ] && mode="shared, batch $n, wait $wait_ms ms"
            echo "| $round | $n | $mode | $fps | $share % | $delay | $cpu | $rss | $users | $per |"
            rm -f "$log"
        done
    done
done
