"""COCOPIE_SIMD_TARGET: the SIMD target the delegate's kernels run on
(delegate/kernels/simd_target.h). The choice is process-wide, so each case
runs in a fresh process."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import pruned_conv_stack_file, random_input
from cocopie_keras import delegate

# A narrower target every CPU with the widest one also runs.
NARROWER = {"AVX3": "AVX2", "AVX3_DL": "AVX2", "AVX3_ZEN4": "AVX2", "AVX3_SPR": "AVX2",
            "AVX2": "SSE4", "SVE": "NEON", "SVE2": "NEON"}

CHILD = """
import sys
import numpy as np
from cocopie_keras import delegate
from cocopie_keras.bench.timing import run

data = open(sys.argv[1], "rb").read()
x = np.load(sys.argv[2])
print(delegate.simd_target(), delegate.preferred_channel_block())
stock = run(delegate.make_interpreter(data, use_delegate=False), x)
for kernel in ("block", "rows"):
    interpreter = delegate.make_interpreter(data, num_threads=2, kernel=kernel)
    error = np.max(np.abs(run(interpreter, x) - stock))
    print(kernel, delegate.delegated_node_count(interpreter), error)
"""


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    convs = [dict(filters=32, kernel_size=3, padding="same", activation="relu"),
             dict(filters=24, kernel_size=3, padding="same")]
    path = pruned_conv_stack_file(tmp_path_factory, "simd_target", (10, 9, 16), convs,
                                  connectivity_rate=0.5)
    inputs = path.parent / "x.npy"
    np.save(inputs, random_input((1, 10, 9, 16)))
    return path, inputs


def _child(case, target):
    env = dict(os.environ, COCOPIE_SIMD_TARGET=target)
    return subprocess.run([sys.executable, "-c", CHILD, str(case[0]), str(case[1])],
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_narrower_target_runs_both_kernels_like_stock(case):
    widest = delegate.simd_target()
    if widest not in NARROWER:
        pytest.skip(f"no narrower target known below {widest}")
    done = _child(case, NARROWER[widest])
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split("\n")
    target, block = lines[0].split()
    assert target == NARROWER[widest]
    # The block kernel packs for the chosen target's lanes, not the widest's.
    assert int(block) <= delegate.preferred_channel_block()
    for line, kernel in zip(lines[1:3], ("block", "rows")):
        name, claimed, error = line.split()
        assert (name, int(claimed)) == (kernel, 2)
        assert float(error) < 1e-4, line


def test_best_is_the_widest(case):
    done = _child(case, "best")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[0].split()[0] == delegate.simd_target()


def test_an_unknown_target_is_refused_with_the_choices(case):
    done = _child(case, "AVX9")
    assert done.returncode != 0
    assert "COCOPIE_SIMD_TARGET" in done.stderr and "Received: AVX9" in done.stderr, \
        done.stderr[-3000:]
