"""Per-layer timing of the delegate against the stock runtime (LiteRT + XNNPACK).

The delegate cannot time the stock kernels from inside, so ``cocopie
tune-kernels`` asks this module: each LR layer is cut out as a model of its
own (``converter.slicing``) and timed on both, in alternating rounds so that
a busy moment of the machine falls on both alike. A layer the delegate does
not run faster gets a ``stock`` tuning entry, and the delegate then leaves it
to the runtime: claiming it would make the model slower.

A layer that wins alone can still lose in the model: every switch between
the delegate and the runtime hands the activations from one thread pool to
the other. So the per-layer speedups only rank the layers; ``choose_claims``
times the whole model with the delegate claiming the layers above a few
speedup thresholds, next to the stock runtime, and keeps the fastest set (or
none at all).
"""

import dataclasses

import numpy as np

STOCK_MARGIN = 0.02
"""The delegate keeps a layer only if it is at least this much faster: on a
tie the stock kernel is the safe choice (no partition boundary, no second
thread pool)."""


CLAIM_THRESHOLDS = (1.0 + STOCK_MARGIN, 1.15, 1.4, 2.0)
"""Per-layer speedups over stock above which a layer is claimed, tried in
turn on the whole model."""


@dataclasses.dataclass
class LayerComparison:
    """Median microseconds of one layer alone on each runtime."""

    op_index: int
    delegate_us: float
    stock_us: float

    @property
    def speedup(self):
        return self.stock_us / self.delegate_us

    @property
    def stock_wins(self):
        return self.speedup <= 1.0 + STOCK_MARGIN

    def as_dict(self):
        return {"delegate_us": round(self.delegate_us, 1), "stock_us": round(self.stock_us, 1),
                "stock_wins": self.stock_wins}


def _invoke_us(interpreter, rounds):
    import time

    start = time.perf_counter()
    for _ in range(rounds):
        interpreter.invoke()
    return (time.perf_counter() - start) * 1e6 / rounds


def compare_layer(data, layer, *, threads=1, input_shape=None, rounds=7, invokes=5):
    """Times LR ``layer`` of the .tflite ``data`` alone, delegate vs stock.

    The delegate runs the layer with the tuning its LR entry carries
    (``tuning=cache``: nothing is timed inside the delegate here).

    Args:
        data: .tflite bytes with an LR.
        layer: one of its ``LRLayer`` items.
        threads: threads of both runtimes.
        input_shape: the layer's input shape when the model's is not fixed
            (``layer_input_shapes``); ``None`` keeps the file's.
        rounds, invokes: alternating rounds of ``invokes`` runs each; the
            medians of the rounds' means are compared.

    Returns:
        A ``LayerComparison``, or ``None`` when the delegate does not claim
        the layer's slice (then there is nothing to decide).
    """
    from cocopie_keras import delegate
    from cocopie_keras.converter import slicing

    sliced, _ = slicing.slice_operator(data, layer.op_index, layer)
    shape = input_shape
    ours = delegate.make_interpreter(sliced, num_threads=threads, tuning="cache",
                                     input_shape=shape)
    if delegate.delegated_node_count(ours) != 1:
        return None
    stock = delegate.make_interpreter(sliced, use_delegate=False, num_threads=threads,
                                      input_shape=shape)
    ours_us, stock_us = _alternating_us([ours, stock], rounds, invokes)
    return LayerComparison(layer.op_index, ours_us, stock_us)


def _alternating_us(interpreters, rounds, invokes):
    """Median microseconds per invoke of each interpreter (same input 0 shape),
    timed in alternating rounds of ``invokes`` runs, so that a busy moment of
    the machine falls on all of them alike."""
    detail = interpreters[0].get_input_details()[0]
    # Unit-scale inputs: denormals would slow every runtime alike and hide
    # the difference being measured.
    x = np.random.default_rng(0).standard_normal(detail["shape"]).astype(detail["dtype"])
    for interpreter in interpreters:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        _invoke_us(interpreter, 1)
    samples = [[] for _ in interpreters]
    for _ in range(rounds):
        for interpreter, times in zip(interpreters, samples):
            times.append(_invoke_us(interpreter, invokes))
    return [float(np.median(times)) for times in samples]


def layer_input_shapes(data, op_indices, input_shape, threads=1):
    """Input 0's shape of each operator once the model's input is ``input_shape``."""
    from cocopie_keras import delegate

    whole = delegate.make_interpreter(data, use_delegate=False, num_threads=threads,
                                      input_shape=input_shape)
    shapes = {}
    for op_index in op_indices:
        tensor = whole._get_op_details(op_index)["inputs"][0]
        shapes[op_index] = [int(d) for d in
                            whole._get_tensor_details(tensor, subgraph_index=0)["shape"]]
    return shapes


def with_stock_entries(data, layers, declined):
    """``data`` with a ``stock`` tuning entry (this CPU's target) on the LR
    layers whose operator index is in ``declined``."""
    from cocopie_keras import converter, delegate
    from cocopie_keras.converter import kernel_tuning as tuning

    stock = tuning.entry_without_params(delegate.simd_target(), "stock")
    marked = []
    for layer in layers:
        layer = dataclasses.replace(layer)
        if layer.op_index in declined:
            layer.tuning = tuning.merge(layer.tuning, stock)
        marked.append(layer)
    return converter.write_lr(data, marked)


def _whole_model_ms(files, threads, input_shape, rounds=5, invokes=3):
    """Median ms per invoke of each file (None: stock runtime) in alternating rounds."""
    from cocopie_keras import delegate

    interpreters = []
    for data, use_delegate in files:
        options = dict(tuning="cache") if use_delegate else {}
        interpreters.append(delegate.make_interpreter(
            data, use_delegate=use_delegate, num_threads=threads, input_shape=input_shape,
            **options))
    return [us / 1e3 for us in _alternating_us(interpreters, rounds, invokes)]


def choose_claims(data, layers, comparisons, *, threads=1, input_shape=None):
    """The layers the delegate should claim, timed on the whole model.

    Args:
        data: .tflite bytes whose LR carries each layer's kernel choice.
        layers: its ``LRLayer`` items.
        comparisons: ``{op_index: LayerComparison}`` of the layers to decide.
        threads, input_shape: as the model will run.

    Returns:
        ``(claimed op indices, summary)``; the summary (``None`` when no
        layer is faster alone) gives ``stock_ms``, ``delegate_ms`` of the
        chosen set and its ``threshold`` (``None``: nothing claimed).
    """
    candidates = []
    for threshold in CLAIM_THRESHOLDS:
        claims = frozenset(op for op, c in comparisons.items() if c.speedup > threshold)
        if claims and all(claims != known for known, _ in candidates):
            candidates.append((claims, threshold))
    if not candidates:
        return frozenset(), None
    files = [(data, False)] + [
        (with_stock_entries(data, layers, set(comparisons) - claims), True)
        for claims, _ in candidates]
    stock_ms, *times = _whole_model_ms(files, threads, input_shape)
    best = int(np.argmin(times))
    summary = {"stock_ms": round(stock_ms, 3), "delegate_ms": round(times[best], 3),
               "threshold": candidates[best][1],
               "tried": [{"threshold": t, "claimed": len(c), "ms": round(ms, 3)}
                         for (c, t), ms in zip(candidates, times)]}
    if times[best] * (1.0 + STOCK_MARGIN) >= stock_ms:
        summary["threshold"] = None
        return frozenset(), summary
    return candidates[best][0], summary
