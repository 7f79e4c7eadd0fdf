"""One delegate instance shared by several interpreters (run in a subprocess).

``delegate_shared_test.py`` runs this with a timeout, so that a hang fails the
test instead of blocking it. No TensorFlow or Keras here: only the runtime,
numpy and the delegate (``COCOPIE_DELEGATE_LIBRARY`` selects the build).

Usage: python delegate_shared_child.py SCENARIO CASES.npz MODEL...
where CASES.npz holds, for model i, inputs ``x{i}_{k}`` and the stock
outputs ``y{i}_{k}``. Exit status 0 when every output matched.
"""

import sys
import threading

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from cocopie_keras import delegate
from cocopie_keras.bench.timing import run

TOLERANCE = 1e-4


def interpreter_for(model, shared, threads, input_shape):
    """Allocated for `input_shape`, so that the first invoke at that shape
    runs the kernels as prepared then (no re-prepare)."""
    interpreter = Interpreter(model_content=model, experimental_delegates=[shared],
                              num_threads=threads)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"],
                                    list(input_shape))
    interpreter.allocate_tensors()
    return interpreter


def check(interpreter, cases, i, k, where):
    actual = run(interpreter, cases[f"x{i}_{k}"])
    np.testing.assert_allclose(actual, cases[f"y{i}_{k}"], rtol=TOLERANCE, atol=TOLERANCE,
                               err_msg=f"{where}: model {i} input {k}")


def inputs_of(cases, i):
    return sorted(int(name.split("_")[1]) for name in cases.files if name.startswith(f"x{i}_"))


def interleaved(models, cases):
    """Interpreters with different thread counts, each prepared after the
    previous one was, invoked in turn (with resizes: each re-prepares its
    kernels)."""
    shared = delegate.load_delegate()
    interpreters = []
    for i, num_threads in ((0, 2), (1 % len(models), 3), (0, 1)):
        interpreter = interpreter_for(models[i], shared, num_threads, cases[f"x{i}_0"].shape)
        interpreters.append((interpreter, i))
    for k in inputs_of(cases, 0):
        for interpreter, i in interpreters:
            check(interpreter, cases, i, k, "interleaved")
    claimed = delegate.delegated_node_count(interpreters[0][0])
    assert claimed > 0, "the delegate claimed nothing"


def threads(models, cases, rounds=12):
    """Two Python threads, each creating and invoking its own interpreter on
    the one delegate at the same time (2 and 3 threads: pools of their own)."""
    shared = delegate.load_delegate()
    errors = []
    start = threading.Barrier(2)

    def work(i, num_threads):
        try:
            start.wait()
            ks = inputs_of(cases, i)
            interpreter = interpreter_for(models[i], shared, num_threads, cases[f"x{i}_0"].shape)
            for r in range(rounds):
                check(interpreter, cases, i, ks[r % len(ks)], f"thread {i} round {r}")
        except BaseException as error:  # reported by the main thread
            errors.append(f"{type(error).__name__}: {error}")

    workers = [threading.Thread(target=work, args=(i % len(models), 2 + i)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors


def lr_kept(models, cases):
    """models[0] carries LR tuning records, models[1] (same layers) none: the
    first interpreter's kernels, re-prepared after the second interpreter's
    Prepare read its LR, must still use their own model's records."""
    shared = delegate.load_delegate(tuning="cache")
    first = interpreter_for(models[0], shared, 1, cases["x0_0"].shape)
    before = {r["node"]: r["source"] for r in delegate.kernel_tunings(first)}
    assert before and set(before.values()) == {"lr"}, before
    second = interpreter_for(models[1], shared, 1, cases["x1_0"].shape)
    check(second, cases, 1, 0, "second model")
    check(first, cases, 0, inputs_of(cases, 0)[-1], "first model, resized")
    after = {r["node"]: r["source"] for r in delegate.kernel_tunings(first)}
    assert after == before, f"sources after the other model's Prepare: {after}"


SCENARIOS = {"interleaved": interleaved, "threads": threads, "lr_kept": lr_kept}


def main(argv):
    scenario, cases_path, model_paths = argv[0], argv[1], argv[2:]
    models = []
    for path in model_paths:
        with open(path, "rb") as f:
            models.append(f.read())
    with np.load(cases_path) as cases:
        SCENARIOS[scenario](models, cases)
    print(f"{scenario}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
