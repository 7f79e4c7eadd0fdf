"""Per-layer facts about a .tflite file's LR, for ``cocopie inspect``.

Storage sizes of the layer's weights, values plus index arrays at their
narrowest integer type:

* dense: every weight as float32;
* CSR: TFLite's own sparse layout for a pruned filter (the one its
  ``EXPERIMENTAL_SPARSITY`` optimization writes): compressed rows over input
  channels, one row per (out, kh, kw);
* FKW: the encoding ``converter.compact`` stores in the file (blocks of output
  channels, their kept input channels, kept cells, values), as stored when the
  filter is sparse in the file, otherwise what it would take.
"""

import numpy as np

from cocopie_keras.converter import compact
from cocopie_keras.converter import conversion
from cocopie_keras.converter import lr as lr_lib
from cocopie_keras.converter import packed
from cocopie_keras.converter import kernel_tuning as tuning_lib


def layer_reports(tflite_bytes):
    """One dict per LR layer (see ``cocopie inspect --json``); [] without LR."""
    model = conversion._read(tflite_bytes)
    subgraph = model.subgraphs[0]
    reports = []
    for layer in conversion.read_lr(tflite_bytes) or []:
        op = subgraph.operators[layer.op_index]
        name = subgraph.tensors[op.outputs[0]].name
        name = name.decode() if isinstance(name, bytes) else name
        weights = compact.constant_weights(model, subgraph, layer.filter_tensor)
        fully_connected = conversion.is_fully_connected(model, op)
        if fully_connected and weights is not None:
            weights = weights[:, None, None, :]  # (out, in) as the 1x1 filter it is described as
        reports.append(_report(layer, name, weights))
        if fully_connected:
            reports[-1]["kind"] = "fully_connected_connectivity"
            reports[-1]["tuning"]["kernel"] = "sparse_fc"
        if conversion.is_depthwise(model, op):
            # The LR's view is (C, kh, kw, 1); the delegate runs its own
            # depthwise kernel (no block kernel, nothing to tune).
            kh, kw = layer.kernel_size
            reports[-1]["kind"] = f"dwconv{kh}x{kw}_pattern"
            reports[-1]["tuning"]["kernel"] = "dwconv"
    return reports


def _report(layer, name, weights):
    ids = layer.kernel_pattern
    cout, cin = ids.shape
    kh, kw = layer.kernel_size
    kept = ids != lr_lib.REMOVED_KERNEL
    num_patterns = len(layer.pattern_masks)
    histogram = np.bincount(ids[kept].astype(np.int64), minlength=num_patterns)
    nonzero = int(np.count_nonzero(weights)) if weights is not None else None
    fkw = None if weights is None else compact.encode_filter(weights).nbytes()
    csr = None if weights is None else compact.encode_csr(weights).nbytes()
    packed_bytes = None
    if weights is not None and weights.shape == layer.kept_mask_ohwi().shape:
        packed_bytes = len(packed.encode_values(packed.values_in_lr_order(weights, layer)))
    return {
        "name": name,
        "op_index": layer.op_index,
        "kind": "conv1x1_connectivity" if (kh, kw) == (1, 1) else f"conv{kh}x{kw}_pattern",
        "shape_ohwi": [cout, kh, kw, cin],
        "patterns": [
            {"cells": [[int(r), int(c)] for r, c in zip(*np.nonzero(mask))],
             "kernels": int(count)}
            for mask, count in zip(layer.pattern_masks, histogram)
        ],
        "kernel_density": float(kept.mean()),
        "weight_density": float(layer.kept_mask_ohwi().mean()),
        "dense_bytes": cout * kh * kw * cin * 4,
        "nonzero_weights": nonzero,
        "csr_bytes": csr,
        "fkw_bytes": fkw,
        # The delegate-only storage's buffer (convert --storage delegate-only).
        "packed_bytes": packed_bytes,
        "tuning": _tuning(layer),
    }


def _tuning(layer):
    """The built-in kernel choice and what ``cocopie tune-kernels`` stored."""
    stored = tuning_lib.describe(getattr(layer, "tuning", b""))
    facts = {
        "kernel": "block",  # the built-in choice, used where nothing is stored
        # Extra FMAs of the block kernel over the kept taps, per block width
        # (32 channels by default on AVX-512, 16 on AVX2/NEON; 8 is tunable).
        "block_padding": {str(b): _block_padding(layer, b) for b in (8, 16, 32)},
        # Per SIMD target, the choice stored in the LR (the delegate uses the
        # entry of its own target without timing anything).
        "stored": stored["entries"],
    }
    if "error" in stored:
        facts["stored_error"] = stored["error"]  # the delegate ignores such a record
    return facts


def _block_padding(layer, block):
    """Taps the block kernel runs / taps the patterns keep."""
    mask = layer.kept_mask_ohwi()  # (out, kh, kw, in)
    cout = mask.shape[0]
    blocks = -(-cout // block)
    padded = np.zeros((blocks * block,) + mask.shape[1:], dtype=bool)
    padded[:cout] = mask
    union = padded.reshape(blocks, block, *mask.shape[1:]).any(axis=1)
    kept = mask.sum()
    return float(union.sum() * block / kept) if kept else 1.0
