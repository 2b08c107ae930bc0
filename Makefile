SHELL := /bin/bash
# stm-analyze: build, run, test and benchmark. `make run` and `make test` do all the set-up,
# installing the Debian packages the build needs when they are missing (as root, through apt-get).

SWIFT      ?= swift
BIN        := .build/release/stm-analyze
APT_PKGS   := libopenblas-dev libpng-dev libjpeg-dev libfreetype-dev fonts-dejavu-core pkg-config
PHOTOS     := assets/photos
# Vector width for Swift's SIMD code: the best this CPU runs (the binary is built where it runs).
CPU        := $(shell grep -q -w avx512bw /proc/cpuinfo 2>/dev/null && echo skylake-avx512 || \
                (grep -q -w avx2 /proc/cpuinfo 2>/dev/null && echo haswell || echo x86-64))
SWIFTFLAGS := -c release -Xswiftc -target-cpu -Xswiftc $(CPU)

.PHONY: all deps build run test bench clean

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

# The default job: the ERF of every stage for an untrained micro preset of each mixer, on the four
# shipped photos (layer scale 1, so that the untrained blocks mix at all), then a classification.
MIXERS := convnext swin halo pvt dcn_v3
run: build
	@for m in $(MIXERS); do \
	  $(BIN) erf --model unified_$${m}_micro --init-layer-scale 1 --images $(PHOTOS) --out outputs/erf/unified_$${m}_micro || exit 1; \
	done
	@mkdir -p outputs/classify
	$(BIN) classify --model unified_convnext_micro --init-layer-scale 1 --images $(PHOTOS) --top 5 \
	  --json outputs/classify/unified_convnext_micro.json
	@echo; echo "ERF pictures: outputs/erf/<model>/erf_stages.png and erf_stage{1,2,3,4}.png (JSON: erf.json)"

test: deps
	$(SWIFT) build $(SWIFTFLAGS) -Xswiftc -enable-testing --build-tests
	$(SWIFT) test $(SWIFTFLAGS) -Xswiftc -enable-testing --skip-build 2>&1 | tee .build/test.log; exit $${PIPESTATUS[0]}

clean:
	rm -rf .build outputs/*
	touch outputs/.gitkeep
