"""The benchmark harness: result schema, output check, missing and failing runtimes.

Small models and few runs: these tests check what the harness reports, never
how fast anything is.
"""

import keras
import pytest

from cocopie_keras.bench import report, runner
from cocopie_keras.bench import runtimes as rt

from bench_fakes import BrokenPrepare, CrashingRuntime, MissingRuntime, PerturbedXnnpack

LIMITS = {"peak_gflops": 100.0, "read_gbs": 10.0, "sgemm_gflops": 90.0,
          "fma_loop_gflops": 100.0}
"""Fixed machine limits: the tests do not spend time measuring the peak."""


def tiny_net():
    """Two 3×3 convs and a 1×1 conv on 12×12×4 (runs in microseconds)."""
    inputs = keras.Input((12, 12, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(6, 1)(x)
    return keras.Model(inputs, x)


def bench(runtimes, isolate=False, variants=("dense",), **kwargs):
    # Three runs of microseconds on a shared machine spread arbitrarily: the
    # spread bound is switched off unless a test is about it.
    kwargs.setdefault("spread_bound", None)
    return runner.run_benchmark(
        models=["tiny"], variants=variants, runtimes=runtimes, threads=1, repeat=3,
        warmup=1, builders={"tiny": tiny_net}, isolate=isolate, limits=LIMITS,
        progress=False, **kwargs)


def rows_by_runtime(doc, key="rows"):
    return {row["runtime"]: row for row in doc[key]}


def test_results_follow_the_schema():
    doc = bench(["xnnpack", "builtin"], variants=("dense", "pattern_conn"))
    assert report.validate(doc) == []
    for key in report.TOP_KEYS:
        assert key in doc
    assert doc["peak_gflops"] == LIMITS["peak_gflops"]
    assert len(doc["rows"]) == 4
    for row in doc["rows"]:
        assert set(report.ROW_KEYS) <= set(row)
        assert row["status"] == "ok"
        assert row["runs"] == 3
        assert row["p10_ms"] <= row["median_ms"] <= row["p90_ms"]
        assert row["gflops"] == pytest.approx(2 * row["nonzero_macs"] / row["median_ms"] / 1e6)
    dense = [r for r in doc["rows"] if r["variant"] == "dense"]
    pruned = [r for r in doc["rows"] if r["variant"] == "pattern_conn"]
    # Same network, so the same dense MACs; pruning removes most of them.
    assert dense[0]["nonzero_macs"] == dense[0]["dense_macs"] == pruned[0]["dense_macs"]
    assert pruned[0]["nonzero_macs"] < 0.3 * pruned[0]["dense_macs"]
    assert rows_by_runtime({"rows": dense})["xnnpack"]["speedup_vs_xnnpack_dense"] == 1.0
    # The reference itself agrees exactly.
    assert rows_by_runtime({"rows": dense})["builtin"]["max_abs_diff_vs_litert"] == 0.0


def test_validate_reports_schema_problems():
    doc = bench(["xnnpack"])
    assert report.validate({"rows": []})  # top-level keys missing
    broken = dict(doc, rows=[dict(doc["rows"][0], status="fine")])
    assert any("bad status" in p for p in report.validate(broken))
    untimed = dict(doc, rows=[dict(doc["rows"][0], median_ms=None)])
    assert any("median_ms" in p for p in report.validate(untimed))
    incomplete = dict(doc, rows=[{k: v for k, v in doc["rows"][0].items() if k != "gflops"}])
    assert any("missing keys" in p for p in report.validate(incomplete))


@pytest.mark.parametrize("isolate", [False, True])
def test_a_runtime_computing_something_else_is_flagged(isolate):
    doc = bench([rt.LiteRTXnnpack, PerturbedXnnpack], isolate=isolate)
    rows = rows_by_runtime(doc)
    assert rows["xnnpack"]["status"] == "ok"
    flagged = rows["perturbed"]
    assert flagged["status"].startswith("failed: output differs from LiteRT")
    assert flagged["max_abs_diff_vs_litert"] > 100 * rows["xnnpack"]["max_abs_diff_vs_litert"]
    assert flagged["speedup_vs_xnnpack_dense"] is None  # a wrong answer is not a speed-up
    assert report.validate(doc) == []


@pytest.mark.parametrize("isolate", [False, True])
def test_missing_and_failing_runtimes_are_reported_not_raised(isolate):
    runtimes = [MissingRuntime, BrokenPrepare, rt.LiteRTXnnpack]
    if isolate:
        runtimes.insert(2, CrashingRuntime)
    doc = bench(runtimes, isolate=isolate)
    rows = rows_by_runtime(doc)
    assert rows["absent"]["status"] == "missing"
    assert "cocopie_no_such_runtime_module" in rows["absent"]["notes"]["reason"]
    assert rows["absent"]["median_ms"] is None
    assert rows["broken"]["status"] == "failed: prepare: RuntimeError: cannot load this model"
    if isolate:
        assert rows["crashing"]["status"].startswith("failed: worker exited with code 3")
    assert rows["xnnpack"]["status"] == "ok"  # the run went on after them
    assert report.validate(doc) == []


def test_runtime_whose_import_fails_is_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def refuse_onnxruntime(name, *args, **kwargs):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError("onnxruntime is not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse_onnxruntime)
    doc = bench(["ort", "xnnpack"])
    rows = rows_by_runtime(doc)
    assert rows["ort"]["status"] == "missing"
    assert "onnxruntime is not installed" in rows["ort"]["notes"]["reason"]
    assert rows["xnnpack"]["status"] == "ok"


def test_too_slow_runtime_is_stopped_with_reason():
    doc = bench(["xnnpack"], max_run_s=0.0)
    status = doc["rows"][0]["status"]
    assert status.startswith("failed: too slow, first run")


def test_per_layer_rows_time_each_distinct_conv():
    doc = bench(["xnnpack"], variants=("pattern",), layer_models=["tiny"])
    layers = doc["layer_rows"]
    assert len(layers) == 3  # three convs, three distinct shapes
    assert len({row["layer"] for row in layers}) == 3
    for row in layers:
        assert row["status"] == "ok"
        assert row["gflops_dense"] >= row["gflops"] > 0
        assert row["floor_ms"] == max(row["compute_floor_ms"], row["memory_floor_ms"])
    first = layers[0]
    assert first["input_shape"] == [12, 12, 4] and first["kernel"] == [3, 3]
    # 4 of 9 weights kept in every 3×3 kernel.
    assert first["nonzero_macs"] == pytest.approx(first["dense_macs"] * 4 / 9, rel=0.01)
    assert report.validate(doc) == []
    assert "GFLOP/s dense" in report.layer_table(doc)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Expected models"):
        runner.run_benchmark(models=["alexnet"])
    with pytest.raises(ValueError, match="Expected variants"):
        runner.run_benchmark(variants=["sparse"])
    with pytest.raises(ValueError, match="Expected runtimes"):
        runner.run_benchmark(runtimes=["tensorrt"])
    with pytest.raises(ValueError, match="threads=0"):
        runner.run_benchmark(threads=0)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="Expected group_size"):
            runner.run_benchmark(group_size=bad)


def test_pruned_rows_name_their_group_size_and_rate():
    doc = bench(["builtin"], variants=("dense", "pattern", "pattern_conn"), group_size=1)
    assert doc["config"]["group_size"] == 1
    assert {row["variant"]: (row["group_size"], row["connectivity_rate"])
            for row in doc["rows"]} == {
        "dense": (None, None), "pattern": (1, 0.0),
        "pattern_conn": (1, doc["config"]["connectivity_rate"])}
    assert report.validate(doc) == []


def test_chart_and_tables_are_written(tmp_path):
    doc = bench([rt.LiteRTXnnpack, MissingRuntime], variants=("dense", "pattern"))
    png = report.plot(doc, str(tmp_path / "chart.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    table = report.text_table(doc, markdown=True)
    assert table.count("\n") == 1 + len(doc["rows"])
    assert "| missing |" in table


def timed_row(runtime, variant, median, p10, p90, claimed=None, model="m"):
    notes = {} if claimed is None else {"delegated_convs": str(claimed)}
    return {"model": model, "variant": variant, "runtime": runtime, "status": "ok",
            "median_ms": median, "p10_ms": p10, "p90_ms": p90, "notes": notes}


def test_speedups_come_from_unrounded_medians_with_their_band():
    base = timed_row("xnnpack", "dense", 1.96399, 1.85442, 2.03159)
    ours = timed_row("cocopie", "pattern_conn", 0.255386, 0.253438, 0.280912, claimed=13)
    report.add_speedups([base, ours])
    assert ours["speedup_vs_xnnpack_dense"] == pytest.approx(1.96399 / 0.255386)  # 7.69, not 7.5
    assert ours["speedup_band_vs_xnnpack_dense"] == pytest.approx(
        [1.85442 / 0.280912, 2.03159 / 0.253438])
    assert ours["speedup_note"] is None and base["speedup_vs_xnnpack_dense"] == 1.0
    assert report.speedup_cell(ours) == "7.69× (6.60–8.02)"


def test_a_delegate_that_claims_nothing_is_not_a_speedup():
    base = timed_row("xnnpack", "dense", 0.383, 0.376, 0.390)
    idle = timed_row("cocopie", "dense", 0.216, 0.214, 0.220, claimed=0)
    report.add_speedups([base, idle])
    assert idle["speedup_vs_xnnpack_dense"] is None
    assert idle["speedup_band_vs_xnnpack_dense"] is None
    assert idle["speedup_note"].startswith("not a speed-up: the delegate claimed no node")
    assert "claims no node" in report.speedup_cell(idle)


def test_a_baseline_spread_too_wide_gives_no_speedup_and_needs_remeasure():
    base = timed_row("xnnpack", "dense", 0.383, 0.376, 1.218)  # p90/p10 3.2
    ours = timed_row("cocopie", "pattern_conn", 0.107, 0.104, 0.112, claimed=21)
    other = timed_row("xnnpack", "dense", 1.0, 0.99, 1.01, model="quiet")
    report.add_speedups([base, ours, other])
    assert base["needs_remeasure"] and not other["needs_remeasure"]
    assert ours["speedup_vs_xnnpack_dense"] is None
    assert "needs re-measure" in ours["speedup_note"]
    assert "needs re-measure (p90/p10 3.24)" in report.status_cell(base)
    assert other["speedup_vs_xnnpack_dense"] == 1.0


def fake_times(monkeypatch, spreads):
    """Makes the n-th measurement of the XNNPACK row report spreads[n]."""
    from cocopie_keras.bench import worker

    real, calls = worker.measure, []

    def measure(adapter_cls, *args, **kwargs):
        result = real(adapter_cls, *args, **kwargs)
        if adapter_cls.name == "xnnpack":
            spread = spreads[min(len(calls), len(spreads) - 1)]
            calls.append(spread)
            result["times_ms"] = [1.0] * 8 + [spread, spread]  # p10 1.0, p90 = spread
        else:
            result["times_ms"] = [0.5] * 10
        return result

    monkeypatch.setattr(worker, "measure", measure)
    return calls


def test_a_spread_baseline_is_remeasured_and_the_quiet_attempt_kept(monkeypatch):
    calls = fake_times(monkeypatch, [3.0, 1.2])
    doc = bench(["xnnpack", "builtin"], spread_bound=1.5, remeasure=2)
    rows = rows_by_runtime(doc)
    assert len(calls) == 2  # stopped as soon as an attempt was quiet
    assert rows["xnnpack"]["remeasured"] == 1
    assert rows["xnnpack"]["p90_ms"] == pytest.approx(1.2)
    assert not rows["xnnpack"]["needs_remeasure"]
    assert rows["builtin"]["speedup_vs_xnnpack_dense"] == pytest.approx(2.0)
    assert report.validate(doc) == []


def test_retries_are_bounded_and_a_baseline_that_stays_spread_is_flagged(monkeypatch):
    calls = fake_times(monkeypatch, [3.0])
    doc = bench(["xnnpack", "builtin"], spread_bound=1.5, remeasure=2)
    rows = rows_by_runtime(doc)
    assert len(calls) == 3 and rows["xnnpack"]["remeasured"] == 2
    assert rows["xnnpack"]["needs_remeasure"]
    assert rows["builtin"]["speedup_vs_xnnpack_dense"] is None
    assert "needs re-measure" in report.text_table(doc)


def test_the_delegate_on_a_dense_file_is_reported_as_claiming_nothing():
    doc = bench(["xnnpack", "cocopie"])
    idle = rows_by_runtime(doc)["cocopie"]
    assert idle["status"] == "ok" and idle["notes"]["delegated_convs"] == "0"
    assert idle["speedup_vs_xnnpack_dense"] is None
    assert "claims no node" in report.text_table(doc, markdown=True)
