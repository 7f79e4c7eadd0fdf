"""The delegate inside real runtimes gives stock LiteRT's outputs."""

import keras
import numpy as np
import pytest
from conftest import assert_delegate_matches_stock, conv_stack, pattern_prune, random_input, run

from cocopie_keras import converter
from cocopie_keras import delegate

# (input shape, conv layers, connectivity rate): odd channel counts, stride 1
# and 2, SAME and VALID, ReLU / ReLU6 / none, dilation, no bias, chains whose
# intermediate tensors stay inside one delegate partition.
CASES = {
    "same_s1_relu_odd": ((9, 9, 3), [dict(filters=5, kernel_size=3, padding="same", activation="relu")], 0.0),
    "same_s2_none": ((10, 12, 7), [dict(filters=3, kernel_size=3, strides=2, padding="same")], 0.0),
    "valid_s2_relu6": ((12, 12, 4), [dict(filters=6, kernel_size=3, strides=2, padding="valid", activation="relu6")], 0.0),
    "valid_s1_chain": ((8, 13, 5), [dict(filters=7, kernel_size=3, padding="valid", activation="relu"),
                                   dict(filters=9, kernel_size=3, padding="same", activation="relu6"),
                                   dict(filters=3, kernel_size=3, strides=2, padding="same")], 0.3),
    "dilated_no_bias": ((11, 10, 3), [dict(filters=4, kernel_size=3, dilation_rate=2, padding="same", use_bias=False)], 0.0),
    "connectivity_half": ((14, 14, 16), [dict(filters=24, kernel_size=3, padding="same", activation="relu")], 0.5),
}
RESIZED = {"same_s1_relu_odd": (2, 13, 6, 3), "valid_s1_chain": (2, 11, 9, 5)}


@pytest.fixture(scope="module")
def converted():
    out = {}
    for name, (shape, convs, rate) in CASES.items():
        model = conv_stack((None, None, shape[2]) if name in RESIZED else shape, convs)
        if name in RESIZED:
            model(np.zeros((1,) + shape, np.float32))
        pattern_prune(model, connectivity_rate=rate)
        out[name] = (model, converter.convert(model))
    return out


@pytest.mark.parametrize("runtime", ["litert", "tf"])
@pytest.mark.parametrize("kernel", ["auto", "block", "rows", "reference"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_stock_runtime_at_batch_2(converted, name, kernel, runtime):
    model, data = converted[name]
    shape = CASES[name][0]
    x = random_input((2,) + shape)
    stock = run(delegate.make_interpreter(
        data, use_delegate=False, runtime=runtime, input_shape=x.shape), x)
    ours_interpreter = delegate.make_interpreter(
        data, runtime=runtime, kernel=kernel, input_shape=x.shape)
    assert delegate.delegated_node_count(ours_interpreter) == len(CASES[name][1])
    ours = run(ours_interpreter, x)
    np.testing.assert_allclose(ours, stock, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours, model(x).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("runtime", ["litert", "tf"])
@pytest.mark.parametrize("name", sorted(RESIZED))
def test_follows_input_resizes(converted, name, runtime):
    _, data = converted[name]
    first = (1,) + CASES[name][0]
    stock = delegate.make_interpreter(data, use_delegate=False, runtime=runtime,
                                      input_shape=first)
    ours = delegate.make_interpreter(data, runtime=runtime, input_shape=first)
    for shape in [(1,) + CASES[name][0], RESIZED[name], (3,) + CASES[name][0]]:
        x = random_input(shape, seed=len(shape))
        expected, actual = run(stock, x), run(ours, x)
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_threads_give_the_same_answer(converted):
    _, data = converted["connectivity_half"]
    x = random_input((2, 14, 14, 16))
    one = run(delegate.make_interpreter(data, num_threads=1), x)
    two = run(delegate.make_interpreter(data, num_threads=2), x)
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-6)


def test_partition_outputs_feeding_stock_ops():
    # Residual add and a pooling head consume delegate outputs; XNNPACK runs them.
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 8))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv2D(8, 3, padding="same")(a)
    x = keras.layers.Add()([a, b])
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(5, 3, padding="same")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    pattern_prune(model, connectivity_rate=0.2)
    data = converter.convert(model)
    x = random_input((2, 12, 12, 8))
    assert_delegate_matches_stock(data, x, 3)


def test_simd_target_is_reported():
    assert delegate.simd_target() in {"AVX3_SPR", "AVX3_ZEN4", "AVX3_DL", "AVX3", "AVX2",
                                      "SSE4", "SSSE3", "NEON", "SVE", "SVE2",
                                      "EMU128", "SCALAR"}


def test_the_library_reports_its_channel_block_for_this_cpu():
    # 32 output channels on 16-lane targets (AVX-512), 16 on the others.
    wide = delegate.simd_target().startswith("AVX3")
    assert delegate.preferred_channel_block() == (32 if wide else 16)


@pytest.mark.parametrize("kernel", ["auto", "block", "rows", "reference"])
def test_connectivity_pruned_pointwise_conv(kernel):
    # A ResNet-style bottleneck: 1x1 reduce, 3x3 pattern conv, 1x1 expand.
    keras.utils.set_random_seed(11)
    inputs = keras.Input((9, 9, 40))
    x = keras.layers.Conv2D(24, 1, activation="relu")(inputs)
    x = keras.layers.Conv2D(24, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(48, 1)(x)
    model = keras.Model(inputs, x)
    pattern_prune(model, connectivity_rate=0.5)
    rng = np.random.default_rng(5)
    for layer in model.layers[1::2]:  # the two 1x1 convs
        k = layer.kernel.numpy()
        layer.kernel.assign(k * (rng.random(k.shape) > 0.7))
    data = converter.convert(model)
    assert len(converter.read_lr(data)) == 3
    x = random_input((2, 9, 9, 40))
    assert_delegate_matches_stock(data, x, 3, kernel=kernel)
