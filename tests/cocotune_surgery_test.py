"""Filter-pruning surgery: pruned networks compute what zeroed full networks do."""

import keras
import numpy as np
import pytest

from cocopie_keras.cocotune import surgery
from cocotune_helpers import residual_model


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
