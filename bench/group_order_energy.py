"""How much of each conv's weight norm a pattern projection keeps, by grouping.

Group size N makes N consecutive output channels share a pattern and a removal
per input channel (what the delegate's block kernel runs). Would a better
order of the output channels, chosen so that channels wanting the same
patterns share a group, win back what grouping loses? This prints, for every
pruned conv of a trained model, the fraction of the squared weight norm kept
at the study's density (4 of 9 cells, 72 % of the kernels removed) with free
patterns, consecutive groups, and groups of channels clustered by the energy
each pattern keeps per input channel (balanced k-means, cosine similarity).

    .venv/bin/python bench/group_order_energy.py [--model bench/results/cifar10/dense.keras]

No training: it reads the projection of the trained weights, a proxy for the
damage a structure does before fine-tuning.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402


def kept_fraction(kernel, mask):
    return float(np.sum((kernel * mask) ** 2) / np.sum(kernel ** 2))


def pattern_energy(kernel, pool):
    """Per output channel, the unit-norm vector of the energy each pattern keeps
    of each input channel's kernel: channels alike here want the same patterns."""
    kh, kw, cin, cout = kernel.shape
    energy = (kernel ** 2).reshape(kh * kw, cin, cout)
    cells = pool.reshape(len(pool), kh * kw).astype(np.float32)
    features = np.einsum("pk,kio->oip", cells, energy).reshape(cout, -1)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def clustered_order(kernel, pool, group_size, iterations=10, seed=0):
    """Output channels ordered so that each run of ``group_size`` is one
    cluster of balanced k-means on `pattern_energy`."""
    features = pattern_energy(kernel, pool)
    channels = len(features)
    clusters = channels // group_size
    rng = np.random.default_rng(seed)
    centers = features[rng.choice(channels, clusters, replace=False)]
    for _ in range(iterations):
        similarity = features @ centers.T
        assign, counts = -np.ones(channels, int), np.zeros(clusters, int)
        # Most similar pairs first, each cluster capped at group_size members.
        for flat in np.argsort(-similarity, axis=None):
            channel, cluster = divmod(int(flat), clusters)
            if assign[channel] < 0 and counts[cluster] < group_size:
                assign[channel], counts[cluster] = cluster, counts[cluster] + 1
        centers = np.stack([features[assign == c].mean(0) for c in range(clusters)])
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    return np.argsort(assign, kind="stable")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(HERE, "results", "cifar10", "dense.keras"))
    parser.add_argument("--connectivity-rate", type=float, default=0.72)
    parser.add_argument("--group-size", type=int, default=16)
    args = parser.parse_args(argv)
    import keras

    from cocopie_keras import patterns

    model = keras.saving.load_model(args.model, compile=False)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
             and layer.kernel.shape[:2] == (3, 3)][1:]  # the study keeps the first conv dense
    kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in convs]
    pool = patterns.design_pattern_pool(kernels, num_patterns=8, entries=4)
    size, rate = args.group_size, args.connectivity_rate
    print(f"{'layer':14s} {'shape':18s} free  g{size} consecutive  g{size} clustered")
    for layer, kernel in zip(convs, kernels):
        def kept(w, group):
            return kept_fraction(w, patterns.project_kernel(w, pool, rate, group_size=group).mask)
        order = clustered_order(kernel, pool, size)
        print(f"{layer.name:14s} {str(kernel.shape):18s} {kept(kernel, 1):.3f} "
              f"{kept(kernel, size):13.3f} {kept(kernel[..., order], size):12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
