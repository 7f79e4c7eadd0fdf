"""Wrapping a model for pattern pruning, and stripping it back to plain Keras.

Both work on Sequential and Functional models (residual ones included) by
cloning: ``prune_wrap`` replaces every planned layer by a
``PatternPruneWrapper`` around a copy of it; ``strip_pruning`` replaces every
wrapper by its inner layer with the masked weights, so the result is an
ordinary Keras model with zeros in place, which ``converter.convert`` turns
into a ``.tflite`` with the pattern LR.

Example:

>>> wrapped = prune_wrap(model, PatternPruningConfig(connectivity_rate=0.72))
>>> ...  # ADMM, hard_prune, fine-tune
>>> plain = strip_pruning(wrapped)
>>> info = pattern_info(wrapped)   # {layer: {"pattern_pool", "pattern_ids", ...}}

``prune_in_place`` is the same projection without wrappers, for models that
are not trained afterwards.
"""

import keras
import numpy as np

from cocopie_keras.sparsity.config import PatternPruningConfig
from cocopie_keras.sparsity.wrapper import PatternPruneWrapper


def pruning_wrappers(model):
    """The ``PatternPruneWrapper`` layers of ``model`` (nested models included)."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, PatternPruneWrapper)]


def _all_layers(model):
    return {layer.name: layer for layer in model._flatten_layers(include_self=False)}


def _copy_layer(layer):
    return layer.__class__.from_config(layer.get_config())


def prune_wrap(model, config=None):
    """Returns a copy of ``model`` whose planned layers are wrapped.

    The original model is left untouched; weights are copied. The pattern
    pool (``config.pattern_pool="model"``) is designed from the current
    weights, so wrap a trained model.

    Args:
        model: a built Sequential or Functional ``keras.Model``.
        config: a ``PatternPruningConfig`` (default: patterns only).

    Returns:
        The wrapped ``keras.Model`` (not compiled).

    Raises:
        ValueError: see ``PatternPruningConfig.resolve``; also if the model
            is already wrapped or no layer can be pruned.
    """
    config = PatternPruningConfig() if config is None else config
    if not isinstance(config, PatternPruningConfig):
        raise ValueError(
            f"Expected a PatternPruningConfig. Received: config of type {type(config).__name__}"
        )
    if isinstance(model, keras.Model) and model.built and pruning_wrappers(model):
        raise ValueError(f"Expected a model without pruning wrappers. Received: {model.name!r}")
    plans = {plan.layer.name: plan for plan in config.resolve(model)}
    if not plans:
        raise ValueError(
            "Expected at least one layer to prune. Received: a config that selects no "
            f"layer of model {model.name!r}"
        )

    def clone(layer):
        plan = plans.get(layer.name)
        if plan is None:
            return _copy_layer(layer)
        return PatternPruneWrapper(_copy_layer(layer), pattern_pool=plan.pool,
                                   connectivity_rate=plan.connectivity_rate,
                                   block_size=plan.block_size, group_size=plan.group_size)

    wrapped = keras.models.clone_model(model, clone_function=clone, recursive=True)
    originals = _all_layers(model)
    for layer in wrapped._flatten_layers(include_self=False):
        target = layer.layer if isinstance(layer, PatternPruneWrapper) else layer
        if isinstance(layer, keras.Model) or target.name not in originals:
            continue
        if target.weights:
            target.set_weights(originals[target.name].get_weights())
    return wrapped


def prune_in_place(model, config=None):
    """One-shot pruning without wrappers: projects the planned kernels in place.

    What ``hard_prune`` does to a wrapped model, done to ``model`` itself:
    every layer ``config`` plans gets the projection of its current weights
    (the same ``LayerPlan.project``) and keeps ``W·mask``. Nothing holds the
    masks afterwards, so use it where no training follows (benchmarks,
    measuring a projection, tools); to fine-tune, ``prune_wrap`` and the
    callbacks keep the zeros in place.

    Args:
        model: a built ``keras.Model`` (changed in place).
        config: a ``PatternPruningConfig`` (default: patterns only).

    Returns:
        ``{layer name: KernelProjection}`` for the pruned layers.

    Example:

    >>> config = PatternPruningConfig(connectivity_rate=0.72, pattern_pool="fixed")
    >>> projections = prune_in_place(model, config)
    """
    config = PatternPruningConfig() if config is None else config
    if not isinstance(config, PatternPruningConfig):
        raise ValueError(
            f"Expected a PatternPruningConfig. Received: config of type {type(config).__name__}"
        )
    projections = {}
    for plan in config.resolve(model):
        kernel = keras.ops.convert_to_numpy(plan.layer.kernel)
        projection = plan.project(kernel)
        plan.layer.kernel.assign(kernel * projection.mask)
        projections[plan.layer.name] = projection
    return projections


def strip_pruning(model):
    """A plain Keras copy of ``model`` with every wrapper replaced by its layer.

    Kernels hold ``W·mask`` (zeros in place). A model without wrappers (or
    anything that is not a Keras model) is returned as it is, so the converter
    can call this on every input.

    Example:

    >>> plain = strip_pruning(wrapped)
    >>> tflite_bytes = cocopie_keras.converter.convert(plain)
    """
    if not isinstance(model, keras.Model) or not model.built:
        return model
    wrappers = {w.layer.name: w for w in pruning_wrappers(model)}
    if not wrappers:
        return model

    def clone(layer):
        if isinstance(layer, PatternPruneWrapper):
            return _copy_layer(layer.layer)
        return _copy_layer(layer)

    plain = keras.models.clone_model(model, clone_function=clone, recursive=True)
    originals = {name: layer for name, layer in _all_layers(model).items()
                 if not isinstance(layer, PatternPruneWrapper)}
    for layer in plain._flatten_layers(include_self=False):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        layer.set_weights(originals[layer.name].get_weights())
        wrapper = wrappers.get(layer.name)
        if wrapper is not None:
            mask = keras.ops.convert_to_numpy(wrapper.pattern_mask)
            layer.kernel.assign(keras.ops.convert_to_numpy(layer.kernel) * mask)
    return plain


def pattern_info(model):
    """Pattern pool and per-kernel pattern ids of every wrapped layer.

    Returns:
        ``{layer name: {"kind", "pattern_pool", "pattern_ids",
        "connectivity_rate", "block_size", "density"}}`` (numpy arrays;
        ``pattern_ids`` uses ``patterns.REMOVED`` for removed kernels).
    """
    info = {}
    for wrapper in pruning_wrappers(model):
        mask = keras.ops.convert_to_numpy(wrapper.pattern_mask)
        info[wrapper.layer.name] = {
            "kind": "dense" if wrapper.is_dense else type(wrapper.layer).__name__,
            "pattern_pool": wrapper.pattern_pool.copy(),
            "pattern_ids": keras.ops.convert_to_numpy(wrapper.pattern_ids).copy(),
            "connectivity_rate": wrapper.connectivity_rate,
            "block_size": wrapper.block_size,
            "density": float(np.mean(mask != 0)),
            "pruned": wrapper.is_pruned,
        }
    return info
