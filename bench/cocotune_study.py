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
import tarfile
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)  # cifar10_data


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


def _extract_subset(archive_path, per_class, seed, destination):
    """Unpacks ``per_class`` seeded-random JPEGs of each class folder of a .tar.gz.

    Only the chosen members are decompressed to disk (the archive holds 50,000).
    """
    with tarfile.open(archive_path) as archive:
        by_class = {}
        for member in archive.getmembers():
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                by_class.setdefault(os.path.dirname(member.name), []).append(member)
        if not by_class:
            raise ValueError("Expected class folders of images in --data. "
                             f"Received: {archive_path!r}")
        rng = np.random.default_rng(seed)
        chosen = []
        for folder in sorted(by_class):
            members = sorted(by_class[folder], key=lambda m: m.name)
            picks = rng.permutation(len(members))[:per_class]
            chosen += [members[i] for i in sorted(picks)]
        # Archive order: a gzip stream only reads forward, so any other order
        # decompresses the archive again for every backward step.
        chosen.sort(key=lambda m: m.offset)
        archive.extractall(destination, members=chosen, filter="data")
    roots = {os.path.dirname(os.path.dirname(m.name)) for m in chosen}
    return os.path.join(destination, roots.pop()) if len(roots) == 1 else destination


def load_images(path, per_class, seed):
    """``(x_train, y_train), (x_val, y_val)`` from a class-folder tree or its .tar.gz.

    ``per_class`` images of each class, 80 % train / 20 % validation (seeded).
    """
    import keras

    if per_class < 5:
        raise ValueError(f"Expected per_class >= 5. Received: per_class={per_class}")
    cleanup = None
    if os.path.isfile(path) and path.endswith((".tar.gz", ".tgz")):
        cleanup = tempfile.mkdtemp(prefix="cocotune_data_")
        path = _extract_subset(path, per_class, seed, cleanup)
    if not os.path.isdir(path):
        raise ValueError("Expected --data to be an image folder or its .tar.gz. "
                         f"Received: {path!r}")
    if os.path.isdir(os.path.join(path, "train")):
        path = os.path.join(path, "train")
    try:
        dataset = keras.utils.image_dataset_from_directory(
            path, image_size=(32, 32), batch_size=None, shuffle=True, seed=seed, verbose=False)
        counts, images, labels = {}, [], []
        for image, label in dataset.as_numpy_iterator():
            label = int(label)
            if counts.get(label, 0) < per_class:
                counts[label] = counts.get(label, 0) + 1
                images.append(image)
                labels.append(label)
    finally:
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
    x = np.stack(images).astype("float32") / 255.0
    y = np.asarray(labels, dtype="int32")
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def split_subsets(data, workdir, train_images, val_images, seed):
    """``train_images`` of the 45,000 training images (as many of each class)
    and ``val_images`` of the 5,000 held out, from ``cifar10_data``'s split;
    float32 pixels in 0-255, the teacher's input."""
    import cifar10_data

    (x_train, y_train), (x_val, y_val) = cifar10_data.load_split(
        data, os.path.join(workdir, "cifar10_uint8.npz"))
    classes = len(cifar10_data.CLASSES)
    if not (classes <= train_images <= len(y_train) and 1 <= val_images <= len(y_val)):
        raise ValueError(f"Expected {classes} <= train_images <= {len(y_train)} and 1 <= "
                         f"val_images <= {len(y_val)}. Received: train_images={train_images}, "
                         f"val_images={val_images}")
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(y_train == c))[:train_images // classes]
                           for c in range(classes)])
    pick = rng.permutation(pick)
    held = rng.permutation(len(y_val))[:val_images]
    return ((x_train[pick].astype("float32"), y_train[pick].astype("int32")),
            (x_val[held].astype("float32"), y_val[held].astype("int32")))


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


def _side(result, extra_seconds=0.0):
    best = result["best"] or {}
    seconds = result["wall_seconds"] + result.get("resumed_seconds", 0.0) + extra_seconds
    return {"configs_explored": result["explored"], "hours": seconds / 3600.0,
            "params": best.get("params"), "accuracy": best.get("accuracy"),
            "found": bool(result["best"]), "trials_resumed": result.get("resumed", 0),
            # False: stopped for time before a success or the end of the subspace.
            "complete": bool(result["best"]) or result.get("complete", True),
            "epochs": [r.get("epochs") for r in result["rows"]],
            "curves": [r["accuracy_curve"] for r in result["rows"]]}


def rederive(result, threshold):
    """The 1-worker exploration at a looser ``threshold``, read from a stricter one.

    With one worker, trials run one after the other, smallest first. A trial
    fine-tuned towards a stricter target does, epoch for epoch, the training
    the looser trial would do, and then goes on: the looser trial is the prefix
    up to the first epoch reaching ``threshold``. Every configuration the
    looser exploration tries was tried by the stricter one (a network meeting
    the stricter target meets the looser one). Its time is each trial's set-up
    plus its measured epochs up to that point, plus the scheduling gap between
    trials measured in the stricter run.
    """
    rows = result["rows"]
    recorded = sum(r["seconds"] for r in rows)
    gap = max(0.0, result["wall_seconds"] + result.get("resumed_seconds", 0.0) - recorded)
    gap /= max(len(rows), 1)
    used, best, seconds = [], None, 0.0
    for row in rows:
        curve = row["accuracy_curve"]
        reached = next((k for k, a in enumerate(curve) if a >= threshold), None)
        stop = reached if reached is not None else len(curve) - 1
        epochs = row["epoch_seconds"]
        tail = row["seconds"] - row["setup_seconds"] - sum(epochs)
        seconds += row["setup_seconds"] + sum(epochs[:stop]) + max(tail, 0.0) + gap
        used.append(dict(row, accuracy_curve=curve[:stop + 1], accuracy=curve[stop],
                         epochs=stop))
        if reached is not None:
            best = used[-1]
            break
    return {"best": best, "explored": len(used), "wall_seconds": seconds, "rows": used,
            "resumed": 0, "resumed_seconds": 0.0, "complete": result.get("complete", True)}


def stopped_summary(workdir, model, validation, size):
    """A 1-worker exploration stopped before its end, read from its ``trials.jsonl``
    (the log of finished trials the exploration appends to).

    Trials ran smallest first, one at a time, so the recorded ones are the
    smallest networks; each side is read up to its first success with
    `rederive`. A side without a success that did not try every network is
    marked incomplete: its time is then a lower bound.
    """
    with open(os.path.join(workdir, "pretrain.json")) as f:
        timing = json.load(f)
    pretrain_seconds, blocks = timing["seconds"], timing.get("blocks", 0)
    predictions = model.predict(validation[0], batch_size=256, verbose=0)
    full_accuracy = float(np.mean(np.argmax(predictions, -1) == validation[1]))
    stored = {}
    with open(os.path.join(workdir, "trials.jsonl")) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # cut short by the stop
            stored[(row["init"], row["config_index"])] = row
    summary = {"full_accuracy": full_accuracy, "full_params": int(model.count_params()),
               "pretrain_seconds": pretrain_seconds, "blocks": [None] * blocks}
    for init in ("default", "block"):
        rows = sorted((r for (i, _), r in stored.items() if i == init),
                      key=lambda r: (r["params"], r["config_index"]))
        summary[init] = {"rows": rows, "explored": len(rows), "best": None,
                         "wall_seconds": float(sum(r["seconds"] for r in rows)),
                         "complete": len(rows) == size}
    return summary


def speedup_fields(base, comp):
    """base / comp hours when both searches found a network; a search stopped
    before finding one gives only a lower bound (and no speed-up figure)."""
    ratio = base["hours"] / max(comp["hours"], 1e-12)
    if base["found"] and comp["found"]:
        return {"speedup": ratio, "speedup_lower_bound": None}
    stopped = not base["found"] and not base.get("complete", True) and comp["found"]
    return {"speedup": None, "speedup_lower_bound": ratio if stopped else None}


def make_row(size, alpha, workers, summary, base_result, comp_result, pretrain_seconds,
             timing, load):
    base, comp = _side(base_result), _side(comp_result, pretrain_seconds)
    comp["pretrain_overhead_pct"] = 100.0 * pretrain_seconds / 3600.0 / max(comp["hours"], 1e-12)
    return {"subspace_size": size, "alpha": alpha, "workers": workers, "base": base,
            "comp": comp, **speedup_fields(base, comp), "timing": timing, "threshold": summary["full_accuracy"] - alpha,
            "full_accuracy": summary["full_accuracy"], "full_params": summary["full_params"],
            "blocks": len(summary["blocks"]), "pretrain_seconds": pretrain_seconds,
            "load": load}


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


def main(argv=None):
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
    sizes = [int(s) for s in args.sizes.split(",")]
    alphas = sorted(float(a) for a in args.alphas.split(","))
    worker_counts = sorted(int(w) for w in args.workers.split(","))
    for name, values in (("sizes", sizes), ("alphas", alphas), ("workers", worker_counts)):
        if not values or min(values) <= 0:
            raise ValueError(f"Expected positive --{name}. Received: {values}")
    started = time.time()

    from cocopie_keras.cocotune import explore
    explore.limit_threads(1)  # as each trial: block pre-training runs on one core too
    import keras

    from cocopie_keras import cocotune as tune
    from cocopie_keras.cocotune import surgery

    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.workdir, exist_ok=True)
    if args.teacher:
        cache = os.path.join(args.workdir, f"data_split_{args.train_images}_{args.val_images}"
                                           f"_{args.seed}.npz")
    else:
        cache = os.path.join(args.workdir, f"data_{args.per_class}_{args.seed}.npz")
    if not os.path.exists(cache):
        if args.teacher:
            train, validation = split_subsets(args.data, args.workdir, args.train_images,
                                              args.val_images, args.seed)
        else:
            train, validation = load_images(args.data, args.per_class, args.seed)
        np.savez(cache, x_train=train[0], y_train=train[1], x_val=validation[0],
                 y_val=validation[1])
    with np.load(cache) as data:
        train = data["x_train"], data["y_train"]
        validation = data["x_val"], data["y_val"]
    print(f"data: {len(train[0])} train / {len(validation[0])} validation images", flush=True)
    if args.teacher:
        model, teacher = load_teacher(args.teacher, validation)
    else:
        model, teacher = train_teacher(train, validation, args.teacher_epochs, args.batch_size,
                                       os.path.join(args.workdir, "teacher.keras"))
    modules = surgery.infer_modules(model) or surgery.infer_chain_modules(model)
    print(f"teacher: {model.count_params()} params, {len(modules)} modules, "
          f"val accuracy {teacher['val_accuracy']:.4f}, {teacher['seconds']:.0f} s", flush=True)
    if args.teacher_only:
        return 0

    rows_dir = os.path.join(args.workdir, "rows")
    os.makedirs(rows_dir, exist_ok=True)
    rates = ([float(r) for r in args.rates.split(",")] if args.rates
             else list(tune.blocks.DEFAULT_RATES))
    subspaces = {size: tune.sample_subspace(len(modules), size, rates, seed=args.seed)
                 for size in sizes}

    def subspace_dir(size):
        return pretrain_subspace(model, modules, subspaces[size], train[0],
                                 args.pretrain_epochs, args.batch_size,
                                 os.path.join(args.workdir, f"n{size}"))

    def write(rows, points):
        record = {"setup": {"per_class": args.per_class, "train_images": len(train[0]),
                            "validation_images": len(validation[0]),
                            "teacher": {k: v for k, v in teacher.items()},
                            "teacher_params": int(model.count_params()),
                            "modules": len(modules), "rates": rates,
                            "max_epochs_per_trial": args.epochs,
                            "pretrain_epochs": args.pretrain_epochs,
                            "batch_size": args.batch_size, "tf_threads_per_trial": 1,
                            "cpus": os.cpu_count(), "shared_machine": True,
                            "load_averages": loads},
                  "rows": rows, "initial_accuracy": points}
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(record, f, indent=1)

    def out_of_time():
        return (args.stop_after_minutes is not None
                and time.time() - started > 60.0 * args.stop_after_minutes)

    rows, loads = [], {}  # 1/5/15-minute load averages around each run
    for size in sizes:
        timing_path = os.path.join(args.workdir, f"n{size}", "pretrain.json")
        if os.path.exists(timing_path):
            with open(timing_path) as f:
                timing = json.load(f)
            loads[f"pretrain_n{size}"] = {"before": timing.get("load_before"),
                                          "after": timing.get("load_after")}
    for workers in worker_counts:
        for size in sizes:
            # One worker: the strictest alpha is run, the looser ones read from its trials.
            run_alphas = alphas[:1] if workers == 1 and args.rederive else alphas
            for alpha in run_alphas:
                key = f"n{size}_a{alpha}_w{workers}"
                # The finished exploration (not the rows), so looser alphas can be
                # re-read from it without running anything again.
                path = os.path.join(rows_dir, key + ".json")
                workdir = os.path.join(args.workdir, key)
                stopped = None
                if not os.path.exists(path):
                    if out_of_time():
                        if workers == 1 and os.path.exists(os.path.join(workdir,
                                                                        "trials.jsonl")):
                            stopped = stopped_summary(workdir, model, validation, size)
                        else:
                            print(f"out of time: {key} not run", flush=True)
                            continue
                    else:
                        shared = subspace_dir(size)
                        os.makedirs(workdir, exist_ok=True)
                        for name in ("blocks.npz", "pretrain.json"):
                            shutil.copy(os.path.join(shared, name), workdir)
                        load_before = load_average()
                        summary = tune.tune(
                            model, train, validation, workdir, modules=modules,
                            configs=subspaces[size], alpha=alpha, epochs=args.epochs,
                            pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size,
                            executor="ray", workers=workers, threads=1, seed=args.seed)
                        with open(path, "w") as f:
                            json.dump({"summary": summary, "load": {
                                "before": load_before, "after": load_average()}}, f)
                if stopped is not None:
                    summary, load = stopped, None
                    timing = "read from the trials recorded before the run was stopped"
                    derived = alphas
                else:
                    with open(path) as f:
                        done = json.load(f)
                    summary, load = done["summary"], done["load"]
                    timing = "measured"
                    derived = alphas[1:] if run_alphas != alphas else []
                new = []
                if stopped is None:
                    new.append(make_row(size, alpha, workers, summary, summary["default"],
                                        summary["block"], summary["pretrain_seconds"],
                                        timing, load))
                for looser in derived:
                    threshold = summary["full_accuracy"] - looser
                    new.append(make_row(size, looser, workers, summary,
                                        rederive(summary["default"], threshold),
                                        rederive(summary["block"], threshold),
                                        summary["pretrain_seconds"],
                                        timing if stopped else f"rederived from alpha {alpha}",
                                        load))
                rows += new
                loads[key] = load
                for row in new:
                    print(json.dumps({k: row[k] for k in ("subspace_size", "alpha", "workers",
                                                           "speedup", "timing")}), flush=True)
                write(rows, [])
    points = []
    for size in sizes:
        points_path = os.path.join(args.workdir, f"n{size}", "initial_accuracy.json")
        if not os.path.exists(points_path):
            if not os.path.exists(os.path.join(args.workdir, f"n{size}", "blocks.npz")):
                continue
            found = tune.identify_blocks(subspaces[size])
            params = [surgery.prune_filters(model, modules, c).count_params()
                      for c in subspaces[size]]
            found_points = initial_accuracies(model, modules, subspaces[size],
                                              found.composites, params, validation,
                                              os.path.join(subspace_dir(size), "blocks.npz"))
            with open(points_path, "w") as f:
                json.dump(found_points, f)
        with open(points_path) as f:
            points += json.load(f)
    write(rows, points)
    print(f"wrote {args.output}")
    plot(rows, points, os.path.splitext(args.output)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
