"""Checks an installed cocopie-keras wheel in a clean virtualenv (no TF/Keras).

Run by ``make test-wheel`` (mk/wheel.mk) with the venv's interpreter in
isolated mode, usually inside ``without_system_libs.sh``, which makes Debian's
Highway and pthreadpool libraries unreadable. Checks, each counted:

- the package comes from the venv (not the source tree) and the venv has
  neither TensorFlow nor Keras;
- the delegate library (``cocopie_keras.delegate_library_path()``) is
  stripped, and ``ldd`` resolves its Highway and pthreadpool to copies inside
  the installed wheel;
- the system copies are really hidden (when the caller says it hid them);
- per model of ``make_wheel_models.py``: the delegate, loaded through the
  package's API, claims every pattern convolution and its outputs match stock
  LiteRT, for each kernel and input size;
- the process then maps no Highway or pthreadpool from outside the wheel.

Closes with ``wheel: N passed, M failed`` (and ``, K skipped``); exits 1 on
any failure.

Example:
    out/wheel/venv/bin/python -I tests/wheel/check_installed_wheel.py \\
        --models out/wheel/models
"""

import argparse
import importlib.util
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np

BUNDLED_NAMES = re.compile(r"lib(hwy|pthreadpool)\b")
KERNELS = ("auto", "block", "rows")
TOLERANCE = 1e-5  # rtol and atol, as in tests/delegate_conv_test.py
# Set by without_system_libs.sh: the library files it made unreadable.
HIDDEN_ENV = "COCOPIE_HIDDEN_SYSTEM_LIBS"


class Checks:
    """Runs named checks, prints one line each, and counts them."""

    def __init__(self):
        self.passed, self.failed, self.skipped = 0, 0, 0

    def run(self, name, check):
        try:
            detail = check()
        except Exception as error:  # any failure is reported, the rest still run
            self.failed += 1
            print(f"FAILED {name}: {type(error).__name__}: {error}")
            return
        if detail == "skip":
            self.skipped += 1
            print(f"skipped {name}")
            return
        self.passed += 1
        print(f"ok {name}" + (f": {detail}" if detail else ""))

    def summary(self):
        line = f"wheel: {self.passed} passed, {self.failed} failed"
        return line + (f", {self.skipped} skipped" if self.skipped else "")


def elf_section_names(path):
    """Section names of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x7fELF\x02\x01":
        raise ValueError(f"Expected a 64-bit little-endian ELF file. Received: {path}")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_offset = headers[shstrndx][4]
    names = []
    for name_offset, *_ in headers:
        start = strtab_offset + name_offset
        names.append(data[start:data.index(b"\0", start)].decode())
    return names


def check_clean_venv(cocopie_keras):
    package = os.path.abspath(cocopie_keras.__file__)
    if not package.startswith(os.path.abspath(sys.prefix) + os.sep):
        raise AssertionError(f"cocopie_keras imported from {package}, outside the venv {sys.prefix}")
    present = [name for name in ("tensorflow", "keras") if importlib.util.find_spec(name)]
    if present:
        raise AssertionError(f"the venv should hold no {present}")
    return f"{package}, no TensorFlow or Keras"


def check_lr_code_generated(cocopie_keras):
    """The wheel carries the LR code flatc generated from schema/cocopie_lr.fbs.

    Read from the files: importing cocopie_keras.converter needs TensorFlow,
    which this venv leaves out.
    """
    folder = os.path.join(os.path.dirname(cocopie_keras.__file__), "converter", "lr_fbs")
    wanted = ["__init__.py", "LayerwiseRepresentation.py", "Layer.py", "TuningRecord.py",
              "TuningEntry.py"]
    missing = [name for name in wanted if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise AssertionError(f"the wheel has no generated {missing} in {folder}")
    spec = importlib.util.spec_from_file_location(
        "lr_fbs_check", os.path.join(folder, "LayerwiseRepresentation.py"))
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # the runtime is there
    return f"{len(wanted)} generated modules in {folder}"


def check_library_self_contained(library):
    wheel_root = os.path.dirname(os.path.dirname(library))  # site-packages
    if ".symtab" in elf_section_names(library) or ".debug_info" in elf_section_names(library):
        raise AssertionError(f"{library} is not stripped")
    result = subprocess.run(["ldd", library], capture_output=True, text=True)
    if result.returncode:
        raise AssertionError(f"ldd cannot resolve the library: {result.stderr.strip()}")
    ldd = result.stdout
    bundled = []
    for line in ldd.splitlines():
        if "not found" in line:
            raise AssertionError(f"ldd: {line.strip()}")
        name, _, target = line.strip().partition(" => ")
        if BUNDLED_NAMES.match(name):
            path = target.split(" (")[0]
            if not path.startswith(wheel_root + os.sep):
                raise AssertionError(f"{name} resolves to {path}, outside the installed wheel")
            bundled.append(os.path.relpath(path, wheel_root))
    if len(bundled) != 2:
        raise AssertionError(f"expected Highway and pthreadpool among the dependencies:\n{ldd}")
    return f"{os.path.getsize(library):,} bytes, stripped; bundles {', '.join(sorted(bundled))}"


def check_system_libraries_hidden():
    hidden = os.environ.get(HIDDEN_ENV, "").split()
    if not hidden:
        return "skip"
    readable = [path for path in hidden if os.path.getsize(path) or os.path.isfile(path)]
    if readable:
        raise AssertionError(f"still readable: {readable}")
    return f"{len(hidden)} files read as empty: {', '.join(os.path.basename(p) for p in hidden)}"


def check_model(models_dir, case, kernel):
    from cocopie_keras import delegate
    from cocopie_keras.bench.timing import run

    with open(os.path.join(models_dir, case["model"]), "rb") as f:
        model = f.read()
    shapes = [tuple(s) for s in case["input_shapes"]]
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    stock = delegate.make_interpreter(model, use_delegate=False, num_threads=2, input_shape=shapes[0])
    ours = delegate.make_interpreter(model, num_threads=2, input_shape=shapes[0], kernel=kernel)
    claimed = delegate.delegated_node_count(ours)
    if claimed != case["convs"]:
        raise AssertionError(f"the delegate claimed {claimed} of {case['convs']} convolutions")
    worst = 0.0
    for x in inputs:
        expected, actual = run(stock, x), run(ours, x)
        np.testing.assert_allclose(actual, expected, rtol=TOLERANCE, atol=TOLERANCE,
                                   err_msg=f"input {x.shape}: delegate vs stock LiteRT")
        worst = max(worst, float(np.max(np.abs(actual - expected))))
    return f"{claimed} convs delegated, {len(inputs)} input sizes, max |delegate - stock| {worst:.1e}"


def check_no_system_copy_mapped(library):
    wheel_root = os.path.dirname(os.path.dirname(library))
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    mapped = [p for p in paths if BUNDLED_NAMES.search(os.path.basename(p))]
    outside = [p for p in mapped if not p.startswith(wheel_root + os.sep)]
    if outside or len(mapped) < 2:
        raise AssertionError(f"mapped Highway/pthreadpool files: {sorted(mapped)}")
    return f"{len(mapped)} files, all inside the wheel"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="folder written by make_wheel_models.py")
    args = parser.parse_args(argv)
    import cocopie_keras

    library = cocopie_keras.delegate_library_path()
    print(f"python {sys.version.split()[0]} ({sys.prefix}); delegate {library}")
    checks = Checks()
    checks.run("clean venv", lambda: check_clean_venv(cocopie_keras))
    checks.run("LR code generated", lambda: check_lr_code_generated(cocopie_keras))
    checks.run("library self-contained", lambda: check_library_self_contained(library))
    checks.run("system Highway/pthreadpool hidden", check_system_libraries_hidden)
    with open(os.path.join(args.models, "manifest.json")) as f:
        cases = json.load(f)["cases"]
    for case in cases:
        for kernel in KERNELS:
            checks.run(f"{case['name']} kernel={kernel}",
                       lambda: check_model(args.models, case, kernel))
    checks.run("no system copy loaded", lambda: check_no_system_copy_mapped(library))
    print(checks.summary())
    return 1 if checks.failed or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
