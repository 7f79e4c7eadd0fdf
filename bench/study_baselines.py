"""Baselines of the MNIST / small-CIFAR pruning study (``cocogen_study.py``):
unstructured magnitude and L1 filter pruning at the pattern method's density or
MACs, their masks held at zero during training."""

import keras
import numpy as np

def conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def conv_macs(model):
    """Multiply-adds of the non-zero conv weights: Σ nnz(kernel) · H_out · W_out."""
    total = 0
    for layer in conv_layers(model):
        _, height, width, _ = layer.output.shape
        total += int(np.count_nonzero(keras.ops.convert_to_numpy(layer.kernel))) * height * width
    return int(total)


class MaskHold(keras.callbacks.Callback):
    """Study helper for the baselines: ``{(layer, weight): bool mask}`` held at zero
    after every batch (kernels and, for filter pruning, biases)."""

    def __init__(self, masks):
        super().__init__()
        self.masks = masks

    def _apply(self):
        for (name, attribute), mask in self.masks.items():
            variable = getattr(self.model.get_layer(name), attribute)
            variable.assign(variable * mask.astype("float32"))

    def on_train_begin(self, logs=None):
        self._apply()

    def on_train_batch_end(self, batch, logs=None):
        self._apply()


def magnitude_masks(model, densities):
    masks = {}
    for layer in conv_layers(model):
        kernel = np.abs(keras.ops.convert_to_numpy(layer.kernel)).ravel()
        keep = int(round(densities[layer.name] * kernel.size))
        mask = np.zeros(kernel.size, dtype=bool)
        mask[np.argsort(-kernel, kind="stable")[:keep]] = True
        masks[(layer.name, "kernel")] = mask.reshape(layer.kernel.shape)
    return masks


def filter_masks(model, target_macs):
    """L1 filter pruning with one keep ratio for every conv, chosen by bisection so
    the pruned network's conv MACs match ``target_macs``."""
    convs = conv_layers(model)

    def plan(keep_ratio):
        kept, macs, previous = {}, 0, None
        for layer in convs:
            _, height, width, out = layer.output.shape
            kept_out = max(1, int(round(keep_ratio * out)))
            kept_in = layer.kernel.shape[2] if previous is None else previous
            macs += 9 * kept_in * kept_out * height * width
            kept[layer.name], previous = kept_out, kept_out
        return kept, macs

    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if plan(middle)[1] < target_macs else (low, middle)
    kept, _ = plan(high)
    masks, previous_keep = {}, None
    for layer in convs:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        norms = np.abs(kernel).sum(axis=(0, 1, 2))
        keep_out = np.zeros(kernel.shape[3], dtype=bool)
        keep_out[np.argsort(-norms, kind="stable")[: kept[layer.name]]] = True
        mask = np.broadcast_to(keep_out, kernel.shape).copy()
        if previous_keep is not None:
            mask &= previous_keep[None, None, :, None]
        masks[(layer.name, "kernel")] = mask
        masks[(layer.name, "bias")] = keep_out
        previous_keep = keep_out
    return masks
