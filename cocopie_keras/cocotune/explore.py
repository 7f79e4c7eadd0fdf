"""Objective-ordered exploration of a subspace on Ray Tune.

The default objective is "the smallest network whose accuracy reaches the
threshold". `ObjectiveOrder`, a Ray Tune `Searcher`, suggests the networks
smallest first (at most ``workers`` at once) and stops suggesting once a
finished trial reached the threshold. It is also the run's `Stopper`: a trial
on a larger network than the answer is stopped at its next report, and the
experiment ends as soon as no smaller trial is still running (one of those may
succeed too and is then the answer, so they are waited for).

Trials are `trial.run_trial` (a function trainable reporting each epoch with a
checkpoint). The experiment is stored under ``storage/name``: an interrupted
exploration resumes with `ray.tune.Tuner.restore` (finished trials are not
rerun, unfinished ones continue from their checkpoint), and a trial whose
worker died is retried from its checkpoint (``FailureConfig(max_failures)``).
Finished trials of earlier explorations with the same trial settings but
another threshold (other experiments in ``storage``) are reused, not rerun.
Each finished trial can also be appended to a JSON-lines file (``record``), a
plain log for the user and for bench/cocotune_study.py, never read back here.

Example:

```python
with ray_session(workers=2):
    result = explore(payloads, params, threshold=0.9, storage="out/tune/ray",
                     name="block", workers=2)
print(result["best"], result["explored"])
```
"""

import contextlib
import json
import os
import pickle

from ray import tune
from ray.tune.search import Searcher

from cocopie_keras.cocotune.trial import limit_threads, run_trial  # noqa: F401 (re-exported)

MAX_FAILURES = 3
"""Retries of a trial whose worker died (each from the trial's last checkpoint)."""


class ObjectiveOrder(Searcher, tune.Stopper):
    """Suggests configurations smallest first and ends at the first success.

    Args:
        payloads: per configuration, the trial's config (`trial.run_trial`).
        params: per configuration, its parameter count (defines the order).
        threshold: accuracy a network must reach.
        workers: trials suggested and running at once.
        known: ``{index: row}`` finished in earlier explorations: not rerun.
    """

    def __init__(self, payloads, params, threshold, workers=1, known=None):
        super().__init__()
        self.payloads = payloads
        self.order = sorted(range(len(payloads)), key=lambda i: (params[i], i))
        self.rank = {index: rank for rank, index in enumerate(self.order)}
        self.threshold = threshold
        self.workers = workers
        self.known = dict(known or {})
        self.next_rank = 0
        self.live = {}          # trial id -> configuration index
        # Trials that ended in an error: not answered yet. A restored run
        # retries them (resume_errored), so they are live again then.
        self.failed = {}
        self.best_rank = None

    def _record(self, index, accuracy):
        rank = self.rank[index]
        if accuracy >= self.threshold and (self.best_rank is None or rank < self.best_rank):
            self.best_rank = rank

    def suggest(self, trial_id):
        if len(self.live) >= self.workers:
            return None  # asked again once a trial ends
        while self.best_rank is None and self.next_rank < len(self.order):
            index = self.order[self.next_rank]
            self.next_rank += 1
            if index in self.known:
                self._record(index, self.known[index]["accuracy"])
                continue
            self.live[trial_id] = index
            return dict(self.payloads[index], config_index=index)
        return Searcher.FINISHED

    def on_trial_complete(self, trial_id, result=None, error=False):
        index = self.live.pop(trial_id, None)
        if index is not None and error:
            self.failed[trial_id] = index
        elif index is not None and result and result.get("complete"):
            self._record(index, result["val_accuracy"])

    def __call__(self, trial_id, result):
        """Stops a trial on a network larger than the answer (not needed)."""
        index = self.live.get(trial_id)
        return (self.best_rank is not None and index is not None
                and self.rank[index] > self.best_rank)

    def stop_all(self):
        """True once the answer is known and no smaller trial still runs or
        failed: a smaller network that errored might still be the answer."""
        pending = list(self.live.values()) + list(self.failed.values())
        return self.best_rank is not None and all(
            self.rank[index] > self.best_rank for index in pending)

    STATE = ("order", "rank", "threshold", "workers", "known", "next_rank", "live",
             "failed", "best_rank")

    def save(self, checkpoint_path):
        with open(checkpoint_path, "wb") as f:
            pickle.dump({key: getattr(self, key) for key in self.STATE}, f)

    def restore(self, checkpoint_path):
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        # Restored with resume_errored: the failed trials run again.
        self.live.update(getattr(self, "failed", {}))
        self.failed = {}


class TrialLog(tune.Callback):
    """Appends each finished trial's row to a JSON-lines file, as it finishes.

    Each line also holds the Ray trial id. A trial is logged once: an
    exploration resumed after its driver died may see a trial complete again
    (its last report is made again), and the file already has its line.
    """

    def __init__(self, path):
        self.path = path
        self._logged = None

    def _logged_trials(self):
        """Trial ids already in the file; a line cut short by a killed driver is skipped."""
        if self._logged is None:
            self._logged = set()
            if os.path.exists(self.path):
                with open(self.path) as f:
                    for line in f:
                        try:
                            self._logged.add(json.loads(line).get("trial_id"))
                        except (json.JSONDecodeError, AttributeError):
                            pass
        return self._logged

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if not (result.get("complete") and "row" in result):
            return
        if trial.trial_id in self._logged_trials():
            return
        line = json.dumps({**json.loads(result["row"]), "trial_id": trial.trial_id}) + "\n"
        with open(self.path, "a+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(f.tell() - 1)
                if f.read(1) != "\n":
                    line = "\n" + line  # after a line cut short: start a new one
            f.write(line)
        self._logged.add(trial.trial_id)


def trial_dirname(trial):
    """Short trial folders: the init, the configuration index and the trial id."""
    return f"{trial.config['init']}_{trial.config['config_index']:03d}_{trial.trial_id}"


def _finished_rows(result_grid):
    """``{configuration index: row}`` of the grid's trials that finished."""
    rows = {}
    for result in result_grid:
        metrics = result.metrics or {}
        if result.config and metrics.get("complete") and "row" in metrics:
            rows[result.config["config_index"]] = json.loads(metrics["row"])
    return rows


def earlier_rows(storage, prefix, name, trainable):
    """Finished rows of the other experiments in ``storage`` named ``prefix*``.

    Those explored the same trials (same init and trial settings) for another
    threshold: their results stand and are reused.
    """
    rows = {}
    if not os.path.isdir(storage):
        return rows
    for other in sorted(os.listdir(storage)):
        path = os.path.join(storage, other)
        if other == name or not other.startswith(prefix) or not tune.Tuner.can_restore(path):
            continue
        rows.update(_finished_rows(tune.Tuner.restore(path, trainable).get_results()))
    return rows


def summarize(params, threshold, rows, taken):
    """The exploration's result from its finished ``rows`` (``{index: row}``).

    ``taken`` holds the indices whose rows were not run by this call (earlier
    explorations, or an earlier session of this one): a wall clock started now
    misses their time, reported as ``resumed_seconds``.
    """
    order = sorted(range(len(params)), key=lambda i: (params[i], i))
    successes = [rank for rank, index in enumerate(order)
                 if index in rows and rows[index]["accuracy"] >= threshold]
    best_rank = min(successes) if successes else None
    used_indices = [index for rank, index in enumerate(order) if index in rows
                    and (best_rank is None or rank <= best_rank)]
    larger = [index for rank, index in enumerate(order) if index in rows
              and index not in taken and best_rank is not None and rank > best_rank]
    used = [rows[index] for index in used_indices]
    return {"best": rows[order[best_rank]] if best_rank is not None else None,
            "explored": len(used), "trial_seconds": float(sum(r["seconds"] for r in used)),
            "trials_finished": len(used) + len(larger), "rows": used,
            "resumed": sum(1 for index in used_indices if index in taken),
            "resumed_seconds": float(sum(rows[index]["seconds"] for index in used_indices
                                         if index in taken))}


@contextlib.contextmanager
def environment(values, keep_set=False):
    """Environment variables set for the block and restored after it (the
    caller's process is left as it was); ``keep_set`` leaves those the user
    already set as they are."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if not (keep_set and key in os.environ):
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def ray_session(address=None, workers=1, threads=1):
    """Ray for the exploration: an existing cluster, or a local one of workers*threads CPUs.

    Runs offline: no dashboard and no usage statistics. A session already
    started by the caller is used as it is and left running.
    """
    import ray

    with environment({"RAY_USAGE_STATS_ENABLED": "0"}):
        if ray.is_initialized():
            yield
            return
        with _local_or_joined(address, workers, threads):
            yield


@contextlib.contextmanager
def _local_or_joined(address, workers, threads):
    """A new local Ray (``address`` None) or the cluster at ``address``, shut down after."""
    import ray

    env = {"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
           "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "RAY_USAGE_STATS_ENABLED": "0"}
    kwargs = dict(include_dashboard=False, log_to_driver=False,
                  runtime_env={"env_vars": env})
    if address is None:
        # "local": a new cluster, even if `ray start` left one on this machine.
        address, kwargs["num_cpus"] = "local", workers * threads
    ray.init(address=address, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def _reporter():
    """Ray Tune's table of trials, showing only what tells them apart."""
    return tune.CLIReporter(parameter_columns=["init", "config_index"],
                            metric_columns=["epoch", "val_accuracy"], max_report_frequency=30)


def _new_tuner(trainable, searcher, storage, name, num_samples, record, max_failures, log):
    run_config = tune.RunConfig(
        name=name, storage_path=storage, stop=searcher,
        failure_config=tune.FailureConfig(max_failures=max_failures),
        # num_to_keep also makes each trial checkpoint save the experiment state,
        # so a driver killed right after a trial finished does not rerun it.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        callbacks=[TrialLog(record)] if record else None,
        verbose=1 if log else 0, progress_reporter=_reporter() if log else None)
    tune_config = tune.TuneConfig(search_alg=searcher, num_samples=num_samples,
                                  reuse_actors=True, trial_dirname_creator=trial_dirname)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def explore(payloads, params, threshold, storage, name, prefix=None, trainable=run_trial,
            workers=1, threads=1, record=None, max_failures=MAX_FAILURES, log=None):
    """Tries configurations smallest first until one reaches ``threshold``.

    Needs a Ray session (`ray_session`).

    Args:
        payloads: per configuration, the trial's config (plain values).
        params: per configuration, its parameter count (defines the order).
        threshold: accuracy a network must reach.
        storage, name: the Ray Tune experiment is ``storage/name``; if it
            exists (an interrupted run), it is restored and continued.
        prefix: experiments in ``storage`` starting with it ran the same
            trials for other thresholds: their finished trials are reused.
        trainable: Ray Tune function trainable (default `trial.run_trial`).
        workers: trials running at once; threads: CPUs (TF threads) per trial.
        record: JSON-lines file each finished trial's row is appended to.
        max_failures: retries of a trial whose worker died, each from its
            last checkpoint (an interrupted run restored keeps its own).
        log: None for a silent run; else Ray Tune's progress table is shown.

    Returns:
        dict with ``best`` (result row or None), ``explored`` (trials up to
        the answer in size order), ``trial_seconds`` (their summed time),
        ``trials_finished`` (including larger ones that finished before the
        answer did), ``rows`` (the explored results, in order), ``resumed``
        and ``resumed_seconds`` (trials of ``rows`` finished before this call,
        in an earlier exploration or an interrupted session of this one, and
        their recorded time: a wall clock started now misses it).
    """
    # Saving the experiment state at each trial checkpoint is wanted (see
    # _new_tuner); the progress table is CLIReporter's.
    settings = {"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
    if log:
        settings["RAY_AIR_NEW_OUTPUT"] = "0"
    with environment(settings, keep_set=True):
        return _explore(payloads, params, threshold, storage, name, prefix, trainable, workers,
                        threads, record, max_failures, log)


def _explore(payloads, params, threshold, storage, name, prefix, trainable, workers, threads,
             record, max_failures, log):
    storage = os.path.abspath(storage)
    path = os.path.join(storage, name)
    trainable = tune.with_resources(trainable, {"cpu": threads})
    known = earlier_rows(storage, prefix, name, trainable) if prefix else {}
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                   resume_errored=True)
        before = _finished_rows(tuner.get_results())
    else:
        searcher = ObjectiveOrder(payloads, params, threshold, workers, known)
        tuner = _new_tuner(trainable, searcher, storage, name, len(payloads), record,
                           max_failures, log)
        before = {}
    grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(f"{len(grid.errors)} trial(s) of {path} failed "
                           f"and were not retried further: {grid.errors[0]!r}")
    rows = {**known, **_finished_rows(grid)}
    result = summarize(params, threshold, rows, set(known) | set(before))
    if log:
        for row in result["rows"]:
            log(f"{row['init']:>7} config {row['config_index']:3d} params {row['params']:9d} "
                f"accuracy {row['accuracy']:.4f} ({row['seconds']:.1f} s)")
    return result
