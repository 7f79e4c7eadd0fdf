"""Per-layer facts about a .tflite file's LR, for ``cocopie inspect``.

Storage sizes are computed for the layer's weights in three encodings:

* dense: every weight as float32;
* CSR: the non-zero weights of each output channel as float32 values with
  uint16 column indices (into the flattened kh·kw·in kernel) and an int32
  row pointer per output channel — the layout of compressed sparse rows;
* FKW (filter-kernel-weight): per output channel, its kept kernels grouped by
  pattern (one uint16 count per pattern), per kept kernel a uint16 input
  channel and its ``entries`` float32 values; plus the pattern table. Only
  kept values are stored: pattern cells need no indices.
"""

import numpy as np

from cocopie_keras.converter import conversion
from cocopie_keras.converter import lr as lr_lib


def layer_reports(tflite_bytes):
    """One dict per LR layer (see ``cocopie inspect --json``); [] without LR."""
    model = conversion._read(tflite_bytes)
    subgraph = model.subgraphs[0]
    reports = []
    for layer in conversion.read_lr(tflite_bytes) or []:
        op = subgraph.operators[layer.op_index]
        name = subgraph.tensors[op.outputs[0]].name
        name = name.decode() if isinstance(name, bytes) else name
        weights = conversion._constant_float_tensor(model, subgraph, layer.filter_tensor)
        reports.append(_report(layer, name, weights))
    return reports


def _report(layer, name, weights):
    ids = layer.kernel_pattern
    cout, cin = ids.shape
    kh, kw = layer.kernel_size
    kept = ids != lr_lib.REMOVED_KERNEL
    num_patterns = len(layer.pattern_masks)
    histogram = np.bincount(ids[kept].astype(np.int64), minlength=num_patterns)
    nonzero = int(np.count_nonzero(weights)) if weights is not None else None
    fkw = (int(kept.sum()) * (2 + 4 * layer.entries)
           + cout * 2 * num_patterns + num_patterns * 4)
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
        "csr_bytes": None if nonzero is None else nonzero * 6 + (cout + 1) * 4,
        "fkw_bytes": fkw,
        "tuning": {
            "kernel": "block",
            # Extra FMAs of the block kernel over the kept taps, per block
            # width (32 channels on AVX-512, 16 on AVX2/NEON).
            "block_padding": {str(b): _block_padding(layer, b) for b in (16, 32)},
        },
    }


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
