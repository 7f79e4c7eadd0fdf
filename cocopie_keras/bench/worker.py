"""Measures one runtime on one model, in-process or as its own process.

The runner starts one worker process per (model, runtime): a runtime that
crashes, hangs or leaves spinning threads behind cannot take the rest of the
run down with it or slow the next runtime's measurement.

    python -m cocopie_keras.bench.worker SPEC.json RESULT.json

SPEC holds ``adapter`` (``"module:Class"``), ``model_path``, ``input_path``
(.npy), ``output_path`` (.npy to write), ``threads``, ``warmup``, ``repeat``,
``max_run_s`` and ``work_dir``.
"""

import json
import os
import sys
import time
import traceback

import numpy as np


def _one_line(error):
    text = f"{type(error).__name__}: {error}".strip().replace("\n", " ")
    return text[:300]


def measure(adapter_cls, model_path, x, threads, warmup=3, repeat=20,
            max_run_s=None, work_dir="."):
    """Prepares ``adapter_cls`` on the model and times ``repeat`` runs.

    Args:
        adapter_cls: a ``runtimes.Runtime`` subclass.
        model_path: the .tflite file every runtime receives.
        x: the input batch.
        threads: thread count given to the runtime.
        warmup: untimed runs before timing (at least one is always made: it
            yields the output and the first-run time).
        repeat: timed runs.
        max_run_s: give up (status ``failed``) when the first run takes longer;
            ``None``: no limit.
        work_dir: where conversions are written.

    Returns:
        dict with ``status`` (``ok`` / ``missing`` / ``failed: reason``),
        ``times_ms``, ``prepare_s``, ``first_run_ms``, ``notes`` and ``output``
        (numpy array or ``None``).
    """
    from cocopie_keras.bench import timing
    from cocopie_keras.bench.runtimes import RuntimeMissing

    result = {"status": "ok", "times_ms": [], "prepare_s": None, "first_run_ms": None,
              "notes": {}, "output": None}
    runtime = adapter_cls()
    try:
        runtime.check_available()
    except RuntimeMissing as error:
        result.update(status="missing", notes={"reason": str(error)[:300]})
        return result
    stage = "prepare"
    try:
        start = time.perf_counter()
        runtime.prepare(model_path, threads, work_dir)
        result["prepare_s"] = time.perf_counter() - start
        result["notes"] = {k: str(v) for k, v in runtime.notes().items()}
        stage = "run"
        start = time.perf_counter()
        output = np.asarray(runtime.run(x))
        first = time.perf_counter() - start
        result["first_run_ms"] = first * 1e3
        result["output"] = output
        if max_run_s is not None and first > max_run_s:
            result["status"] = (f"failed: too slow, first run {first:.1f} s > "
                                f"{max_run_s:g} s limit")
            return result
        result["times_ms"] = timing.latency_samples_ms(
            lambda: runtime.run(x), warmup=max(warmup - 1, 0), repeats=repeat)
    except Exception as error:  # a failing runtime is a result, not a crash
        result["status"] = f"failed: {stage}: {_one_line(error)}"
        if os.environ.get("COCOPIE_BENCH_DEBUG"):
            traceback.print_exc()
    return result


def limit_memory(fraction=0.5):
    """Caps this process's address space at ``fraction`` of the machine's RAM.

    A runtime or converter that needs more (tf2onnx on a large model does)
    then fails inside this worker, which reports it, instead of driving the
    whole machine into the kernel's out-of-memory killer.
    """
    try:
        import resource

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = int(total * fraction)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass  # not Linux-like: run without the cap


def main(argv):
    from cocopie_keras.bench.runtimes import adapter_from_spec

    limit_memory()

    spec_path, result_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    x = np.load(spec["input_path"])
    adapter_cls = adapter_from_spec(spec["adapter"])
    result = measure(adapter_cls, spec["model_path"], x, spec["threads"],
                     warmup=spec["warmup"], repeat=spec["repeat"],
                     max_run_s=spec.get("max_run_s"), work_dir=spec["work_dir"])
    output = result.pop("output")
    if output is not None:
        np.save(spec["output_path"], output)
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1:]))
