"""Every ``cocopie`` error is one line on stderr with the exit status ``cocopie --help``
documents: 2 for the command line (usage, bad values, bad input files), 1 for failures."""

import pytest
from conftest import conv_stack, pattern_prune

from cocopie_keras import cli
from cocopie_keras import converter


def error_line(capsys, command):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"cocopie {command}: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def exit_code(argv):
    """``cli.main``'s status, also when argparse exits by itself."""
    try:
        return cli.main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.fixture(scope="module")
def tflite_bytes():
    model = conv_stack((8, 8, 3), [dict(filters=4, kernel_size=3, padding="same")])
    pattern_prune(model, connectivity_rate=0.25)
    return converter.convert(model)


@pytest.mark.parametrize("cut", [20, 100, -8])
def test_inspect_of_a_truncated_file(tmp_path, capsys, tflite_bytes, cut):
    path = tmp_path / "cut.tflite"
    path.write_bytes(tflite_bytes[:cut])
    assert exit_code(["inspect", str(path)]) == 2
    line = error_line(capsys, "inspect")
    assert str(path) in line and "truncated or damaged" in line


def test_inspect_of_a_file_that_is_not_tflite(tmp_path, capsys):
    path = tmp_path / "x.tflite"
    path.write_text("plain text, not a model")
    assert exit_code(["inspect", str(path)]) == 2
    assert "TFL3" in error_line(capsys, "inspect")


def test_convert_of_a_file_that_is_not_a_keras_zip(tmp_path, capsys):
    path = tmp_path / "model.keras"
    path.write_text("not a zip archive")
    assert exit_code(["convert", str(path), "-o", str(tmp_path / "m.tflite")]) == 2
    line = error_line(capsys, "convert")
    assert "not a zip archive" in line and "not found" not in line.lower()
    assert exit_code(["convert", str(tmp_path / "missing.keras"), "-o", "m.tflite"]) == 2
    assert "no such file" in error_line(capsys, "convert")
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize("argv", [["convert"], ["demo", "--epochs", "x"], ["inspect", "--bogus"],
                                  ["tune-kernels", "m.tflite", "--threads", "two"]])
def test_usage_errors_are_one_line_exit_2(capsys, argv):
    assert exit_code(argv) == 2
    error_line(capsys, argv[0])


def test_bad_values_exit_2_like_usage_errors(tmp_path, capsys, tflite_bytes):
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite_bytes)
    assert exit_code(["tune-kernels", str(path), "--threads", "0"]) == 2
    assert "threads >= 1" in error_line(capsys, "tune-kernels")
    assert exit_code(["tune-kernels", str(path), "--input-shape", "1,2"]) == 2
    assert "--input-shape" in error_line(capsys, "tune-kernels")
    assert path.read_bytes() == tflite_bytes


def test_unexpected_failures_are_one_line_exit_1(monkeypatch, capsys):
    from cocopie_keras.commands import delegate_path

    def broken(args):
        raise RuntimeError("first line\nsecond line\n" + "x" * 5000)

    monkeypatch.setattr(delegate_path, "run", broken)
    assert exit_code(["delegate-path"]) == 1
    line = error_line(capsys, "delegate-path")
    assert "RuntimeError: first line second line" in line and len(line) < 700
    with pytest.raises(RuntimeError, match="first line"):
        cli.main(["--traceback", "delegate-path"])


def test_help_documents_the_exit_status(capsys):
    assert exit_code(["--help"]) == 0
    text = capsys.readouterr().out
    assert "exit status:" in text
    for status in ("0 ", "1 ", "2 "):
        assert f"\n  {status}" in text
