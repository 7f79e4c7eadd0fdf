import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cocopie_keras import converter  # noqa: E402
from cocopie_keras import patterns  # noqa: E402
from cocopie_keras import sparsity  # noqa: E402
from cocopie_keras.converter import lr  # noqa: E402
from cocopie_keras.converter import records as records_lib  # noqa: E402


def wrapped_model(group_size=1):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="first")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="second")(x)
    config = sparsity.PatternPruningConfig(connectivity_rate=0.5, pattern_pool="fixed",
                                           group_size=group_size)
    wrapped = sparsity.prune_wrap(keras.Model(inputs, x), config)
    sparsity.hard_prune(wrapped)
    return wrapped


def lr_ids(layer):
    ids = layer.kernel_pattern.astype(np.int64)
    return np.where(ids == lr.REMOVED_KERNEL, patterns.REMOVED, ids)


def test_the_lr_holds_the_pool_and_ids_training_chose():
    wrapped = wrapped_model()
    info = sparsity.pattern_info(wrapped)
    # A kept weight that trained to exactly zero: from the weights alone its
    # kernel no longer shows which pattern it had.
    second = wrapped.get_layer("pattern_prune_second").layer
    kernel = second.kernel.numpy()
    ids = info["second"]["pattern_ids"]
    i, o = np.argwhere(ids != patterns.REMOVED)[0]
    cells = np.argwhere(kernel[:, :, i, o] != 0)
    kernel[cells[-1][0], cells[-1][1], i, o] = 0.0
    second.kernel.assign(kernel)
    layers = converter.read_lr(converter.convert(wrapped, storage="dense"))
    assert len(layers) == 3
    by_op = {layer.op_index: layer for layer in layers}
    first, depthwise, last = (by_op[k] for k in sorted(by_op))
    np.testing.assert_array_equal(last.pattern_masks, info["second"]["pattern_pool"])
    np.testing.assert_array_equal(lr_ids(last), info["second"]["pattern_ids"].T)
    np.testing.assert_array_equal(lr_ids(first), info["first"]["pattern_ids"].T)
    np.testing.assert_array_equal(lr_ids(depthwise), info["depthwise"]["pattern_ids"])


def test_weights_that_left_their_patterns_are_described_from_the_weights():
    wrapped = wrapped_model()
    records = records_lib.records_of(wrapped)
    assert sorted(r.layer for r in records) == ["depthwise", "first", "second"]
    record = next(r for r in records if r.layer == "second")
    kernel = record.projection.mask.astype(np.float32)
    filter_ohwi = np.transpose(kernel, (3, 0, 1, 2)).copy()
    assert records_lib.match(records, filter_ohwi, "m/second/conv", False) is record
    outside = np.argwhere(~record.projection.mask)[0]
    filter_ohwi[outside[3], outside[0], outside[1], outside[2]] = 1.0
    assert records_lib.match(records, filter_ohwi, "m/second/conv", False) is None


def test_the_layer_name_settles_two_records_that_both_fit():
    pool = patterns.default_pattern_pool()
    ids = np.zeros((2, 3), np.int32)
    one = records_lib.PruningRecord("conv", False, pool, ids)
    other = records_lib.PruningRecord("conv_2", False, pool, ids)
    zeros = np.zeros((3, 3, 3, 2), np.float32)
    assert records_lib.match([one, other], zeros, "model/conv_2_1/convolution", False) is other
    assert records_lib.match([one, other], zeros, "model/conv_1/convolution", False) is one
    assert records_lib.match([one, other], zeros, "StatefulPartitionedCall:0", False) is None


def test_models_without_wrappers_have_no_records():
    assert records_lib.records_of(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])) == []
    assert records_lib.records_of("not a model") == []
