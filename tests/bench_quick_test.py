"""Smoke test: `cocopie bench --quick` runs end to end (every runtime, ≤ 2 min).

Only what it reports is checked, never its timings.
"""

import json
import os
import subprocess
import sys

from cocopie_keras.bench import report, runtimes


def test_cocopie_bench_quick(tmp_path):
    json_path = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "cocopie_keras.cli", "bench", "--quick", "--no-progress",
         "--json", str(json_path)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(json_path) as f:
        doc = json.load(f)
    assert report.validate(doc) == []
    assert os.path.exists(tmp_path / "quick.png")
    assert {row["runtime"] for row in doc["rows"]} == set(runtimes.RUNTIMES)
    assert {row["variant"] for row in doc["rows"]} == {"dense", "pattern_conn"}
    by_key = {(row["variant"], row["runtime"]): row for row in doc["rows"]}
    # LiteRT is installed with the project: its rows must have been measured
    # and agree with the reference; other engines may be missing on a machine.
    for variant in ("dense", "pattern_conn"):
        for name in ("xnnpack", "builtin", "cocopie"):
            assert by_key[(variant, name)]["status"] == "ok", by_key[(variant, name)]
    # Every described convolution is run by the delegate or, where the
    # stock runtime was timed faster on it, deliberately left to it.
    notes = by_key[("pattern_conn", "cocopie")]["notes"]
    assert int(notes["delegated_convs"]) + int(notes["left_to_stock"]) > 0
    assert doc["peak_gflops"] > 0
    assert str(json_path) in done.stdout
