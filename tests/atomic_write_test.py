"""A failed write never leaves a broken file: the old one stays, no temporary remains."""

import os
import resource
import signal
import stat
import subprocess
import sys

import pytest
from conftest import conv_stack, pattern_prune

from cocopie_keras import atomic_write
from cocopie_keras import cli
from cocopie_keras import converter

OLD = b"the user's previous model " * 200


def leftovers(directory, *keep):
    return sorted(set(os.listdir(directory)) - set(keep))


def test_a_writer_failing_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(OLD)
    with pytest.raises(OSError, match="disk full"):
        with atomic_write.atomic_path(path) as temporary:
            with open(temporary, "wb") as f:
                f.write(b"half of the new")
            raise OSError("disk full")
    assert path.read_bytes() == OLD
    assert leftovers(tmp_path, "model.tflite") == []


def test_replacing_keeps_permissions_and_symbolic_links(tmp_path):
    target, link = tmp_path / "real.tflite", tmp_path / "link.tflite"
    target.write_bytes(OLD)
    os.chmod(target, 0o640)
    link.symlink_to(target)
    atomic_write.write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    umask = os.umask(0o022)
    try:
        atomic_write.write_bytes(tmp_path / "fresh.bin", b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.bin").stat().st_mode) == 0o644
    with pytest.raises(IsADirectoryError):
        atomic_write.write_bytes(tmp_path, b"x")
    assert leftovers(tmp_path, "real.tflite", "link.tflite", "fresh.bin") == []


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("models")
    model = conv_stack((16, 16, 8), [dict(filters=16, kernel_size=3, padding="same")])
    pattern_prune(model, connectivity_rate=0.25)
    model.save(directory / "m.keras")
    (directory / "m.tflite").write_bytes(converter.convert(model))
    return directory


class FileSizeLimit:
    """RLIMIT_FSIZE for this process, with SIGXFSZ ignored: a write past the
    limit then fails with EFBIG, as on a full disk."""

    def __init__(self, limit):
        self.limit = limit

    def __enter__(self):
        self.saved = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.saved[1]))

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_FSIZE, self.saved)
        signal.signal(signal.SIGXFSZ, self.handler)


def test_convert_over_an_existing_file_with_the_disk_full(tmp_path, model_files, monkeypatch,
                                                          capsys):
    out = tmp_path / "out.tflite"
    out.write_bytes(OLD)
    converted = (model_files / "m.tflite").read_bytes()
    assert len(converted) > 1024
    # Converted before the limit is set (conversion writes temporary files itself).
    monkeypatch.setattr(converter, "convert", lambda model, storage="sparse": converted)
    with FileSizeLimit(1024):
        code = cli.main(["convert", str(model_files / "m.keras"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("cocopie convert: error: ") and err.count("\n") == 1
    assert out.read_bytes() == OLD
    assert leftovers(tmp_path, "out.tflite") == []
    assert cli.main(["convert", str(model_files / "m.keras"), "-o", str(out)]) == 0
    assert out.read_bytes() == converted


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_tune_kernels_in_place_with_the_disk_full(tmp_path, model_files):
    path = tmp_path / "m.tflite"
    original = (model_files / "m.tflite").read_bytes()
    path.write_bytes(original)
    result = subprocess.run(
        [sys.executable, "-m", "cocopie_keras.cli", "tune-kernels", str(path)],
        capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(1024),
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 1, result.stderr[-2000:]
    assert "cocopie tune-kernels: error: " in result.stderr and "Traceback" not in result.stderr
    assert path.read_bytes() == original  # the model is not lost
    assert leftovers(tmp_path, "m.tflite") == []
