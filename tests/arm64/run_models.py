"""Runs the cocopie delegate on the models of ``make_models.py`` (no TF/Keras).

Meant for the emulated arm64 runtime (numpy + ``tflite_runtime`` under
qemu-aarch64), it also runs on the host with ``ai_edge_litert`` (or
``tflite_runtime``). For every model and every kernel (the library must
accept each), the delegate's outputs must match stock kernels of the same
runtime and the host's stock outputs, at several batch and spatial sizes
(input resizes), and the delegate must claim every conv. Bad options must be refused with ValueError. The SIMD target the
kernels dispatch to is printed; ``--expect-target`` makes a different one a
failure (e.g. NEON on a CPU without SVE).

Example (see mk/arm64.mk for the qemu command line):
    python3.11 tests/arm64/run_models.py --models out/arm64/models \\
        --delegate out/arm64/build/libcocopie_delegate.so --expect-target NEON
"""

import argparse
import ctypes
import json
import os
import platform
import sys

import numpy as np

try:  # the arm64 sysroot has tflite_runtime; the x86-64 venv has LiteRT
    from tflite_runtime import __version__ as RUNTIME_VERSION
    from tflite_runtime.interpreter import Interpreter, load_delegate

    RUNTIME = "tflite_runtime"
except ImportError:
    from ai_edge_litert import __version__ as RUNTIME_VERSION
    from ai_edge_litert.interpreter import Interpreter, load_delegate

    RUNTIME = "ai_edge_litert"

KERNELS = ("auto", "reference", "rows", "block")
BAD_OPTIONS = [
    ({"num_threads": "-1"}, "num_threads"),
    ({"num_threads": "two"}, "num_threads"),
    ({"kernel": "fastest"}, "kernel"),
    ({"verbose": "2"}, "verbose"),
    ({"no_such_option": "1"}, "unknown option"),
]
TOLERANCE = 1e-5  # rtol and atol, as in tests/delegate_conv_test.py


class Failure(Exception):
    pass


def simd_target(library_path):
    library = ctypes.CDLL(library_path)
    library.CocopieDelegateSimdTarget.restype = ctypes.c_char_p
    return library.CocopieDelegateSimdTarget().decode()


def claimed_nodes(delegate):
    library = delegate._library
    library.CocopieDelegateClaimedNodes.restype = ctypes.c_int
    return int(library.CocopieDelegateClaimedNodes(ctypes.c_void_p(delegate._delegate_ptr)))


def run(interpreter, x):
    index = interpreter.get_input_details()[0]["index"]
    if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
        interpreter.resize_tensor_input(index, list(x.shape))
        interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def check_bad_options(library_path):
    for options, expected in BAD_OPTIONS:
        try:
            load_delegate(library_path, options)
        except ValueError as error:
            if expected not in str(error):
                raise Failure(f"options {options}: message lacks {expected!r}: {error}")
            continue
        raise Failure(f"options {options} were accepted")
    print(f"  bad options refused: {len(BAD_OPTIONS)} of {len(BAD_OPTIONS)}")


def accepted_kernels(library_path):
    """Every kernel: a build that refuses one fails (it would otherwise go
    untested without a word)."""
    for kernel in KERNELS:
        try:
            load_delegate(library_path, {"kernel": kernel})
        except ValueError as error:
            raise Failure(f"the delegate refuses kernel={kernel}: {error}") from error
    return list(KERNELS)


def check_case(models_dir, case, library_path, kernels, threads):
    with open(os.path.join(models_dir, case["model"]), "rb") as f:
        model = f.read()
    data = np.load(os.path.join(models_dir, case["data"]))
    pairs = [(data[f"x{i}"], data[f"y{i}"]) for i in range(len(data.files) // 2)]
    stock = Interpreter(model_content=model, num_threads=1)
    stock_out = [run(stock, x) for x, _ in pairs]
    worst = 0.0
    for (x, host), ours in zip(pairs, stock_out):
        np.testing.assert_allclose(ours, host, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{case['name']}: stock {RUNTIME} vs host stock")
    for kernel in kernels:
        delegate = load_delegate(library_path, {"kernel": kernel, "num_threads": str(threads)})
        interpreter = Interpreter(model_content=model, experimental_delegates=[delegate],
                                  num_threads=threads)
        for (x, host), expected in zip(pairs, stock_out):
            actual = run(interpreter, x)
            where = f"{case['name']} kernel={kernel} input {x.shape}"
            if actual.shape != expected.shape:
                raise Failure(f"{where}: shape {actual.shape} != stock {expected.shape}")
            np.testing.assert_allclose(actual, expected, rtol=TOLERANCE, atol=TOLERANCE,
                                       err_msg=f"{where}: delegate vs stock")
            np.testing.assert_allclose(actual, host, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{where}: delegate vs host stock")
            worst = max(worst, float(np.max(np.abs(actual - expected))))
        if claimed_nodes(delegate) != case["convs"]:
            raise Failure(f"{case['name']} kernel={kernel}: delegate claimed "
                          f"{claimed_nodes(delegate)} of {case['convs']} convs")
        del interpreter
    return len(pairs) * len(kernels), worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="folder written by make_models.py")
    parser.add_argument("--delegate", required=True, help="path of libcocopie_delegate.so")
    parser.add_argument("--expect-target", help="fail unless the kernels dispatch to this target")
    parser.add_argument("--quick", action="store_true", help="only the quick cases")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    library_path = os.path.abspath(args.delegate)
    target = simd_target(library_path)
    print(f"{platform.machine()} {RUNTIME} {RUNTIME_VERSION} numpy {np.__version__}: "
          f"delegate kernels dispatch to {target}")
    try:
        if args.expect_target and target != args.expect_target:
            raise Failure(f"expected the {args.expect_target} kernels, the delegate "
                          f"dispatches to {target}")
        check_bad_options(library_path)
        kernels = accepted_kernels(library_path)
        with open(os.path.join(args.models, "manifest.json")) as f:
            cases = [c for c in json.load(f)["cases"] if c["quick"] or not args.quick]
        if not cases:
            raise Failure(f"no models in {args.models}")
        total, worst = 0, 0.0
        for case in cases:
            count, case_worst = check_case(args.models, case, library_path, kernels, args.threads)
            total, worst = total + count, max(worst, case_worst)
            print(f"  {case['name']}: {case['convs']} conv(s) delegated, "
                  f"max |delegate - stock| {case_worst:.2e}")
    except (Failure, AssertionError, ValueError) as error:
        print(f"FAILED: {error}")
        return 1
    print(f"OK {platform.machine()} {RUNTIME} {RUNTIME_VERSION} target {target}: "
          f"{len(cases)} models, kernels {','.join(kernels)}, {total} comparisons, "
          f"max |delegate - stock| {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
