"""The ADMM phase of the MNIST / small-CIFAR pruning study (``cocogen_study.py``)
under named variants (optimizer, Z/U update period, rho schedule), and the probe
that logs how far ADMM is from its patterns after each epoch."""

import json

import keras
import numpy as np

from cocopie_keras import sparsity
from cocopie_keras.sparsity import recipe

class HardPruneProbe(keras.callbacks.Callback):
    """Log helper: test accuracy of the ADMM model if it were hard-pruned now
    (weights projected, then restored), and the ADMM penalty, after each epoch."""

    def __init__(self, x_test, y_test):
        super().__init__()
        self.x_test, self.y_test, self.records = x_test, y_test, []

    def on_epoch_end(self, epoch, logs=None):
        wrappers = sparsity.pruning_wrappers(self.model)
        saved = [keras.ops.convert_to_numpy(w.kernel) for w in wrappers]
        penalty = sum(0.5 * float(keras.ops.convert_to_numpy(w.admm_rho)) * float(np.sum(
            np.square(kernel - keras.ops.convert_to_numpy(w.admm_z)
                      + keras.ops.convert_to_numpy(w.admm_u)))) for w, kernel in zip(wrappers, saved))
        accuracy = float(self.model.evaluate(self.x_test, self.y_test, verbose=0)[1])
        for wrapper, kernel in zip(wrappers, saved):
            wrapper.kernel.assign(kernel * wrapper.project(kernel).mask)
        hard = float(self.model.evaluate(self.x_test, self.y_test, verbose=0)[1])
        for wrapper, kernel in zip(wrappers, saved):
            wrapper.kernel.assign(kernel)
        record = {"epoch": epoch + 1, "loss": logs.get("loss"), "train_accuracy": logs.get("accuracy"),
                  "admm_penalty": penalty, "test_accuracy": accuracy,
                  "hard_pruned_test_accuracy": hard,
                  "relative_residual": logs.get("admm_relative_residual"),
                  "pattern_change": logs.get("admm_pattern_change")}
        self.records.append(record)
        print("admm-log", json.dumps(record), flush=True)


VARIANT_KEYS = {"name", "optimizer", "sgd_learning_rate", "momentum", "update_steps", "rho",
                "rho_growth", "rho_max", "admm_epochs"}


def parse_variants(text, args):
    """``--admm-variants``: a JSON list of dicts (keys ``VARIANT_KEYS``); missing keys
    take the command line's ``--admm-*`` / ``--rho*`` values."""
    if not text:
        return None
    variants = []
    for spec in json.loads(text):
        unknown = set(spec) - VARIANT_KEYS
        if unknown or "name" not in spec:
            raise ValueError(f"Expected variant keys {sorted(VARIANT_KEYS)} with a name. "
                             f"Received: {spec}")
        variants.append({"optimizer": args.admm_optimizer,
                         "sgd_learning_rate": args.admm_sgd_learning_rate,
                         "momentum": args.admm_momentum, "update_steps": args.admm_update_steps,
                         "rho": args.rho, "rho_growth": args.rho_growth, "rho_max": args.rho_max,
                         "admm_epochs": args.admm_epochs, **spec})
    return variants


def admm_variant(model, variant, config, phases, x, y, probe, args):
    """ADMM for ``variant["admm_epochs"]`` (<= phase 1) epochs, hard prune, masked
    training for the rest of phase 1 (fresh Adam, constant LR, like the baselines),
    then phase 2. The optimizer of the ADMM epochs: Adam at the phase-1 LR, or SGD
    with momentum; Z/U updates every epoch or every ``update_steps`` steps."""
    admm_epochs = int(variant["admm_epochs"])
    if not 0 < admm_epochs <= phases.first:
        raise ValueError(f"Expected 0 < admm_epochs <= {phases.first}. Received: {variant}")
    wrapped = sparsity.prune_wrap(model, config)
    if variant["optimizer"] == "adam":
        phases.compile_first(wrapped)
    elif variant["optimizer"] == "sgd":
        wrapped.compile(optimizer=keras.optimizers.SGD(variant["sgd_learning_rate"],
                                                       momentum=variant["momentum"]),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
    else:
        raise ValueError(f"Expected optimizer adam or sgd. Received: {variant}")
    steps = int(variant["update_steps"])
    callback = sparsity.ADMMCallback(
        update_every=steps or 1, update_unit="step" if steps else "epoch",
        rho=sparsity.RhoSchedule(variant["rho"], variant["rho_growth"], variant["rho_max"]))
    histories = {"admm": wrapped.fit(x, y, batch_size=64, epochs=admm_epochs,
                                     verbose=args.verbose,
                                     callbacks=[callback, probe]).history}
    sparsity.hard_prune(wrapped)
    after = {"train_accuracy": float(wrapped.evaluate(x, y, verbose=0)[1]),
             "test_accuracy": float(wrapped.evaluate(*probe_data(probe), verbose=0)[1])}
    print("after-admm", json.dumps(after), flush=True)
    rest = phases.first - admm_epochs
    if rest:
        phases.compile_first(wrapped)
        histories["masked"] = wrapped.fit(x, y, batch_size=64, epochs=rest, verbose=args.verbose,
                                          callbacks=[sparsity.MaskedFineTuneCallback()]).history
    if phases.second:
        phases.compile_second(wrapped)
        histories["finetune"] = wrapped.fit(
            x, y, batch_size=64, epochs=phases.second, verbose=args.verbose,
            callbacks=[sparsity.MaskedFineTuneCallback()]).history
    plain = sparsity.strip_pruning(wrapped)
    phases.compile_first(plain)  # the phase-1 compile: constant LR, for scoring
    result = recipe.RecipeResult(plain, wrapped, callback.history, histories)
    result.after_admm = after
    return result


def probe_data(probe):
    return probe.x_test, probe.y_test
