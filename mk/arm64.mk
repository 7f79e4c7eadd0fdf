# ARM64 (aarch64) build and emulated tests, and the Android/JVM wrapper.
#
#   make arm64              cross-build the delegate, its JNI library and its
#                           unit tests for aarch64 Linux (out/arm64/build)
#   make test-arm64         everything under qemu-aarch64: C++ unit tests on
#                           every CPU below, Python correctness tests on TFLite
#                           2.14 (tflite-runtime) with NEON, SVE and SVE2
#   make test-arm64-quick   the bounded subset `make test` runs: C++ unit tests
#                           on `max`, and every model of the full run on
#                           cortex-a72 (NEON), so that a runtime or model that
#                           only the full set has cannot fail there alone
#   make test-android-jvm   the Java wrapper through JNI on the host JVM
#
# The arm64 sysroot (Debian arm64 packages + aarch64 wheels) is built by
# tools/arm64/make_sysroot.sh into out/arm64/sysroot; downloads are cached in
# ~/.cache/cocopie-arm64. qemu is called explicitly (no binfmt_misc needed).

ARM64_OUT      := $(OUT)/arm64
ARM64_SYSROOT  := $(CURDIR)/$(ARM64_OUT)/sysroot
ARM64_BUILD    := $(ARM64_OUT)/build
ARM64_MODELS   := $(ARM64_OUT)/models
# Source tree compiled by `make arm64` (override to build another checkout).
ARM64_SOURCE_DIR ?= $(CURDIR)
ARM64_APT_PACKAGES := g++-aarch64-linux-gnu qemu-user-static cmake openjdk-17-jdk-headless
QEMU_ARM64     := qemu-aarch64-static
JAVA_HOME_DIR  ?= $(shell d=$$(readlink -f $$(command -v javac 2>/dev/null) 2>/dev/null); \
                    [ -n "$$d" ] && dirname $$(dirname $$d))
JNI_INCLUDES   = $(JAVA_HOME_DIR)/include;$(JAVA_HOME_DIR)/include/linux

# CPUs emulated by the full run and the dispatch target each must give:
# cortex-a72 has NEON only, a64fx adds SVE (512-bit), max adds SVE2.
ARM64_CPUS     := cortex-a72:NEON a64fx:SVE max:SVE2
# The C++ tests loop over every target the CPU supports, so `max` covers
# SVE2, SVE and NEON; sve128 adds the SVE2_128 code path.
ARM64_CC_CPUS  := cortex-a72 max max,sve128=on

.PHONY: arm64 arm64-sysroot test-arm64 test-arm64-quick test-arm64-cc \
        test-arm64-cc-quick test-android-jvm

TEST_STEPS += test-arm64-quick test-android-jvm

$(ARM64_OUT)/.apt-stamp:
	@mkdir -p $(ARM64_OUT)
	@$(call apt_install,$(ARM64_APT_PACKAGES))
	@touch $@

# Idempotent and quick once cached; re-run every time so that a changed
# package list or wheel pin is picked up.
arm64-sysroot: $(ARM64_OUT)/.apt-stamp $(VENV)/.deps-stamp
	bash tools/arm64/make_sysroot.sh $(ARM64_SYSROOT) $(PY)

# The FlatBuffers headers are header-only: the host's serve the target. The
# cross compiler gets a copy of just them, never the host's /usr/include.
ARM64_FLATBUFFERS := $(CURDIR)/$(ARM64_OUT)/flatbuffers-include
$(ARM64_FLATBUFFERS)/flatbuffers/flatbuffers.h: /usr/include/flatbuffers/flatbuffers.h
	@rm -rf $(ARM64_FLATBUFFERS) && mkdir -p $(ARM64_FLATBUFFERS)
	cp -r /usr/include/flatbuffers $(ARM64_FLATBUFFERS)/

/usr/include/flatbuffers/flatbuffers.h: | $(OUT)/.apt-stamp

arm64: arm64-sysroot $(ARM64_FLATBUFFERS)/flatbuffers/flatbuffers.h
	@cmake -S tools/arm64 -B $(ARM64_BUILD) \
	    -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/tools/arm64/aarch64-linux-gnu.cmake \
	    -DCOCOPIE_ARM64_SYSROOT=$(ARM64_SYSROOT) \
	    -DCOCOPIE_FLATBUFFERS_INCLUDE_DIR=$(ARM64_FLATBUFFERS) \
	    -DCOCOPIE_SOURCE_DIR=$(ARM64_SOURCE_DIR) \
	    -DCOCOPIE_BUILD_TESTS=ON "-DCOCOPIE_JNI_INCLUDE_DIRS=$(JNI_INCLUDES)" >/dev/null
	MAKEFLAGS= nice -n 10 cmake --build $(ARM64_BUILD) -j2 -- --no-print-directory
	@file $(ARM64_BUILD)/libcocopie_delegate.so $(ARM64_BUILD)/libcocopie_delegate_jni.so | \
	  sed 's/, BuildID.*//'

# Runs the cross-built gtests under each CPU in $(1), printing the targets
# they exercised; fails unless NEON is among them.
define arm64_cc_tests
	@for cpu in $(1); do \
	  targets=$$($(QEMU_ARM64) -cpu $$cpu -L $(ARM64_SYSROOT) $(ARM64_BUILD)/cocopie_simd_targets \
	    | sed -n 's/^tested targets: //p'); \
	  echo "arm64 C++ tests, qemu -cpu $$cpu, targets: $$targets"; \
	  echo " $$targets " | grep -q " NEON " || { echo "FAILED: NEON not tested"; exit 1; }; \
	  $(QEMU_ARM64) -cpu $$cpu -L $(ARM64_SYSROOT) $(ARM64_BUILD)/cocopie_cc_tests \
	    --gtest_brief=1 > $(ARM64_BUILD)/cc_tests.log 2>&1 || { cat $(ARM64_BUILD)/cc_tests.log; exit 1; }; \
	  tail -n 1 $(ARM64_BUILD)/cc_tests.log; \
	done
endef

test-arm64-cc: arm64
	$(call arm64_cc_tests,$(ARM64_CC_CPUS))

test-arm64-cc-quick: arm64
	$(call arm64_cc_tests,max)

# Models, inputs and host stock outputs for the emulated Python tests
# (TF/Keras run on the host only).
# TensorFlow's start-up chatter goes to a log shown only on failure.
$(ARM64_MODELS)/%/manifest.json: tests/arm64/make_models.py $(DELEGATE_LIB)
	@mkdir -p $(@D)
	@$(PY) tests/arm64/make_models.py --out $(@D) $(if $(filter quick,$*),--quick) \
	  > $(@D).log 2>&1 || { cat $(@D).log; exit 1; }
	@tail -n 1 $(@D).log

# $(1): model folder, $(2): cpu:target pairs, $(3): extra runner flags.
define arm64_python_tests
	@for pair in $(2); do \
	  cpu=$${pair%%:*}; target=$${pair##*:}; \
	  echo "arm64 Python tests, qemu -cpu $$cpu (expect $$target kernels)"; \
	  PYTHONPATH=$(ARM64_SYSROOT)/site-packages TF_CPP_MIN_LOG_LEVEL=2 \
	  $(QEMU_ARM64) -cpu $$cpu -L $(ARM64_SYSROOT) $(ARM64_SYSROOT)/usr/bin/python3.11 \
	    tests/arm64/run_models.py --models $(1) --delegate $(ARM64_BUILD)/libcocopie_delegate.so \
	    --expect-target $$target $(3) 2>&1 | grep -v "^INFO: Created TensorFlow Lite"; \
	  [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; \
	done
endef

test-arm64: SHELL := /bin/bash
test-arm64: test-arm64-cc $(ARM64_MODELS)/full/manifest.json
	$(call arm64_python_tests,$(ARM64_MODELS)/full,$(ARM64_CPUS),)

test-arm64-quick: SHELL := /bin/bash
test-arm64-quick: test-arm64-cc-quick $(ARM64_MODELS)/full/manifest.json
	$(call arm64_python_tests,$(ARM64_MODELS)/full,cortex-a72:NEON,)

# --- Android wrapper on the host JVM ---------------------------------------------
# The host JNI library holds only the glue and links the package's delegate
# library; the Android one (CMake, build.gradle) compiles the delegate in.
ANDROID_JVM := $(OUT)/android-jvm
test-android-jvm: $(DELEGATE_LIB) $(ARM64_OUT)/.apt-stamp
	@mkdir -p $(ANDROID_JVM)/classes
	g++ -std=c++17 -O3 -shared -fPIC -fvisibility=hidden -Wall -Werror -I. \
	  -I$(JAVA_HOME_DIR)/include -I$(JAVA_HOME_DIR)/include/linux \
	  android/jni/cocopie_delegate_jni.cc -o $(ANDROID_JVM)/libcocopie_delegate_jni.so \
	  -L$(CURDIR)/cocopie_keras -lcocopie_delegate -Wl,-rpath,$(CURDIR)/cocopie_keras \
	  -Wl,--no-undefined
	javac -Werror -Xlint:all -d $(ANDROID_JVM)/classes \
	  android/jvm-stub/org/tensorflow/lite/Delegate.java \
	  android/java/org/cocopie/delegate/CocopieDelegate.java \
	  android/test/org/cocopie/delegate/CocopieDelegateTest.java
	java -Xcheck:jni -Djava.library.path=$(ANDROID_JVM) -cp $(ANDROID_JVM)/classes \
	  org.cocopie.delegate.CocopieDelegateTest
