"""``cocopie prune``: ADMM pattern pruning of a saved model from the command line."""

import keras
import numpy as np
import pytest
from conftest import conv_stack

from cocopie_keras import cli
from cocopie_keras import converter
from cocopie_keras import sparsity


def small_classifier():
    return conv_stack((8, 8, 1), [dict(filters=4, kernel_size=3, padding="same", activation="relu"),
                                  dict(filters=8, kernel_size=3, padding="same", activation="relu")],
                      head=lambda x: keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


def test_prune_npz_to_keras_and_tflite(tmp_path, capsys):
    model_path, data_path = tmp_path / "m.keras", tmp_path / "d.npz"
    small_classifier().save(model_path)
    rng = np.random.default_rng(0)
    np.savez(data_path, x_train=rng.normal(size=(40, 8, 8, 1)), y_train=rng.integers(0, 3, 40),
             x_test=rng.normal(size=(8, 8, 8, 1)), y_test=rng.integers(0, 3, 8))
    out, tflite = tmp_path / "p.keras", tmp_path / "p.tflite"
    code = cli.main(["prune", str(model_path), "--data", str(data_path), "-o", str(out),
                     "--tflite", str(tflite), "--connectivity-rate", "0.5",
                     "--admm-epochs", "1", "--finetune-epochs", "1", "--update-every", "2",
                     "--batch-size", "8", "--verbose", "0"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "3x3 conv weight density" in printed.out
    pruned = keras.saving.load_model(out, compile=False)
    # stem (1 input channel): 4/9; second conv: 4/9 with half its kernels removed.
    expected = (36 * 4 / 9 + 288 * 4 / 9 * 0.5) / (36 + 288)
    assert abs(sparsity.conv_weight_density(pruned) - expected) < 1e-6
    assert len(converter.read_lr(tflite.read_bytes())) == 2


def one_error_line(capsys, command):
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cocopie {command}: error: "), err
    return lines[0]


def test_prune_refuses_bad_arguments_before_training(tmp_path, capsys):
    # Bad values exit 2, like argparse's own usage errors (see cocopie --help).
    model_path = tmp_path / "m.keras"
    small_classifier().save(model_path)
    code = cli.main(["prune", str(model_path), "--data", "mnist5k", "-o",
                     str(tmp_path / "p.keras"), "--connectivity-rate", "1.5"])
    assert code == 2
    assert "connectivity_rate=1.5" in one_error_line(capsys, "prune")
    code = cli.main(["prune", str(model_path), "--data", str(tmp_path / "nothing"), "-o",
                     str(tmp_path / "p.keras")])
    assert code == 2
    assert "Expected --data" in one_error_line(capsys, "prune")
    assert not (tmp_path / "p.keras").exists()


def test_prune_refuses_output_paths_it_could_not_write_before_training(tmp_path, capsys):
    model_path = tmp_path / "m.keras"
    small_classifier().save(model_path)
    for output, message in ((tmp_path / "p.h5", "end in .keras"),
                            (tmp_path / "no" / "p.keras", "existing folder")):
        assert cli.main(["prune", str(model_path), "--data", "mnist5k",
                         "-o", str(output)]) == 2
        assert message in one_error_line(capsys, "prune")


def test_prune_refuses_labels_the_model_cannot_have(tmp_path, capsys):
    model_path, data_path = tmp_path / "m.keras", tmp_path / "d.npz"
    small_classifier().save(model_path)  # 3 outputs
    rng = np.random.default_rng(0)
    np.savez(data_path, x_train=rng.normal(size=(40, 8, 8, 1)), y_train=rng.integers(0, 10, 40))
    code = cli.main(["prune", str(model_path), "--data", str(data_path), "-o",
                     str(tmp_path / "p.keras"), "--admm-epochs", "1", "--finetune-epochs", "1",
                     "--verbose", "0"])
    assert code == 2
    assert "labels in [0, 3)" in one_error_line(capsys, "prune")
    np.savez(data_path, x_train=rng.normal(size=(40, 9, 9, 1)), y_train=rng.integers(0, 3, 40))
    assert cli.main(["prune", str(model_path), "--data", str(data_path), "-o",
                     str(tmp_path / "p.keras")]) == 2
    assert "shape (8, 8, 1)" in one_error_line(capsys, "prune")
    assert not (tmp_path / "p.keras").exists()


def test_image_folders_are_fed_as_keras_loads_them(tmp_path, capsys):
    # image_dataset_from_directory gives pixels 0-255; a model built for it
    # rescales inside. Nothing is divided unless --image-scale says so.
    from cocopie_keras.commands import prune

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for index in range(3):
            keras.utils.save_img(tmp_path / label / f"{index}.png",
                                 np.full((8, 8, 1), 200, np.uint8), scale=False)
    (x_train, _), (x_test, _) = prune.load_data(str(tmp_path), (8, 8, 1))
    assert x_train.max() == 200.0 and x_test.max() == 200.0
    (x_train, _), _ = prune.load_data(str(tmp_path), (8, 8, 1),
                                      image_scale=prune.image_scale("1/255"))
    np.testing.assert_allclose(x_train.max(), 200 / 255, rtol=1e-6)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["prune", "m.keras", "--data", str(tmp_path), "-o", "p.keras",
                  "--image-scale", "-1"])
    assert exit_info.value.code == 2
    assert "--image-scale" in one_error_line(capsys, "prune")
    with pytest.raises(SystemExit):
        cli.main(["prune", "--help"])
    assert "0-255" in " ".join(capsys.readouterr().out.split())


def test_prune_with_the_users_recipe_and_1x1_and_dense_layers(tmp_path, capsys):
    # Augmentation, SGD + one-cycle and label smoothing as the dense training
    # had them; the 1x1 conv and the Dense head are pruned too.
    model = conv_stack((8, 8, 3), [dict(filters=8, kernel_size=3, padding="same",
                                        activation="relu", name="stem"),
                                   dict(filters=8, kernel_size=3, padding="same", name="conv"),
                                   dict(filters=8, kernel_size=1, name="pointwise")],
                       head=lambda x: keras.layers.Dense(4, name="head")(
                           keras.layers.GlobalAveragePooling2D()(x)))
    model_path, data_path = tmp_path / "m.keras", tmp_path / "d.npz"
    model.save(model_path)
    rng = np.random.default_rng(0)
    np.savez(data_path, x_train=rng.normal(size=(48, 8, 8, 3)), y_train=rng.integers(0, 4, 48),
             x_test=rng.normal(size=(8, 8, 8, 3)), y_test=rng.integers(0, 4, 8))
    out = tmp_path / "p.keras"
    code = cli.main(["prune", str(model_path), "--data", str(data_path), "-o", str(out),
                     "--connectivity-rate", "0.5", "--pointwise-connectivity-rate", "0.5",
                     "--dense-block-size", "2x2", "--dense-connectivity-rate", "0.5",
                     "--augment", "flip-crop", "--crop-pad", "2", "--optimizer", "sgd",
                     "--learning-rate", "0.05", "--schedule", "one-cycle",
                     "--label-smoothing", "0.1", "--weight-decay", "1e-4",
                     "--admm-penalty", "direction",
                     "--admm-epochs", "1", "--finetune-epochs", "2", "--batch-size", "16",
                     "--verbose", "0"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    pruned = keras.saving.load_model(out, compile=False)
    pointwise = pruned.get_layer("pointwise").kernel.numpy()
    assert np.mean(pointwise == 0) == 0.5
    head = pruned.get_layer("head").kernel.numpy()  # (8, 4) in 2x2 blocks, half removed
    blocks = head.reshape(4, 2, 2, 2).transpose(0, 2, 1, 3).reshape(8, 4)
    assert np.sum(~blocks.any(axis=1)) == 4
    assert np.mean(pruned.get_layer("conv").kernel.numpy() != 0) == pytest.approx(4 / 9 * 0.5)


@pytest.mark.parametrize("option, value, message", [
    ("--label-smoothing", "1.5", "label_smoothing=1.5"),
    ("--learning-rate", "0", "learning_rate=0.0"),
    ("--weight-decay", "-1", "weight_decay=-1.0"),
    ("--pointwise-connectivity-rate", "1.0", "pointwise_connectivity_rate=1.0"),
])
def test_prune_refuses_bad_recipe_values_before_loading_data(tmp_path, capsys, option, value,
                                                             message):
    model_path = tmp_path / "m.keras"
    small_classifier().save(model_path)
    code = cli.main(["prune", str(model_path), "--data", str(tmp_path / "missing.npz"),
                     "-o", str(tmp_path / "p.keras"), option, value])
    assert code == 2
    assert message in one_error_line(capsys, "prune")


def test_prune_refuses_a_malformed_block_size(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["prune", "m.keras", "--data", "mnist5k", "-o", "p.keras",
                  "--dense-block-size", "4by4"])
    assert exit_info.value.code == 2
    assert "BHxBW" in one_error_line(capsys, "prune")


def test_prune_runs_admm_with_sgd_and_stepwise_updates_by_default(tmp_path, monkeypatch,
                                                                  capsys):
    # Adam in the ADMM phase kept W from following Z (bench/cocogen_study.md); the
    # default ADMM phase is SGD with Z/U updates every 16 steps, fine-tuning keeps --optimizer.
    from cocopie_keras.sparsity import recipe

    model_path, data_path = tmp_path / "m.keras", tmp_path / "d.npz"
    small_classifier().save(model_path)
    rng = np.random.default_rng(0)
    np.savez(data_path, x_train=rng.normal(size=(16, 8, 8, 1)), y_train=rng.integers(0, 3, 16),
             x_test=rng.normal(size=(8, 8, 8, 1)), y_test=rng.integers(0, 3, 8))
    seen = {}

    def record_call(model, train, compile_fn, config, **kwargs):
        seen.update(kwargs)
        for phase, compile_phase in (("admm", compile_fn), ("finetune",
                                                             kwargs["finetune_compile_fn"])):
            copy = keras.models.clone_model(model)
            compile_phase(copy)
            seen[phase] = copy.optimizer
        raise RuntimeError("stop after recording the call")

    monkeypatch.setattr(recipe, "admm_prune", record_call)
    code = cli.main(["prune", str(model_path), "--data", str(data_path),
                     "-o", str(tmp_path / "p.keras"), "--verbose", "0"])
    assert code == 1 and "stop after recording" in capsys.readouterr().err
    assert isinstance(seen["admm"], keras.optimizers.SGD)
    assert float(seen["admm"].learning_rate) == pytest.approx(0.01)
    assert isinstance(seen["finetune"], keras.optimizers.Adam)
    assert seen["penalty"] == "absolute"
    assert (seen["update_every"], seen["update_unit"]) == (16, "step")
    rho = seen["rho"]
    assert (rho.initial, rho.multiplier, rho.maximum) == (0.1, 1.047, 1.0)
    code = cli.main(["prune", str(model_path), "--data", str(data_path), "-o",
                     str(tmp_path / "p.keras"), "--verbose", "0", "--admm-penalty", "direction"])
    assert code == 1 and "stop after recording" in capsys.readouterr().err
    assert seen["penalty"] == "direction"
