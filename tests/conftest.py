"""Shared helpers for the integration tests (models, pruning, running)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cocopie_keras.bench import timing  # noqa: E402
from cocopie_keras import pruning  # noqa: E402


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


def pattern_prune(model, connectivity_rate=0.0, seed=0):
    """Prunes in place and gives every conv a random bias (non-trivial test)."""
    rng = np.random.default_rng(seed)
    projections = pruning.prune_model(model, connectivity_rate=connectivity_rate)
    for name in projections:
        layer = model.get_layer(name)
        if layer.use_bias:
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    return projections


def random_input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


run = timing.run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
