"""Keras model → .tflite with the pattern LR in its metadata table."""

import contextlib
import io
import struct

import numpy as np

from cocopie_keras import patterns as patterns_lib
from cocopie_keras.converter import compact as compact_lib
from cocopie_keras.converter import lr as lr_lib
from cocopie_keras.converter import packed as packed_lib
from cocopie_keras.converter import records as records_lib


def _schema():
    # Imported lazily: ai_edge_litert pulls in its native runtime.
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    return schema, flatbuffer_utils


STORAGES = ("sparse", "dense", "delegate-only")
"""How ``convert`` stores the filters the LR describes (``storage=``)."""


def convert(model, *, pattern_pool=None, entries=4, optimizations=None, storage="sparse"):
    """Converts a Keras model to TFLite flatbuffer bytes carrying the LR.

    A model still wrapped by ``cocopie_keras.sparsity`` hands over what
    training decided: each hard-pruned layer's pattern pool and ids go into
    the LR as they are (``converter.records``). A model pruned by any other
    tool is described from its weights. Every float32 CONV_2D or
    DEPTHWISE_CONV_2D whose kernels each keep at most ``entries`` non-zero
    weights is described in the LR; other layers are left as they are. The file runs unchanged on stock
    LiteRT; the cocopie delegate uses the LR to run the described layers.

    Args:
        model: a built ``keras.Model``.
        pattern_pool: optional bool ``(P, kh, kw)`` pool the model was pruned
            with; pattern ids then index this pool.
        entries: cells per pattern when no pool is given.
        optimizations: passed to ``TFLiteConverter.optimizations``.
        storage: how the described filters are stored. ``"sparse"`` (the
            default): TFLite's sparse format behind DENSIFY operators
            (``converter.compact``), a smaller file that stock LiteRT still
            runs. ``"dense"``: as the TFLite converter wrote them.
            ``"delegate-only"``: CONV_2D filters as their kept values alone
            (``converter.packed``), the smallest file, which only the cocopie
            delegate runs (stock LiteRT refuses it: unresolved custom op
            ``CocopiePackedFilter``); other filters stored sparse.

    Returns:
        The .tflite file as ``bytes``.

    Example:

    >>> tflite_bytes = convert(pruned_model)
    >>> open("model.tflite", "wb").write(tflite_bytes)
    """
    import keras
    import tensorflow as tf

    from cocopie_keras.sparsity import strip_pruning

    records = records_lib.records_of(model)
    model = strip_pruning(model)  # pruning wrappers → plain layers, zeros in place
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected a keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "Expected a built model (call it on data or give it an Input). "
            f"Received: model={model.name!r} is not built"
        )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if optimizations:
        converter.optimizations = list(optimizations)
    # Keras's SavedModel export prints its signatures; keep the caller's
    # stdout for the caller.
    with contextlib.redirect_stdout(io.StringIO()):
        flatbuffer = converter.convert()
    return annotate(flatbuffer, pattern_pool=pattern_pool, entries=entries, storage=storage,
                    records=records)


def annotate(tflite_bytes, *, pattern_pool=None, entries=4, storage="dense", records=()):
    """Adds (or replaces) the LR of an existing .tflite file.

    Args:
        tflite_bytes: a TFLite flatbuffer.
        pattern_pool, entries: as in ``convert``.
        storage: as in ``convert``; ``"dense"`` leaves the filters as they are.
        records: ``converter.records.PruningRecord`` list of the model's
            pruned layers (``records_of``), used where they fit the weights.

    Returns:
        New flatbuffer bytes: the same model plus the metadata entry (and
        the described filters stored as ``storage`` says).
    """
    if storage not in STORAGES:
        raise ValueError(f"Expected storage in {STORAGES}. Received: storage={storage!r}")
    _, flatbuffer_utils = _schema()
    model = _read(tflite_bytes)
    layers = describe_pattern_convs(model, pattern_pool=pattern_pool, entries=entries,
                                    records=records)
    if storage == "delegate-only":
        layers = packed_lib.pack_filters(model, layers, is_depthwise,
                                         compact_lib.constant_weights)
    if storage != "dense":
        layers = compact_lib.compact_filters(model, layers)
    _set_metadata(model, lr_lib.METADATA_NAME, lr_lib.encode(layers))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def is_delegate_only(tflite_bytes):
    """Whether the file holds delegate-only filters (``storage="delegate-only"``),
    which stock runtimes cannot run."""
    model = _read(tflite_bytes)
    return any(packed_lib.is_packed_filter_op(model, op)
               for subgraph in model.subgraphs for op in subgraph.operators or [])


def write_lr(tflite_bytes, layers):
    """Stores ``layers`` (a list of ``LRLayer``) as the file's LR, as given.

    No check against the weights is made here: the delegate verifies every
    layer before it trusts it (and ``check_lr`` reports mismatches).
    """
    _, flatbuffer_utils = _schema()
    model = _read(tflite_bytes)
    _set_metadata(model, lr_lib.METADATA_NAME, lr_lib.encode(layers))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


MIN_POINTWISE_REMOVED = 0.25
"""A 1×1 convolution is described when at least this fraction of its
(out, in) weights are zero (connectivity pruning); denser ones run faster on
the stock GEMM kernels."""


def describe_pattern_convs(model, *, pattern_pool=None, entries=4, records=()):
    """LR layers for the pruned float32 convolutions of subgraph 0.

    A k×k CONV_2D (k·k at most ``lr.MAX_KERNEL_CELLS``, the LR's limit;
    larger kernels are left out) is described when every kernel keeps at
    most ``entries`` weights in a pattern; a 1×1 CONV_2D when connectivity pruning removed at
    least ``MIN_POINTWISE_REMOVED`` of its weights (its single-cell "pattern"
    is kept or removed per kernel). A k×k DEPTHWISE_CONV_2D (depth multiplier
    1, no dilation) is described when every channel's kernel keeps at most
    ``entries`` weights in a pattern, as ``C`` output channels of one input
    channel each (``kernel_pattern`` of shape ``(C, 1)``). A FULLY_CONNECTED
    with constant ``(out, in)`` weights is described as a 1×1 CONV_2D would be
    (kept or removed per weight). A layer that one of
    ``records`` fits is described by it (pool and ids as training chose
    them); the others from their weights.

    Args:
        model: a ``schema_py_generated.ModelT``.
        records: ``converter.records.PruningRecord`` list.

    Example:

    >>> layers = describe_pattern_convs(conversion._read(tflite_bytes))
    >>> [layer.kernel_pattern.shape for layer in layers]
    [(32, 3), (32, 1)]
    """
    schema, flatbuffer_utils = _schema()
    subgraph = model.subgraphs[0]
    layers = []
    for op_index, op in enumerate(subgraph.operators):
        code = flatbuffer_utils.get_builtin_code_from_operator_code(
            model.operatorCodes[op.opcodeIndex]
        )
        if code == schema.BuiltinOperator.DEPTHWISE_CONV_2D:
            layer = _describe_depthwise(model, subgraph, op_index, op, pattern_pool, entries,
                                        records)
            if layer is not None:
                layers.append(layer)
            continue
        if code == schema.BuiltinOperator.FULLY_CONNECTED:
            layer = _describe_fully_connected(model, subgraph, op_index, op)
            if layer is not None:
                layers.append(layer)
            continue
        if code != schema.BuiltinOperator.CONV_2D:
            continue
        filter_index = int(op.inputs[1])
        filter_ohwi = compact_lib.constant_weights(model, subgraph, filter_index)
        if filter_ohwi is None or not _describable_kernel(filter_ohwi):
            continue
        if filter_ohwi.shape[1:3] == (1, 1):
            layer = _describe_pointwise(op_index, filter_index, filter_ohwi)
        else:
            name = _name(subgraph.tensors[filter_index].name) or ""
            record = records_lib.match(records, filter_ohwi, name, depthwise=False)
            layer = (_layer_from_projection(op_index, filter_index, record.projection)
                     if record else _describe_patterned(op_index, filter_index, filter_ohwi,
                                                        pattern_pool, entries))
        if layer is not None:
            layers.append(layer)
    return layers


def _describable_kernel(filter_4d):
    """Whether a 4-D filter's kernel fits an LR pattern mask (``(*, kh, kw, *)``)."""
    if filter_4d.ndim != 4:
        return False
    return filter_4d.shape[1] * filter_4d.shape[2] <= lr_lib.MAX_KERNEL_CELLS


def _describe_patterned(op_index, filter_index, filter_ohwi, pattern_pool, entries):
    kernel_hwio = np.transpose(filter_ohwi, (1, 2, 3, 0))
    projection = patterns_lib.patterns_from_weights(
        kernel_hwio, entries=entries, pool=pattern_pool
    )
    if projection is None:
        return None
    return _layer_from_projection(op_index, filter_index, projection)


def _describe_depthwise(model, subgraph, op_index, op, pattern_pool, entries, records=()):
    """The LR layer of a pattern-pruned DEPTHWISE_CONV_2D, or ``None``."""
    if not _plain_depthwise(subgraph, op):
        return None
    filter_index = int(op.inputs[1])
    filter_1hwc = compact_lib.constant_weights(model, subgraph, filter_index)
    if filter_1hwc is None or not _describable_kernel(filter_1hwc):
        return None
    if filter_1hwc.shape[0] != 1:
        return None
    if filter_1hwc.shape[1:3] == (1, 1):
        return None  # a per-channel scale, nothing to prune into patterns
    name = _name(subgraph.tensors[filter_index].name) or ""
    record = records_lib.match(records, filter_1hwc, name, depthwise=True)
    if record:
        return _layer_from_projection(op_index, filter_index, record.projection)
    # As a convolution of one input channel and C outputs: (kh, kw, 1, C).
    projection = patterns_lib.patterns_from_weights(
        np.transpose(filter_1hwc, (1, 2, 0, 3)), entries=entries, pool=pattern_pool
    )
    if projection is None:
        return None
    return _layer_from_projection(op_index, filter_index, projection)


def _layer_from_projection(op_index, filter_index, projection):
    """An LR layer from a ``KernelProjection`` of an (kh, kw, in, out) kernel."""
    ids = projection.pattern_ids.T  # (out, in)
    return lr_lib.LRLayer(
        op_index=op_index,
        filter_tensor=filter_index,
        pattern_masks=projection.pool,
        kernel_pattern=np.where(
            ids == patterns_lib.REMOVED, lr_lib.REMOVED_KERNEL, ids
        ).astype(np.uint8),
    )


def _plain_depthwise(subgraph, op):
    """Whether a DEPTHWISE_CONV_2D has depth multiplier 1 and no dilation."""
    options = op.builtinOptions
    if options is not None and (
        options.dilationWFactor != 1
        or options.dilationHFactor != 1
        or options.depthMultiplier not in (0, 1)
    ):
        return False
    in_shape = subgraph.tensors[int(op.inputs[0])].shape
    filter_shape = subgraph.tensors[int(op.inputs[1])].shape
    return (in_shape is not None and filter_shape is not None and len(in_shape) == 4
            and len(filter_shape) == 4 and int(in_shape[3]) == int(filter_shape[3]))


def is_depthwise(model, op):
    """Whether ``op`` (an ``OperatorT`` of ``model``) is a DEPTHWISE_CONV_2D."""
    schema, flatbuffer_utils = _schema()
    code = flatbuffer_utils.get_builtin_code_from_operator_code(
        model.operatorCodes[op.opcodeIndex])
    return code == schema.BuiltinOperator.DEPTHWISE_CONV_2D


def depthwise_filter_mask(layer):
    """Kept-weight mask of a depthwise LR layer in TFLite's ``(1, kh, kw, C)``."""
    return np.transpose(layer.kept_mask_ohwi(), (3, 1, 2, 0))


def _describe_pointwise(op_index, filter_index, filter_ohwi):
    removed = filter_ohwi[:, 0, 0, :] == 0  # (out, in)
    if removed.mean() < MIN_POINTWISE_REMOVED:
        return None
    return lr_lib.LRLayer(
        op_index=op_index,
        filter_tensor=filter_index,
        pattern_masks=np.ones((1, 1, 1), dtype=bool),
        kernel_pattern=np.where(removed, lr_lib.REMOVED_KERNEL, 0).astype(np.uint8),
    )


def is_fully_connected(model, op):
    """Whether ``op`` (an ``OperatorT`` of ``model``) is a FULLY_CONNECTED."""
    schema, flatbuffer_utils = _schema()
    code = flatbuffer_utils.get_builtin_code_from_operator_code(
        model.operatorCodes[op.opcodeIndex])
    return code == schema.BuiltinOperator.FULLY_CONNECTED


def _describe_fully_connected(model, subgraph, op_index, op):
    """A float32 FULLY_CONNECTED with constant ``(out, in)`` weights, pruned as
    1×1 convolutions are (``MIN_POINTWISE_REMOVED``), described as one: ``out``
    output channels of ``in`` input channels, kept or removed per weight."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    weights = compact_lib.constant_weights(model, subgraph, int(op.inputs[1]))
    if weights is None or weights.ndim != 2 or min(weights.shape) < 1 or \
            max(weights.shape) > lr_lib.MAX_CHANNELS:
        return None
    return _describe_pointwise(op_index, int(op.inputs[1]), weights[:, None, None, :])


def weights_mask(model, op, layer):
    """The LR layer's kept-weight mask in the layout of ``op``'s weights."""
    if is_depthwise(model, op):
        return depthwise_filter_mask(layer)
    if is_fully_connected(model, op):
        return layer.kept_mask_ohwi()[:, 0, 0, :]
    return layer.kept_mask_ohwi()


def read_lr(tflite_bytes):
    """The LR layers stored in a .tflite file, or ``None`` if it has none.

    Raises:
        LRFormatError: if an LR entry exists but is malformed.
    """
    data = read_lr_bytes(tflite_bytes)
    return None if data is None else lr_lib.decode(data)


def read_lr_bytes(tflite_bytes):
    """The raw LR metadata of a .tflite file, or ``None`` if it has none."""
    model = _read(tflite_bytes)
    for entry in model.metadata or []:
        if _name(entry.name) == lr_lib.METADATA_NAME:
            return model.buffers[entry.buffer].data.tobytes()
    return None


def check_lr(tflite_bytes):
    """Problems between a file's LR and its weights (empty list: consistent).

    The same rules the delegate applies before it trusts an LR layer: the
    operator is a CONV_2D (or a DEPTHWISE_CONV_2D of depth multiplier 1 and no
    dilation, described with one input channel per kernel, or a
    FULLY_CONNECTED described as a 1×1 convolution) with that constant filter
    and shape, and every weight the pattern prunes is zero.
    """
    schema, flatbuffer_utils = _schema()
    model = _read(tflite_bytes)
    layers = read_lr(tflite_bytes) or []
    subgraph = model.subgraphs[0]
    problems = []
    for layer in layers:
        where = f"LR layer for operator {layer.op_index}"
        if layer.op_index >= len(subgraph.operators):
            problems.append(f"{where}: no such operator")
            continue
        op = subgraph.operators[layer.op_index]
        code = flatbuffer_utils.get_builtin_code_from_operator_code(
            model.operatorCodes[op.opcodeIndex]
        )
        depthwise = code == schema.BuiltinOperator.DEPTHWISE_CONV_2D
        if code not in (schema.BuiltinOperator.CONV_2D,
                        schema.BuiltinOperator.FULLY_CONNECTED) and not depthwise:
            problems.append(f"{where}: operator is not a CONV_2D, DEPTHWISE_CONV_2D "
                            "or FULLY_CONNECTED")
            continue
        if depthwise and not _plain_depthwise(subgraph, op):
            problems.append(f"{where}: depthwise operator has a depth multiplier "
                            "other than 1 or dilation")
            continue
        if depthwise and layer.kernel_pattern.shape[1] != 1:
            problems.append(f"{where}: a depthwise layer needs one input channel "
                            f"per kernel, the LR gives {layer.kernel_pattern.shape[1]}")
            continue
        if int(op.inputs[1]) != layer.filter_tensor:
            problems.append(f"{where}: filter tensor differs")
            continue
        try:
            weights = compact_lib.constant_weights(model, subgraph, layer.filter_tensor)
        except compact_lib.SparseFormatError as error:
            problems.append(f"{where}: sparse filter is malformed: {error}")
            continue
        except packed_lib.PackedFormatError as error:
            problems.append(f"{where}: packed filter is malformed: {error}")
            continue
        mask = weights_mask(model, op, layer)
        if weights is None or weights.shape != mask.shape:
            problems.append(f"{where}: filter shape differs from the LR")
            continue
        outside = np.count_nonzero(weights[~mask])
        if outside:
            problems.append(f"{where}: {outside} pruned weights are non-zero")
    return problems


def _read(tflite_bytes):
    _, flatbuffer_utils = _schema()
    if not isinstance(tflite_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(
            "Expected TFLite flatbuffer bytes. Received: "
            f"{type(tflite_bytes).__name__}"
        )
    data = bytearray(tflite_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("Expected a TFLite flatbuffer (identifier TFL3).")
    try:
        return flatbuffer_utils.read_model_from_bytearray(data)
    except (struct.error, IndexError, ValueError, TypeError, OverflowError,
            UnicodeDecodeError, RecursionError, MemoryError) as error:
        # The flatbuffer reader follows offsets without checking them first:
        # a truncated or damaged file fails somewhere inside it.
        raise ValueError(
            "Expected a complete TFLite flatbuffer. Received: "
            f"{len(data)} bytes that do not parse (truncated or damaged: {error})"
        ) from None


def _name(value):
    return value.decode() if isinstance(value, bytes) else value


def _set_metadata(model, name, payload):
    schema, _ = _schema()
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8).copy()
    existing = [m for m in (model.metadata or []) if _name(m.name) == name]
    if existing:
        model.buffers[existing[0].buffer] = buffer
        return
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
