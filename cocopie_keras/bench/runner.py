"""Runs the benchmark: models × variants × runtimes, whole models and single layers.

For every (model, variant) the runner builds the Keras model from a seeded
random initialisation, prunes it, converts it once to ``.tflite`` (with the
pattern LR) and hands that same file and the same input to every runtime.
Each runtime is measured in its own worker process (``worker.py``) with the
same thread count, warm-up and number of timed runs; its output is compared
with LiteRT's built-in kernels on the same file, so a runtime that computes
something else is reported ``failed`` instead of fast.

Example:

>>> doc = run_benchmark(models=["resnet20_cifar"], variants=["dense", "pattern"],
...                     runtimes=["xnnpack", "cocopie", "ort"], threads=2, repeat=20)
>>> report.write_json(doc, "out/bench/results.json")
"""

import dataclasses
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from cocopie_keras import patterns
from cocopie_keras.bench import models as models_lib
from cocopie_keras.bench import peak as peak_lib
from cocopie_keras.bench import report
from cocopie_keras.bench import runtimes as runtimes_lib
from cocopie_keras.bench import worker

ATOL = 1e-30
RTOL = 1e-2
"""Output check: max |out - ref| must stay within ATOL + RTOL · max |ref|.

Runtimes legitimately differ by float32 summation order and by fast
algorithms: MNN's Winograd 3×3 convolutions differ from direct convolution by
up to ~3e-3 of the output's scale on VGG-16 layers. 1 % of the output's scale
is above that and below what a wrong kernel produces (a skipped kernel or a
wrong pattern moves outputs by tens of percent). The bound is relative only
(ATOL just covers an all-zero output): randomly initialised deep nets can end
with outputs of any scale, and a fixed absolute bound would pass anything.
``rel_diff_vs_litert`` (= max |diff| / max |ref|) is in every row.
"""


@dataclasses.dataclass
class Case:
    """One .tflite file to measure on every runtime."""

    model: str
    variant: str
    tflite_path: str
    input_path: str
    macs: dict
    compact_path: str = None  # the same model with compact filter storage
    reference: np.ndarray = None
    reference_error: str = None
    layer: str = None
    layer_info: dict = None


def _resolve_runtimes(runtimes):
    classes = []
    for item in runtimes:
        if isinstance(item, str):
            if item not in runtimes_lib.RUNTIMES:
                raise ValueError(f"Expected runtimes from {list(runtimes_lib.RUNTIMES)}. "
                                 f"Received: runtime={item!r}")
            classes.append(runtimes_lib.RUNTIMES[item])
        else:
            classes.append(item)
    return classes


def _check_names(values, allowed, what):
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"Expected {what} from {list(allowed)}. Received: {what}={unknown}")


def _reference_output(tflite_path, x, threads):
    """Output of LiteRT's built-in kernels: what every runtime is checked against."""
    adapter = runtimes_lib.LiteRTBuiltin()
    adapter.check_available()
    adapter.prepare(tflite_path, threads, os.path.dirname(tflite_path))
    return np.asarray(adapter.run(x))


def _make_case(keras_model, model_name, variant, directory, threads, seed, layer=None):
    from cocopie_keras import converter

    stem = f"{model_name}_{variant}" + (f"_{layer}" if layer else "")
    tflite_path = os.path.join(directory, stem + ".tflite")
    compact_path = os.path.join(directory, stem + "_compact.tflite")
    with open(tflite_path, "wb") as f:
        f.write(converter.convert(keras_model, storage="dense"))
    with open(compact_path, "wb") as f:
        f.write(converter.convert(keras_model))
    shape = (1,) + tuple(keras_model.input_shape[1:])
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    input_path = os.path.join(directory, stem + "_input.npy")
    np.save(input_path, x)
    case = Case(model=model_name, variant=variant, tflite_path=tflite_path,
                input_path=input_path, macs=models_lib.count_macs(keras_model), layer=layer,
                compact_path=compact_path)
    if layer is not None:
        conv = keras_model.layers[-1]
        case.layer_info = {
            "input_shape": list(shape[1:]), "output_shape": list(conv.output.shape[1:]),
            "kernel": list(conv.kernel_size), "strides": list(conv.strides),
            "activation_bytes": 4 * int(np.prod(shape) + np.prod(conv.output.shape[1:])),
        }
    try:
        case.reference = _reference_output(tflite_path, x, threads)
    except Exception as error:  # no reference: rows say so instead of crashing
        case.reference_error = f"{type(error).__name__}: {error}"[:200]
    return case


def _convert_to_onnx_once(case, classes):
    """Shares one tf2onnx conversion among the ONNX-based runtimes.

    tf2onnx imports TensorFlow, which this process has loaded already; a
    worker doing it would spend seconds on the import alone. A failure here
    is left for the worker to meet and report.
    """
    # tf2onnx needs tens of times the file's size in memory (VGG-16's 553 MB
    # file took this process past 24 GB): large files are converted only in
    # the memory-capped worker, where running out is a reported failure.
    small = os.path.getsize(case.tflite_path) < 64 * 2**20
    if small and any(getattr(c, "uses_onnx", False) for c in classes):
        try:
            runtimes_lib.onnx_from_tflite(case.tflite_path, os.path.dirname(case.tflite_path))
        except Exception:  # reported by the runtime's own prepare
            pass


def _model_path(adapter_cls, case):
    if getattr(adapter_cls, "reads_compact", False) and case.compact_path:
        return case.compact_path
    return case.tflite_path


def _run_worker(adapter_cls, case, threads, warmup, repeat, max_run_s, timeout_s):
    """Measures in a child process; a crash or hang becomes a ``failed`` result."""
    directory = os.path.dirname(case.tflite_path)
    tag = f"{os.path.basename(case.tflite_path)}.{adapter_cls.name or adapter_cls.__name__}"
    spec_path = os.path.join(directory, tag + ".spec.json")
    result_path = os.path.join(directory, tag + ".result.json")
    output_path = os.path.join(directory, tag + ".out.npy")
    spec = {"adapter": runtimes_lib.adapter_spec(adapter_cls),
            "model_path": _model_path(adapter_cls, case),
            "input_path": case.input_path, "output_path": output_path, "threads": threads,
            "warmup": warmup, "repeat": repeat, "max_run_s": max_run_s, "work_dir": directory}
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ)
    # The child must find the same modules (adapters may live outside the package).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "cocopie_keras.bench.worker", spec_path, result_path]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: no result within {timeout_s:g} s (killed)", "times_ms": [],
                "notes": {}, "output": None, "prepare_s": None}
    if done.returncode != 0 or not os.path.exists(result_path):
        if "MemoryError" in done.stderr or "bad_alloc" in done.stderr:
            return {"status": f"failed: out of memory (workers are capped at half the RAM), "
                              f"exit code {done.returncode}",
                    "times_ms": [], "notes": {}, "output": None, "prepare_s": None}
        tail = " | ".join(done.stderr.strip().splitlines()[-2:])[:240]
        return {"status": f"failed: worker exited with code {done.returncode}: {tail}",
                "times_ms": [], "notes": {}, "output": None, "prepare_s": None}
    with open(result_path) as f:
        result = json.load(f)
    result["output"] = np.load(output_path) if os.path.exists(output_path) else None
    return result


def _row(case, adapter_cls, result, threads, limits):
    macs = case.macs
    row = {"model": case.model, "variant": case.variant, "runtime": adapter_cls.name,
           "label": adapter_cls.label, "threads": threads, "median_ms": None, "p10_ms": None,
           "p90_ms": None, "runs": len(result["times_ms"]), "dense_macs": macs["dense_macs"],
           "nonzero_macs": macs["nonzero_macs"], "gflops": None, "gflops_dense": None,
           "peak_fraction": None, "speedup_vs_xnnpack_dense": None,
           "max_abs_diff_vs_litert": None, "status": result["status"],
           "prepare_s": result.get("prepare_s"), "notes": result.get("notes", {})}
    if case.layer is not None:
        row = {"layer": case.layer, **row, **case.layer_info}
    peak, bandwidth = limits.get("peak_gflops"), limits.get("read_gbs")
    moved = macs["weight_bytes"] + (case.layer_info or {}).get("activation_bytes", 0)
    row["compute_floor_ms"] = 2 * macs["nonzero_macs"] / peak / 1e6 if peak else None
    row["memory_floor_ms"] = moved / bandwidth / 1e6 if bandwidth else None
    floors = [v for v in (row["compute_floor_ms"], row["memory_floor_ms"]) if v]
    row["floor_ms"] = max(floors) if floors else None
    if result["times_ms"]:
        times = np.asarray(result["times_ms"])
        median = float(np.median(times))
        row["median_ms"] = median
        row["p10_ms"], row["p90_ms"] = (float(v) for v in np.percentile(times, [10, 90]))
        row["gflops"] = 2 * macs["nonzero_macs"] / median / 1e6
        row["gflops_dense"] = 2 * macs["dense_macs"] / median / 1e6
        row["peak_fraction"] = row["gflops"] / peak if peak else None
    output = result.get("output")
    if output is None or row["status"] == "missing":
        return row
    if case.reference is None:
        if row["status"] == "ok":
            row["status"] = f"failed: no LiteRT reference to check against ({case.reference_error})"
        return row
    if output.shape != case.reference.shape:
        if row["status"] == "ok":
            row["status"] = (f"failed: output shape {list(output.shape)} != LiteRT's "
                             f"{list(case.reference.shape)}")
        return row
    diff = float(np.max(np.abs(output.astype(np.float64) - case.reference)))
    row["max_abs_diff_vs_litert"] = diff
    scale = float(np.max(np.abs(case.reference)))
    row["rel_diff_vs_litert"] = diff / scale if scale > 0 else None
    tolerance = ATOL + RTOL * scale
    if not np.isfinite(diff) or diff > tolerance:
        if row["status"] == "ok":
            row["status"] = (f"failed: output differs from LiteRT (max |diff| {diff:.3g} > "
                             f"tolerance {tolerance:.3g})")
    return row


def _measure(adapter_cls, case, threads, settings):
    if settings["isolate"]:
        return _run_worker(adapter_cls, case, threads, settings["warmup"], settings["repeat"],
                           settings["max_run_s"], settings["worker_timeout_s"])
    return worker.measure(adapter_cls, _model_path(adapter_cls, case), np.load(case.input_path),
                          threads, settings["warmup"], settings["repeat"], settings["max_run_s"],
                          os.path.dirname(case.tflite_path))


def _measure_row(adapter_cls, case, threads, limits, settings):
    """Measures one row; a baseline spread too wide to quote is measured again.

    Every speed-up of a model rests on its XNNPACK dense row, so when that row
    spreads wider than ``settings["spread_bound"]`` (another job disturbed
    the run) it is re-measured up to ``settings["remeasure"]`` times and the
    least spread attempt is kept. ``remeasured`` counts the extra attempts; a
    row still too wide is flagged ``needs_remeasure`` by ``report.add_speedups``.
    """
    row = _row(case, adapter_cls, _measure(adapter_cls, case, threads, settings), threads, limits)
    attempts = 0
    is_baseline = (adapter_cls.name, case.variant) == ("xnnpack", "dense")
    while (is_baseline and row["status"] == "ok" and attempts < settings["remeasure"]
           and report.too_spread(row, settings["spread_bound"])):
        attempts += 1
        again = _row(case, adapter_cls, _measure(adapter_cls, case, threads, settings),
                     threads, limits)
        if again["status"] == "ok" and report.timing_spread(again) < report.timing_spread(row):
            row = again
    row["remeasured"] = attempts
    return row


def _check_numbers(threads, repeat, warmup, remeasure, rate, group_size):
    patterns.check_group_size(group_size)
    if threads < 1 or repeat < 1 or warmup < 0 or remeasure < 0:
        raise ValueError("Expected threads >= 1, repeat >= 1, warmup >= 0 and remeasure >= 0. "
                         f"Received: threads={threads}, repeat={repeat}, warmup={warmup}, "
                         f"remeasure={remeasure}")
    patterns.check_rate(rate)


def _measure_cases(cases, classes, threads, limits, settings, bar):
    """Yields ``(case, row)``: every runtime on every case, one step of ``bar`` each."""
    for case in cases:
        _convert_to_onnx_once(case, classes)
        for adapter_cls in classes:
            where = f"{case.model}/{case.variant}" + (f"/{case.layer}" if case.layer else "")
            bar.set_postfix_str(f"{where}: {adapter_cls.name}")
            yield case, _measure_row(adapter_cls, case, threads, limits, settings)
            bar.update(1)


def _cases(build, model_name, variant, rate, group_size, directory, whole_model, by_layer,
           threads, seed):
    """Builds one (model, variant), unit-scales it, and converts the whole
    model and/or each of its convolutions to the files every runtime reads."""
    import keras

    keras.utils.set_random_seed(seed)
    keras_model = build()
    models_lib.apply_variant(keras_model, variant, rate, group_size)
    shape = (1,) + tuple(keras_model.input_shape[1:])
    models_lib.normalize_activations(
        keras_model, np.random.default_rng(seed).normal(size=shape).astype(np.float32))
    os.makedirs(directory, exist_ok=True)
    cases = []
    if whole_model:
        cases.append(_make_case(keras_model, model_name, variant, directory, threads, seed))
    if by_layer:
        for layer_name, single in models_lib.conv_layer_models(keras_model):
            cases.append(_make_case(single, model_name, variant, directory, threads, seed,
                                    layer=layer_name))
    del keras_model
    keras.backend.clear_session()
    gc.collect()
    return cases


def _measure_variant(build, model_name, variant, pruning, work_dir, keep_work, whole_model,
                     by_layer, classes, threads, seed, limits, settings, bar):
    """Yields ``(case, row)`` for one (model, variant); ``pruning`` is
    ``(connectivity rate, group size)`` of the pruned variants."""
    rate, group_size = pruning
    bar.set_postfix_str(f"{model_name}/{variant}: build + convert")
    directory = os.path.join(work_dir, f"{model_name}_{variant}")
    cases = _cases(build, model_name, variant, rate, group_size, directory, whole_model,
                   by_layer, threads, seed)
    bar.total += sum(1 for case in cases if case.layer) * len(classes)
    bar.refresh()
    for case, row in _measure_cases(cases, classes, threads, limits, settings, bar):
        # Each row names the pruning it measured: a study's figures pair with
        # the rows of the same configuration only.
        row["group_size"] = None if variant == "dense" else group_size
        row["connectivity_rate"] = {"dense": None, "pattern": 0.0}.get(variant, rate)
        yield case, row
    if not keep_work:
        shutil.rmtree(directory, ignore_errors=True)


def _measure_all(models, variants, builders, classes, pruning, work_dir, keep_work,
                 whole_models, layer_models, threads, seed, limits, settings, progress):
    """Every (model, variant) in turn; returns ``(whole-model rows, layer rows)``."""
    from tqdm import tqdm

    os.makedirs(work_dir, exist_ok=True)
    rows, layer_rows = [], []
    bar = tqdm(total=len(models) * len(variants) * len(classes) * bool(whole_models), unit="run",
               desc="cocopie bench", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        for model_name in models:
            build = builders.get(model_name) or (
                lambda name=model_name: models_lib.build_model(name, seed))
            for variant in variants:
                for case, row in _measure_variant(
                        build, model_name, variant, pruning, work_dir, keep_work, whole_models,
                        model_name in layer_models, classes, threads, seed, limits, settings,
                        bar):
                    (layer_rows if case.layer else rows).append(row)
    finally:
        bar.close()
    return rows, layer_rows


def run_benchmark(models=("resnet20_cifar",), variants=("dense",), runtimes=("xnnpack",),
                  threads=2, repeat=20, warmup=3, layer_models=(), connectivity_rate=None,
                  builders=None, work_dir=None, keep_work=False, isolate=True, max_run_s=None,
                  worker_timeout_s=1800, limits=None, quick=False, progress=True, note=None,
                  seed=0, whole_models=True, spread_bound=report.SPREAD_BOUND, remeasure=2,
                  group_size=None):
    """Measures every runtime on every (model, variant) and returns the results.

    Args:
        models: benchmark model names (``models.ALL_MODEL_NAMES``, or keys of
            ``builders``).
        variants: from ``models.VARIANTS``.
        runtimes: ``--runtimes`` names or ``runtimes.Runtime`` subclasses.
        threads: threads every runtime gets.
        repeat: timed runs per measurement.
        warmup: untimed runs first.
        layer_models: models whose convolutions are also measured one by one
            (distinct shapes only), for every variant.
        connectivity_rate: kernels removed by ``pattern_conn`` (default 0.72).
        builders: extra ``{name: function() -> keras.Model}``.
        work_dir: where .tflite / .onnx / .mnn files go (default: a temporary
            folder, removed afterwards unless ``keep_work``).
        isolate: one worker process per measurement (``False``: in-process,
            faster; for tests).
        max_run_s: a runtime whose first run is slower than this is stopped
            and reported ``failed`` (``None``: no limit).
        limits: a ``peak.measure_peak`` result to reuse (default: measure).
        progress: show a tqdm progress bar on stderr.
        whole_models: measure the whole models (``False``: only the layers of
            ``layer_models``).
        spread_bound: largest p90/p10 of an XNNPACK dense baseline that
            speed-ups may rest on (``report.SPREAD_BOUND``).
        remeasure: extra measurements of a baseline spread wider than that.
        group_size: output channels sharing a pattern and a removal in the
            pruned variants (default ``models.PATTERN_GROUP``; 1 gives every
            kernel its own pattern, as free pruning does). Every pruned row
            names it.

    Returns:
        The results document (see ``report``).

    Raises:
        ValueError: for unknown names, threads < 1, repeat < 1, warmup < 0 or
            group_size < 1.
    """
    builders = dict(builders or {})
    rate = models_lib.CONNECTIVITY_RATE if connectivity_rate is None else connectivity_rate
    group_size = models_lib.PATTERN_GROUP if group_size is None else group_size
    _check_names(models, tuple(models_lib.ALL_MODEL_NAMES) + tuple(builders), "models")
    _check_names(layer_models, tuple(models), "layer_models")
    _check_names(variants, models_lib.VARIANTS, "variants")
    classes = _resolve_runtimes(runtimes)
    _check_numbers(threads, repeat, warmup, remeasure, rate, group_size)
    started = report.timestamp()
    limits = peak_lib.measure_peak(threads, quick=quick) if limits is None else limits
    settings = {"isolate": isolate, "warmup": warmup, "repeat": repeat, "max_run_s": max_run_s,
                "worker_timeout_s": worker_timeout_s, "spread_bound": spread_bound,
                "remeasure": remeasure}
    own_dir = work_dir is None
    work_dir = tempfile.mkdtemp(prefix="cocopie_bench_") if own_dir else work_dir
    try:
        rows, layer_rows = _measure_all(models, variants, builders, classes, (rate, group_size),
                                        work_dir, keep_work, whole_models, layer_models,
                                        threads, seed, limits, settings, progress)
    finally:
        if own_dir and not keep_work:
            shutil.rmtree(work_dir, ignore_errors=True)
    report.add_speedups(rows, spread_bound)
    report.add_speedups(layer_rows, spread_bound)
    config = {"models": list(models), "variants": list(variants),
              "runtimes": [c.name for c in classes], "threads": threads, "repeat": repeat,
              "warmup": warmup, "connectivity_rate": rate, "group_size": group_size,
              "dense_block": list(models_lib.DENSE_BLOCK), "layer_models": list(layer_models),
              "quick": quick, "isolated_workers": isolate, "max_run_s": max_run_s,
              "tolerance": {"atol": ATOL, "rtol": RTOL}, "started": started,
              "finished": report.timestamp(), "note": note, "spread_bound": spread_bound,
              "remeasure": remeasure}
    return {"machine": report.machine_info(), "versions": report.versions(classes),
            "peak_gflops": limits.get("peak_gflops"), "peak": limits, "config": config,
            "rows": rows, "layer_rows": layer_rows}
