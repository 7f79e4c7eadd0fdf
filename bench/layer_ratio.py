"""Single-layer speed ratio: LiteRT+XNNPACK (dense kernels) vs the cocopie
delegate on the same pattern-pruned 3×3 convolution, measured in one run.

Shapes come from real networks (VGG-16 / ResNet at 56×56 and 28×28, MNIST
demo layers). Prints one row per layer and the ratio stock/delegate (> 1 means
the delegate is faster). Timing is never asserted in tests; this is the place
to read speed from.

    .venv/bin/python bench/layer_ratio.py [--threads 1] [--repeat 30]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cocopie_keras import benchmark, converter, delegate, pruning  # noqa: E402

# (name, H, W, Cin, Cout, stride)
LAYERS = [
    ("mnist_conv2", 28, 28, 16, 32, 1),
    ("mnist_conv4", 14, 14, 64, 64, 1),
    ("resnet_56x56x64", 56, 56, 64, 64, 1),
    ("vgg_56x56x256", 56, 56, 256, 256, 1),
    ("vgg_28x28x512", 28, 28, 512, 512, 1),
    ("resnet_s2_56to28", 56, 56, 128, 128, 2),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--connectivity-rate", type=float, default=0.0)
    args = parser.parse_args()
    print(f"{'layer':<20} {'stock ms':>9} {'cocopie ms':>11} {'stock/cocopie':>14}   "
          f"(threads={args.threads}, target={delegate.simd_target()})")
    for name, h, w, cin, cout, stride in LAYERS:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((h, w, cin)),
            keras.layers.Conv2D(cout, 3, strides=stride, padding="same", activation="relu"),
        ])
        pruning.prune_model(model, connectivity_rate=args.connectivity_rate)
        data = converter.convert(model)
        x = np.random.default_rng(0).random((1, h, w, cin), dtype=np.float32)
        stock = delegate.make_interpreter(data, use_delegate=False, num_threads=args.threads)
        ours = delegate.make_interpreter(data, num_threads=args.threads)
        t_stock, _ = benchmark.median_latency_ms(stock, x, repeats=args.repeat)
        t_ours, _ = benchmark.median_latency_ms(ours, x, repeats=args.repeat)
        print(f"{name:<20} {t_stock:>9.3f} {t_ours:>11.3f} {t_stock / t_ours:>14.2f}")


if __name__ == "__main__":
    main()
