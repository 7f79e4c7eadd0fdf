"""Ray Tune trainables for the CoCo-Tune exploration tests (imported by Ray workers).

Kept free of Keras, so a worker starts in a fraction of a second: these stand
for `trial.run_trial` where only the exploration's logic is under test.
"""

import json
import os
import signal
import tempfile
import time


def note(directory, name):
    """Creates a uniquely named file: executions are counted by listing ``directory``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.{os.getpid()}.{time.time_ns()}")
    open(path, "w").close()


def executions(directory):
    """Names noted in ``directory`` (with repeats), in the order they were noted."""
    if not os.path.isdir(directory):
        return []
    names = [name.split(".") for name in os.listdir(directory)]
    return [name for name, _, _ in sorted(names, key=lambda parts: int(parts[2]))]


def wait_for_row(record, index, timeout=120.0):
    """Waits until the exploration's ``record`` (JSON lines) holds trial ``index``'s row."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(record):
            with open(record) as f:
                if any(json.loads(line)["config_index"] == index for line in f if line.strip()):
                    return
        time.sleep(0.05)


def fake_trial(config):
    """Accuracy 1 - mean rate, reached after ``epochs`` reports of ``sleep`` s each.

    A checkpoint holds the epochs done. ``count_dir`` notes each start of
    training as ``<init>_<index>_<first epoch>`` (a trial restarted after its
    last report only reports again); ``epoch_dir`` notes every epoch reported
    the same way. ``kill`` (a flag file) makes the worker kill itself once,
    after its first epoch report, if that file is absent. ``after_row``
    ``{index: [record, other index]}`` holds a trial's last report until the
    exploration has recorded the other trial's row: an order of completion
    that does not depend on how fast workers start.
    """
    from ray import tune

    done = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            with open(os.path.join(directory, "state.json")) as f:
                done = json.load(f)["done"]
    rates = config["config"]
    accuracy = 1.0 - sum(rates) / len(rates)
    epochs = config.get("epochs", 1)
    if config.get("count_dir") and done < epochs:
        note(config["count_dir"], f"{config['init']}_{config['config_index']}_{done}")
    if done == epochs:
        done -= 1  # restarted after its last report: that report is made again
    while done < epochs:
        time.sleep(config.get("sleep", {}).get(str(config["config_index"]), 0.0))
        done += 1
        complete = done == epochs
        after = config.get("after_row", {}).get(str(config["config_index"]))
        if complete and after:
            wait_for_row(*after)
        row = {"init": config["init"], "config": rates, "config_index": config["config_index"],
               "params": int(1000 * (1 - sum(rates) / len(rates))), "accuracy": accuracy,
               "accuracy_curve": [accuracy], "seconds": 1.0}
        metrics = {"val_accuracy": accuracy, "epoch": done, "complete": complete}
        if complete:
            metrics["row"] = json.dumps(row)
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "state.json"), "w") as f:
                json.dump({"done": done}, f)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        if config.get("epoch_dir"):
            note(config["epoch_dir"], f"{config['init']}_{config['config_index']}_{done}")
        flag = config.get("kill")
        if flag and not complete and not os.path.exists(flag):
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


def count_start(directory, event, config, epoch):
    """`trial.run_trial` hook: notes each start of training (see `note`)."""
    if event == "start":
        note(directory, f"{config['init']}_{config['config_index']}_{epoch}")


def kill_once(flag, index, event, config, epoch):
    """`trial.run_trial` hook: the worker of trial ``index`` dies after its first
    reported epoch, once (``flag`` is created first)."""
    if event == "epoch" and config["config_index"] == index and not os.path.exists(flag):
        open(flag, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
