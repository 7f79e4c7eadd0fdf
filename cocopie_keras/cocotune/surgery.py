"""Filter-pruning surgery on Keras Functional models.

A *module* is a run of convolutions whose output has a fixed shape (a residual
block, or any run the user names). Every conv of a module but the last loses
the filters with the smallest L1 norm; the last conv keeps all its filters so
the module's output, and thus the rest of the network, keeps its shape. The
pruned network is rebuilt with `keras.models.clone_model` (smaller `filters`)
and the surviving weights are copied, sliced along the channel axes of every
layer the removed channels flow through (BatchNorm, activations, pooling, the
next conv's input axis).

Example:

```python
modules = infer_modules(model)                # residual blocks
modules = modules or infer_chain_modules(model)  # plain (VGG-style) chains
pruned = prune_filters(model, modules, [0.5] * len(modules))
```
"""

import dataclasses

import numpy as np

# Layers that act on each channel on its own: removed channels pass through them.
_CHANNELWISE = (
    "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D", "Cropping2D",
    "UpSampling2D", "Identity",
)
_CONSUMERS = ("Conv2D", "Dense")  # first axis to slice: the input channels


@dataclasses.dataclass(frozen=True)
class Module:
    """A prunable run of convolutions.

    Attributes:
        convs: Conv2D layer names in forward order; all but the last are pruned.
        input: name of the layer whose output enters the module.
        output: name of the layer whose output leaves the module.
    """

    convs: tuple
    input: str
    output: str


def _inbound_layers(layer):
    found = []
    for node in getattr(layer, "_inbound_nodes", []):
        for tensor in node.input_tensors:
            found.append(tensor._keras_history[0])
    return found


def _consumers(model):
    """Layer name -> names of layers of ``model`` that read its output."""
    names = {layer.name for layer in model.layers}
    consumers = {name: [] for name in names}
    for layer in model.layers:
        for parent in _inbound_layers(layer):
            if parent.name in names and layer.name not in consumers[parent.name]:
                consumers[parent.name].append(layer.name)
    return consumers


def _check_functional(model):
    if not hasattr(model, "inputs") or not model.inputs or len(model.inputs) != 1:
        raise ValueError("Expected a built Keras Functional/Sequential model with one input. "
                         f"Received: model={getattr(model, 'name', model)!r}")


def infer_modules(model):
    """Finds the residual blocks of a Functional model.

    A block is the run of layers between an ``Add`` and the layer where the two
    branches split; its convs are those on the longer branch.

    Args:
        model: a Keras Functional model.

    Returns:
        A list of `Module`, in forward order.

    Example:

    ```python
    for module in infer_modules(keras.applications.ResNet50(weights=None)):
        print(module.convs)
    ```
    """
    _check_functional(model)
    consumers = _consumers(model)
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    modules = []
    for layer in model.layers:
        if type(layer).__name__ != "Add":
            continue
        branches = []
        for start in _inbound_layers(layer):
            convs, current = [], start
            # Walk back while the path is a chain; the fork has several consumers.
            while len(consumers.get(current.name, ())) == 1:
                if type(current).__name__ == "Conv2D":
                    convs.append(current.name)
                parents = _inbound_layers(current)
                if len(parents) != 1:
                    break
                current = parents[0]
            branches.append((convs[::-1], current.name))
        branches.sort(key=lambda b: len(b[0]), reverse=True)
        convs, fork = branches[0]
        if len(convs) >= 2 and all(b[1] == fork for b in branches):
            modules.append(Module(tuple(convs), fork, layer.name))
    modules.sort(key=lambda m: order[m.output])
    return modules


def infer_chain_modules(model, convs_per_module=2):
    """Splits the convolutions of a plain (VGG-style) chain into modules.

    The first conv (the stem) stays out; the others, in forward order, are
    taken ``convs_per_module`` at a time. A module enters at the layer that
    feeds its first conv and leaves after its last conv's channel-wise
    followers (batch norm, activation): its output keeps the last conv's
    width, so the rest of the network keeps its shape. Convs left over at the
    end stay out. Only single-branch paths qualify: a conv whose output feeds
    several layers, or a conv reading several inputs, ends the chain there.

    Args:
        model: a Keras Functional model.
        convs_per_module: convs per module (>= 2: all but the last are pruned).

    Returns:
        A list of `Module`, in forward order ([] when no chain has enough convs).

    Example:

    ```python
    model = keras.saving.load_model("bench/results/cifar10/dense.keras")
    for module in infer_chain_modules(model):
        print(module.convs, module.input, module.output)
    ```
    """
    if isinstance(convs_per_module, bool) or not isinstance(convs_per_module, int) \
            or convs_per_module < 2:
        raise ValueError("Expected convs_per_module >= 2 (a module prunes all its convs but "
                         f"the last). Received: convs_per_module={convs_per_module!r}")
    _check_functional(model)
    consumers = _consumers(model)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    modules, run = [], []
    for conv in convs[1:]:
        parents = _inbound_layers(conv)
        if len(parents) != 1 or (run and not _chain_reaches(run[-1], conv, consumers, model)):
            run = []  # a branch or a join: the chain restarts here
        run.append(conv)
        if len(run) == convs_per_module:
            modules.append(Module(tuple(c.name for c in run), _inbound_layers(run[0])[0].name,
                                  _channelwise_tail(run[-1], consumers, model).name))
            run = []
    return modules


def _chain_reaches(start, target, consumers, model):
    """Whether ``target`` follows ``start`` along single-consumer layers."""
    current = start
    while len(consumers.get(current.name, ())) == 1:
        current = model.get_layer(consumers[current.name][0])
        if current is target:
            return True
        if type(current).__name__ == "Conv2D" or len(_inbound_layers(current)) != 1:
            return False
    return False


def _channelwise_tail(conv, consumers, model):
    """The last layer after ``conv`` along its single-consumer batch norm / activations."""
    current = conv
    while len(consumers.get(current.name, ())) == 1:
        following = model.get_layer(consumers[current.name][0])
        if type(following).__name__ not in _ELEMENTWISE:
            break
        current = following
    return current


# Channel-wise layers that keep the spatial size: a module's output may end
# after them (not after pooling, which would change what the next layer sees).
_ELEMENTWISE = tuple(name for name in _CHANNELWISE
                     if name not in ("Softmax", "Cropping2D", "UpSampling2D")
                     and not name.endswith(("Pooling2D", "Padding2D")))


def validate_modules(model, modules):
    """Returns ``modules`` as a list of `Module`, checking names against ``model``.

    Accepts `Module` objects or dicts with keys ``convs``, ``input``, ``output``.
    """
    names = {layer.name for layer in model.layers}
    checked = []
    for module in modules:
        if isinstance(module, dict):
            module = Module(tuple(module["convs"]), module["input"], module["output"])
        if not isinstance(module, Module) or not module.convs:
            raise ValueError(f"Expected a Module with at least one conv. Received: {module!r}")
        for name in (*module.convs, module.input, module.output):
            if name not in names:
                raise ValueError(f"Expected layer {name!r} in the model. Received: module={module}")
        for name in module.convs:
            if type(model.get_layer(name)).__name__ != "Conv2D":
                raise ValueError(f"Expected Conv2D layers in a module. Received: {name!r}")
        checked.append(module)
    if not checked:
        raise ValueError("Expected at least one module (no residual blocks were found; "
                         "pass modules explicitly). Received: modules=[]")
    return checked


def filter_importance(kernel):
    """L1 norm of each output filter of a conv kernel ``(h, w, in, out)``."""
    return np.abs(np.asarray(kernel)).reshape(-1, kernel.shape[-1]).sum(axis=0)


def kept_filters(kernel, rate):
    """Sorted indices of the filters kept when ``rate`` of them are pruned."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"Expected a pruning rate in [0, 1). Received: rate={rate}")
    count = kernel.shape[-1]
    keep = max(1, int(round(count * (1.0 - rate))))
    # Stable sort: ties keep the lower index, so the choice is deterministic.
    order = np.argsort(-filter_importance(kernel), kind="stable")
    return np.sort(order[:keep])


def channel_plan(model, modules, rates):
    """Which channels survive where.

    Returns:
        ``(out_keep, in_keep)``: layer name -> kept output channels (pruned
        convs and the channel-wise layers after them), and layer name -> kept
        input channels (the conv or dense layer that consumes them).
    """
    modules = validate_modules(model, modules)
    if len(rates) != len(modules):
        raise ValueError(f"Expected one rate per module ({len(modules)}). "
                         f"Received: rates={list(rates)}")
    consumers = _consumers(model)
    out_keep, in_keep = {}, {}
    for module, rate in zip(modules, rates):
        if rate == 0:
            continue
        for name in module.convs[:-1]:
            keep = kept_filters(model.get_layer(name).kernel.numpy(), rate)
            out_keep[name] = keep
            frontier = list(consumers[name])
            while frontier:
                current = frontier.pop()
                kind = type(model.get_layer(current)).__name__
                if kind in _CHANNELWISE:
                    out_keep[current] = keep
                    frontier.extend(consumers[current])
                elif kind in _CONSUMERS:
                    in_keep[current] = keep
                else:
                    raise ValueError(
                        f"Expected the channels of pruned conv {name!r} to reach a Conv2D or "
                        f"Dense through channel-wise layers only. Received: {kind} {current!r} "
                        "(put it outside the module or make this conv the module's last)")
    return out_keep, in_keep


def slice_weights(layer, weights, out_keep=None, in_keep=None):
    """Slices one layer's weight arrays to the surviving channels."""
    kind = type(layer).__name__
    weights = [np.asarray(w) for w in weights]
    if kind == "Conv2D":
        kernel = weights[0]
        if in_keep is not None:
            kernel = kernel[:, :, in_keep, :]
        if out_keep is not None:
            kernel = kernel[..., out_keep]
        rest = [w[out_keep] if out_keep is not None else w for w in weights[1:]]
        return [kernel, *rest]
    if kind == "Dense":
        kernel = weights[0] if in_keep is None else weights[0][in_keep, :]
        return [kernel, *weights[1:]]
    if out_keep is not None:  # channel-wise parameters (BatchNorm, PReLU): last axis
        return [w[..., out_keep] if w.ndim else w for w in weights]
    return weights


def prune_filters(model, modules, rates, plan=None):
    """Builds the filter-pruned copy of ``model``.

    Args:
        model: a built Keras Functional model (not modified).
        modules: list of `Module` (see `infer_modules`).
        rates: one pruning rate in [0, 1) per module.
        plan: optional result of `channel_plan` (recomputed when omitted).

    Returns:
        A new Keras model with the same layer names, fewer filters, and the
        surviving weights of ``model``.

    Example:

    ```python
    pruned = prune_filters(model, infer_modules(model), [0.3, 0.7])
    print(model.count_params(), "->", pruned.count_params())
    ```
    """
    import keras

    _check_functional(model)
    out_keep, in_keep = plan if plan is not None else channel_plan(model, modules, rates)

    def clone_layer(layer):
        config = layer.get_config()
        if type(layer).__name__ == "Conv2D" and layer.name in out_keep:
            config["filters"] = int(len(out_keep[layer.name]))
        return layer.__class__.from_config(config)

    pruned = keras.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        if not layer.weights:
            continue
        target = pruned.get_layer(layer.name)
        target.set_weights(slice_weights(layer, layer.get_weights(),
                                         out_keep.get(layer.name), in_keep.get(layer.name)))
    return pruned


def zero_filters(model, modules, rates):
    """Copy of ``model`` where the channels `prune_filters` removes are zeroed.

    The pruned convs' filters and the matching input slices of the layers that
    consume them are set to zero (BatchNorm turns a zero channel into a
    constant, so zeroing the filters alone would not remove the channel).
    Used to check the surgery: both networks compute the same function.
    """
    import keras

    out_keep, in_keep = channel_plan(model, modules, rates)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name, keep in out_keep.items():
        layer = copy.get_layer(name)
        if type(layer).__name__ != "Conv2D":
            continue
        mask = np.zeros(layer.filters, dtype="float32")
        mask[keep] = 1.0
        weights = layer.get_weights()
        weights[0] = weights[0] * mask
        if layer.use_bias:
            weights[1] = weights[1] * mask
        layer.set_weights(weights)
    for name, keep in in_keep.items():
        layer = copy.get_layer(name)
        weights = layer.get_weights()
        axis = weights[0].ndim - 2  # input-channel axis of Conv2D and Dense kernels
        mask_shape = [1] * weights[0].ndim
        mask_shape[axis] = weights[0].shape[axis]
        mask = np.zeros(weights[0].shape[axis], dtype="float32")
        mask[keep] = 1.0
        weights[0] = weights[0] * mask.reshape(mask_shape)
        layer.set_weights(weights)
    return copy
