"""Per-weight gradient scale of the ADMM penalty against the cross-entropy.

The penalty ``ρ/2·‖W − Z + U‖²`` is summed over the weights while the
cross-entropy is a mean over the batch, so its *value* (8.7 at ρ = 0.1 on the
MNIST-5k net, against a loss of ~0.1) looks out of scale. What the optimizer
sees is the per-weight gradient ``ρ·(W − Z + U)``, which does not depend on
how many weights a layer has. This script measures both per-weight gradients
on the weights the first projection removes, at the first Z/U update
(``Z = Π(W)``, ``U = 0``), for the trained dense seed-0 model of
``cocogen_study.py``:

    .venv/bin/python bench/admm_gradient_scale.py [--dense-cache DIR]

Writes ``bench/results/admm_gradient_scale.json``.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cocogen_study  # noqa: E402

from cocopie_keras import sparsity  # noqa: E402
from cocopie_keras.demo import load_mnist_5k  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rho", type=float, default=0.1)
    parser.add_argument("--dense-epochs", type=int, default=15)
    parser.add_argument("--dense-cache", default=None,
                        help="cocogen_study.py --dense-cache folder (else the dense net is trained)")
    parser.add_argument("--out", default=os.path.join(cocogen_study.HERE, "results",
                                                      "admm_gradient_scale.json"))
    args = parser.parse_args(argv)
    (x, y), _ = load_mnist_5k()
    keras.utils.set_random_seed(args.seed)
    model = cocogen_study.vgg(x.shape[1:], [(16, 32), (32, 64), (64,)], "mnist5k_vgg")
    cache = args.dense_cache and os.path.join(
        args.dense_cache, f"mnist5k_seed{args.seed}_e{args.dense_epochs}_n{len(x)}.npz")
    if cache and os.path.exists(cache):
        with np.load(cache) as saved:
            model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
    else:
        cocogen_study.compile_model(model, 1e-3, args.dense_epochs * int(np.ceil(len(x) / 64)))
        model.fit(x, y, batch_size=64, epochs=args.dense_epochs, verbose=0)
    config = sparsity.PatternPruningConfig(connectivity_rate=0.72, num_patterns=8,
                                           pattern_pool="model", skip_first_conv=True)
    wrapped = sparsity.prune_wrap(model, config)
    wrappers = sparsity.pruning_wrappers(wrapped)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batches = {w.layer.name: [] for w in wrappers}
    for start in range(0, len(x), 64):  # the CE gradient one training step sees
        with tf.GradientTape() as tape:
            loss = loss_fn(y[start:start + 64], wrapped(x[start:start + 64], training=False))
        for wrapper, grad in zip(wrappers, tape.gradient(loss, [w.kernel for w in wrappers])):
            batches[wrapper.layer.name].append(grad.numpy())
    layers = {}
    for wrapper in wrappers:
        weights = wrapper.kernel.numpy()
        kept = wrapper.project(weights).mask.astype(bool)
        penalty_grad = args.rho * weights * ~kept  # ρ(W − Z), Z = W on kept cells, 0 elsewhere
        grads = np.stack(batches[wrapper.layer.name])
        layers[wrapper.layer.name] = {
            "weights": int(weights.size), "removed_fraction": float(1 - kept.mean()),
            "rms_weight_removed": float(np.sqrt(np.mean(weights[~kept] ** 2))),
            "rms_penalty_grad_removed": float(np.sqrt(np.mean(penalty_grad[~kept] ** 2))),
            "rms_ce_grad_per_batch_removed": float(np.sqrt(np.mean(grads[:, ~kept] ** 2))),
            "rms_ce_grad_full_data_removed": float(np.sqrt(np.mean(grads.mean(0)[~kept] ** 2))),
            "penalty_value": float(0.5 * args.rho * np.sum(penalty_grad ** 2) / args.rho ** 2)}
    result = {"seed": args.seed, "rho": args.rho, "layers": layers,
              "penalty_value_total": sum(v["penalty_value"] for v in layers.values())}
    print(json.dumps(result, indent=1))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
