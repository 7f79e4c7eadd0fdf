"""A short run of the demo (one epoch each) checks the whole path."""

import json

from cocopie_keras import demo

REQUIRED = ["dense_accuracy", "pruned_accuracy", "conv_weight_density",
            "tflite_bytes_dense", "tflite_bytes_pruned", "latency_ms_stock",
            "latency_ms_delegate", "delegated_nodes", "max_abs_diff"]


def test_short_demo_writes_a_complete_summary(tmp_path):
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


def test_data_split_is_fixed():
    (x_train, y_train), (x_test, y_test) = demo.load_mnist_5k()
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    (x_again, _), _ = demo.load_mnist_5k()
    assert (x_again == x_train).all()
    assert set(y_test.tolist()) == set(range(10))
