"""Names that moved keep working for one release, as the same objects."""

import subprocess
import sys

import pytest

from cocopie_keras import cli


@pytest.mark.parametrize("old, new", [
    ("cocopie_keras.tune", "cocopie_keras.cocotune"),
    ("cocopie_keras.tune.surgery", "cocopie_keras.cocotune.surgery"),
    ("cocopie_keras.converter.tuning", "cocopie_keras.converter.kernel_tuning"),
    ("cocopie_keras.benchmark", "cocopie_keras.bench.timing"),
])
def test_a_moved_module_is_the_new_one_and_says_so(old, new):
    # A fresh interpreter: the warning comes with the first import only.
    code = (f"import warnings, importlib; warnings.simplefilter('always')\n"
            f"with warnings.catch_warnings(record=True) as caught:\n"
            f"    old = importlib.import_module({old!r})\n"
            f"assert old is importlib.import_module({new!r}), old\n"
            f"assert any(issubclass(w.category, DeprecationWarning) for w in caught)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_old_command_name_runs_the_new_command():
    from cocopie_keras.commands import cocotune

    parser = cli.build_parser()
    for name in ("cocotune", "tune"):
        args = parser.parse_args([name, "m.keras", "--data", "mnist5k", "--workdir", "w"])
        assert args.func is cocotune.run
