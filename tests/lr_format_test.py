import numpy as np
import pytest

from cocopie_keras import patterns
from cocopie_keras.converter import lr


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


def test_inconsistent_bytes_are_errors():
    data = bytearray(lr.encode(sample_layers()))
    with pytest.raises(lr.LRFormatError, match="trailing"):
        lr.decode(bytes(data) + b"\0")
    bad_magic = b"XPLR" + bytes(data[4:])
    with pytest.raises(lr.LRFormatError, match="magic"):
        lr.decode(bad_magic)
    bad_version = bytes(data[:4]) + (7).to_bytes(4, "little") + bytes(data[8:])
    with pytest.raises(lr.LRFormatError, match="version 7"):
        lr.decode(bad_version)
    bad_id = bytearray(data)
    # First layer's ids start after 12-byte header, 28-byte layer header and
    # 8 masks of 4 bytes (no tuning record).
    bad_id[12 + 28 + 32] = 8
    with pytest.raises(lr.LRFormatError, match="pattern id"):
        lr.decode(bytes(bad_id))


def test_grouped_rows_and_tuning_round_trip():
    pool = patterns.default_pattern_pool()
    rows = np.array([[0, lr.REMOVED_KERNEL, 5], [2, 2, lr.REMOVED_KERNEL]], np.uint8)
    ids = np.repeat(rows, 32, axis=0)[:40]  # 40 channels: groups of 32 and 8
    layer = lr.LRLayer(3, 8, pool, ids, tuning=b"\x01\x02")
    data = lr.encode([layer])
    assert lr.output_group(ids) == 32
    # One row per group instead of one per channel.
    assert len(data) == 12 + 28 + 4 * len(pool) + 2 + 2 * 3
    (decoded,) = lr.decode(data)
    np.testing.assert_array_equal(decoded.kernel_pattern, ids)
    assert decoded.tuning == b"\x01\x02"


def test_output_group_falls_back_to_single_channels():
    ids = np.array([[0, 1], [1, 1], [1, 1]], np.uint8)
    assert lr.output_group(ids) == 1
    assert lr.output_group(np.zeros((5, 2), np.uint8)) == 4


def test_bad_group_is_an_error():
    pool = patterns.default_pattern_pool()
    data = bytearray(lr.encode([lr.LRLayer(0, 1, pool, np.zeros((2, 1), np.uint8))]))
    data[12 + 24:12 + 26] = (3).to_bytes(2, "little")  # group wider than 2 channels
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
