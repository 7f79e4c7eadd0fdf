"""A tiny CoCo-Tune run on synthetic data: in process, on Ray, and via the CLI."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from cocopie_keras import cocotune as tune
from cocopie_keras.cocotune import explore
from cocotune_helpers import residual_model, synthetic_data

CONFIGS = [(0.7, 0.7), (0.5, 0.7), (0.3, 0.5), (0.3, 0.3)]
INITS = ("block", "default")


@pytest.fixture(scope="module")
def trained():
    model = residual_model(blocks=2, width=8)
    x, y = synthetic_data(384, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:256], y[:256], epochs=6, batch_size=32, verbose=0)
    return model, (x[:256], y[:256]), (x[256:], y[256:])


def test_tiny_tune_in_process_and_resume(trained, tmp_path):
    model, train, validation = trained
    ran = []

    def counted(payload):
        ran.append((payload["init"], tuple(payload["config"])))
        return explore.run_trial(payload)

    def run(threshold, stop_at_threshold=False):
        return tune.tune(model, train, validation, str(tmp_path), configs=CONFIGS,
                         threshold=threshold, epochs=1, pretrain_epochs=2, batch_size=32,
                         executor="local", stop_at_threshold=stop_at_threshold,
                         trial_fn=counted, log=None)

    # Threshold 2 is out of reach: every configuration is fine-tuned for its epoch.
    summary = run(2.0)
    assert summary["full_accuracy"] > 0.5            # the synthetic task was learned
    assert summary["blocks"] and len(summary["composites"]) == len(CONFIGS)
    params = summary["params"]
    assert params == sorted(params) and max(params) < summary["full_params"]
    for init in INITS:
        result = summary[init]
        assert result["best"] is None and result["explored"] == len(CONFIGS)
        explored_sizes = [row["params"] for row in result["rows"]]
        assert explored_sizes == sorted(params)   # smallest first
        for row in result["rows"]:
            assert len(row["accuracy_curve"]) == 2 and row["accuracy"] == row["accuracy_curve"][-1]
            # One measured duration per fine-tuning epoch, inside the trial's time.
            assert len(row["epoch_seconds"]) == 1
            assert row["setup_seconds"] + sum(row["epoch_seconds"]) <= row["seconds"]
    first_run = list(ran)
    assert len(first_run) == len(INITS) * len(CONFIGS)

    # A threshold that some of those networks reach, for each init: the same
    # trials (no stopping target in either run), so they are resumed, not rerun,
    # and the answer is the smallest network at or above the threshold.
    threshold = min(max(row["accuracy"] for row in summary[init]["rows"])
                    for init in INITS)
    again = run(threshold)
    assert ran == first_run                           # resumed: no trial repeated
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["threshold"] == pytest.approx(threshold)
    for init in INITS:
        rows = summary[init]["rows"]
        rank = [row["accuracy"] >= threshold for row in rows].index(True)
        result = again[init]
        assert result["best"] is not None
        assert (result["best"]["config"], result["best"]["accuracy"]) == (
            rows[rank]["config"], rows[rank]["accuracy"])
        assert result["explored"] == result["resumed"] == rank + 1
        assert [row["config"] for row in result["rows"]] == [r["config"] for r in rows[:rank + 1]]
        assert all(row["accuracy"] < threshold for row in result["rows"][:-1])

    # Threshold 0 with stopping: the smallest network is the answer as it
    # stands, without fine-tuning.
    start = run(0.0, stop_at_threshold=True)
    smallest = list(CONFIGS[params.index(min(params))])
    for init in INITS:
        best = start[init]["best"]
        assert best is not None and best["config"] == smallest
        assert start[init]["explored"] == 1 and start[init]["resumed"] == 0
        assert len(best["accuracy_curve"]) == 1 and best["epoch_seconds"] == []
    assert len(ran) == len(first_run) + len(INITS)


def test_block_trained_networks_start_closer_to_the_teacher(trained, tmp_path):
    model, train, validation = trained
    summary = tune.tune(model, train, validation, str(tmp_path), configs=[(0.7, 0.7)] * 1,
                        threshold=2.0, epochs=1, pretrain_epochs=6, batch_size=32,
                        executor="local", log=None)   # threshold 2: every trial runs
    block = summary["block"]["rows"][0]["accuracy_curve"][0]
    default = summary["default"]["rows"][0]["accuracy_curve"][0]
    assert block >= default, (block, default)


def test_tiny_tune_on_ray(trained, tmp_path):
    model, train, validation = trained
    summary = tune.tune(model, train, validation, str(tmp_path), configs=CONFIGS[:2],
                        threshold=2.0, epochs=1, pretrain_epochs=1, batch_size=64,
                        inits=("block",), executor="ray", workers=2, log=None)
    rows = summary["block"]["rows"]
    assert [row["config"] for row in rows] == [list(c) for c in CONFIGS[:2]]
    assert summary["block"]["best"] is None and summary["block"]["explored"] == 2


def test_cli_refuses_bad_rates_and_runs(trained, tmp_path):
    model, train, validation = trained
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    data = str(tmp_path / "data.npz")
    np.savez(data, x_train=train[0], y_train=train[1], x_test=validation[0], y_test=validation[1])
    base = [sys.executable, "-m", "cocopie_keras.cli", "cocotune", model_path, "--data", data,
            "--workdir", str(tmp_path / "work"), "--executor", "local", "--epochs", "1",
            "--batch-size", "64", "--init", "block"]
    bad = subprocess.run(base + ["--rates", "0.3,1.5"], capture_output=True, text=True)
    assert bad.returncode != 0 and "rate=1.5" in bad.stderr + bad.stdout
    good = subprocess.run(base + ["--subspace-size", "2", "--threshold", "0"],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr[-2000:]
    assert "1 configs explored" in good.stdout and "summary.json" in good.stdout
