"""cocopie convert: a saved .keras model to .tflite with the pattern LR."""

NAME = "convert"
HELP = "convert a .keras model to .tflite with the LR"


def add_arguments(parser):
    parser.add_argument("model", help="path of a .keras file")
    parser.add_argument("-o", "--output", required=True, help=".tflite path to write")
    parser.add_argument("--no-compact", action="store_true",
                        help="store pruned filters dense (default: sparse behind DENSIFY, "
                             "which stock LiteRT also runs)")


def run(args):
    from cocopie_keras import atomic_write
    from cocopie_keras import converter
    from cocopie_keras.commands import _inputs

    model = _inputs.load_keras_model(args.model)
    data = converter.convert(model, compact=not args.no_compact)
    atomic_write.write_bytes(args.output, data)
    layers = converter.read_lr(data) or []
    print(f"wrote {args.output}: {len(data)} bytes, {len(layers)} pattern convs in the LR")
    return 0
