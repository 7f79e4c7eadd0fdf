"""A short run of the demo (one epoch each) checks the whole path."""

import json
import os

import keras
import pytest

from cocopie_keras import demo

RECORDED = os.path.join(os.path.dirname(__file__), "..", "bench", "results", "demo_summary.json")
"""The `make demo` run the README's demo block is generated from."""

DETERMINISTIC = ["tflite_bytes_dense", "tflite_bytes_pruned", "lr_layers", "delegated_nodes",
                 "pruned_layers", "pattern_group_size"]
"""Summary fields that do not depend on training length, load or timing."""

REQUIRED = ["dense_accuracy", "pruned_accuracy", "conv_weight_density",
            "tflite_bytes_dense", "tflite_bytes_pruned", "latency_ms_stock",
            "latency_ms_delegate", "delegated_nodes", "max_abs_diff"]


def test_short_demo_writes_a_complete_summary(tmp_path):
    # Keras numbers its tensors process-wide and the .tflite keeps those
    # names, so the file's size depends on what ran before in this process;
    # `make demo` starts from a fresh process, which a cleared session matches.
    keras.backend.clear_session()
    summary, path = demo.run_demo(out_dir=str(tmp_path), epochs=2, finetune_epochs=2,
                                  verbose=0)
    with open(path) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(summary))
    for key in REQUIRED:
        assert key in written
    assert written["delegated_nodes"] == written["lr_layers"] == 5
    assert written["max_abs_diff"] <= 1e-4
    assert written["tflite_accuracy_delegate"] == written["tflite_accuracy_stock"]
    assert 0.25 < written["conv_weight_density"] < 0.45
    assert written["pruned_accuracy"] > 0.5  # two short epochs of a 10-class problem
    table = demo.format_table(summary)
    assert "latency ms" in table and "max |stock - delegate|" in table
    # Shorter training, same structure: what the README quotes must come out again.
    with open(RECORDED) as f:
        recorded = json.load(f)["summary"]
    assert {k: written[k] for k in DETERMINISTIC} == {k: recorded[k] for k in DETERMINISTIC}
    assert written["conv_weight_density"] == pytest.approx(recorded["conv_weight_density"],
                                                           abs=1e-9)


def test_data_split_is_fixed():
    (x_train, y_train), (x_test, y_test) = demo.load_mnist_5k()
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    (x_again, _), _ = demo.load_mnist_5k()
    assert (x_again == x_train).all()
    assert set(y_test.tolist()) == set(range(10))
