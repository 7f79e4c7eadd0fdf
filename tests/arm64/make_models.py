"""Writes the models the emulated arm64 test runs (run on the x86-64 host).

TensorFlow and Keras do not run under qemu, so the arm64 runner
(``run_models.py``) gets everything prepared here: pattern-pruned Keras models
converted by ``cocopie_keras.converter.convert`` (same shapes as
``tests/delegate_conv_test.py``), random inputs at several batch and spatial
sizes, and the outputs of stock LiteRT on this host for each input.

Layout of ``--out``::

    manifest.json       {"cases": [{"name", "model", "data", "convs", "quick"}]}
                        (convs: CONV_2D nodes the delegate must claim)
    <name>.tflite       the converted model (with its "cocopie_lr" metadata)
    <name>.npz          x0, y0, x1, y1, ...: inputs and host stock outputs

Example:
    .venv/bin/python tests/arm64/make_models.py --out out/arm64/models --quick
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A pattern-pruned model converted without the LR: the delegate must claim
# nothing. Together with the other cases this shows that the runtime hands
# the delegate the model's metadata (GetModelMetadata works): patterns
# derived from the weights would claim this model's conv too.
NO_LR_CASE = "no_lr_metadata"


# name: (input shape, Conv2D kwargs per layer, connectivity rate, extra input
# shapes (None: a fixed-size model), in the quick subset)
CASES = {
    "same_s1_relu_odd": ((9, 9, 3), [dict(filters=5, kernel_size=3, padding="same", activation="relu")],
                         0.0, [(2, 13, 6, 3)], True),
    "same_s2_none": ((10, 12, 7), [dict(filters=3, kernel_size=3, strides=2, padding="same")],
                     0.0, None, False),
    "valid_s2_relu6": ((12, 12, 4), [dict(filters=6, kernel_size=3, strides=2, padding="valid",
                                          activation="relu6")], 0.0, None, False),
    "valid_s1_chain": ((8, 13, 5), [dict(filters=7, kernel_size=3, padding="valid", activation="relu"),
                                    dict(filters=9, kernel_size=3, padding="same", activation="relu6"),
                                    dict(filters=3, kernel_size=3, strides=2, padding="same")],
                       0.3, [(2, 11, 9, 5)], True),
    "dilated_no_bias": ((11, 10, 3), [dict(filters=4, kernel_size=3, dilation_rate=2, padding="same",
                                           use_bias=False)], 0.0, None, False),
    "connectivity_half": ((14, 14, 16), [dict(filters=24, kernel_size=3, padding="same",
                                              activation="relu")], 0.5, None, True),
    # Wide rows: several full NEON/SVE vectors plus a tail per row.
    "wide_rows": ((6, 37, 8), [dict(filters=16, kernel_size=3, padding="same", activation="relu")],
                  0.2, None, False),
    NO_LR_CASE: ((9, 9, 3), [dict(filters=5, kernel_size=3, padding="same")], 0.0, None, True),
}


def build_model(input_shape, convs, rate, seed=0):
    """A pattern-pruned Functional stack of Conv2D layers with random biases."""
    import keras
    import numpy as np

    from cocopie_keras import sparsity

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = inputs
    for kwargs in convs:
        x = keras.layers.Conv2D(**kwargs)(x)
    model = keras.Model(inputs, x)
    config = sparsity.PatternPruningConfig(connectivity_rate=rate, pattern_pool="fixed")
    pruned = sparsity.prune_in_place(model, config)
    rng = np.random.default_rng(seed)
    for name in pruned:
        layer = model.get_layer(name)
        if layer.use_bias:
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    return model


def stock_outputs(tflite_bytes, inputs):
    """Host LiteRT outputs (no cocopie delegate), one per input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    outputs = []
    for x in inputs:
        interpreter.resize_tensor_input(index, list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    return outputs


def write_case(out_dir, name, spec):
    import numpy as np

    from cocopie_keras import converter

    shape, convs, rate, resized, quick = spec
    if name == NO_LR_CASE:
        import tensorflow as tf

        model = build_model(shape, convs, rate)
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        return _save(out_dir, name, data, [(2,) + shape], claimed=0, quick=quick)
    dynamic = resized is not None
    model = build_model((None, None, shape[2]) if dynamic else shape, convs, rate)
    if dynamic:
        model(np.zeros((1,) + shape, np.float32))
    data = converter.convert(model)
    shapes = [(2,) + shape, (1,) + shape] + [tuple(s) for s in resized or []]
    return _save(out_dir, name, data, shapes, claimed=len(convs), quick=quick)


def _save(out_dir, name, data, shapes, claimed, quick):
    import numpy as np

    rng = np.random.default_rng(len(name))
    inputs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    outputs = stock_outputs(data, inputs)
    with open(os.path.join(out_dir, name + ".tflite"), "wb") as f:
        f.write(data)
    arrays = {}
    for i, (x, y) in enumerate(zip(inputs, outputs)):
        arrays[f"x{i}"], arrays[f"y{i}"] = x, y
    np.savez(os.path.join(out_dir, name + ".npz"), **arrays)
    return {"name": name, "model": name + ".tflite", "data": name + ".npz",
            "convs": claimed, "quick": quick}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write (created)")
    parser.add_argument("--quick", action="store_true", help="only the quick subset")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    names = [n for n, spec in CASES.items() if spec[4] or not args.quick]
    cases = [write_case(args.out, name, CASES[name]) for name in names]
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} models to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
