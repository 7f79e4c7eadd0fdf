"""ADMM resumed by ``keras.callbacks.BackupAndRestore`` equals an uninterrupted run,
whatever the order of the two callbacks."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cocopie_keras import sparsity  # noqa: E402

EPOCHS = 3
STATE = ("admm_z", "admm_u", "admm_rho", "pattern_ids", "admm_steps", "admm_updates", "kernel")


def wrapped_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="first")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="second")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    wrapped = sparsity.prune_wrap(model, sparsity.PatternPruningConfig(connectivity_rate=0.5))
    wrapped.compile(optimizer=keras.optimizers.Adam(2e-2),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return wrapped


def training_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 32)


class Interrupt(keras.callbacks.Callback):
    """Raises in the middle of an epoch, as a crash or a preemption would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


def state(model):
    return {w.layer.name: {name: keras.ops.convert_to_numpy(getattr(w, name)).copy()
                           for name in STATE}
            for w in sparsity.pruning_wrappers(model)}


def fit(model, backup_dir, admm_first, extra=(), **admm_kwargs):
    admm = sparsity.ADMMCallback(**admm_kwargs)
    backup = keras.callbacks.BackupAndRestore(str(backup_dir))
    callbacks = [admm, backup] if admm_first else [backup, admm]
    x, y = training_data()
    model.fit(x, y, batch_size=8, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[*callbacks, *extra])
    return admm


@pytest.mark.parametrize("admm_kwargs", [dict(update_every=1, update_unit="epoch"),
                                         dict(update_every=3, update_unit="step")],
                         ids=["epoch", "step"])
@pytest.mark.parametrize("admm_first", [True, False], ids=["admm_first", "backup_first"])
def test_resume_with_backup_and_restore_equals_an_uninterrupted_run(tmp_path, admm_first,
                                                                    admm_kwargs):
    straight = wrapped_model()
    fit(straight, tmp_path / "straight", admm_first, **admm_kwargs)
    expected = state(straight)

    crashed = wrapped_model()
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(crashed, tmp_path / "backup", admm_first, extra=[Interrupt(epoch=1, batch=2)],
            **admm_kwargs)
    resumed = wrapped_model()  # a new process: nothing but the checkpoint survives
    callback = fit(resumed, tmp_path / "backup", admm_first, **admm_kwargs)
    got = state(resumed)

    for layer, variables in expected.items():
        for name, value in variables.items():
            np.testing.assert_allclose(got[layer][name], value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{layer}.{name}")
    steps_per_epoch = 4
    assert int(got["first"]["admm_steps"]) == EPOCHS * steps_per_epoch
    # No projection of the new process's fresh weights was recorded before the restore.
    assert callback.history and callback.history[0]["step"] >= steps_per_epoch


def test_checkpoint_counters_are_carried_by_the_model(tmp_path):
    # The step count comes from the train step itself: right in any checkpoint.
    model = wrapped_model()
    x, y = training_data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[sparsity.ADMMCallback()])
    wrapper = sparsity.pruning_wrappers(model)[0]
    counters = {name: int(keras.ops.convert_to_numpy(getattr(wrapper, name)))
                for name in ("admm_steps", "admm_epochs", "admm_updates",
                             "admm_update_step", "admm_update_epoch")}
    assert counters == {"admm_steps": 8, "admm_epochs": 2, "admm_updates": 3,
                        "admm_update_step": 8, "admm_update_epoch": 2}
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    loaded_wrapper = sparsity.pruning_wrappers(loaded)[0]
    for name, value in counters.items():
        assert int(keras.ops.convert_to_numpy(getattr(loaded_wrapper, name))) == value
