"""ADD, MAX_POOL_2D and PAD between pattern convolutions run inside the delegate."""

import keras
import numpy as np
import pytest
from conftest import assert_delegate_matches_stock, prune_3x3_convs, random_input, run

from cocopie_keras import converter
from cocopie_keras import delegate

layers = keras.layers


def residual_net(pool_padding="valid", seed=0):
    """conv → max-pool → conv → ADD(+ReLU) → zero pad → conv (valid) → head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((15, 15, 8))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(3, strides=2, padding=pool_padding)(x)
    y = layers.Conv2D(16, 3, padding="same")(x)
    x = layers.ReLU()(layers.Add()([x, y]))
    y = layers.Conv2D(16, 3, padding="same", activation="relu6")(x)
    x = layers.Add()([x, y])                   # no activation
    x = layers.ZeroPadding2D(((1, 2), (0, 1)))(x)
    x = layers.Conv2D(12, 3, padding="valid", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)              # leads to the head only: stays stock
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(5)(x))
    prune_3x3_convs(model, connectivity_rate=0.3)
    return model


@pytest.fixture(scope="module", params=["valid", "same"])
def residual_file(request):
    model = residual_net(request.param)
    return model, converter.convert(model)


@pytest.mark.parametrize("runtime", ["litert", "tf"])
def test_ops_between_convs_run_in_the_delegate(residual_file, runtime, capfd):
    model, data = residual_file
    x = random_input((2, 15, 15, 8))
    _, stock = assert_delegate_matches_stock(data, x, 4, runtime=runtime, num_threads=2,
                                             verbose=1)
    np.testing.assert_allclose(stock, model(x).numpy(), rtol=1e-4, atol=1e-4)
    # MAX_POOL, two ADDs and the PAD join the convolutions; the last MAX_POOL
    # (before the head) does not.
    assert "also running 4 ADD / MAX_POOL_2D / PAD nodes" in capfd.readouterr().err


def test_resized_inputs_reshape_the_simple_ops(residual_file):
    _, data = residual_file
    interpreter = delegate.make_interpreter(data, num_threads=2)
    stock = delegate.make_interpreter(data, use_delegate=False)
    for shape in [(1, 21, 17, 8), (3, 9, 11, 8), (1, 15, 15, 8)]:
        x = random_input(shape, seed=shape[1])
        for it in (interpreter, stock):
            it.resize_tensor_input(it.get_input_details()[0]["index"], list(shape))
            it.allocate_tensors()
        np.testing.assert_allclose(run(interpreter, x), run(stock, x), rtol=1e-5, atol=1e-5)


def test_lone_ops_are_left_to_the_runtime(capfd):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((10, 10, 4))
    a = layers.Conv2D(8, 3, padding="same")(inputs)
    b = layers.MaxPooling2D(2)(inputs)                # reads the model input only
    b = layers.Conv2D(8, 1)(b)
    x = layers.Add()([layers.MaxPooling2D(2)(a), b])  # feeds nothing of ours
    model = keras.Model(inputs, x)
    prune_3x3_convs(model)
    data = converter.convert(model)
    x = random_input((1, 10, 10, 4))
    assert_delegate_matches_stock(data, x, 1, verbose=1)
    assert "also running" not in capfd.readouterr().err
