"""The networks the benchmark measures, their pruned variants, and MAC counts.

Speed does not depend on trained values, so every model starts from a seeded
random initialisation (``weights=None``) and its weights are projected onto
patterns exactly as a trained model's would be.

Example:

>>> model = build_model("resnet20_cifar")
>>> info = apply_variant(model, "pattern_conn")
>>> macs = count_macs(model)            # {"dense_macs": ..., "nonzero_macs": ...}
"""

import numpy as np

MODEL_NAMES = ("vgg16", "resnet50", "mobilenetv2", "vgg16_cifar", "resnet20_cifar")
"""The default set: whole networks, classifier heads included."""
BODY_MODEL_NAMES = ("vgg16_body", "resnet50_body", "mobilenetv2_body")
"""The 224×224 networks without their classifier heads (``include_top=False``):
the convolutional bodies the CoCoPIE paper times; opt-in by name."""
HOLDOUT_BODY_NAMES = ("inceptionv3_body", "xception_body", "efficientnetb0_body")
"""Bodies no kernel was designed or tuned for (Inception's 1×7 / 7×1 and
asymmetric branches, Xception's separable convolutions, EfficientNet's
squeeze-excite and swish): they check that the delegate never makes a model
it was not built around slower than the stock runtime; opt-in by name."""
ALL_MODEL_NAMES = MODEL_NAMES + BODY_MODEL_NAMES + HOLDOUT_BODY_NAMES
VARIANTS = ("dense", "pattern", "pattern_conn")
CONNECTIVITY_RATE = 0.72
"""Fraction of kernels ``pattern_conn`` removes (1 / 0.28 ≈ 3.6× fewer kernels)."""
PATTERN_GROUP = 32
"""Output channels sharing a pattern (and a removal) per input channel: the
delegate's block kernel runs such groups without a wasted multiply."""
DENSE_BLOCK = (4, 4)
"""Blocks (input × output units) in which ``pattern_conn`` removes Dense weights."""


def _vgg16_cifar():
    import keras

    inputs = keras.Input((32, 32, 3))
    x = inputs
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        for i in range(convs):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"block{block + 1}_conv{i + 1}")(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(512, activation="relu")(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="vgg16_cifar")


def _resnet20_cifar():
    """ResNet-20 for 32×32 inputs: 3 stages × 3 basic blocks, 16/32/64 filters.

    Downsampling shortcuts are strided 1×1 convolutions (option B), which
    every runtime here supports.
    """
    import keras

    def conv_bn(x, filters, kernel, strides, relu, name):
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                use_bias=False, name=name)(x)
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.ReLU()(x) if relu else x

    inputs = keras.Input((32, 32, 3))
    x = conv_bn(inputs, 16, 3, 1, True, "stem_conv")
    for stage, filters in enumerate([16, 32, 64]):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            name = f"stage{stage + 1}_block{block + 1}"
            shortcut = x
            y = conv_bn(x, filters, 3, strides, True, f"{name}_conv1")
            y = conv_bn(y, filters, 3, 1, False, f"{name}_conv2")
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = conv_bn(shortcut, filters, 1, strides, False, f"{name}_proj")
            x = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="resnet20_cifar")


def _application(name):
    import keras

    body = name.endswith("_body")
    constructor = {
        "vgg16": keras.applications.VGG16,
        "resnet50": keras.applications.ResNet50,
        "mobilenetv2": keras.applications.MobileNetV2,
        "inceptionv3": keras.applications.InceptionV3,
        "xception": keras.applications.Xception,
        "efficientnetb0": keras.applications.EfficientNetB0,
    }[name[: -len("_body")] if body else name]
    if body:
        return constructor(weights=None, input_shape=(224, 224, 3), include_top=False)
    # Logits, not softmax: the output check compares values that move when a
    # runtime computes something else (softmax over 1000 classes hides that).
    return constructor(weights=None, input_shape=(224, 224, 3), classifier_activation=None)


def build_model(name, seed=0):
    """A freshly initialised Keras model by benchmark name.

    Args:
        name: one of ``ALL_MODEL_NAMES``.
        seed: initialisation seed (same seed, same weights).

    Raises:
        ValueError: for an unknown name.
    """
    import keras

    if name not in ALL_MODEL_NAMES:
        raise ValueError(
            f"Expected a model name in {list(ALL_MODEL_NAMES)}. Received: model={name!r}"
        )
    keras.utils.set_random_seed(seed)
    if name == "vgg16_cifar":
        return _vgg16_cifar()
    if name == "resnet20_cifar":
        return _resnet20_cifar()
    return _application(name)


def pointwise_conv_layers(model):
    """Conv2D layers with 1×1 kernels and groups=1 (connectivity-pruned too)."""
    import keras

    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.Conv2D)
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
        and tuple(layer.kernel_size) == (1, 1)
        and getattr(layer, "groups", 1) == 1
    ]


def pruning_config(variant, connectivity_rate=CONNECTIVITY_RATE, group_size=PATTERN_GROUP,
                   model=None):
    """The ``sparsity.PatternPruningConfig`` of a benchmark variant.

    ``pattern`` puts a 4-of-9 pattern from the fixed pool on every 3×3 conv
    and every 3×3 depthwise conv (whose channels are never removed: that
    would remove channels); ``pattern_conn`` also removes
    ``connectivity_rate`` of the kernels of every 3×3 conv, of the
    weights of every 1×1 conv, and of the ``DENSE_BLOCK`` blocks of every
    Dense kernel whose sizes they divide (kept blocks stay whole, as the
    delegate's FULLY_CONNECTED kernel streams them). ``group_size``
    consecutive output channels (depthwise: channels) share one pattern per
    input channel and are removed together; 1 gives every kernel its own. With ``model``, convs of
    other kernel sizes (ResNet-50's 7×7 stem) are left dense.

    Returns:
        A ``PatternPruningConfig``, or ``None`` for ``dense``.

    Raises:
        ValueError: for an unknown variant or a rate outside ``[0, 1)``.
    """
    from cocopie_keras import patterns
    from cocopie_keras import sparsity

    if variant not in VARIANTS:
        raise ValueError(
            f"Expected a variant in {list(VARIANTS)}. Received: variant={variant!r}"
        )
    patterns.check_rate(connectivity_rate)
    if variant == "dense":
        return None
    rate = connectivity_rate if variant == "pattern_conn" else 0.0
    other_sizes = []
    if model is not None:
        other_sizes = [layer.name for layer in model._flatten_layers(include_self=False)
                       if hasattr(layer, "kernel_size")
                       and tuple(layer.kernel_size) not in ((3, 3), (1, 1))]
    dense = {}
    if variant == "pattern_conn":
        dense = {"dense_block_size": DENSE_BLOCK, "dense_entries": DENSE_BLOCK[0] * DENSE_BLOCK[1],
                 "dense_connectivity_rate": rate}
    return sparsity.PatternPruningConfig(
        connectivity_rate=rate, pointwise_connectivity_rate=rate, pattern_pool="fixed",
        group_size=group_size, skip_layers=other_sizes, **dense)


def apply_variant(model, variant, connectivity_rate=CONNECTIVITY_RATE,
                  group_size=PATTERN_GROUP):
    """Prunes ``model`` in place for a benchmark variant (``pruning_config``).

    Returns:
        ``{"pattern_convs": n, "pointwise_convs": m, "depthwise_convs": k,
        "dense_layers": d}``: layers pruned.

    Raises:
        ValueError: for an unknown variant or a rate outside ``[0, 1)``.
    """
    import keras

    from cocopie_keras import sparsity

    config = pruning_config(variant, connectivity_rate, group_size, model)
    counts = {"pattern_convs": 0, "pointwise_convs": 0, "depthwise_convs": 0, "dense_layers": 0}
    if config is None:
        return counts
    layers = {layer.name: layer for layer in model._flatten_layers(include_self=False)}
    for name in sparsity.prune_in_place(model, config):
        layer = layers[name]
        if isinstance(layer, keras.layers.Dense):
            counts["dense_layers"] += 1
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            counts["depthwise_convs"] += 1
        elif tuple(layer.kernel_size) == (1, 1):
            counts["pointwise_convs"] += 1
        else:
            counts["pattern_convs"] += 1
    return counts


def _weighted_layers(model):
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, kinds)]


def normalize_activations(model, x):
    """Rescales every conv / dense layer so its output has unit standard deviation.

    Random initialisation followed by pruning shrinks activations layer after
    layer (ResNet-style BN layers are identities before training); deep in the
    network they reach float32 denormals, which make every runtime's
    arithmetic orders of magnitude slower and would measure that instead of
    the kernels. Trained networks keep activations near unit scale; this data-
    dependent rescaling (as in LSUV initialisation) does the same, one layer at
    a time in network order. A kernel is multiplied by a positive scalar, so
    its zeros (the pruning patterns) are kept.

    Args:
        model: a built functional or sequential Keras model (changed in place).
        x: an input batch.

    Returns:
        The output standard deviation of each layer before rescaling.
    """
    import keras

    before = {}
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    for layer in _weighted_layers(model):
        probe = keras.Model(inputs, layer.output)
        std = float(np.std(keras.ops.convert_to_numpy(probe(x, training=False))))
        before[layer.name] = std
        if not np.isfinite(std) or std <= 0.0:
            continue
        layer.kernel.assign(keras.ops.convert_to_numpy(layer.kernel) / std)
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(keras.ops.convert_to_numpy(layer.bias) / std)
    return before


def _output_positions(layer):
    """Output pixels per image (1 for Dense on a vector)."""
    shape = tuple(layer.output.shape)
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1


def count_macs(model):
    """Multiply-accumulates of one inference (batch 1), dense and non-zero.

    Every weight of a conv, depthwise conv or dense layer is used once per
    output position, so a layer's MACs are its output positions times its
    weight count (dense) or its non-zero weight count. Bias, BN, pooling and
    activations are left out: they are not multiply-accumulates of weights.

    Returns:
        ``{"dense_macs", "nonzero_macs", "weight_bytes"}`` (float32 weights).
    """
    import keras

    dense = nonzero = weights = 0
    for layer in _weighted_layers(model):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        positions = _output_positions(layer)
        dense += positions * kernel.size
        nonzero += positions * int(np.count_nonzero(kernel))
        weights += kernel.size
    return {"dense_macs": int(dense), "nonzero_macs": int(nonzero),
            "weight_bytes": int(4 * weights)}


def conv_layer_models(model, unique=True):
    """Each Conv2D of ``model`` as a one-layer model with the same weights.

    Args:
        model: a built Keras model (pruned or not).
        unique: keep only the first layer of each distinct configuration
            (input shape, filters, kernel, strides); VGG and ResNet repeat
            shapes, and identical single-op models measure the same kernel.

    Returns:
        list of ``(layer name, single-op keras.Model)``.
    """
    import keras

    seen = set()
    result = []
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, keras.layers.Conv2D) or isinstance(
                layer, keras.layers.DepthwiseConv2D):
            continue
        in_shape = tuple(layer.input.shape[1:])
        config = layer.get_config()
        key = (in_shape, config["filters"], tuple(config["kernel_size"]),
               tuple(config["strides"]), config["padding"])
        if unique and key in seen:
            continue
        seen.add(key)
        config.pop("name", None)
        inputs = keras.Input(in_shape)
        clone = keras.layers.Conv2D.from_config(config)
        outputs = clone(inputs)
        clone.set_weights(layer.get_weights())
        result.append((layer.name, keras.Model(inputs, outputs, name=f"{model.name}_{layer.name}")))
    return result
