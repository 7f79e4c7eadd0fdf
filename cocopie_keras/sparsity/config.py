"""Whole-model pattern pruning configuration and its resolution to layers.

``PatternPruningConfig`` says *what* to prune (which layers, at which
connectivity rates, with which pattern pool); ``resolve(model)`` checks it
against a built model and returns one ``LayerPlan`` per layer to wrap. Every
bad input is refused here, before any training starts.

Example:

>>> config = PatternPruningConfig(connectivity_rate=0.72, skip_first_conv=True,
...                               layer_rates={"conv4": 0.5})
>>> plans = config.resolve(model)
"""

import dataclasses

import keras
import numpy as np

from cocopie_keras import patterns as patterns_lib

SUPPORTED_TYPES = ("Conv2D", "DepthwiseConv2D", "Dense")
POOL_SOURCES = ("model", "fixed")


@dataclasses.dataclass
class LayerPlan:
    """How one layer is pruned.

    Attributes:
        layer: the Keras layer.
        kind: ``"conv"`` (Conv2D / DepthwiseConv2D) or ``"dense"``.
        pool: bool ``(P, kh, kw)`` pattern pool (for Dense: one block; for a
            1×1 conv the single one-cell pattern: connectivity alone).
        connectivity_rate: fraction of kernels (blocks) removed.
        block_size: Dense only, ``(bh, bw)``.
        group_size: conv only, output channels sharing a pattern (1: none).
    """

    layer: object
    kind: str
    pool: np.ndarray
    connectivity_rate: float
    block_size: tuple = None
    group_size: int = 1

    def project(self, weights):
        """The projection of kernel-shaped ``weights`` this plan asks for.

        Wrappers (ADMM, ``hard_prune``) and ``prune_in_place`` all project
        through here, onto ``patterns.project_kernel`` (Dense: by blocks).
        """
        weights = np.asarray(weights)
        if self.kind == "dense":
            return patterns_lib.project_dense(weights, self.pool, self.block_size,
                                              self.connectivity_rate)
        return patterns_lib.project_kernel(
            weights, self.pool, self.connectivity_rate, group_size=self.group_size,
            depthwise=isinstance(self.layer, keras.layers.DepthwiseConv2D))


def _is_pointwise(layer):
    return (isinstance(layer, keras.layers.Conv2D)
            and not isinstance(layer, keras.layers.DepthwiseConv2D)
            and tuple(layer.kernel_size) == (1, 1))


def _layer_type(layer):
    """The supported class name ``layer`` is an instance of, else ``None``."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "DepthwiseConv2D"
    if isinstance(layer, keras.layers.Conv2D):
        return "Conv2D"
    if isinstance(layer, keras.layers.Dense):
        return "Dense"
    return None


@keras.saving.register_keras_serializable(package="cocopie_keras")
class PatternPruningConfig:
    """What to pattern-prune in a model, serializable with the model.

    Args:
        connectivity_rate: fraction of each Conv2D layer's kernels removed,
            in ``[0, 1)``; layers with one input channel are exempt.
        entries: cells each pattern keeps (4 for 3×3 kernels by default).
        num_patterns: pool size ``K`` per kernel size.
        pattern_pool: ``"model"`` (the K most frequent shapes of the trained
            kernels, PatDNN style), ``"fixed"`` (``fixed_pattern_pool``), or a
            bool ``(P, kh, kw)`` array / nested list given by the user.
        skip_first_conv: leave the first prunable convolution dense.
        skip_layers: names of layers to leave dense.
        skip_types: layer class names to leave dense, among
            ``"Conv2D", "DepthwiseConv2D", "Dense"``.
        layer_rates: ``{name: rate}`` per-layer connectivity rates (also the
            only way to remove DepthwiseConv2D kernels, which would delete
            whole channels).
        dense_block_size: ``(bh, bw)`` to also prune Dense kernels by blocks;
            ``None`` leaves Dense layers alone.
        dense_entries: cells kept per Dense block; ``bh * bw`` keeps kept
            blocks whole (block connectivity pruning alone, the structure the
            delegate's sparse FULLY_CONNECTED kernel streams best).
        dense_connectivity_rate: fraction of Dense blocks removed.
        pointwise_connectivity_rate: fraction of the weights of every 1×1
            Conv2D removed (a 1×1 kernel is one weight: connectivity pruning
            alone, in groups of ``group_size`` output channels); 0 leaves
            1×1 convs dense.
        group_size: consecutive output channels (depthwise: channels) that
            share one pattern per input channel and are removed together; 1
            (default) lets every kernel pick its own pattern, 32 is what the
            delegate's block kernel runs without a wasted multiply.

    Example:

    >>> config = PatternPruningConfig(connectivity_rate=0.72)
    >>> same = PatternPruningConfig.from_config(config.get_config())
    """

    def __init__(self, connectivity_rate=0.0, entries=4, num_patterns=8,
                 pattern_pool="model", skip_first_conv=False, skip_layers=(),
                 skip_types=(), layer_rates=None, dense_block_size=None,
                 dense_entries=None, dense_connectivity_rate=0.0, group_size=1,
                 pointwise_connectivity_rate=0.0):
        patterns_lib.check_rate(connectivity_rate)
        patterns_lib.check_group_size(group_size)
        patterns_lib.check_rate(dense_connectivity_rate, "dense_connectivity_rate")
        patterns_lib.check_rate(pointwise_connectivity_rate, "pointwise_connectivity_rate")
        if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
            raise ValueError(f"Expected entries to be a positive int. Received: entries={entries!r}")
        if isinstance(num_patterns, bool) or not isinstance(num_patterns, int) or not 1 <= num_patterns <= 254:
            raise ValueError(
                f"Expected num_patterns in [1, 254]. Received: num_patterns={num_patterns!r}"
            )
        if isinstance(pattern_pool, str):
            if pattern_pool not in POOL_SOURCES:
                raise ValueError(
                    f"Expected pattern_pool in {POOL_SOURCES} or an array of "
                    f"patterns. Received: pattern_pool={pattern_pool!r}"
                )
        else:
            pattern_pool = patterns_lib.validate_pattern_pool(np.asarray(pattern_pool))
        unknown_types = sorted(set(skip_types) - set(SUPPORTED_TYPES))
        if unknown_types:
            raise ValueError(
                f"Expected skip_types among {SUPPORTED_TYPES}. Received: skip_types={unknown_types}"
            )
        layer_rates = dict(layer_rates or {})
        for name, rate in layer_rates.items():
            patterns_lib.check_rate(rate, f"layer_rates[{name!r}]")
        if dense_block_size is not None:
            dense_block_size = tuple(int(v) for v in dense_block_size)
            if len(dense_block_size) != 2:
                raise ValueError(
                    f"Expected dense_block_size=(bh, bw). Received: dense_block_size={dense_block_size}"
                )
            if min(dense_block_size) < 1:
                raise ValueError(
                    f"Expected a positive dense_block_size. Received: dense_block_size={dense_block_size}"
                )
            cells = dense_block_size[0] * dense_block_size[1]
            dense_entries = dense_entries or max(1, cells // 2)
            if dense_entries != cells:  # bh * bw: whole blocks, no pattern inside
                patterns_lib.check_entries(dense_block_size, dense_entries)
        self.connectivity_rate = float(connectivity_rate)
        self.entries = entries
        self.num_patterns = num_patterns
        self.pattern_pool = pattern_pool
        self.skip_first_conv = bool(skip_first_conv)
        self.skip_layers = tuple(skip_layers)
        self.skip_types = tuple(skip_types)
        self.layer_rates = layer_rates
        self.dense_block_size = dense_block_size
        self.dense_entries = dense_entries
        self.dense_connectivity_rate = float(dense_connectivity_rate)
        self.group_size = group_size
        self.pointwise_connectivity_rate = float(pointwise_connectivity_rate)

    def get_config(self):
        pool = self.pattern_pool
        return {
            "connectivity_rate": self.connectivity_rate,
            "entries": self.entries,
            "num_patterns": self.num_patterns,
            "pattern_pool": pool if isinstance(pool, str) else pool.astype(int).tolist(),
            "skip_first_conv": self.skip_first_conv,
            "skip_layers": list(self.skip_layers),
            "skip_types": list(self.skip_types),
            "layer_rates": dict(self.layer_rates),
            "dense_block_size": None if self.dense_block_size is None else list(self.dense_block_size),
            "dense_entries": self.dense_entries,
            "dense_connectivity_rate": self.dense_connectivity_rate,
            "group_size": self.group_size,
            "pointwise_connectivity_rate": self.pointwise_connectivity_rate,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, PatternPruningConfig) and self.get_config() == other.get_config()

    def resolve(self, model):
        """Checks the config against ``model`` and plans every pruned layer.

        Returns:
            list of ``LayerPlan`` in the model's layer order.

        Raises:
            ValueError: the model is not built; a named layer is missing, is
                not a Conv2D / DepthwiseConv2D / Dense layer, or has fewer
                kernel cells than ``entries``; a user pool does not match.
        """
        if not isinstance(model, keras.Model):
            raise ValueError(f"Expected a keras.Model. Received: {type(model).__name__}")
        if not model.built:
            raise ValueError(
                f"Expected a built model. Received: model {model.name!r} is not "
                "built (give it an Input or call it on data first)"
            )
        layers = [layer for layer in model._flatten_layers(include_self=False)
                  if not isinstance(layer, keras.Model)]
        by_name = {layer.name: layer for layer in layers}
        for source, names in (("skip_layers", self.skip_layers), ("layer_rates", self.layer_rates)):
            missing = [name for name in names if name not in by_name]
            if missing:
                raise ValueError(
                    f"Expected {source} to name layers of the model. Received: "
                    f"{source}={missing} (model layers: {sorted(by_name)})"
                )
        for name in self.layer_rates:
            self._check_named_layer(by_name[name])

        chosen = []
        first_conv_seen = False
        for layer in layers:
            kind = _layer_type(layer)
            if kind is None or not self._is_candidate(layer, kind):
                continue
            if kind != "Dense" and not first_conv_seen:
                first_conv_seen = True
                if self.skip_first_conv and layer.name not in self.layer_rates:
                    continue
            if layer.name in self.skip_layers or kind in self.skip_types:
                continue
            chosen.append((layer, kind))
        pools = self._pools(chosen)
        plans = []
        for layer, kind in chosen:
            kernel_shape = tuple(layer.kernel.shape)
            if kind == "Dense":
                rate = self.layer_rates.get(layer.name, self.dense_connectivity_rate)
                plans.append(LayerPlan(layer, "dense", pools[self.dense_block_size], rate,
                                       self.dense_block_size))
                continue
            default = self.connectivity_rate if kind == "Conv2D" else 0.0
            if _is_pointwise(layer):
                default = self.pointwise_connectivity_rate
            rate = self.layer_rates.get(layer.name, default)
            if kernel_shape[2] == 1 and layer.name not in self.layer_rates:
                rate = 0.0  # one input channel: removing kernels removes filters
            plans.append(LayerPlan(layer, "conv", pools[kernel_shape[:2]], rate,
                                   group_size=self.group_size))
        return plans

    def _is_candidate(self, layer, kind):
        if not layer.built:
            return False
        if kind == "Dense":
            if self.dense_block_size is None:
                return False
            bh, bw = self.dense_block_size
            rows, cols = layer.kernel.shape
            return rows % bh == 0 and cols % bw == 0
        if getattr(layer, "groups", 1) != 1:
            return False
        if _is_pointwise(layer):
            return self.pointwise_connectivity_rate > 0 or layer.name in self.layer_rates
        kh, kw = layer.kernel_size
        return kh * kw > self.entries

    def _check_named_layer(self, layer):
        kind = _layer_type(layer)
        if kind is None:
            raise ValueError(
                f"Expected a Conv2D, DepthwiseConv2D or Dense layer. Received: layer "
                f"{layer.name!r} of type {type(layer).__name__}, which cannot be pattern-pruned"
            )
        if kind == "Dense":
            if self.dense_block_size is None:
                raise ValueError(
                    f"Expected dense_block_size to prune Dense layer {layer.name!r}. "
                    "Received: dense_block_size=None"
                )
            patterns_lib.dense_to_blocks(np.zeros(layer.kernel.shape), self.dense_block_size)
            return
        if getattr(layer, "groups", 1) != 1:
            raise ValueError(
                f"Expected groups=1. Received: layer {layer.name!r} with groups={layer.groups}"
            )
        if _is_pointwise(layer):
            return
        patterns_lib.check_entries(layer.kernel_size, self.entries)

    def _pools(self, chosen):
        """One pool per kernel size (and one for Dense blocks)."""
        groups = {}
        for layer, kind in chosen:
            size = self.dense_block_size if kind == "Dense" else tuple(layer.kernel.shape[:2])
            groups.setdefault(size, []).append((layer, kind))
        pools = {}
        for size, members in groups.items():
            is_dense = members[0][1] == "Dense"
            entries = self.dense_entries if is_dense else self.entries
            if (size == (1, 1) and not is_dense) or (is_dense and entries == size[0] * size[1]):
                pools[size] = np.ones((1,) + size, dtype=bool)  # connectivity alone
            elif not isinstance(self.pattern_pool, str) and not is_dense:
                if self.pattern_pool.shape[1:] != size:
                    raise ValueError(
                        f"Expected the given pattern_pool to match kernel size {size} of "
                        f"layers {[m[0].name for m in members]}. Received: pool patterns "
                        f"of size {self.pattern_pool.shape[1:]}"
                    )
                pools[size] = self.pattern_pool
            elif self.pattern_pool == "model":
                kernels = []
                for layer, kind in members:
                    kernel = keras.ops.convert_to_numpy(layer.kernel)
                    kernels.append(patterns_lib.dense_to_blocks(kernel, size) if kind == "Dense"
                                   else kernel)
                pools[size] = patterns_lib.design_pattern_pool(kernels, self.num_patterns, entries)
            else:
                pools[size] = patterns_lib.fixed_pattern_pool(size, entries, self.num_patterns)
        return pools
