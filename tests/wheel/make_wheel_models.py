"""Writes the models the installed-wheel check runs (in the project's venv).

The wheel is checked in a virtualenv holding only the wheel, LiteRT and
numpy (``mk/wheel.mk``), so TensorFlow and Keras build and convert the models
here. One network has every operator the delegate claims: pattern-pruned
3×3 convolutions (stored compactly, behind DENSIFY), a depthwise
convolution, and the ADD, MAX_POOL_2D and PAD between them.

Layout of ``--out``::

    manifest.json   {"cases": [{"name", "model", "input_shapes", "convs"}]}
                    (convs: (depthwise) convolutions the delegate must claim)
    <name>.tflite   the converted model (with its "cocopie_lr" metadata)

Example:
    .venv/bin/python tests/wheel/make_wheel_models.py --out out/wheel/models
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHANNELS = 8
INPUT_SHAPES = [(2, 15, 15, CHANNELS), (1, 9, 13, CHANNELS)]


def residual_network(seed=0):
    """conv → depthwise → ADD → max-pool → zero pad → conv, all pattern-pruned."""
    import keras
    import numpy as np

    from cocopie_keras import patterns
    from cocopie_keras import sparsity

    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, CHANNELS))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    y = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = layers.Add()([x, y])
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(12, 3, padding="valid", activation="relu6")(x)
    model = keras.Model(inputs, x)
    model(np.zeros(INPUT_SHAPES[0], np.float32))
    sparsity.prune_in_place(model, sparsity.PatternPruningConfig(
        connectivity_rate=0.3, pattern_pool="fixed", skip_types=("DepthwiseConv2D",)))
    depthwise = model.get_layer("depthwise")
    kernel = depthwise.kernel.numpy()
    projection = patterns.project_kernel(kernel, group_size=16, depthwise=True)
    depthwise.kernel.assign(kernel * projection.mask)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "use_bias", False):
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write (created)")
    args = parser.parse_args(argv)

    from cocopie_keras import converter

    os.makedirs(args.out, exist_ok=True)
    data = converter.convert(residual_network())
    problems = converter.check_lr(data)
    if problems:
        raise ValueError(f"Expected a file the delegate accepts. Received: {problems}")
    name = "residual_pattern_net"
    with open(os.path.join(args.out, name + ".tflite"), "wb") as f:
        f.write(data)
    case = {"name": name, "model": name + ".tflite",
            "input_shapes": [list(s) for s in INPUT_SHAPES],
            "convs": len(converter.read_lr(data))}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"cases": [case]}, f, indent=1)
    print(f"wrote {name} ({case['convs']} pattern convolutions) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
