"""CoCo-Gen training study: accuracy at equal conv weight density.

Methods, all starting from the same trained dense model of each seed and all getting
the same post-pruning training (phase 1: constant LR, phase 2: fresh Adam with cosine
decay; see ``Phases``):

* ``dense``            the trained dense model, trained on through both phases;
* ``admm_pattern``     4-of-9 patterns + connectivity: ADMM in phase 1, hard prune,
                       masked fine-tune in phase 2;
* ``oneshot_pattern``  the same projection at once, masked training in both phases;
* ``magnitude``        unstructured magnitude pruning to the ADMM model's per-layer
                       density, masked training in both phases;
* ``filter``           L1 filter pruning at the ADMM model's conv MACs, likewise.

Data: MNIST-5k (``cocopie_keras.demo.load_mnist_5k``: 4,000 train / 1,000 test) and,
with ``--cifar PATH`` (a ``.tar.gz`` of ``train/<class>/*.jpg`` or its unpacked folder),
a 10,000-image CIFAR-10 subset (9,000 train / 1,000 held-out validation).

Run (about 26 min on a shared 2-core machine):

    nice -n 10 .venv/bin/python bench/cocogen_study.py --cifar PATH

Writes ``bench/results/cocogen_study.json`` (rows: dataset, method, seed, accuracy,
conv_weight_density, conv_macs), ``cocogen_study_logs.json`` (the arguments, the
settings each dataset ran with, wall time, per-epoch ADMM logs), ``cocogen_study_timing.json`` and two PNG plots.

ADMM variants on the same dense weights and baselines (``cocogen_study.md``, "ADMM vs
one-shot at equal epochs"): ``--admm-variants`` takes a JSON list of dicts (optimizer
``adam``/``sgd`` of the ADMM epochs, ``update_steps`` for step-wise Z/U updates, ρ
schedule, ``admm_epochs`` of phase 1 under ADMM, the rest masked); rows then carry
``variant``. ``--methods`` may add ``admm_mask_rewound`` (the first variant's final mask
on the dense weights, trained like one-shot: a diagnostic, not at equal epochs).
``--skip dense,timing`` leaves out the dense row and the timing, ``--dense-cache DIR``
reuses each seed's trained dense weights across runs, ``--first-seed`` starts the seeds.
"""

import argparse
import json
import os
import sys
import tarfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cocopie_keras import sparsity  # noqa: E402
from cocopie_keras.sparsity import recipe  # noqa: E402
from cocopie_keras.sparsity import summaries  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import epoch_timing  # noqa: E402
from admm_variants import HardPruneProbe, VARIANT_KEYS, admm_variant, parse_variants  # noqa: E402
from study_baselines import (MaskHold, conv_layers, conv_macs, filter_masks,  # noqa: E402
                             magnitude_masks)

HERE = os.path.dirname(os.path.abspath(__file__))
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")


def vgg(input_shape, widths, name):
    """VGG-style: pairs of 3×3 convs, max-pool between pairs, GAP, Dense(10)."""
    layers = keras.layers
    x = inputs = keras.Input(input_shape)
    for block, pair in enumerate(widths):
        if block:
            x = layers.MaxPooling2D()(x)
        for index, width in enumerate(pair):
            x = layers.Conv2D(width, 3, padding="same", activation="relu",
                              name=f"conv{block + 1}_{index + 1}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x), name=name)


def compile_model(model, learning_rate, decay_steps=None):
    """Adam; with ``decay_steps`` the LR follows a cosine decay to 0 over them."""
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


class Phases:
    """The post-pruning training every method of a seed gets: phase 1 (``first``
    epochs, constant LR; ADMM runs here), then phase 2 (``second`` epochs, fresh
    Adam, cosine decay to 0; the ADMM model's masked fine-tune)."""

    def __init__(self, first, second, learning_rate, steps_per_epoch):
        self.first, self.second = first, second
        self.learning_rate, self.steps = learning_rate, steps_per_epoch

    def compile_first(self, model):
        compile_model(model, self.learning_rate)

    def compile_second(self, model):
        compile_model(model, self.learning_rate, self.second * self.steps)

    def fit_both(self, model, x, y, verbose, callbacks=()):
        for epochs, compile_phase in ((self.first, self.compile_first),
                                      (self.second, self.compile_second)):
            if epochs:
                compile_phase(model)
                model.fit(x, y, batch_size=64, epochs=epochs, verbose=verbose,
                          callbacks=list(callbacks))




def run_seed(dataset, data, widths, seed, args, rows, logs, plot_path=None):
    (x_train, y_train), (x_test, y_test) = data
    steps = int(np.ceil(len(x_train) / 64))
    keras.utils.set_random_seed(seed)
    dense = vgg(x_train.shape[1:], widths, f"{dataset}_vgg")
    cache = None
    if args.dense_cache:
        os.makedirs(args.dense_cache, exist_ok=True)
        cache = os.path.join(args.dense_cache, f"{dataset}_seed{seed}_e{args.dense_epochs}"
                             f"_n{len(x_train)}.npz")
    if cache and os.path.exists(cache):
        with np.load(cache) as saved:
            dense.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
        compile_model(dense, args.learning_rate)
    else:
        compile_model(dense, args.learning_rate, args.dense_epochs * steps)
        dense.fit(x_train, y_train, batch_size=64, epochs=args.dense_epochs, verbose=args.verbose)
        if cache:
            np.savez(cache, **{f"w{i}": w for i, w in enumerate(dense.get_weights())})
    dense_weights = dense.get_weights()
    log = {"dataset": dataset, "seed": seed,
           "dense_accuracy_before_extra_epochs": float(dense.evaluate(x_test, y_test, verbose=0)[1])}
    logs.append(log)
    phases = Phases(args.admm_epochs, args.finetune_epochs, args.learning_rate, steps)

    def fresh_dense():
        model = vgg(x_train.shape[1:], widths, f"{dataset}_vgg")
        model.set_weights(dense_weights)
        return model

    def record(method, model, variant="baseline"):
        accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
        row = {"dataset": dataset, "method": method, "seed": seed, "accuracy": accuracy,
               **({"variant": variant} if args.admm_variants else {}),
               "conv_weight_density": sparsity.conv_weight_density(model),
               "conv_macs": conv_macs(model)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_rows(args.out, rows)
        return row

    # Dense gets the same extra epochs and schedule as the sparse methods.
    if "dense" not in args.skip:
        keras.utils.set_random_seed(seed + 5000)
        dense = fresh_dense()
        phases.fit_both(dense, x_train, y_train, args.verbose)
        record("dense", dense)

    config = sparsity.PatternPruningConfig(connectivity_rate=args.connectivity_rate,
                                           num_patterns=8, pattern_pool="model",
                                           skip_first_conv=args.skip_first_conv)
    # At least one ADMM run (the default one when no variants are given) sets these.
    result, densities, admm_row, first_wrapped = None, None, None, None
    oneshot_probe = sparsity.prune_wrap(fresh_dense(), config)
    sparsity.hard_prune(oneshot_probe)
    oneshot_ids = [keras.ops.convert_to_numpy(w.pattern_ids)
                   for w in sparsity.pruning_wrappers(oneshot_probe)]
    for variant in (args.admm_variants or [None]):
        keras.utils.set_random_seed(seed + 1000)
        probe = HardPruneProbe(x_test, y_test)
        if variant is None:  # the recorded study: ADMM for all of phase 1, library recipe
            result = recipe.admm_prune(
                fresh_dense(), (x_train, y_train), phases.compile_first, config,
                admm_epochs=args.admm_epochs, finetune_epochs=args.finetune_epochs,
                finetune_compile_fn=phases.compile_second,
                rho=sparsity.RhoSchedule(args.rho, args.rho_growth, args.rho_max),
                admm_callbacks=[probe], verbose=args.verbose)
            name = "default"
        else:
            result = admm_variant(fresh_dense(), variant, config, phases, x_train, y_train,
                                  probe, args)
            name = variant["name"]
        row = record("admm_pattern", result.model, name)
        admm_row = admm_row or row
        log.setdefault("variants", {})[name] = variant_log = {
            "variant": variant, "admm_epochs": probe.records, "admm_updates": []}
        if variant is None:
            log["admm_epochs"] = probe.records
            log["admm_updates"] = variant_log["admm_updates"]
        variant_log["after_admm"] = getattr(result, "after_admm", None)
        # The first Z/U update is Z = Π(W_dense): the one-shot projection. Kernels
        # whose final pattern id (removed = its own id) differs from it:
        final_ids = [keras.ops.convert_to_numpy(w.pattern_ids) for w in
                     sparsity.pruning_wrappers(result.wrapped)]
        variant_log["kernels_differing_from_oneshot"] = float(
            np.mean(np.concatenate([(f != o).ravel() for f, o in zip(final_ids, oneshot_ids)])))
        print("kernels-differing-from-oneshot", name,
              variant_log["kernels_differing_from_oneshot"], flush=True)
        first_wrapped = first_wrapped or result.wrapped
        for entry in result.admm_history:
            layers = entry["layers"].values()
            variant_log["admm_updates"].append({
                "update": entry["update"], "step": entry["step"], "rho": entry["rho"],
                "max_relative_residual": max(r["relative_residual"] for r in layers),
                "mean_pattern_change": float(np.mean([r["pattern_change"] for r in layers]))})
        if plot_path and densities is None:
            summaries.plot_pattern_summary(sparsity.pattern_info(result.wrapped), plot_path,
                                           title=f"{dataset}, ADMM pattern model, seed {seed}")
        if densities is None:
            densities = {layer.name: float(np.mean(keras.ops.convert_to_numpy(layer.kernel) != 0))
                         for layer in conv_layers(result.model)}

    if "oneshot_pattern" in args.methods:
        keras.utils.set_random_seed(seed + 2000)
        wrapped = sparsity.prune_wrap(fresh_dense(), config)
        sparsity.hard_prune(wrapped)
        phases.fit_both(wrapped, x_train, y_train, args.verbose,
                        [sparsity.MaskedFineTuneCallback()])
        plain = sparsity.strip_pruning(wrapped)
        compile_model(plain, args.learning_rate)
        record("oneshot_pattern", plain)

    for method in ("magnitude", "filter"):
        if method not in args.methods:
            continue
        keras.utils.set_random_seed(seed + (3000 if method == "magnitude" else 4000))
        model = fresh_dense()
        masks = (magnitude_masks(model, densities) if method == "magnitude"
                 else filter_masks(model, admm_row["conv_macs"]))
        phases.fit_both(model, x_train, y_train, args.verbose, [MaskHold(masks)])
        record(method, model)
    if "admm_mask_rewound" in args.methods and first_wrapped is not None:
        # Diagnostic (not at equal epochs): the first ADMM variant's final mask on the
        # dense weights, trained like one-shot. Separates the mask ADMM chose from
        # the epochs ADMM spent under its penalty.
        keras.utils.set_random_seed(seed + 2000)
        wrapped = sparsity.prune_wrap(fresh_dense(), config)
        for target, source in zip(sparsity.pruning_wrappers(wrapped),
                                  sparsity.pruning_wrappers(first_wrapped)):
            target.pattern_mask.assign(source.pattern_mask)
            target.pattern_ids.assign(source.pattern_ids)
            target.pruned.assign(1)
            target.apply_mask()
        phases.fit_both(wrapped, x_train, y_train, args.verbose,
                        [sparsity.MaskedFineTuneCallback()])
        plain = sparsity.strip_pruning(wrapped)
        compile_model(plain, args.learning_rate)
        record("admm_mask_rewound", plain, args.admm_variants[0]["name"]
               if args.admm_variants else "default")
    return result


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def epoch_overhead(data, widths, args):
    """Seconds per epoch: plain fit of the dense net vs the wrapped net with the
    ADMM callback (loss term + per-step bookkeeping + one Z/U update per epoch)."""
    (x_train, y_train), _ = data
    keras.utils.set_random_seed(0)
    dense = vgg(x_train.shape[1:], widths, "timing")
    compile_model(dense, 1e-3)
    dense.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)  # warm-up + trace
    wrapped = sparsity.prune_wrap(dense, sparsity.PatternPruningConfig(connectivity_rate=0.72))
    compile_model(wrapped, 1e-3)
    callback = sparsity.ADMMCallback()
    wrapped.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0, callbacks=[callback])
    plain, admm_times = [], []
    timer = EpochTimer()
    for _ in range(args.timing_rounds):  # interleaved: the machine's load hits both
        # Two epochs per fit; the second one is timed (the first may retrace).
        dense.fit(x_train, y_train, batch_size=64, epochs=2, verbose=0, callbacks=[timer])
        plain.append(timer.seconds[-1])
        wrapped.fit(x_train, y_train, batch_size=64, epochs=2, verbose=0,
                    callbacks=[callback, timer])
        admm_times.append(timer.seconds[-1])
    # Epoch times on a shared machine fall into modes; epoch_timing compares
    # like with like instead of minima or medians of differently disturbed samples.
    return {**epoch_timing.summarize(plain, admm_times), "plain_epoch_s": plain,
            "admm_epoch_s": admm_times, "rounds": args.timing_rounds}


def load_cifar_subset(path, count=10000, validation=1000, seed=1234):
    """``count`` images (equal per class, fixed seed) from ``train/<class>/*.jpg``;
    ``validation`` of them held out. ``path``: the folder or a ``.tar.gz``."""
    from PIL import Image

    if os.path.isfile(path):
        target = "/tmp/cocogen_cifar"
        if not os.path.isdir(os.path.join(target, "train")):
            os.makedirs(target, exist_ok=True)
            with tarfile.open(path) as archive:
                archive.extractall(target, filter="data")
        path = target
    root = os.path.join(path, "train") if os.path.isdir(os.path.join(path, "train")) else path
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(CIFAR_CLASSES):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            raise ValueError(f"Expected class folder {folder}. Received: --cifar {path}")
        files = sorted(os.listdir(folder))
        for file in rng.choice(files, size=count // len(CIFAR_CLASSES), replace=False):
            with Image.open(os.path.join(folder, file)) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    order = rng.permutation(len(images))
    x = (np.stack(images)[order] / 255.0).astype(np.float32)
    y = np.asarray(labels, dtype=np.int64)[order]
    return (x[validation:], y[validation:]), (x[:validation], y[:validation])


def write_rows(path, rows):
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)


def plot_accuracy(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows}, key=lambda d: d != "mnist5k")
    methods = ["dense", "admm_pattern", "oneshot_pattern", "magnitude", "filter"]
    figure, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8),
                                squeeze=False)
    for axis, dataset in zip(axes[0], datasets):
        names, means, spreads = [], [], []
        for method in methods:
            values = [r["accuracy"] for r in rows if r["dataset"] == dataset and r["method"] == method]
            if values:
                names.append(method)
                means.append(100 * np.mean(values))
                spreads.append(100 * np.std(values))
        axis.bar(names, means, yerr=spreads, capsize=4, color=[f"C{i}" for i in range(len(names))])
        axis.set_ylim(max(0, min(means) - 8), min(100, max(means) + 3))
        axis.set_ylabel("test accuracy %")
        axis.set_title(f"{dataset}: conv density ≈ 1/8 (mean ± std)")
        axis.tick_params(axis="x", rotation=25)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plain_settings(args):
    """The arguments as JSON values (sets become sorted lists)."""
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--dense-epochs", type=int, default=15)
    parser.add_argument("--admm-epochs", type=int, default=10,
                        help="phase 1 (constant LR): ADMM, or masked training for the baselines")
    parser.add_argument("--finetune-epochs", type=int, default=10,
                        help="phase 2 (cosine LR decay): masked fine-tune for every method")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--connectivity-rate", type=float, default=0.72)
    parser.add_argument("--skip-first-conv", type=int, default=1,
                        help="1: first conv dense for every method (same per-layer density)")
    parser.add_argument("--rho", type=float, default=0.1)
    parser.add_argument("--rho-growth", type=float, default=1.2)
    parser.add_argument("--rho-max", type=float, default=1.0)
    parser.add_argument("--admm-optimizer", default="adam", choices=("adam", "sgd"),
                        help="optimizer of the ADMM epochs (variants only; default run: Adam)")
    parser.add_argument("--admm-sgd-learning-rate", type=float, default=0.01)
    parser.add_argument("--admm-momentum", type=float, default=0.9)
    parser.add_argument("--admm-update-steps", type=int, default=0,
                        help="Z/U update every N steps (0: every epoch)")
    parser.add_argument("--admm-variants", default=None,
                        help='JSON list of ADMM variants run on the same dense weights, e.g. '
                             '\'[{"name": "step16", "update_steps": 16, "rho_growth": 1.05}]\' '
                             f'(keys: {sorted(VARIANT_KEYS)}; "admm_epochs" of phase 1 run ADMM, '
                             'the rest masked); rows then carry "variant"')
    parser.add_argument("--skip", default="", help="comma list: dense, timing")
    parser.add_argument("--dense-cache", default=None,
                        help="folder: reuse each seed's trained dense weights across runs")
    parser.add_argument("--methods", default="oneshot_pattern,magnitude,filter")
    parser.add_argument("--cifar", default=None, help="CIFAR-10 JPEG .tar.gz or folder")
    parser.add_argument("--cifar-dense-epochs", type=int, default=12)
    parser.add_argument("--cifar-admm-epochs", type=int, default=6)
    parser.add_argument("--cifar-finetune-epochs", type=int, default=6)
    parser.add_argument("--timing-rounds", type=int, default=5)
    parser.add_argument("--timing-only", action="store_true",
                        help="only measure the per-epoch overhead of the ADMM callback")
    parser.add_argument("--train-limit", type=int, default=None, help="develop with tiny data")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "cocogen_study.json"))
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    args.methods = set(args.methods.split(",")) if args.methods else set()
    args.skip = set(args.skip.split(",")) if args.skip else set()
    args.admm_variants = parse_variants(args.admm_variants, args)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    stem = os.path.splitext(args.out)[0]
    from cocopie_keras.demo import load_mnist_5k

    start = time.perf_counter()
    rows, logs = [], []
    mnist = load_mnist_5k()
    if args.train_limit:
        mnist = ((mnist[0][0][: args.train_limit], mnist[0][1][: args.train_limit]), mnist[1])
    mnist_widths = [(16, 32), (32, 64), (64,)]
    if "timing" not in args.skip:
        timing = epoch_overhead(mnist, mnist_widths, args)
        print("timing", json.dumps(timing), flush=True)
        with open(stem + "_timing.json", "w") as f:
            json.dump(timing, f, indent=1)
    if args.timing_only:
        return 0
    settings = {"mnist5k": plain_settings(args)}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run_seed("mnist5k", mnist, mnist_widths, seed, args, rows, logs,
                 plot_path=stem + "_patterns.png" if seed == args.first_seed else None)
        with open(stem + "_logs.json", "w") as f:  # so far (rewritten at the end)
            json.dump({"args": plain_settings(args), "runs": logs}, f, indent=1)
    if args.cifar:
        cifar = load_cifar_subset(args.cifar)
        if args.train_limit:
            cifar = ((cifar[0][0][: args.train_limit], cifar[0][1][: args.train_limit]), cifar[1])
        # A copy: the command-line arguments (and the MNIST settings) stay as given.
        cifar_args = argparse.Namespace(**{
            **vars(args), "dense_epochs": args.cifar_dense_epochs,
            "admm_epochs": args.cifar_admm_epochs, "finetune_epochs": args.cifar_finetune_epochs,
            "methods": args.methods & {"magnitude"}})
        settings["cifar10_10k"] = plain_settings(cifar_args)
        run_seed("cifar10_10k", cifar, [(32, 32), (64, 64), (128,)], 0, cifar_args, rows, logs)
    plot_accuracy(rows, stem + ".png")
    seconds = time.perf_counter() - start
    with open(stem + "_logs.json", "w") as f:
        json.dump({"wall_seconds": seconds, "args": plain_settings(args),
                   "settings": settings, "runs": logs}, f, indent=1)
    print(f"done in {seconds:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
