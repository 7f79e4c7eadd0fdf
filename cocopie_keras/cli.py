"""The ``cocopie`` command line."""

import argparse
import os
import sys


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cmd_demo(args):
    from cocopie_keras import demo

    summary, path = demo.run_demo(
        out_dir=args.out, epochs=args.epochs, finetune_epochs=args.finetune_epochs,
        connectivity_rate=args.connectivity_rate, threads=args.threads,
        verbose=2 if args.verbose else 0,
    )
    print(demo.format_table(summary))
    print(path)
    return 0


def cmd_convert(args):
    import keras

    from cocopie_keras import converter

    model = keras.saving.load_model(args.model, compile=False)
    data = converter.convert(model)
    with open(args.output, "wb") as f:
        f.write(data)
    layers = converter.read_lr(data) or []
    print(f"wrote {args.output}: {len(data)} bytes, {len(layers)} pattern convs in the LR")
    return 0


def cmd_inspect(args):
    import numpy as np

    from cocopie_keras import converter

    with open(args.model, "rb") as f:
        data = f.read()
    layers = converter.read_lr(data)
    if layers is None:
        print(f"{args.model}: no cocopie LR (the delegate will leave it to stock kernels)")
        return 0
    print(f"{args.model}: LR version 1, {len(layers)} layer(s)")
    print(f"{'op':>4} {'filter shape (OHWI)':>22} {'patterns':>8} {'kept kernels':>13} {'density':>8}")
    for layer in layers:
        mask = layer.kept_mask_ohwi()
        kept = int(np.count_nonzero(layer.kernel_pattern != converter.lr.REMOVED_KERNEL))
        print(f"{layer.op_index:>4} {str(mask.shape):>22} {len(layer.pattern_masks):>8} "
              f"{kept:>6}/{layer.kernel_pattern.size:<6} {mask.mean():>8.3f}")
    problems = converter.check_lr(data)
    for problem in problems:
        print("inconsistent:", problem)
    return 1 if problems else 0


def cmd_delegate_path(args):
    from cocopie_keras import delegate_library_path

    print(delegate_library_path())
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cocopie",
        description="Pattern pruning for Keras and the cocopie TFLite delegate.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train, prune, convert and run a small MNIST CNN")
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--finetune-epochs", type=int, default=4)
    p.add_argument("--connectivity-rate", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--verbose", action="store_true", help="show Keras progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("convert", help="convert a .keras model to .tflite with the LR")
    p.add_argument("model", help="path of a .keras file")
    p.add_argument("-o", "--output", required=True, help=".tflite path to write")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("inspect", help="show the LR of a .tflite file and check it")
    p.add_argument("model", help="path of a .tflite file")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("delegate-path", help="print the delegate library's path")
    p.set_defaults(func=cmd_delegate_path)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _quiet_tensorflow()
    try:
        return args.func(args)
    except (OSError, ValueError) as error:
        print(f"cocopie {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
