"""What training decided, carried into the LR instead of guessed from weights.

A model pruned with ``cocopie_keras.sparsity`` knows, per wrapped layer, the
pattern pool it used and every kernel's pattern id (``sparsity.pattern_info``).
``records_of`` takes that from a wrapped model before it is stripped, and
``match`` finds the record of a converted CONV_2D / DEPTHWISE_CONV_2D filter:
the TFLite converter renames tensors and reorders operators, so a record
applies to a filter only when the filter's shape is the layer's and none of its
non-zero weights lies outside the record's pattern mask; the layer's name in
the filter tensor's name settles ties. A filter that no record fits (a model
pruned by another tool, weights edited after pruning) keeps the
weights-derived description.

Example:

>>> records = records_of(wrapped_model)
>>> record = match(records, filter_ohwi, "model/conv_1/convolution", depthwise=False)
"""

import dataclasses
import functools
import re

import numpy as np

from cocopie_keras import patterns as patterns_lib


@dataclasses.dataclass(frozen=True)
class PruningRecord:
    """One wrapped layer's patterns.

    Attributes:
        layer: the Keras layer name.
        depthwise: a DepthwiseConv2D (ids ``(channels, 1)``) or a Conv2D
            (ids ``(in, out)``).
        pool: bool ``(P, kh, kw)``.
        pattern_ids: int ``(in, out)``, ``patterns.REMOVED`` for removed kernels.
    """

    layer: str
    depthwise: bool
    pool: np.ndarray
    pattern_ids: np.ndarray

    @functools.cached_property
    def projection(self):
        """The record as a ``KernelProjection`` of a ``(kh, kw, in, out)`` kernel
        (a depthwise layer as one input channel and ``channels`` outputs); built
        once, since every converted filter is matched against every record."""
        ids = self.pattern_ids.T if self.depthwise else self.pattern_ids
        removed = ids == patterns_lib.REMOVED
        mask = self.pool[np.where(removed, 0, ids)]  # (in, out, kh, kw)
        mask[removed] = False
        return patterns_lib.KernelProjection(pattern_ids=np.asarray(ids, np.int32),
                                             mask=np.transpose(mask, (2, 3, 0, 1)),
                                             pool=self.pool)


def records_of(model):
    """The pattern records of ``model``'s pruning wrappers (``[]`` without any).

    Only hard-pruned pattern layers count: a wrapper still in ADMM has ids
    that its weights do not obey yet, and 1×1 and Dense records add nothing
    to what the weights say.
    """
    from cocopie_keras.sparsity import pattern_info

    try:
        info = pattern_info(model)
    except (AttributeError, TypeError):
        return []  # not a Keras model with wrappers
    records = []
    for name, entry in info.items():
        pool = np.asarray(entry["pattern_pool"], dtype=bool)
        if entry["kind"] == "dense" or not entry["pruned"] or pool.shape[1:] == (1, 1):
            continue
        records.append(PruningRecord(name, entry["kind"] == "DepthwiseConv2D", pool,
                                     np.asarray(entry["pattern_ids"])))
    return records


def _named_in(layer, tensor_name):
    """Whether the layer's name is a component of a TFLite tensor name
    (Keras scopes it as ``model/<layer>/...`` or ``model/<layer>_<n>/...``)."""
    return re.search(rf"(^|/){re.escape(layer)}(_\d+)?/", tensor_name) is not None


def match(records, filter_4d, tensor_name, depthwise):
    """The record that describes a converted filter, or ``None``.

    Args:
        records: ``PruningRecord`` list.
        filter_4d: the TFLite filter, ``(out, kh, kw, in)`` for CONV_2D or
            ``(1, kh, kw, channels)`` for DEPTHWISE_CONV_2D.
        tensor_name: the filter tensor's name.
        depthwise: the operator is a DEPTHWISE_CONV_2D.
    """
    kernel = np.transpose(filter_4d, (1, 2, 0, 3) if depthwise else (1, 2, 3, 0))
    fitting = []
    for record in records:
        if record.depthwise != depthwise:
            continue
        projection = record.projection
        if projection.mask.shape != kernel.shape or np.any(kernel[~projection.mask]):
            continue
        fitting.append(record)
    named = [r for r in fitting if _named_in(r.layer, tensor_name)]
    if len(named) == 1:
        return named[0]
    return fitting[0] if len(fitting) == 1 else None
