"""One operator of a .tflite file as a model of its own, to time it alone.

``cocopie tune-kernels`` times each LR layer on the stock runtime and on the
delegate to decide whether the delegate should claim it; the slice holds the
operator, the DENSIFY operators that expand its sparse constant inputs, only
the tensors and buffers those use, and the layer's LR entry renumbered.
"""

import copy

import numpy as np

from cocopie_keras.converter import compact as compact_lib
from cocopie_keras.converter import conversion
from cocopie_keras.converter import lr as lr_lib


def _densify_feeds(model, subgraph, op):
    """Indices of the DENSIFY operators producing ``op``'s inputs."""
    schema, _ = conversion._schema()
    wanted = {int(t) for t in op.inputs if t >= 0}
    return [i for i, other in enumerate(subgraph.operators)
            if compact_lib._builtin_code(model, other) == schema.BuiltinOperator.DENSIFY
            and len(other.outputs) == 1 and int(other.outputs[0]) in wanted]


def _renumbered(indices, mapping):
    return np.asarray([mapping[int(t)] if t >= 0 else -1 for t in indices], dtype=np.int32)


def slice_operator(tflite_bytes, op_index, layer=None):
    """A model computing only operator ``op_index`` of subgraph 0.

    Args:
        tflite_bytes: a TFLite flatbuffer.
        op_index: the operator to keep.
        layer: the ``LRLayer`` describing it, or ``None`` for a slice without
            an LR (stock runtimes ignore the LR anyway).

    Returns:
        ``(slice_bytes, slice_op_index)``: the slice takes the operator's
        first input and returns its outputs; constant inputs stay constant.

    Raises:
        ValueError: if ``op_index`` is not an operator of subgraph 0, or its
            first input is a constant.
    """
    _, flatbuffer_utils = conversion._schema()
    model = conversion._read(tflite_bytes)
    subgraph = model.subgraphs[0]
    if not 0 <= op_index < len(subgraph.operators):
        raise ValueError(f"Expected an operator index in [0, {len(subgraph.operators)}). "
                         f"Received: op_index={op_index}")
    op = subgraph.operators[op_index]
    kept_ops = _densify_feeds(model, subgraph, op) + [op_index]
    activation = int(op.inputs[0])
    outputs = [int(t) for t in op.outputs]
    if model.buffers[subgraph.tensors[activation].buffer].data is not None:
        raise ValueError(f"Expected operator {op_index} to read a computed input first. "
                         "Received: a constant")
    used = sorted({int(t) for i in kept_ops for t in subgraph.operators[i].inputs if t >= 0} |
                  {int(t) for i in kept_ops for t in subgraph.operators[i].outputs})
    tensor_map = {old: new for new, old in enumerate(used)}
    buffers, buffer_map = [copy.copy(model.buffers[0])], {0: 0}
    tensors = []
    for old in used:
        tensor = subgraph.tensors[old]
        if tensor.buffer not in buffer_map:
            buffer_map[tensor.buffer] = len(buffers)
            buffers.append(model.buffers[tensor.buffer])
        tensor.buffer = buffer_map[tensor.buffer]
        tensors.append(tensor)
    operators = []
    for i in kept_ops:
        kept = subgraph.operators[i]
        kept.inputs = _renumbered(kept.inputs, tensor_map)
        kept.outputs = _renumbered(kept.outputs, tensor_map)
        operators.append(kept)
    subgraph.tensors, subgraph.operators = tensors, operators
    subgraph.inputs = np.asarray([tensor_map[activation]], dtype=np.int32)
    subgraph.outputs = _renumbered(outputs, tensor_map)
    model.subgraphs, model.buffers = [subgraph], buffers
    model.signatureDefs, model.metadata = [], []
    slice_op = len(kept_ops) - 1
    if layer is not None:
        sliced = copy.copy(layer)
        sliced.op_index = slice_op
        sliced.filter_tensor = tensor_map[int(layer.filter_tensor)]
        conversion._set_metadata(model, lr_lib.METADATA_NAME, lr_lib.encode([sliced]))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), slice_op
