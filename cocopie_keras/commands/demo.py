"""cocopie demo: train, prune, convert and run a small MNIST CNN."""

NAME = "demo"
HELP = "train, prune, convert and run a small MNIST CNN (stock vs delegate)"


def add_arguments(parser):
    parser.add_argument("--out", default="out/demo", help="output folder")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--connectivity-rate", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--group-size", type=int, default=32,
                        help="output channels sharing a pattern per input channel "
                             "(32: the delegate's preference; 1: free patterns)")
    parser.add_argument("--verbose", action="store_true", help="show Keras progress bars")


def run(args):
    from cocopie_keras import demo

    summary, path = demo.run_demo(
        out_dir=args.out, epochs=args.epochs, finetune_epochs=args.finetune_epochs,
        connectivity_rate=args.connectivity_rate, threads=args.threads,
        group_size=args.group_size,
        verbose=2 if args.verbose else 0,
    )
    print(demo.format_table(summary))
    print(path)
    return 0
