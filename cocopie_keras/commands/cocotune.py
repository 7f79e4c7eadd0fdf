"""cocopie cocotune: composability-based filter pruning (CoCo-Tune) of a .keras model.

Finds the smallest filter-pruned network of a promising subspace whose accuracy
stays within --alpha of the full model, exploring smallest first on Ray Tune
(rerun with the same --workdir to resume an interrupted exploration), with
networks initialized from pre-trained tuning blocks (and/or, as a baseline,
from the full model's surviving weights).
"""

import json

NAME = "cocotune"
ALIASES = ("tune",)
"""Deprecated name, kept for one release: "tune" also meant kernel auto-tuning."""
HELP = "CoCo-Tune: find the smallest filter-pruned network keeping the accuracy"


def add_arguments(parser):
    parser.add_argument("model", help="trained .keras Functional classifier (integer labels)")
    from cocopie_keras.commands.prune import add_data_arguments

    add_data_arguments(parser)
    parser.add_argument("--workdir", required=True,
                        help="folder for blocks, Ray Tune experiments (ray/) and results; "
                             "rerun with it to resume")
    parser.add_argument("--modules", help="JSON file: list of {convs, input, output} "
                                          "(default: the model's residual blocks)")
    parser.add_argument("--configs", help="JSON file: list of per-module rate lists "
                                          "(default: sampled over --rates)")
    parser.add_argument("--subspace-size", type=int, default=8)
    parser.add_argument("--rates", default="0.3,0.5,0.7", help="rate set Γ, comma-separated")
    parser.add_argument("--alpha", type=float, default=0.01, help="accuracy drop allowed")
    parser.add_argument("--threshold", type=float, help="absolute accuracy threshold")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per trial")
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--init", choices=("both", "block", "default"), default="both",
                        help="block-trained exploration, the default baseline, or both")
    parser.add_argument("--executor", choices=("ray",), default="ray",
                        help="trials always run as Ray Tune trials ('local' is no longer "
                             "offered)")
    parser.add_argument("--address", help="existing Ray cluster ('auto' or host:port); "
                                          "default: a local one of workers*threads CPUs")
    parser.add_argument("--workers", type=int, default=1, help="trials running at once")
    parser.add_argument("--threads", type=int, default=1, help="TF threads per trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-failures", type=int, default=3,
                        help="retries of a trial whose worker died (from its checkpoint)")
    parser.add_argument("--full-epochs", action="store_true",
                        help="fine-tune every trial for all --epochs instead of stopping it "
                             "once it reaches the threshold; its results then also serve "
                             "explorations at other thresholds (another --alpha)")


def _read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Expected a readable JSON file for {what}. Received: {path!r} ({error})")


def run(args):
    import sys

    from cocopie_keras import cocotune as tune
    from cocopie_keras.commands import _inputs

    if args.command in ALIASES:
        print(f"cocopie {args.command} is deprecated; use cocopie {NAME}", file=sys.stderr)
    from cocopie_keras.commands.prune import check_data, load_data

    try:
        rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
    except ValueError:
        raise ValueError(f"Expected comma-separated numbers. Received: --rates={args.rates!r}")
    model = _inputs.load_keras_model(args.model)
    shape = tuple(model.inputs[0].shape[1:])
    image_size = shape if len(shape) == 3 and None not in shape else None
    (x_train, y_train), (x_val, y_val) = load_data(args.data, image_size, args.image_scale)
    check_data(model, {"train": (x_train, y_train), "validation": (x_val, y_val)})
    summary = tune.tune(
        model, (x_train, y_train), (x_val, y_val), args.workdir,
        modules=_read_json(args.modules, "--modules") if args.modules else None,
        configs=_read_json(args.configs, "--configs") if args.configs else None,
        subspace_size=args.subspace_size, rates=rates, alpha=args.alpha,
        threshold=args.threshold, epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        inits=("block", "default") if args.init == "both" else (args.init,),
        executor=args.executor, address=args.address, workers=args.workers,
        threads=args.threads, seed=args.seed, max_failures=args.max_failures,
        stop_at_threshold=not args.full_epochs)
    print(f"full model: {summary['full_params']} params, accuracy "
          f"{summary['full_accuracy']:.4f}; threshold {summary['threshold']:.4f}; "
          f"{len(summary['blocks'])} tuning blocks")
    for init in ("block", "default"):
        if init not in summary:
            continue
        result, best = summary[init], summary[init]["best"]
        found = (f"{best['params']} params, accuracy {best['accuracy']:.4f}" if best
                 else "none reached the threshold")
        print(f"{init:>7}: {result['explored']} configs explored, "
              f"{result['trial_seconds']:.1f} s of trials; found {found}")
    print(f"wrote {args.workdir}/summary.json")
    return 0
