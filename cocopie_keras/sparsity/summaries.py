"""TensorBoard summaries of ADMM pattern pruning, a matplotlib figure of the
pattern histogram and per-layer density, and the 3×3 conv weight density.

Example:

>>> callback = ADMMCallback(log_dir="logs/admm")      # writes summaries itself
>>> plot_pattern_summary(pattern_info(model), "patterns.png")
>>> conv_weight_density(model)                        # 3×3 conv weights kept
"""

import numpy as np

from cocopie_keras import patterns as patterns_lib


def conv_weight_density(model):
    """Fraction of non-zero weights over all 3×3 Conv2D kernels of ``model``.

    Wrapped and plain models alike (a wrapper's layer holds ``W·mask`` after
    ``hard_prune``); grouped convolutions, which are never pattern-pruned, do
    not count. 1.0 when there is none.
    """
    import keras

    kernels = [
        keras.ops.convert_to_numpy(layer.kernel)
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.Conv2D)
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
        and tuple(layer.kernel_size) == (3, 3)
        and getattr(layer, "groups", 1) == 1
    ]
    total = sum(k.size for k in kernels)
    return float(sum(np.count_nonzero(k) for k in kernels) / total) if total else 1.0


class PruningSummaryWriter:
    """Writes per-layer ADMM scalars and pattern-id histograms to TensorBoard.

    Scalars ``residual/<layer>``, ``relative_residual/<layer>``,
    ``pattern_change/<layer>``, ``sparsity/<layer>`` and ``rho``; histogram
    ``patterns/<layer>`` of pattern ids (``-1`` = removed kernel). The step is
    the training step of the update.
    """

    def __init__(self, log_dir):
        import tensorflow as tf  # TensorBoard event files: TF's writer

        self._tf = tf
        self._writer = tf.summary.create_file_writer(log_dir)

    def write_admm(self, entry, wrappers):
        import keras

        tf, step = self._tf, int(entry["step"])
        with self._writer.as_default():
            tf.summary.scalar("rho", entry["rho"], step=step)
            for name, record in entry["layers"].items():
                for key in ("residual", "relative_residual", "pattern_change", "sparsity"):
                    tf.summary.scalar(f"{key}/{name}", record[key], step=step)
            for wrapper in wrappers:
                ids = keras.ops.convert_to_numpy(wrapper.pattern_ids).ravel()
                tf.summary.histogram(f"patterns/{wrapper.layer.name}", ids, step=step,
                                     buckets=len(wrapper.pattern_pool) + 1)

    def flush(self):
        self._writer.flush()


def pattern_histogram(info):
    """Counts of each pattern over all layers sharing the first layer's pool.

    Args:
        info: ``pattern_info(model)``.

    Returns:
        ``(pool, counts, removed)``: the pool, kernels per pattern, and
        removed kernels, over the conv layers whose pool equals the first one.
    """
    layers = [v for v in info.values() if v["kind"] != "dense"]
    if not layers:
        raise ValueError("Expected at least one pattern-pruned conv layer. Received: none")
    pool = layers[0]["pattern_pool"]
    counts = np.zeros(len(pool), dtype=np.int64)
    removed = 0
    for layer in layers:
        if layer["pattern_pool"].shape != pool.shape or not np.array_equal(layer["pattern_pool"], pool):
            continue
        ids = layer["pattern_ids"].ravel()
        removed += int(np.sum(ids == patterns_lib.REMOVED))
        counts += np.bincount(ids[ids >= 0], minlength=len(pool))[: len(pool)]
    return pool, counts, removed


def plot_pattern_summary(info, path, title=None):
    """Saves a PNG: pattern histogram (with each pattern drawn) and density per layer.

    Args:
        info: ``pattern_info(model)`` of a hard-pruned model.
        path: PNG file to write.
        title: optional figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pool, counts, removed = pattern_histogram(info)
    figure = plt.figure(figsize=(11, 4.2))
    grid = figure.add_gridspec(2, len(pool) + 1 + 4, height_ratios=[1, 3])
    for index, pattern in enumerate(pool):
        axis = figure.add_subplot(grid[0, index])
        axis.imshow(pattern, cmap="Greys", vmin=0, vmax=1)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(str(index), fontsize=8)
    bars = figure.add_subplot(grid[1, : len(pool) + 1])
    labels = [str(i) for i in range(len(pool))] + ["removed"]
    bars.bar(labels, list(counts) + [removed], color=["C0"] * len(pool) + ["C3"])
    bars.set_xlabel("pattern id")
    bars.set_ylabel("kernels")
    bars.set_title("pattern histogram (all pruned conv layers)")
    density = figure.add_subplot(grid[:, len(pool) + 2:])
    names = list(info)
    density.barh(names, [info[n]["density"] for n in names], color="C2")
    density.invert_yaxis()
    density.set_xlim(0, 1)
    density.set_xlabel("kept weight fraction")
    density.set_title("density per layer")
    if title:
        figure.suptitle(title)
    figure.subplots_adjust(left=0.06, right=0.97, bottom=0.12, top=0.86, wspace=0.5, hspace=0.5)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
