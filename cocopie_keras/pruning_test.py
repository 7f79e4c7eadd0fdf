"""The deprecated ``cocopie_keras.pruning`` shims (``prune_model``,
``PatternMaskCallback``, ``conv_weight_density``) still work for one release;
the API they forward to is tested in ``sparsity/sparsity_test.py``."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cocopie_keras import pruning  # noqa: E402


def residual_model():
    inputs = keras.Input((10, 10, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same", name="branch")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(4, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_prunes_3x3_convs_of_a_residual_model_in_place():
    model = residual_model()
    projections = pruning.prune_model(model, connectivity_rate=0.5)
    assert sorted(projections) == ["branch", "stem"]
    for name, projection in projections.items():
        kernel = model.get_layer(name).kernel.numpy()
        assert not np.any(kernel[~projection.mask])
    # stem has one input channel: connectivity pruning is not applied to it.
    assert projections["stem"].density == pytest.approx(4 / 9)
    assert projections["branch"].density == pytest.approx(4 / 9 * 0.5)
    assert model.get_layer("pointwise").kernel.numpy().all()


def test_skip_first_conv_and_layer_names():
    model = residual_model()
    assert sorted(pruning.prune_model(model, skip_first_conv=True)) == ["branch"]
    assert sorted(pruning.prune_model(residual_model(), layer_names=["stem"])) == ["stem"]


def test_bad_arguments_fail_before_touching_weights():
    model = residual_model()
    before = model.get_layer("stem").kernel.numpy().copy()
    with pytest.raises(ValueError, match="Received: layer_names=\\['pointwise'\\]"):
        pruning.prune_model(model, layer_names=["pointwise"])
    with pytest.raises(ValueError, match="connectivity_rate=1.0"):
        pruning.prune_model(model, connectivity_rate=1.0)
    np.testing.assert_array_equal(model.get_layer("stem").kernel.numpy(), before)
    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="not built"):
        pruning.prune_model(unbuilt)


def test_mask_callback_keeps_pruned_weights_at_zero_during_fit():
    keras.utils.set_random_seed(0)
    model = residual_model()
    projections = pruning.prune_model(model, connectivity_rate=0.25)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 10, 10, 1)).astype("float32")
    y = np.random.default_rng(1).normal(size=(32, 2)).astype("float32")
    before = model.get_layer("branch").kernel.numpy().copy()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0,
              callbacks=[pruning.PatternMaskCallback(projections)])
    kernel = model.get_layer("branch").kernel.numpy()
    mask = projections["branch"].mask
    assert not np.any(kernel[~mask])
    assert not np.allclose(kernel[mask], before[mask])  # kept weights trained


def test_mask_callback_fails_loudly_on_a_foreign_model():
    projections = pruning.prune_model(residual_model())
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    other.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="'branch'|'stem'"):
        other.fit(np.zeros((2, 4)), np.zeros((2, 1)), verbose=0,
                  callbacks=[pruning.PatternMaskCallback(projections)])


def test_conv_weight_density():
    model = residual_model()
    assert pruning.conv_weight_density(model) == 1.0
    pruning.prune_model(model)
    assert pruning.conv_weight_density(model) == pytest.approx(4 / 9, abs=1e-6)


def test_group_size_makes_channel_groups_share_patterns():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 6))
    x = keras.layers.Conv2D(12, 3, padding="same", name="wide")(inputs)
    model = keras.Model(inputs, x)
    projections = pruning.prune_model(model, connectivity_rate=0.5, group_size=4)
    ids = projections["wide"].pattern_ids  # (in, out)
    for start in range(0, 12, 4):
        group = ids[:, start:start + 4]
        assert np.all(group == group[:, :1])  # one pattern (or removal) per group
    free = pruning.prune_model(residual_model(), connectivity_rate=0.5)
    assert free["branch"].density == pytest.approx(4 / 9 * 0.5, abs=0.05)


@pytest.mark.parametrize("group_size", [0, -2, 1.5, True])
def test_bad_group_size_is_a_clear_error(group_size):
    with pytest.raises(ValueError, match="group_size"):
        pruning.prune_model(residual_model(), group_size=group_size)


def test_mask_callback_holds_masks_on_a_model_trained_before_and_lets_go_after():
    keras.utils.set_random_seed(1)
    model = residual_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    x = np.random.default_rng(2).normal(size=(16, 10, 10, 1)).astype("float32")
    y = np.random.default_rng(3).normal(size=(16, 2)).astype("float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # traces a train function
    projections = pruning.prune_model(model, connectivity_rate=0.5)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0,
              callbacks=[pruning.PatternMaskCallback(projections)])
    mask = projections["branch"].mask
    assert not np.any(model.get_layer("branch").kernel.numpy()[~mask])
    assert model.get_layer("branch").kernel.constraint is None
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # no callback: masks not held
    assert np.any(model.get_layer("branch").kernel.numpy()[~mask])


def test_deprecated_names_warn():
    with pytest.warns(DeprecationWarning, match="sparsity.prune_in_place"):
        pruning.prune_model(residual_model())
