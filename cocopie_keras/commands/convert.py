"""cocopie convert: a saved .keras model to .tflite with the pattern LR."""

NAME = "convert"
HELP = "convert a .keras model to .tflite with the LR"


def add_arguments(parser):
    parser.add_argument("model", help="path of a .keras file")
    parser.add_argument("-o", "--output", required=True, help=".tflite path to write")
    parser.add_argument("--storage", choices=("sparse", "dense", "delegate-only"),
                        default="sparse",
                        help="how pruned filters are stored: sparse behind DENSIFY, which "
                             "stock LiteRT also runs (default); dense; or delegate-only, their "
                             "kept values alone, the smallest file, which only the cocopie "
                             "delegate runs")


def run(args):
    from cocopie_keras import atomic_write
    from cocopie_keras import converter
    from cocopie_keras.commands import _inputs

    model = _inputs.load_keras_model(args.model)
    data = converter.convert(model, storage=args.storage)
    atomic_write.write_bytes(args.output, data)
    layers = converter.read_lr(data) or []
    print(f"wrote {args.output}: {len(data)} bytes, {len(layers)} pattern convs in the LR")
    return 0
