"""What the delegate must not trust, and options it must refuse."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import conv_stack, pattern_prune, random_input, run

from cocopie_keras import converter
from cocopie_keras import delegate
from cocopie_keras.converter import lr as lr_lib

CONVS = [
    dict(filters=6, kernel_size=3, padding="same", activation="relu"),
    dict(filters=4, kernel_size=3, padding="same"),
]


@pytest.fixture(scope="module", params=["dense", "sparse"], ids=["dense_filters", "compact"])
def pruned(request):
    model = conv_stack((10, 10, 3), CONVS, seed=5)
    pattern_prune(model, connectivity_rate=0.2)
    return model, converter.convert(model, storage=request.param)


def both_outputs(data, x):
    stock = run(delegate.make_interpreter(data, use_delegate=False), x)
    interpreter = delegate.make_interpreter(data)
    return stock, run(interpreter, x), delegate.delegated_node_count(interpreter)


def test_model_without_metadata_runs_untouched(pruned):
    model, _ = pruned
    plain = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    x = random_input((2, 10, 10, 3))
    stock, ours, claimed = both_outputs(plain, x)
    assert claimed == 0
    np.testing.assert_array_equal(ours, stock)


def test_lr_that_disagrees_with_the_weights_is_refused(pruned, capfd):
    _, data = pruned
    layers = converter.read_lr(data)
    ids = layers[1].kernel_pattern
    kept = ids != lr_lib.REMOVED_KERNEL
    ids[kept] = (ids[kept] + 1) % len(layers[1].pattern_masks)
    tampered = converter.write_lr(data, layers)
    x = random_input((2, 10, 10, 3))
    stock, ours, claimed = both_outputs(tampered, x)
    assert claimed == 1  # only the honest layer
    np.testing.assert_allclose(ours, stock, rtol=1e-5, atol=1e-5)
    err = capfd.readouterr().err
    assert f"node {layers[1].op_index} (CONV_2D) left to stock kernels" in err
    assert "non-zero but the LR prunes that cell" in err


def test_lr_naming_a_removed_kernel_that_has_weights_is_refused(pruned, capfd):
    _, data = pruned
    layers = converter.read_lr(data)
    layers[0].kernel_pattern[0, 0] = lr_lib.REMOVED_KERNEL
    stock, ours, claimed = both_outputs(converter.write_lr(data, layers), random_input((1, 10, 10, 3)))
    assert claimed == 1
    np.testing.assert_allclose(ours, stock, rtol=1e-5, atol=1e-5)
    assert "removes that kernel" in capfd.readouterr().err


def test_lr_pointing_at_wrong_operator_or_shape_is_refused(pruned, capfd):
    _, data = pruned
    layers = converter.read_lr(data)
    first, second = layers[0].op_index, layers[1].op_index
    swapped = [
        lr_lib.LRLayer(second, layers[0].filter_tensor, layers[0].pattern_masks,
                       layers[0].kernel_pattern),
        lr_lib.LRLayer(first, layers[1].filter_tensor, layers[1].pattern_masks,
                       layers[1].kernel_pattern),
    ]
    stock, ours, claimed = both_outputs(converter.write_lr(data, swapped), random_input((1, 10, 10, 3)))
    assert claimed == 0
    np.testing.assert_array_equal(ours, stock)
    assert "LR names tensor" in capfd.readouterr().err


def _with_version(raw, version):
    """The LR ``raw`` written again with another version number."""
    layers = lr_lib.decode(raw)
    saved, lr_lib.VERSION = lr_lib.VERSION, version
    try:
        return lr_lib.encode(layers)
    finally:
        lr_lib.VERSION = saved


# LR version 2: "CPLR", u32 version, u32 layer count, then the layers.
def _version_2(raw):
    return b"CPLR" + (2).to_bytes(4, "little") + (1).to_bytes(4, "little") + raw[12:]


@pytest.mark.parametrize("corrupt, message", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b[:8] + b"XPLR" + b[12:], "identifier"),
    (lambda b: _with_version(b, 9), "LR version 9 is not supported"),
    (_version_2, "LR version 2 is no longer read; convert the model again with this release"),
], ids=["truncated", "identifier", "future_version", "version_2"])
def test_corrupt_lr_is_ignored_with_a_message(pruned, corrupt, message, capfd):
    _, data = pruned
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    (entry,) = [m for m in model.metadata if m.name in (b"cocopie_lr", "cocopie_lr")]
    raw = model.buffers[entry.buffer].data.tobytes()
    model.buffers[entry.buffer].data = np.frombuffer(corrupt(raw), np.uint8).copy()
    broken = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    stock, ours, claimed = both_outputs(broken, random_input((1, 10, 10, 3)))
    assert claimed == 0
    np.testing.assert_array_equal(ours, stock)
    err = capfd.readouterr().err
    assert "ignoring the model's LR" in err and message in err, err


@pytest.mark.parametrize("runtime", ["litert", "tf"])
@pytest.mark.parametrize("options, message", [
    ({"colour": "blue"}, "unknown option 'colour'. Supported options: num_threads, kernel, verbose, tuning, "
     "tuning_cache."),
    ({"num_threads": "two"}, "Received: num_threads=two"),
    ({"num_threads": "-1"}, "Received: num_threads=-1"),
    ({"kernel": "fast"}, "expects 'auto', 'block', 'rows' or 'reference'. Received: kernel=fast"),
])
def test_bad_options_are_refused_clearly(runtime, options, message):
    with pytest.raises(ValueError) as info:
        delegate.load_delegate(runtime=runtime, **options)
    assert message in str(info.value)


def test_runtime_name_is_checked():
    with pytest.raises(ValueError, match="runtime='onnx'"):
        delegate.load_delegate(runtime="onnx")
