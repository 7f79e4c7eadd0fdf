"""``cocopie prune``: ADMM pattern pruning of a saved model from the command line."""

import keras
import numpy as np
from conftest import conv_stack

from cocopie_keras import cli
from cocopie_keras import converter
from cocopie_keras import pruning


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
    assert abs(pruning.conv_weight_density(pruned) - expected) < 1e-6
    assert len(converter.read_lr(tflite.read_bytes())) == 2


def test_prune_refuses_bad_arguments_before_training(tmp_path, capsys):
    model_path = tmp_path / "m.keras"
    small_classifier().save(model_path)
    code = cli.main(["prune", str(model_path), "--data", "mnist5k", "-o",
                     str(tmp_path / "p.keras"), "--connectivity-rate", "1.5"])
    assert code == 1
    assert "connectivity_rate=1.5" in capsys.readouterr().err
    code = cli.main(["prune", str(model_path), "--data", str(tmp_path / "nothing"), "-o",
                     str(tmp_path / "p.keras")])
    assert code == 1
    assert "Expected --data" in capsys.readouterr().err
    assert not (tmp_path / "p.keras").exists()
