"""Converts a CIFAR-10 .keras model to .tflite and scores the file on the validation split.

    python bench/cifar10_export.py --data PATH [--model bench/results/cifar10/dense.keras]
        [--output bench/results/cifar10/dense.tflite]

The file is what anyone can score: float32 NHWC 1x32x32x3 RGB in 0-255 in
(the model normalizes), 10 scores out in ``cifar10_data.CLASSES`` order. The
score comes from running the .tflite itself on LiteRT, one image at a time,
on the 5,000 held-out images (``cifar10_data.stratified_split``), and is
checked against the Keras model's own predictions; with ``--delegate`` the
file also runs on LiteRT + cocopie and the two runtimes' predictions are
compared. The record goes to ``<output>.json``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar10_data  # noqa: E402
import cifar10_train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "cifar10")


def tflite_predictions(tflite_bytes, images, use_delegate, threads=2):
    """Class indices the .tflite gives each image, run one at a time."""
    from cocopie_keras import delegate

    interpreter = delegate.make_interpreter(tflite_bytes, use_delegate=use_delegate,
                                            num_threads=threads)
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    labels = np.empty(len(images), dtype=np.int64)
    for index, image in enumerate(images):
        interpreter.set_tensor(source["index"], image[None].astype(np.float32))
        interpreter.invoke()
        labels[index] = int(np.argmax(interpreter.get_tensor(target["index"])[0]))
    claimed = delegate.delegated_node_count(interpreter) if use_delegate else 0
    return labels, claimed


def export(args):
    from cocopie_keras import atomic_write, converter
    from cocopie_keras.commands import _inputs

    (_, _), (x_val, y_val) = cifar10_data.load_split(args.data, args.cache)
    model = _inputs.load_keras_model(args.model)
    keras_labels = np.argmax(model.predict(x_val.astype(np.float32), batch_size=500,
                                           verbose=0), axis=1)
    data = converter.convert(model)
    atomic_write.write_bytes(args.output, data)
    record = {"model": os.path.relpath(args.model, HERE), "tflite_bytes": len(data),
              "pattern_convs_in_lr": len(converter.read_lr(data) or []),
              "validation_images": int(len(y_val)),
              "val_accuracy_keras": float(np.mean(keras_labels == y_val))}
    start = time.time()
    stock, _ = tflite_predictions(data, x_val, use_delegate=False)
    record["val_accuracy_tflite"] = float(np.mean(stock == y_val))
    record["tflite_agrees_with_keras"] = float(np.mean(stock == keras_labels))
    record["scoring_seconds"] = round(time.time() - start, 1)
    if args.delegate:
        ours, claimed = tflite_predictions(data, x_val, use_delegate=True)
        record["val_accuracy_cocopie"] = float(np.mean(ours == y_val))
        record["cocopie_agrees_with_stock"] = float(np.mean(ours == stock))
        record["cocopie_claimed_nodes"] = claimed
    with atomic_write.atomic_path(os.path.splitext(args.output)[0] + ".json") as path:
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
    print(json.dumps(record, indent=1))
    return record


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True,
                        help="folder of class folders (train/<class>/*.jpg) or its .tar.gz")
    parser.add_argument("--model", default=os.path.join(RESULTS, "dense.keras"))
    parser.add_argument("--output", default=os.path.join(RESULTS, "dense.tflite"))
    parser.add_argument("--cache", default=os.path.join(cifar10_train.DEFAULT_WORKDIR,
                                                        "cifar10_uint8.npz"),
                        help="decoded-image cache (.npz), shared with the training run")
    parser.add_argument("--delegate", action="store_true",
                        help="also run the file on LiteRT + cocopie and compare")
    args = parser.parse_args(argv)
    if not args.output.endswith(".tflite"):
        parser.error(f"expected an --output ending in .tflite. Received: {args.output}")
    return args


if __name__ == "__main__":
    export(parse_args())
