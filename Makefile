# The two commands of the README: `make run` and `make test`. Both install missing Debian packages
# (scripts/install-deps), configure a Release build in $(BUILD) and build it with all cores.
# `make run` runs dsk-run's default: the tiny DeepSeek-V3-shaped model (docs/deepseek.md) on the
# GPU when one is usable, else on the CPU; RUN_ARGS adds options (e.g. RUN_ARGS="--dtype fp8").
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=
RUN_ARGS ?=

.PHONY: run test build configure deps clean

run: build
	$(BUILD)/bin/dsk-run $(RUN_ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

deps:
	scripts/install-deps

clean:
	rm -rf $(BUILD)
