"""cocopie prune: pattern + connectivity pruning of a saved .keras model with
ADMM, masked fine-tuning, and a plain .keras (optionally .tflite) result."""

import os

# What load_data accepts (shared with `cocopie tune`).
DATA_HELP = ("'mnist5k' (built in), a .npz with x_train, y_train "
             "[, x_test, y_test], or a folder of images in class sub-folders")

NAME = "prune"
HELP = "pattern-prune a .keras classifier with ADMM + masked fine-tuning"


def add_arguments(parser):
    parser.add_argument("model", help="trained .keras classifier (integer labels)")
    parser.add_argument("--data", required=True, help=DATA_HELP)
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
    parser.add_argument("--admm-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--rho", type=float, default=0.1, help="initial ADMM rho")
    parser.add_argument("--rho-growth", type=float, default=1.2, help="rho multiplier per update")
    parser.add_argument("--update-every", type=int, default=1, help="epochs between Z/U updates")
    parser.add_argument("--log-dir", help="TensorBoard directory for ADMM summaries")
    parser.add_argument("--plot", help="PNG of the pattern histogram and per-layer density")
    parser.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity")


def load_data(source, image_size=None):
    """``((x_train, y_train), (x_test, y_test))`` from a --data value."""
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
        images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
        return _split(np.stack(images).astype("float32") / 255.0, np.asarray(labels))
    raise ValueError(
        "Expected --data to be 'mnist5k', a .npz file or an image folder. "
        f"Received: --data={source!r}"
    )


def _split(x, y, test_fraction=0.2):
    cut = len(x) - max(1, int(len(x) * test_fraction))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _compile(model, learning_rate, from_logits):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])


def run(args):
    import keras

    from cocopie_keras import pruning
    from cocopie_keras import sparsity
    from cocopie_keras.sparsity import recipe

    model = keras.saving.load_model(args.model, compile=False)
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else ()
    image_size = shape if len(shape) == 3 and None not in shape else None
    config = sparsity.PatternPruningConfig(  # bad values fail here, before any training
        connectivity_rate=args.connectivity_rate, num_patterns=args.num_patterns,
        pattern_pool=args.pattern_pool, skip_first_conv=args.skip_first_conv,
        skip_layers=[n for n in args.skip_layers.split(",") if n],
        group_size=args.group_size)
    config.resolve(model)
    (x_train, y_train), (x_test, y_test) = load_data(args.data, image_size)
    last = model.layers[-1]
    from_logits = getattr(getattr(last, "activation", None), "__name__", "linear") != "softmax"

    def compile_model(m):
        _compile(m, args.learning_rate, from_logits)

    compile_model(model)
    dense_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    result = recipe.admm_prune(
        model, (x_train, y_train), compile_model, config, admm_epochs=args.admm_epochs,
        finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
        rho=sparsity.RhoSchedule(args.rho, args.rho_growth, max(args.rho, 10.0)),
        update_every=args.update_every, update_unit="epoch", log_dir=args.log_dir,
        verbose=args.verbose)
    pruned_accuracy = result.model.evaluate(x_test, y_test, verbose=0)[1]
    result.model.save(args.output)
    if args.plot:
        from cocopie_keras.sparsity import summaries

        summaries.plot_pattern_summary(sparsity.pattern_info(result.wrapped), args.plot)
    print(f"accuracy dense {dense_accuracy:.4f} -> pruned {pruned_accuracy:.4f}; "
          f"3x3 conv weight density {pruning.conv_weight_density(result.model):.3f}; "
          f"wrote {args.output}")
    if args.tflite:
        from cocopie_keras import converter

        data = converter.convert(result.model)
        with open(args.tflite, "wb") as f:
            f.write(data)
        print(f"wrote {args.tflite}: {len(converter.read_lr(data) or [])} pattern convs in the LR")
    return 0
