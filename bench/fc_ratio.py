"""Speed of pruned FULLY_CONNECTED layers: LiteRT+XNNPACK vs the cocopie delegate.

The classifier heads of real networks (VGG-16's 25088→4096→4096→1000, 480 MB
of weights, most of its whole-model time at batch 1, and its last two layers
alone; ResNet-50's 2048→1000; MobileNetV2's 1280→1000), connectivity-pruned in 4×4 blocks (``--block``) at
``--connectivity-rate`` of the blocks (0.72 by default, as the conv layers),
or one weight at a time (``--block 1x1``). Three timings from one run on the
same file: XNNPACK on the dense weights (a copy of the head before pruning),
XNNPACK on the pruned weights (it does not skip zeros) and the delegate on the
pruned weights; and whether the delegate's outputs match stock's.

    .venv/bin/python bench/fc_ratio.py [--threads 2] [--repeat 30] [--batch 1]
        [--connectivity-rate 0.72] [--block 4x4] [--out bench/results/fc_ratio.json]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cocopie_keras import converter, delegate  # noqa: E402
from cocopie_keras.bench import timing  # noqa: E402

# (name, input features, widths of the Dense layers)
HEADS = [
    ("vgg16_head", 25088, (4096, 4096, 1000)),
    ("vgg16_fc2", 4096, (4096,)),
    ("vgg16_fc3", 4096, (1000,)),
    ("resnet50_head", 2048, (1000,)),
    ("mobilenetv2_head", 1280, (1000,)),
]


def build_head(features, widths, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    x = inputs
    for index, width in enumerate(widths):
        last = index == len(widths) - 1
        x = keras.layers.Dense(width, activation=None if last else "relu")(x)
    return keras.Model(inputs, x)


def prune_blocks(model, rate, block, seed=0):
    """Removes ``rate`` of the (in, out) blocks of every Dense kernel (lowest L1
    norm first, as connectivity pruning does) and rescales the kept weights so
    that activations stay at unit scale (no denormals)."""
    rng = np.random.default_rng(seed)
    bh, bw = block
    for layer in model.layers[1:]:
        kernel = layer.kernel.numpy()
        rows, cols = kernel.shape
        norms = np.abs(kernel.reshape(rows // bh, bh, cols // bw, bw)).sum(axis=(1, 3))
        norms += rng.random(norms.shape) * 1e-6  # ties broken at random
        keep = norms > np.quantile(norms, rate)
        mask = np.kron(keep, np.ones((bh, bw), dtype=bool))
        layer.kernel.assign(kernel * mask / np.sqrt(1.0 - rate))


def measure(name, features, widths, args):
    dense_model = build_head(features, widths)
    dense_file = converter.convert(dense_model, storage="dense")
    prune_blocks(dense_model, args.connectivity_rate, args.block)
    pruned_file = converter.convert(dense_model)
    described = [l for l in converter.read_lr(pruned_file) or []]
    x = np.random.default_rng(1).normal(size=(args.batch, features)).astype(np.float32)
    runs = {
        "xnnpack_dense": delegate.make_interpreter(dense_file, use_delegate=False,
                                                   num_threads=args.threads, input_shape=x.shape),
        "xnnpack_same_weights": delegate.make_interpreter(
            pruned_file, use_delegate=False, num_threads=args.threads, input_shape=x.shape),
        "cocopie": delegate.make_interpreter(pruned_file, num_threads=args.threads,
                                             input_shape=x.shape),
    }
    claimed = delegate.delegated_node_count(runs["cocopie"])
    ms = {}
    for _ in range(3):  # interleaved rounds: drift hits every runtime alike
        for key, interpreter in runs.items():
            sample, _ = timing.median_latency_ms(interpreter, x, warmup=3, repeats=args.repeat)
            ms[key] = min(ms.get(key, sample), sample)
    stock = timing.run(runs["xnnpack_same_weights"], x)
    ours = timing.run(runs["cocopie"], x)
    kept = sum(int(np.count_nonzero(l.kernel.numpy())) for l in dense_model.layers[1:])
    total = sum(int(l.kernel.numpy().size) for l in dense_model.layers[1:])
    return {
        "model": name, "layers": len(widths), "described": len(described), "claimed": claimed,
        "batch": args.batch, "threads": args.threads, "block": list(args.block),
        "connectivity_rate": args.connectivity_rate, "weight_density": round(kept / total, 4),
        "latency_ms": {k: round(v, 3) for k, v in ms.items()},
        "speedup_vs_xnnpack_dense": round(ms["xnnpack_dense"] / ms["cocopie"], 2),
        "speedup_vs_xnnpack_same_weights": round(ms["xnnpack_same_weights"] / ms["cocopie"], 2),
        "matches_stock": bool(np.allclose(ours, stock, rtol=1e-4,
                                          atol=1e-4 * float(np.abs(stock).max()))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--connectivity-rate", type=float, default=0.72)
    parser.add_argument("--block", default="4x4",
                        type=lambda s: tuple(int(v) for v in s.lower().split("x")))
    parser.add_argument("--out", default=None, help="JSON file to write the rows to")
    args = parser.parse_args(argv)
    rows = []
    for name, features, widths in HEADS:
        rows.append(measure(name, features, widths, args))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"command": "python bench/fc_ratio.py " + " ".join(argv or sys.argv[1:]),
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
