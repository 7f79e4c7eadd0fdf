"""Latency and agreement measurements of TFLite interpreters (part of the ``bench`` package)."""

import time

import numpy as np


def set_batch(interpreter, batch_shape):
    """Resizes input 0 to ``batch_shape`` and re-allocates if it changed."""
    detail = interpreter.get_input_details()[0]
    if tuple(detail["shape"]) != tuple(batch_shape):
        interpreter.resize_tensor_input(detail["index"], list(batch_shape))
        interpreter.allocate_tensors()


def run(interpreter, x):
    """Output 0 of ``interpreter`` for input batch ``x``."""
    set_batch(interpreter, x.shape)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_batches(interpreter, x, batch_size=100):
    """Outputs for all of ``x``, ``batch_size`` rows per invoke."""
    return np.concatenate(
        [run(interpreter, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    )


def median_latency_ms(interpreter, x, warmup=5, repeats=30):
    """Median and (p10, p90) wall time of one invoke on ``x``, in ms.

    The interpreters being compared should be timed in the same process run,
    one after the other: only their ratio is meaningful on a shared machine.
    """
    set_batch(interpreter, x.shape)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    times = latency_samples_ms(interpreter.invoke, warmup=warmup, repeats=repeats)
    return float(np.median(times)), tuple(np.percentile(times, [10, 90]).tolist())


def latency_samples_ms(call, warmup=5, repeats=30):
    """Wall times in ms of ``repeats`` calls of ``call()`` after ``warmup`` calls.

    The runtime-neutral form of ``median_latency_ms``: ``call`` is any
    zero-argument function doing one inference (the benchmark harness times
    LiteRT, ONNX Runtime, MNN and TVM through it alike).

    Example:

    >>> times = latency_samples_ms(lambda: run(interpreter, x), repeats=20)
    >>> float(np.median(times))
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(
            "Expected repeats >= 1 and warmup >= 0. "
            f"Received: repeats={repeats}, warmup={warmup}"
        )
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times
