import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cocopie_keras import patterns  # noqa: E402
from cocopie_keras import sparsity  # noqa: E402
from cocopie_keras.sparsity import summaries  # noqa: E402


def residual_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="branch")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(y)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.Conv2D(4, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def sequential_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2"),
        keras.layers.Flatten(),
        keras.layers.Dense(8, name="d1"),
        keras.layers.Dense(3, name="head"),
    ])


def data(shape, classes=3, n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + shape).astype("float32"), rng.integers(0, classes, n)


def compile_model(model, learning_rate=1e-2):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def assert_exact_patterns(wrapper):
    """Kept kernels hold their pattern's cells (and nothing else); the
    connectivity rate is met exactly; every weight off the mask is zero."""
    kernel = keras.ops.convert_to_numpy(wrapper.kernel)
    mask = keras.ops.convert_to_numpy(wrapper.pattern_mask).astype(bool)
    ids = keras.ops.convert_to_numpy(wrapper.pattern_ids)
    assert not np.any(kernel[~mask])
    assert np.sum(ids == patterns.REMOVED) == int(np.floor(wrapper.connectivity_rate * ids.size))
    for ci, co in itertools.product(*map(range, ids.shape)):
        expected = (np.zeros(kernel.shape[:2], bool) if ids[ci, co] == patterns.REMOVED
                    else wrapper.pattern_pool[ids[ci, co]])
        np.testing.assert_array_equal(mask[:, :, ci, co], expected)
        # Trained kept weights are non-zero: the support is the pattern.
        np.testing.assert_array_equal(kernel[:, :, ci, co] != 0, expected)


def admm_then_finetune(model, x, y, admm_epochs=2, finetune_epochs=1, **admm_kwargs):
    compile_model(model)
    callback = sparsity.ADMMCallback(**admm_kwargs)
    model.fit(x, y, batch_size=8, epochs=admm_epochs, verbose=0, callbacks=[callback])
    sparsity.hard_prune(model)
    compile_model(model)
    model.fit(x, y, batch_size=8, epochs=finetune_epochs, verbose=0,
              callbacks=[sparsity.MaskedFineTuneCallback()])
    return callback


def test_residual_functional_model_full_recipe_and_strip():
    model = residual_model()
    config = sparsity.PatternPruningConfig(connectivity_rate=0.5, layer_rates={"depthwise": 0.25})
    wrapped = sparsity.prune_wrap(model, config)
    wrappers = {w.layer.name: w for w in sparsity.pruning_wrappers(wrapped)}
    assert sorted(wrappers) == ["branch", "depthwise", "stem"]  # 1x1 and Dense left alone
    assert wrappers["stem"].connectivity_rate == 0.5  # 2 input channels: rate applies
    assert wrappers["depthwise"].connectivity_rate == 0.25
    x, y = data((8, 8, 2))
    callback = admm_then_finetune(wrapped, x, y)
    assert len(callback.history) == 3  # initial projection + one per epoch
    for wrapper in wrappers.values():
        assert_exact_patterns(wrapper)
    plain = sparsity.strip_pruning(wrapped)
    assert not sparsity.pruning_wrappers(plain)
    def names(m):
        return [layer.name for layer in m.layers if not isinstance(layer, keras.layers.InputLayer)]

    assert names(plain) == names(model)
    np.testing.assert_allclose(plain.predict(x, verbose=0), wrapped.predict(x, verbose=0),
                               atol=1e-6)
    np.testing.assert_array_equal(
        plain.get_layer("branch").kernel.numpy() != 0,
        keras.ops.convert_to_numpy(wrappers["branch"].pattern_mask).astype(bool))
    info = sparsity.pattern_info(wrapped)
    assert info["branch"]["density"] == pytest.approx(4 / 9 * 0.5)


def test_sequential_model_with_dense_blocks_and_conversion():
    from cocopie_keras import converter

    model = sequential_model()
    config = sparsity.PatternPruningConfig(connectivity_rate=0.25, pattern_pool="fixed",
                                           dense_block_size=(4, 4), dense_entries=8,
                                           skip_layers=["head"])
    wrapped = sparsity.prune_wrap(model, config)
    names = [w.layer.name for w in sparsity.pruning_wrappers(wrapped)]
    assert names == ["c1", "c2", "d1"]
    x, y = data((8, 8, 1))
    admm_then_finetune(wrapped, x, y, admm_epochs=1)
    dense_wrapper = sparsity.pruning_wrappers(wrapped)[2]
    assert dense_wrapper.masks_hold()
    assert keras.ops.convert_to_numpy(dense_wrapper.pattern_mask).mean() == pytest.approx(0.5)
    lr_layers = converter.read_lr(converter.convert(wrapped))  # strips the wrappers itself
    # c1, c2 and the block-pruned Dense d1 (as a 1x1 conv); the dense head is not described.
    assert len(lr_layers) == 3
    assert lr_layers[2].kernel_size == (1, 1)


def test_dense_blocks_kept_whole_when_entries_fill_the_block():
    model = sequential_model()
    config = sparsity.PatternPruningConfig(dense_block_size=(4, 4), dense_entries=16,
                                           dense_connectivity_rate=0.5, skip_types=["Conv2D"],
                                           skip_layers=["head"])
    assert sparsity.PatternPruningConfig.from_config(config.get_config()) == config
    assert list(sparsity.prune_in_place(model, config)) == ["d1"]
    kernel = model.get_layer("d1").kernel.numpy()  # (512, 8): 128 x 2 blocks
    nonzero = (kernel.reshape(128, 4, 2, 4) != 0).sum(axis=(1, 3))
    assert set(np.unique(nonzero)) == {0, 16}
    assert (nonzero == 0).mean() == pytest.approx(0.5)


def test_admm_reduces_the_residual_monotonically_on_a_toy_problem():
    # A linear conv fitted to a teacher that is pattern-structured plus off-pattern
    # noise; enough SGD steps per update that each W-step is nearly exact, the
    # setting in which the ADMM residual contracts at every update.
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6, 6, 4)),
                              keras.layers.Conv2D(6, 3, use_bias=False, name="conv")])
    x = np.random.default_rng(0).normal(size=(64, 6, 6, 4)).astype("float32")
    raw = np.random.default_rng(1).normal(size=(3, 3, 4, 6)).astype("float32")
    structured = raw * patterns.project_kernel(raw, connectivity_rate=0.25).mask
    teacher = structured + 0.1 * np.random.default_rng(2).normal(size=raw.shape)
    teacher = teacher.astype("float32")
    y = keras.ops.convert_to_numpy(keras.ops.conv(x, teacher))
    model.get_layer("conv").kernel.assign(teacher)
    wrapped = sparsity.prune_wrap(model, sparsity.PatternPruningConfig(connectivity_rate=0.25))
    wrapped.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    callback = sparsity.ADMMCallback(rho=1.0)
    first_update = StateAtFirstStep()
    wrapped.fit(x, y, batch_size=2, epochs=6, verbose=0, callbacks=[callback, first_update])
    # The first update, read from the layer's state: U starts at zero and Z at
    # the projection of W, with the rho given.
    start = first_update.state["conv"]
    assert start["admm_updates"] == 1
    np.testing.assert_array_equal(start["admm_u"], 0.0)
    kernel = start["kernel"].astype(np.float64)
    pool = sparsity.pruning_wrappers(wrapped)[0].pattern_pool
    z_expected = kernel * patterns.project_kernel(kernel, pool, connectivity_rate=0.25).mask
    assert np.any(z_expected) and np.any(z_expected != kernel)
    np.testing.assert_allclose(start["admm_z"], z_expected, rtol=1e-6, atol=1e-7)
    assert float(start["admm_rho"]) == pytest.approx(1.0)
    assert callback.history[0]["layers"]["conv"]["residual"] == pytest.approx(
        np.linalg.norm(kernel - z_expected), rel=1e-5)
    residuals = [entry["layers"]["conv"]["residual"] for entry in callback.history]
    assert len(residuals) == 7
    assert all(later < earlier for earlier, later in zip(residuals, residuals[1:])), residuals
    assert residuals[-1] < 0.01 * residuals[0]
    assert callback.history[-1]["layers"]["conv"]["pattern_change"] == 0.0
    schedule = sparsity.RhoSchedule(0.5, 1.5, 1.0)
    assert [schedule(k) for k in range(4)] == pytest.approx([0.5, 0.75, 1.0, 1.0])


def one_conv_wrapper(in_channels, filters):
    """The pruning wrapper of a one-conv model, half of its kernels to remove."""
    model = keras.Sequential([keras.Input((5, 5, in_channels)),
                              keras.layers.Conv2D(filters, 3, use_bias=False, name="conv")])
    wrapped = sparsity.prune_wrap(model, sparsity.PatternPruningConfig(connectivity_rate=0.5))
    return sparsity.pruning_wrappers(wrapped)[0]


def test_admm_update_keeps_the_dual_when_rho_changes():
    # U is the scaled dual (lambda = rho * U): raising rho must shrink U so that
    # rho * U is what the plain dual ascent step gives.
    wrapper = one_conv_wrapper(2, 3)
    rng = np.random.default_rng(0)
    wrapper.admm_update(0.2)  # Z = P(W), U = 0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(wrapper.admm_u), 0.0)
    for old_rho, new_rho in ((0.2, 0.5), (0.5, 0.5), (0.5, 2.0)):
        moved = rng.normal(size=wrapper.kernel.shape).astype("float32")
        wrapper.kernel.assign(moved)
        u_before = keras.ops.convert_to_numpy(wrapper.admm_u).astype(np.float64)
        target = moved + u_before
        wrapper.admm_update(new_rho)
        z = keras.ops.convert_to_numpy(wrapper.admm_z)
        np.testing.assert_allclose(z, target * wrapper.project(target).mask, atol=1e-6)
        dual_step = old_rho * (target - z)  # lambda + rho_old * (W - Z)
        np.testing.assert_allclose(new_rho * keras.ops.convert_to_numpy(wrapper.admm_u),
                                   dual_step, atol=1e-5)
        assert float(keras.ops.convert_to_numpy(wrapper.admm_rho)) == pytest.approx(new_rho)
    with pytest.raises(ValueError, match="rho > 0"):
        wrapper.admm_update(0.0)


def test_hard_prune_after_admm_keeps_the_support_of_z():
    wrapper = one_conv_wrapper(4, 6)
    rng = np.random.default_rng(1)
    wrapper.admm_update(0.5)
    z = keras.ops.convert_to_numpy(wrapper.admm_z)
    z_projection = wrapper.project(z)
    # W then moves on (as training does between updates) to weights whose own
    # projection disagrees with Z's on many kernels.
    moved = rng.normal(size=wrapper.kernel.shape).astype("float32")
    wrapper.kernel.assign(moved)
    assert np.mean(wrapper.project(moved).pattern_ids != z_projection.pattern_ids) > 0.3
    projection = wrapper.hard_prune()
    np.testing.assert_array_equal(projection.pattern_ids, z_projection.pattern_ids)
    mask = keras.ops.convert_to_numpy(wrapper.pattern_mask).astype(bool)
    np.testing.assert_array_equal(mask, z_projection.mask)
    # W keeps its own values on Z's support.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(wrapper.kernel), moved * mask)
    assert not np.any((z != 0) & ~mask)  # Z itself lies inside that support


def _state(model):
    return {w.layer.name: {name: keras.ops.convert_to_numpy(getattr(w, name)).copy()
                           for name in ("admm_z", "admm_u", "pattern_mask", "pattern_ids",
                                        "admm_rho", "admm_updates", "admm_steps", "kernel")}
            for w in sparsity.pruning_wrappers(model)}


def _assert_same_state(first, second, **tolerance):
    assert first.keys() == second.keys()
    for layer in first:
        for name in first[layer]:
            np.testing.assert_allclose(first[layer][name], second[layer][name],
                                       err_msg=f"{layer}.{name}", **tolerance)


class StateAtFirstStep(keras.callbacks.Callback):
    """The wrappers' state just before the first training step: after the
    ADMM callback's first update, before any gradient."""

    def __init__(self):
        super().__init__()
        self.state = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.state is None:
            self.state = _state(self.model)


class Snapshot(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.states = []

    def on_epoch_end(self, epoch, logs=None):
        self.states.append(_state(self.model))


def test_admm_checkpoint_resume_gives_the_same_z_u_and_masks(tmp_path):
    x, y = data((8, 8, 2))
    config = sparsity.PatternPruningConfig(connectivity_rate=0.5)

    def run(model, epochs, initial_epoch=0, extra=()):
        snapshot = Snapshot()
        model.fit(x, y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
                  verbose=0, callbacks=[sparsity.ADMMCallback(update_every=3, update_unit="step"),
                                        snapshot, *extra])
        return snapshot.states

    wrapped = sparsity.prune_wrap(residual_model(), config)
    compile_model(wrapped)
    path = str(tmp_path / "admm_epoch{epoch}.keras")
    states = run(wrapped, 2, extra=[keras.callbacks.ModelCheckpoint(path)])

    resumed = keras.saving.load_model(str(tmp_path / "admm_epoch1.keras"))
    _assert_same_state(states[0], _state(resumed), rtol=0, atol=0)  # exact after loading
    assert int(states[0]["stem"]["admm_steps"]) == 4
    resumed_states = run(resumed, 2, initial_epoch=1)
    # Same data order and optimizer state: the resumed epoch matches the uninterrupted one.
    _assert_same_state(states[1], resumed_states[0], rtol=1e-4, atol=1e-5)
    assert int(resumed_states[0]["stem"]["admm_updates"]) == int(states[1]["stem"]["admm_updates"])


def test_masks_and_patterns_survive_save_load_and_further_fit(tmp_path):
    x, y = data((8, 8, 2))
    wrapped = sparsity.prune_wrap(residual_model(),
                                  sparsity.PatternPruningConfig(connectivity_rate=0.5))
    admm_then_finetune(wrapped, x, y, admm_epochs=1)
    before = _state(wrapped)
    wrapped.save(tmp_path / "pruned.keras")
    loaded = keras.saving.load_model(tmp_path / "pruned.keras")
    _assert_same_state(before, _state(loaded), rtol=0, atol=0)
    loaded_wrappers = sparsity.pruning_wrappers(loaded)
    np.testing.assert_array_equal(loaded_wrappers[0].pattern_pool,
                                  sparsity.pruning_wrappers(wrapped)[0].pattern_pool)
    # The mask constraint is set again on load: masks hold through more training.
    compile_model(loaded, 5e-2)
    loaded.fit(x, y, batch_size=8, epochs=2, verbose=0,
               callbacks=[sparsity.MaskedFineTuneCallback()])
    for wrapper in loaded_wrappers:
        assert_exact_patterns(wrapper)
        assert not np.array_equal(keras.ops.convert_to_numpy(wrapper.kernel),
                                  before[wrapper.layer.name]["kernel"])


def test_masks_hold_on_layers_without_gradient():
    x, y = data((8, 8, 2))
    wrapped = sparsity.prune_wrap(residual_model(), sparsity.PatternPruningConfig())
    sparsity.hard_prune(wrapped)
    frozen = sparsity.pruning_wrappers(wrapped)[1]
    frozen.layer.trainable = False
    frozen.kernel.assign(np.ones(frozen.kernel.shape, "float32"))  # breaks the mask
    compile_model(wrapped)
    wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0,
                callbacks=[sparsity.MaskedFineTuneCallback()])
    assert frozen.masks_hold()


def test_wrapper_fails_loudly_without_its_callback_and_in_the_wrong_phase():
    x, y = data((8, 8, 2))
    wrapped = sparsity.prune_wrap(residual_model(), sparsity.PatternPruningConfig())
    compile_model(wrapped)
    with pytest.raises(ValueError, match="Expected a pruning callback"):
        wrapped.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="hard_prune"):
        wrapped.fit(x, y, verbose=0, callbacks=[sparsity.MaskedFineTuneCallback()])
    sparsity.hard_prune(wrapped)
    with pytest.raises(ValueError, match="not yet hard-pruned"):
        wrapped.fit(x, y, verbose=0, callbacks=[sparsity.ADMMCallback()])
    with pytest.raises(ValueError, match="without PatternPruneWrapper"):
        plain = residual_model()
        compile_model(plain)
        plain.fit(x, y, verbose=0, callbacks=[sparsity.ADMMCallback()])


@pytest.mark.parametrize("kwargs, message", [
    ({"connectivity_rate": 1.5}, "connectivity_rate=1.5"),
    ({"connectivity_rate": -0.1}, "connectivity_rate=-0.1"),
    ({"layer_rates": {"branch": 1.0}}, "layer_rates\\['branch'\\]=1.0"),
    ({"skip_types": ["Conv3D"]}, "skip_types=\\['Conv3D'\\]"),
    ({"pattern_pool": "random"}, "pattern_pool='random'"),
    ({"num_patterns": 0}, "num_patterns=0"),
    ({"dense_block_size": (4, 4), "dense_entries": 17}, "entries=17"),
    ({"dense_block_size": (-1, -1), "dense_entries": 1}, "dense_block_size=\\(-1, -1\\)"),
])
def test_bad_config_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sparsity.PatternPruningConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"layer_rates": {"add": 0.5}}, "type Add, which cannot be pattern-pruned"),
    ({"layer_rates": {"head": 0.5}}, "dense_block_size"),
    ({"skip_layers": ["nope"]}, "skip_layers=\\['nope'\\]"),
    ({"pattern_pool": patterns.fixed_pattern_pool((5, 5), 4, 2)}, "match kernel size \\(3, 3\\)"),
])
def test_configs_not_matching_the_model_fail_before_training(kwargs, message):
    model = residual_model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        sparsity.prune_wrap(model, sparsity.PatternPruningConfig(**kwargs))
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_kernels_too_small_for_a_pattern_are_refused_by_name():
    inputs = keras.Input((6, 6, 3))
    outputs = keras.layers.Conv2D(4, 2, name="two_by_two")(inputs)
    model = keras.Model(inputs, outputs)
    config = sparsity.PatternPruningConfig(layer_rates={"two_by_two": 0.5})
    with pytest.raises(ValueError, match="kernel_size=\\(2, 2\\) \\(4 cells\\), entries=4"):
        sparsity.prune_wrap(model, config)


def test_pointwise_convs_are_connectivity_pruned_in_groups():
    model = residual_model()
    config = sparsity.PatternPruningConfig(pointwise_connectivity_rate=0.5, group_size=2,
                                           pattern_pool="fixed")
    projections = sparsity.prune_in_place(model, config)
    assert "pointwise" in projections
    kernel = model.get_layer("pointwise").kernel.numpy()  # (1, 1, in, out)
    zero = kernel[0, 0] == 0
    assert zero.mean() == pytest.approx(0.5)
    np.testing.assert_array_equal(zero[:, 0::2], zero[:, 1::2])  # pairs removed together
    untouched = sparsity.prune_in_place(residual_model(), sparsity.PatternPruningConfig())
    assert "pointwise" not in untouched


def test_prune_in_place_equals_hard_prune_of_the_wrapped_model():
    model = residual_model()
    config = sparsity.PatternPruningConfig(connectivity_rate=0.5, group_size=2,
                                           pattern_pool="fixed")
    wrapped = sparsity.prune_wrap(model, config)
    sparsity.hard_prune(wrapped)
    expected = sparsity.strip_pruning(wrapped)
    sparsity.prune_in_place(model, config)
    for old, new in zip(expected.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_unbuilt_and_already_wrapped_models_are_refused():
    with pytest.raises(ValueError, match="not built"):
        sparsity.prune_wrap(keras.Sequential([keras.layers.Conv2D(2, 3)]))
    wrapped = sparsity.prune_wrap(residual_model())
    with pytest.raises(ValueError, match="without pruning wrappers"):
        sparsity.prune_wrap(wrapped)
    with pytest.raises(ValueError, match="update_every"):
        sparsity.ADMMCallback(update_every=0)


def test_config_and_callbacks_serialize():
    config = sparsity.PatternPruningConfig(connectivity_rate=0.7, skip_first_conv=True,
                                           layer_rates={"branch": 0.3},
                                           pattern_pool=patterns.default_pattern_pool()[:4])
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(config))
    assert restored == config
    np.testing.assert_array_equal(restored.pattern_pool, patterns.default_pattern_pool()[:4])
    callback = sparsity.ADMMCallback(update_every=5, update_unit="step",
                                     rho=sparsity.RhoSchedule(1e-3, 2.0, 0.1))
    again = sparsity.ADMMCallback.from_config(callback.get_config())
    assert again.get_config() == callback.get_config()
    plans = config.resolve(residual_model())
    assert [(p.layer.name, p.connectivity_rate) for p in plans] == [("branch", 0.3),
                                                                     ("depthwise", 0.0)]


def test_tensorboard_summaries_and_plot(tmp_path):
    x, y = data((8, 8, 2))
    wrapped = sparsity.prune_wrap(residual_model(),
                                  sparsity.PatternPruningConfig(connectivity_rate=0.5))
    admm_then_finetune(wrapped, x, y, admm_epochs=1, log_dir=str(tmp_path / "logs"))
    events = [f for _, _, files in os.walk(tmp_path / "logs") for f in files]
    assert any(f.startswith("events.out.tfevents") for f in events)
    pool, counts, removed = summaries.pattern_histogram(sparsity.pattern_info(wrapped))
    kernels = 2 * 8 + 8 * 8 + 8  # stem, branch, depthwise
    assert counts.sum() + removed == kernels
    assert removed == 8 + 32  # half of the kernels of stem (16) and branch (64)
    path = summaries.plot_pattern_summary(sparsity.pattern_info(wrapped), tmp_path / "p.png")
    assert os.path.getsize(path) > 1000


def test_group_size_makes_channel_groups_share_patterns(tmp_path):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 6))
    x = keras.layers.Conv2D(12, 3, padding="same", name="wide")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    model = keras.Model(inputs, x)
    config = sparsity.PatternPruningConfig(connectivity_rate=0.5, group_size=4,
                                           pattern_pool="fixed")
    assert sparsity.PatternPruningConfig.from_config(config.get_config()) == config
    wrapped = sparsity.prune_wrap(model, config)
    sparsity.hard_prune(wrapped)
    wide = keras.ops.convert_to_numpy(wrapped.get_layer("pattern_prune_wide").kernel)
    kept = wide != 0  # (3, 3, in, out)
    for start in range(0, 12, 4):
        group = kept[..., start:start + 4]
        assert np.array_equal(group, np.repeat(group[..., :1], 4, axis=-1))
    dw = keras.ops.convert_to_numpy(wrapped.get_layer("pattern_prune_dw").kernel)
    dw_kept = dw[..., 0] != 0  # (3, 3, channels)
    for start in range(0, 12, 4):
        group = dw_kept[..., start:start + 4]
        assert np.array_equal(group, np.repeat(group[..., :1], 4, axis=-1))
    path = tmp_path / "grouped.keras"
    wrapped.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("pattern_prune_wide").group_size == 4
    with pytest.raises(ValueError, match="group_size"):
        sparsity.PatternPruningConfig(group_size=0)
