"""Single-layer speed ratio: LiteRT+XNNPACK (dense kernels) vs the cocopie
delegate on the same pattern-pruned 3×3 convolution, measured in one run.

Shapes come from real networks (VGG-16 and ResNet-50 at 224×224 inputs, the
MNIST demo). Prints per layer the median times, the ratio stock/cocopie (> 1:
the delegate is faster) and the delegate's GFLOP/s on the MACs it must do
(kept weights). Timing is never asserted in tests; this is where to read it.

    .venv/bin/python bench/layer_ratio.py [--threads 2] [--repeat 20]
        [--connectivity-rate 0.72] [--free-patterns] [--kernel auto|block|rows]
        [--depthwise]

``--depthwise`` times MobileNetV2's 3×3 depthwise layers instead (4-of-9
patterns shared by 16 channels, or per channel with ``--free-patterns``).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cocopie_keras import converter, delegate, patterns  # noqa: E402
from cocopie_keras.bench import timing  # noqa: E402

# (name, H, W, Cin, Cout, stride)
LAYERS = [
    ("mnist_conv4", 14, 14, 64, 64, 1),
    ("resnet50_56x56x64", 56, 56, 64, 64, 1),
    ("resnet50_14x14x256", 14, 14, 256, 256, 1),
    ("vgg16_56x56x256", 56, 56, 256, 256, 1),
    ("vgg16_28x28x512", 28, 28, 512, 512, 1),
    ("vgg16_14x14x512", 14, 14, 512, 512, 1),
    ("resnet_s2_56to28x128", 56, 56, 128, 128, 2),
]

# (name, H, W, C, stride): MobileNetV2 depthwise layers at 224×224 inputs.
DEPTHWISE_LAYERS = [
    ("mbv2_dw_112x112x96_s2", 112, 112, 96, 2),
    ("mbv2_dw_56x56x144", 56, 56, 144, 1),
    ("mbv2_dw_28x28x192", 28, 28, 192, 1),
    ("mbv2_dw_14x14x576", 14, 14, 576, 1),
]


def pruned_layer(h, w, cin, cout, stride, rate, free_patterns):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((h, w, cin)),
        keras.layers.Conv2D(cout, 3, strides=stride, padding="same", activation="relu"),
    ])
    conv = model.layers[0]
    kernel = conv.kernel.numpy()
    projection = patterns.project_kernel(kernel, connectivity_rate=rate,
                                         group_size=1 if free_patterns else 32)
    conv.kernel.assign(kernel * projection.mask)
    kept_macs = int(projection.mask.sum()) * (-(-h // stride)) * (-(-w // stride))
    return model, kept_macs


def pruned_depthwise(h, w, channels, stride, rate, free_patterns):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((h, w, channels)),
        keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6"),
    ])
    conv = model.layers[0]
    kernel = conv.kernel.numpy()
    projection = patterns.project_kernel(
        kernel, connectivity_rate=rate, group_size=1 if free_patterns else 16, depthwise=True)
    conv.kernel.assign(kernel * projection.mask)
    kept_macs = int(projection.mask.sum()) * (-(-h // stride)) * (-(-w // stride))
    return model, kept_macs


def layer_timing_parser(description, connectivity_rate):
    """The options every per-layer timing script takes (this one, tuning_ratio.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--connectivity-rate", type=float, default=connectivity_rate)
    parser.add_argument("--free-patterns", action="store_true",
                        help="any pattern per kernel (no channel-block sharing)")
    return parser


def describe_run(args, shared_block=32, **extra):
    """The first output line: threads, SIMD target, pruning (and ``extra`` settings)."""
    settings = "".join(f"{key}={value} " for key, value in extra.items())
    patterns = "free" if args.free_patterns else f"shared per {shared_block} channels"
    print(f"threads={args.threads} target={delegate.simd_target()} {settings}"
          f"connectivity={args.connectivity_rate} patterns={patterns}")


def main():
    parser = layer_timing_parser(__doc__.splitlines()[0], connectivity_rate=0.0)
    parser.add_argument("--kernel", default="auto", choices=["auto", "block", "rows"])
    parser.add_argument("--depthwise", action="store_true",
                        help="MobileNetV2 depthwise layers instead of 3x3 convolutions")
    args = parser.parse_args()
    describe_run(args, 16 if args.depthwise else 32, kernel=args.kernel)
    print(f"{'layer':<22} {'xnnpack ms':>10} {'cocopie ms':>11} {'speedup':>8} "
          f"{'GFLOP/s kept':>13}")
    layers = DEPTHWISE_LAYERS if args.depthwise else LAYERS
    prune = pruned_depthwise if args.depthwise else pruned_layer
    for name, *shape in layers:
        model, kept_macs = prune(*shape, args.connectivity_rate, args.free_patterns)
        data = converter.convert(model)
        x = np.random.default_rng(0).random((1,) + model.input_shape[1:], dtype=np.float32)
        stock = delegate.make_interpreter(data, use_delegate=False, num_threads=args.threads)
        ours = delegate.make_interpreter(data, num_threads=args.threads, kernel=args.kernel)
        assert delegate.delegated_node_count(ours) == 1
        t_stock, _ = timing.median_latency_ms(stock, x, repeats=args.repeat)
        t_ours, _ = timing.median_latency_ms(ours, x, repeats=args.repeat)
        gflops = 2 * kept_macs / (t_ours * 1e6)
        print(f"{name:<22} {t_stock:>10.3f} {t_ours:>11.3f} {t_stock / t_ours:>8.2f} "
              f"{gflops:>13.1f}")


if __name__ == "__main__":
    main()
