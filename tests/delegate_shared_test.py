"""One delegate instance shared by several interpreters: run one after the
other, interleaved, and from two threads at once, with different thread
counts and input resizes. Each scenario runs in a subprocess with a timeout
(``delegate_shared_child.py``), so that a hang fails instead of blocking."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import conv_stack, pattern_prune, random_input

from cocopie_keras import converter, delegate
from cocopie_keras.converter import kernel_tuning as tuning

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delegate_shared_child.py")
TIMEOUT_SECONDS = 120
# Spatially dynamic models: a resize to another height and width changes each
# layer's geometry, so every kernel re-prepares (and re-resolves its tuning).
INPUT_SHAPES = [(1, 12, 12, 8), (2, 9, 7, 8), (1, 16, 10, 8)]


def _model(seed):
    model = conv_stack((None, None, 8), [
        dict(filters=16, kernel_size=3, padding="same", activation="relu"),
        dict(filters=8, kernel_size=3, strides=2, padding="same"),
    ], seed=seed)
    model(np.zeros(INPUT_SHAPES[0], np.float32))
    pattern_prune(model, connectivity_rate=0.3, seed=seed)
    return converter.convert(model)


def _stock_outputs(data):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    outputs = []
    for k, shape in enumerate(INPUT_SHAPES):
        interpreter.resize_tensor_input(index, list(shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, random_input(shape, seed=k))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    return outputs


def _with_rows_records(data):
    """The same file with an LR tuning record (rows kernel, this CPU) per layer."""
    layers = converter.read_lr(data)
    record = tuning.encode([tuning.TuningEntry(delegate.simd_target(), "rows")])
    for layer in layers:
        layer.tuning = record
    return converter.write_lr(data, layers)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shared")
    models = [_model(seed) for seed in (0, 1)]
    arrays = {}
    for i, data in enumerate(models):
        (folder / f"model{i}.tflite").write_bytes(data)
        for k, y in enumerate(_stock_outputs(data)):
            arrays[f"x{i}_{k}"] = random_input(INPUT_SHAPES[k], seed=k)
            arrays[f"y{i}_{k}"] = y
    (folder / "tuned0.tflite").write_bytes(_with_rows_records(models[0]))
    np.savez(folder / "cases.npz", **arrays)
    return folder


def _run_child(scenario, folder, models):
    command = [sys.executable, CHILD, scenario, str(folder / "cases.npz")]
    command += [str(folder / m) for m in models]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"{scenario}: no result after {TIMEOUT_SECONDS} s (hung); "
                    f"output: {expired.stdout!r} {expired.stderr!r}")
    assert done.returncode == 0, f"{scenario} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    assert f"{scenario}: ok" in done.stdout


def test_interpreters_prepared_one_after_another_run_in_turn(files):
    # Thread counts 2, 3 and 1: each interpreter's Prepare must leave the
    # others' thread pools alone.
    _run_child("interleaved", files, ["model0.tflite", "model1.tflite"])


def test_two_threads_prepare_and_invoke_at_once(files):
    _run_child("threads", files, ["model0.tflite", "model1.tflite"])


def test_kernels_keep_their_own_models_lr(files):
    _run_child("lr_kept", files, ["tuned0.tflite", "model1.tflite"])
