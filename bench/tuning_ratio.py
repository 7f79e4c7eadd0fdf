"""Per-layer effect of kernel auto-tuning: the delegate's built-in kernel
choice (tuning=off) against the tuned one (tuning=retune), on the same pruned
3×3 convolutions as ``layer_ratio.py`` (VGG-16 / ResNet-50 shapes).

Prints per layer the median times, the ratio built-in/tuned (> 1: tuning
helped) and the tuning chosen. The two interpreters are timed alternately in
rounds, medians over all rounds; speed is never asserted in tests.

    .venv/bin/python bench/tuning_ratio.py [--threads 2] [--repeat 20]
        [--rounds 3] [--connectivity-rate 0.72] [--free-patterns] [--layers a,b]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from layer_ratio import LAYERS, describe_run, layer_timing_parser, pruned_layer  # noqa: E402

from cocopie_keras import converter, delegate  # noqa: E402
from cocopie_keras.bench import timing  # noqa: E402
from cocopie_keras.converter import kernel_tuning as tuning  # noqa: E402


def main():
    parser = layer_timing_parser(__doc__.splitlines()[0], connectivity_rate=0.72)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", help="comma-separated layer names (default: all)")
    args = parser.parse_args()
    chosen = args.layers.split(",") if args.layers else [name for name, *_ in LAYERS]
    describe_run(args)
    print(f"{'layer':<22} {'built-in ms':>11} {'tuned ms':>9} {'ratio':>6}  tuning")
    for name, h, w, cin, cout, stride in LAYERS:
        if name not in chosen:
            continue
        model, _ = pruned_layer(h, w, cin, cout, stride, args.connectivity_rate,
                                args.free_patterns)
        data = converter.convert(model)
        x = np.random.default_rng(0).random((1, h, w, cin), dtype=np.float32)
        built_in = delegate.make_interpreter(data, num_threads=args.threads, tuning="off")
        tuned = delegate.make_interpreter(data, num_threads=args.threads, tuning="retune")
        (report,) = delegate.kernel_tunings(tuned)
        times = {"built_in": [], "tuned": []}
        for _ in range(args.rounds):
            for key, interpreter in (("built_in", built_in), ("tuned", tuned)):
                times[key].append(timing.median_latency_ms(
                    interpreter, x, repeats=args.repeat)[0])
        t_built_in, t_tuned = np.median(times["built_in"]), np.median(times["tuned"])
        entry = tuning.entry_from_report(report)
        print(f"{name:<22} {t_built_in:>11.3f} {t_tuned:>9.3f} "
              f"{t_built_in / t_tuned:>6.2f}  {entry.describe()}")


if __name__ == "__main__":
    main()
