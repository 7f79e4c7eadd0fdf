"""Trains the dense CIFAR-10 baseline that the pruning studies start from.

    python bench/cifar10_train.py --data PATH [--workdir DIR] [--epochs N]

The network is a VGG-style net of the family that fast CIFAR-10 recipes use
(three blocks of two 3x3 convs, widths 64 / 256 / 256 after a 32-channel stem,
batch norm, max pooling): 7 convs, 6 of them with >= 64 output channels. The
recipe: flip + 4-pixel reflect-padded crop, label smoothing 0.2, SGD with
Nesterov momentum, a linear warm-up then linear decay to zero (one cycle),
decoupled weight decay on conv and dense kernels only.

Weight decay: Keras' SGD applies ``weight_decay`` decoupled, shrinking a
kernel by ``lr * weight_decay`` per step outside the momentum. The classic
CIFAR-10 recipes add ``5e-4 * w`` to the gradient instead, and momentum 0.9
then repeats that pull for about 1 / (1 - 0.9) = 10 steps: the same strength
is ``5e-3`` here, the default. With ``5e-4`` the net under-regularizes (30
epochs: 98.9 % training, 88.8 % validation accuracy).

The model takes float32 NHWC images in 0-255 RGB and normalizes them itself,
so the exported files need no preprocessing. 45,000 images train; 5,000 (500 a
class, fixed seed, ``cifar10_data.stratified_split``) validate.

The run is resumable: ``keras.callbacks.BackupAndRestore`` keeps the model and
optimizer state in ``--workdir`` after every epoch, and the per-epoch record
(accuracy, seconds) lives there too, so killing and restarting the same
command continues where it stopped and the recorded wall time adds up over
restarts. At the end the model is written to ``--out/dense.keras`` and the
record to ``--out/dense_training.json``.

``--carry DIR`` makes the run portable across machines: after every epoch the
backup and the record are copied to ``DIR`` as well (a folder that can be
committed, e.g. ``bench/results/cifar10/dense_checkpoint``), and a run whose
workdir holds no backup yet starts from ``DIR``'s. A session cut short can
then commit ``DIR`` and another machine continue from it.

``--init MODEL.keras`` starts from a trained model instead of random weights
and runs a second one-cycle on it (a warm restart); the record then keeps the
first run's record under ``"init"`` and its wall time counts in the total.
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar10_data  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "cifar10")
DEFAULT_WORKDIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
    "cocopie-keras", "cifar10_dense")


def build_model(mean, std, widths=(64, 256, 256), stem=32):
    import keras
    from keras import layers

    def conv_bn_relu(x, filters, name):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input((32, 32, 3), name="image_0_255")
    x = layers.Normalization(mean=list(mean), variance=list(np.square(std)),
                             name="normalize")(inputs)
    x = conv_bn_relu(x, stem, "stem")
    for index, width in enumerate(widths, start=1):
        x = conv_bn_relu(x, width, f"block{index}a")
        x = layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
        x = conv_bn_relu(x, width, f"block{index}b")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(len(cifar10_data.CLASSES), name="logits")(x)
    # Small logits at the start keep the high one-cycle rate stable (the
    # fast ResNet-9 recipes scale by 1/8 too); without it the first epochs
    # diverged (loss above ln 10).
    outputs = layers.Rescaling(0.125, name="logit_scale")(x)
    return keras.Model(inputs, outputs, name="cifar10_vgg")


def compile_model(model, schedule, weight_decay=5e-3, label_smoothing=0.2, jit_compile=False):
    """The recipe's optimizer and loss (``training.compile_classifier``)."""
    from cocopie_keras import training

    # Whether XLA helps depends on the CPU: a 512-image step took half the
    # time with XLA on one 2-core machine and twice the time (6.8 s against
    # 3.4 s with TF's own oneDNN kernels) on a 2-core AVX-512 EPYC. Hence a
    # flag, off by default.
    training.compile_classifier(model, "sgd", schedule, weight_decay=weight_decay,
                                label_smoothing=label_smoothing, jit_compile=jit_compile)


def augmented_batches(x, y, batch_size, seed):
    """Flip + 4-pixel reflect-padded crop batches (``training.FlipCropBatches``)."""
    from cocopie_keras import training

    return training.FlipCropBatches(x, y, batch_size, len(cifar10_data.CLASSES), seed)


def _record_path(workdir):
    return os.path.join(workdir, "epochs.json")


def _load_record(workdir):
    path = _record_path(workdir)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return []


def _save_json(path, value):
    temporary = path + ".partial"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(temporary, path)


def _load_init(path, model):
    """Copies a trained model's weights into ``model``; returns its training record."""
    import keras

    trained = keras.saving.load_model(path, compile=False)
    if [w.shape for w in trained.weights] != [w.shape for w in model.weights]:
        raise ValueError(f"Expected a model built by build_model. Received: init={path}")
    model.set_weights(trained.get_weights())
    record_path = os.path.join(os.path.dirname(path), "dense_training.json")
    if not os.path.exists(record_path):
        raise ValueError(f"Expected the training record {record_path} beside the initial "
                         f"model, so that its wall time counts. Received: init={path}")
    with open(record_path) as f:
        return json.load(f)


_CARRIED = ("latest.weights.h5", "training_metadata.json")


def _carry_in(carry, workdir):
    """Seeds an empty workdir with the carried backup and record, if any."""
    backup = os.path.join(workdir, "backup")
    if not carry or os.path.exists(os.path.join(backup, _CARRIED[0])):
        return
    if not os.path.exists(os.path.join(carry, _CARRIED[0])):
        return
    os.makedirs(backup, exist_ok=True)
    for name in _CARRIED:
        shutil.copyfile(os.path.join(carry, name), os.path.join(backup, name))
    shutil.copyfile(os.path.join(carry, "epochs.json"), _record_path(workdir))
    print(f"resuming from the carried checkpoint in {carry}", flush=True)


def _carry_out(carry, workdir):
    """Copies the latest backup and record to ``carry`` (atomically per file)."""
    os.makedirs(carry, exist_ok=True)
    sources = [os.path.join(workdir, "backup", name) for name in _CARRIED]
    for source in [*sources, _record_path(workdir)]:
        target = os.path.join(carry, os.path.basename(source))
        shutil.copyfile(source, target + ".partial")
        os.replace(target + ".partial", target)


def train(args):
    import keras

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_val, y_val) = cifar10_data.load_split(
        args.data, os.path.join(args.workdir, "cifar10_uint8.npz"))
    mean = x_train.reshape(-1, 3).mean(axis=0)
    std = x_train.reshape(-1, 3).std(axis=0)
    _carry_in(args.carry, args.workdir)
    model = build_model(mean, std)
    previous = _load_init(args.init, model) if args.init else None
    batches = augmented_batches(x_train, y_train, args.batch_size, args.seed)
    steps = len(batches)
    from cocopie_keras import training

    schedule = training.OneCycle(args.lr, steps * args.epochs, int(steps * args.warmup_epochs))
    compile_model(model, schedule, args.weight_decay, jit_compile=args.xla)
    record = _load_record(args.workdir)

    class EpochRecord(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            record[:] = [r for r in record if r["epoch"] < epoch]
            record.append({"epoch": epoch, "seconds": round(time.time() - self.start, 1),
                           "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]),
                           "val_accuracy": float(logs["val_accuracy"])})
            _save_json(_record_path(args.workdir), record)
            if args.carry:  # after BackupAndRestore, which runs first, saved
                _carry_out(args.carry, args.workdir)
            print(f"epoch {epoch + 1}/{args.epochs}: val_accuracy "
                  f"{logs['val_accuracy']:.4f} ({record[-1]['seconds']} s)", flush=True)

    dataset = batches.dataset()
    y_val_hot = keras.utils.to_categorical(y_val, 10)
    model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps,
              validation_data=(x_val.astype(np.float32), y_val_hot), validation_batch_size=500,
              callbacks=[keras.callbacks.BackupAndRestore(os.path.join(args.workdir, "backup")),
                         EpochRecord()],
              verbose=2)
    _, val_accuracy = model.evaluate(x_val.astype(np.float32), y_val_hot, batch_size=500,
                                     verbose=0)
    os.makedirs(args.out, exist_ok=True)
    run_seconds = sum(r["seconds"] for r in record)
    # Saved without the optimizer's state: half the file, and what pruning
    # and conversion start from.
    keras.Model(model.inputs, model.outputs, name=model.name).save(
        os.path.join(args.out, "dense.keras"))
    _save_json(os.path.join(args.out, "dense_training.json"), {
        "architecture": "cifar10_vgg: stem 32, blocks 64/256/256 (2 convs each), BN, ReLU, "
                        "global max pool, dense, logits x 1/8",
        "recipe": {"epochs": args.epochs, "batch_size": args.batch_size, "peak_lr": args.lr,
                   "warmup_epochs": args.warmup_epochs, "weight_decay": args.weight_decay,
                   "optimizer": "SGD nesterov 0.9", "label_smoothing": 0.2,
                   "augmentation": "flip + 4px reflect-pad crop", "seed": args.seed},
        "split": {"train": int(len(y_train)), "validation": int(len(y_val)),
                  "validation_per_class": cifar10_data.VALIDATION_PER_CLASS,
                  "split_seed": cifar10_data.SPLIT_SEED},
        "val_accuracy": float(val_accuracy),
        "wall_seconds": round(run_seconds + (previous["wall_seconds"] if previous else 0), 1),
        "epochs": record,
        **({"init": previous} if previous else {}),
    })
    print(f"validation accuracy {val_accuracy:.4f}; model in {args.out}/dense.keras")
    return val_accuracy


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True,
                        help="folder of class folders (train/<class>/*.jpg) or its .tar.gz")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help="checkpoints, decoded-image cache and per-epoch record (default "
                             "outside the work tree, so that a fresh checkout on the same "
                             "machine resumes)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=0.4)
    parser.add_argument("--warmup-epochs", type=float, default=2.0)
    parser.add_argument("--weight-decay", type=float, default=5e-3,
                        help="decoupled (see above); 5e-3 = the coupled 5e-4 at momentum 0.9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--carry", help="also keep the latest checkpoint here, to be "
                                        "committed and resumed on another machine")
    parser.add_argument("--xla", action="store_true",
                        help="compile the training step with XLA (faster on some CPUs, "
                             "slower on others; time one epoch both ways)")
    parser.add_argument("--init", help="a model saved by this script to warm-start from "
                                       "(its dense_training.json must sit beside it)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not 0 < args.warmup_epochs < args.epochs:
        parser.error("expected epochs >= 1, batch size >= 1 and 0 < warmup < epochs")
    os.makedirs(args.workdir, exist_ok=True)
    return args


if __name__ == "__main__":
    train(parse_args())
