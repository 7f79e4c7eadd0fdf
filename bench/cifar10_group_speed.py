"""Speed of the CIFAR-10 net's pruning structure by group size, before any training.

    python bench/cifar10_group_speed.py [--group-sizes 1,8,16,32] [--json PATH]

Projects the dense model (``results/cifar10/dense.keras``) at once onto the
study's pruning configuration (``cifar10_study.pruning_config``: 4 of 9 weights
per 3×3 kernel, 72 % of the kernels removed, stem dense) for each group size,
converts it, and times LiteRT + cocopie against LiteRT + XNNPACK on the dense
file, 2 threads, interleaved rounds in one process (``cifar10_study``'s timing).

The weights are projected, not fine-tuned, so their accuracy means nothing:
the figures say which group size the delegate needs on this network's shapes
(the speed depends on the structure, not on the values), and so which group
sizes the accuracy study has to score. A speed-up is claimed only on the
study's own trained weights (``cifar10_study.py measure``). Run it on a quiet
machine.
"""

import argparse
import json
import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar10_study  # noqa: E402


def projected_tflite(dense, group_size, connectivity_rate):
    """The dense model projected onto the study's structure, as .tflite bytes."""
    from cocopie_keras import converter, sparsity

    config = cifar10_study.pruning_config(types.SimpleNamespace(
        connectivity_rate=connectivity_rate, group_size=group_size))
    wrapped = sparsity.prune_wrap(dense, config)
    sparsity.hard_prune(wrapped)
    density, largest, _ = cifar10_study.conv_density(sparsity.strip_pruning(wrapped))
    return converter.convert(wrapped), density, largest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dense", default=os.path.join(cifar10_study.RESULTS, "dense.keras"))
    parser.add_argument("--group-sizes", default="1,8,16,32")
    parser.add_argument("--connectivity-rate", type=float, default=0.72)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    try:
        group_sizes = [int(size) for size in args.group_sizes.split(",")]
    except ValueError:
        parser.error(f"expected comma-separated integers. Received: --group-sizes "
                     f"{args.group_sizes}")
    if any(size < 1 for size in group_sizes):
        parser.error(f"expected group sizes >= 1. Received: --group-sizes {args.group_sizes}")

    import keras

    dense = keras.saving.load_model(args.dense, compile=False)
    with open(os.path.splitext(args.dense)[0] + ".tflite", "rb") as f:
        models = {"xnnpack_dense": (f.read(), False)}
    structure = {}
    for size in group_sizes:
        data, density, largest = projected_tflite(dense, size, args.connectivity_rate)
        models[f"cocopie_g{size}"] = (data, True)
        structure[size] = {"conv_weight_density": density, "largest_layer_density": largest,
                           "tflite_bytes": len(data)}
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    times = cifar10_study._latencies_ms(models, image, args.threads, args.rounds)
    rows = [{"group_size": size, "connectivity_rate": args.connectivity_rate,
             **structure[size], "latency_ms_cocopie": times[f"cocopie_g{size}"],
             "latency_ms_xnnpack_dense": times["xnnpack_dense"],
             "speedup_vs_xnnpack_dense": times["xnnpack_dense"] / times[f"cocopie_g{size}"],
             "threads": args.threads} for size in group_sizes]
    for row in rows:
        print(f"group size {row['group_size']:3d}: {row['latency_ms_cocopie']:.3f} ms, "
              f"{row['speedup_vs_xnnpack_dense']:.2f}x XNNPACK dense "
              f"({row['latency_ms_xnnpack_dense']:.3f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"note": "projected weights, not trained: structure speed only",
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
