"""The ``cocopie`` console script as a user runs it."""

import os
import subprocess
import sys

import pytest
from conftest import conv_stack, pattern_prune

from cocopie_keras import cli

# The console script of the environment under test (next to its interpreter),
# never whatever `cocopie` PATH happens to find.
COCOPIE = os.path.join(os.path.dirname(sys.executable), "cocopie")


def cocopie(*args, env=None):
    return subprocess.run([COCOPIE, *args], capture_output=True, text=True, timeout=300,
                          env=env)


def minimal_environment():
    """What a new user's shell has: no virtualenv on PATH, no VIRTUAL_ENV, no PYTHON*."""
    return {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin",
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_console_script_is_the_environments_own():
    assert os.access(COCOPIE, os.X_OK), f"no console script at {COCOPIE}"
    with open(COCOPIE) as f:
        shebang = f.readline()
    assert os.path.realpath(shebang[2:].strip()) == os.path.realpath(sys.executable)


def test_cli_runs_without_an_activated_environment():
    # Nothing of the test's own shell (activated venv, PATH, PYTHONPATH) is
    # needed: the script must find its package and its delegate library alone.
    result = cocopie("delegate-path", env=minimal_environment())
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isfile(result.stdout.strip())


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
    assert "LR version 4, 2 layer(s)" in lines[0]
    assert "[4, 3, 3, 3]" in result.stdout and "[5, 3, 3, 4]" in result.stdout


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["inspect", str(tmp_path / "nope.tflite")])
    assert code == 2
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


def test_inspect_json_reports_sizes_and_patterns(tmp_path):
    import json

    import numpy as np

    from cocopie_keras import converter, patterns

    model = conv_stack((8, 8, 40), [dict(filters=64, kernel_size=3, padding="same")])
    conv = model.layers[1]
    projection = patterns.project_kernel(conv.kernel.numpy(), connectivity_rate=0.5,
                                         group_size=32)
    conv.kernel.assign(conv.kernel.numpy() * projection.mask)
    path = tmp_path / "m.tflite"
    path.write_bytes(converter.convert(model))
    result = cocopie("inspect", "--json", str(path))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (layer,) = doc["layers"]
    for key in ("name", "kind", "patterns", "kernel_density", "fkw_bytes", "csr_bytes",
                "dense_bytes", "tuning"):
        assert key in layer
    assert layer["kind"] == "conv3x3_pattern"
    assert layer["kernel_density"] == 0.5
    assert sum(p["kernels"] for p in layer["patterns"]) == 64 * 40 // 2
    assert all(len(p["cells"]) == 4 for p in layer["patterns"])
    assert layer["dense_bytes"] == 64 * 9 * 40 * 4
    assert layer["fkw_bytes"] < layer["csr_bytes"] < layer["dense_bytes"]
    # 32-channel groups share patterns: the block kernel adds no FMA.
    assert layer["tuning"]["block_padding"]["32"] == 1.0
    assert np.isclose(layer["weight_density"], 4 / 9 * 0.5)


def test_convert_storage_options_order_file_sizes(tmp_path):
    model = conv_stack((8, 8, 16), [dict(filters=32, kernel_size=3, padding="same")])
    pattern_prune(model, connectivity_rate=0.5)
    keras_path = tmp_path / "m.keras"
    model.save(keras_path)
    sizes = {}
    for storage in ("dense", "sparse", "delegate-only"):
        out = tmp_path / f"{storage}.tflite"
        result = cocopie("convert", str(keras_path), "-o", str(out), "--storage", storage)
        assert result.returncode == 0, result.stderr
        sizes[storage] = out.stat().st_size
    assert sizes["sparse"] < 0.6 * sizes["dense"]
    assert sizes["delegate-only"] < sizes["sparse"]
