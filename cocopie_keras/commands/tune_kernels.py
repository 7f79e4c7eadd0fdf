"""cocopie tune-kernels: time the delegate's kernels per layer, store the best in the LR.

Loads the model with the cocopie delegate in tuning mode (every delegated
layer's candidates are timed on this CPU, with the given threads), reads what
each layer chose, and writes it into the LR as that layer's tuning record,
under this CPU's SIMD target. A device with the same target then uses the
stored choice without timing anything (delegate option ``tuning=cache``, the
default); entries for other targets already in the file are kept.

Each delegated layer is then cut out as a model of its own and timed on the
delegate and on the stock runtime (LiteRT + XNNPACK), same threads
(``cocopie_keras.stock_comparison``). Where the delegate is not faster, the
stored choice is ``stock`` and the delegate leaves the layer to the runtime,
so a tuned file never runs a layer slower than stock (``--no-stock`` skips
the comparison).

Example::

    cocopie tune-kernels model.tflite -o model.tuned.tflite --threads 4
"""

NAME = "tune-kernels"
HELP = "time the delegate's kernels per layer and store the fastest in the LR"

# Sources whose choice is worth storing: timed now, or carried over.
_STORABLE = ("timed", "cache", "lr")


def add_arguments(parser):
    parser.add_argument("model", help="path of a .tflite file with a cocopie LR")
    parser.add_argument("-o", "--output",
                        help="where to write the tuned file (default: rewrite MODEL)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads to tune for, as the device will run (default 1)")
    parser.add_argument("--cache", metavar="PATH",
                        help="tuning cache file to read and extend (default: none)")
    parser.add_argument("--retune", action="store_true",
                        help="time every layer again, ignoring tunings in the LR or cache")
    parser.add_argument("--input-shape", metavar="N,H,W,C",
                        help="input shape when the model's is not fixed, e.g. 1,224,224,3")
    parser.add_argument("--no-stock", action="store_true",
                        help="do not time layers on the stock runtime (keep every layer "
                             "on the delegate)")
    parser.add_argument("--json", action="store_true",
                        help="print the per-layer choices as JSON instead of a table")


def _parse_shape(text):
    try:
        shape = [int(v) for v in text.split(",")]
    except ValueError:
        shape = []
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(
            f"Expected --input-shape as four positive integers N,H,W,C. Received: {text!r}")
    return shape


def tune_kernels(data, *, threads=1, cache=None, retune=False, input_shape=None,
                 compare_stock=True):
    """Tunes a .tflite file's delegated layers on this CPU.

    Args:
        data: .tflite bytes with a cocopie LR.
        threads: delegate threads to tune for (>= 1).
        cache: optional tuning cache file (read, and extended with new timings).
        retune: time every layer even if the LR or the cache has a choice.
        input_shape: input 0's shape when the model's is not fixed.
        compare_stock: time each delegated layer alone on the delegate and on
            the stock runtime, and store ``stock`` where the delegate is not
            faster. Ignored for a file with delegate-only filters
            (``cocopie convert --storage delegate-only``), which stock
            runtimes cannot run.

    Returns:
        ``(tuned_bytes, rows, whole_model)``: the file with tuning records in
        its LR, ``whole_model`` the stock comparison's summary
        (``stock_comparison.choose_claims``; None without one), and one
        dict per LR layer (``op_index``, ``source``, ``tuning`` entry dict or
        None when the delegate did not run the layer, ``default_us``,
        ``tuned_us``, and with ``compare_stock`` ``delegate_us`` /
        ``stock_us`` / ``stock_wins`` / ``claimed`` or None).

    Raises:
        ValueError: if the file has no LR, ``threads`` < 1, or the input shape
            is not fixed and none is given.

    Example:

        >>> tuned, rows, whole_model = tune_kernels(data, threads=2)  # doctest: +SKIP
    """
    import numpy as np

    from cocopie_keras import converter, delegate
    from cocopie_keras.converter import conversion

    if threads < 1:
        raise ValueError(f"Expected threads >= 1. Received: threads={threads}")
    layers = converter.read_lr(data)
    if not layers:
        raise ValueError("Expected a .tflite file with a cocopie LR (convert it with "
                         "`cocopie convert`). Received: a file without one")
    options = {"tuning": "retune" if retune else "on"}
    if cache:
        options["tuning_cache"] = cache
    # Stock runtimes cannot run a file with delegate-only filters: nothing to
    # compare with, and every layer stays with the delegate.
    delegate_only = conversion.is_delegate_only(data)
    compare_stock = compare_stock and not delegate_only
    probe = delegate.make_interpreter(data, use_delegate=delegate_only, num_threads=threads,
                                      input_shape=input_shape)
    shape = list(probe.get_input_details()[0]["shape"])
    if min(shape) < 1:
        raise ValueError(f"Expected a fixed input shape; the model's is {shape}. "
                         "Pass input_shape (--input-shape N,H,W,C).")
    interpreter = delegate.make_interpreter(data, num_threads=threads,
                                            input_shape=input_shape, **options)
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).random(detail["shape"], dtype=np.float32)
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
    interpreter.invoke()  # the tuned kernels must also run
    by_node = {report["node"]: report for report in delegate.kernel_tunings(interpreter)}
    rows = _rows_from_reports(layers, by_node)
    summary = None
    if compare_stock:
        summary = _store_stock_choices(data, layers, rows, threads, input_shape)
    return converter.write_lr(data, layers), rows, summary


def _rows_from_reports(layers, by_node):
    """One row per LR layer; each delegated layer's choice goes into its record."""
    from cocopie_keras.converter import kernel_tuning as tuning

    rows = []
    for layer in layers:
        report = by_node.get(layer.op_index)
        row = {"op_index": layer.op_index, "source": "not delegated", "tuning": None,
               "default_us": None, "tuned_us": None, "stock": None}
        if report is not None:
            row["source"] = report["source"]
            row["default_us"] = report.get("default_us")
            row["tuned_us"] = report.get("tuned_us")
            if report["source"] in _STORABLE:
                entry = tuning.entry_from_report(report)
                layer.tuning = tuning.merge(layer.tuning, entry)
                row["tuning"] = entry.as_dict()
        rows.append(row)
    return rows


def _store_stock_choices(data, layers, rows, threads, input_shape):
    """Times each tuned layer against the stock runtime, then the whole model
    with the most promising sets claimed; records ``stock`` on every layer
    the delegate should leave. Returns the whole-model summary (or None)."""
    from cocopie_keras import converter, delegate, stock_comparison
    from cocopie_keras.converter import kernel_tuning as tuning

    # Every layer, tuned or not (the depthwise kernels have no tunables):
    # compare_layer says when the delegate would not claim one anyway.
    tuned = list(zip(layers, rows))
    # Each layer is timed with the choice just made for it.
    data = converter.write_lr(data, layers)
    shapes = {}
    if input_shape is not None:
        shapes = stock_comparison.layer_input_shapes(
            data, [layer.op_index for layer, _ in tuned], input_shape, threads)
    comparisons = {}
    for layer, row in tuned:
        if row["tuning"] and row["tuning"]["kernel"] == "stock":
            continue  # carried over from an earlier run
        comparison = stock_comparison.compare_layer(
            data, layer, threads=threads, input_shape=shapes.get(layer.op_index))
        if comparison is not None:
            row["stock"] = comparison.as_dict()
            comparisons[layer.op_index] = comparison
    claims, summary = stock_comparison.choose_claims(
        data, layers, comparisons, threads=threads, input_shape=input_shape)
    for layer, row in tuned:
        if row["stock"] is None:
            continue
        row["stock"]["claimed"] = layer.op_index in claims
        if layer.op_index not in claims:
            entry = tuning.entry_without_params(delegate.simd_target(), "stock", threads)
            layer.tuning = tuning.merge(layer.tuning, entry)
            row["tuning"] = entry.as_dict()
    return summary


def run(args):
    import json

    from cocopie_keras.converter import kernel_tuning as tuning

    from cocopie_keras import atomic_write
    from cocopie_keras.commands import _inputs

    shape = _parse_shape(args.input_shape) if args.input_shape else None
    data = _inputs.read_tflite(args.model)
    tuned, rows, whole_model = tune_kernels(data, threads=args.threads, cache=args.cache,
                               retune=args.retune, input_shape=shape,
                               compare_stock=not args.no_stock)
    output = args.output or args.model
    # Rewriting MODEL in place: a failed write must not lose it.
    atomic_write.write_bytes(output, tuned)
    if args.json:
        print(json.dumps({"file": output, "threads": args.threads, "layers": rows,
                          "whole_model": whole_model}, indent=2))
        return 0
    print(f"{'op':>4} {'source':<14} {'built-in us':>12} {'tuned us':>10} {'speedup':>8} "
          f"{'vs stock':>9}  tuning")
    for row in rows:
        before, after = row["default_us"], row["tuned_us"]
        if before and after:
            times = f"{before:>12.1f} {after:>10.1f} {before / after:>8.2f}"
        else:
            times = f"{'':>12} {'':>10} {'':>8}"
        text = tuning.TuningEntry(**row["tuning"]).describe() if row["tuning"] else "-"
        stock = row["stock"]
        versus = f"{stock['stock_us'] / stock['delegate_us']:>8.2f}x" if stock else f"{'':>9}"
        print(f"{row['op_index']:>4} {row['source']:<14} {times} {versus}  {text}")
    stored = sum(1 for row in rows if row["tuning"])
    left = sum(1 for row in rows if row["tuning"] and row["tuning"]["kernel"] == "stock")
    if whole_model:
        print(f"whole model: stock {whole_model['stock_ms']:.2f} ms, delegate "
              f"{whole_model['delegate_ms']:.2f} ms with the layers it runs faster "
              f"than {whole_model['threshold'] or '-'}x; {left} layer(s) left to stock")
    print(f"wrote {output}: tuning stored for {stored} of {len(rows)} LR layer(s), "
          f"{args.threads} thread(s)")
    return 0
