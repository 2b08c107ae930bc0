SHELL := /bin/bash
# stm-analyze: build, run, test and benchmark. `make run` and `make test` do all the set-up,
# installing the Debian packages the build needs when they are missing (as root, through apt-get).

SWIFT      ?= swift
BIN        := .build/release/stm-analyze
APT_PKGS   := libopenblas-dev libpng-dev libjpeg-dev libfreetype-dev fonts-dejavu-core pkg-config
PHOTOS     := assets/photos

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
	$(SWIFT) build -c release --product stm-analyze

# The default job: classify the shipped photos with an untrained preset of each built mixer.
run: build
	@mkdir -p outputs/classify
	$(BIN) classify --model unified_convnext_tiny --init-layer-scale 1 --images $(PHOTOS) --top 5 \
	  --json outputs/classify/unified_convnext_tiny.json --logits outputs/classify/unified_convnext_tiny_logits.safetensors
	@echo "outputs written to outputs/classify/"

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build 2>&1 | tee .build/test.log; exit $${PIPESTATUS[0]}

clean:
	rm -rf .build outputs/*
	touch outputs/.gitkeep
