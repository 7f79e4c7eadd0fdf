"""`tune`: the whole CoCo-Tune flow for one trained Keras model.

Example:

```python
from cocopie_keras import cocotune
summary = cocotune.tune(model, (x_train, y_train), (x_val, y_val), workdir="out/tune",
                    subspace_size=16, alpha=0.02, epochs=2, workers=2)
print(summary["block"]["best"], summary["default"]["best"])
```
"""

import hashlib
import json
import os
import time

import numpy as np

from cocopie_keras.cocotune import blocks as blocks_lib
from cocopie_keras.cocotune import pretrain
from cocopie_keras.cocotune import surgery

INITS = ("block", "default")


def _from_logits(model):
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "linear") != "softmax"


def _check_arguments(inits, executor, workers, threads, epochs, max_failures):
    for init in inits:
        if init not in INITS:
            raise ValueError(f"Expected inits among {INITS}. Received: init={init!r}")
    if executor != "ray":
        # Trials are Ray Tune trials (checkpoints, retries, resume); there is no
        # in-process executor any more.
        raise ValueError(f"Expected executor 'ray'. Received: executor={executor!r}")
    if workers < 1 or threads < 1 or epochs < 1:
        raise ValueError(f"Expected workers, threads, epochs >= 1. Received: workers={workers}, "
                         f"threads={threads}, epochs={epochs}")
    # Ray Tune reads a negative count as "retry forever": a crashing trial
    # would then never end the exploration.
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise ValueError(f"Expected max_failures >= 0. Received: max_failures={max_failures!r}")


def _modules_and_configs(model, modules, configs, subspace_size, rates, seed):
    """The checked modules and the subspace; a bad config fails before any training."""
    if modules is None:
        modules = surgery.infer_modules(model) or surgery.infer_chain_modules(model)
    modules = surgery.validate_modules(model, modules)
    if configs is None:
        configs = blocks_lib.sample_subspace(len(modules), subspace_size, rates, seed=seed)
    configs = [tuple(float(r) for r in c) for c in configs]
    for config in configs:
        surgery.channel_plan(model, modules, config)
    return modules, configs


def _accuracy(model, validation, batch_size):
    # predict, not compile + evaluate: the caller's compiled state stays as it was.
    predictions = model.predict(validation[0], batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(validation[1]).reshape(-1)))


def _pretrain_once(model, modules, blocks, x_train, workdir, blocks_path, epochs, batch_size,
                   learning_rate):
    """Pre-trains the tuning blocks unless an earlier run did; returns its seconds."""
    timing_path = os.path.join(workdir, "pretrain.json")
    if os.path.exists(blocks_path) and os.path.exists(timing_path):
        with open(timing_path) as f:
            return json.load(f)["seconds"]  # resumed: blocks already trained
    started = time.time()
    weights = pretrain.pretrain_blocks(model, modules, blocks, x_train, epochs=epochs,
                                       batch_size=batch_size, learning_rate=learning_rate)
    seconds = time.time() - started
    pretrain.save_block_weights(blocks_path, weights)
    with open(timing_path, "w") as f:
        json.dump({"seconds": seconds}, f)
    return seconds


def experiment_name(init, configs, shared, threshold):
    """Ray Tune experiment of one exploration, and the prefix of its trial settings.

    Explorations of the same init, subspace and trial settings (fine-tuning
    epochs, stopping target) run the same trials whatever the threshold: the
    prefix finds them, so their finished trials are reused.
    """
    key = json.dumps({"init": init, "configs": [list(c) for c in configs],
                      "epochs": shared["epochs"], "stop_at": shared["stop_at"]})
    prefix = f"{init}-{hashlib.sha1(key.encode()).hexdigest()[:10]}-t"
    return prefix + repr(float(threshold)), prefix


def _explore(init, configs, found, params, threshold, shared, workdir, trainable, workers,
             max_failures, log):
    """One exploration of the subspace (``init``: "block" or "default"), timed."""
    payloads = [dict(shared, init=init, config=list(c),
                     block_ids=found.composites[i] if init == "block" else None)
                for i, c in enumerate(configs)]
    from cocopie_keras.cocotune import explore as explore_lib

    name, prefix = experiment_name(init, configs, shared, threshold)
    started = time.time()
    result = explore_lib.explore(payloads, params, threshold, os.path.join(workdir, "ray"),
                                 name, prefix, trainable, workers, shared["threads"],
                                 record=os.path.join(workdir, "trials.jsonl"),
                                 max_failures=max_failures, log=log)
    result["wall_seconds"] = time.time() - started
    return result


def tune(model, train, validation, workdir, modules=None, configs=None, subspace_size=8,
         rates=blocks_lib.DEFAULT_RATES, alpha=0.01, threshold=None, epochs=1,
         pretrain_epochs=1, batch_size=64, learning_rate=1e-3, inits=INITS, executor="ray",
         address=None, workers=1, threads=1, seed=0, stop_at_threshold=True, trial_fn=None,
         log=print, max_failures=3):
    """Finds the smallest filter-pruned network reaching an accuracy threshold.

    Args:
        model: trained Keras Functional classifier (integer labels).
        train, validation: ``(x, y)`` arrays.
        workdir: folder for the teacher, data, block weights and results
            (Ray Tune experiments in ``ray/``, a log of finished trials in
            ``trials.jsonl``); rerunning with the same folder resumes an
            interrupted exploration and reuses trials finished earlier.
        modules: list of `surgery.Module` (default: the residual blocks,
            `surgery.infer_modules`, or for a plain chain `surgery.infer_chain_modules`).
        configs: the promising subspace (per network, one rate per module);
            default: `blocks.sample_subspace` of ``subspace_size`` over ``rates``.
        alpha: accuracy drop allowed; threshold = full accuracy - alpha.
        threshold: explicit accuracy threshold (overrides ``alpha``).
        epochs: fine-tuning epochs per trial; pretrain_epochs: for the blocks.
        inits: which explorations to run: "block" (composability) and/or
            "default" (baseline).
        executor: "ray" (the only one: trials are Ray Tune trials).
        address: existing Ray cluster ("auto" or host:port); default: a
            local one of ``workers * threads`` CPUs.
        workers: trials at once; threads: TF threads per trial.
        stop_at_threshold: end a trial's fine-tuning once it reaches the threshold.
        trial_fn: Ray Tune trainable replacing `trial.run_trial` (tests).
        max_failures: retries of a trial whose worker died (from its checkpoint).

    Returns:
        A JSON-serializable summary dict (also written to
        ``workdir/summary.json``).
    """
    _check_arguments(inits, executor, workers, threads, epochs, max_failures)
    os.makedirs(workdir, exist_ok=True)
    modules, configs = _modules_and_configs(model, modules, configs, subspace_size, rates, seed)
    found = blocks_lib.identify_blocks(configs)
    params = [surgery.prune_filters(model, modules, c).count_params() for c in configs]
    full_accuracy = _accuracy(model, validation, batch_size)
    if threshold is None:
        threshold = full_accuracy - alpha
    teacher_path = os.path.join(workdir, "teacher.keras")
    data_path = os.path.join(workdir, "data.npz")
    blocks_path = os.path.join(workdir, "blocks.npz")
    model.save(teacher_path)
    np.savez(data_path, x_train=train[0], y_train=train[1],
             x_val=validation[0], y_val=validation[1])

    pretrain_seconds = 0.0
    if "block" in inits:
        pretrain_seconds = _pretrain_once(model, modules, found.blocks, train[0], workdir,
                                          blocks_path, pretrain_epochs, batch_size,
                                          learning_rate)
        if log:
            log(f"{len(found.blocks)} tuning blocks pre-trained in {pretrain_seconds:.1f} s")

    # What every trial of the exploration gets besides its config and init.
    shared = {"teacher_path": teacher_path, "data_path": data_path, "blocks_path": blocks_path,
              "modules": [{"convs": list(m.convs), "input": m.input, "output": m.output}
                          for m in modules],
              "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
              "from_logits": _from_logits(model), "threads": threads, "seed": seed,
              "stop_at": threshold if stop_at_threshold else None}
    summary = {"full_accuracy": full_accuracy, "full_params": int(model.count_params()),
               "threshold": threshold, "configs": [list(c) for c in configs], "params": params,
               "blocks": [[list(s) for s in b] for b in found.blocks],
               "composites": found.composites, "pretrain_seconds": pretrain_seconds,
               "workers": workers}
    from cocopie_keras.cocotune import explore as explore_lib  # Ray: only from here on

    with explore_lib.ray_session(address, workers, threads):
        for init in inits:
            summary[init] = _explore(init, configs, found, params, threshold, shared, workdir,
                                     trial_fn or explore_lib.run_trial, workers, max_failures,
                                     log)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
