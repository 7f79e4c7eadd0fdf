"""Objective-ordered exploration on Ray Tune: order, stop, worker kills, resume.

The trials are `cocotune_trials.fake_trial` (no Keras: workers start fast);
executions are counted through files the trials create.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cocotune_trials
from cocopie_keras.cocotune import explore

TESTS = os.path.dirname(os.path.abspath(__file__))
CONFIGS = [(0.7, 0.7), (0.3, 0.3), (0.5, 0.7), (0.5, 0.5), (0.3, 0.5)]
PARAMS = [int(1000 * (1 - sum(c) / len(c))) for c in CONFIGS]


def ray_importable():
    """Lets Ray workers import this folder's trainables (they inherit the environment)."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if TESTS not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([p for p in paths if p] + [TESTS])


@pytest.fixture(scope="module")
def ray_cluster():
    ray_importable()
    with explore.ray_session(workers=2):
        yield


def payloads_for(configs, count_dir, init="block", **extra):
    return [dict({"init": init, "config": list(c), "count_dir": str(count_dir)}, **extra)
            for c in configs]


def run(tmp_path, configs, params, threshold, workers=1, name="x", prefix=None, **extra):
    return explore.explore(payloads_for(configs, tmp_path / "count", **extra), params,
                           threshold, str(tmp_path / "ray"), name, prefix,
                           trainable=cocotune_trials.fake_trial, workers=workers,
                           record=str(tmp_path / "trials.jsonl"))


def recorded(tmp_path):
    with open(tmp_path / "trials.jsonl") as f:
        return [json.loads(line) for line in f]


def test_smallest_first_stops_at_first_success(ray_cluster, tmp_path):
    result = run(tmp_path, CONFIGS, PARAMS, 0.45)
    # Sizes ascending: (.7,.7) acc .3, (.5,.7) acc .4, (.5,.5) acc .5 -> success, stop.
    assert cocotune_trials.executions(tmp_path / "count") == ["block_0_0", "block_2_0",
                                                               "block_3_0"]
    assert result["best"]["config"] == [0.5, 0.5] and result["explored"] == 3
    assert result["trial_seconds"] == 3.0 and result["trials_finished"] == 3
    assert result["resumed"] == 0 and result["resumed_seconds"] == 0.0
    assert [row["config_index"] for row in recorded(tmp_path)] == [0, 2, 3]
    # Run again as it was (a rerun of a finished exploration): restored, nothing runs.
    again = run(tmp_path, CONFIGS, PARAMS, 0.45)
    assert len(cocotune_trials.executions(tmp_path / "count")) == 3
    assert again["best"] == result["best"] and again["rows"] == result["rows"]
    assert again["resumed"] == 3 and again["resumed_seconds"] == 3.0


def test_another_threshold_reuses_finished_trials(ray_cluster, tmp_path):
    run(tmp_path, CONFIGS, PARAMS, 0.45, name="block-k-t0.45")
    result = run(tmp_path, CONFIGS, PARAMS, 0.55, name="block-k-t0.55", prefix="block-k-t")
    # The three trials of the first exploration are reused, only (.3,.5) runs.
    assert cocotune_trials.executions(tmp_path / "count") == ["block_0_0", "block_2_0",
                                                               "block_3_0", "block_4_0"]
    assert result["best"]["config"] == [0.3, 0.5] and result["explored"] == 4
    assert result["resumed"] == 3 and result["resumed_seconds"] == 3.0
    # Another init (another experiment prefix) shares nothing.
    other = run(tmp_path, CONFIGS[:1], PARAMS[:1], 0.0, name="default-k-t0.0",
                prefix="default-k-t", init="default")
    assert other["resumed"] == 0 and other["best"]["init"] == "default"


def test_waits_for_smaller_running_trials(ray_cluster, tmp_path):
    configs = [(0.7, 0.7), (0.5, 0.5)]   # both succeed; the larger finishes first
    result = run(tmp_path, configs, [100, 200], 0.2, workers=2,
                 after_row={"0": [str(tmp_path / "trials.jsonl"), 1]})
    assert result["best"]["config"] == [0.7, 0.7]
    assert [row["config"] for row in recorded(tmp_path)] == [[0.5, 0.5], [0.7, 0.7]]
    assert result["explored"] == 1 and result["trials_finished"] == 2


def test_larger_running_trials_are_stopped_after_success(ray_cluster, tmp_path):
    result = run(tmp_path, [(0.5, 0.5), (0.3, 0.3)], [100, 200], 0.2, workers=2, epochs=30,
                 sleep={"0": 0.2, "1": 1.0}, epoch_dir=str(tmp_path / "epochs"))
    assert result["best"]["config"] == [0.5, 0.5] and result["explored"] == 1
    # The larger trial ran and was stopped unfinished: no row, not all its epochs.
    assert "block_1_0" in cocotune_trials.executions(tmp_path / "count")
    assert [row["config_index"] for row in recorded(tmp_path)] == [0]
    larger_epochs = [name for name in cocotune_trials.executions(tmp_path / "epochs")
                     if name.startswith("block_1_")]
    assert len(larger_epochs) < 30 and "block_1_30" not in larger_epochs
    assert result["trials_finished"] == 1


def test_killed_worker_trial_resumes_from_its_checkpoint(ray_cluster, tmp_path):
    undisturbed = run(tmp_path / "a", CONFIGS, PARAMS, 0.45, epochs=2)
    flag = tmp_path / "killed"
    killed = run(tmp_path / "b", CONFIGS, PARAMS, 0.45, epochs=2, kill=str(flag))
    assert flag.exists()   # the first trial's worker killed itself after one epoch
    assert killed["best"] == undisturbed["best"] and killed["rows"] == undisturbed["rows"]
    assert killed["explored"] == 3
    # Retried once, from its checkpoint after epoch 1; no other trial repeated.
    assert cocotune_trials.executions(tmp_path / "b" / "count") == [
        "block_0_0", "block_0_1", "block_2_0", "block_3_0"]
    assert [row["config_index"] for row in recorded(tmp_path / "b")] == [0, 2, 3]


DRIVER = """
import sys
sys.path[:0] = {paths!r}
import cocotune_explore_test as t
import pathlib
from cocopie_keras.cocotune import explore
t.ray_importable()
with explore.ray_session(workers=1):
    t.run(pathlib.Path({tmp!r}), t.CONFIGS, t.PARAMS, 0.55, epochs=2,
          sleep={{str(i): 1.0 for i in range(5)}})
"""


def test_interrupted_exploration_resumes_without_rerunning_trials(ray_cluster, tmp_path):
    # The driver (with its own Ray) is killed while its third trial runs.
    script = DRIVER.format(paths=[TESTS] + sys.path, tmp=str(tmp_path))
    driver = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while len(cocotune_trials.executions(tmp_path / "count")) < 3:
            assert driver.poll() is None and time.time() < deadline, "driver ended early"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    finished = [row["config_index"] for row in recorded(tmp_path)]
    assert finished == [0, 2]
    result = run(tmp_path, CONFIGS, PARAMS, 0.55, epochs=2, sleep={})
    ran = cocotune_trials.executions(tmp_path / "count")
    # Finished trials are not run again; the interrupted one continues from its
    # checkpoint (or restarts if it had none); the rest run once.
    starts = [name.rsplit("_", 1)[0] for name in ran]
    assert starts[:3] == ["block_0", "block_2", "block_3"]
    assert starts.count("block_0") == starts.count("block_2") == 1
    assert starts[3:] == ["block_3", "block_4"]
    assert result["best"]["config"] == [0.3, 0.5] and result["explored"] == 4
    assert [row["config_index"] for row in result["rows"]] == [0, 2, 3, 4]
    assert result["resumed"] == 2 and result["resumed_seconds"] == 2.0



def test_a_smaller_network_that_errored_is_not_passed_over_on_resume(tmp_path):
    # By size: config 0 (300 params), then config 2 (400). The smallest trial
    # errors and the larger one succeeds: the answer is not known until the
    # failed one is retried, which a restored run does.
    order = explore.ObjectiveOrder(payloads_for(CONFIGS, tmp_path), PARAMS, 0.5, workers=2)
    first, second = order.suggest("t1"), order.suggest("t2")
    assert [first["config_index"], second["config_index"]] == [0, 2]
    order.on_trial_complete("t1", error=True)
    order.on_trial_complete("t2", {"complete": True, "val_accuracy": 0.9})
    assert order.best_rank == 1
    assert not order.stop_all()  # config 0 failed, not answered
    assert order("t1", {}) is False
    order.save(str(tmp_path / "searcher.pkl"))

    restored = explore.ObjectiveOrder(payloads_for(CONFIGS, tmp_path), PARAMS, 0.5)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.live == {"t1": 0} and restored.failed == {}
    assert not restored.stop_all()
    restored.on_trial_complete("t1", {"complete": True, "val_accuracy": 0.8})
    assert restored.best_rank == 0 and restored.stop_all()


def test_environment_is_restored_for_the_caller(monkeypatch):
    monkeypatch.setenv("COCOPIE_TEST_KEPT", "user")
    monkeypatch.delenv("COCOPIE_TEST_NEW", raising=False)
    with explore.environment({"COCOPIE_TEST_KEPT": "ours", "COCOPIE_TEST_NEW": "ours"},
                             keep_set=True):
        assert os.environ["COCOPIE_TEST_KEPT"] == "user"
        assert os.environ["COCOPIE_TEST_NEW"] == "ours"
    assert os.environ["COCOPIE_TEST_KEPT"] == "user" and "COCOPIE_TEST_NEW" not in os.environ
    with pytest.raises(KeyError):
        with explore.environment({"COCOPIE_TEST_KEPT": "ours"}):
            assert os.environ["COCOPIE_TEST_KEPT"] == "ours"
            raise KeyError("left by an error")
    assert os.environ["COCOPIE_TEST_KEPT"] == "user"


def test_trial_log_writes_a_trial_once(tmp_path):
    class Finished:
        trial_id = "abc_00001"
        last_result = {"complete": True, "row": json.dumps({"init": "block", "config_index": 1})}

    path = str(tmp_path / "trials.jsonl")
    with open(path, "w") as f:
        f.write('{"init": "block", "config_ind')   # cut short by a killed driver
    explore.TrialLog(path).on_trial_complete(0, [], Finished())
    log = explore.TrialLog(path)   # a resumed exploration: the trial completes again
    log.on_trial_complete(0, [], Finished())
    log.on_trial_complete(0, [], Finished())
    Finished.trial_id = "abc_00002"
    log.on_trial_complete(0, [], Finished())
    with open(path) as f:
        assert f.readline() == '{"init": "block", "config_ind\n'
        lines = [json.loads(line) for line in f]
    assert [(r["trial_id"], r["config_index"]) for r in lines] == [("abc_00001", 1),
                                                                    ("abc_00002", 1)]


def test_a_restored_tuner_stops_with_its_searcher(ray_cluster, tmp_path):
    # The searcher is also the stopper (it stops trials larger than the answer):
    # after Tuner.restore both roles must still be one object, which holds
    # because Ray pickles the tune and run configs together. Checked through
    # Ray's private tuner state, so that a Ray release changing it is noticed.
    from ray import tune

    run(tmp_path, CONFIGS[:1], PARAMS[:1], 0.0, name="restored")
    trainable = tune.with_resources(cocotune_trials.fake_trial, {"cpu": 1})
    restored = tune.Tuner.restore(str(tmp_path / "ray" / "restored"), trainable)
    internal = restored._local_tuner
    searcher = internal._tune_config.search_alg
    assert isinstance(searcher, explore.ObjectiveOrder)
    assert internal.get_run_config().stop is searcher
