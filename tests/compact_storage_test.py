"""Compact filter storage: TFLite sparse tensors behind DENSIFY operators."""

import numpy as np
import pytest
from conftest import conv_stack, random_input, run

from cocopie_keras import patterns
from cocopie_keras import converter
from cocopie_keras import delegate
from cocopie_keras.converter import compact
from cocopie_keras.converter import report


def codesign_filter(out, cin, rate, group=32, seed=0):
    """An (out, 3, 3, in) filter pruned the co-design way."""
    rng = np.random.default_rng(seed)
    kernel_hwio = rng.normal(size=(3, 3, cin, out)).astype(np.float32)
    projection = patterns.project_kernel(kernel_hwio, connectivity_rate=rate,
                                         group_size=group)
    return np.transpose(kernel_hwio * projection.mask, (3, 0, 1, 2))


def pointwise_filter(out, cin, rate, group=32, seed=0):
    """An (out, 1, 1, in) filter with (group of outputs, input) pairs removed."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(out, 1, 1, cin)).astype(np.float32)
    kept = rng.random((-(-out // group), cin)) >= rate
    return w * np.repeat(kept, group, axis=0)[:out, None, None, :]


def free_pattern_filter(out, cin, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(out, 3, 3, cin)).astype(np.float32)
    mask = np.zeros((out, cin, 9), dtype=bool)
    for o in range(out):
        for c in range(cin):
            mask[o, c, rng.choice(9, 4, replace=False)] = True
    return w * mask.reshape(out, cin, 3, 3).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("weights", [
    codesign_filter(64, 24, 0.7),
    codesign_filter(40, 7, 0.5, group=8),   # 40 channels: groups of 8
    free_pattern_filter(5, 3),
    pointwise_filter(48, 16, 0.6),
    np.zeros((4, 3, 3, 2), np.float32),
], ids=["codesign", "odd_groups", "free_patterns", "pointwise", "all_zero"])
def test_every_encoding_round_trips(weights):
    for encoding in [compact.encode_filter(weights), compact.encode_csr(weights)] + [
            compact.encode_grouped(weights, g) for g in (1, 2, 4, 8) if weights.shape[0] % g == 0]:
        np.testing.assert_array_equal(compact.decode(encoding, weights.shape), weights)


def test_codesign_layer_is_well_below_tflite_csr():
    weights = codesign_filter(256, 256, 0.72)
    ours, csr = compact.encode_filter(weights), compact.encode_csr(weights)
    assert ours.block_map == [0] and ours.levels[-1].dense_size == 32
    raw = np.count_nonzero(weights) * 4
    # Values plus a few index bytes per 32-channel kernel group (measured:
    # 2.2 % over the raw values here).
    assert ours.nbytes() < 1.03 * raw
    assert ours.nbytes() <= 0.8 * csr.nbytes()


def test_group_wider_than_channels_is_an_error():
    with pytest.raises(ValueError, match="divides the 6 output channels"):
        compact.encode_grouped(np.zeros((6, 3, 3, 2), np.float32), 4)


def _corruptions(encoding):
    """(description, mutated encoding) pairs that must all be refused."""
    def mutate(fn):
        clone = compact.SparseEncoding(
            list(encoding.traversal_order), list(encoding.block_map),
            [compact.Level(l.format, l.dense_size,
                           None if l.segments is None else np.array(l.segments),
                           None if l.indices is None else np.array(l.indices))
             for l in encoding.levels], np.array(encoding.values))
        fn(clone)
        return clone

    csr_levels = [i for i, l in enumerate(encoding.levels) if l.format == compact.SPARSE_CSR]
    first = csr_levels[0]

    def set_(attr, index, value):
        def fn(e):
            getattr(e.levels[first], attr)[index] = value
        return fn

    return [
        ("index out of range", mutate(set_("indices", 0, 10_000))),
        ("negative index", mutate(set_("indices", 0, -1))),
        ("decreasing segments", mutate(set_("segments", 1, 10_000))),
        ("segments too short", mutate(lambda e: setattr(
            e.levels[first], "segments", e.levels[first].segments[:-1]))),
        ("one value missing", mutate(lambda e: setattr(e, "values", e.values[:-1]))),
        ("one value too many", mutate(lambda e: setattr(e, "values", np.append(e.values, 1.0)))),
        ("traversal order not a permutation", mutate(lambda e: e.traversal_order.__setitem__(0, 1))),
        ("dense size wrong", mutate(lambda e: setattr(e.levels[0], "dense_size", 3))),
        ("unknown format", mutate(lambda e: setattr(e.levels[0], "format", 7))),
        ("block map out of range", mutate(lambda e: e.block_map.__setitem__(0, 9))),
    ]


@pytest.mark.parametrize("case", range(10))
def test_malformed_encodings_are_refused(case):
    weights = codesign_filter(64, 12, 0.5)
    encoding = compact.encode_grouped(weights, 32)
    what, bad = _corruptions(encoding)[case]
    with pytest.raises(compact.SparseFormatError):
        compact.decode(bad, weights.shape)


CONVS = [
    dict(filters=32, kernel_size=3, padding="same", activation="relu"),
    dict(filters=64, kernel_size=3, strides=2, padding="same", activation="relu6"),
    dict(filters=64, kernel_size=1, padding="valid"),
]


@pytest.fixture(scope="module")
def codesign_model():
    model = conv_stack((12, 12, 8), CONVS, seed=3)
    for layer in model.layers[1:]:
        kernel = layer.kernel.numpy()
        if kernel.shape[:2] == (1, 1):  # connectivity pruning of the 1x1 layer
            mask = np.zeros_like(kernel, dtype=bool)
            mask[..., ::2, :] = True
        else:
            rate = 0.5 if kernel.shape[2] > 1 else 0.0
            mask = patterns.project_kernel(kernel, connectivity_rate=rate,
                                           group_size=32).mask
        layer.kernel.assign(kernel * mask)
    return model


def test_compact_file_is_smaller_and_runs_identically_on_stock_runtimes(codesign_model):
    dense_file = converter.convert(codesign_model, storage="dense")
    compact_file = converter.convert(codesign_model)
    assert len(compact_file) < 0.6 * len(dense_file)
    assert converter.check_lr(compact_file) == []
    x = random_input((2, 12, 12, 8))
    expected = run(delegate.make_interpreter(dense_file, use_delegate=False), x)
    for runtime in ("litert", "tf"):
        out = run(delegate.make_interpreter(compact_file, use_delegate=False, runtime=runtime), x)
        np.testing.assert_array_equal(out, expected)


def test_delegate_reads_the_sparse_filters(codesign_model):
    compact_file = converter.convert(codesign_model)
    layers = converter.read_lr(compact_file)
    assert len(layers) == 3
    x = random_input((3, 12, 12, 8))
    stock = run(delegate.make_interpreter(compact_file, use_delegate=False), x)
    for runtime in ("litert", "tf"):
        interpreter = delegate.make_interpreter(compact_file, runtime=runtime, num_threads=2)
        assert delegate.delegated_node_count(interpreter) == 3
        np.testing.assert_allclose(run(interpreter, x), stock, rtol=1e-5, atol=1e-5)
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        assert "DENSIFY" in ops  # listed, but claimed inside a delegate partition


def test_inspect_reports_stored_bytes(codesign_model):
    compact_file = converter.convert(codesign_model)
    rows = report.layer_reports(compact_file)
    assert [row["kind"] for row in rows] == ["conv3x3_pattern", "conv3x3_pattern",
                                             "conv1x1_connectivity"]
    for row in rows:
        assert row["fkw_bytes"] < row["csr_bytes"] < row["dense_bytes"]
        assert row["fkw_bytes"] >= 4 * row["nonzero_weights"]


def test_reannotating_a_compact_file_keeps_it_compact(codesign_model):
    compact_file = converter.convert(codesign_model)
    again = converter.annotate(compact_file)
    assert converter.read_lr(again)[0].op_index == converter.read_lr(compact_file)[0].op_index
    assert abs(len(again) - len(compact_file)) < 64
    assert converter.check_lr(again) == []
