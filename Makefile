# cocopie-keras: the two commands are `make demo` and `make test`; both set up
# everything they need on a fresh Debian 12 machine (apt + PyPI only).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
OUT    := out
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

APT_PACKAGES := g++ libhwy-dev libpthreadpool-dev libgtest-dev flatbuffers-compiler \
  libflatbuffers-dev
# The delegate's sources: delegate/ and its layer folders (abi, lr, kernels,
# tuning, graph); delegate/bench/ holds a benchmark program, not library code.
DELEGATE_DIRS := delegate $(filter-out delegate/bench,$(patsubst %/,%,$(wildcard delegate/*/)))
DELEGATE_CC := $(foreach d,$(DELEGATE_DIRS),$(wildcard $(d)/*.cc))
DELEGATE_SRCS := $(filter-out %_test.cc,$(DELEGATE_CC))
DELEGATE_HDRS := $(foreach d,$(DELEGATE_DIRS),$(wildcard $(d)/*.h))
DELEGATE_TESTS := $(filter %_test.cc,$(DELEGATE_CC))
DELEGATE_LIB := cocopie_keras/libcocopie_delegate.so
# The C++ code flatc generates from the LR schema, included by the delegate
# as "schema/cocopie_lr_generated.h" (never kept in the source tree).
LR_SCHEMA := schema/cocopie_lr.fbs
GENERATED := $(OUT)/generated
LR_HEADER := $(GENERATED)/schema/cocopie_lr_generated.h
CXXFLAGS_TEST := -std=c++17 -O1 -g -I. -I$(GENERATED) -fsanitize=address,undefined \
  -fno-omit-frame-pointer
REQUIREMENTS := $(sort $(wildcard requirements*.txt))
# Measured from a fresh clone on a machine with empty apt and pip caches.
COLD_MACHINE_DEMO_TIME := about 8 min
COLD_MACHINE_TEST_TIME := about 30 min (about 21 min once the download caches are warm)

# $(call apt_install,PACKAGES): a shell command installing those not installed.
apt_install = missing=$$(for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Test steps run by `make test` before the Python tests; fragments in mk/
# (one per topic: benchmarks, arm64, ...) add theirs with `TEST_STEPS += ...`.
TEST_STEPS := test-cc test-asan bazel
-include mk/*.mk

.PHONY: all install demo test test-cc test-asan test-python bazel bench-kernels clean

all: install

# --- set-up ------------------------------------------------------------------
# Re-checked when the Makefile changes (APT_PACKAGES may have grown); only
# missing packages are installed.
$(OUT)/.apt-stamp: Makefile
	@mkdir -p $(OUT)
	@$(call apt_install,$(APT_PACKAGES))
	@touch $@

$(VENV)/.deps-stamp: $(REQUIREMENTS) | $(OUT)/.apt-stamp
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q $(addprefix -r ,$(REQUIREMENTS))
	@touch $@

# The delegate library is built by setup.py (the same path `pip install .`
# takes); rebuilt whenever a delegate source changes.
$(DELEGATE_LIB): $(DELEGATE_SRCS) $(DELEGATE_HDRS) $(LR_SCHEMA) setup.py $(VENV)/.deps-stamp
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	@touch $@

install: $(DELEGATE_LIB)

# --- the two commands ------------------------------------------------------------
demo:
	@echo "make demo: installs what is missing (apt: $(APT_PACKAGES); PyPI:" \
	  "$(notdir $(REQUIREMENTS)) into $(VENV)), then trains, prunes, converts and runs a" \
	  "small MNIST CNN; $(COLD_MACHINE_DEMO_TIME) on a cold 2-core machine"
	@$(MAKE) --no-print-directory install
	$(VENV)/bin/cocopie demo --out $(OUT)/demo

# Each step runs in turn with its output kept in out/test-results/<step>.log;
# the last line counts the tests of each kind (tools/test_summary.py). Python
# tests run last.
TEST_LOGS := $(OUT)/test-results
test: SHELL := /bin/bash
test:
	@echo "make test: installs what is missing (apt: $(APT_PACKAGES) $(ARM64_APT_PACKAGES)" \
	  "bazel-bootstrap bazel-bootstrap-source; PyPI: $(notdir $(REQUIREMENTS)) into $(VENV);" \
	  "an arm64 sysroot of Debian .debs and aarch64 wheels), then runs every test;" \
	  "$(COLD_MACHINE_TEST_TIME) on a cold 2-core machine"
	@rm -rf $(TEST_LOGS) && mkdir -p $(TEST_LOGS)
	@set -o pipefail; for step in $(TEST_STEPS) test-python; do \
	  $(MAKE) -j$$(nproc) --no-print-directory $$step 2>&1 | tee $(TEST_LOGS)/$$step.log || \
	    { echo "make test: step $$step failed (log: $(TEST_LOGS)/$$step.log)"; exit 1; }; \
	done
	@$(PY) tools/test_summary.py $(TEST_LOGS) $(TEST_STEPS) test-python

# --- pieces ----------------------------------------------------------------------
$(LR_HEADER): $(LR_SCHEMA) | $(OUT)/.apt-stamp
	@mkdir -p $(@D)
	flatc --cpp -o $(@D) $<

# Kernel and LR-parser unit tests, under AddressSanitizer + UBSan.
# One object per source, compiled once (position-independent, hidden
# symbols) for both the unit-test binary and the ASan library, in parallel.
SANITIZED_OBJ := $(OUT)/sanitized
SANITIZED_SRC_OBJS := $(patsubst delegate/%.cc,$(SANITIZED_OBJ)/%.o,$(DELEGATE_SRCS))
SANITIZED_TEST_OBJS := $(patsubst delegate/%.cc,$(SANITIZED_OBJ)/%.o,$(DELEGATE_TESTS))
$(SANITIZED_OBJ)/%.o: delegate/%.cc $(DELEGATE_HDRS) $(LR_HEADER) | $(OUT)/.apt-stamp
	@mkdir -p $(@D)
	g++ $(CXXFLAGS_TEST) -fPIC -fvisibility=hidden -c $< -o $@

$(OUT)/cc_tests: $(SANITIZED_SRC_OBJS) $(SANITIZED_TEST_OBJS)
	g++ $(CXXFLAGS_TEST) $^ -o $@ -lgtest -lgtest_main -lhwy -lpthreadpool -lpthread

# Speed of the convolution kernels on real layer shapes (delegate/bench/);
# test-cc runs it once on a tiny layer so that it keeps building and running.
KERNEL_BENCH := $(OUT)/pattern_conv_bench
KERNEL_BENCH_SRCS := delegate/bench/pattern_conv_bench.cc delegate/kernels/pattern_conv.cc \
  delegate/kernels/pattern_conv_simd.cc delegate/kernels/pattern_conv_block.cc \
  delegate/kernels/planar_copy.cc delegate/kernels/rows_layout.cc delegate/kernels/simd_target.cc \
  delegate/lr/lr_format.cc delegate/lr/schema_helpers.cc delegate/lr/tuning_record.cc delegate/tuning/tuning_record_rules.cc
$(KERNEL_BENCH): $(KERNEL_BENCH_SRCS) $(DELEGATE_HDRS) $(LR_HEADER) | $(OUT)/.apt-stamp
	g++ -std=c++17 -O3 -I. -I$(GENERATED) -Wall -Werror $(KERNEL_BENCH_SRCS) -o $@ -lhwy -lpthreadpool -lpthread

bench-kernels: $(KERNEL_BENCH)
	$(KERNEL_BENCH) --threads 2

test-cc: $(OUT)/cc_tests $(KERNEL_BENCH)
	$(OUT)/cc_tests --gtest_brief=1
	$(KERNEL_BENCH) --threads 1 --repeats 1 --layer 9,8,8,1 --layer 9,8,8,2 | grep -q "^custom  *rows .* ms"

# The delegate built with ASan + UBSan, loaded into the real runtimes (LiteRT
# and tf.lite) by the delegate tests. --capture=sys keeps a sanitizer report
# (written to fd 2 just before the process aborts) visible.
ASAN_LIB := $(OUT)/libcocopie_delegate_asan.so
$(ASAN_LIB): $(SANITIZED_SRC_OBJS)
	g++ $(CXXFLAGS_TEST) -shared $^ -o $@ -lhwy -lpthreadpool -lpthread

test-asan: $(ASAN_LIB) install
	LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	COCOPIE_DELEGATE_LIBRARY=$(CURDIR)/$(ASAN_LIB) \
	  $(PY) -m pytest -q --capture=sys -p no:cacheprovider \
	  tests/delegate_conv_test.py tests/delegate_refusal_test.py tests/kernel_tuning_test.py \
	  tests/compact_storage_test.py tests/delegate_dwconv_test.py \
	  tests/delegate_shared_test.py tests/tuning_cache_test.py tests/delegate_hostile_test.py \
	  tests/packed_storage_test.py tests/delegate_fc_test.py

test-python: install
	$(PY) -m pytest -q

# The Bazel targets, built and tested offline with Debian's Bazel 4.2.3.
bazel: $(VENV)/.deps-stamp
	bash tools/bazel/build.sh

clean:
	rm -rf $(OUT) build *.egg-info $(DELEGATE_LIB) converter/lr_fbs
