"""Pruned FULLY_CONNECTED layers: described in the LR, run by the delegate."""

import keras
import numpy as np
import pytest
from conftest import random_input, run

from cocopie_keras import converter
from cocopie_keras import delegate
from cocopie_keras.converter import report


def block_prune(dense_layer, block=(4, 4), kept=0.28, seed=0):
    """Removes whole (in, out) blocks of a Dense kernel, as connectivity pruning does."""
    kernel = dense_layer.kernel.numpy()
    rng = np.random.default_rng(seed)
    bh, bw = block
    keep = rng.random((kernel.shape[0] // bh, kernel.shape[1] // bw)) < kept
    dense_layer.kernel.assign(kernel * np.kron(keep, np.ones(block)).astype(np.float32))


def element_prune(dense_layer, kept=0.28, seed=0):
    kernel = dense_layer.kernel.numpy()
    keep = np.random.default_rng(seed).random(kernel.shape) < kept
    dense_layer.kernel.assign(kernel * keep)


def classifier(seed=0):
    """fc1 and fc2 hold 16 MiB of dense weights each, what the delegate claims
    (smaller layers run faster on the stock kernels)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(4096, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(1024, activation="relu6", name="fc2")(x)
    x = keras.layers.Dense(10, name="logits")(x)  # left dense: not described
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def pruned_classifier():
    model = classifier()
    block_prune(model.get_layer("fc1"))
    element_prune(model.get_layer("fc2"), seed=1)
    return model, converter.convert(model)


def fully_connected_rows(data):
    return [row for row in report.layer_reports(data)
            if row["kind"] == "fully_connected_connectivity"]


def test_pruned_dense_layers_are_described_and_consistent(pruned_classifier):
    _, data = pruned_classifier
    rows = fully_connected_rows(data)
    assert [row["shape_ohwi"] for row in rows] == [[4096, 1, 1, 1024], [1024, 1, 1, 4096]]
    for row in rows:
        assert 0.2 < row["weight_density"] < 0.36
    assert converter.check_lr(data) == []


@pytest.mark.parametrize("runtime", ["litert", "tf"])
@pytest.mark.parametrize("batch", [1, 3])
def test_delegate_runs_them_like_stock(pruned_classifier, runtime, batch):
    _, data = pruned_classifier
    x = random_input((batch, 8, 8, 16), seed=batch)
    stock = run(delegate.make_interpreter(data, use_delegate=False, runtime=runtime,
                                          input_shape=x.shape), x)
    interpreter = delegate.make_interpreter(data, runtime=runtime, input_shape=x.shape,
                                            num_threads=2)
    assert delegate.delegated_node_count(interpreter) == 2  # fc1 and fc2; the conv is dense
    np.testing.assert_allclose(run(interpreter, x), stock, rtol=1e-5, atol=1e-5)


def test_three_dimensional_input_keeps_its_dims():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((5, 1024))
    outputs = keras.layers.Dense(4096, name="per_step")(inputs)
    model = keras.Model(inputs, outputs)
    block_prune(model.get_layer("per_step"), kept=0.4, seed=3)
    data = converter.convert(model)
    assert len(fully_connected_rows(data)) == 1
    x = random_input((2, 5, 1024))
    stock = run(delegate.make_interpreter(data, use_delegate=False, input_shape=x.shape), x)
    interpreter = delegate.make_interpreter(data, input_shape=x.shape)
    assert delegate.delegated_node_count(interpreter) == 1
    ours = run(interpreter, x)
    assert ours.shape == stock.shape
    np.testing.assert_allclose(ours, stock, rtol=1e-5, atol=1e-5)


def test_an_lr_that_disagrees_with_the_weights_leaves_the_layer_to_stock(
        pruned_classifier, capfd):
    _, data = pruned_classifier
    layers = converter.read_lr(data)
    fc1 = next(l for l in layers if l.kernel_pattern.shape == (4096, 1024))
    ids = fc1.kernel_pattern.copy()
    ids[tuple(np.argwhere(ids == 0)[0])] = 255  # a kept (non-zero) weight called removed
    broken = [l if l is not fc1 else converter.LRLayer(l.op_index, l.filter_tensor,
                                                       l.pattern_masks, ids) for l in layers]
    bad = converter.write_lr(data, broken)
    x = random_input((1, 8, 8, 16))
    interpreter = delegate.make_interpreter(bad, num_threads=1)
    assert delegate.delegated_node_count(interpreter) == 1  # fc2 only
    assert "non-zero but the LR removes it" in capfd.readouterr().err
    stock = run(delegate.make_interpreter(data, use_delegate=False), x)
    np.testing.assert_allclose(run(interpreter, x), stock, rtol=1e-5, atol=1e-5)


def test_a_small_pruned_layer_is_described_but_left_to_stock(capfd):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((1280,))
    model = keras.Model(inputs, keras.layers.Dense(1000, name="head")(inputs))
    block_prune(model.get_layer("head"), seed=5)
    data = converter.convert(model)
    assert len(fully_connected_rows(data)) == 1
    interpreter = delegate.make_interpreter(data)
    assert delegate.delegated_node_count(interpreter) == 0
    assert "below 12 MiB the stock kernels run it faster" in capfd.readouterr().err
