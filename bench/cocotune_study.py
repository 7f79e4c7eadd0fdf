"""CoCo-Tune study: composability-based vs default filter-pruning exploration.

A ResNet-style model is trained on a CIFAR-10 subset, then for each subspace
size, accuracy drop α and number of Ray workers, the same subspace is explored
twice, smallest network first, each trial fine-tuned until it reaches the
threshold (full accuracy − α) or runs out of epochs:

* ``base``: networks initialized from the full model's surviving weights;
* ``comp``: networks assembled from tuning blocks pre-trained teacher–student
  (the pre-training time is counted in every ``comp`` row).

Work shared between rows: one teacher; one block pre-training per subspace;
with one worker only the smallest α is explored, the looser ones are read from
its trials (`rederive`: a looser trial is a prefix of the stricter one).
Everything lands in ``--workdir``, so a rerun resumes: finished explorations
are read back, an interrupted one continues its Ray Tune experiment. Once
``--stop-after-minutes`` have passed no exploration starts; a 1-worker one that
was stopped is then reported from the trials it recorded (``complete: false``
on a side without a success: its time is a lower bound).

Data: ``--data PATH``, a folder of ``<class>/*.jpg`` (or with a ``train/``
folder inside), or the ``.tar.gz`` of one (only the chosen files are
unpacked); ``--per-class`` seeded-random images of each class are used (80 %
train, 20 % validation), loaded with Keras's image-folder loader.

With ``--teacher MODEL.keras`` (the dense CIFAR-10 network of the accuracy
study, ``bench/results/cifar10/dense.keras``: 0-255 images in, trained on the
45,000 images of ``cifar10_data``'s split) no teacher is trained: trials
fine-tune on ``--train-images`` of those 45,000 (the same number of each
class, fixed seed) and are scored on ``--val-images`` of the 5,000 held-out
images the teacher never saw. A plain chain without residual blocks is split
into modules by ``surgery.infer_chain_modules`` (conv pairs after the stem).

Run (see bench/cocotune_study.md for the settings used and the timings):

    nice -n 10 .venv/bin/python bench/cocotune_study.py --data PATH

Smoke (two minutes): ``--per-class 20 --sizes 4 --alphas 0.3,0.5 --workers 1,2
--teacher-epochs 1 --epochs 1 --pretrain-epochs 1 --workdir /tmp/s --output
/tmp/s/out.json``.

Writes ``bench/results/cocotune_study.json``: rows ``{subspace_size, alpha,
workers, base: {configs_explored, hours, params, accuracy}, comp:
{configs_explored, hours, pretrain_overhead_pct, params, accuracy}, speedup}``
(plus how each was timed, the load average around it, and the accuracy
curves), a ``setup`` record, ``initial_accuracy`` (every network before
fine-tuning, both inits) and a PNG beside it.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)  # cifar10_data, cocotune_data, cocotune_rows

import cocotune_data  # noqa: E402
import cocotune_rows  # noqa: E402


def resnet(input_shape=(32, 32, 3), widths=(16, 32, 64), blocks_per_stage=2, classes=10):
    """ResNet-style: stem, stages of identity blocks, stride-2 convs between stages."""
    import functools

    import keras

    layers = keras.layers
    # Momentum 0.9: with a few hundred steps per run, the default 0.99 leaves the
    # moving statistics far from the data and inference accuracy near chance.
    batch_norm = functools.partial(layers.BatchNormalization, momentum=0.9)
    x = inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.ReLU(name="stem_relu")(batch_norm(name="stem_bn")(x))
    for stage, width in enumerate(widths):
        if stage:
            x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False,
                              name=f"down{stage}")(x)
            x = layers.ReLU(name=f"down{stage}_relu")(
                batch_norm(name=f"down{stage}_bn")(x))
        for block in range(blocks_per_stage):
            name = f"s{stage}b{block}"
            y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
            y = layers.ReLU(name=f"{name}_relu1")(batch_norm(name=f"{name}_bn1")(y))
            y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
            y = batch_norm(name=f"{name}_bn2")(y)
            x = layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x), name="resnet_small")


def load_teacher(path, validation):
    """The trained teacher and its record (from the ``dense_training.json`` beside it)."""
    import keras

    model = keras.saving.load_model(path, compile=False)
    record_path = os.path.join(os.path.dirname(os.path.abspath(path)), "dense_training.json")
    record = {}
    if os.path.exists(record_path):
        with open(record_path) as f:
            record = json.load(f)
    predictions = model.predict(validation[0], batch_size=256, verbose=0)
    return model, {"path": path, "seconds": record.get("wall_seconds", 0.0),
                   "epochs": record.get("recipe", {}).get("epochs"),
                   "training_val_accuracy": record.get("val_accuracy"),
                   "val_accuracy": float(np.mean(np.argmax(predictions, -1) == validation[1])),
                   "train_images": record.get("split", {}).get("train")}


def load_average():
    """The 1-, 5- and 15-minute load averages (the machine may be shared)."""
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def train_teacher(train, validation, epochs, batch_size, path):
    """Trains `resnet` (Adam, cosine-decayed rate) and saves it with a JSON record."""
    import keras

    info_path = os.path.splitext(path)[0] + ".json"
    if os.path.exists(path) and os.path.exists(info_path):
        with open(info_path) as f:
            return keras.saving.load_model(path, compile=False), json.load(f)
    model = resnet()
    steps = epochs * -(-len(train[0]) // batch_size)
    # A decayed rate ends on a settled model: the accuracy threshold is then
    # not set by a lucky or unlucky last epoch.
    rate = keras.optimizers.schedules.CosineDecay(2e-3, steps)
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    started = time.time()
    history = model.fit(*train, epochs=epochs, batch_size=batch_size,
                        validation_data=validation, verbose=2)
    info = {"seconds": time.time() - started, "epochs": epochs,
            "train_accuracy": history.history["accuracy"][-1],
            "val_accuracy": history.history["val_accuracy"][-1],
            "val_accuracy_curve": history.history["val_accuracy"]}
    model.save(path)
    with open(info_path, "w") as f:
        json.dump(info, f)
    return model, info


def pretrain_subspace(model, modules, configs, x_train, epochs, batch_size, directory):
    """Pre-trains the tuning blocks of one subspace once; every row reuses them."""
    from cocopie_keras import cocotune as tune
    from cocopie_keras.cocotune import pretrain

    os.makedirs(directory, exist_ok=True)
    blocks_path = os.path.join(directory, "blocks.npz")
    timing_path = os.path.join(directory, "pretrain.json")
    if not (os.path.exists(blocks_path) and os.path.exists(timing_path)):
        found = tune.identify_blocks(configs)
        load = load_average()
        started = time.time()
        weights = pretrain.pretrain_blocks(model, modules, found.blocks, x_train,
                                           epochs=epochs, batch_size=batch_size)
        seconds = time.time() - started
        pretrain.save_block_weights(blocks_path, weights)
        with open(timing_path, "w") as f:
            json.dump({"seconds": seconds, "blocks": len(found.blocks), "epochs": epochs,
                       "load_before": load, "load_after": load_average()}, f)
    with open(timing_path) as f:
        print(f"subspace of {len(configs)}: {json.load(f)}", flush=True)
    return directory


def initial_accuracies(model, modules, configs, composites, params, validation, blocks_path):
    """Accuracy of every network of the subspace before fine-tuning, both inits."""
    import keras

    from cocopie_keras.cocotune import pretrain

    weights = pretrain.load_block_weights(blocks_path)
    points = []
    for index, config in enumerate(configs):
        for init in ("default", "block"):
            ids = composites[index] if init == "block" else None
            net = pretrain.assemble(model, modules, config, ids, weights if ids else None)
            net.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
            accuracy = float(net.evaluate(*validation, verbose=0, batch_size=256)[1])
            points.append({"subspace_size": len(configs), "config": list(config),
                           "init": init, "params": params[index], "accuracy": accuracy})
    return points


def plot(rows, points, path_prefix):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots")
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for init, marker, label in (("default", "o", "default (teacher's surviving weights)"),
                                ("block", "^", "block-trained")):
        chosen = [p for p in points if p["init"] == init]
        left.scatter([p["params"] for p in chosen], [p["accuracy"] for p in chosen],
                     marker=marker, label=label, alpha=0.6)
    if rows:
        left.axhline(rows[0]["full_accuracy"], color="gray", lw=0.8, label="full model")
    left.set_xlabel("parameters")
    left.set_ylabel("validation accuracy before fine-tuning")
    left.legend(fontsize=8)
    # One measured row per subspace: the curves of the explored trials.
    shown = [r for r in rows if not r["timing"].startswith("rederived") and r["workers"] == 1]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for number, row in enumerate(shown[:2]):
        for side, style in (("base", "--"), ("comp", "-")):
            for curve in row[side]["curves"][:12]:
                right.plot(range(len(curve)), curve, style, color=colors[number],
                           marker=".", alpha=0.5)
        right.axhline(row["threshold"], color=colors[number], lw=0.8, ls=":")
    right.set_xlabel("fine-tuning epoch (solid: block-trained, dashed: default; "
                     "dotted: threshold)")
    right.set_ylabel("validation accuracy")
    right.set_title(", ".join(f"{r['subspace_size']} configs, alpha {r['alpha']}"
                              for r in shown[:2]), fontsize=9)
    figure.tight_layout()
    figure.savefig(path_prefix + ".png", dpi=110)
    print(f"wrote {path_prefix}.png")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--alphas", default="0.02,0.05")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3, help="max fine-tuning epochs per trial")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rederive", action=argparse.BooleanOptionalAction, default=True,
                        help="1 worker: run the smallest alpha, read the others from its trials")
    parser.add_argument("--stop-after-minutes", type=float, default=None,
                        help="start no new row after this long (rows done are written)")
    parser.add_argument("--teacher-only", action="store_true")
    parser.add_argument("--teacher", help="a trained .keras classifier of 0-255 images whose "
                        "training used cifar10_data's split (no teacher is trained then)")
    parser.add_argument("--train-images", type=int, default=5000,
                        help="with --teacher: trial training images, of the 45,000")
    parser.add_argument("--val-images", type=int, default=2000,
                        help="with --teacher: validation images, of the 5,000 held out")
    parser.add_argument("--rates", help="filter-pruning rates, comma-separated "
                        "(default: cocotune.blocks.DEFAULT_RATES)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "cocotune_study"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "cocotune_study.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.alphas = sorted(float(a) for a in args.alphas.split(","))
    args.workers = sorted(int(w) for w in args.workers.split(","))
    for name in ("sizes", "alphas", "workers"):
        values = getattr(args, name)
        if not values or min(values) <= 0:
            raise ValueError(f"Expected positive --{name}. Received: {values}")
    return args


class Study:
    """One run of the study: the teacher, its subspaces, and the workdir the
    explorations resume from (a finished exploration is read back, not rerun)."""

    def __init__(self, args, model, teacher, train, validation, started):
        from cocopie_keras import cocotune as tune
        from cocopie_keras.cocotune import surgery

        self.args, self.model, self.teacher = args, model, teacher
        self.train, self.validation, self.started = train, validation, started
        self.modules = surgery.infer_modules(model) or surgery.infer_chain_modules(model)
        self.rates = ([float(r) for r in args.rates.split(",")] if args.rates
                      else list(tune.blocks.DEFAULT_RATES))
        self.subspaces = {size: tune.sample_subspace(len(self.modules), size, self.rates,
                                                     seed=args.seed)
                          for size in args.sizes}
        self.rows_dir = os.path.join(args.workdir, "rows")
        os.makedirs(self.rows_dir, exist_ok=True)
        self.loads = {}  # 1/5/15-minute load averages around each exploration

    def subspace_dir(self, size):
        return pretrain_subspace(self.model, self.modules, self.subspaces[size], self.train[0],
                                 self.args.pretrain_epochs, self.args.batch_size,
                                 os.path.join(self.args.workdir, f"n{size}"))

    def out_of_time(self):
        limit = self.args.stop_after_minutes
        return limit is not None and time.time() - self.started > 60.0 * limit

    def explore(self, size, alpha, workers, path, workdir):
        """Runs one exploration on Ray Tune and stores its summary at ``path``."""
        from cocopie_keras import cocotune as tune

        shared = self.subspace_dir(size)
        os.makedirs(workdir, exist_ok=True)
        for name in ("blocks.npz", "pretrain.json"):
            shutil.copy(os.path.join(shared, name), workdir)
        load_before = load_average()
        args = self.args
        summary = tune.tune(
            self.model, self.train, self.validation, workdir, modules=self.modules,
            configs=self.subspaces[size], alpha=alpha, epochs=args.epochs,
            pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size,
            executor="ray", workers=workers, threads=1, seed=args.seed)
        with open(path, "w") as f:
            json.dump({"summary": summary,
                       "load": {"before": load_before, "after": load_average()}}, f)

    def rows_for(self, size, alpha, workers, run_alphas):
        """The rows one exploration gives (its own alpha, and the looser ones read
        from its trials), running it first unless it finished before."""
        key = f"n{size}_a{alpha}_w{workers}"
        path = os.path.join(self.rows_dir, key + ".json")
        workdir = os.path.join(self.args.workdir, key)
        alphas = self.args.alphas
        if not os.path.exists(path) and not self.out_of_time():
            self.explore(size, alpha, workers, path, workdir)
        if os.path.exists(path):
            with open(path) as f:
                done = json.load(f)
            summary, load, timing = done["summary"], done["load"], "measured"
            rows = [cocotune_rows.make_row(size, alpha, workers, summary, summary["default"],
                                           summary["block"], summary["pretrain_seconds"],
                                           timing, load)]
            derived = alphas[1:] if run_alphas != alphas else []
            derived_timing = f"rederived from alpha {alpha}"
        elif workers == 1 and os.path.exists(os.path.join(workdir, "trials.jsonl")):
            summary = cocotune_rows.stopped_summary(
                workdir, evaluate(self.model, self.validation), self.model.count_params(), size)
            load, rows, derived = None, [], alphas
            derived_timing = "read from the trials recorded before the run was stopped"
        else:
            print(f"out of time: {key} not run", flush=True)
            return []
        for looser in derived:
            threshold = summary["full_accuracy"] - looser
            rows.append(cocotune_rows.make_row(
                size, looser, workers, summary,
                cocotune_rows.rederive(summary["default"], threshold),
                cocotune_rows.rederive(summary["block"], threshold),
                summary["pretrain_seconds"], derived_timing, load))
        self.loads[key] = load
        return rows

    def initial_points(self):
        """Accuracy before fine-tuning of every network of each pre-trained subspace."""
        from cocopie_keras import cocotune as tune
        from cocopie_keras.cocotune import surgery

        points = []
        for size in self.args.sizes:
            directory = os.path.join(self.args.workdir, f"n{size}")
            points_path = os.path.join(directory, "initial_accuracy.json")
            if not os.path.exists(points_path):
                if not os.path.exists(os.path.join(directory, "blocks.npz")):
                    continue
                configs = self.subspaces[size]
                found = tune.identify_blocks(configs)
                params = [surgery.prune_filters(self.model, self.modules, c).count_params()
                          for c in configs]
                found_points = initial_accuracies(
                    self.model, self.modules, configs, found.composites, params,
                    self.validation, os.path.join(self.subspace_dir(size), "blocks.npz"))
                with open(points_path, "w") as f:
                    json.dump(found_points, f)
            with open(points_path) as f:
                points += json.load(f)
        return points

    def pretrain_loads(self):
        """Load averages around each block pre-training done so far."""
        loads = {}
        for size in self.args.sizes:
            timing_path = os.path.join(self.args.workdir, f"n{size}", "pretrain.json")
            if os.path.exists(timing_path):
                with open(timing_path) as f:
                    timing = json.load(f)
                loads[f"pretrain_n{size}"] = {"before": timing.get("load_before"),
                                              "after": timing.get("load_after")}
        return loads

    def write(self, rows, points):
        args = self.args
        setup = {"per_class": args.per_class, "train_images": len(self.train[0]),
                 "validation_images": len(self.validation[0]), "teacher": dict(self.teacher),
                 "teacher_params": int(self.model.count_params()),
                 "modules": len(self.modules), "rates": self.rates,
                 "max_epochs_per_trial": args.epochs, "pretrain_epochs": args.pretrain_epochs,
                 "batch_size": args.batch_size, "tf_threads_per_trial": 1,
                 "cpus": os.cpu_count(), "shared_machine": True,
                 "load_averages": {**self.pretrain_loads(), **self.loads}}
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump({"setup": setup, "rows": rows, "initial_accuracy": points}, f, indent=1)


def evaluate(model, validation):
    predictions = model.predict(validation[0], batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, -1) == validation[1]))


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    from cocopie_keras.cocotune import explore
    explore.limit_threads(1)  # as each trial: block pre-training runs on one core too
    import keras

    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.workdir, exist_ok=True)
    if args.teacher:
        train, validation = cocotune_data.study_data(
            args.data, args.workdir, args.seed, train_images=args.train_images,
            val_images=args.val_images)
    else:
        train, validation = cocotune_data.study_data(args.data, args.workdir, args.seed,
                                                     per_class=args.per_class)
    print(f"data: {len(train[0])} train / {len(validation[0])} validation images", flush=True)
    if args.teacher:
        model, teacher = load_teacher(args.teacher, validation)
    else:
        model, teacher = train_teacher(train, validation, args.teacher_epochs, args.batch_size,
                                       os.path.join(args.workdir, "teacher.keras"))
    study = Study(args, model, teacher, train, validation, started)
    print(f"teacher: {model.count_params()} params, {len(study.modules)} modules, "
          f"val accuracy {teacher['val_accuracy']:.4f}, {teacher['seconds']:.0f} s", flush=True)
    if args.teacher_only:
        return 0
    rows = []
    for workers in args.workers:
        for size in args.sizes:
            # One worker: the strictest alpha is run, the looser ones read from its trials.
            run_alphas = args.alphas[:1] if workers == 1 and args.rederive else args.alphas
            for alpha in run_alphas:
                new = study.rows_for(size, alpha, workers, run_alphas)
                for row in new:
                    print(json.dumps({k: row[k] for k in ("subspace_size", "alpha", "workers",
                                                           "speedup", "timing")}), flush=True)
                rows += new
                study.write(rows, [])
    points = study.initial_points()
    study.write(rows, points)
    print(f"wrote {args.output}")
    plot(rows, points, os.path.splitext(args.output)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
