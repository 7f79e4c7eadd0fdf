"""CIFAR-10: accuracy and speed of pruned networks, on the same weights.

    python bench/cifar10_study.py train --data PATH --method admm_pattern --seed 0 [--group-size 1]
    python bench/cifar10_study.py measure --data PATH     # on a quiet machine
    python bench/cifar10_study.py report

Every run starts from the dense model ``bench/results/cifar10/dense.keras``
(``cifar10_train.py``), trains on the same 45,000 images with the dense
recipe (flip + crop, SGD with Nesterov momentum, label smoothing, one-cycle
learning rate) and is scored on the same 5,000 held-out images. Methods, all
at the same budget of ``--admm-epochs + --finetune-epochs`` epochs:

* ``admm_pattern``: ``sparsity.prune_wrap`` with a pattern pool voted from the
  model, 4 of 9 weights per 3×3 kernel and ``--connectivity-rate`` of the
  kernels removed (every 3×3 conv but the first: 4/9 × 0.28 < 1/8 of the
  weights kept), ADMM for ``--admm-epochs``, ``hard_prune``, masked
  fine-tuning;
* ``oneshot_pattern``: the same projection at once, then masked fine-tuning;
* ``magnitude``: per layer the same number of weights kept, the largest in
  magnitude, anywhere in the kernel (unstructured), masks held by
  ``sparsity.MaskConstraint``;
* ``filter``: L1 filter pruning (``tune.surgery``) at the same conv MACs.

A run is resumable: each phase keeps ``keras.callbacks.BackupAndRestore``
state in ``--workdir/<run>/`` and its result there once finished, so the same
command continues where it stopped. A finished run's record is also written to
``bench/results/cifar10/runs/<run>.json`` (a few kB, committed): the workdir
is a cache outside the work tree and may not outlive the machine, while the
records are what the study is made of. ``measure`` converts and times the
runs whose trained model is still in the workdir and updates both records;
``report`` gathers ``runs/`` into ``bench/results/cifar10/study.json``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar10_data  # noqa: E402
import cifar10_train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "cifar10")
RUNS = os.path.join(RESULTS, "runs")
METHODS = ("admm_pattern", "oneshot_pattern", "magnitude", "filter")
DEFAULT_WORKDIR = os.path.join(os.path.dirname(cifar10_train.DEFAULT_WORKDIR), "cifar10_study")


DEFAULT_EPOCHS = (4, 6)
"""``--admm-epochs``, ``--finetune-epochs``: the study's budget."""


def run_name(method, group_size, seed, epochs=DEFAULT_EPOCHS):
    """The run's folder and record name. A budget other than the default is
    part of it (``_e4+16``): runs of different budgets must never resume from
    each other's checkpoints."""
    name = f"{method}_g{group_size}_s{seed}"
    if tuple(epochs) != DEFAULT_EPOCHS:
        name += f"_e{epochs[0]}+{epochs[1]}"
    return name


def recipe(args):
    """The training settings a record names and a resumed run must share."""
    return {"lr": args.lr, "admm_lr": args.admm_lr, "admm_penalty": args.admm_penalty,
            "rho": args.rho, "rho_growth": args.rho_growth, "rho_max": args.rho_max,
            "update_steps": args.update_steps, "batch_size": args.batch_size,
            "weight_decay": args.weight_decay, "warmup_epochs": args.warmup_epochs,
            "connectivity_rate": args.connectivity_rate, "train_limit": args.train_limit}


def claim_workdir(workdir, settings):
    """Records ``settings`` on a run's first start; a later start with other
    settings would resume checkpoints trained differently, so it is refused."""
    path = os.path.join(workdir, "settings.json")
    if os.path.exists(path):
        with open(path) as f:
            before = json.load(f)
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            raise SystemExit(
                f"Expected the settings of the run in {workdir} to resume it. Received: "
                + ", ".join(f"{k}={new!r} (the run has {old!r})"
                            for k, (old, new) in sorted(changed.items()))
                + ". Remove that folder or pass another --workdir.")
        return
    _write_json(path, settings)


def _write_json(path, doc):
    """Replaces ``path`` with ``doc`` whole (a killed run leaves the old file)."""
    from cocopie_keras import atomic_write

    with atomic_write.atomic_path(path) as temporary:
        with open(temporary, "w") as f:
            json.dump(doc, f, indent=1)


def pruning_config(args):
    from cocopie_keras import sparsity

    return sparsity.PatternPruningConfig(
        connectivity_rate=args.connectivity_rate, pattern_pool="model", num_patterns=8,
        skip_first_conv=True, pointwise_connectivity_rate=args.connectivity_rate,
        group_size=args.group_size)


def conv_density(model):
    """``(overall, largest per layer)`` kept fraction of the 3×3 Conv2D kernels
    after the first (the stem stays dense), and the convs' non-zero MACs."""
    import keras

    convs = [layer for layer in model._flatten_layers(include_self=False)
             if isinstance(layer, keras.layers.Conv2D)]
    kept = total = macs = 0
    largest = 0.0
    for index, layer in enumerate(convs):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        nonzero = int(np.count_nonzero(kernel))
        pixels = int(np.prod(layer.output.shape[1:3]))
        macs += nonzero * pixels
        if index == 0 or tuple(layer.kernel_size) != (3, 3):
            continue
        kept, total = kept + nonzero, total + kernel.size
        largest = max(largest, nonzero / kernel.size)
    return kept / total, largest, macs


class Phase:
    """One resumable training phase of a run."""

    def __init__(self, workdir, name, epochs, steps_per_epoch):
        self.workdir, self.name = workdir, name
        self.epochs, self.steps = epochs, steps_per_epoch
        self.done_path = os.path.join(workdir, f"{name}.keras")

    @property
    def done(self):
        return os.path.exists(self.done_path)

    def fit(self, model, dataset, callbacks, validation):
        import keras

        start = time.time()
        backup = keras.callbacks.BackupAndRestore(os.path.join(self.workdir, f"{self.name}_backup"))
        history = model.fit(dataset, epochs=self.epochs, steps_per_epoch=self.steps,
                            validation_data=validation, validation_batch_size=500,
                            callbacks=[*callbacks, backup], verbose=2)
        seconds = time.time() - start
        record = {"epochs": self.epochs, "seconds_this_process": round(seconds, 1),
                  "history": {k: [float(v) for v in vs] for k, vs in history.history.items()}}
        with open(os.path.join(self.workdir, f"{self.name}.json"), "w") as f:
            json.dump(record, f, indent=1)
        temporary = self.done_path + ".partial.keras"
        model.save(temporary)
        os.replace(temporary, self.done_path)


def _schedule(args, epochs, steps):
    from cocopie_keras import training

    return training.OneCycle(args.lr, steps * epochs, max(1, int(steps * args.warmup_epochs)))


def train_pattern(args, dense, batches, validation, workdir, use_admm):
    import keras

    from cocopie_keras import sparsity

    steps = len(batches)
    admm = Phase(workdir, "admm", args.admm_epochs, steps)
    budget = args.finetune_epochs + (0 if use_admm else args.admm_epochs)
    finetune = Phase(workdir, "finetune", budget, steps)
    if use_admm and not admm.done:
        wrapped = sparsity.prune_wrap(dense, pruning_config(args))
        # ADMM at a constant, moderate rate: the weights move toward the
        # patterns while the loss stays low; the one-cycle is for fine-tuning.
        cifar10_train.compile_model(wrapped, args.admm_lr, args.weight_decay)
        rho = sparsity.RhoSchedule(args.rho, args.rho_growth, args.rho_max)
        admm_callback = sparsity.ADMMCallback(update_every=args.update_steps,
                                              update_unit="step", rho=rho,
                                              penalty=args.admm_penalty, verbose=1)
        admm.fit(wrapped, batches.dataset(), [admm_callback], validation)
    if not finetune.done:
        if use_admm:
            wrapped = keras.saving.load_model(admm.done_path, compile=False)
        else:
            wrapped = sparsity.prune_wrap(dense, pruning_config(args))
        sparsity.hard_prune(wrapped)
        cifar10_train.compile_model(wrapped, _schedule(args, budget, steps), args.weight_decay)
        finetune.fit(wrapped, batches.dataset(first_epoch=1000),
                     [sparsity.MaskedFineTuneCallback()], validation)
    wrapped = keras.saving.load_model(finetune.done_path, compile=False)
    return sparsity.strip_pruning(wrapped)


def train_magnitude(args, dense, batches, validation, workdir):
    """Unstructured magnitude pruning with the pattern method's per-layer counts."""
    import keras

    from cocopie_keras import sparsity

    phase = Phase(workdir, "finetune", args.admm_epochs + args.finetune_epochs, len(batches))
    model = keras.models.clone_model(dense)
    model.set_weights(dense.get_weights())
    reference = keras.models.clone_model(dense)
    reference.set_weights(dense.get_weights())
    counts = {name: int(p.mask.sum())
              for name, p in sparsity.prune_in_place(reference, pruning_config(args)).items()}
    for name, keep in counts.items():
        kernel = model.get_layer(name).kernel
        values = np.abs(keras.ops.convert_to_numpy(kernel)).reshape(-1)
        mask = np.zeros(values.size, dtype=bool)
        mask[np.argsort(-values, kind="stable")[:keep]] = True
        mask = mask.reshape(kernel.shape).astype("float32")
        kernel.assign(keras.ops.convert_to_numpy(kernel) * mask)
        kernel.constraint = sparsity.MaskConstraint(keras.ops.convert_to_tensor(mask))
    if not phase.done:
        cifar10_train.compile_model(model, _schedule(args, phase.epochs, phase.steps),
                                    args.weight_decay)
        phase.fit(model, batches.dataset(first_epoch=1000), [], validation)
    model.load_weights(phase.done_path)
    return model


def train_filter(args, dense, batches, validation, workdir):
    """L1 filter pruning of every conv but the last, at the pattern method's conv MACs."""
    import keras

    from cocopie_keras import sparsity
    from cocopie_keras.cocotune import surgery

    reference = keras.models.clone_model(dense)
    reference.set_weights(dense.get_weights())
    sparsity.prune_in_place(reference, pruning_config(args))
    target = conv_density(reference)[2]
    convs = [layer.name for layer in dense.layers if isinstance(layer, keras.layers.Conv2D)]
    module = surgery.Module(convs=tuple(convs), input=dense.layers[1].name,
                            output=dense.get_layer(convs[-1]).name)
    low, high = 0.0, 0.95
    for _ in range(20):  # the rate whose conv MACs match the pattern model's
        rate = (low + high) / 2
        macs = conv_density(surgery.prune_filters(dense, [module], [rate]))[2]
        low, high = (rate, high) if macs > target else (low, rate)
    pruned = surgery.prune_filters(dense, [module], [high])
    phase = Phase(workdir, "finetune", args.admm_epochs + args.finetune_epochs, len(batches))
    if not phase.done:
        cifar10_train.compile_model(pruned, _schedule(args, phase.epochs, phase.steps),
                                    args.weight_decay)
        phase.fit(pruned, batches.dataset(first_epoch=1000), [], validation)
    pruned.load_weights(phase.done_path)
    return pruned, high


def train(args):
    import keras

    keras.utils.set_random_seed(args.seed)
    name = run_name(args.method, args.group_size, args.seed,
                    (args.admm_epochs, args.finetune_epochs))
    workdir = os.path.join(args.workdir, name)
    os.makedirs(workdir, exist_ok=True)
    claim_workdir(workdir, {**recipe(args), "dense": os.path.abspath(args.dense)})
    (x_train, y_train), (x_val, y_val) = cifar10_data.load_split(
        args.data, os.path.join(args.workdir, "cifar10_uint8.npz"))
    if args.train_limit:  # smoke runs only: the study trains on all 45,000
        pick = np.random.default_rng(0).permutation(len(y_train))[:args.train_limit]
        x_train, y_train = x_train[pick], y_train[pick]
        pick = np.random.default_rng(1).permutation(len(y_val))[:args.train_limit]
        x_val, y_val = x_val[pick], y_val[pick]
    batches = cifar10_train.augmented_batches(x_train, y_train, args.batch_size, args.seed)
    validation = (x_val.astype(np.float32), keras.utils.to_categorical(y_val, 10))
    dense = keras.saving.load_model(args.dense, compile=False)
    start = time.time()
    extra = {}
    if args.method in ("admm_pattern", "oneshot_pattern"):
        pruned = train_pattern(args, dense, batches, validation, workdir,
                               use_admm=args.method == "admm_pattern")
    elif args.method == "magnitude":
        pruned = train_magnitude(args, dense, batches, validation, workdir)
    else:
        pruned, extra["filter_rate"] = train_filter(args, dense, batches, validation, workdir)
    pruned.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
    _, accuracy = pruned.evaluate(*validation, batch_size=500, verbose=0)
    density, largest, macs = conv_density(pruned)
    pruned.save(os.path.join(workdir, "pruned.keras"))
    phases = {}
    for phase in ("admm", "finetune"):
        path = os.path.join(workdir, f"{phase}.json")
        if os.path.exists(path):
            with open(path) as f:
                phases[phase] = json.load(f)
    record = {"method": args.method, "group_size": args.group_size, "seed": args.seed,
              "val_accuracy": float(accuracy), "conv_weight_density": density,
              "largest_layer_density": largest, "conv_macs": int(macs),
              "connectivity_rate": args.connectivity_rate,
              "admm_epochs": args.admm_epochs if args.method == "admm_pattern" else 0,
              "epochs": args.admm_epochs + args.finetune_epochs,
              "recipe": recipe(args),
              "seconds_last_process": round(time.time() - start, 1), "phases": phases, **extra}
    if args.train_limit:
        record["train_limit"] = args.train_limit
    # Smoke runs on a subset stay in their workdir, out of the study.
    _save_record(record, workdir, name, committed=not args.train_limit)
    print(json.dumps({k: v for k, v in record.items() if k != "phases"}, indent=1))
    return record


def _latencies_ms(models, image, threads, rounds=20, repeats=200):
    """Median over interleaved rounds of each interpreter's median latency.

    The model takes well under a millisecond, so a round times ``repeats``
    invokes: with 5 rounds of 30 the ratio moved by 15 % between calls."""
    from cocopie_keras.bench import timing
    from cocopie_keras import delegate

    interpreters = {name: delegate.make_interpreter(data, use_delegate=ours, num_threads=threads)
                    for name, (data, ours) in models.items()}
    samples = {name: [] for name in models}
    for _ in range(rounds):  # interleaved: load drifts hit every runtime alike
        for name, interpreter in interpreters.items():
            samples[name].append(timing.median_latency_ms(interpreter, image,
                                                          repeats=repeats)[0])
    return {name: float(np.median(values)) for name, values in samples.items()}


def measure(args):
    """Converts every finished run and times it next to XNNPACK (quiet machine only)."""
    import cifar10_export

    from cocopie_keras import converter
    from cocopie_keras.commands import _inputs

    (_, _), (x_val, y_val) = cifar10_data.load_split(
        args.data, os.path.join(args.workdir, "cifar10_uint8.npz"))
    with open(os.path.join(RESULTS, "dense.tflite"), "rb") as f:
        dense_tflite = f.read()
    image = x_val[:1].astype(np.float32)  # real pixels: activations at their trained scale
    for name in sorted(os.listdir(args.workdir)):
        path = os.path.join(args.workdir, name, "result.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            record = json.load(f)
        # The wrapped model, where there is one: the LR then gets the pools
        # and ids training chose.
        trained = os.path.join(args.workdir, name, "finetune.keras")
        data = converter.convert(_inputs.load_keras_model(trained))
        with open(os.path.join(args.workdir, name, "pruned.tflite"), "wb") as f:
            f.write(data)
        stock, _ = cifar10_export.tflite_predictions(data, x_val, use_delegate=False)
        ours, claimed = cifar10_export.tflite_predictions(data, x_val, use_delegate=True)
        times = _latencies_ms({"cocopie": (data, True), "xnnpack_dense": (dense_tflite, False),
                               "xnnpack_same_weights": (data, False)}, image, args.threads)
        record.update({"tflite_bytes": len(data),
                       "val_accuracy_tflite": float(np.mean(stock == y_val)),
                       "cocopie_agrees_with_stock": float(np.mean(ours == stock)),
                       "cocopie_claimed_nodes": claimed, "threads": args.threads,
                       **{f"latency_ms_{k}": v for k, v in times.items()}})
        record["speedup_vs_xnnpack_dense"] = times["xnnpack_dense"] / times["cocopie"]
        _save_record(record, os.path.join(args.workdir, name), name,
                     committed="train_limit" not in record)
        print(name, {k: record[k] for k in ("val_accuracy", "tflite_bytes",
                                            "speedup_vs_xnnpack_dense")})


def _save_record(record, workdir, name, committed=True):
    """The run's record, in its workdir and (``committed``) in ``runs/``."""
    paths = [os.path.join(workdir, "result.json")]
    if committed:
        os.makedirs(RUNS, exist_ok=True)
        paths.append(os.path.join(RUNS, f"{name}.json"))
    for path in paths:
        _write_json(path, record)


def report(args):
    rows = []
    for name in sorted(os.listdir(RUNS)) if os.path.isdir(RUNS) else []:
        if name.endswith(".json"):
            with open(os.path.join(RUNS, name)) as f:
                row = json.load(f)
            row.pop("phases", None)
            rows.append(row)
    with open(os.path.join(RESULTS, "dense_training.json")) as f:
        dense = json.load(f)
    rows.insert(0, {"method": "dense", "group_size": None, "seed": 0,
                    "val_accuracy": dense["val_accuracy"], "conv_weight_density": 1.0})
    with open(os.path.join(RESULTS, "study.json"), "w") as f:
        json.dump({"command": "python bench/cifar10_study.py train ...; report", "rows": rows},
                  f, indent=1)
    print(json.dumps(rows, indent=1))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train one pruned network (resumable)")
    run.add_argument("--data", required=True,
                     help="folder of class folders (train/<class>/*.jpg) or its .tar.gz")
    run.add_argument("--method", choices=METHODS, required=True)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--group-size", type=int, default=1)
    run.add_argument("--connectivity-rate", type=float, default=0.72)
    run.add_argument("--dense", default=os.path.join(RESULTS, "dense.keras"))
    run.add_argument("--admm-epochs", type=int, default=DEFAULT_EPOCHS[0])
    run.add_argument("--finetune-epochs", type=int, default=DEFAULT_EPOCHS[1])
    run.add_argument("--batch-size", type=int, default=512)
    run.add_argument("--lr", type=float, default=0.1, help="fine-tuning one-cycle peak")
    run.add_argument("--warmup-epochs", type=float, default=0.5)
    run.add_argument("--weight-decay", type=float,
                     help="decoupled weight decay of every phase (default: the dense "
                          "recipe's, from the dense_training.json beside --dense)")
    run.add_argument("--admm-lr", type=float, default=0.02)
    # Every conv is followed by BatchNormalization: the absolute penalty
    # (rho 0.02 x 1.3^k up to 1) shrank the kernels 3x in two ADMM epochs and
    # took the unpruned validation accuracy to 56 % (ADMMCallback). In the
    # direction penalty's units a step moves W/|W| by lr/(1 - momentum) *
    # rho / |W|^2 of the gap, and |W|^2 is 19-89 here: rho 15 closes half the
    # gap of the largest kernel between two updates (rho 1 x 1.3^k left it
    # at 1.0-1.1 relative residual for a whole epoch, U piling up).
    run.add_argument("--admm-penalty", choices=("absolute", "direction"), default="direction")
    run.add_argument("--rho", type=float, default=15.0)
    run.add_argument("--rho-growth", type=float, default=1.1)
    run.add_argument("--rho-max", type=float, default=50.0)
    run.add_argument("--update-steps", type=int, default=22, help="steps between Z/U updates")
    run.add_argument("--train-limit", type=int, default=0, help=argparse.SUPPRESS)
    timing = commands.add_parser("measure", help="convert finished runs and time them "
                                 "against XNNPACK (on a quiet machine)")
    timing.add_argument("--data", required=True)
    timing.add_argument("--threads", type=int, default=2)
    for sub in (run, timing, commands.add_parser("report", help="gather finished runs")):
        sub.add_argument("--workdir", default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    if args.command == "train" and (args.admm_epochs < 0 or args.finetune_epochs < 1):
        parser.error("expected --admm-epochs >= 0 and --finetune-epochs >= 1")
    if args.command == "train" and args.weight_decay is None:
        args.weight_decay = _dense_weight_decay(args.dense, parser)
    return args


def _dense_weight_decay(dense_path, parser):
    """The weight decay the dense model was trained with (its training record)."""
    record_path = os.path.join(os.path.dirname(os.path.abspath(dense_path)),
                               "dense_training.json")
    if not os.path.exists(record_path):
        parser.error(f"expected --weight-decay, or the training record {record_path} "
                     "beside --dense")
    with open(record_path) as f:
        return float(json.load(f)["recipe"]["weight_decay"])


if __name__ == "__main__":
    arguments = parse_args()
    {"train": train, "measure": measure, "report": report}[arguments.command](arguments)
