"""cocopie prune: pattern + connectivity pruning of a saved .keras model with
ADMM, masked fine-tuning, and a plain .keras (optionally .tflite) result."""

import os

# What load_data accepts (shared with `cocopie cocotune`).
DATA_HELP = ("'mnist5k' (built in, pixels 0-1), a .npz with x_train, y_train "
             "[, x_test, y_test] (used as stored), or a folder of images in class "
             "sub-folders (pixels 0-255, as keras.utils.image_dataset_from_directory "
             "gives them; see --image-scale)")
IMAGE_SCALE_HELP = ("multiply the pixels of an image folder (--data FOLDER) by this: the "
                    "default 1 feeds them 0-255 like image_dataset_from_directory (for a "
                    "model with its own Rescaling layer); 1/255 for a model that expects "
                    "0-1")

NAME = "prune"
HELP = "pattern-prune a .keras classifier with ADMM + masked fine-tuning"


def add_data_arguments(parser):
    """--data and --image-scale, as load_data reads them (also `cocopie cocotune`)."""
    parser.add_argument("--data", required=True, help=DATA_HELP)
    parser.add_argument("--image-scale", type=image_scale, default=1.0, metavar="SCALE",
                        help=IMAGE_SCALE_HELP)


def add_arguments(parser):
    parser.add_argument("model", help="trained .keras classifier (integer labels)")
    add_data_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="pruned .keras to write")
    parser.add_argument("--tflite", help="also write a .tflite with the pattern LR")
    parser.add_argument("--connectivity-rate", type=float, default=0.72)
    parser.add_argument("--num-patterns", type=int, default=8)
    parser.add_argument("--pattern-pool", choices=("model", "fixed"), default="model")
    parser.add_argument("--skip-first-conv", action="store_true")
    parser.add_argument("--group-size", type=int, default=1,
                        help="output channels sharing a pattern (32: what the delegate's "
                             "block kernel runs without waste; costs accuracy, see "
                             "bench/README.md)")
    parser.add_argument("--skip-layers", default="", help="comma-separated layer names")
    parser.add_argument("--pointwise-connectivity-rate", type=float, default=0.0,
                        help="fraction of every 1x1 conv's weights removed (0: dense)")
    parser.add_argument("--dense-block-size", type=block_size, metavar="BHxBW",
                        help="also prune Dense kernels by blocks of this size, e.g. 4x4")
    parser.add_argument("--dense-connectivity-rate", type=float, default=0.0,
                        help="fraction of Dense blocks removed (with --dense-block-size)")
    parser.add_argument("--admm-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    recipe_group = parser.add_argument_group(
        "training recipe", "train the way the model was trained (each phase starts a fresh "
        "optimizer; a one-cycle schedule spans one phase)")
    recipe_group.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                              help="of the fine-tuning phase (the ADMM phase's: "
                                   "--admm-optimizer); sgd: Nesterov momentum 0.9")
    recipe_group.add_argument("--learning-rate", type=float, default=1e-3,
                              help="fine-tuning's rate, or its one-cycle peak")
    recipe_group.add_argument("--schedule", choices=("constant", "one-cycle"),
                              default="constant",
                              help="of fine-tuning; one-cycle: linear warm-up to the rate, then linear decay "
                                   "to zero over the phase")
    recipe_group.add_argument("--warmup-epochs", type=float, default=0.5,
                              help="one-cycle warm-up")
    recipe_group.add_argument("--admm-schedule", choices=("constant", "one-cycle"),
                              default="constant", help="schedule of the ADMM phase")
    recipe_group.add_argument("--weight-decay", type=float, default=0.0,
                              help="decoupled, on kernels only: each step shrinks a kernel by "
                                   "lr x this, outside the momentum (with SGD momentum 0.9, "
                                   "10x the usual coupled value: 5e-4 coupled = 5e-3 here)")
    recipe_group.add_argument("--label-smoothing", type=float, default=0.0)
    recipe_group.add_argument("--augment", choices=("none", "flip-crop"), default="none",
                              help="flip-crop: horizontal flip + random crop of the image "
                                   "padded by --crop-pad pixels (reflected)")
    recipe_group.add_argument("--crop-pad", type=int, default=4)
    admm_group = parser.add_argument_group(
        "ADMM phase", "the W-step runs with SGD by default: Adam normalizes each weight's "
        "step, so the pull toward the patterns does not grow with rho and ADMM does not "
        "converge in a few epochs (bench/cocogen_study.md, 'ADMM vs one-shot')")
    admm_group.add_argument("--admm-optimizer", choices=("sgd", "adam"), default="sgd",
                            help="sgd: Nesterov momentum 0.9")
    admm_group.add_argument("--admm-learning-rate", type=float, default=0.01,
                            help="the rate, or the one-cycle peak (--admm-schedule)")
    admm_group.add_argument("--rho", type=float, default=0.1, help="initial ADMM rho")
    admm_group.add_argument("--rho-growth", type=float, default=1.047,
                            help="rho multiplier per Z/U update")
    admm_group.add_argument("--rho-max", type=float, default=1.0, help="rho stops growing here")
    admm_group.add_argument("--update-every", type=int, default=16,
                            help="Z/U update period, in --update-unit")
    admm_group.add_argument("--update-unit", choices=("step", "epoch"), default="step")
    admm_group.add_argument(
        "--admm-penalty", choices=("absolute", "direction"), default="absolute",
        help="direction: penalize W/|W| (rho in those units), for convs followed by "
        "BatchNormalization, which the absolute penalty shrinks (see ADMMCallback)")
    parser.add_argument("--log-dir", help="TensorBoard directory for ADMM summaries")
    parser.add_argument("--plot", help="PNG of the pattern histogram and per-layer density")
    parser.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity")


def block_size(text):
    """A --dense-block-size value: ``BHxBW`` with positive integers."""
    import argparse

    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected BHxBW such as 4x4, got {text!r}")
    return tuple(int(p) for p in parts)


def image_scale(text):
    """An --image-scale value: a positive number or fraction (``1/255``)."""
    import argparse
    import fractions

    try:
        value = float(fractions.Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a positive number or fraction such as 1/255, got {text!r}")
    return value


def load_data(source, image_size=None, image_scale=1.0):
    """``((x_train, y_train), (x_test, y_test))`` from a --data value.

    An image folder is loaded as ``keras.utils.image_dataset_from_directory``
    loads it (float pixels 0-255), times ``image_scale``; a .npz is used as
    stored.
    """
    import numpy as np

    if source == "mnist5k":
        from cocopie_keras.demo import load_mnist_5k

        return load_mnist_5k()
    if os.path.isfile(source) and source.endswith(".npz"):
        with np.load(source) as arrays:
            missing = [k for k in ("x_train", "y_train") if k not in arrays]
            if missing:
                raise ValueError(f"Expected arrays {missing} in {source}. Received: {sorted(arrays)}")
            train = (arrays["x_train"].astype("float32"), arrays["y_train"])
            if "x_test" in arrays and "y_test" in arrays:
                return train, (arrays["x_test"].astype("float32"), arrays["y_test"])
        return _split(*train)
    if os.path.isdir(source):
        import keras

        if image_size is None:
            raise ValueError("Expected a model with a fixed input image size for an image folder")
        dataset = keras.utils.image_dataset_from_directory(
            source, image_size=image_size[:2], batch_size=None, shuffle=True, seed=1234,
            color_mode="grayscale" if image_size[-1] == 1 else "rgb", verbose=False)
        pairs = [(x.numpy(), y.numpy()) for x, y in dataset]
        if not pairs:
            raise ValueError(f"Expected images in class sub-folders of {source!r}. "
                             "Received: none")
        images, labels = zip(*pairs)
        images = np.stack(images).astype("float32")
        if image_scale != 1.0:
            images *= np.float32(image_scale)
        return _split(images, np.asarray(labels))
    raise ValueError(
        "Expected --data to be 'mnist5k', a .npz file or an image folder. "
        f"Received: --data={source!r}"
    )


def _split(x, y, test_fraction=0.2):
    cut = len(x) - max(1, int(len(x) * test_fraction))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def check_data(model, arrays):
    """Refuses data the model cannot train on, before any training.

    Args:
        model: the Keras classifier.
        arrays: ``{name: (x, y)}``, e.g. ``{"train": (x_train, y_train)}``.

    Raises:
        ValueError: images not of the model's input shape, labels that are not
            integers in ``[0, classes)``, or x and y of different lengths.
    """
    import numpy as np

    expected = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    classes = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    for name, (x, y) in arrays.items():
        x, y = np.asarray(x), np.asarray(y)
        if expected is not None and (x.ndim != len(expected) + 1 or any(
                want is not None and want != got for want, got in zip(expected, x.shape[1:]))):
            raise ValueError(f"Expected {name} images of shape {expected} (the model's input). "
                             f"Received: x_{name} of shape {x.shape}")
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"Expected as many {name} labels as images (at least one). "
                             f"Received: {len(x)} images, {len(y)} labels")
        labels = y.reshape(len(y), -1)
        integral = np.issubdtype(y.dtype, np.integer) or (
            np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))
        if labels.shape[1] != 1 or not integral:
            raise ValueError(f"Expected integer class labels, one per image. Received: y_{name} "
                             f"of shape {y.shape} and dtype {y.dtype}")
        low, high = int(labels.min()), int(labels.max())
        if classes is not None and (low < 0 or high >= classes):
            raise ValueError(f"Expected {name} labels in [0, {classes}) for a model with "
                             f"{classes} outputs. Received: labels from {low} to {high}")


def _phase_compiler(args, from_logits, one_hot, steps_per_epoch, phase):
    """``compile_fn(model)`` for ``phase`` (``"admm"`` or ``"finetune"``): a
    fresh optimizer with that phase's optimizer, rate and schedule."""
    from cocopie_keras import training

    if phase == "admm":
        optimizer, rate = args.admm_optimizer, args.admm_learning_rate
        schedule, epochs = args.admm_schedule, args.admm_epochs
    else:
        optimizer, rate = args.optimizer, args.learning_rate
        schedule, epochs = args.schedule, args.finetune_epochs

    def compile_model(model):
        learning_rate, total = rate, steps_per_epoch * epochs
        if schedule == "one-cycle" and total > 1:
            warmup = min(total - 1, max(1, int(steps_per_epoch * args.warmup_epochs)))
            learning_rate = training.OneCycle(rate, total, warmup)
        training.compile_classifier(model, optimizer, learning_rate, args.weight_decay,
                                    args.label_smoothing, one_hot=one_hot,
                                    from_logits=from_logits)

    return compile_model


def _check_recipe(args):
    for name, value, ok in (("learning_rate", args.learning_rate, args.learning_rate > 0),
                            ("admm_learning_rate", args.admm_learning_rate,
                             args.admm_learning_rate > 0),
                            ("update_every", args.update_every, args.update_every >= 1),
                            ("warmup_epochs", args.warmup_epochs, args.warmup_epochs >= 0),
                            ("weight_decay", args.weight_decay, args.weight_decay >= 0),
                            ("label_smoothing", args.label_smoothing,
                             0 <= args.label_smoothing < 1),
                            ("crop_pad", args.crop_pad, args.crop_pad >= 0)):
        if not ok:
            raise ValueError(f"Expected a valid {name} (rates > 0, label smoothing in [0, 1), "
                             f"update_every >= 1, the others >= 0). Received: {name}={value}")


def _training_data(args, model, train, test):
    """``(train, test, steps per epoch)`` as the recipe wants them: augmented
    one-hot batches, one-hot arrays (label smoothing) or the integer arrays."""
    import keras
    import numpy as np

    classes = int(model.outputs[0].shape[-1])
    (x_train, y_train), (x_test, y_test) = train, test
    if args.augment == "flip-crop":
        from cocopie_keras import training

        if np.asarray(x_train).ndim != 4:
            raise ValueError("Expected images (N, H, W, C) for --augment flip-crop. "
                             f"Received: x_train of shape {np.shape(x_train)}")
        batches = training.FlipCropBatches(x_train, y_train, min(args.batch_size, len(y_train)),
                                           classes, seed=0, pad=args.crop_pad)
        test = (x_test, keras.utils.to_categorical(y_test, classes))
        return batches.dataset(), test, len(batches)
    steps = -(-len(y_train) // args.batch_size)
    if args.label_smoothing > 0:
        return ((x_train, keras.utils.to_categorical(y_train, classes)),
                (x_test, keras.utils.to_categorical(y_test, classes)), steps)
    return (x_train, y_train), (x_test, y_test), steps


def run(args):
    from cocopie_keras import atomic_write
    from cocopie_keras.commands import _inputs
    from cocopie_keras import sparsity
    from cocopie_keras.sparsity import recipe

    # Output paths are checked first: a bad one must not cost a training run.
    _inputs.check_output_path(args.output, "-o", suffix=".keras")
    for option, path in (("--tflite", args.tflite), ("--plot", args.plot)):
        if path:
            _inputs.check_output_path(path, option)
    _check_recipe(args)
    model = _inputs.load_keras_model(args.model)
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else ()
    image_size = shape if len(shape) == 3 and None not in shape else None
    config = sparsity.PatternPruningConfig(  # bad values fail here, before any training
        connectivity_rate=args.connectivity_rate, num_patterns=args.num_patterns,
        pattern_pool=args.pattern_pool, skip_first_conv=args.skip_first_conv,
        skip_layers=[n for n in args.skip_layers.split(",") if n],
        group_size=args.group_size, pointwise_connectivity_rate=args.pointwise_connectivity_rate,
        dense_block_size=args.dense_block_size,
        dense_connectivity_rate=args.dense_connectivity_rate)
    config.resolve(model)
    rho = sparsity.RhoSchedule(args.rho, args.rho_growth, args.rho_max)
    if os.path.isdir(args.data):  # say how the images are fed (see --image-scale)
        print(f"images of {args.data} fed as pixels 0-255 times {args.image_scale:g}")
    (x_train, y_train), (x_test, y_test) = load_data(args.data, image_size, args.image_scale)
    check_data(model, {"train": (x_train, y_train), "test": (x_test, y_test)})
    last = model.layers[-1]
    from_logits = getattr(getattr(last, "activation", None), "__name__", "linear") != "softmax"
    train, test, steps = _training_data(args, model, (x_train, y_train), (x_test, y_test))
    one_hot = args.augment != "none" or args.label_smoothing > 0

    def compiler(phase):
        return _phase_compiler(args, from_logits, one_hot, steps, phase)

    compiler("finetune")(model)  # for the dense model's score
    dense_accuracy = model.evaluate(*test, verbose=0)[1]
    result = recipe.admm_prune(
        model, train, compiler("admm"), config,
        admm_epochs=args.admm_epochs, finetune_epochs=args.finetune_epochs,
        batch_size=args.batch_size, steps_per_epoch=steps, rho=rho,
        update_every=args.update_every, update_unit=args.update_unit, log_dir=args.log_dir,
        verbose=args.verbose, finetune_compile_fn=compiler("finetune"),
        penalty=args.admm_penalty)
    pruned_accuracy = result.model.evaluate(*test, verbose=0)[1]
    with atomic_write.atomic_path(args.output, suffix=".keras") as temporary:
        result.model.save(temporary)
    if args.plot:
        from cocopie_keras.sparsity import summaries

        with atomic_write.atomic_path(args.plot) as temporary:
            summaries.plot_pattern_summary(sparsity.pattern_info(result.wrapped), temporary)
    print(f"accuracy dense {dense_accuracy:.4f} -> pruned {pruned_accuracy:.4f}; "
          f"3x3 conv weight density {sparsity.conv_weight_density(result.model):.3f}; "
          f"wrote {args.output}")
    if args.tflite:
        from cocopie_keras import converter

        data = converter.convert(result.wrapped)  # the LR gets the pools and ids training chose
        atomic_write.write_bytes(args.tflite, data)
        print(f"wrote {args.tflite}: {len(converter.read_lr(data) or [])} pattern convs in the LR")
    return 0
