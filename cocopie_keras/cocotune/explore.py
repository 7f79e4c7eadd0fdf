"""Objective-ordered exploration of a subspace, persisted and run on Ray.

The default objective is "the smallest network whose accuracy reaches the
threshold": networks are tried smallest first, exploration stops at the first
success, but trials on smaller networks still running are waited for (one of
them may succeed too and is then the answer). Each finished trial is appended
to a JSON-lines file, so a killed run resumes without repeating it.

Trials run as Ray tasks (`RayExecutor`: a local cluster by default, or an
existing one given its address); `LocalExecutor` runs them one after the other
in this process behind the same interface.

Example:

```python
store = ResultStore("out/tune/trials.jsonl")
result = explore(payloads, params, threshold=0.9, store=store,
                 executor=RayExecutor(workers=2), workers=2)
print(result["best"], result["explored"])
```
"""

import json
import os
import time

import numpy as np


def limit_threads(threads):
    """Caps TensorFlow's thread pools (must run before TF executes anything)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialized in this (reused) process: settings stay as first set


class ResultStore:
    """Finished trials in a JSON-lines file.

    A trial is identified by its init, its configuration and the settings that
    change its result (fine-tuning epochs and stopping target), so runs with
    other settings never reuse it.
    """

    SETTINGS = ("epochs", "stop_at")

    def __init__(self, path):
        self.path = path
        self.results = {}
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a kill: that trial reruns
                    self.results[self.key(row)] = row

    @classmethod
    def key(cls, trial):
        """Identity of a trial, from its payload or its stored row."""
        settings = tuple(trial.get("settings", trial).get(k) for k in cls.SETTINGS)
        return (trial["init"], tuple(round(float(r), 6) for r in trial["config"]), settings)

    def get(self, payload):
        return self.results.get(self.key(payload))

    def add(self, payload, row):
        row = dict(row, init=payload["init"], config=list(payload["config"]),
                   settings={k: payload.get(k) for k in self.SETTINGS})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.results[self.key(row)] = row
        return row


class LocalExecutor:
    """Runs each trial in this process when it is waited for."""

    def __init__(self, threads=1):
        self.threads = threads
        self._pending = {}
        self._next = 0

    def submit(self, fn, payload):
        handle = self._next
        self._next += 1
        self._pending[handle] = (fn, payload)
        return handle

    def wait(self, handles):
        """Runs the first handle; returns ``[(handle, result)]``."""
        handle = handles[0]
        fn, payload = self._pending.pop(handle)
        return [(handle, fn(payload))]

    def cancel(self, handle):
        self._pending.pop(handle, None)

    def warm_up(self, workers):
        del workers  # trials run in this process, where Keras is already imported

    def close(self):
        self._pending.clear()


def _ray_call(fn, payload):
    return fn(payload)


def _import_keras(_):
    import keras  # noqa: F401

    return os.getpid()


class RayExecutor:
    """Runs trials as Ray tasks, one CPU each.

    Args:
        address: an existing cluster (``"auto"`` or ``"host:port"``); None
            starts a local one with ``workers`` CPUs.
        workers: CPUs of the local cluster (trials running at once).
        threads: TensorFlow threads per trial.
    """

    def __init__(self, address=None, workers=1, threads=1):
        import ray

        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            kwargs = dict(include_dashboard=False, log_to_driver=False,
                          runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads),
                                                    "TF_NUM_INTRAOP_THREADS": str(threads),
                                                    "TF_NUM_INTEROP_THREADS": "1",
                                                    "TF_CPP_MIN_LOG_LEVEL": "2"}})
            if address is None:
                kwargs["num_cpus"] = workers
            ray.init(address=address, **kwargs)
        self._task = ray.remote(num_cpus=1, max_retries=0)(_ray_call)

    def submit(self, fn, payload):
        return self._task.remote(fn, payload)

    def wait(self, handles):
        done, _ = self._ray.wait(list(handles), num_returns=1)
        return [(handle, self._ray.get(handle)) for handle in done]

    def cancel(self, handle):
        self._ray.cancel(handle, force=True)

    def warm_up(self, workers):
        """Starts ``workers`` worker processes and imports Keras in each.

        Otherwise the first trials of the first exploration pay the start-up
        (seconds per worker) and explorations run later do not, which skews
        timings that compare them.
        """
        handles = [self._task.remote(_import_keras, index) for index in range(workers)]
        self._ray.get(handles)

    def close(self):
        if self._started:
            self._ray.shutdown()


def _StopAt(target, epoch_seconds):
    """Ends fitting once val_accuracy reaches ``target`` (None: never).

    Also appends each epoch's duration (training and validation) to
    ``epoch_seconds``, so the cost of stopping at an earlier target can be read
    from the same trial.
    """
    import keras

    class StopAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.time() - self._started)
            if target is not None and (logs or {}).get("val_accuracy", 0.0) >= target:
                self.model.stop_training = True

    return StopAt()


def run_trial(payload):
    """One trial: assemble a network, fine-tune it, measure validation accuracy.

    ``payload`` holds only file paths and plain values, so it can run in any
    worker that sees the same files.
    """
    limit_threads(payload.get("threads", 1))
    import keras

    from cocopie_keras.cocotune import pretrain
    from cocopie_keras.cocotune import surgery

    started = time.time()
    keras.utils.set_random_seed(payload.get("seed", 0))
    teacher = keras.saving.load_model(payload["teacher_path"], compile=False)
    modules = [surgery.Module(tuple(m["convs"]), m["input"], m["output"])
               for m in payload["modules"]]
    block_weights = None
    if payload["init"] == "block":
        block_weights = pretrain.load_block_weights(payload["blocks_path"])
    model = pretrain.assemble(teacher, modules, payload["config"],
                              payload.get("block_ids"), block_weights)
    with np.load(payload["data_path"]) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_val, y_val = data["x_val"], data["y_val"]
    model.compile(optimizer=keras.optimizers.Adam(payload.get("learning_rate", 1e-3)),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=payload.get("from_logits", True)),
                  metrics=["accuracy"])
    initial = float(model.evaluate(x_val, y_val, verbose=0,
                                   batch_size=payload.get("batch_size", 64))[1])
    curve = [initial]
    epoch_seconds = []
    setup_seconds = time.time() - started
    target = payload.get("stop_at")
    # Fine-tuning stops once the network reaches the target: the objective only
    # asks whether it can, and a better start (pre-trained blocks) gets there sooner.
    if target is None or initial < target:
        history = model.fit(x_train, y_train, epochs=payload["epochs"],
                            batch_size=payload.get("batch_size", 64),
                            validation_data=(x_val, y_val), verbose=0,
                            callbacks=[_StopAt(target, epoch_seconds)])
        curve += [float(a) for a in history.history.get("val_accuracy", [])]
    return {"init": payload["init"], "config": list(payload["config"]),
            "params": int(model.count_params()), "accuracy": curve[-1],
            "accuracy_curve": curve, "epochs": len(curve) - 1,
            "setup_seconds": setup_seconds, "epoch_seconds": epoch_seconds,
            "seconds": time.time() - started}


def explore(payloads, params, threshold, store, executor, trial_fn=run_trial, workers=1,
            log=None):
    """Tries configurations smallest first until one reaches ``threshold``.

    Args:
        payloads: per configuration, the payload for ``trial_fn``.
        params: per configuration, its parameter count (defines the order).
        threshold: accuracy a network must reach.
        store: a `ResultStore`; finished trials found there are not rerun.
        executor: `LocalExecutor` or `RayExecutor`.
        trial_fn: function payload -> result row (module-level, for Ray).
        workers: trials kept running at once.

    Returns:
        dict with ``best`` (result row or None), ``explored`` (trials up to
        the answer in size order), ``trial_seconds`` (their summed time),
        ``trials_finished`` (including larger ones that finished before the
        answer did), ``rows`` (the explored results, in order),
        ``resumed`` and ``resumed_seconds`` (trials of ``rows`` taken from
        ``store`` instead of run now, and their recorded time: a wall-clock
        measurement of a resumed exploration misses it).
    """
    order = sorted(range(len(payloads)), key=lambda i: (params[i], i))
    position = {index: rank for rank, index in enumerate(order)}
    running, rows, resumed = {}, {}, set()
    best_rank, next_rank = None, 0

    def record(index, row):
        nonlocal best_rank
        rows[index] = row
        rank = position[index]
        if row["accuracy"] >= threshold and (best_rank is None or rank < best_rank):
            best_rank = rank
            for handle, other in list(running.items()):
                if position[other] > rank:  # larger than the answer: not needed
                    executor.cancel(handle)
                    del running[handle]

    while True:
        while len(running) < workers and next_rank < len(order) and best_rank is None:
            index = order[next_rank]
            next_rank += 1
            payload = payloads[index]
            stored = store.get(payload)
            if stored is not None:
                resumed.add(index)
                record(index, stored)
                continue
            running[executor.submit(trial_fn, payload)] = index
        if not running:
            break
        for handle, row in executor.wait(list(running)):
            index = running.pop(handle, None)
            if index is None:
                continue
            row = store.add(payloads[index], dict(row, config_index=index))
            if log:
                log(f"{row['init']:>7} config {index:3d} params {row['params']:9d} "
                    f"accuracy {row['accuracy']:.4f} ({row['seconds']:.1f} s)")
            record(index, row)
    used_indices = [i for i in order if i in rows
                    and (best_rank is None or position[i] <= best_rank)]
    used = [rows[i] for i in used_indices]
    return {"best": rows[order[best_rank]] if best_rank is not None else None,
            "explored": len(used), "trial_seconds": float(sum(r["seconds"] for r in used)),
            "trials_finished": len(rows), "rows": used,
            "resumed": sum(1 for i in used_indices if i in resumed),
            "resumed_seconds": float(sum(rows[i]["seconds"] for i in used_indices
                                         if i in resumed))}
