"""Filter-pruning surgery: pruned networks compute what zeroed full networks do."""

import keras
import numpy as np
import pytest

from cocopie_keras.cocotune import surgery
from cocotune_helpers import randomize_batchnorm, residual_model


def test_infer_modules_finds_residual_blocks():
    model = residual_model(blocks=3)
    modules = surgery.infer_modules(model)
    assert [m.convs for m in modules] == [(f"b{b}_conv1", f"b{b}_conv2") for b in range(3)]
    assert modules[0].input == "stem_relu" and modules[0].output == "b0_add"
    assert modules[1].input == "b0_out"


@pytest.mark.parametrize("rates", [(0.5, 0.3, 0.7), (0.0, 0.7, 0.0), (0.3, 0.3, 0.3)])
def test_pruned_network_equals_zeroed_full_network(rates):
    model = residual_model(blocks=3, width=10)
    modules = surgery.infer_modules(model)
    pruned = surgery.prune_filters(model, modules, rates)
    zeroed = surgery.zero_filters(model, modules, rates)
    for module, rate in zip(modules, rates):
        kept = int(round(10 * (1 - rate)))
        assert pruned.get_layer(module.convs[0]).filters == kept
        assert pruned.get_layer(module.convs[1]).kernel.shape[2] == kept
    assert pruned.count_params() < model.count_params()
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    # Module outputs keep their shape, so compare there and at the logits.
    for module in modules:
        got = keras.Model(pruned.inputs, pruned.get_layer(module.output).output)(x)
        want = keras.Model(zeroed.inputs, zeroed.get_layer(module.output).output)(x)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(pruned(x)), np.asarray(zeroed(x)), rtol=1e-4, atol=1e-4)
    # And the zeroing matters: the full network computes something else.
    if any(rates):
        assert not np.allclose(np.asarray(model(x)), np.asarray(zeroed(x)), atol=1e-3)


def vgg_chain(width=6):
    """Stem, then two blocks of conv-BN-ReLU, max-pool, conv-BN-ReLU; a head."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(width, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for b in range(2):
        for part in ("a", "b"):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                    name=f"b{b}{part}_conv")(x)
            x = keras.layers.BatchNormalization(name=f"b{b}{part}_bn")(x)
            x = keras.layers.ReLU(name=f"b{b}{part}_relu")(x)
            if part == "a":
                x = keras.layers.MaxPooling2D(name=f"b{b}_pool")(x)
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))
    randomize_batchnorm(model)
    return model


def test_chain_modules_pair_the_convs_after_the_stem():
    model = vgg_chain()
    assert surgery.infer_modules(model) == []  # no residual block
    modules = surgery.infer_chain_modules(model)
    assert [m.convs for m in modules] == [("b0a_conv", "b0b_conv"), ("b1a_conv", "b1b_conv")]
    assert [(m.input, m.output) for m in modules] == [("stem_relu", "b0b_relu"),
                                                       ("b0b_relu", "b1b_relu")]
    # Three convs per module leave one pair short: only one module.
    assert [m.convs for m in surgery.infer_chain_modules(model, 3)] == [
        ("b0a_conv", "b0b_conv", "b1a_conv")]
    rates = (0.5, 0.34)
    pruned = surgery.prune_filters(model, modules, rates)
    zeroed = surgery.zero_filters(model, modules, rates)
    assert pruned.get_layer("b0a_conv").filters == 3
    assert pruned.get_layer("b1a_conv").filters == 4
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(pruned(x)), np.asarray(zeroed(x)), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="convs_per_module=1"):
        surgery.infer_chain_modules(model, 1)


def test_chain_modules_stop_at_joins():
    # In a residual model the chains are the branches: each pair ends before
    # its Add, and no module runs through an Add into the next block.
    modules = surgery.infer_chain_modules(residual_model(blocks=2))
    assert [(m.convs, m.input, m.output) for m in modules] == [
        (("b0_conv1", "b0_conv2"), "stem_relu", "b0_bn2"),
        (("b1_conv1", "b1_conv2"), "b0_out", "b1_bn2")]


def test_l1_importance_keeps_largest_filters():
    kernel = np.zeros((3, 3, 2, 4), dtype="float32")
    for f, scale in enumerate([0.1, 3.0, 0.2, 2.0]):
        kernel[..., f] = scale
    np.testing.assert_array_equal(surgery.kept_filters(kernel, 0.5), [1, 3])


def test_bad_rates_and_modules_are_refused():
    model = residual_model(blocks=2)
    modules = surgery.infer_modules(model)
    with pytest.raises(ValueError, match="rate=1.5"):
        surgery.prune_filters(model, modules, [1.5, 0.3])
    with pytest.raises(ValueError, match="one rate per module"):
        surgery.prune_filters(model, modules, [0.3])
    with pytest.raises(ValueError, match="Expected layer"):
        surgery.validate_modules(model, [{"convs": ["nope"], "input": "image", "output": "b0_add"}])
    # Pruning the last conv of a block would change the shape at the Add: refused.
    bad = surgery.Module(("b0_conv2", "b1_conv1"), "b0_relu1", "b1_add")
    with pytest.raises(ValueError, match="Add"):
        surgery.prune_filters(model, [bad], [0.5])


def test_user_modules_on_a_plain_chain():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(5, 3, name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    module = surgery.Module(("c1", "c2"), model.layers[0].name, "c2")
    pruned = surgery.prune_filters(model, [module], [0.5])
    zeroed = surgery.zero_filters(model, [module], [0.5])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(pruned(x)), np.asarray(zeroed(x)), rtol=1e-4, atol=1e-5)
    assert pruned.get_layer("c1").filters == 3
