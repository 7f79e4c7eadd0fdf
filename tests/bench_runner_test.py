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


def test_chart_and_tables_are_written(tmp_path):
    doc = bench([rt.LiteRTXnnpack, MissingRuntime], variants=("dense", "pattern"))
    png = report.plot(doc, str(tmp_path / "chart.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    table = report.text_table(doc, markdown=True)
    assert table.count("\n") == 1 + len(doc["rows"])
    assert "| missing |" in table
