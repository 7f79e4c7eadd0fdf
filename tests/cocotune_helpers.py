"""Small residual models and synthetic data for the CoCo-Tune tests."""

import keras
import numpy as np


def residual_model(blocks=3, width=8, input_shape=(8, 8, 3), classes=4, seed=0):
    """A ResNet-style Functional model: stem conv, ``blocks`` residual blocks, head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(width, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for b in range(blocks):
        y = keras.layers.Conv2D(width, 3, padding="same", name=f"b{b}_conv1")(x)
        y = keras.layers.BatchNormalization(name=f"b{b}_bn1")(y)
        y = keras.layers.ReLU(name=f"b{b}_relu1")(y)
        y = keras.layers.Conv2D(width, 3, padding="same", name=f"b{b}_conv2")(y)
        y = keras.layers.BatchNormalization(name=f"b{b}_bn2")(y)
        x = keras.layers.Add(name=f"b{b}_add")([x, y])
        x = keras.layers.ReLU(name=f"b{b}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    randomize_batchnorm(model, seed)
    return model


def randomize_batchnorm(model, seed=0):
    """Non-trivial BatchNorm statistics, so slicing mistakes show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0.2, 0.5, size=n),
                               rng.normal(scale=0.1, size=n), rng.uniform(0.05, 0.5, n)])


def synthetic_data(n=256, input_shape=(8, 8, 3), classes=4, seed=0):
    """Images whose class sets the mean of one channel-quadrant (learnable fast)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(scale=0.5, size=(n, *input_shape)).astype("float32")
    h, w = input_shape[0] // 2, input_shape[1] // 2
    for c in range(classes):
        i, j = divmod(c, 2)
        x[y == c, i * h:(i + 1) * h, j * w:(j + 1) * w, :] += 1.0
    return x, y.astype("int32")
