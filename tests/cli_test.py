"""The ``cocopie`` console script as a user runs it."""

import subprocess

import pytest
from conftest import conv_stack, pattern_prune

from cocopie_keras import cli


def cocopie(*args):
    return subprocess.run(["cocopie", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_the_subcommands():
    result = cocopie("--help")
    assert result.returncode == 0
    for command in ("demo", "convert", "inspect", "delegate-path"):
        assert command in result.stdout


def test_convert_then_inspect(tmp_path):
    model = conv_stack((8, 8, 3), [dict(filters=4, kernel_size=3, padding="same"),
                                   dict(filters=5, kernel_size=3)])
    pattern_prune(model, connectivity_rate=0.25)
    keras_path, tflite_path = tmp_path / "m.keras", tmp_path / "m.tflite"
    model.save(keras_path)
    result = cocopie("convert", str(keras_path), "-o", str(tflite_path))
    assert result.returncode == 0, result.stderr
    assert "2 pattern convs in the LR" in result.stdout
    result = cocopie("inspect", str(tflite_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "LR version 1, 2 layer(s)" in lines[0]
    assert "(4, 3, 3, 3)" in result.stdout and "(5, 3, 3, 4)" in result.stdout


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["inspect", str(tmp_path / "nope.tflite")])
    assert code == 1
    assert "cocopie inspect: error:" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "usage: cocopie" in capsys.readouterr().out


def test_delegate_path_points_at_the_library():
    result = cocopie("delegate-path")
    assert result.returncode == 0
    assert result.stdout.strip().endswith("libcocopie_delegate.so")


@pytest.mark.parametrize("bad", [["demo", "--epochs", "x"], ["convert"]])
def test_argument_errors_exit_2(bad):
    assert cocopie(*bad).returncode == 2
