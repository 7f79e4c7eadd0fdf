"""The delegate's `tuning_cache` file at hostile paths, end to end: the
delegate tunes (tuning="on") and must leave whatever is at the path as it
was, unless it is a tuning cache, which it extends without losing what
other processes write to it at the same time. Each run is a subprocess with
a timeout (``tuning_cache_child.py``): a path that blocks fails the test.
(The C++ tests in delegate/tuning/tuning_cache_test.cc cover the same rules, and
read-only files, at the file level.)"""

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from conftest import pruned_conv_stack_file

from cocopie_keras import delegate
from cocopie_keras.converter import kernel_tuning as tuning

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tuning_cache_child.py")
TIMEOUT_SECONDS = 120
HEADER = "# cocopie kernel tuning cache v2"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return pruned_conv_stack_file(tmp_path_factory, "cache_model", (10, 10, 8), [
        dict(filters=16, kernel_size=3, padding="same", activation="relu"),
        dict(filters=16, kernel_size=3, padding="same", activation="relu"),
        dict(filters=8, kernel_size=3, strides=2, padding="same"),
    ], connectivity_rate=0.3)


def start_tuning(model_path, cache, threads=1):
    return subprocess.Popen([sys.executable, CHILD, str(model_path), str(cache), str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child):
    """The child's kernel tuning report and its messages."""
    try:
        out, err = child.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"tuning did not finish in {TIMEOUT_SECONDS} s (hung on the cache path)")
    assert child.returncode == 0, err[-3000:]
    reports = json.loads(out)
    assert reports and all(r["source"] == "timed" for r in reports), reports
    return reports, err


def tune(model_path, cache, threads=1):
    return finish(start_tuning(model_path, cache, threads))


def cache_keys(path):
    lines = path.read_text().splitlines()
    assert lines and lines[0].startswith(HEADER), lines[:2]
    return {line.split("\t")[0] for line in lines[1:] if line and not line.startswith("#")}


def assert_reports_cached(reports, keys):
    for r in reports:
        assert any(k.startswith(r["signature"] + "|") and k.endswith(f"|t{r['threads']}")
                   for k in keys), f"no cache entry for {r['signature']} t{r['threads']}"


def test_new_cache_is_created_and_then_used(model_path, tmp_path):
    cache = tmp_path / "tuning.cache"
    reports, err = tune(model_path, cache)
    assert "tuning cache" not in err, err
    assert_reports_cached(reports, cache_keys(cache))
    assert sorted(os.listdir(tmp_path)) == ["tuning.cache"]


def test_foreign_text_file_is_left_as_it_is(model_path, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nkey\tnot a record\n")
    _, err = tune(model_path, notes)
    assert notes.read_text() == "my notes\nkey\tnot a record\n"
    assert "is not a cocopie tuning cache" in err
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_fifo_directory_and_device_are_left_unopened(model_path, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _, err = tune(model_path, fifo)  # a FIFO opened for reading would block
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and "is a FIFO" in err
    folder = tmp_path / "folder"
    folder.mkdir()
    _, err = tune(model_path, folder)
    assert os.listdir(folder) == [] and "is a directory" in err
    device = tmp_path / "zero"
    try:  # a device of our own with /dev/zero's numbers, never the system's
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("cannot make a device node here (not root?)")
    _, err = tune(model_path, device)
    assert stat.S_ISCHR(os.lstat(device).st_mode) and "is a character device" in err


def test_symbolic_link_is_not_followed(model_path, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "tuning.cache"
    link.symlink_to(victim)
    _, err = tune(model_path, link)
    assert link.is_symlink() and victim.read_text() == "precious\n"
    assert "is a symbolic link" in err


def test_links_planted_at_temporary_names_are_not_followed(model_path, tmp_path):
    # In this process, whose id a temporary name could be derived from.
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    cache = tmp_path / "tuning.cache"
    for name in (f"tuning.cache.tmp{os.getpid()}", f".tuning.cache.tmp{os.getpid()}"):
        (tmp_path / name).symlink_to(victim)
    interpreter = delegate.make_interpreter(model_path.read_bytes(), tuning="on",
                                            tuning_cache=str(cache))
    assert victim.read_text() == "precious\n"
    assert_reports_cached(delegate.kernel_tunings(interpreter), cache_keys(cache))
    assert len(os.listdir(tmp_path)) == 4, "nothing but the cache was added"


def _append_until_stopped(cache, stop):
    """Another program appending well-formed entries through a descriptor it
    keeps open, without any lock, about one every half millisecond until
    `stop` exists (and at least 4,000); prints its count."""
    record = tuning.encode([tuning.TuningEntry(delegate.simd_target(), "rows")]).hex()
    code = (
        "import os, sys, time\n"
        "cache, stop, record = sys.argv[1:4]\n"
        "count = 0\n"
        "with open(cache, 'a') as f:\n"
        "    while count < 4000 or not os.path.exists(stop):\n"
        "        f.write(f'appended-{count}|cpu|t1\\t{record}\\n'); f.flush(); count += 1\n"
        "        time.sleep(0.0005)\n"
        "print(count)\n")
    return subprocess.Popen([sys.executable, "-c", code, str(cache), str(stop), record],
                            stdout=subprocess.PIPE, text=True)


def test_concurrent_writers_keep_each_others_entries(model_path, tmp_path):
    cache = tmp_path / "tuning.cache"
    cache.write_text(HEADER + ": <layer signature|cpu|threads>\t<tuning record hex>\n")
    stop = tmp_path / "stop"
    appender = _append_until_stopped(cache, stop)
    time.sleep(0.2)
    tuners = [start_tuning(model_path, cache, threads) for threads in (1, 2)]
    results = [finish(t) for t in tuners]
    stop.touch()
    appended = int(appender.communicate(timeout=TIMEOUT_SECONDS)[0])
    assert appended >= 4000
    keys = cache_keys(cache)
    missing = [i for i in range(appended) if f"appended-{i}|cpu|t1" not in keys]
    assert not missing, f"{len(missing)} of {appended} appended entries lost"
    for reports, err in results:
        assert "tuning cache" not in err, err
        assert_reports_cached(reports, keys)
