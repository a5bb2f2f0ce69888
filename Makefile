# The README's two commands: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN_DIR := $(CURDIR)/target/release
export GST_PLUGIN_PATH := $(PLUGIN_DIR)
# the bundled models are found next to the source tree; onnxruntime from the project venv
export MSTGANSR_MODEL_DIR := $(CURDIR)/models

.PHONY: setup setup-demo setup-library build demo test test-data test-rust test-python test-library test-python-data test-meson compare bench fixtures gpu-pack fmt lint

setup:
	bash scripts/setup.sh

# the demo runs the plugin only: GStreamer and onnxruntime, no torch
setup-demo:
	bash scripts/setup.sh --demo

# the library command: the plugin, onnxruntime, Ray and ffmpeg, no torch
setup-library:
	bash scripts/setup.sh --library
	cargo build --release --lib

build: setup
	cargo build --release

# Upscale the sample clip x4 with the bundled default model on CPU -> out/tennis-x4.mp4
demo: setup-demo
	cargo build --release
	mkdir -p out
	gst-launch-1.0 -e filesrc location=examples/data/tennis-214x120.mp4 ! decodebin ! videoconvert ! \
	  queue ! mstgansr scale=4 execution-provider=cpu ! queue ! videoconvert ! \
	  x264enc speed-preset=medium pass=qual quantizer=18 ! mp4mux ! filesink location=out/tennis-x4.mp4
	@echo "wrote out/tennis-x4.mp4 (856x480, 30 frames)"

# Vid4 comparison through GStreamer (all methods, all scales) -> docs/results.md, docs/compare/
compare: build
	cd models && ../$(PY) -m mstgan.tools.compare --out ../docs --readme ../docs/quality.md

# frames/s and peak RSS through gst-launch at five sizes, every scaler, alternated -> docs/bench/throughput.md
bench: build
	cd models && ../$(PY) -m mstgan.tools.bench --readme ../docs/quality.md

fixtures: setup
	cd models && ../$(PY) -m mstgan.deploy.fixtures

# the launch and example tests run the built plugin and example programs: build them first
# (cargo test alone leaves the cdylib in target/debug/deps)
test-rust: setup
	cargo build --lib --examples
	cargo test --all-targets

# the tests that need only the repository; those that read the evaluation and training data in
# ../shared (marked `shared`, see models/tests/conftest.py) are `make test-data`
test-python: setup
	cd models && ../$(PY) -m pytest -q -m "not shared" tests

test-python-data: setup
	cd models && ../$(PY) -m pytest -q -m shared tests

test-meson: setup
	rm -rf builddir
	meson setup builddir --prefix=$(CURDIR)/builddir/install
	meson compile -C builddir
	meson test -C builddir --print-errorlogs

# the library command end to end (local Ray, ffmpeg, the debug plugin with fixture models)
test-library: setup
	cargo build --lib
	GST_PLUGIN_PATH=$(CURDIR)/target/debug $(PY) -m pytest -q library/tests

test: test-rust test-python test-library test-meson

# the tests that need ../shared/data (Vid4, the training clips): CI runs both targets
test-data: test-python-data

# GPU burst inputs (see models/gpu/burst.sh), kept out of git: video frames + still photos, and
# LPIPS weights made compact for the 64 MiB transfer (AlexNet fp16, VGG16 int8 per channel)
gpu-pack:
	bash scripts/setup.sh --train
	cd models && ../$(PY) -m mstgan.data.datapack --out ../.gpu/pack.npz --budget-mib 28 --photos
	cd models && ../$(PY) -m mstgan.losses.lpips --compact ../.gpu/lpips

fmt:
	cargo fmt

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
