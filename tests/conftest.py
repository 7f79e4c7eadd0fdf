"""Shared helpers for the integration tests (models, pruning, running)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cocopie_keras.bench import timing  # noqa: E402
from cocopie_keras import converter, delegate, sparsity  # noqa: E402


def conv_stack(input_shape, convs, seed=0, head=None):
    """A Functional model of Conv2D layers: ``convs`` = list of kwargs."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = inputs
    for kwargs in convs:
        x = keras.layers.Conv2D(**kwargs)(x)
    if head is not None:
        x = head(x)
    return keras.Model(inputs, x)


def prune_3x3_convs(model, connectivity_rate=0.0, pattern_pool="fixed", group_size=1):
    """``sparsity.prune_in_place`` on the model's 3x3 Conv2D layers only.

    The fixtures here were built around pruned 3x3 convs next to dense 1x1,
    5x5 and depthwise layers, so every other kernel layer is skipped.
    """
    others = [layer.name for layer in model._flatten_layers(include_self=False)
              if hasattr(layer, "kernel")
              and not (isinstance(layer, keras.layers.Conv2D)
                       and not isinstance(layer, keras.layers.DepthwiseConv2D)
                       and tuple(layer.kernel_size) == (3, 3))]
    pool_size = {} if isinstance(pattern_pool, str) else {"num_patterns": len(pattern_pool)}
    config = sparsity.PatternPruningConfig(
        connectivity_rate=connectivity_rate, pattern_pool=pattern_pool,
        group_size=group_size, skip_layers=others, **pool_size)
    return sparsity.prune_in_place(model, config)


def pattern_prune(model, connectivity_rate=0.0, seed=0):
    """Prunes in place and gives every conv a random bias (non-trivial test)."""
    rng = np.random.default_rng(seed)
    projections = prune_3x3_convs(model, connectivity_rate=connectivity_rate)
    for name in projections:
        layer = model.get_layer(name)
        if layer.use_bias:
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    return projections


def pruned_conv_stack_file(tmp_path_factory, folder, input_shape, convs, connectivity_rate):
    """A ``conv_stack`` pattern-pruned and converted, written to ``folder``/model.tflite."""
    model = conv_stack(input_shape, convs)
    pattern_prune(model, connectivity_rate=connectivity_rate)
    path = tmp_path_factory.mktemp(folder) / "model.tflite"
    path.write_bytes(converter.convert(model))
    return path


def random_input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


run = timing.run


def assert_delegate_matches_stock(data, x, delegated_nodes, runtime="litert", input_shape=None,
                                  **options):
    """Runs ``data`` on ``x`` on stock LiteRT and with the delegate (``options``:
    kernel, num_threads, verbose, ...): the delegate claims ``delegated_nodes``
    nodes and gives stock's outputs. Returns (delegate's outputs, stock's)."""
    stock = run(delegate.make_interpreter(data, use_delegate=False, runtime=runtime,
                                          input_shape=input_shape), x)
    interpreter = delegate.make_interpreter(data, runtime=runtime, input_shape=input_shape,
                                            **options)
    assert delegate.delegated_node_count(interpreter) == delegated_nodes
    ours = run(interpreter, x)
    np.testing.assert_allclose(ours, stock, rtol=1e-5, atol=1e-5)
    return ours, stock


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
