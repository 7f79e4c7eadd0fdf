"""ADMM pattern regularization during ``model.fit``, hard pruning, and masked
fine-tuning.

ADMM splits "W fits the data" from "W has the pattern structure": every
wrapped layer keeps ``Z`` (the projection of ``W + U`` onto patterns and
connectivity) and the scaled dual ``U``; the loss gets ``ρ/2·‖W − Z + U‖²``
(added by ``PatternPruneWrapper``), and every N epochs or steps this callback
updates ``Z ← Π(W + U)``, ``U ← U + W − Z`` and raises ρ (rescaling the
scaled dual ``U`` so that ``ρU`` is kept). All of that state, and ADMM's
clock (steps counted by the train step itself, epochs begun, where the last
update was), lives in the wrappers' variables, so a checkpoint taken
mid-ADMM (``ModelCheckpoint``, ``keras.callbacks.BackupAndRestore``, in
either order with this callback) resumes with the same ``Z``, ``U``, ρ,
pattern ids and counters: an update the checkpoint was written just before
is made up when training resumes, from the same weights.

Example:

>>> model = prune_wrap(dense_model, PatternPruningConfig(connectivity_rate=0.72))
>>> model.compile(...)
>>> model.fit(x, y, epochs=6, callbacks=[ADMMCallback(update_every=1)])
>>> hard_prune(model)
>>> model.compile(...)                   # fresh optimizer for fine-tuning
>>> model.fit(x, y, epochs=4, callbacks=[MaskedFineTuneCallback()])
"""

import keras
import numpy as np

from cocopie_keras.sparsity.wrapping import pruning_wrappers

PENALTIES = ("absolute", "direction")


@keras.saving.register_keras_serializable(package="cocopie_keras")
class RhoSchedule:
    """ρ for the k-th ADMM update: ``min(initial · multiplier**k, maximum)``.

    The pattern / connectivity constraint set is not convex, and ADMM then
    needs ρ large enough that ``W`` moves most of the way to ``Z − U`` between
    two updates. With a ρ far below that (e.g. 1e-3 against a mean
    cross-entropy), ``W`` barely moves, ``U`` piles up ``W − Z`` on the pruned
    cells, the projection of ``W + U`` picks those cells next time and about
    half of the kernels change pattern at every update. The default starts at
    0.1 (penalty gradient comparable to the loss gradient of a trained CNN)
    and grows 1.2× per update so the residual keeps shrinking.

    Args:
        initial: ρ of the first update, > 0.
        multiplier: growth per update, >= 1.
        maximum: cap on ρ.

    Example:

    >>> RhoSchedule(1e-3, 2.0, 1e-2)(3)
    0.008
    """

    def __init__(self, initial=0.1, multiplier=1.2, maximum=1.0):
        if not initial > 0:
            raise ValueError(f"Expected initial > 0. Received: initial={initial}")
        if not multiplier >= 1:
            raise ValueError(f"Expected multiplier >= 1. Received: multiplier={multiplier}")
        if not maximum >= initial:
            raise ValueError(
                f"Expected maximum >= initial. Received: maximum={maximum}, initial={initial}"
            )
        self.initial, self.multiplier, self.maximum = float(initial), float(multiplier), float(maximum)

    def __call__(self, update_index):
        return min(self.initial * self.multiplier ** int(update_index), self.maximum)

    def get_config(self):
        return {"initial": self.initial, "multiplier": self.multiplier, "maximum": self.maximum}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _wrappers_or_fail(model):
    wrappers = pruning_wrappers(model)
    if not wrappers:
        raise ValueError(
            "Expected a model wrapped by cocopie_keras.sparsity.prune_wrap. "
            f"Received: model {model.name!r} without PatternPruneWrapper layers"
        )
    return wrappers


class _PruningCallbackBase(keras.callbacks.Callback):
    """Attaches itself to the wrappers for the length of one ``fit``."""

    adds_admm_loss = False

    def on_train_begin(self, logs=None):
        self._wrappers = _wrappers_or_fail(self.model)
        for wrapper in self._wrappers:
            wrapper._pruning_callback = self
        # The train step must be traced with this callback attached (the
        # ADMM loss is added or not at trace time): rebuild it.
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        for wrapper in self._wrappers:
            wrapper._pruning_callback = None
        # A later fit without a pruning callback must trace again (and fail).
        self.model.train_function = None


@keras.saving.register_keras_serializable(package="cocopie_keras")
class ADMMCallback(_PruningCallbackBase):
    """Drives ADMM pattern regularization during ``fit``.

    Args:
        update_every: ``Z``/``U`` update period (>= 1), counted in the
            wrappers' variables: over every ``fit`` of the model and across
            a checkpoint restore.
        update_unit: ``"epoch"`` or ``"step"``.
        rho: a ``RhoSchedule`` (or a float for a constant ρ).
        log_dir: optional TensorBoard directory: per layer residual,
            pattern change, sparsity, and a pattern-id histogram per update.
        verbose: 1 prints one line per update with the worst layer.
        penalty: ``"absolute"`` penalizes ``ρ/2·‖W − Z + U‖²``;
            ``"direction"`` penalizes the kernel's direction,
            ``ρ/2·‖W/‖W‖ − Z + U‖²``, with ``Z`` and ``U`` in those unit-norm
            terms, for layers followed by a normalization (below).

    Attributes:
        history: one dict per update: ``step``, ``rho`` and ``layers``
            (``{name: {"residual", "relative_residual", "pattern_change",
            "sparsity"}}``).

    The optimizer of the ADMM phase matters. ρ sets the per-weight pull
    ``ρ(W − Z + U)``, but Adam divides every weight's step by its own gradient
    scale, so a weight the penalty dominates moves about one learning rate
    per step whatever ρ is: with Adam, W converges to Z slowly (MNIST-5k,
    ``bench/cocogen_study.md``: relative residual 0.17 after 10 epoch-wise
    updates) and step-wise updates make half of the kernels flip pattern at
    every update. With SGD + momentum the pull scales with ρ and W follows Z,
    so step-wise updates (e.g. every 16 steps, ρ growth 1.047) converge
    within the phase.

    A kernel followed by BatchNormalization gives the same output at any
    scale, and the loss gradient cannot stop it from shrinking: the absolute
    penalty pulls the pruned weights (most of them) to zero, the whole kernel
    shrinks with them, and SGD's effective step grows as 1/‖W‖². On the
    CIFAR-10 network of ``bench/cifar10_study.py`` two ADMM epochs shrank the
    kernels 2.6–3× (‖W‖ 4.4–9.4 → 1.7–3.2), the validation accuracy of the
    unpruned weights fell from 90 % to 56 % and 46 % of the kernels changed
    pattern at every update. The direction penalty's gradient is orthogonal
    to ``W`` (it cannot change the scale), and it falls as 1/‖W‖ like the
    loss gradient of such a layer, so ρ weighs the penalty against the loss
    alike in every layer whatever its scale. In its units ρ is about ‖W‖² times the absolute ρ
    that pulls as hard (tens for the kernels above). Keep one penalty for the
    whole ADMM phase: ``Z`` and ``U`` are in its units.

    Epoch logs gain ``admm_residual`` (sum over layers of ‖W − Z‖),
    ``admm_relative_residual`` (largest per layer) and ``admm_pattern_change``
    (mean over layers), shown by Keras's progress bar and kept in History.

    Example:

    >>> model.fit(x, y, epochs=6, callbacks=[ADMMCallback(rho=RhoSchedule(0.1, 1.2))])
    >>> # Resumable after a crash; the two callbacks may come in either order.
    >>> model.fit(x, y, epochs=6, callbacks=[
    ...     keras.callbacks.BackupAndRestore("backup"), ADMMCallback()])
    """

    adds_admm_loss = True

    def __init__(self, update_every=1, update_unit="epoch", rho=None, log_dir=None, verbose=0,
                 penalty="absolute"):
        super().__init__()
        if penalty not in PENALTIES:
            raise ValueError(f"Expected penalty in {PENALTIES}. Received: penalty={penalty!r}")
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"Expected update_every >= 1. Received: update_every={update_every!r}")
        if update_unit not in ("epoch", "step"):
            raise ValueError(
                f"Expected update_unit 'epoch' or 'step'. Received: update_unit={update_unit!r}"
            )
        if rho is None:
            rho = RhoSchedule()
        elif isinstance(rho, (int, float)):
            rho = RhoSchedule(rho, 1.0, rho)
        self.update_every, self.update_unit, self.rho = update_every, update_unit, rho
        self.log_dir, self.verbose, self.penalty = log_dir, verbose, penalty
        if update_unit == "step":
            # Only step-based updates need a per-batch hook: any batch hook
            # makes Keras synchronize after every step, which costs time.
            self.on_train_batch_end = self._on_step_end
        self.history = []
        self._writer = None
        self._wrappers = []

    def get_config(self):
        return {"update_every": self.update_every, "update_unit": self.update_unit,
                "rho": self.rho.get_config(), "log_dir": self.log_dir, "verbose": self.verbose,
                "penalty": self.penalty}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["rho"] = RhoSchedule.from_config(config["rho"])
        return cls(**config)

    def on_train_begin(self, logs=None):
        wrappers = _wrappers_or_fail(self.model)
        done = [w.layer.name for w in wrappers if w.is_pruned]
        if done:
            raise ValueError(
                "Expected layers not yet hard-pruned for ADMM. Received: pruned layers "
                f"{done} (use MaskedFineTuneCallback after hard_prune)"
            )
        super().on_train_begin(logs)
        if self.log_dir and self._writer is None:
            from cocopie_keras.sparsity import summaries

            self._writer = summaries.PruningSummaryWriter(self.log_dir)
        # The state is read at the first epoch, not here: a BackupAndRestore
        # later in the callback list restores it in its own on_train_begin.

    def _on_step_end(self, batch, logs=None):
        if self._update_due():
            self._update()

    def on_epoch_begin(self, epoch, logs=None):
        # Z ← Π(W), U ← 0 before the first step; after a restore, the update
        # the checkpoint was written before (if any).
        if self._update_due():
            self._update()
        for wrapper in self._wrappers:
            wrapper.admm_epochs.assign_add(1)

    def on_epoch_end(self, epoch, logs=None):
        if self.update_unit == "epoch" and self._update_due():
            self._update()
        if logs is not None and self.history:
            layers = self.history[-1]["layers"].values()
            logs["admm_residual"] = float(sum(r["residual"] for r in layers))
            logs["admm_relative_residual"] = float(max(r["relative_residual"] for r in layers))
            logs["admm_pattern_change"] = float(np.mean([r["pattern_change"] for r in layers]))

    def on_train_end(self, logs=None):
        # A fit resumed after its last epoch's checkpoint runs no epoch.
        if self._counter("admm_updates") > 0 and self._update_due():
            self._update()
        super().on_train_end(logs)
        if self._writer is not None:
            self._writer.flush()

    def _counter(self, name):
        """The largest value of a counter over the wrappers (all agree, unless a
        wrapped layer was not called in some steps)."""
        return max(int(keras.ops.convert_to_numpy(getattr(w, name))) for w in self._wrappers)

    def _update_due(self):
        """Whether the next Z/U update is due, from the wrappers' variables only."""
        if self._counter("admm_updates") == 0:
            return True
        if self.update_unit == "epoch":
            since = self._counter("admm_epochs") - self._counter("admm_update_epoch")
        else:
            since = self._counter("admm_steps") - self._counter("admm_update_step")
        return since >= self.update_every

    def _update(self):
        index = self._counter("admm_updates")
        steps, epochs = self._counter("admm_steps"), self._counter("admm_epochs")
        rho = self.rho(index)
        direction = self.penalty == "direction"
        records = {w.layer.name: w.admm_update(rho, direction) for w in self._wrappers}
        for wrapper in self._wrappers:
            wrapper.admm_steps.assign(steps)
            wrapper.admm_update_step.assign(steps)
            wrapper.admm_update_epoch.assign(epochs)
        entry = {"update": index, "step": steps, "rho": rho, "layers": records}
        self.history.append(entry)
        if self._writer is not None:
            self._writer.write_admm(entry, self._wrappers)
        if self.verbose:
            worst = max(records, key=lambda name: records[name]["relative_residual"])
            print(f"ADMM update {index}: rho={rho:.3g}, worst relative residual "
                  f"{records[worst]['relative_residual']:.4f} ({worst})")


@keras.saving.register_keras_serializable(package="cocopie_keras")
class MaskedFineTuneCallback(_PruningCallbackBase):
    """Keeps hard-pruned weights at exactly zero while fine-tuning.

    The kernels' ``MaskConstraint`` masks every optimizer update; Keras
    applies constraints only to variables that received a gradient, so this
    callback also masks every kernel when training starts and ends (a frozen
    or unused layer stays pruned too), and checks that ``hard_prune`` ran.

    Example:

    >>> hard_prune(model)
    >>> model.fit(x, y, callbacks=[MaskedFineTuneCallback()])
    """

    def on_train_begin(self, logs=None):
        wrappers = _wrappers_or_fail(self.model)
        pending = [w.layer.name for w in wrappers if not w.is_pruned]
        if pending:
            raise ValueError(
                "Expected hard_prune(model) before masked fine-tuning. Received: "
                f"layers not pruned yet: {pending}"
            )
        super().on_train_begin(logs)
        for wrapper in self._wrappers:
            wrapper.apply_mask()

    def on_train_end(self, logs=None):
        for wrapper in self._wrappers:
            wrapper.apply_mask()
        super().on_train_end(logs)

    def get_config(self):
        return {}


def hard_prune(model):
    """Imposes patterns and connectivity on every wrapped layer, in place.

    Each kernel is projected (max retained L2 norm pattern, then the weakest
    kernels removed), multiplied by its mask, and the mask is fixed for
    fine-tuning; ρ is set to 0.

    Returns:
        ``{layer name: KernelProjection}``.
    """
    return {w.layer.name: w.hard_prune() for w in _wrappers_or_fail(model)}
