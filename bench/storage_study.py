"""File size of pattern-pruned models: our compact storage vs TFLite's own sparsity.

For each benchmark model, pruned by ``pattern_conn`` (4-of-9 patterns, 72 % of
the kernels removed, 1×1 convs connectivity-pruned at the same rate) with
``--group-size`` output channels sharing a pattern and a removal (32, the
co-design grouping, by default; 1: free per-kernel patterns), three .tflite
files are written from the same weights:

* ``dense``: ``cocopie convert`` without compact storage (zeros stored);
* ``tflite_sparsity``: the stock converter with
  ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (CSR + DENSIFY), no LR;
* ``cocopie``: ``cocopie convert`` (compact filters + DENSIFY + the LR);
* ``cocopie_delegate_only``: ``cocopie convert --storage delegate-only``
  (kept values alone behind CocopiePackedFilter + the LR; only the delegate
  runs it, so its check is the delegate's outputs against stock's on
  ``dense``).

Reported per model: whole-file bytes, and the bytes of the pruned convolution
filters alone (values + index arrays of their tensors; for ``cocopie`` plus
the LR metadata), which is where the two encodings differ; and whether stock
LiteRT gives identical outputs for ``dense`` and ``cocopie``.

Run: ``.venv/bin/python bench/storage_study.py [--group-size 1]`` (a few
minutes; VGG-16 is 553 MB dense). Writes ``bench/results/storage.json`` and
``storage.md`` (``storage_g1.*`` and so on for another group size).
"""

import argparse
import contextlib
import io
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def sparse_tensor_bytes(model, tensor):
    """Values plus index arrays of a tensor as stored in the flatbuffer."""
    total = len(model.buffers[tensor.buffer].data) if model.buffers[tensor.buffer].data is not None else 0
    if tensor.sparsity is not None:
        for meta in tensor.sparsity.dimMetadata or []:
            for vector in (meta.arraySegments, meta.arrayIndices):
                if vector is not None and vector.values is not None:
                    total += np.asarray(vector.values).nbytes
    return total


def conv_filters(tflite_bytes):
    """Per CONV_2D operator, in order: ``(op_index, stored bytes of its filter)``.

    A filter behind a DENSIFY counts as the sparse constant it expands.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite_bytes))
    subgraph = model.subgraphs[0]
    producers = {int(op.outputs[0]): op for op in subgraph.operators if len(op.outputs) == 1}
    convs = []
    for index, op in enumerate(subgraph.operators):
        code = flatbuffer_utils.get_builtin_code_from_operator_code(
            model.operatorCodes[op.opcodeIndex])
        if code != schema.BuiltinOperator.CONV_2D:
            continue
        tensor = int(op.inputs[1])
        if subgraph.tensors[tensor].buffer == 0 and tensor in producers:
            tensor = int(producers[tensor].inputs[0])
        convs.append((index, sparse_tensor_bytes(model, subgraph.tensors[tensor])))
    return convs


def pattern_filter_bytes(tflite_bytes, ordinals):
    """Stored bytes of the filters of the CONV_2D operators at ``ordinals``."""
    convs = conv_filters(tflite_bytes)
    return sum(convs[k][1] for k in ordinals)


def lr_conv_ordinals(tflite_bytes):
    """Positions, among the file's CONV_2D operators, of those in the LR."""
    from cocopie_keras.converter import conversion

    described = {layer.op_index for layer in conversion.read_lr(tflite_bytes) or []}
    return [k for k, (index, _) in enumerate(conv_filters(tflite_bytes)) if index in described]


def outputs_identical(first, second, shape):
    from cocopie_keras.bench import timing
    from cocopie_keras import delegate

    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    a = timing.run(delegate.make_interpreter(first, use_delegate=False, input_shape=shape), x)
    b = timing.run(delegate.make_interpreter(second, use_delegate=False, input_shape=shape), x)
    return bool(np.array_equal(a, b))


def delegate_matches_stock(dense, delegate_only, shape):
    """Whether the delegate's outputs on the delegate-only file match stock
    LiteRT's on the dense file (the kernels sum in another order: 1e-4)."""
    from cocopie_keras.bench import timing
    from cocopie_keras import delegate

    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    stock = timing.run(delegate.make_interpreter(dense, use_delegate=False, input_shape=shape), x)
    ours = timing.run(delegate.make_interpreter(delegate_only, input_shape=shape, num_threads=2,
                                                tuning="off"), x)
    scale = float(np.abs(stock).max()) or 1.0
    return bool(np.allclose(ours, stock, rtol=1e-4, atol=1e-4 * scale))


def study(name, group_size, keras_path=None):
    """One row; ``keras_path``: a model pruned elsewhere (e.g. by ``cocopie
    prune``), stored as it is, instead of the benchmark model ``name``."""
    import keras
    import tensorflow as tf

    from cocopie_keras.bench import models
    from cocopie_keras.converter import conversion

    start = time.perf_counter()
    if keras_path:
        model = keras.saving.load_model(keras_path, compile=False)
    else:
        model = models.build_model(name)
        models.apply_variant(model, "pattern_conn", group_size=group_size)
    dense = conversion.convert(model, storage="dense")
    ours = conversion.convert(model)
    delegate_only = conversion.convert(model, storage="delegate-only")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    with contextlib.redirect_stdout(io.StringIO()):
        tflite_sparse = converter.convert()
    ordinals = lr_conv_ordinals(ours)
    lr_bytes = len(conversion.read_lr_bytes(ours))
    row = {
        "model": name,
        "group_size": None if keras_path else group_size,
        "pattern_layers": len(ordinals),
        "file_bytes": {"dense": len(dense), "tflite_sparsity": len(tflite_sparse),
                       "cocopie": len(ours), "cocopie_delegate_only": len(delegate_only)},
        "filter_bytes": {"dense": pattern_filter_bytes(dense, ordinals),
                         "tflite_sparsity": pattern_filter_bytes(tflite_sparse, ordinals),
                         "cocopie": pattern_filter_bytes(ours, ordinals) + lr_bytes,
                         "cocopie_delegate_only": pattern_filter_bytes(delegate_only, ordinals)
                         + len(conversion.read_lr_bytes(delegate_only))},
        "lr_bytes": lr_bytes,
        "stock_outputs_identical": outputs_identical(
            dense, ours, (1,) + tuple(model.input_shape[1:])),
        "delegate_only_matches_stock": delegate_matches_stock(
            dense, delegate_only, (1,) + tuple(model.input_shape[1:])),
        "seconds": round(time.perf_counter() - start, 1),
    }
    for storage in ("cocopie", "cocopie_delegate_only"):
        prefix = "" if storage == "cocopie" else "delegate_only_"
        row[f"{prefix}filter_ratio_vs_tflite_sparsity"] = round(
            row["filter_bytes"][storage] / row["filter_bytes"]["tflite_sparsity"], 3)
        row[f"{prefix}file_ratio_vs_tflite_sparsity"] = round(
            row["file_bytes"][storage] / len(tflite_sparse), 3)
    return row


def markdown(rows):
    from cocopie_keras.bench.report import format_table

    header = ["model", "pattern layers", "dense file", "TFLite sparsity file", "cocopie file",
              "pruned filters: TFLite sparsity", "cocopie (+LR)", "ratio",
              "stock outputs identical", "delegate-only file", "delegate-only filters (+LR)",
              "ratio", "delegate matches stock"]
    mb = lambda b: f"{b / 1e6:.2f} MB"  # noqa: E731
    lines = []
    for r in rows:
        f, w = r["file_bytes"], r["filter_bytes"]
        lines.append([r["model"], str(r["pattern_layers"]), mb(f["dense"]),
                      mb(f["tflite_sparsity"]), mb(f["cocopie"]), mb(w["tflite_sparsity"]),
                      mb(w["cocopie"]), f"{r['filter_ratio_vs_tflite_sparsity']:.3f}",
                      str(r["stock_outputs_identical"])] + _delegate_only_cells(r, mb))
    return format_table(header, lines, markdown=True) + "\n"


def _delegate_only_cells(row, mb):
    if "cocopie_delegate_only" not in row["file_bytes"]:  # a row measured before it existed
        return ["-"] * 4
    return [mb(row["file_bytes"]["cocopie_delegate_only"]),
            mb(row["filter_bytes"]["cocopie_delegate_only"]),
            f"{row['delegate_only_filter_ratio_vs_tflite_sparsity']:.3f}",
            str(row["delegate_only_matches_stock"])]


def merged_rows(path, rows):
    """``rows`` after the rows already in ``path`` of the models not measured now,
    so that adding one model does not cost converting the others again."""
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        kept = [r for r in json.load(f) if r["model"] not in {n["model"] for n in rows}]
    return kept + rows


def main(argv=None):
    from cocopie_keras.bench import models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(models.MODEL_NAMES))
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--group-size", type=int, default=models.PATTERN_GROUP)
    parser.add_argument("--keras", action="append", default=[], metavar="PATH",
                        help="also a .keras model pruned elsewhere (cocopie prune), stored "
                             "as it is; its row is named by the file")
    args = parser.parse_args(argv)
    rows = []
    for name in [n for n in args.models.split(",") if n]:
        rows.append(study(name, args.group_size))
        print(json.dumps(rows[-1]), flush=True)
    for path in args.keras:
        rows.append(study(os.path.basename(path), args.group_size, keras_path=path))
        print(json.dumps(rows[-1]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    stem = "storage" if args.group_size == models.PATTERN_GROUP else f"storage_g{args.group_size}"
    rows = merged_rows(os.path.join(args.out, f"{stem}.json"), rows)
    with open(os.path.join(args.out, f"{stem}.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
