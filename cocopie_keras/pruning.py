"""Deprecated entry points kept for one release; ``cocopie_keras.sparsity`` is
the pruning API.

``prune_model`` is ``sparsity.prune_in_place`` restricted to the Conv2D layers
whose kernel size matches the pool; ``PatternMaskCallback`` holds the zeros
with the same ``sparsity.MaskConstraint`` the wrappers use. New code:

>>> config = sparsity.PatternPruningConfig(connectivity_rate=0.72)
>>> wrapped = sparsity.prune_wrap(model, config)
>>> sparsity.hard_prune(wrapped)
>>> wrapped.fit(x, y, callbacks=[sparsity.MaskedFineTuneCallback()])
>>> tflite_bytes = cocopie_keras.converter.convert(sparsity.strip_pruning(wrapped))
"""

import warnings

import keras
import numpy as np

from cocopie_keras import patterns as patterns_lib
from cocopie_keras import sparsity


def prunable_conv_layers(model, pattern_pool=None):
    """The Conv2D layers whose kernels match the pool's kernel size.

    Grouped convolutions are excluded (the delegate runs groups=1 only).
    """
    pool = patterns_lib.validate_pattern_pool(
        patterns_lib.default_pattern_pool() if pattern_pool is None else pattern_pool
    )
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.Conv2D)
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
        and tuple(layer.kernel_size) == pool.shape[1:]
        and getattr(layer, "groups", 1) == 1
    ]


def prune_model(model, pattern_pool=None, connectivity_rate=0.0,
                skip_first_conv=False, layer_names=None, group_size=1):
    """Deprecated: ``sparsity.prune_in_place`` with a ``PatternPruningConfig``.

    Projects the model's Conv2D kernels of the pool's size (3×3 by default)
    onto patterns, in place; ``connectivity_rate`` is never applied to a
    layer with a single input channel; ``group_size`` output channels share
    a pattern (``patterns.project_kernel``).

    Returns:
        ``{layer name: KernelProjection}`` for the pruned layers.

    Raises:
        ValueError: if the model is not built, a rate is out of range, or a
            named layer is missing or cannot be pattern-pruned.
    """
    warnings.warn("cocopie_keras.pruning.prune_model is deprecated; use "
                  "cocopie_keras.sparsity.prune_in_place", DeprecationWarning, stacklevel=2)
    if not model.built:
        raise ValueError(
            "Expected a built model. Received: model "
            f"{model.name!r} is not built (call it on data first)"
        )
    pool = patterns_lib.validate_pattern_pool(
        patterns_lib.default_pattern_pool() if pattern_pool is None else pattern_pool)
    candidates = [layer.name for layer in prunable_conv_layers(model, pool)]
    if layer_names is not None:
        unknown = [name for name in layer_names if name not in candidates]
        if unknown:
            raise ValueError(
                "Expected names of 3x3 Conv2D layers (groups=1). "
                f"Received: layer_names={unknown} (prunable layers: {sorted(candidates)})"
            )
        chosen = list(layer_names)
    else:
        chosen = candidates[1:] if skip_first_conv else candidates
    others = [layer.name for layer in model._flatten_layers(include_self=False)
              if hasattr(layer, "kernel") and layer.name not in chosen]
    config = sparsity.PatternPruningConfig(
        connectivity_rate=connectivity_rate, pattern_pool=pool, group_size=group_size,
        entries=int(pool[0].sum()), num_patterns=len(pool), skip_layers=others)
    return sparsity.prune_in_place(model, config) if chosen else {}


@keras.saving.register_keras_serializable(package="cocopie_keras")
class PatternMaskCallback(keras.callbacks.Callback):
    """Deprecated: fine-tune a ``sparsity.prune_wrap`` model with
    ``sparsity.MaskedFineTuneCallback``.

    Holds pruned weights at zero while a plain model trains: for the fit it
    puts ``sparsity.MaskConstraint`` (the wrappers' mechanism: ``W·mask``
    after every optimizer step) on each masked kernel, and takes it off at
    the end.

    Args:
        projections: ``{layer name: KernelProjection}`` from ``prune_model``,
            or ``{layer name: bool mask}`` with the kernel's shape.
    """

    def __init__(self, projections):
        super().__init__()
        self.masks = {
            name: np.asarray(getattr(p, "mask", p), dtype=bool)
            for name, p in projections.items()
        }
        self._held = []

    def on_train_begin(self, logs=None):
        self._held = []
        for name, mask in self.masks.items():
            try:
                layer = self.model.get_layer(name)
            except ValueError:
                raise ValueError(
                    f"Expected the model to have layer {name!r} from the "
                    "pruning masks. Received: a model without it"
                ) from None
            if tuple(layer.kernel.shape) != mask.shape:
                raise ValueError(
                    f"Expected layer {name!r} to have kernel shape "
                    f"{mask.shape}. Received: {tuple(layer.kernel.shape)}"
                )
            self._held.append((name, layer.kernel, layer.kernel.constraint))
        for name, kernel, inner in self._held:
            mask = keras.ops.convert_to_tensor(self.masks[name], kernel.dtype)
            kernel.constraint = sparsity.MaskConstraint(mask, inner)
            kernel.assign(kernel * mask)
        # A train function traced by an earlier fit would not see the
        # constraints: trace again.
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        for _, kernel, inner in self._held:
            kernel.constraint = inner
        self._held = []
        self.model.make_train_function(force=True)

    def get_config(self):
        return {"projections": {k: v.tolist() for k, v in self.masks.items()}}


def conv_weight_density(model):
    """Deprecated alias of ``sparsity.conv_weight_density``."""
    warnings.warn("cocopie_keras.pruning.conv_weight_density is deprecated; use "
                  "cocopie_keras.sparsity.conv_weight_density", DeprecationWarning, stacklevel=2)
    return sparsity.conv_weight_density(model)
