import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from cocopie_keras.bench import timing  # noqa: E402
from cocopie_keras import delegate  # noqa: E402
from cocopie_keras import patterns  # noqa: E402
from cocopie_keras.converter import conversion as convert_lib  # noqa: E402
from cocopie_keras.converter import lr  # noqa: E402
from conftest import prune_3x3_convs  # noqa: E402


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(5, 3, strides=2)(x)
    x = keras.layers.Conv2D(4, 1)(x)  # 1x1: never in the LR
    return keras.Model(inputs, x)


def plain_tflite(model):
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_pruned_model_gets_an_lr_and_same_outputs_on_stock_litert():
    model = small_model()
    prune_3x3_convs(model, connectivity_rate=0.25)
    data = convert_lib.convert(model, storage="dense")
    layers = convert_lib.read_lr(data)
    assert [layer.op_index for layer in layers] == [0, 1]
    assert convert_lib.check_lr(data) == []
    x = np.random.default_rng(0).normal(size=(1, 9, 9, 3)).astype("float32")
    with_lr = timing.run(delegate.make_interpreter(data, use_delegate=False), x)
    without = timing.run(
        delegate.make_interpreter(plain_tflite(model), use_delegate=False), x
    )
    np.testing.assert_array_equal(with_lr, without)
    np.testing.assert_allclose(with_lr, model(x).numpy(), atol=1e-5)


def test_patterns_are_read_from_weights_pruned_by_another_tool():
    model = small_model(1)
    conv = model.layers[1]
    kernel = conv.kernel.numpy()
    # Another tool's pruning: keep an arbitrary 4-cell shape per kernel.
    mask = np.zeros_like(kernel, dtype=bool)
    mask[0, 0] = mask[0, 2] = mask[2, 0] = mask[2, 2] = True  # four corners
    conv.kernel.assign(kernel * mask)
    data = convert_lib.convert(model, storage="dense")
    (layer,) = convert_lib.read_lr(data)
    assert layer.op_index == 0
    np.testing.assert_array_equal(layer.kept_mask_ohwi(), np.transpose(mask, (3, 0, 1, 2)))
    assert convert_lib.check_lr(data) == []


def test_pool_given_by_the_pruning_api_is_used():
    model = small_model(2)
    pool = patterns.default_pattern_pool()[2:6]
    prune_3x3_convs(model, pattern_pool=pool)
    layers = convert_lib.read_lr(convert_lib.convert(model, pattern_pool=pool))
    for layer in layers:
        np.testing.assert_array_equal(layer.pattern_masks, pool)


def test_dense_model_has_an_empty_lr():
    data = convert_lib.convert(small_model())
    assert convert_lib.read_lr(data) == []


def test_annotating_twice_keeps_one_lr_entry():
    model = small_model()
    prune_3x3_convs(model)
    once = convert_lib.convert(model)
    twice = convert_lib.annotate(once)
    assert len(twice) == len(once)
    assert len(convert_lib.read_lr(twice)) == 2


def test_file_without_lr_reads_as_none():
    assert convert_lib.read_lr(plain_tflite(small_model())) is None


def test_check_lr_reports_weights_that_break_the_patterns():
    model = small_model()
    prune_3x3_convs(model)
    data = convert_lib.convert(model)
    layers = convert_lib.read_lr(data)
    ids = layers[0].kernel_pattern
    kept = ids != lr.REMOVED_KERNEL
    ids[kept] = (ids[kept] + 1) % len(layers[0].pattern_masks)
    problems = convert_lib.check_lr(convert_lib.write_lr(data, layers))
    assert len(problems) == 1 and f"operator {layers[0].op_index}" in problems[0]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="Expected a keras.Model"):
        convert_lib.convert("model.keras")
    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="built"):
        convert_lib.convert(unbuilt)
    with pytest.raises(ValueError, match="TFL3"):
        convert_lib.read_lr(b"not a flatbuffer at all")


def test_connectivity_pruned_pointwise_convs_are_described():
    model = small_model(4)
    pointwise = model.layers[-1]
    kernel = pointwise.kernel.numpy()  # (1, 1, 5, 4)
    kernel[0, 0, :3, 1] = 0.0  # 3 of 20 weights: too few to bother
    pointwise.kernel.assign(kernel)
    assert convert_lib.read_lr(convert_lib.convert(model)) == []
    kernel[0, 0, :, 2:] = 0.0  # now 13 of 20 removed
    pointwise.kernel.assign(kernel)
    data = convert_lib.convert(model, storage="dense")
    (layer,) = convert_lib.read_lr(data)
    assert layer.op_index == 2 and layer.kernel_size == (1, 1)
    np.testing.assert_array_equal(
        layer.kernel_pattern == lr.REMOVED_KERNEL, (kernel[0, 0] == 0).T
    )
    assert convert_lib.check_lr(data) == []


def test_kernels_larger_than_the_lr_pattern_mask_are_left_out():
    # A pattern is a 32-bit mask: a pruned 6x6 conv (36 cells) stays with
    # stock kernels and the rest of the model is still described.
    keras.utils.set_random_seed(6)
    inputs = keras.Input((12, 12, 2))
    x = keras.layers.Conv2D(4, 6, padding="same", name="wide")(inputs)
    x = keras.layers.DepthwiseConv2D(6, padding="same", name="wide_dw")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, name="small")(x))
    keep = np.zeros((6, 6, 1, 1), "float32")
    keep[2:4, 2:4] = 1.0  # 4 cells: pattern-pruned, were the kernel small enough
    for name in ("wide", "wide_dw", "small"):
        layer = model.get_layer(name)
        mask = keep if name != "small" else patterns.project_kernel(
            layer.kernel.numpy(), connectivity_rate=0.0).mask
        layer.kernel.assign(layer.kernel.numpy() * mask)
    data = convert_lib.convert(model)
    (layer,) = convert_lib.read_lr(data)
    assert layer.kernel_size == (3, 3)  # only "small"
    assert convert_lib.check_lr(data) == []


def test_truncated_or_damaged_flatbuffers_raise_value_errors():
    data = convert_lib.convert(small_model())
    for cut in (20, 100, len(data) // 2, len(data) - 8):
        with pytest.raises(ValueError, match="do not parse"):
            convert_lib.read_lr(data[:cut])
