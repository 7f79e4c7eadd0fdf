"""Delegate-only filter storage: kept values alone behind CocopiePackedFilter."""

import numpy as np
import pytest
from conftest import conv_stack, pattern_prune, random_input, run

from cocopie_keras import converter
from cocopie_keras import delegate
from cocopie_keras.converter import compact
from cocopie_keras.converter import conversion
from cocopie_keras.converter import packed
from cocopie_keras.converter import report

SPECIAL_VALUES = np.array([0.5, -0.25, 0.0, -0.0, 1e-40, 3e38, np.inf, -np.inf, np.nan,
                           0.125, 0.1171875, -7.0], dtype=np.float32)


@pytest.mark.parametrize("values", [
    SPECIAL_VALUES,
    np.array([0.5, 0.75, 0.625], np.float32),   # one top byte: no ids stored
    np.zeros(0, np.float32),
    np.random.default_rng(0).normal(scale=0.05, size=5000).astype(np.float32),
], ids=["special", "one_top_byte", "empty", "layer_like"])
def test_values_round_trip_bit_for_bit(values):
    back = packed.decode_values(packed.encode_values(values))
    np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))


def test_layer_like_values_cost_less_than_float32():
    values = np.random.default_rng(0).normal(scale=0.05, size=20000).astype(np.float32)
    # Low 24 bits as they are plus a 5-bit top-byte id (a normal sample spans
    # 17-32 distinct top bytes): 3.625 bytes each, plus a small header.
    distinct = np.unique(values.view(np.uint32) >> 24).size
    assert 16 < distinct <= 32
    assert len(packed.encode_values(values)) < 3.63 * values.size


def _with_field(values, **changes):
    """A buffer of ``values`` with fields of the canonical encoding replaced."""
    import flatbuffers
    from cocopie_keras.converter import lr_schema as schema

    root = schema.open_root(packed.encode_values(values), schema.PACKED_IDENTIFIER,
                            schema.PackedValues.PackedValues, "test")
    fields = dict(count=root.Count(), top_bytes=root.TopBytesAsNumpy(),
                  top_byte_bits=root.TopByteBits(), top_byte_ids=root.TopByteIdsAsNumpy(),
                  low_bytes=root.LowBytesAsNumpy())
    fields.update(changes)
    builder = flatbuffers.Builder(256)
    vectors = {name: builder.CreateNumpyVector(np.asarray(fields[name], dtype=np.uint8))
               for name in ("top_bytes", "top_byte_ids", "low_bytes")}
    module = schema.PackedValues
    module.PackedValuesStart(builder)
    module.PackedValuesAddCount(builder, fields["count"])
    module.PackedValuesAddTopBytes(builder, vectors["top_bytes"])
    module.PackedValuesAddTopByteBits(builder, fields["top_byte_bits"])
    module.PackedValuesAddTopByteIds(builder, vectors["top_byte_ids"])
    module.PackedValuesAddLowBytes(builder, vectors["low_bytes"])
    return schema.finish(builder, module.PackedValuesEnd(builder), schema.PACKED_IDENTIFIER)


FIVE = np.array([0.5, -0.5, 2.0, 1e-3, 1e-30], np.float32)  # five top bytes: 3-bit ids


@pytest.mark.parametrize("buffer, message", [
    (packed.encode_values(FIVE)[:-1], "truncated"),
    (packed.encode_values(FIVE).replace(b"CPPV", b"CPLR"), "identifier"),
    (_with_field(FIVE, top_bytes=[1, 0, 2, 3, 4]), "ascending"),
    (_with_field(FIVE, top_bytes=[]), "0 top bytes"),
    (_with_field(FIVE, top_byte_bits=4), "expected 3"),
    (_with_field(FIVE, count=6), "low bytes"),
    (_with_field(FIVE, top_byte_ids=[0xFF, 0xFF]), "unused bits"),
    (_with_field(FIVE, top_byte_ids=packed.lr_lib.pack_bits([0, 1, 2, 3, 7], 3)), "id is 7"),
    (_with_field(np.array([0.5, 0.75], np.float32), top_byte_ids=[0]), "single top byte"),
], ids=["truncated", "identifier", "order", "no_table", "bits", "count", "padding", "id",
        "ids_for_one_byte"])
def test_malformed_buffers_are_refused(buffer, message):
    with pytest.raises(packed.PackedFormatError, match=message):
        packed.decode_values(buffer)


CONVS = [
    dict(filters=32, kernel_size=3, padding="same", activation="relu"),
    dict(filters=48, kernel_size=3, strides=2, padding="same", activation="relu6"),
    dict(filters=40, kernel_size=3, dilation_rate=2, padding="valid"),
]


@pytest.fixture(scope="module")
def files():
    model = conv_stack((14, 14, 8), CONVS, seed=4)
    pattern_prune(model, connectivity_rate=0.7, seed=4)
    return {storage: converter.convert(model, storage=storage)
            for storage in conversion.STORAGES}


def test_delegate_only_file_is_the_smallest_and_describes_the_same_weights(files):
    sizes = {storage: len(data) for storage, data in files.items()}
    assert sizes["delegate-only"] < sizes["sparse"] < sizes["dense"]
    assert converter.check_lr(files["delegate-only"]) == []
    dense_model = conversion._read(files["dense"])
    packed_model = conversion._read(files["delegate-only"])
    dense_layers = converter.read_lr(files["dense"])
    packed_layers = converter.read_lr(files["delegate-only"])
    assert len(packed_layers) == len(CONVS)
    for before, after in zip(dense_layers, packed_layers):
        assert after.op_index == before.op_index + len(CONVS)  # feeds go first
        np.testing.assert_array_equal(after.kernel_pattern, before.kernel_pattern)
        original = compact.constant_weights(dense_model, dense_model.subgraphs[0],
                                            before.filter_tensor)
        restored = compact.constant_weights(packed_model, packed_model.subgraphs[0],
                                            after.filter_tensor)
        np.testing.assert_array_equal(restored, original)
    rows = report.layer_reports(files["delegate-only"])
    for row in rows:
        assert row["packed_bytes"] < row["fkw_bytes"]


def test_stock_runtimes_refuse_the_file_by_the_operator_name(files):
    x = random_input((1, 14, 14, 8))
    for runtime in ("litert", "tf"):
        with pytest.raises(RuntimeError, match="unresolved custom op: CocopiePackedFilter"):
            run(delegate.make_interpreter(files["delegate-only"], use_delegate=False,
                                          runtime=runtime), x)


@pytest.mark.parametrize("runtime", ["litert", "tf"])
def test_delegate_runs_it_like_the_stock_file(files, runtime):
    x = random_input((2, 14, 14, 8), seed=3)
    stock = run(delegate.make_interpreter(files["dense"], use_delegate=False, runtime=runtime), x)
    interpreter = delegate.make_interpreter(files["delegate-only"], runtime=runtime,
                                            num_threads=2)
    assert delegate.delegated_node_count(interpreter) == len(CONVS)
    np.testing.assert_allclose(run(interpreter, x), stock, rtol=1e-5, atol=1e-5)
    # Another batch size: the runtime prepares the partition again.
    x = random_input((3, 14, 14, 8), seed=5)
    stock = run(delegate.make_interpreter(files["dense"], use_delegate=False, runtime=runtime,
                                          input_shape=x.shape), x)
    again = delegate.make_interpreter(files["delegate-only"], runtime=runtime,
                                      input_shape=x.shape)
    np.testing.assert_allclose(run(again, x), stock, rtol=1e-5, atol=1e-5)


def test_a_packed_filter_that_disagrees_with_its_layer_is_reported(files):
    """An LR whose masks no longer match the packed values: check_lr says so,
    and the delegate refuses the convolution instead of guessing."""
    layers = converter.read_lr(files["delegate-only"])
    broken = list(layers)
    ids = broken[0].kernel_pattern.copy()
    ids[0, ids[0] == 255] = 0  # one more kernel kept: one more pattern of values expected
    broken[0] = packed.dataclasses.replace(broken[0], kernel_pattern=ids)
    data = converter.write_lr(files["delegate-only"], broken)
    assert any("packed filter is malformed" in p for p in converter.check_lr(data))
    with pytest.raises(RuntimeError, match="CocopiePackedFilter"):
        run(delegate.make_interpreter(data, num_threads=1), random_input((1, 14, 14, 8)))


def test_tune_kernels_keeps_every_layer_of_a_delegate_only_file(files):
    from cocopie_keras.commands.tune_kernels import tune_kernels

    assert converter.conversion.is_delegate_only(files["delegate-only"])
    assert not converter.conversion.is_delegate_only(files["sparse"])
    tuned, rows, whole_model = tune_kernels(files["delegate-only"], threads=1,
                                            input_shape=(1, 14, 14, 8))
    assert whole_model is None  # nothing to compare with: stock cannot run it
    assert [row["stock"] for row in rows] == [None] * len(CONVS)
    assert all(row["tuning"] and row["tuning"]["kernel"] != "stock" for row in rows)
    interpreter = delegate.make_interpreter(tuned, input_shape=(1, 14, 14, 8))
    assert delegate.delegated_node_count(interpreter) == len(CONVS)


def _with_packed_bytes(data, change):
    """``data`` with the first packed filter's buffer replaced by ``change(bytes)``."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = conversion._read(data)
    subgraph = model.subgraphs[0]
    op = next(op for op in subgraph.operators if packed.is_packed_filter_op(model, op))
    tensor = subgraph.tensors[int(op.inputs[0])]
    buffer = model.buffers[tensor.buffer]
    new = np.frombuffer(change(bytes(buffer.data)), dtype=np.uint8).copy()
    buffer.data = new
    tensor.shape = np.asarray([new.size], dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@pytest.mark.parametrize("change", [
    lambda b: b[:len(b) // 2],                      # truncated
    lambda b: b[:8] + b"XXXX" + b[12:],             # another identifier
    lambda b: b"",                                  # empty
    lambda b: b[:40] + bytes(len(b) - 40),          # ids and values zeroed: padding bits
], ids=["truncated", "identifier", "empty", "zeroed"])
def test_a_damaged_packed_filter_fails_cleanly(files, change):
    data = _with_packed_bytes(files["delegate-only"], change)
    with pytest.raises(RuntimeError, match="CocopiePackedFilter"):
        run(delegate.make_interpreter(data, num_threads=1), random_input((1, 14, 14, 8)))


def test_a_well_formed_packed_filter_runs_with_its_own_values(files):
    def halve_last_value(buffer):
        values = packed.decode_values(buffer)
        values[-1] *= 0.5
        return packed.encode_values(values)

    data = _with_packed_bytes(files["delegate-only"], halve_last_value)
    x = random_input((1, 14, 14, 8))
    interpreter = delegate.make_interpreter(data, num_threads=1)
    assert delegate.delegated_node_count(interpreter) == len(CONVS)
    original = run(delegate.make_interpreter(files["delegate-only"], num_threads=1), x)
    changed = run(interpreter, x)
    assert np.isfinite(changed).all() and not np.array_equal(changed, original)
