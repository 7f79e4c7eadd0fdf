"""``PatternPruneWrapper``: a Conv2D / DepthwiseConv2D / Dense layer with its
pattern-pruning state (mask, ADMM ``Z`` and ``U``, ρ, pattern ids) held in
non-trainable variables, so it saves to ``.keras`` and resumes exactly.

The wrapper changes nothing in the forward pass. While ADMM runs it adds
``ρ/2·‖W − Z + U‖²`` to the model's losses; after ``hard_prune`` the kernel
variable carries a constraint that multiplies it by the mask after every
optimizer step. It refuses to train without one of the callbacks of
``cocopie_keras.sparsity`` (they drive ``Z``/``U`` and re-apply masks to
kernels that received no gradient).

Example:

>>> wrapped = PatternPruneWrapper(keras.layers.Conv2D(16, 3),
...                               pattern_pool=fixed_pattern_pool(), connectivity_rate=0.5)
"""

import keras
import numpy as np

from cocopie_keras import patterns as patterns_lib
from cocopie_keras.sparsity.config import LayerPlan

UNSET = -2
"""Pattern id before the first projection."""

_OWN_VARIABLES_BEFORE_COUNTERS = 8
"""Own variables of a wrapper saved before the ADMM epoch and update counters."""


class MaskConstraint:
    """Kernel constraint ``W ↦ mask · inner(W)`` (``inner`` is the layer's own
    constraint, if any). Set on the variable, never serialized: the wrapper
    sets it again whenever it is built."""

    def __init__(self, mask, inner=None):
        self.mask = mask
        self.inner = inner

    def __call__(self, weights):
        if self.inner is not None:
            weights = self.inner(weights)
        return weights * keras.ops.cast(self.mask, weights.dtype)


@keras.saving.register_keras_serializable(package="cocopie_keras")
class PatternPruneWrapper(keras.layers.Wrapper):
    """Pattern + connectivity pruning state around one layer.

    Args:
        layer: a ``Conv2D`` (groups=1), ``DepthwiseConv2D`` or ``Dense`` layer.
        pattern_pool: bool ``(P, kh, kw)`` (for Dense: the block's patterns).
        connectivity_rate: fraction of kernels (Dense: blocks) removed.
        block_size: Dense only, ``(bh, bw)``.
        group_size: Conv2D / DepthwiseConv2D only: consecutive output
            channels that share one pattern per input channel and are removed
            together (``patterns.project_kernel``; 1 = every kernel its own).
        **kwargs: base layer arguments (``name``...).

    Example:

    >>> config = PatternPruningConfig(connectivity_rate=0.5)
    >>> model = prune_wrap(model, config)   # wraps every planned layer
    """

    def __init__(self, layer, pattern_pool, connectivity_rate=0.0, block_size=None,
                 group_size=1, **kwargs):
        kwargs.setdefault("name", f"pattern_prune_{layer.name}")
        super().__init__(layer, **kwargs)
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.Dense)):
            raise ValueError(
                "Expected a Conv2D, DepthwiseConv2D or Dense layer. Received: "
                f"layer {layer.name!r} of type {type(layer).__name__}"
            )
        self.is_dense = isinstance(layer, keras.layers.Dense)
        if self.is_dense and block_size is None:
            raise ValueError(f"Expected block_size for Dense layer {layer.name!r}. Received: None")
        self.pattern_pool = patterns_lib.validate_pattern_pool(np.asarray(pattern_pool))
        patterns_lib.check_rate(connectivity_rate)
        self.connectivity_rate = float(connectivity_rate)
        self.block_size = None if block_size is None else tuple(int(v) for v in block_size)
        patterns_lib.check_group_size(group_size)
        self.group_size = group_size
        self._plan = LayerPlan(layer, "dense" if self.is_dense else "conv", self.pattern_pool,
                               self.connectivity_rate, self.block_size, group_size)
        self._pruning_callback = None  # the callback of the fit in progress, if any

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel = self.layer.kernel
        shape = tuple(kernel.shape)
        grid = self._grid_shape(shape)
        def state(name, shape, dtype, value):
            return self.add_weight(name=name, shape=shape, dtype=dtype, trainable=False,
                                   initializer=keras.initializers.Constant(value))

        self.pattern_mask = state("pattern_mask", shape, kernel.dtype, 1.0)
        self.admm_z = state("admm_z", shape, kernel.dtype, 0.0)
        self.admm_u = state("admm_u", shape, kernel.dtype, 0.0)
        self.admm_rho = state("admm_rho", (), "float32", 0.0)
        self.pattern_ids = state("pattern_ids", grid, "int32", UNSET)
        self.admm_updates = state("admm_updates", (), "int64", 0)
        self.admm_steps = state("admm_steps", (), "int64", 0)
        self.pruned = state("pruned", (), "int32", 0)
        # ADMM's clock, kept here so that any checkpoint of the model carries
        # it: admm_steps counts train steps (in the train step itself),
        # admm_epochs the epochs begun; the update_* pair is where the last
        # Z/U update happened on each. Derived from these, a missed update is
        # seen and made up after a restore (ADMMCallback).
        self.admm_epochs = state("admm_epochs", (), "int64", 0)
        self.admm_update_step = state("admm_update_step", (), "int64", 0)
        self.admm_update_epoch = state("admm_update_epoch", (), "int64", 0)
        constraint = kernel.constraint
        if isinstance(constraint, MaskConstraint):
            constraint = constraint.inner
        kernel.constraint = MaskConstraint(self.pattern_mask, constraint)
        self.built = True

    def _grid_shape(self, shape):
        if self.is_dense:
            bh, bw = self.block_size
            if shape[0] % bh or shape[1] % bw:
                raise ValueError(
                    f"Expected Dense kernel {shape} divisible into blocks {self.block_size}. "
                    f"Received: layer {self.layer.name!r}"
                )
            return (shape[0] // bh, shape[1] // bw)
        if shape[:2] != self.pattern_pool.shape[1:]:
            raise ValueError(
                f"Expected layer {self.layer.name!r} to have kernel size "
                f"{self.pattern_pool.shape[1:]} like its pattern pool. Received: {shape[:2]}"
            )
        return shape[2:]

    def call(self, inputs, training=None):
        if training:
            callback = self._pruning_callback
            if callback is None:
                raise ValueError(
                    f"Expected a pruning callback while training {self.name!r}: pass "
                    "cocopie_keras.sparsity.ADMMCallback() or MaskedFineTuneCallback() "
                    "to fit(). Received: no such callback"
                )
            if callback.adds_admm_loss:
                # ρ/2·‖W − Z + U‖²; its gradient ρ(W − Z + U) pulls W to Z − U.
                # The direction penalty puts W/‖W‖ in W's place (ADMMCallback).
                kernel = self.layer.kernel
                if callback.penalty == "direction":
                    norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(kernel)))
                    kernel = kernel / keras.ops.maximum(norm, 1e-12)
                gap = kernel - self.admm_z + self.admm_u
                self.add_loss(0.5 * self.admm_rho * keras.ops.sum(keras.ops.square(gap)))
                # Counted by the step itself: a checkpoint taken at any point
                # (BackupAndRestore, ModelCheckpoint) holds the exact count.
                self.admm_steps.assign_add(1)
        return self.layer(inputs)

    def load_own_variables(self, store):
        if len(store.keys()) != _OWN_VARIABLES_BEFORE_COUNTERS:
            return super().load_own_variables(store)
        # A file saved before the epoch/update counters existed: load what it
        # has, and count the next update period from the saved step (the
        # period is the callback's, unknown here).
        own = self._trainable_variables + self._non_trainable_variables
        for index, variable in enumerate(own[:_OWN_VARIABLES_BEFORE_COUNTERS]):
            variable.assign(store[f"{index}"])
        self.admm_update_step.assign(self.admm_steps)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "pattern_pool": self.pattern_pool.astype(int).tolist(),
            "connectivity_rate": self.connectivity_rate,
            "block_size": None if self.block_size is None else list(self.block_size),
            "group_size": self.group_size,
        })
        return config

    # --- host-side operations, run by the callbacks and by hard_prune ---------------------
    @property
    def kernel(self):
        """The wrapped layer's kernel variable."""
        return self.layer.kernel

    @property
    def is_pruned(self):
        return bool(keras.ops.convert_to_numpy(self.pruned))

    def project(self, weights):
        """Pattern + connectivity projection of ``weights`` (kernel-shaped)."""
        return self._plan.project(weights)

    def admm_update(self, rho, direction=False):
        """One ADMM step: ``Z ← Π(W + U)``, ``U ← (U + W − Z)·ρ_old/ρ``; sets ρ.

        ``U`` is the scaled dual (``λ = ρU``), so it is rescaled when ρ
        changes. On the first call (no update yet) ``Z ← Π(W)`` and ``U ← 0``.
        With ``direction``, ``W/‖W‖`` stands for ``W`` (the direction
        penalty of ``ADMMCallback``).

        Returns:
            dict with ``residual`` ‖W − Z‖, ``relative_residual`` ‖W − Z‖/‖W‖,
            ``pattern_change`` (fraction of kernels whose pattern id changed;
            removed counts as a pattern) and ``sparsity`` of ``Z``.
        """
        if not rho > 0:
            raise ValueError(f"Expected rho > 0. Received: rho={rho!r}")
        weights = keras.ops.convert_to_numpy(self.kernel).astype(np.float64)
        if direction:
            weights = weights / max(float(np.linalg.norm(weights)), 1e-12)
        first = int(keras.ops.convert_to_numpy(self.admm_updates)) == 0
        dual = 0.0 if first else keras.ops.convert_to_numpy(self.admm_u).astype(np.float64)
        target = weights + dual
        projection = self.project(target)
        z = target * projection.mask
        u = np.zeros_like(z) if first else target - z  # U + W − Z; U starts at 0
        if not first:
            # U is the dual scaled by 1/ρ (λ = ρU): when ρ changes, rescale U
            # so λ is kept. Without this, every ρ increase inflates the dual
            # by the growth factor and the projection of W + U flips patterns.
            previous_rho = float(keras.ops.convert_to_numpy(self.admm_rho))
            u *= previous_rho / float(rho)
        previous = keras.ops.convert_to_numpy(self.pattern_ids)
        changed = 1.0 if first else float(np.mean(previous != projection.pattern_ids))
        self.admm_z.assign(z.astype(self.admm_z.dtype))
        self.admm_u.assign(u.astype(self.admm_u.dtype))
        self.pattern_ids.assign(projection.pattern_ids)
        self.admm_updates.assign_add(1)
        self.admm_rho.assign(float(rho))
        residual = float(np.linalg.norm(weights - z))
        return {
            "residual": residual,
            "relative_residual": residual / max(float(np.linalg.norm(weights)), 1e-12),
            "pattern_change": changed,
            "sparsity": float(1.0 - projection.mask.mean()),
        }

    def hard_prune(self):
        """Fixes the mask, ids and ``W·mask``; ρ ← 0.

        After ADMM the mask is the support of ``Z``, the point of the
        constraint set ADMM chose (its last ``Π(W + U)``), as the method
        prescribes; re-projecting ``W`` instead gave 8–23 % of the kernels
        another pattern than ADMM had settled on. Without any ADMM update the
        current weights are projected.
        """
        admm_ran = int(keras.ops.convert_to_numpy(self.admm_updates)) > 0
        source = self.admm_z if admm_ran else self.kernel
        projection = self.project(keras.ops.convert_to_numpy(source))
        self.pattern_mask.assign(projection.mask.astype(self.pattern_mask.dtype))
        self.pattern_ids.assign(projection.pattern_ids)
        self.admm_rho.assign(0.0)
        self.pruned.assign(1)
        self.apply_mask()
        return projection

    def apply_mask(self):
        """``W ← W·mask`` (also for kernels the optimizer did not touch)."""
        self.kernel.assign(self.kernel * keras.ops.cast(self.pattern_mask, self.kernel.dtype))

    def masks_hold(self):
        """True when every weight outside the mask is exactly zero."""
        kernel = keras.ops.convert_to_numpy(self.kernel)
        mask = keras.ops.convert_to_numpy(self.pattern_mask).astype(bool)
        return not np.any(kernel[~mask])
