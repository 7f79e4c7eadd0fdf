"""Hostile models: with the delegate loaded, nothing crashes the process.

Every model runs in a process of its own (hostile_child.py), so that a crash
fails the test instead of ending pytest, and its peak memory can be compared
with stock LiteRT's. For extreme geometries (dilation, stride, image size up
to what the runtime takes) the delegate must give stock's answer within a
memory bound, running the node or leaving it to stock; a malformed sparse
filter makes the delegate fail with a reason; an LR or sparse filter larger
than the file that holds it is refused.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import conv_stack, pattern_prune, random_input

from cocopie_keras import converter
from cocopie_keras import delegate
from cocopie_keras.converter import compact
from cocopie_keras.converter import lr as lr_lib

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile_child.py")
# A model may use at most this much more memory with the delegate than with
# stock LiteRT alone (measured: a few MiB; the peak without the bound on the
# padded copy was 2.1 GiB for a dilation of 4096).
MEMORY_MARGIN_MIB = 256
CHILD_TIMEOUT_S = 120
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def conv_model(padding="same", filters=(4,), input_shape=(8, 8, 2), compact_storage=False):
    model = conv_stack(input_shape, [dict(filters=f, kernel_size=3, padding=padding)
                                     for f in filters], seed=1)
    pattern_prune(model, seed=1)
    return converter.convert(model, storage="sparse" if compact_storage else "dense")


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    return schema, flatbuffer_utils


def edited(data, edit):
    """``data`` after ``edit(model)`` on its object form (``ModelT``)."""
    _, flatbuffer_utils = _schema()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    edit(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_conv_options(data, **options):
    """Every CONV_2D of ``data`` with these builtin options (schema names)."""
    schema, flatbuffer_utils = _schema()

    def edit(model):
        for op in model.subgraphs[0].operators:
            code = flatbuffer_utils.get_builtin_code_from_operator_code(
                model.operatorCodes[op.opcodeIndex])
            if code == schema.BuiltinOperator.CONV_2D:
                for name, value in options.items():
                    setattr(op.builtinOptions, name, value)
    return edited(data, edit)


def with_lr_bytes(data, raw):
    def edit(model):
        (entry,) = [m for m in model.metadata if m.name in (b"cocopie_lr", "cocopie_lr")]
        model.buffers[entry.buffer].data = np.frombuffer(raw, np.uint8).copy()
    return edited(data, edit)


def with_sparse_filter(data, mutate):
    """``data`` with ``mutate(encoding)`` applied to its first DENSIFY's source."""
    schema, flatbuffer_utils = _schema()

    def edit(model):
        subgraph = model.subgraphs[0]
        (op, *_) = [op for op in subgraph.operators
                    if flatbuffer_utils.get_builtin_code_from_operator_code(
                        model.operatorCodes[op.opcodeIndex]) == schema.BuiltinOperator.DENSIFY]
        tensor = subgraph.tensors[op.inputs[0]]
        buffer = model.buffers[tensor.buffer]
        values = np.frombuffer(buffer.data.tobytes(), "<f4")
        encoding = compact.from_sparsity_parameters(tensor.sparsity, values)
        mutate(encoding)
        tensor.sparsity = compact.to_sparsity_parameters(encoding)
        buffer.data = np.frombuffer(
            np.asarray(encoding.values, "<f4").tobytes(), np.uint8).copy()
    return edited(data, edit)


def run_children(tmp_path, library, runs, *extra):
    """Runs (model bytes, input) pairs in one child; its reports and outputs."""
    triples = []
    for i, (data, x) in enumerate(runs):
        stem = os.path.join(tmp_path, f"{os.getpid()}_{id(data)}_{i}")
        with open(stem + ".tflite", "wb") as f:
            f.write(data)
        np.save(stem + "_in.npy", x)
        triples.append(f"{stem}.tflite:{stem}_in.npy:{stem}_out.npy")
    done = subprocess.run([sys.executable, CHILD, library, *extra, *triples],
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    assert done.returncode == 0, (
        f"the process died (exit {done.returncode}); stderr ends:\n{done.stderr[-3000:]}")
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(runs), done.stdout + done.stderr[-3000:]
    outputs = [np.load(t.split(":")[2]) if r["status"] == "ok" else None
               for t, r in zip(triples, reports)]
    return reports, outputs, done.stderr


def run_ours(tmp_path, data, x, *extra):
    (report,), (output,), stderr = run_children(
        tmp_path, delegate.delegate_library_path(), [(data, x)], *extra)
    return report, output, stderr


@pytest.fixture(scope="module")
def models():
    return {"same": conv_model("same"), "valid": conv_model("valid")}


# (id, base model, CONV_2D options, input shape, convolutions the delegate
# runs, what it says when it leaves the node to stock)
INT_MAX = 2**31 - 1
COPY = "would need a padded copy of"
GEOMETRIES = [
    ("dilation_1", "same", {}, (1, 8, 8, 2), 1, ""),
    ("dilation_4096", "same", dict(dilationHFactor=4096, dilationWFactor=4096),
     (1, 8, 8, 2), 0, COPY),
    ("dilation_16384", "same", dict(dilationHFactor=16384, dilationWFactor=16384),
     (1, 8, 8, 2), 0, COPY),
    ("dilation_40000", "same", dict(dilationHFactor=40000, dilationWFactor=40000),
     (1, 8, 8, 2), 0, "spans 80001x80001 pixels, more than 65536"),
    ("dilation_2e29", "same", dict(dilationHFactor=2**29, dilationWFactor=2**29),
     (1, 8, 8, 2), 0, "more than 65536"),
    ("dilation_int_max_rows", "same", dict(dilationHFactor=INT_MAX), (1, 8, 8, 2), 0,
     "more than 65536"),
    # Claimed on the 8x8 shape; the resized row would need a 43 MiB padded
    # copy, so the scalar kernel runs it instead.
    ("dilation_300_thin_image", "same", dict(dilationHFactor=300, dilationWFactor=300),
     (1, 1, 4096, 2), 1, ""),
    ("dilation_300_square", "same", dict(dilationHFactor=300, dilationWFactor=300),
     (1, 64, 64, 2), 1, ""),
    ("stride_65537", "same", dict(strideH=65537, strideW=65537), (1, 8, 8, 2), 0,
     "stride 65537x65537 exceeds 65536"),
    ("stride_int_max_valid", "valid", dict(strideH=INT_MAX, strideW=INT_MAX), (1, 8, 8, 2), 0,
     "exceeds 65536"),
    ("image_1x1", "same", {}, (1, 1, 1, 2), 1, ""),
    ("image_one_row_of_2e18", "same", {}, (1, 1, 2**18, 2), 1, ""),
    ("image_1024x1024", "valid", {}, (1, 1024, 1024, 2), 1, ""),
]


@pytest.fixture(scope="module")
def stock_results(models, tmp_path_factory):
    """Stock LiteRT on every geometry, in one process (it runs them all)."""
    runs = []
    for _, base, options, shape, _, _ in GEOMETRIES:
        runs.append((with_conv_options(models[base], **options), random_input(shape, seed=2)))
    reports, outputs, _ = run_children(str(tmp_path_factory.mktemp("stock")), "stock", runs)
    return runs, reports, outputs


@pytest.mark.parametrize("case", range(len(GEOMETRIES)), ids=[g[0] for g in GEOMETRIES])
def test_extreme_geometry_is_run_right_or_left_to_stock(case, stock_results, tmp_path):
    runs, stock_reports, stock_outputs = stock_results
    data, x = runs[case]
    *_, expected_claims, reason = GEOMETRIES[case]
    report, output, stderr = run_ours(tmp_path, data, x, "--option", "verbose=1")
    assert report["status"] == stock_reports[case]["status"], (report, stock_reports[case])
    assert report["claimed"] == expected_claims, stderr[-2000:]
    assert reason in stderr, stderr[-2000:]
    if output is not None:
        np.testing.assert_allclose(output, stock_outputs[case], rtol=1e-5, atol=1e-5)
    stock_peak = max(r["peak_rss_mib"] for r in stock_reports)
    assert report["peak_rss_mib"] <= stock_peak + MEMORY_MARGIN_MIB, (report, stock_peak)


# ---- malformed and oversized inputs from the file ----------------------------

@pytest.fixture(scope="module")
def compact_model():
    return conv_model("same", filters=(8,), compact_storage=True)


def first_csr(encoding):
    return next(level for level in encoding.levels if level.format == compact.SPARSE_CSR)


SPARSE_CORRUPTIONS = {
    "index_out_of_range": lambda e: first_csr(e).indices.__setitem__(0, 10_000),
    "decreasing_segments": lambda e: first_csr(e).segments.__setitem__(1, 10_000),
    "one_value_missing": lambda e: setattr(e, "values", e.values[:-1]),
    "dense_size_wrong": lambda e: setattr(e.levels[0], "dense_size", 3),
}


@pytest.mark.parametrize("corruption", sorted(SPARSE_CORRUPTIONS))
def test_malformed_sparse_filter_fails_with_a_reason(corruption, compact_model, tmp_path):
    bad = with_sparse_filter(compact_model, SPARSE_CORRUPTIONS[corruption])
    report, _, _ = run_ours(tmp_path, bad, random_input((1, 8, 8, 2)))
    assert report["status"] == "error"
    assert "reads a malformed sparse tensor" in report["message"], report


def test_well_formed_sparse_filter_is_still_run(compact_model, tmp_path):
    x = random_input((1, 8, 8, 2))
    ours, output, _ = run_ours(tmp_path, compact_model, x)
    (stock,), (expected,), _ = run_children(tmp_path, "stock", [(compact_model, x)])
    assert ours["claimed"] == 1
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)


def _one_layer_many_times(layer, count):
    """An LR whose layers vector names the same layer table ``count`` times:
    well-formed for FlatBuffers, 4 bytes per claimed layer."""
    import flatbuffers

    from cocopie_keras.converter.lr_fbs import LayerwiseRepresentation as root

    builder = flatbuffers.Builder(1024)
    table = lr_lib._write_layer(builder, layer)
    root.StartLayersVector(builder, count)
    for _ in range(count):
        builder.PrependUOffsetTRelative(table)
    layers = builder.EndVector()
    root.Start(builder)
    root.AddVersion(builder, lr_lib.VERSION)
    root.AddLayers(builder, layers)
    builder.FinishSizePrefixed(root.End(builder), lr_lib.MAGIC)
    return bytes(builder.Output())


def test_lr_claiming_more_layers_than_it_holds_is_ignored(models, tmp_path):
    raw = _one_layer_many_times(converter.read_lr(models["same"])[0], 65536)
    report, _, stderr = run_ours(tmp_path, with_lr_bytes(models["same"], raw),
                                 random_input((1, 8, 8, 2)))
    assert report["status"] == "ok" and report["claimed"] == 0
    assert f"LR claims 65536 layers but holds {len(raw)} bytes" in stderr


def test_seeded_lr_and_sparse_mutations_never_crash(models, compact_model, tmp_path):
    """Random byte edits of the LR and random edits of the sparse arrays: each
    model runs (with stock's answer for an LR edit, which cannot change the
    weights) or fails with a reason; the whole run in two processes."""
    rng = np.random.default_rng(20261207)
    x = random_input((1, 8, 8, 2))
    lr = lr_lib.encode(converter.read_lr(models["same"]))
    lr_runs = []
    for _ in range(40):
        raw = bytearray(lr)
        for _ in range(rng.integers(1, 4)):
            raw[rng.integers(len(raw))] = rng.integers(256)
        lr_runs.append((with_lr_bytes(models["same"], bytes(raw)), x))
    (stock,), (expected,), _ = run_children(tmp_path, "stock", [(models["same"], x)])
    reports, outputs, _ = run_children(tmp_path, delegate.delegate_library_path(), lr_runs)
    for report, output in zip(reports, outputs):
        assert report["status"] == "ok", report
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)

    def random_edit(encoding):
        level = first_csr(encoding)
        array = level.indices if rng.integers(2) and len(level.indices) else level.segments
        array[rng.integers(len(array))] += int(rng.choice([-2, -1, 1, 2, 1000]))
    sparse_runs = [(with_sparse_filter(compact_model, random_edit), x) for _ in range(30)]
    reports, _, _ = run_children(tmp_path, delegate.delegate_library_path(), sparse_runs)
    for report in reports:
        assert report["status"] == "ok" or "malformed sparse tensor" in report["message"], report
    assert any(r["status"] == "error" for r in reports)


@pytest.mark.skipif(UNDER_ASAN, reason="AddressSanitizer needs an unlimited address space")
def test_out_of_memory_is_an_error_not_an_abort(tmp_path):
    # The 64-channel tensor between the two convolutions lives inside the
    # delegate's partition: 1 GiB at 2048x2048, beyond a 512 MiB budget.
    data = conv_model("same", filters=(64, 1), input_shape=(8, 8, 1))
    report, _, _ = run_ours(tmp_path, data, np.zeros((1, 2048, 2048, 1), np.float32),
                            "--address-space", "512")
    assert report["status"] == "error"
    assert "Prepare failed: out of memory" in report["message"], report
