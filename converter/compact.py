"""Compact storage of pattern-pruned filters inside the .tflite itself.

A pruned filter is stored in TFLite's own sparse tensor format and fed to its
convolution through a DENSIFY operator, so that stock LiteRT (and XNNPACK)
still run the file unchanged, while the cocopie delegate reads the sparse
constant directly and never materializes the dense filter.

The encoding follows the structure pattern pruning leaves (the FKW idea:
kept kernels, their input channels, their few values). For a filter in
TFLite's ``(out, kh, kw, in)`` layout, ``out`` is split into blocks of ``G``
output channels and traversed as::

    out-block (dense) → in (CSR: kept input channels of the block)
      → kh (dense) → kw (CSR: kept columns of that row) → out-in-block (dense, G)

With co-design pruning (``cocopie_keras.codesign``: ``G`` output channels
share one pattern per input channel, connectivity removes whole
``(block, in)`` slices), each kept kernel costs its ``4·G`` values plus a few
index bytes per block. For free (per-kernel) patterns, ``G = 1`` and plain
CSR over input channels are also tried; the smallest encoding is kept.
"""

import dataclasses

import numpy as np

from cocopie_keras.converter import lr as lr_lib
from cocopie_keras.converter import packed

DENSE = 0
SPARSE_CSR = 1
_GROUP_CANDIDATES = (64, 32, 16, 8, 4, 2, 1)


class SparseFormatError(ValueError):
    """Raised when sparse tensor parameters are inconsistent."""


@dataclasses.dataclass
class Level:
    """One traversal level: ``DENSE`` with ``dense_size``, or ``SPARSE_CSR``."""

    format: int
    dense_size: int = 0
    segments: np.ndarray = None
    indices: np.ndarray = None


@dataclasses.dataclass
class SparseEncoding:
    """A tensor in TFLite's sparse format (see the schema's SparsityParameters).

    Attributes:
        traversal_order: original dims, then block dims, in storage order.
        block_map: original dims that are blocked (block dim ``n + k`` splits
            ``block_map[k]``).
        levels: one ``Level`` per entry of ``traversal_order``.
        values: the stored values, in traversal order.
    """

    traversal_order: list
    block_map: list
    levels: list
    values: np.ndarray

    def index_bytes(self):
        """Bytes of the segment and index arrays, at their narrowest type."""
        total = 0
        for level in self.levels:
            if level.format == SPARSE_CSR:
                total += _narrow(level.segments).nbytes + _narrow(level.indices).nbytes
        return total

    def nbytes(self):
        return int(self.values.nbytes) + self.index_bytes()


def _narrow(array):
    array = np.asarray(array)
    top = int(array.max()) if array.size else 0
    for dtype in (np.uint8, np.uint16):
        if top <= np.iinfo(dtype).max:
            return array.astype(dtype)
    return array.astype(np.int32)


def _csr(kept):
    """``(segments, indices)`` of a bool ``(parents, n)`` matrix, row-major."""
    counts = kept.sum(axis=1)
    segments = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.nonzero(kept)[1].astype(np.int64)
    return segments, indices


def encode_grouped(filter_ohwi, group):
    """Encodes an ``(out, kh, kw, in)`` filter with blocks of ``group`` channels.

    Positions are kept where any channel of the block has a non-zero weight,
    so the encoding is lossless for any weights.
    """
    w = np.asarray(filter_ohwi, dtype=np.float32)
    out, kh, kw, cin = w.shape
    if out % group:
        raise ValueError(
            f"Expected a group that divides the {out} output channels. "
            f"Received: group={group}"
        )
    blocks = out // group
    # (block, in, kh, kw, g): the traversal order of the encoding.
    by_block = w.reshape(blocks, group, kh, kw, cin).transpose(0, 4, 2, 3, 1)
    nonzero = by_block != 0
    cell_kept = nonzero.any(axis=4)                  # (block, in, kh, kw)
    channel_kept = cell_kept.any(axis=(2, 3))        # (block, in)
    in_segments, in_indices = _csr(channel_kept)
    kept_cells = cell_kept[channel_kept]             # (kept kernels, kh, kw)
    levels = [Level(DENSE, blocks), Level(SPARSE_CSR, 0, in_segments, in_indices),
              Level(DENSE, kh)]
    if kw > 1:
        col_segments, col_indices = _csr(kept_cells.reshape(-1, kw))
        levels.append(Level(SPARSE_CSR, 0, col_segments, col_indices))
        taps = by_block[channel_kept][kept_cells]     # (kept taps, g)
    else:
        levels.append(Level(DENSE, kw))
        taps = by_block[channel_kept].reshape(-1, group)
    if group > 1:
        levels.append(Level(DENSE, group))
        return SparseEncoding([0, 3, 1, 2, 4], [0], levels, taps.reshape(-1).copy())
    return SparseEncoding([0, 3, 1, 2], [], levels, taps.reshape(-1).copy())


def encode_csr(filter_ohwi):
    """Plain CSR over input channels, the layout TFLite's own sparsifier uses."""
    w = np.asarray(filter_ohwi, dtype=np.float32)
    out, kh, kw, cin = w.shape
    rows = w.reshape(-1, cin)
    segments, indices = _csr(rows != 0)
    levels = [Level(DENSE, out), Level(DENSE, kh), Level(DENSE, kw),
              Level(SPARSE_CSR, 0, segments, indices)]
    return SparseEncoding([0, 1, 2, 3], [], levels, rows[rows != 0].copy())


def encode_filter(filter_ohwi):
    """The smallest of the grouped encodings (every group dividing ``out``) and CSR."""
    out = np.shape(filter_ohwi)[0]
    candidates = [encode_grouped(filter_ohwi, g) for g in _GROUP_CANDIDATES if out % g == 0]
    candidates.append(encode_csr(filter_ohwi))
    return min(candidates, key=SparseEncoding.nbytes)


def decode(encoding, shape):
    """Dense array of ``shape`` from a ``SparseEncoding``, validating every array.

    Raises:
        SparseFormatError: on inconsistent parameters (never reads out of range).
    """
    shape = tuple(int(d) for d in shape)
    rank, order, block_map = len(shape), list(encoding.traversal_order), list(encoding.block_map)
    if sorted(order) != list(range(rank + len(block_map))) or len(encoding.levels) != len(order):
        raise SparseFormatError(f"traversal order {order} does not fit a rank-{rank} tensor")
    if len(set(block_map)) != len(block_map) or any(not 0 <= d < rank for d in block_map):
        raise SparseFormatError(f"block map {block_map} names invalid dims")
    level_of = {dim: i for i, dim in enumerate(order)}
    block_size = {}
    for k, dim in enumerate(block_map):
        level = encoding.levels[level_of[rank + k]]
        if level.format != DENSE or level.dense_size <= 0 or shape[dim] % level.dense_size:
            raise SparseFormatError(f"block of dim {dim} is not a dense divisor of it")
        block_size[dim] = level.dense_size
    extent = [shape[d] // block_size.get(d, 1) if d < rank else block_size[block_map[d - rank]]
              for d in range(rank + len(block_map))]
    coords = np.zeros((1, 0), dtype=np.int64)
    positions = np.zeros(1, dtype=np.int64)
    space = 1  # number of positions the current level's parents can have
    for dim, level in zip(order, encoding.levels):
        if level.format == DENSE:
            if level.dense_size != extent[dim]:
                raise SparseFormatError(f"dense size of dim {dim} is {level.dense_size}, "
                                        f"expected {extent[dim]}")
            size = level.dense_size
            child = np.tile(np.arange(size), positions.size)
            coords = np.repeat(coords, size, axis=0)
            positions = np.repeat(positions, size) * size + child
            space *= size
        elif level.format == SPARSE_CSR:
            seg = np.asarray(level.segments, dtype=np.int64)
            idx = np.asarray(level.indices, dtype=np.int64)
            if (seg.size != space + 1 or seg[0] != 0 or np.any(np.diff(seg) < 0)
                    or seg[-1] != idx.size):
                raise SparseFormatError(f"segments of dim {dim} are inconsistent")
            if idx.size and (idx.min() < 0 or idx.max() >= extent[dim]):
                raise SparseFormatError(f"an index of dim {dim} is out of range")
            counts = seg[positions + 1] - seg[positions]
            starts = np.repeat(seg[positions] - np.concatenate([[0], np.cumsum(counts)[:-1]]),
                               counts)
            children = starts + np.arange(int(counts.sum()))
            coords = np.repeat(coords, counts, axis=0)
            child = idx[children]
            positions = children
            space = idx.size
        else:
            raise SparseFormatError(f"dim {dim} has unknown format {level.format}")
        coords = np.concatenate([coords, child[:, None]], axis=1)
    values = np.asarray(encoding.values, dtype=np.float32).reshape(-1)
    if coords.shape[0] != values.size:
        raise SparseFormatError(f"{values.size} values stored for {coords.shape[0]} positions")
    by_dim = np.empty((coords.shape[0], len(order)), dtype=np.int64)
    by_dim[:, order] = coords
    original = [by_dim[:, d] * block_size.get(d, 1) for d in range(rank)]
    for k, dim in enumerate(block_map):
        original[dim] = original[dim] + by_dim[:, rank + k]
    dense = np.zeros(shape, dtype=np.float32)
    dense[tuple(original)] = values
    return dense


# ---- the .tflite side ---------------------------------------------------------------

def _schema():
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    return schema, flatbuffer_utils


def _index_vector(schema, array):
    array = _narrow(array)
    if array.dtype == np.uint8:
        vector, kind = schema.Uint8VectorT(), schema.SparseIndexVector.Uint8Vector
    elif array.dtype == np.uint16:
        vector, kind = schema.Uint16VectorT(), schema.SparseIndexVector.Uint16Vector
    else:
        vector, kind = schema.Int32VectorT(), schema.SparseIndexVector.Int32Vector
    vector.values = array
    return kind, vector


def to_sparsity_parameters(encoding):
    """A ``schema_py_generated.SparsityParametersT`` for ``encoding``."""
    schema, _ = _schema()
    params = schema.SparsityParametersT()
    params.traversalOrder = np.asarray(encoding.traversal_order, dtype=np.int32)
    params.blockMap = np.asarray(encoding.block_map, dtype=np.int32)
    params.dimMetadata = []
    for level in encoding.levels:
        meta = schema.DimensionMetadataT()
        meta.format = level.format
        meta.denseSize = int(level.dense_size)
        if level.format == SPARSE_CSR:
            meta.arraySegmentsType, meta.arraySegments = _index_vector(schema, level.segments)
            meta.arrayIndicesType, meta.arrayIndices = _index_vector(schema, level.indices)
        params.dimMetadata.append(meta)
    return params


def from_sparsity_parameters(params, values):
    """The ``SparseEncoding`` a tensor's ``SparsityParametersT`` and values describe."""
    levels = []
    for meta in params.dimMetadata or []:
        level = Level(int(meta.format), int(meta.denseSize))
        if level.format == SPARSE_CSR:
            if meta.arraySegments is None or meta.arrayIndices is None:
                raise SparseFormatError("a sparse dimension has no segment or index array")
            level.segments = np.asarray(meta.arraySegments.values, dtype=np.int64)
            level.indices = np.asarray(meta.arrayIndices.values, dtype=np.int64)
        levels.append(level)
    order = [] if params.traversalOrder is None else [int(d) for d in params.traversalOrder]
    blocks = [] if params.blockMap is None else [int(d) for d in params.blockMap]
    return SparseEncoding(order, blocks, levels, values)


def _builtin_code(model, op):
    schema, flatbuffer_utils = _schema()
    return flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])


def _opcode_index(model, builtin):
    schema, flatbuffer_utils = _schema()
    for index, code in enumerate(model.operatorCodes):
        if flatbuffer_utils.get_builtin_code_from_operator_code(code) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _lr_layers(model):
    """The layers of ``model``'s LR (where a packed filter's weights are).

    Decoded once per LR buffer: every packed filter of a model asks, and an
    LR holds all its layers (2 MB for ResNet-50). A new LR (``_set_metadata``
    stores a new buffer object) is decoded again.
    """
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name != lr_lib.METADATA_NAME:
            continue
        buffer = model.buffers[entry.buffer]
        cached = getattr(model, "_cocopie_lr_cache", None)
        if cached is None or cached[0] is not buffer:
            layers = lr_lib.decode(np.asarray(buffer.data, dtype=np.uint8).tobytes())
            model._cocopie_lr_cache = cached = (buffer, layers)
        return cached[1]
    return []


def constant_weights(model, subgraph, tensor_index):
    """Float32 contents of a tensor that is constant, directly or through
    DENSIFY or a delegate-only ``CocopiePackedFilter`` (``converter.packed``).

    Returns the dense array, or ``None`` when the tensor is computed at run
    time (or is not float32).
    """
    schema, _ = _schema()
    tensor = subgraph.tensors[tensor_index]
    if tensor.type != schema.TensorType.FLOAT32:
        return None
    shape = tuple(int(d) for d in tensor.shape)
    if tensor.buffer == 0 or model.buffers[tensor.buffer].data is None:
        for op in subgraph.operators:
            if list(op.outputs) != [tensor_index] or len(op.inputs) != 1:
                continue
            if _builtin_code(model, op) == schema.BuiltinOperator.DENSIFY:
                source = constant_weights(model, subgraph, int(op.inputs[0]))
            elif packed.is_packed_filter_op(model, op):
                source = packed.expanded_filter(model, subgraph, op, _lr_layers(model))
            else:
                continue
            return None if source is None or source.shape != shape else source
        return None
    values = np.frombuffer(model.buffers[tensor.buffer].data.tobytes(), dtype="<f4")
    if tensor.sparsity is not None:
        return decode(from_sparsity_parameters(tensor.sparsity, values), shape)
    if values.size != int(np.prod(shape)):
        return None
    return values.reshape(shape)


def compact_filters(model, layers):
    """Stores the filters of the LR ``layers`` sparse, each behind a DENSIFY.

    Modifies ``model`` (a ``ModelT``) in place. The DENSIFY operators go
    first in the operator list, so every LR operator index shifts by their
    number; the LR then names each convolution's new (densified) filter.

    Returns:
        The updated LR layers.
    """
    schema, _ = _schema()
    subgraph = model.subgraphs[0]
    uses = packed.tensor_readers(subgraph)
    densify = _opcode_index(model, schema.BuiltinOperator.DENSIFY)
    inserted, rewired = [], {}
    for layer in layers:
        op = subgraph.operators[layer.op_index]
        filter_index = int(op.inputs[1])
        tensor = subgraph.tensors[filter_index]
        if uses[filter_index] != 1 or tensor.sparsity is not None or tensor.buffer == 0:
            continue  # shared or already sparse: leave it as it is
        weights = constant_weights(model, subgraph, filter_index)
        if weights is None or weights.ndim != 4:  # FULLY_CONNECTED weights stay dense
            continue
        encoding = encode_filter(weights)
        if encoding.nbytes() >= weights.nbytes:
            continue
        sparse_buffer = schema.BufferT()
        sparse_buffer.data = np.frombuffer(
            encoding.values.astype("<f4").tobytes(), dtype=np.uint8).copy()
        model.buffers[tensor.buffer] = sparse_buffer
        tensor.sparsity = to_sparsity_parameters(encoding)
        dense = schema.TensorT()
        dense.shape = np.asarray(tensor.shape, dtype=np.int32)
        dense.type = tensor.type
        dense.buffer = 0
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
        dense.name = f"{name}/densified"
        subgraph.tensors.append(dense)
        dense_index = len(subgraph.tensors) - 1
        unpack = schema.OperatorT()
        unpack.opcodeIndex = densify
        unpack.inputs = np.asarray([filter_index], dtype=np.int32)
        unpack.outputs = np.asarray([dense_index], dtype=np.int32)
        inserted.append(unpack)
        op.inputs = np.asarray(op.inputs, dtype=np.int32).copy()
        op.inputs[1] = dense_index
        rewired[layer.op_index] = dense_index
    subgraph.operators = inserted + list(subgraph.operators)
    shift = len(inserted)
    return [dataclasses.replace(layer, op_index=layer.op_index + shift,
                                filter_tensor=rewired.get(layer.op_index, layer.filter_tensor))
            for layer in layers]
