"""cocopie inspect: the LR of a .tflite file, checked against its weights."""

NAME = "inspect"
HELP = "show the LR of a .tflite file and check it against the weights"


def add_arguments(parser):
    parser.add_argument("model", help="path of a .tflite file")


def run(args):
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
