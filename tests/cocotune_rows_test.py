"""The CoCo-Tune study's rows: looser alphas read from a stricter exploration,
stopped explorations, and when a speed-up is (not) reported.

`bench/cocotune_rows.py` turns exploration summaries into the rows of
bench/results/cocotune_study.json; a wrong prefix or time here changes every
rederived speed-up without any training being wrong.
"""

import json

import pytest

import bench_scripts


@pytest.fixture(scope="module")
def rows_module():
    return bench_scripts.load("cocotune_rows")


def trial(params, curve, epoch_seconds, setup=2.0, tail=1.0, index=0, init="default"):
    """A finished trial as `cocotune.tune` records it: curve[k] after k epochs."""
    return {"params": params, "config_index": index, "init": init,
            "accuracy_curve": curve, "accuracy": curve[-1], "epochs": len(curve) - 1,
            "epoch_seconds": epoch_seconds, "setup_seconds": setup,
            "seconds": setup + sum(epoch_seconds) + tail}


def exploration(rows, gap_per_trial=0.5, found=True):
    wall = sum(r["seconds"] for r in rows) + gap_per_trial * len(rows)
    return {"rows": rows, "best": rows[-1] if found else None, "explored": len(rows),
            "wall_seconds": wall}


def test_rederive_cuts_each_trial_at_the_looser_threshold(rows_module):
    strict = exploration([
        trial(100, [0.2, 0.5, 0.6, 0.65], [10.0, 10.0, 10.0], index=0),
        trial(200, [0.3, 0.7, 0.8], [20.0, 20.0], index=1),
    ])
    looser = rows_module.rederive(strict, threshold=0.6)
    # The first trial reaches 0.6 after two epochs: it is the looser exploration's answer.
    assert looser["explored"] == 1
    assert looser["best"]["config_index"] == 0
    assert looser["best"]["accuracy"] == 0.6
    assert looser["best"]["accuracy_curve"] == [0.2, 0.5, 0.6]
    assert looser["best"]["epochs"] == 2
    # Set-up + two epochs + the trial's own tail + its share of the scheduling gap.
    assert looser["wall_seconds"] == pytest.approx(2.0 + 20.0 + 1.0 + 0.5)


def test_rederive_walks_past_trials_that_miss(rows_module):
    strict = exploration([
        trial(100, [0.2, 0.4, 0.5], [10.0, 10.0], index=0),
        trial(200, [0.3, 0.7, 0.9], [20.0, 20.0], index=1),
    ])
    looser = rows_module.rederive(strict, threshold=0.65)
    assert looser["explored"] == 2
    assert looser["best"]["config_index"] == 1
    assert looser["best"]["epochs"] == 1
    first = 2.0 + 20.0 + 1.0 + 0.5   # ran all its epochs, missed
    second = 2.0 + 20.0 + 1.0 + 0.5  # one epoch was enough
    assert looser["wall_seconds"] == pytest.approx(first + second)


def test_rederive_without_success_is_not_found(rows_module):
    strict = exploration([trial(100, [0.1, 0.2], [5.0])], found=False)
    looser = rows_module.rederive(strict, threshold=0.9)
    assert looser["best"] is None
    assert looser["explored"] == 1


def test_speedup_only_when_both_sides_found_a_network(rows_module):
    found = {"hours": 2.0, "found": True, "complete": True}
    fast = {"hours": 0.5, "found": True, "complete": True}
    assert rows_module.speedup_fields(found, fast) == {
        "speedup": 4.0, "speedup_lower_bound": None}
    stopped = {"hours": 2.0, "found": False, "complete": False}
    assert rows_module.speedup_fields(stopped, fast) == {
        "speedup": None, "speedup_lower_bound": 4.0}
    # A base that tried everything and failed is no lower bound on anything.
    exhausted = {"hours": 2.0, "found": False, "complete": True}
    assert rows_module.speedup_fields(exhausted, fast) == {
        "speedup": None, "speedup_lower_bound": None}


def test_make_row_counts_pretraining_in_comp(rows_module):
    base = exploration([trial(100, [0.2, 0.7], [3600.0 - 3.0], index=0)], gap_per_trial=0.0)
    comp = exploration([trial(100, [0.6, 0.7], [1800.0 - 3.0], index=0, init="block")],
                       gap_per_trial=0.0)
    summary = {"full_accuracy": 0.72, "full_params": 1000, "blocks": [None] * 3}
    row = rows_module.make_row(16, 0.05, 1, summary, base, comp, 1800.0, "measured", None)
    assert row["base"]["hours"] == pytest.approx(1.0)
    assert row["comp"]["hours"] == pytest.approx(1.0)
    assert row["comp"]["pretrain_overhead_pct"] == pytest.approx(50.0)
    assert row["speedup"] == pytest.approx(1.0)
    assert row["threshold"] == pytest.approx(0.67)
    assert row["blocks"] == 3


def test_stopped_summary_reads_finished_trials_and_skips_a_cut_line(rows_module, tmp_path):
    with open(tmp_path / "pretrain.json", "w") as f:
        json.dump({"seconds": 30.0, "blocks": 4}, f)
    trials = [trial(300, [0.1, 0.3], [5.0], index=2),
              trial(100, [0.1, 0.2], [5.0], index=0),
              trial(100, [0.5, 0.6], [5.0], index=0, init="block")]
    with open(tmp_path / "trials.jsonl", "w") as f:
        for row in trials:
            f.write(json.dumps(row) + "\n")
        f.write('{"params": 400, "config_in')  # the stop cut this line
    summary = rows_module.stopped_summary(str(tmp_path), 0.8, 5000, size=16)
    assert summary["full_accuracy"] == 0.8
    assert summary["pretrain_seconds"] == 30.0
    assert len(summary["blocks"]) == 4
    default = summary["default"]
    assert [r["config_index"] for r in default["rows"]] == [0, 2]  # smallest first
    assert default["complete"] is False  # 2 of 16 networks tried
    assert default["wall_seconds"] == pytest.approx(sum(t["seconds"] for t in trials[:2]))
    assert summary["block"]["explored"] == 1
