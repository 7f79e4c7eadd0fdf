"""A tiny CoCo-Tune run on synthetic data: in process, on Ray, and via the CLI."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from ray import tune as ray_tune

import cocotune_trials
from cocopie_keras import cocotune as tune
from cocopie_keras.cocotune import explore
from cocotune_explore_test import ray_importable
from cocotune_helpers import residual_model, synthetic_data

CONFIGS = [(0.7, 0.7), (0.5, 0.7), (0.3, 0.5), (0.3, 0.3)]
INITS = ("block", "default")


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module's in-process runs (each would start its own)."""
    ray_importable()
    with explore.ray_session(workers=2):
        yield


def with_hook(hook, *args):
    """`trial.run_trial` calling ``hook(*args, event, config, epoch)`` in the worker."""
    import functools

    return ray_tune.with_parameters(explore.run_trial, hook=functools.partial(hook, *args))


@pytest.fixture(scope="module")
def trained():
    model = residual_model(blocks=2, width=8)
    x, y = synthetic_data(384, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:256], y[:256], epochs=6, batch_size=32, verbose=0)
    return model, (x[:256], y[:256]), (x[256:], y[256:])


def test_tiny_tune_in_process_and_resume(ray_cluster, trained, tmp_path):
    model, train, validation = trained
    counted = with_hook(cocotune_trials.count_start, str(tmp_path / "count"))

    def run(threshold, stop_at_threshold=False):
        return tune.tune(model, train, validation, str(tmp_path / "work"), configs=CONFIGS,
                         threshold=threshold, epochs=1, pretrain_epochs=2, batch_size=32,
                         stop_at_threshold=stop_at_threshold, trial_fn=counted,
                         log=None)

    def ran():   # trainings started, in order, as (init, configuration)
        return [(name.split("_")[0], CONFIGS[int(name.split("_")[1])])
                for name in cocotune_trials.executions(tmp_path / "count")]

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
    first_run = ran()
    assert sorted(first_run) == sorted((init, c) for init in INITS for c in CONFIGS)

    # A threshold that some of those networks reach, for each init: the same
    # trials (no stopping target in either run), so they are resumed, not rerun,
    # and the answer is the smallest network at or above the threshold.
    threshold = min(max(row["accuracy"] for row in summary[init]["rows"])
                    for init in INITS)
    again = run(threshold)
    assert ran() == first_run                         # resumed: no trial repeated
    with open(tmp_path / "work" / "summary.json") as f:
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
    assert len(ran()) == len(first_run) + len(INITS)


def test_block_trained_networks_start_closer_to_the_teacher(ray_cluster, trained, tmp_path):
    model, train, validation = trained
    summary = tune.tune(model, train, validation, str(tmp_path), configs=[(0.7, 0.7)] * 1,
                        threshold=2.0, epochs=1, pretrain_epochs=6, batch_size=32,
                        log=None)   # threshold 2: every trial runs
    block = summary["block"]["rows"][0]["accuracy_curve"][0]
    default = summary["default"]["rows"][0]["accuracy_curve"][0]
    assert block >= default, (block, default)


def test_tiny_tune_on_ray(ray_cluster, trained, tmp_path):
    model, train, validation = trained
    summary = tune.tune(model, train, validation, str(tmp_path), configs=CONFIGS[:2],
                        threshold=2.0, epochs=1, pretrain_epochs=1, batch_size=64,
                        inits=("block",), executor="ray", workers=2, log=None)
    rows = summary["block"]["rows"]
    assert [row["config"] for row in rows] == [list(c) for c in CONFIGS[:2]]
    assert summary["block"]["best"] is None and summary["block"]["explored"] == 2


def test_killed_worker_gives_the_undisturbed_result(ray_cluster, trained, tmp_path):
    """A worker killed after its trial's first epoch: the trial is retried from
    that checkpoint and trains exactly as if nothing had happened."""
    model, train, validation = trained

    def run(workdir, trial_fn=None):
        return tune.tune(model, train, validation, str(workdir), configs=CONFIGS[:2],
                         threshold=2.0, epochs=2, pretrain_epochs=1, batch_size=64,
                         inits=("block",), workers=2, trial_fn=trial_fn, log=None)["block"]

    undisturbed = run(tmp_path / "a")
    flag = tmp_path / "killed"
    killed = run(tmp_path / "b", with_hook(cocotune_trials.kill_once, str(flag), 1))
    assert flag.exists()
    fields = ("init", "config", "config_index", "params", "accuracy", "accuracy_curve",
              "epochs")
    assert [{k: row[k] for k in fields} for row in killed["rows"]] == [
        {k: row[k] for k in fields} for row in undisturbed["rows"]]
    assert killed["explored"] == undisturbed["explored"] == 2
    assert [len(row["epoch_seconds"]) for row in killed["rows"]] == [2, 2]


def test_cli_refuses_bad_rates_and_runs(trained, tmp_path):
    model, train, validation = trained
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    data = str(tmp_path / "data.npz")
    np.savez(data, x_train=train[0], y_train=train[1], x_test=validation[0], y_test=validation[1])
    base = [sys.executable, "-m", "cocopie_keras.cli", "cocotune", model_path, "--data", data,
            "--workdir", str(tmp_path / "work"), "--workers", "1", "--epochs", "1",
            "--batch-size", "64", "--init", "block"]
    bad = subprocess.run(base + ["--rates", "0.3,1.5"], capture_output=True, text=True)
    assert bad.returncode != 0 and "rate=1.5" in bad.stderr + bad.stdout
    good = subprocess.run(base + ["--subspace-size", "2", "--threshold", "0"],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr[-2000:]
    assert "1 configs explored" in good.stdout and "summary.json" in good.stdout


@pytest.mark.parametrize("flag, stops", [([], True), (["--full-epochs"], False)])
def test_cli_full_epochs_switch_reaches_tune(trained, tmp_path, monkeypatch, flag, stops):
    from cocopie_keras import cli, cocotune

    model, train, validation = trained
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x_train=train[0], y_train=train[1], x_test=validation[0],
             y_test=validation[1])
    seen = {}

    def tune_called(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped before any work")

    monkeypatch.setattr(cocotune, "tune", tune_called)
    status = cli.main(["cocotune", str(tmp_path / "model.keras"), "--data",
                       str(tmp_path / "data.npz"), "--workdir", str(tmp_path / "work")] + flag)
    assert status != 0 and seen["stop_at_threshold"] is stops


@pytest.mark.parametrize("kwargs, match", [
    ({"executor": "local"}, "executor='local'"),
    ({"workers": 0}, "workers=0"),
    ({"max_failures": -1}, "max_failures=-1"),
    ({"max_failures": 1.5}, "max_failures=1.5"),
    ({"inits": ("block", "random")}, "init='random'"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, kwargs, match):
    from cocopie_keras.cocotune import api

    with pytest.raises(ValueError, match=match):
        api.tune(None, None, None, str(tmp_path / "work"), **kwargs)
    assert not (tmp_path / "work").exists()
