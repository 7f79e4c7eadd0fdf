"""One-shot pattern + connectivity pruning of a Keras model, and fine-tuning
that keeps the pruned weights at zero.

Example:

>>> projections = prune_model(model, connectivity_rate=0.3)
>>> model.fit(x, y, epochs=2, callbacks=[PatternMaskCallback(projections)])
>>> tflite_bytes = cocopie_keras.converter.convert(model)
"""

import keras
import numpy as np

from cocopie_keras import codesign
from cocopie_keras import patterns as patterns_lib


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
        and tuple(layer.kernel_size) == pool.shape[1:]
        and getattr(layer, "groups", 1) == 1
    ]


def prune_model(model, pattern_pool=None, connectivity_rate=0.0,
                skip_first_conv=False, layer_names=None, group_size=1):
    """Projects the model's 3×3 Conv2D kernels onto patterns, in place.

    Args:
        model: a built ``keras.Model``.
        pattern_pool: bool ``(P, kh, kw)``; default 8 four-entry patterns.
        connectivity_rate: fraction of each layer's kernels to remove, in
            ``[0, 1)``; never applied to a layer with a single input channel.
        skip_first_conv: leave the first prunable convolution dense.
        layer_names: prune only these layers (names of Conv2D layers).
        group_size: consecutive output channels that share one pattern per
            input channel and are removed together by connectivity pruning
            (``cocopie_keras.codesign``). 1 (default) lets every kernel pick
            its own pattern; 32 is what the delegate's block kernel runs
            without a wasted multiply (``codesign.DELEGATE_CHANNEL_BLOCK``;
            its accuracy cost is measured by ``bench/codesign_accuracy.py``).

    Returns:
        ``{layer name: KernelProjection}`` for the pruned layers; pass it to
        ``PatternMaskCallback`` to fine-tune.

    Raises:
        ValueError: if the model is not built, a rate is out of range, or a
            named layer is missing or cannot be pattern-pruned.
    """
    if not model.built:
        raise ValueError(
            "Expected a built model. Received: model "
            f"{model.name!r} is not built (call it on data first)"
        )
    if not 0.0 <= connectivity_rate < 1.0:
        raise ValueError(
            "Expected connectivity_rate in [0, 1). "
            f"Received: connectivity_rate={connectivity_rate}"
        )
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(
            f"Expected group_size to be a positive integer. Received: group_size={group_size!r}"
        )
    candidates = prunable_conv_layers(model, pattern_pool)
    if layer_names is not None:
        by_name = {layer.name: layer for layer in candidates}
        unknown = [name for name in layer_names if name not in by_name]
        if unknown:
            raise ValueError(
                "Expected names of 3x3 Conv2D layers (groups=1). "
                f"Received: layer_names={unknown} "
                f"(prunable layers: {sorted(by_name)})"
            )
        candidates = [by_name[name] for name in layer_names]
    elif skip_first_conv:
        candidates = candidates[1:]

    projections = {}
    for layer in candidates:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        rate = connectivity_rate if kernel.shape[2] > 1 else 0.0
        if group_size > 1:
            projection = codesign.project_kernel_grouped(
                kernel, pattern_pool, connectivity_rate=rate, group_size=group_size)
        else:
            projection = patterns_lib.project_kernel(kernel, pattern_pool, rate)
        layer.kernel.assign(kernel * projection.mask)
        projections[layer.name] = projection
    return projections


@keras.saving.register_keras_serializable(package="cocopie_keras")
class PatternMaskCallback(keras.callbacks.Callback):
    """Holds pattern-pruned weights at zero while a model trains.

    The optimizer keeps updating every weight; after each training batch the
    masks from ``prune_model`` are applied again, so the weights that leave
    ``fit`` obey the patterns exactly (what the converter and the delegate
    require).

    Args:
        projections: ``{layer name: KernelProjection}`` from ``prune_model``,
            or ``{layer name: bool mask}`` with the kernel's shape.

    Example:

    >>> masks = prune_model(model)
    >>> model.fit(x, y, callbacks=[PatternMaskCallback(masks)])
    """

    def __init__(self, projections):
        super().__init__()
        self.masks = {
            name: np.asarray(getattr(p, "mask", p), dtype=bool)
            for name, p in projections.items()
        }
        self._targets = []

    def on_train_begin(self, logs=None):
        self._targets = []
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
            self._targets.append(
                (layer.kernel, keras.ops.convert_to_tensor(mask, layer.kernel.dtype))
            )
        self._apply()

    def on_train_batch_end(self, batch, logs=None):
        self._apply()

    def _apply(self):
        for kernel, mask in self._targets:
            kernel.assign(kernel * mask)

    def get_config(self):
        return {"projections": {k: v.tolist() for k, v in self.masks.items()}}


def conv_weight_density(model):
    """Fraction of non-zero weights over all 3×3 Conv2D kernels of a model."""
    kernels = [
        keras.ops.convert_to_numpy(layer.kernel)
        for layer in prunable_conv_layers(model)
    ]
    total = sum(k.size for k in kernels)
    return float(sum(np.count_nonzero(k) for k in kernels) / total) if total else 1.0
