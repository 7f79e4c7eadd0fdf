"""Objective-ordered exploration, persisted results and resume after a kill."""

import json

import pytest

from cocopie_keras.cocotune import explore


def payloads_for(configs, init="block"):
    return [{"init": init, "config": list(c)} for c in configs]


def fake_trial(payload):
    rate = sum(payload["config"]) / len(payload["config"])
    return {"init": payload["init"], "config": payload["config"], "params": int(1000 * (1 - rate)),
            "accuracy": 1.0 - rate, "accuracy_curve": [1.0 - rate], "seconds": 1.0}


CONFIGS = [(0.7, 0.7), (0.3, 0.3), (0.5, 0.7), (0.5, 0.5), (0.3, 0.5)]
PARAMS = [fake_trial({"init": "b", "config": list(c)})["params"] for c in CONFIGS]


class Killed(BaseException):
    """Stands for the run being killed mid-way (not an ordinary error)."""


def test_smallest_first_stops_at_first_success(tmp_path):
    ran = []

    def trial(payload):
        ran.append(tuple(payload["config"]))
        return fake_trial(payload)

    store = explore.ResultStore(str(tmp_path / "trials.jsonl"))
    result = explore.explore(payloads_for(CONFIGS), PARAMS, 0.45, store,
                             explore.LocalExecutor(), trial)
    # Sizes ascending: (.7,.7) acc .3, (.5,.7) acc .4, (.5,.5) acc .5 -> success, stop.
    assert ran == [(0.7, 0.7), (0.5, 0.7), (0.5, 0.5)]
    assert result["best"]["config"] == [0.5, 0.5] and result["explored"] == 3
    assert result["trial_seconds"] == 3.0
    assert result["resumed"] == 0 and result["resumed_seconds"] == 0.0


def test_resume_after_killed_trial_does_not_repeat_finished_ones(tmp_path):
    path = str(tmp_path / "trials.jsonl")
    calls = []

    def dies_on_third(payload):
        calls.append(tuple(payload["config"]))
        if len(calls) == 3:
            raise Killed()
        return fake_trial(payload)

    with pytest.raises(Killed):
        explore.explore(payloads_for(CONFIGS), PARAMS, 0.55, explore.ResultStore(path),
                        explore.LocalExecutor(), dies_on_third)
    with open(path) as f:
        assert len(f.readlines()) == 2
    with open(path, "a") as f:
        f.write('{"init": "block", "config": [0.3')  # a record cut short by the kill
    resumed = []

    def counting(payload):
        resumed.append(tuple(payload["config"]))
        return fake_trial(payload)

    result = explore.explore(payloads_for(CONFIGS), PARAMS, 0.55, explore.ResultStore(path),
                             explore.LocalExecutor(), counting)
    assert calls[:2] == [(0.7, 0.7), (0.5, 0.7)]
    assert resumed == [(0.5, 0.5), (0.3, 0.5)]   # the killed trial reran, finished ones did not
    assert result["best"]["config"] == [0.3, 0.5] and result["explored"] == 4
    # The two stored trials are reported, with their recorded time, since a wall
    # clock started at the resume does not include them.
    assert result["resumed"] == 2 and result["resumed_seconds"] == 2.0
    # A different init is a different trial: nothing is shared with "block" results.
    store = explore.ResultStore(path)
    assert store.get({"init": "default", "config": [0.7, 0.7]}) is None
    assert store.get({"init": "block", "config": [0.7, 0.7]})
    # Other fine-tuning settings are other trials too.
    assert store.get({"init": "block", "config": [0.7, 0.7], "epochs": 3}) is None


class OutOfOrderExecutor(explore.LocalExecutor):
    """Finishes the most recently submitted trial first (a larger one finishing early)."""

    def wait(self, handles):
        handle = handles[-1]
        fn, payload = self._pending.pop(handle)
        return [(handle, fn(payload))]


def test_waits_for_smaller_running_trials(tmp_path):
    configs = [(0.7, 0.7), (0.5, 0.5)]   # both succeed; the larger finishes first
    store = explore.ResultStore(str(tmp_path / "trials.jsonl"))
    result = explore.explore(payloads_for(configs), [100, 200], 0.2, store,
                             OutOfOrderExecutor(), fake_trial, workers=2)
    assert result["best"]["config"] == [0.7, 0.7]
    lines = [json.loads(line) for line in open(tmp_path / "trials.jsonl")]
    assert [line["config"] for line in lines] == [[0.5, 0.5], [0.7, 0.7]]


def test_larger_running_trials_are_cancelled_after_success(tmp_path):
    cancelled = []

    class Recording(OutOfOrderExecutor):
        def wait(self, handles):
            handle = handles[0]           # the smallest finishes first and succeeds
            fn, payload = self._pending.pop(handle)
            return [(handle, fn(payload))]

        def cancel(self, handle):
            cancelled.append(handle)
            super().cancel(handle)

    store = explore.ResultStore(str(tmp_path / "trials.jsonl"))
    result = explore.explore(payloads_for([(0.5, 0.5), (0.3, 0.3)]), [100, 200], 0.2, store,
                             Recording(), fake_trial, workers=2)
    assert result["best"]["config"] == [0.5, 0.5] and cancelled == [1]
    assert result["explored"] == 1
