"""CoCo-Tune study: composability-based vs default filter-pruning exploration.

A ResNet-style model is trained on a CIFAR-10 subset, then for each subspace
size, accuracy drop α and number of Ray workers, the same subspace is explored
twice, smallest network first, each trial fine-tuned until it reaches the
threshold (full accuracy − α) or runs out of epochs:

* ``base``: networks initialized from the full model's surviving weights;
* ``comp``: networks assembled from tuning blocks pre-trained teacher–student
  (the pre-training time is counted in ``comp``).

Data: ``--data PATH``, a folder of ``<class>/*.jpg`` (or with a ``train/``
folder inside), or the ``.tar.gz`` of one; ``--per-class`` images of each class
are used (80 % train, 20 % validation).

Run (hours on 2 cores with the defaults; see bench/cocotune_study.md):

    nice -n 10 .venv/bin/python bench/cocotune_study.py --data PATH

Smoke (a minute): ``--per-class 30 --sizes 4 --alphas 0.5 --workers 1
--teacher-epochs 1 --epochs 1 --output /tmp/smoke.json``.

Writes ``bench/results/cocotune_study.json``: rows ``{subspace_size, alpha,
workers, base: {configs_explored, hours, params, accuracy}, comp:
{configs_explored, hours, pretrain_overhead_pct, params, accuracy}, speedup}``
plus a ``setup`` record, and PNG plots beside it.
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


def load_images(path, per_class, seed):
    """``(x_train, y_train), (x_val, y_val)`` from a class-folder tree or its .tar.gz."""
    import keras

    cleanup = None
    if os.path.isfile(path) and path.endswith((".tar.gz", ".tgz")):
        cleanup = tempfile.mkdtemp(prefix="cocotune_data_")
        with tarfile.open(path) as archive:
            archive.extractall(cleanup, filter="data")
        path = cleanup
    if not os.path.isdir(path):
        raise ValueError(f"Expected --data to be an image folder or its .tar.gz. Received: {path!r}")
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


def explore_row(summary, init):
    result = summary[init]
    best = result["best"] or {}
    hours = result["wall_seconds"] / 3600.0
    return {"configs_explored": result["explored"], "hours": hours,
            "params": best.get("params"), "accuracy": best.get("accuracy"),
            "epochs": [row.get("epochs") for row in result["rows"]]}


def initial_accuracies(model, modules, configs, summary, validation, blocks_path):
    """Accuracy of every network of the subspace before fine-tuning, both inits."""
    import keras

    from cocopie_keras.tune import pretrain

    weights = pretrain.load_block_weights(blocks_path)
    points = []
    for index, config in enumerate(configs):
        for init in ("default", "block"):
            ids = summary["composites"][index] if init == "block" else None
            net = pretrain.assemble(model, modules, config, ids, weights if ids else None)
            net.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
            accuracy = float(net.evaluate(*validation, verbose=0, batch_size=256)[1])
            points.append({"config": list(config), "init": init,
                           "params": summary["params"][index], "accuracy": accuracy})
    return points


def plot(rows, points, curves, path_prefix):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots")
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for init, marker in (("default", "o"), ("block", "^")):
        chosen = [p for p in points if p["init"] == init]
        left.scatter([p["params"] for p in chosen], [p["accuracy"] for p in chosen],
                     marker=marker, label=f"{init} (before fine-tuning)", alpha=0.7)
    left.set_xlabel("parameters")
    left.set_ylabel("validation accuracy")
    left.legend()
    for init, style in (("default", "--"), ("block", "-")):
        for curve in curves.get(init, [])[:8]:
            right.plot(range(len(curve)), curve, style, marker=".", alpha=0.6)
    right.set_xlabel("fine-tuning epoch (solid: block-trained, dashed: default)")
    right.set_ylabel("validation accuracy")
    figure.tight_layout()
    figure.savefig(path_prefix + ".png", dpi=110)
    print(f"wrote {path_prefix}.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--alphas", default="0.01,0.03")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=4, help="max fine-tuning epochs per trial")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "cocotune_study"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "cocotune_study.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from cocopie_keras.tune import explore
    explore.limit_threads(1)  # the trials themselves run one TF thread each
    import keras

    from cocopie_keras import tune
    from cocopie_keras.tune import surgery

    keras.utils.set_random_seed(args.seed)
    train, validation = load_images(args.data, args.per_class, args.seed)
    print(f"data: {len(train[0])} train / {len(validation[0])} validation images")
    os.makedirs(args.workdir, exist_ok=True)
    teacher_path = os.path.join(args.workdir, "teacher.keras")
    started = time.time()
    if os.path.exists(teacher_path):
        model = keras.saving.load_model(teacher_path, compile=False)
    else:
        model = resnet()
        model.compile(optimizer=keras.optimizers.Adam(2e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(*train, epochs=args.teacher_epochs, batch_size=args.batch_size,
                  validation_data=validation, verbose=2)
        model.save(teacher_path)
    modules = surgery.infer_modules(model)
    print(f"teacher: {model.count_params()} params, {len(modules)} modules, "
          f"{time.time() - started:.0f} s")

    rows, points, curves = [], [], {}
    for size in [int(s) for s in args.sizes.split(",")]:
        configs = tune.sample_subspace(len(modules), size, seed=args.seed)
        shared_blocks = None
        for alpha in [float(a) for a in args.alphas.split(",")]:
            for workers in [int(w) for w in args.workers.split(",")]:
                workdir = os.path.join(args.workdir, f"n{size}_a{alpha}_w{workers}")
                os.makedirs(workdir, exist_ok=True)
                if shared_blocks:  # one pre-training per subspace, its time counted every row
                    for name in ("blocks.npz", "pretrain.json"):
                        shutil.copy(os.path.join(shared_blocks, name), workdir)
                summary = tune.tune(
                    model, train, validation, workdir, modules=modules, configs=configs,
                    alpha=alpha, epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
                    batch_size=args.batch_size, executor="ray", workers=workers, threads=1,
                    seed=args.seed)
                shared_blocks = shared_blocks or workdir
                base, comp = explore_row(summary, "default"), explore_row(summary, "block")
                pretrain_hours = summary["pretrain_seconds"] / 3600.0
                comp["hours"] += pretrain_hours
                comp["pretrain_overhead_pct"] = 100.0 * pretrain_hours / max(comp["hours"], 1e-9)
                row = {"subspace_size": size, "alpha": alpha, "workers": workers,
                       "base": base, "comp": comp,
                       "speedup": base["hours"] / max(comp["hours"], 1e-9),
                       "threshold": summary["threshold"],
                       "full_accuracy": summary["full_accuracy"],
                       "full_params": summary["full_params"],
                       "blocks": len(summary["blocks"])}
                rows.append(row)
                for init in ("default", "block"):
                    curves.setdefault(init, []).extend(
                        r["accuracy_curve"] for r in summary[init]["rows"])
                print(json.dumps({k: row[k] for k in ("subspace_size", "alpha", "workers",
                                                       "speedup")}), flush=True)
        points += initial_accuracies(model, modules, configs, summary, validation,
                                     os.path.join(shared_blocks, "blocks.npz"))
    record = {"setup": {"per_class": args.per_class, "teacher_epochs": args.teacher_epochs,
                        "max_epochs_per_trial": args.epochs,
                        "pretrain_epochs": args.pretrain_epochs, "modules": len(modules),
                        "teacher_params": int(model.count_params())},
              "rows": rows, "initial_accuracy": points}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.output}")
    plot(rows, points, curves, os.path.splitext(args.output)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
