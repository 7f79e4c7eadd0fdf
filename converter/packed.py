"""Delegate-only storage of pattern-pruned filters (opt-in, the smallest file).

TFLite's sparse format (``converter/compact.py``) keeps a file that stock
LiteRT runs, but for free per-kernel patterns it cannot be small: besides the
four float32 values of a kept kernel, every value needs an index. The LR
already says where every kept weight is (kept kernels and their patterns), so
here a filter stores its kept values alone, in LR order, and a CUSTOM
operator ``CocopiePackedFilter`` expands them into the convolution's filter.
The values are coded losslessly: each float32's low 24 bits as they are, its
top byte (sign and most of the exponent, a handful of distinct values per
layer) as a bit-packed id into a table (schema table ``PackedValues``).

Only the cocopie delegate runs such a file. Stock LiteRT refuses it when it
prepares the model: "Encountered unresolved custom op: CocopiePackedFilter".
``cocopie convert`` writes this storage only when asked (``--storage
delegate-only``); its default stays the stock-readable sparse storage.
"""

import dataclasses

import flatbuffers
import numpy as np

from cocopie_keras.converter import lr as lr_lib
from cocopie_keras.converter import lr_schema as schema

OP_NAME = "CocopiePackedFilter"
MAX_VALUES = 1 << 28
"""Most values one packed filter holds (MAX_KERNELS times a 3x3 pattern's
cells is far above real layers; a hostile buffer must not ask for more)."""
_TOP_BYTES_SLOT, _IDS_SLOT, _LOW_SLOT = 6, 10, 12


class PackedFormatError(ValueError):
    """A packed filter buffer that is malformed or does not fit its layer."""


def _id_bits(distinct):
    return int(distinct - 1).bit_length()


def encode_values(values):
    """The ``PackedValues`` buffer (size-prefixed, ``CPPV``) of float32 ``values``."""
    bits = np.ascontiguousarray(values, dtype="<f4").reshape(-1).view("<u4")
    if bits.size > MAX_VALUES:
        raise ValueError(f"Expected at most {MAX_VALUES} values. Received: {bits.size}")
    top = (bits >> 24).astype(np.uint8)
    table, ids = np.unique(top, return_inverse=True)
    if table.size == 0:
        table = np.zeros(1, dtype=np.uint8)
    id_bits = _id_bits(table.size)
    packed_ids = lr_lib.pack_bits(ids, id_bits) if id_bits else np.zeros(0, np.uint8)
    low = (bits & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].reshape(-1)
    builder = flatbuffers.Builder(64 + low.size + packed_ids.size)
    vectors = [builder.CreateNumpyVector(np.ascontiguousarray(v, dtype=np.uint8))
               for v in (table, packed_ids, low)]
    module = schema.PackedValues
    module.PackedValuesStart(builder)
    module.PackedValuesAddCount(builder, bits.size)
    module.PackedValuesAddTopBytes(builder, vectors[0])
    module.PackedValuesAddTopByteBits(builder, id_bits)
    module.PackedValuesAddTopByteIds(builder, vectors[1])
    module.PackedValuesAddLowBytes(builder, vectors[2])
    return schema.finish(builder, module.PackedValuesEnd(builder), schema.PACKED_IDENTIFIER)


def decode_values(data, where="packed filter"):
    """The float32 values of a ``PackedValues`` buffer; the inverse of ``encode_values``.

    Raises:
        PackedFormatError: with a one-line reason when the bytes are malformed.
    """
    data = bytes(data)
    try:
        root = schema.open_root(data, schema.PACKED_IDENTIFIER,
                                schema.PackedValues.PackedValues, where)
        count = int(root.Count())
        table_size = schema.checked_length(root, _TOP_BYTES_SLOT, 1, where)
        ids_size = schema.checked_length(root, _IDS_SLOT, 1, where)
        low_size = schema.checked_length(root, _LOW_SLOT, 1, where)
        if count > MAX_VALUES:
            raise PackedFormatError(f"{where}: {count} values, at most {MAX_VALUES} are read")
        if not 1 <= table_size <= 256:
            raise PackedFormatError(f"{where}: {table_size} top bytes (expected 1..256)")
        table = root.TopBytesAsNumpy()
        if np.any(np.diff(table.astype(np.int16)) <= 0):
            raise PackedFormatError(f"{where}: top bytes are not distinct and ascending")
        id_bits = int(root.TopByteBits())
        if id_bits != _id_bits(table_size):
            raise PackedFormatError(f"{where}: {id_bits}-bit top-byte ids for {table_size} "
                                    f"top bytes (expected {_id_bits(table_size)})")
        if low_size != 3 * count:
            raise PackedFormatError(f"{where}: {low_size} low bytes for {count} values "
                                    f"(expected {3 * count})")
        if id_bits:
            ids = lr_lib.unpack_bits(root.TopByteIdsAsNumpy(), count, id_bits, where)
        elif ids_size:
            raise PackedFormatError(f"{where}: top-byte ids stored for a single top byte")
        else:
            ids = np.zeros(count, dtype=np.int64)
        if ids.size and int(ids.max()) >= table_size:
            raise PackedFormatError(f"{where}: a top-byte id is {int(ids.max())}, "
                                    f"the table has {table_size}")
        low = root.LowBytesAsNumpy().reshape(count, 3).astype("<u4") if count else \
            np.zeros((0, 3), "<u4")
    except lr_lib.LRFormatError as error:
        raise PackedFormatError(str(error)) from None
    except schema.SchemaBufferError as error:
        raise PackedFormatError(str(error)) from None
    except schema.READ_ERRORS as error:
        raise PackedFormatError(f"{where} is malformed ({error})") from None
    bits = (table[ids].astype("<u4") << 24) | low[:, 0] | (low[:, 1] << 8) | (low[:, 2] << 16)
    return bits.astype("<u4").view("<f4")


def kept_mask_oihw(layer):
    """The LR layer's kept weights, bool ``(out, in, kh, kw)``: LR order."""
    return np.transpose(layer.kept_mask_ohwi(), (0, 3, 1, 2))


def values_in_lr_order(filter_ohwi, layer):
    """The weights of ``filter_ohwi`` inside ``layer``'s kept mask, in LR order."""
    return np.transpose(filter_ohwi, (0, 3, 1, 2))[kept_mask_oihw(layer)]


def expand(values, layer):
    """The ``(out, kh, kw, in)`` filter whose kept weights are ``values``."""
    mask = kept_mask_oihw(layer)
    if values.size != int(mask.sum()):
        raise PackedFormatError(
            f"packed filter holds {values.size} values, its LR layer (operator "
            f"{layer.op_index}) keeps {int(mask.sum())} weights")
    filter_oihw = np.zeros(mask.shape, dtype=np.float32)
    filter_oihw[mask] = values
    return np.transpose(filter_oihw, (0, 2, 3, 1))


def _custom_opcode_index(model):
    from ai_edge_litert import schema_py_generated as tfl

    for index, code in enumerate(model.operatorCodes):
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) \
            else code.customCode
        if custom == OP_NAME:
            return index
    code = tfl.OperatorCodeT()
    code.builtinCode = tfl.BuiltinOperator.CUSTOM
    code.deprecatedBuiltinCode = tfl.BuiltinOperator.CUSTOM
    code.customCode = OP_NAME
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def is_packed_filter_op(model, op):
    """Whether ``op`` (an ``OperatorT`` of ``model``) is a ``CocopiePackedFilter``."""
    custom = model.operatorCodes[op.opcodeIndex].customCode
    return (custom.decode() if isinstance(custom, bytes) else custom) == OP_NAME


def expanded_filter(model, subgraph, op, lr_layers):
    """The dense filter a ``CocopiePackedFilter`` operator ``op`` writes, or
    ``None`` when no LR layer names its output or its input is not a constant."""
    output = int(op.outputs[0])
    layer = next((l for l in lr_layers if l.filter_tensor == output), None)
    source = subgraph.tensors[int(op.inputs[0])]
    data = model.buffers[source.buffer].data if source.buffer else None
    if layer is None or data is None:
        return None
    return expand(decode_values(np.asarray(data, dtype=np.uint8).tobytes(),
                                f"packed filter of tensor {output}"), layer)


def tensor_readers(subgraph):
    """Per tensor of ``subgraph``, how many operator inputs read it (a filter
    read once can be stored another way without touching another reader)."""
    uses = np.zeros(len(subgraph.tensors), dtype=np.int64)
    for op in subgraph.operators:
        for t in op.inputs:
            if t >= 0:
                uses[t] += 1
    return uses


def pack_filters(model, layers, is_depthwise, weights_of):
    """Stores the CONV_2D filters of the LR ``layers`` packed (delegate only).

    Modifies ``model`` (a ``ModelT``) in place: each packed filter tensor
    keeps its index (the LR's ``filter_tensor``) but loses its buffer, and a
    ``CocopiePackedFilter`` operator, placed first in the operator list,
    writes it from a uint8 constant. Filters that are shared, not constant,
    or have non-zero weights outside the layer's mask stay as they are.
    ``weights_of(model, subgraph, tensor)`` reads a filter's float32 values
    (``compact.constant_weights``); ``is_depthwise(model, op)`` tells the
    depthwise convolutions, which are not packed.

    Returns:
        The LR layers with operator indices shifted past the new operators.
    """
    from ai_edge_litert import schema_py_generated as tfl

    subgraph = model.subgraphs[0]
    uses = tensor_readers(subgraph)
    opcode, inserted = None, []
    for layer in layers:
        op = subgraph.operators[layer.op_index]
        tensor = subgraph.tensors[layer.filter_tensor]
        if is_depthwise(model, op) or uses[layer.filter_tensor] != 1 or tensor.buffer == 0 \
                or tensor.sparsity is not None:
            continue
        weights = weights_of(model, subgraph, layer.filter_tensor)
        if weights is None or weights.shape != layer.kept_mask_ohwi().shape or \
                np.count_nonzero(weights[~layer.kept_mask_ohwi()]):
            continue
        packed = tfl.BufferT()
        packed.data = np.frombuffer(encode_values(values_in_lr_order(weights, layer)),
                                    dtype=np.uint8).copy()
        model.buffers[tensor.buffer] = packed
        source = tfl.TensorT()
        source.shape = np.asarray([packed.data.size], dtype=np.int32)
        source.type = tfl.TensorType.UINT8
        source.buffer = tensor.buffer
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
        source.name = f"{name}/packed"
        subgraph.tensors.append(source)
        tensor.buffer = 0
        if opcode is None:
            opcode = _custom_opcode_index(model)
        unpack = tfl.OperatorT()
        unpack.opcodeIndex = opcode
        unpack.inputs = np.asarray([len(subgraph.tensors) - 1], dtype=np.int32)
        unpack.outputs = np.asarray([layer.filter_tensor], dtype=np.int32)
        inserted.append(unpack)
    subgraph.operators = inserted + list(subgraph.operators)
    return [dataclasses.replace(layer, op_index=layer.op_index + len(inserted))
            for layer in layers]
