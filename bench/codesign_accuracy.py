"""Accuracy cost of the co-design constraint (shared patterns per channel group).

The delegate's block kernel runs fastest when ``G`` consecutive output channels
share one pattern per input channel, and connectivity pruning removes whole
``(group, input channel)`` slices (``patterns.project_kernel``, ``G = 32``).
This study measures what that constraint costs in accuracy against free
patterns (``G = 1``: every kernel picks its own pattern, connectivity removes
single kernels) at the same conv weight density.

Data: MNIST-5k (``cocopie_keras.demo.load_mnist_5k``: 4,000 train / 1,000
test), the demo's five-conv CNN, several seeds. Every variant of a seed starts
from the same trained dense weights and gets the same masked fine-tuning.

Run (a few minutes on 2 cores): ``.venv/bin/python bench/codesign_accuracy.py``.
Writes ``bench/results/codesign_accuracy.json`` (rows: seed, variant, group_size,
accuracy, conv_weight_density) and prints a summary table.
"""

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def run_seed(seed, args, data):
    import keras

    from cocopie_keras import demo
    from cocopie_keras import sparsity

    (x_train, y_train), (x_test, y_test) = data

    def compile_model(model):
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])

    keras.utils.set_random_seed(seed)
    dense = demo.build_cnn()
    compile_model(dense)
    dense.fit(x_train, y_train, batch_size=64, epochs=args.epochs, verbose=0)
    weights = dense.get_weights()
    rows = [{"seed": seed, "variant": "dense", "group_size": None,
             "accuracy": float(dense.evaluate(x_test, y_test, verbose=0)[1]),
             "conv_weight_density": 1.0}]
    for group in args.groups:
        keras.utils.set_random_seed(seed + 100)
        model = demo.build_cnn()
        model.set_weights(weights)
        wrapped = sparsity.prune_wrap(model, demo.pruning_config(args.connectivity_rate, group))
        sparsity.hard_prune(wrapped)
        compile_model(wrapped)
        # The dense model gets the same extra epochs below, so no variant
        # trains longer than another.
        wrapped.fit(x_train, y_train, batch_size=64, epochs=args.finetune_epochs, verbose=0,
                    callbacks=[sparsity.MaskedFineTuneCallback()])
        model = sparsity.strip_pruning(wrapped)
        rows.append({"seed": seed, "variant": "grouped" if group > 1 else "free",
                     "group_size": group,
                     "accuracy": float(model.evaluate(x_test, y_test, verbose=0)[1]),
                     "conv_weight_density": sparsity.conv_weight_density(model)})
    keras.utils.set_random_seed(seed + 100)
    compile_model(dense)
    dense.fit(x_train, y_train, batch_size=64, epochs=args.finetune_epochs, verbose=0)
    rows.append({"seed": seed, "variant": "dense_same_epochs", "group_size": None,
                 "accuracy": float(dense.evaluate(x_test, y_test, verbose=0)[1]),
                 "conv_weight_density": 1.0})
    return rows


def summary(rows):
    from cocopie_keras.bench.report import format_table

    keys = []
    for r in rows:
        if (r["variant"], r["group_size"]) not in keys:
            keys.append((r["variant"], r["group_size"]))
    lines = []
    for variant, group in keys:
        picked = [r for r in rows if (r["variant"], r["group_size"]) == (variant, group)]
        acc = [100 * r["accuracy"] for r in picked]
        lines.append([variant, str(picked[0]["group_size"] or "—"), str(len(picked)),
                      f"{statistics.mean(acc):.2f} ± {statistics.pstdev(acc):.2f}",
                      f"{statistics.mean(r['conv_weight_density'] for r in picked):.3f}"])
    header = ["variant", "group", "seeds", "accuracy % (mean ± std)", "conv weight density"]
    return format_table(header, lines, markdown=True) + "\n"


def main(argv=None):
    from cocopie_keras import demo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--connectivity-rate", type=float, default=0.72)
    parser.add_argument("--groups", default="1,32")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "codesign_accuracy.json"))
    args = parser.parse_args(argv)
    args.groups = [int(g) for g in args.groups.split(",")]
    data = demo.load_mnist_5k()
    rows = []
    for seed in range(args.seeds):
        rows.extend(run_seed(seed, args, data))
        print(summary(rows), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"settings": {k: v for k, v in vars(args).items() if k != "out"},
                   "rows": rows}, f, indent=1)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
