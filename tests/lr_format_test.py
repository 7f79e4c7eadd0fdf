import numpy as np
import pytest

from cocopie_keras import patterns
from cocopie_keras.converter import kernel_tuning, lr
from cocopie_keras.converter.lr_fbs import LayerwiseRepresentation


def sample_layers():
    pool = patterns.default_pattern_pool()
    ids = np.array([[0, 3, lr.REMOVED_KERNEL], [7, 1, 2]], dtype=np.uint8)
    return [lr.LRLayer(4, 11, pool, ids), lr.LRLayer(9, 2, pool[:2], np.zeros((1, 1), np.uint8))]


def test_round_trip():
    layers = sample_layers()
    decoded = lr.decode(lr.encode(layers))
    assert len(decoded) == 2
    for a, b in zip(layers, decoded):
        assert (a.op_index, a.filter_tensor) == (b.op_index, b.filter_tensor)
        np.testing.assert_array_equal(a.pattern_masks, b.pattern_masks)
        np.testing.assert_array_equal(a.kernel_pattern, b.kernel_pattern)


def test_kept_mask_is_in_ohwi_layout():
    layer = sample_layers()[0]
    mask = layer.kept_mask_ohwi()
    assert mask.shape == (2, 3, 3, 3)
    assert not mask[0, :, :, 2].any()  # removed kernel
    np.testing.assert_array_equal(mask[1, :, :, 0], layer.pattern_masks[7])


def test_every_truncation_is_an_error():
    data = lr.encode(sample_layers())
    for n in range(len(data)):
        with pytest.raises(lr.LRFormatError):
            lr.decode(data[:n])


def _root(data):
    """The generated reader on an LR buffer (after its 4-byte size prefix)."""
    return LayerwiseRepresentation.LayerwiseRepresentation.GetRootAs(data, 4)


def _vector_start(table, slot):
    """Byte offset of the first item of vector field ``slot`` of ``table``."""
    return table._tab.Vector(table._tab.Offset(slot))


def test_inconsistent_bytes_are_errors(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(lr, "_compact_ids", lambda ids, num_patterns: None)  # the plain form
        data = bytearray(lr.encode(sample_layers()))
    with pytest.raises(lr.LRFormatError, match="trailing"):
        lr.decode(bytes(data) + b"\0")
    bad_magic = bytes(data[:8]) + b"XPLR" + bytes(data[12:])
    with pytest.raises(lr.LRFormatError, match="identifier"):
        lr.decode(bad_magic)
    with monkeypatch.context() as patch:
        patch.setattr(lr, "VERSION", 7)
        bad_version = lr.encode(sample_layers())
    with pytest.raises(lr.LRFormatError, match="version 7"):
        lr.decode(bad_version)
    bad_id = bytearray(data)
    # The first layer's first pattern id (the pool has 8 patterns).
    bad_id[_vector_start(_root(data).Layers(0), 22)] = 8
    with pytest.raises(lr.LRFormatError, match="pattern id"):
        lr.decode(bytes(bad_id))


def test_lying_vector_lengths_are_errors():
    data = lr.encode(sample_layers())
    root = _root(data)
    # The length fields sit just before the vectors' first items.
    for start in (_vector_start(root, 6), _vector_start(root.Layers(0), 20),
                  _vector_start(root.Layers(0), 22), _vector_start(root.Layers(1), 22)):
        for value in (0xFFFFFFFF, 0x80000000, 1 << 16, 255):
            lying = bytearray(data)
            lying[start - 4:start] = value.to_bytes(4, "little")
            with pytest.raises(lr.LRFormatError):
                lr.decode(bytes(lying))


def test_old_versions_ask_for_a_new_conversion():
    # LR version 2: "CPLR", u32 version, u32 layer count, then the layers.
    for version in (1, 2):
        old = b"CPLR" + version.to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(40)
        with pytest.raises(lr.LRFormatError,
                           match=f"LR version {version} is no longer read; convert the model "
                                 "again with this release"):
            lr.decode(old)
    with pytest.raises(lr.LRFormatError, match="no longer read"):
        lr.decode(b"CPLR\x02")


def test_operator_twice_is_an_error():
    pool = patterns.default_pattern_pool()
    ids = np.zeros((1, 1), np.uint8)
    data = lr.encode([lr.LRLayer(5, 1, pool, ids), lr.LRLayer(5, 2, pool, ids)])
    with pytest.raises(lr.LRFormatError, match="operator 5 twice"):
        lr.decode(data)


def test_layers_sharing_stored_vectors_cannot_describe_more_than_the_buffer_holds():
    import flatbuffers

    from cocopie_keras.converter import lr_schema

    pool = patterns.default_pattern_pool()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(pool), size=(512, 128)).astype(np.uint8)
    builder = flatbuffers.Builder(1024)
    table = lr._write_layer(builder, lr.LRLayer(0, 1, pool, ids))
    layers = lr_schema.table_vector(builder, LayerwiseRepresentation.StartLayersVector,
                                    [table] * 100)
    LayerwiseRepresentation.Start(builder)
    LayerwiseRepresentation.AddVersion(builder, lr.VERSION)
    LayerwiseRepresentation.AddLayers(builder, layers)
    data = lr_schema.finish(builder, LayerwiseRepresentation.End(builder), lr.MAGIC)
    assert len(data) < 2 * ids.size
    with pytest.raises(lr.LRFormatError, match=r"LR layers 0\.\.1 describe .*sharing stored"):
        lr.decode(data)


def test_grouped_rows_and_tuning_round_trip():
    pool = patterns.default_pattern_pool()
    rows = np.array([[0, lr.REMOVED_KERNEL, 5], [2, 2, lr.REMOVED_KERNEL]], np.uint8)
    ids = np.repeat(rows, 32, axis=0)[:40]  # 40 channels: groups of 32 and 8
    record = kernel_tuning.encode([kernel_tuning.TuningEntry("AVX3", "block", 16, 12),
                                   kernel_tuning.TuningEntry("NEON", "rows")])
    layer = lr.LRLayer(3, 8, pool, ids, tuning=record)
    data = lr.encode([layer])
    assert lr.output_group(ids) == 32
    # One row per group instead of one per channel; the record as a table.
    stored = _root(data).Layers(0)
    # 6 ids, 4 kept: a 1-byte kept bitmap and 4 ids of 3 bits in 2 bytes.
    assert stored.OutGroup() == 32 and stored.PatternIdBits() == 3
    assert (stored.KernelKeptLength(), stored.KernelPatternLength()) == (1, 2)
    assert stored.PatternMasksLength() == len(pool)
    assert [stored.Tuning().Entries(i).Target() for i in range(2)] == [b"AVX3", b"NEON"]
    (decoded,) = lr.decode(data)
    np.testing.assert_array_equal(decoded.kernel_pattern, ids)
    assert decoded.tuning == record
    assert lr.decode(lr.encode([decoded]))[0].tuning == record


def test_tuning_must_be_a_record():
    pool = patterns.default_pattern_pool()
    layer = lr.LRLayer(0, 1, pool, np.zeros((1, 1), np.uint8), tuning=b"\x01\x02")
    with pytest.raises(lr.LRFormatError, match="kernel_tuning.encode"):
        lr.encode([layer])
    # A record that breaks the tuning rules is kept: the delegate judges it.
    bad = kernel_tuning.pack([kernel_tuning.RawEntry(b"AVX3", 1, 99, 12, 4, 0, 0, 0)])
    layer.tuning = bad
    assert lr.decode(lr.encode([layer]))[0].tuning == bad


def test_output_group_falls_back_to_single_channels():
    ids = np.array([[0, 1], [1, 1], [1, 1]], np.uint8)
    assert lr.output_group(ids) == 1
    assert lr.output_group(np.zeros((5, 2), np.uint8)) == 4


def test_bad_group_is_an_error(monkeypatch):
    pool = patterns.default_pattern_pool()
    monkeypatch.setattr(lr, "output_group", lambda ids: 3)  # wider than 2 channels
    data = lr.encode([lr.LRLayer(0, 1, pool, np.zeros((2, 1), np.uint8))])
    with pytest.raises(lr.LRFormatError, match="group"):
        lr.decode(bytes(data))


def test_encode_refuses_what_decode_would_refuse():
    # A 6x6 kernel needs 36 mask bits: writing it would make an unreadable LR.
    wide = np.zeros((1, 6, 6), bool)
    wide[0, :2, :2] = True
    with pytest.raises(lr.LRFormatError, match="at most 32 cells"):
        lr.encode([lr.LRLayer(0, 1, wide, np.zeros((2, 2), np.uint8))])
    many = np.zeros((255, 3, 3), bool)
    many[:, 1, 1] = True
    with pytest.raises(lr.LRFormatError, match="at most 254 patterns"):
        lr.encode([lr.LRLayer(0, 1, many, np.zeros((2, 2), np.uint8))])


def test_random_mutations_are_refused_or_read_without_surprises():
    # FlatBuffers' Python runtime has no verifier: every read is bounded by
    # lr_schema, so an edited buffer gives a layer list or an LRFormatError,
    # never another exception.
    record = kernel_tuning.encode([kernel_tuning.TuningEntry("AVX3", "block", 16, 12),
                                   kernel_tuning.TuningEntry("NEON", "rows")])
    layers = sample_layers()
    layers[0].tuning = record
    data = lr.encode(layers)
    rng = np.random.default_rng(20261130)
    read = 0
    for _ in range(3000):
        edited = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            edited[rng.integers(len(edited))] = rng.integers(256)
        try:
            decoded = lr.decode(bytes(edited))
        except lr.LRFormatError:
            continue
        read += 1
        for layer in decoded:
            try:
                kernel_tuning.decode(layer.tuning)
            except kernel_tuning.TuningFormatError:
                pass
    assert 0 < read < 3000


def test_kernels_described_are_bounded_before_expanding_rows(monkeypatch):
    data = lr.encode(sample_layers())  # 2 x 3 kernels, then 1 x 1
    monkeypatch.setattr(lr, "MAX_KERNELS", 5)
    with pytest.raises(lr.LRFormatError, match="LR layer 0: the LR describes more than 5"):
        lr.decode(data)
    monkeypatch.setattr(lr, "MAX_KERNELS", 6)
    with pytest.raises(lr.LRFormatError, match="LR layer 1: the LR describes more than 6"):
        lr.decode(data)
    monkeypatch.setattr(lr, "MAX_KERNELS", 7)
    assert [layer.kernel_pattern.shape for layer in lr.decode(data)] == [(2, 3), (1, 1)]


def test_free_patterns_are_stored_as_a_kept_bitmap_and_packed_ids():
    pool = patterns.default_pattern_pool()  # 8 patterns: 3 bits per id
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(pool), size=(64, 96)).astype(np.uint8)
    ids[rng.random(ids.shape) < 0.72] = lr.REMOVED_KERNEL
    data = lr.encode([lr.LRLayer(0, 1, pool, ids)])
    stored = _root(data).Layers(0)
    kept = int(np.sum(ids != lr.REMOVED_KERNEL))
    assert stored.KernelKeptLength() == 64 * 96 // 8
    assert stored.KernelPatternLength() == -(-kept * 3 // 8)
    (decoded,) = lr.decode(data)
    np.testing.assert_array_equal(decoded.kernel_pattern, ids)
    assert len(data) < 0.3 * ids.size  # the plain form: a byte per kernel


def test_version_3_files_are_still_read(monkeypatch):
    layers = sample_layers()
    with monkeypatch.context() as patch:
        patch.setattr(lr, "VERSION", 3)
        patch.setattr(lr, "_compact_ids", lambda ids, num_patterns: None)
        data = lr.encode(layers)
    decoded = lr.decode(data)
    np.testing.assert_array_equal(decoded[0].kernel_pattern, layers[0].kernel_pattern)


def _encode_with_compact_form(monkeypatch, change, version=None):
    """``sample_layers()`` encoded with its compact form passed through ``change``."""
    original = lr._compact_ids
    with monkeypatch.context() as patch:
        patch.setattr(lr, "_compact_ids", lambda ids, n: change(*original(ids, n)))
        if version is not None:
            patch.setattr(lr, "VERSION", version)
        return lr.encode(sample_layers()[:1])


def _set_last_bit(array):
    array = array.copy()
    array[-1] |= 0x80
    return array


@pytest.mark.parametrize("change, message", [
    (lambda kept, ids, bits: (_set_last_bit(kept), ids, bits), "unused bits"),
    (lambda kept, ids, bits: (kept, _set_last_bit(ids), bits), "unused bits"),
    (lambda kept, ids, bits: (kept, ids[:-1], bits), "bytes of 3-bit fields"),
    (lambda kept, ids, bits: (np.append(kept, 0), ids, bits), "bytes of 1-bit fields"),
    (lambda kept, ids, bits: (kept, lr.pack_bits([7, 0, 0, 0, 0], 3), bits),
     "pattern id out of range"),
    (lambda kept, ids, bits: (kept, ids, 9), "pattern_id_bits 9 out of range"),
])
def test_inconsistent_compact_forms_are_errors(monkeypatch, change, message):
    pool5 = patterns.default_pattern_pool()[:5]  # 3-bit ids, 5..7 out of range
    layer = lr.LRLayer(4, 11, pool5, np.array([[0, 3, lr.REMOVED_KERNEL], [4, 1, 2]], np.uint8))
    original = lr._compact_ids
    monkeypatch.setattr(lr, "_compact_ids", lambda ids, n: change(*original(ids, n)))
    data = lr.encode([layer])
    with pytest.raises(lr.LRFormatError, match=message):
        lr.decode(data)


def test_a_version_3_file_cannot_use_the_compact_form(monkeypatch):
    data = _encode_with_compact_form(monkeypatch, lambda *compact: compact, version=3)
    with pytest.raises(lr.LRFormatError, match="kernel_kept in an LR of version 3"):
        lr.decode(data)


def test_stored_version_is_the_files_not_the_librarys(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(lr, "VERSION", 3)
        patch.setattr(lr, "_compact_ids", lambda ids, num_patterns: None)
        old = lr.encode(sample_layers())
    assert lr.stored_version(old) == 3
    assert lr.stored_version(lr.encode(sample_layers())) == lr.VERSION == 4
