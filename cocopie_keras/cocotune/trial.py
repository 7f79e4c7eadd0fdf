"""One exploration trial as a Ray Tune function trainable.

A trial assembles a pruned network (from pre-trained tuning blocks, or from the
teacher's surviving weights), fine-tunes it epoch by epoch and reports each
epoch's validation accuracy to Ray Tune with a checkpoint (the model with its
optimizer state, and the trial's curve and timings so far). A trial restarted
after its worker died, or after the driver was interrupted, continues from that
checkpoint; every epoch reseeds the random generators from the trial's seed and
the epoch number, so a resumed trial trains exactly as an undisturbed one.

The last report of a trial carries ``complete=True`` and the trial's result row
(JSON in ``row``): a trial stopped before it (a larger network once the answer
is known) has no row and does not count as explored.

Example (inside `ray.tune.Tuner`; see `cocopie_keras.cocotune.explore`):

```python
tuner = ray.tune.Tuner(run_trial, param_space=payload)
```
"""

import json
import os
import tempfile
import time

import numpy as np

MODEL_FILE = "model.keras"
STATE_FILE = "trial.json"


def limit_threads(threads):
    """Caps TensorFlow's thread pools (must run before TF executes anything).

    Trials share the machine with each other: each gets ``threads`` CPUs from
    Ray, and TensorFlow must not spread over more.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialized in this (reused) process: settings stay as first set


def _load_data(payload):
    with np.load(payload["data_path"]) as data:
        return (data["x_train"], data["y_train"]), (data["x_val"], data["y_val"])


def _fresh_model(payload, validation):
    """The assembled, compiled network and its accuracy before fine-tuning."""
    import keras

    from cocopie_keras.cocotune import pretrain
    from cocopie_keras.cocotune import surgery

    keras.utils.set_random_seed(payload.get("seed", 0))
    teacher = keras.saving.load_model(payload["teacher_path"], compile=False)
    modules = [surgery.Module(tuple(m["convs"]), m["input"], m["output"])
               for m in payload["modules"]]
    block_weights = None
    if payload["init"] == "block":
        block_weights = pretrain.load_block_weights(payload["blocks_path"])
    model = pretrain.assemble(teacher, modules, payload["config"],
                              payload.get("block_ids"), block_weights)
    model.compile(optimizer=keras.optimizers.Adam(payload.get("learning_rate", 1e-3)),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=payload.get("from_logits", True)),
                  metrics=["accuracy"])
    initial = float(model.evaluate(validation[0], validation[1], verbose=0,
                                   batch_size=payload.get("batch_size", 64))[1])
    return model, initial


def _restore(checkpoint):
    """(model or None, state) from a Tune checkpoint; state None without one."""
    if checkpoint is None:
        return None, None
    import keras

    with checkpoint.as_directory() as directory:
        with open(os.path.join(directory, STATE_FILE)) as f:
            state = json.load(f)
        model = None
        if not state.get("complete"):
            model = keras.saving.load_model(os.path.join(directory, MODEL_FILE))
    return model, state


def _report(model, state, accuracy):
    """Reports one step with a checkpoint of ``state`` (and the model, unless done)."""
    from ray import tune

    metrics = {"val_accuracy": accuracy, "epoch": len(state["curve"]) - 1,
               "complete": bool(state.get("complete"))}
    if state.get("complete"):
        metrics["row"] = json.dumps(state["row"])
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, STATE_FILE), "w") as f:
            json.dump(state, f)
        if not state.get("complete"):
            model.save(os.path.join(directory, MODEL_FILE))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def _row(payload, state, params, seconds):
    curve = state["curve"]
    return {"init": payload["init"], "config": list(payload["config"]),
            "config_index": payload.get("config_index"), "params": params,
            "accuracy": curve[-1], "accuracy_curve": list(curve), "epochs": len(curve) - 1,
            "setup_seconds": state["setup_seconds"], "epoch_seconds": state["epoch_seconds"],
            "seconds": seconds,
            "settings": {"epochs": payload.get("epochs"), "stop_at": payload.get("stop_at")}}


def run_trial(config, hook=None):
    """Ray Tune trainable: one network fine-tuned until ``stop_at`` or ``epochs``.

    ``config`` holds only file paths and plain values (see `explore.payloads`),
    so the trial runs in any worker that sees the same files. ``hook(event,
    config, epoch)`` is called when training starts (``epoch``: epochs already
    done, "start") and
    after each "epoch" is reported: tests use it to count executions and to
    kill the worker mid-trial.
    """
    limit_threads(config.get("threads", 1))
    import keras
    from ray import tune

    model, state = _restore(tune.get_checkpoint())
    if state is not None and state.get("complete"):
        # Restarted after its last report was saved: report the same result again.
        _report(None, state, state["curve"][-1])
        return
    if hook:
        hook("start", config, len(state["curve"]) - 1 if state else 0)
    session = time.time()
    (x_train, y_train), (x_val, y_val) = _load_data(config)
    if state is None:
        model, initial = _fresh_model(config, (x_val, y_val))
        state = {"curve": [initial], "epoch_seconds": [], "elapsed": 0.0,
                 "setup_seconds": time.time() - session}
    target = config.get("stop_at")
    batch_size = config.get("batch_size", 64)
    while True:
        epoch = len(state["curve"]) - 1
        # Fine-tuning stops once the network reaches the target: the objective only
        # asks whether it can, and a better start (pre-trained blocks) gets there sooner.
        reached = target is not None and state["curve"][-1] >= target
        if reached or epoch >= config["epochs"]:
            seconds = state["elapsed"] + time.time() - session
            state["row"] = _row(config, state, int(model.count_params()), seconds)
            state["complete"] = True
            _report(None, state, state["curve"][-1])
            return
        keras.utils.set_random_seed(config.get("seed", 0) * 1000 + epoch + 1)
        started = time.time()
        history = model.fit(x_train, y_train, epochs=1, batch_size=batch_size,
                            validation_data=(x_val, y_val), verbose=0)
        state["epoch_seconds"].append(time.time() - started)
        state["curve"].append(float(history.history["val_accuracy"][-1]))
        done = time.time()
        state["elapsed"] += done - session
        session = done
        last = (epoch + 1 >= config["epochs"]
                or (target is not None and state["curve"][-1] >= target))
        if not last:
            _report(model, state, state["curve"][-1])
            if hook:
                hook("epoch", config, epoch + 1)
