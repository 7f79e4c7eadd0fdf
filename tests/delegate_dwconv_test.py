"""Pattern-pruned DepthwiseConv2D layers run on the delegate, like stock LiteRT."""

import keras
import numpy as np
import pytest
from conftest import assert_delegate_matches_stock, random_input, run

from cocopie_keras import patterns
from cocopie_keras import converter
from cocopie_keras import delegate
from cocopie_keras.converter import lr as lr_lib
from cocopie_keras.converter import report

CHANNELS = 19  # odd: a scalar channel tail on every SIMD target
FIRST = (2, 15, 17, CHANNELS)
# Batch and spatial sizes the interpreters are resized to, in turn.
RESIZES = [(1, 15, 17, CHANNELS), (2, 9, 6, CHANNELS), (3, 4, 23, CHANNELS)]
# (layer, channels sharing a pattern, fraction of groups removed)
DEPTHWISE_PRUNING = [("dw_s1_same_relu6", 1, 0.0), ("dw_s2_valid", 8, 0.34),
                     ("dw_s2_same_relu_nobias", 16, 0.0)]


def depthwise_model(seed=0):
    """Depthwise convs (stride 1 and 2, SAME and VALID, ReLU6 / ReLU / none)
    around a pattern-pruned 3x3 conv, pruned and given random biases."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, CHANNELS))
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6",
                                     name="dw_s1_same_relu6")(inputs)
    x = keras.layers.Conv2D(24, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", name="dw_s2_valid")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu",
                                     use_bias=False, name="dw_s2_same_relu_nobias")(x)
    model = keras.Model(inputs, x)
    model(np.zeros(FIRST, np.float32))
    rng = np.random.default_rng(seed)
    for name, group, rate in DEPTHWISE_PRUNING:
        layer = model.get_layer(name)
        kernel = layer.kernel.numpy()
        projection = patterns.project_kernel(kernel, connectivity_rate=rate,
                                             group_size=group, depthwise=True)
        layer.kernel.assign(kernel * projection.mask)
        if layer.use_bias:
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    conv = model.get_layer("conv")
    conv.kernel.assign(
        conv.kernel * patterns.project_kernel(conv.kernel.numpy(), group_size=32).mask)
    return model


@pytest.fixture(scope="module")
def converted():
    model = depthwise_model()
    return model, {compact: converter.convert(model, storage="sparse" if compact else "dense")
                   for compact in (False, True)}


def depthwise_layers(data):
    return [layer for layer in converter.read_lr(data) if layer.kernel_pattern.shape[1] == 1]


@pytest.mark.parametrize("compact", [False, True], ids=["dense_filters", "compact"])
def test_lr_describes_every_pruned_depthwise_layer(converted, compact):
    _, data = converted
    layers = converter.read_lr(data[compact])
    assert [layer.kernel_pattern.shape for layer in layers] == [
        (CHANNELS, 1), (24, CHANNELS), (24, 1), (24, 1)]
    assert converter.check_lr(data[compact]) == []
    # Channels sharing a pattern are stored once per group; one group of 8
    # channels is removed (its outputs are the bias).
    ids = layers[2].kernel_pattern[:, 0]
    assert np.all(ids.reshape(3, 8) == ids[::8, None])
    assert np.count_nonzero(ids == lr_lib.REMOVED_KERNEL) == 8
    kinds = [r["kind"] for r in report.layer_reports(data[compact])]
    assert kinds == ["dwconv3x3_pattern", "conv3x3_pattern", "dwconv3x3_pattern",
                     "dwconv3x3_pattern"]


@pytest.mark.parametrize("runtime", ["litert", "tf"])
@pytest.mark.parametrize("kernel", ["auto", "reference"])
@pytest.mark.parametrize("compact", [False, True], ids=["dense_filters", "compact"])
def test_matches_stock_runtime_at_batch_2(converted, compact, kernel, runtime):
    model, data = converted
    x = random_input(FIRST)
    ours, _ = assert_delegate_matches_stock(  # 3 depthwise + 1 conv
        data[compact], x, 4, runtime=runtime, input_shape=x.shape, kernel=kernel, num_threads=2)
    np.testing.assert_allclose(ours, model(x).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("runtime", ["litert", "tf"])
def test_follows_input_resizes(converted, runtime):
    _, data = converted
    stock = delegate.make_interpreter(data[True], use_delegate=False, runtime=runtime,
                                      input_shape=FIRST)
    ours = delegate.make_interpreter(data[True], runtime=runtime, input_shape=FIRST)
    for shape in RESIZES:
        x = random_input(shape, seed=shape[1])
        expected, actual = run(stock, x), run(ours, x)
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compact", [False, True], ids=["dense_filters", "compact"])
def test_lr_that_lies_about_a_depthwise_filter_is_refused(converted, compact, capfd):
    _, data = converted
    layers = converter.read_lr(data[compact])
    lying = layers[0]  # free per-channel patterns: shifting ids uncovers weights
    ids = lying.kernel_pattern
    kept = ids != lr_lib.REMOVED_KERNEL
    ids[kept] = (ids[kept] + 1) % len(lying.pattern_masks)
    tampered = converter.write_lr(data[compact], layers)
    assert any("pruned weights are non-zero" in p for p in converter.check_lr(tampered))
    x = random_input(FIRST)
    assert_delegate_matches_stock(tampered, x, 3, input_shape=x.shape)
    err = capfd.readouterr().err
    assert f"node {lying.op_index} (DEPTHWISE_CONV_2D) left to stock kernels" in err
    assert "non-zero but the LR prunes that cell" in err


def test_lr_removing_a_depthwise_kernel_that_has_weights_is_refused(converted, capfd):
    _, data = converted
    layers = converter.read_lr(data[True])
    layers[3].kernel_pattern[5, 0] = lr_lib.REMOVED_KERNEL
    interpreter = delegate.make_interpreter(converter.write_lr(data[True], layers),
                                            input_shape=FIRST)
    assert delegate.delegated_node_count(interpreter) == 3
    assert "removes that kernel" in capfd.readouterr().err


def test_lr_giving_a_depthwise_kernel_several_inputs_is_refused(converted, capfd):
    _, data = converted
    layers = converter.read_lr(data[False])
    wide = layers[2]
    # 24 "input channels" of 1 output: the filter is (1, 3, 3, 24) either way.
    layers[2] = lr_lib.LRLayer(wide.op_index, wide.filter_tensor, wide.pattern_masks,
                               wide.kernel_pattern.T.copy())
    tampered = converter.write_lr(data[False], layers)
    assert any("one input channel per kernel" in p for p in converter.check_lr(tampered))
    interpreter = delegate.make_interpreter(tampered, input_shape=FIRST)
    assert delegate.delegated_node_count(interpreter) == 3
    assert "a depthwise kernel has 1" in capfd.readouterr().err


def test_dilated_depthwise_node_is_refused(converted, capfd):
    # The TFLite converter lowers dilation to SPACE_TO_BATCH_ND; a file that
    # dilates the node itself must still run, on the stock kernels.
    from ai_edge_litert.tools import flatbuffer_utils

    _, data = converted
    first = converter.read_lr(data[False])[0]
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data[False]))
    model.subgraphs[0].operators[first.op_index].builtinOptions.dilationWFactor = 2
    dilated = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    assert any("dilation" in p for p in converter.check_lr(dilated))
    x = random_input(FIRST)
    assert_delegate_matches_stock(dilated, x, 3, input_shape=x.shape)
    assert "dilated depthwise convolutions are not delegated" in capfd.readouterr().err


def test_unpruned_and_multiplier_depthwise_are_not_described():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 6))
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dense")(inputs)
    # The converter lowers dilation to SPACE_TO_BATCH_ND around a plain
    # depthwise conv, which is then described like any other.
    x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="dilated")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2,
                                     name="multiplier")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="pruned")(x)
    model = keras.Model(inputs, x)
    for name in ("dilated", "multiplier", "pruned"):
        layer = model.get_layer(name)
        kernel = layer.kernel.numpy()
        # Every (channel, multiplier) kernel keeps its top row and centre.
        mask = np.zeros_like(kernel)
        mask[0, :, :, :] = 1
        mask[1, 1, :, :] = 1
        layer.kernel.assign(kernel * mask)
    data = converter.convert(model)
    described = depthwise_layers(data)
    assert [layer.kernel_pattern.shape for layer in described] == [(6, 1), (12, 1)]
    x = random_input((1, 12, 12, 6))
    assert_delegate_matches_stock(data, x, 2)
