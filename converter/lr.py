"""The layerwise representation (LR) stored in a .tflite's metadata.

Version 2 is a small binary record per pattern-pruned CONV_2D, little-endian,
the same bytes the delegate's C++ parser (``delegate/lr_format.h``) reads:

* header: ``b"CPLR"``, ``u32 version``, ``u32 num_layers``
* per layer: ``u32 op_index``, ``u32 filter_tensor``, ``u32 out_channels``,
  ``u16 kernel_h``, ``u16 kernel_w``, ``u32 in_channels``,
  ``u16 num_patterns``, ``u16 entries_per_pattern``, ``u16 out_group``,
  ``u16 tuning_bytes``,
  ``u32 pattern_mask[num_patterns]`` (bit ``r * kernel_w + c`` = cell kept),
  ``u8 tuning[tuning_bytes]`` (the delegate's kernel tuning record),
  ``u8 kernel_pattern[ceil(out_channels / out_group) * in_channels]``
  (``[group][in]`` order, 255 = kernel removed by connectivity pruning).

``out_group`` consecutive output channels share one row of pattern ids. The
encoder picks the widest group the ids allow, so co-design pruning (one
pattern per group of output channels and input channel) stores one row per
group instead of one per channel.
"""

import dataclasses
import struct

import numpy as np

METADATA_NAME = "cocopie_lr"
VERSION = 2
MAGIC = b"CPLR"
REMOVED_KERNEL = 255
MAX_KERNEL_CELLS = 32
"""Largest ``kernel_h * kernel_w`` the LR describes: a pattern is a 32-bit mask."""
MAX_PATTERNS = REMOVED_KERNEL - 1

_HEADER = struct.Struct("<4sII")
_LAYER = struct.Struct("<IIIHHIHHHH")
# Output-channel groups the encoder tries, widest first.
_GROUP_CANDIDATES = (64, 32, 16, 8, 4, 2)


class LRFormatError(ValueError):
    """Raised when LR bytes are malformed or inconsistent."""


@dataclasses.dataclass
class LRLayer:
    """One pattern-pruned convolution as the delegate sees it.

    Attributes:
        op_index: operator index in subgraph 0.
        filter_tensor: tensor index of the operator's filter.
        pattern_masks: bool ``(P, kh, kw)``.
        kernel_pattern: uint8 ``(out, in)``; ``REMOVED_KERNEL`` = removed.
        tuning: the delegate's kernel tuning record for this layer (opaque
            here, ``b""`` = none; written by ``cocopie tune-kernels``).
    """

    op_index: int
    filter_tensor: int
    pattern_masks: np.ndarray
    kernel_pattern: np.ndarray
    tuning: bytes = b""

    @property
    def kernel_size(self):
        return tuple(self.pattern_masks.shape[1:])

    @property
    def entries(self):
        return int(self.pattern_masks[0].sum())

    def kept_mask_ohwi(self):
        """Bool mask in TFLite's filter layout ``(out, kh, kw, in)``."""
        ids = self.kernel_pattern.astype(np.int64)
        removed = ids == REMOVED_KERNEL
        mask = self.pattern_masks[np.where(removed, 0, ids)]  # (out, in, kh, kw)
        mask[removed] = False
        return np.transpose(mask, (0, 2, 3, 1))


def output_group(kernel_pattern):
    """Widest group of consecutive output channels whose pattern rows agree."""
    ids = np.asarray(kernel_pattern)
    cout = ids.shape[0]
    for group in _GROUP_CANDIDATES:
        if group > cout:
            continue
        leaders = ids[(np.arange(cout) // group) * group]
        if np.array_equal(leaders, ids):
            return group
    return 1


def encode(layers):
    """Serializes a list of ``LRLayer`` to LR version-2 bytes."""
    out = [_HEADER.pack(MAGIC, VERSION, len(layers))]
    for layer in layers:
        masks = np.asarray(layer.pattern_masks, dtype=bool)
        num_patterns, kh, kw = masks.shape
        ids = np.asarray(layer.kernel_pattern)
        cout, cin = ids.shape
        if not (0 < num_patterns <= MAX_PATTERNS and 0 < kh * kw <= MAX_KERNEL_CELLS):
            raise LRFormatError(
                f"Expected at most {MAX_PATTERNS} patterns of at most {MAX_KERNEL_CELLS} "
                f"cells. Received: layer for operator {layer.op_index} with {num_patterns} "
                f"patterns of {kh}x{kw}")
        group = output_group(ids)
        tuning = bytes(layer.tuning)
        if len(tuning) > 0xFFFF:
            raise LRFormatError(f"tuning record of {len(tuning)} bytes is too long")
        out.append(
            _LAYER.pack(
                layer.op_index, layer.filter_tensor, cout, kh, kw, cin,
                num_patterns, layer.entries, group, len(tuning),
            )
        )
        weights = 1 << np.arange(kh * kw, dtype=np.uint64)
        bits = masks.reshape(num_patterns, -1).astype(np.uint64) @ weights
        out.append(bits.astype("<u4").tobytes())
        out.append(tuning)
        out.append(ids[::group].astype(np.uint8).tobytes())
    return b"".join(out)


def decode(data):
    """Parses LR bytes, validating every count; the inverse of ``encode``.

    Raises:
        LRFormatError: with a one-line reason when the bytes are malformed.
    """
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise LRFormatError("LR header is truncated")
    magic, version, num_layers = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise LRFormatError("LR does not start with the CPLR magic")
    if version != VERSION:
        raise LRFormatError(
            f"LR version {version} is not supported (expected {VERSION})"
        )
    pos = _HEADER.size
    layers = []
    for index in range(num_layers):
        if len(data) - pos < _LAYER.size:
            raise LRFormatError(f"LR layer {index}: truncated header")
        (op, tensor, cout, kh, kw, cin, num_patterns, entries, group,
         tuning_bytes) = _LAYER.unpack_from(data, pos)
        pos += _LAYER.size
        if not (0 < num_patterns <= MAX_PATTERNS and 0 < kh * kw <= MAX_KERNEL_CELLS):
            raise LRFormatError(f"LR layer {index}: pattern table out of range")
        if not 0 < group <= cout:
            raise LRFormatError(f"LR layer {index}: output-channel group {group} out of range")
        rows = -(-cout // group)
        mask_bytes, id_bytes = 4 * num_patterns, rows * cin
        if len(data) - pos < mask_bytes + tuning_bytes + id_bytes:
            raise LRFormatError(f"LR layer {index}: truncated body")
        bits = np.frombuffer(data, "<u4", num_patterns, pos)
        pos += mask_bytes
        masks = ((bits[:, None] >> np.arange(kh * kw)) & 1).astype(bool)
        if (bits >> (kh * kw)).any() or np.any(masks.sum(axis=1) != entries):
            raise LRFormatError(
                f"LR layer {index}: a pattern does not keep {entries} cells"
            )
        tuning = data[pos:pos + tuning_bytes]
        pos += tuning_bytes
        rows_ids = np.frombuffer(data, np.uint8, id_bytes, pos).reshape(rows, cin)
        pos += id_bytes
        if np.any((rows_ids != REMOVED_KERNEL) & (rows_ids >= num_patterns)):
            raise LRFormatError(f"LR layer {index}: pattern id out of range")
        ids = np.repeat(rows_ids, group, axis=0)[:cout]
        layers.append(LRLayer(op, tensor, masks.reshape(-1, kh, kw), ids.copy(), tuning))
    if pos != len(data):
        raise LRFormatError(f"LR has {len(data) - pos} trailing bytes")
    return layers
