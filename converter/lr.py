"""The layerwise representation (LR) stored in a .tflite's metadata.

Version 4 is a FlatBuffer of the schema ``schema/cocopie_lr.fbs`` (root
``LayerwiseRepresentation``, identifier ``CPLR``, size-prefixed), the same
buffer the delegate's C++ parser (``delegate/lr/lr_format.h``) reads. Per
pattern-pruned convolution a ``Layer`` table holds the operator and filter
indices, channel counts, kernel size, cells kept per pattern, the pattern
masks (bit ``r * kernel_w + c`` = cell kept), the pattern id of every kernel
(``[group][in]`` order, 255 = removed by connectivity pruning; stored as a
kept-kernel bitmap plus bit-packed ids when that is smaller, which it is for
free patterns with most kernels removed) and, once
``cocopie tune-kernels`` ran, the delegate's kernel tuning record as a table
(``converter/kernel_tuning.py``). Version 3 (no compact form) is still read.

``out_group`` consecutive output channels share one row of pattern ids. The
encoder picks the widest group the ids allow, so co-design pruning (one
pattern per group of output channels and input channel) stores one row per
group instead of one per channel.

Files of LR version 2 and before (a hand-made record starting with the bytes
``CPLR``) are refused with a message asking to convert the model again.
"""

import dataclasses
import struct

import flatbuffers
import numpy as np

from cocopie_keras.converter import kernel_tuning
from cocopie_keras.converter import lr_schema as schema

METADATA_NAME = "cocopie_lr"
VERSION = 4
OLDEST_READ_VERSION = 3
"""Version 3 is version 4 without the compact ``kernel_kept`` form."""
MAGIC = schema.LR_IDENTIFIER
REMOVED_KERNEL = 255
MAX_KERNEL_CELLS = 32
"""Largest ``kernel_h * kernel_w`` the LR describes: a pattern is a 32-bit mask."""
MAX_PATTERNS = REMOVED_KERNEL - 1
MAX_CHANNELS = 1 << 16
"""Largest channel count the LR describes (the delegate's bound too)."""
MAX_KERNELS = 1 << 28
"""Most (output, input) kernels all layers of one LR describe together:
``decode`` expands grouped rows to one id per kernel, and a small hostile
buffer could otherwise ask for gigabytes (real networks stay far below)."""

# Output-channel groups the encoder tries, widest first.
_GROUP_CANDIDATES = (64, 32, 16, 8, 4, 2)
# Vtable slots of the vectors read with bounds checks (field i: 4 + 2 * i).
_LAYERS_SLOT = 6
_MASKS_SLOT = 20
_IDS_SLOT = 22
_KEPT_SLOT = 26


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
        tuning: the delegate's kernel tuning record for this layer, as the
            bytes ``kernel_tuning.encode`` makes (``b""`` = none; written by
            ``cocopie tune-kernels``).
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


def pack_bits(values, bits):
    """``values`` (each < 2**bits) as a little-endian bit stream, ``bits`` each,
    in ``ceil(len * bits / 8)`` bytes, unused bits 0 (the schema's packing)."""
    values = np.asarray(values, dtype=np.uint16).reshape(-1, 1)
    stream = ((values >> np.arange(bits, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(stream.reshape(-1), bitorder="little")


def unpack_bits(data, count, bits, where):
    """Inverse of ``pack_bits``, refusing a wrong length or set unused bits."""
    data = np.asarray(data, dtype=np.uint8)
    if data.size != -(-count * bits // 8):
        raise LRFormatError(f"{where}: {data.size} bytes of {bits}-bit fields, expected "
                            f"{-(-count * bits // 8)} for {count} of them")
    stream = np.unpackbits(data, bitorder="little")
    if stream[count * bits:].any():
        raise LRFormatError(f"{where}: unused bits of a packed field are set")
    fields = stream[:count * bits].reshape(count, bits).astype(np.uint16)
    return (fields << np.arange(bits, dtype=np.uint16)).sum(axis=1)


def _compact_ids(rows_ids, num_patterns):
    """``(kept bitmap, packed ids, id bits)`` of the schema's compact form, or
    ``None`` where the plain byte-per-id form is no larger."""
    kept = rows_ids.reshape(-1) != REMOVED_KERNEL
    bits = max(1, int(num_patterns - 1).bit_length())
    if -(-kept.size // 8) + -(-int(kept.sum()) * bits // 8) >= kept.size:
        return None
    return pack_bits(kept, 1), pack_bits(rows_ids.reshape(-1)[kept], bits), bits


def _vector(builder, values, dtype):
    return builder.CreateNumpyVector(np.ascontiguousarray(values, dtype=dtype).reshape(-1))


def _write_layer(builder, layer):
    masks = np.asarray(layer.pattern_masks, dtype=bool)
    num_patterns, kh, kw = masks.shape
    ids = np.asarray(layer.kernel_pattern)
    cout, cin = ids.shape
    if not (0 < num_patterns <= MAX_PATTERNS and 0 < kh * kw <= MAX_KERNEL_CELLS):
        raise LRFormatError(
            f"Expected at most {MAX_PATTERNS} patterns of at most {MAX_KERNEL_CELLS} "
            f"cells. Received: layer for operator {layer.op_index} with {num_patterns} "
            f"patterns of {kh}x{kw}")
    try:
        record = kernel_tuning.unpack(layer.tuning)
    except kernel_tuning.TuningFormatError as error:
        raise LRFormatError(
            f"Expected the tuning of the layer for operator {layer.op_index} to be b'' or "
            f"bytes from kernel_tuning.encode. Received: {error}") from None
    group = output_group(ids)
    weights = 1 << np.arange(kh * kw, dtype=np.uint64)
    bits = masks.reshape(num_patterns, -1).astype(np.uint64) @ weights
    # Children first: a table cannot be written while another one is open.
    masks_vector = _vector(builder, bits, "<u4")
    compact = _compact_ids(ids[::group], num_patterns)
    if compact is None:
        ids_vector = _vector(builder, ids[::group], np.uint8)
    else:
        kept_vector = _vector(builder, compact[0], np.uint8)
        ids_vector = _vector(builder, compact[1], np.uint8)
    # A record without entries is kept as one (the delegate says it ignores it).
    tuning = kernel_tuning.write_record(builder, record) if layer.tuning else None
    # Fields in the order of the generated C++ CreateLayer (widest first).
    t = schema.Layer
    t.Start(builder)
    if compact is not None:
        t.AddKernelKept(builder, kept_vector)
    if tuning is not None:
        t.AddTuning(builder, tuning)
    t.AddKernelPattern(builder, ids_vector)
    t.AddPatternMasks(builder, masks_vector)
    t.AddInChannels(builder, cin)
    t.AddOutChannels(builder, cout)
    t.AddFilterTensor(builder, layer.filter_tensor)
    t.AddOpIndex(builder, layer.op_index)
    t.AddOutGroup(builder, group)
    t.AddEntriesPerPattern(builder, layer.entries)
    t.AddKernelW(builder, kw)
    t.AddKernelH(builder, kh)
    if compact is not None:
        t.AddPatternIdBits(builder, compact[2])
    return t.End(builder)


def encode(layers):
    """Serializes a list of ``LRLayer`` to an LR version-3 buffer."""
    builder = flatbuffers.Builder(1024)
    tables = [_write_layer(builder, layer) for layer in layers]
    layers_vector = schema.table_vector(
        builder, schema.LayerwiseRepresentation.StartLayersVector, tables)
    schema.LayerwiseRepresentation.Start(builder)
    schema.LayerwiseRepresentation.AddVersion(builder, VERSION)
    schema.LayerwiseRepresentation.AddLayers(builder, layers_vector)
    root = schema.LayerwiseRepresentation.End(builder)
    return schema.finish(builder, root, MAGIC)


def _refuse_old_versions(data):
    """LR version 2 and before started with the magic itself, then the version."""
    if data[:4] != MAGIC:
        return
    version = struct.unpack_from("<I", data, 4)[0] if len(data) >= 8 else "2 or older"
    raise LRFormatError(
        f"LR version {version} is no longer read; convert the model again with this "
        f"release (it writes LR version {VERSION} and reads {OLDEST_READ_VERSION}..{VERSION})")


def _read_ids(table, rows, cin, num_patterns, where, version):
    """The ``(rows, cin)`` pattern ids, from the plain or the compact form."""
    num_ids = schema.checked_length(table, _IDS_SLOT, 1, where)
    if not table.KernelKeptIsNone() and version < 4:
        raise LRFormatError(f"{where}: kernel_kept in an LR of version {version}")
    if table.KernelKeptIsNone():
        if table.PatternIdBits() != 0:
            raise LRFormatError(f"{where}: pattern_id_bits without kernel_kept")
        if num_ids != rows * cin:
            raise LRFormatError(
                f"{where}: {num_ids} kernel pattern ids, expected {rows * cin}")
        rows_ids = table.KernelPatternAsNumpy().reshape(rows, cin)
        if np.any((rows_ids != REMOVED_KERNEL) & (rows_ids >= num_patterns)):
            raise LRFormatError(f"{where}: pattern id out of range")
        return rows_ids
    bits = table.PatternIdBits()
    if not 1 <= bits <= 8:
        raise LRFormatError(f"{where}: pattern_id_bits {bits} out of range 1..8")
    schema.checked_length(table, _KEPT_SLOT, 1, where)
    kept = unpack_bits(table.KernelKeptAsNumpy(), rows * cin, 1, f"{where} kernel_kept")
    kept = kept.astype(bool)
    packed = table.KernelPatternAsNumpy() if num_ids else np.zeros(0, np.uint8)
    kept_ids = unpack_bits(packed, int(kept.sum()), bits, f"{where} kernel_pattern")
    if np.any(kept_ids >= num_patterns):
        raise LRFormatError(f"{where}: pattern id out of range")
    rows_ids = np.full(rows * cin, REMOVED_KERNEL, dtype=np.uint8)
    rows_ids[kept] = kept_ids
    return rows_ids.reshape(rows, cin)


def _read_layer(table, index, kernel_budget=MAX_KERNELS, version=VERSION):
    where = f"LR layer {index}"
    schema.checked_table(table, where)
    kh, kw, cout, cin = table.KernelH(), table.KernelW(), table.OutChannels(), table.InChannels()
    entries, group = table.EntriesPerPattern(), table.OutGroup()
    num_patterns = schema.checked_length(table, _MASKS_SLOT, 4, where)
    if not (0 < num_patterns <= MAX_PATTERNS and 0 < kh * kw <= MAX_KERNEL_CELLS):
        raise LRFormatError(f"{where}: pattern table out of range")
    if not (0 < cout <= MAX_CHANNELS and 0 < cin <= MAX_CHANNELS and entries > 0):
        raise LRFormatError(f"{where}: channel counts out of range (out={cout}, in={cin}) "
                            f"or no entries per pattern ({entries})")
    if cout * cin > kernel_budget:
        raise LRFormatError(f"{where}: the LR describes more than {MAX_KERNELS} kernels")
    if not 0 < group <= cout:
        raise LRFormatError(f"{where}: output-channel group {group} out of range")
    rows = -(-cout // group)
    bits = table.PatternMasksAsNumpy().astype(np.uint64)
    masks = ((bits[:, None] >> np.arange(kh * kw, dtype=np.uint64)) & 1).astype(bool)
    if (bits >> np.uint64(kh * kw)).any() or np.any(masks.sum(axis=1) != entries):
        raise LRFormatError(f"{where}: a pattern does not keep {entries} cells")
    rows_ids = _read_ids(table, rows, cin, num_patterns, where, version)
    ids = np.repeat(rows_ids, group, axis=0)[:cout]
    record = table.Tuning()
    tuning = b"" if record is None else kernel_tuning.pack(
        kernel_tuning.read_record(record, f"{where} tuning record"))
    return LRLayer(table.OpIndex(), table.FilterTensor(), masks.reshape(-1, kh, kw),
                   ids.copy(), tuning)


def decode(data):
    """Parses an LR buffer, validating every count; the inverse of ``encode``.

    Raises:
        LRFormatError: with a one-line reason when the bytes are malformed.
    """
    data = bytes(data)
    _refuse_old_versions(data)
    try:
        root = schema.open_root(data, MAGIC, schema.LayerwiseRepresentation.LayerwiseRepresentation,
                                "LR")
        if not OLDEST_READ_VERSION <= root.Version() <= VERSION:
            raise LRFormatError(
                f"LR version {root.Version()} is not supported (expected "
                f"{OLDEST_READ_VERSION}..{VERSION})")
        count = schema.checked_length(root, _LAYERS_SLOT, 4, "LR")
        layers = _read_layers(root, count, len(data), root.Version())
    except LRFormatError:
        raise
    except schema.SchemaBufferError as error:
        raise LRFormatError(str(error)) from None
    except schema.READ_ERRORS as error:
        raise LRFormatError(f"LR is malformed ({error})") from None
    return layers


def stored_version(data):
    """The version an LR buffer that ``decode`` accepts was written with."""
    root = schema.open_root(bytes(data), MAGIC,
                            schema.LayerwiseRepresentation.LayerwiseRepresentation, "LR")
    return int(root.Version())


def _read_layers(root, count, size, version):
    """The ``count`` layers of ``root``, refusing a buffer whose layers share
    stored vectors to describe more than its ``size`` bytes hold (the schema
    allows the aliasing; expanding it could exhaust memory)."""
    layers, seen, described, kernel_budget = [], set(), 0, MAX_KERNELS
    for index in range(count):
        where = f"LR layer {index}"
        table = schema.checked_table(root.Layers(index), where)
        described += (schema.checked_length(table, _IDS_SLOT, 1, where)
                      + schema.checked_length(table, _KEPT_SLOT, 1, where)
                      + 4 * schema.checked_length(table, _MASKS_SLOT, 4, where))
        if described > size:
            raise LRFormatError(
                f"LR layers 0..{index} describe {described} bytes of pattern ids and masks "
                f"but the buffer holds {size} (layers sharing stored vectors)")
        layer = _read_layer(table, index, kernel_budget, version)
        kernel_budget -= layer.kernel_pattern.size
        if layer.op_index in seen:
            raise LRFormatError(f"LR describes operator {layer.op_index} twice")
        seen.add(layer.op_index)
        layers.append(layer)
    return layers
