"""Teacher–student pre-training of tuning blocks, and network assembly.

All blocks train at once inside one Keras model: the full network (frozen)
computes its activations, each pruned block reads the teacher's activation at
its input and is trained to reproduce the teacher's activation at its output
(mean squared error). Nothing is written to disk between the two.

Example:

```python
weights = pretrain_blocks(full, modules, found.blocks, x_train, epochs=2)
net = assemble(full, modules, configs[0], found, weights, network=0)
```
"""

import numpy as np

from cocopie_keras.cocotune import surgery


def block_rates(num_modules, block):
    """A full-length rate vector that prunes only the modules of ``block``."""
    rates = [0.0] * num_modules
    for module_index, rate in block:
        rates[module_index] = rate
    return rates


def _check_block(modules, block):
    indices = [module_index for module_index, _ in block]
    if not indices or indices != list(range(indices[0], indices[0] + len(indices))):
        raise ValueError(f"Expected a block over consecutive modules. Received: block={block}")
    if indices[-1] >= len(modules):
        raise ValueError(f"Expected module indices < {len(modules)}. Received: block={block}")
    return indices


def block_model(pruned, modules, block, name=None):
    """The sub-network of ``pruned`` that a block covers (shares its layers)."""
    import keras

    indices = _check_block(modules, block)
    start, end = modules[indices[0]], modules[indices[-1]]
    return keras.Model(pruned.get_layer(start.input).output,
                       pruned.get_layer(end.output).output, name=name)


def _layer_weights(model):
    return {layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in model.layers if layer.weights}


def teacher_student_model(teacher, modules, blocks):
    """One Keras model: frozen teacher + one student per block.

    Its output is ``(batch, len(blocks))``: each block's mean squared error
    against the teacher's activation. Gradients reach only the students: the
    teacher (a frozen copy of ``teacher``) is not trainable and its
    activations pass through ``stop_gradient``.

    Returns:
        ``(model, students, frozen_teacher)``; ``students[k]`` is block ``k``'s
        sub-network.
    """
    import keras
    from keras import ops

    modules = surgery.validate_modules(teacher, modules)
    students, taps = [], []
    for index, block in enumerate(blocks):
        pruned = surgery.prune_filters(teacher, modules, block_rates(len(modules), block))
        student = block_model(pruned, modules, block, name=f"block_{index}")
        student.trainable = True  # clones copy the `trainable` flag of the caller's layers
        for layer in student.layers:
            # The targets were computed with the teacher's BatchNorm statistics; a
            # short pre-training cannot re-estimate them, so they stay in inference
            # mode here (global fine-tuning trains them afterwards).
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        students.append(student)
        indices = _check_block(modules, block)
        taps.append((modules[indices[0]].input, modules[indices[-1]].output))
    names = sorted({name for pair in taps for name in pair})
    # A frozen private copy: the caller's model keeps its `trainable` flags.
    frozen = keras.models.clone_model(teacher)
    frozen.set_weights(teacher.get_weights())
    frozen.trainable = False
    extractor = keras.Model(frozen.inputs, [frozen.get_layer(n).output for n in names],
                            name="teacher")
    inputs = keras.Input(teacher.inputs[0].shape[1:])
    features = extractor(inputs)
    features = dict(zip(names, features if isinstance(features, (list, tuple)) else [features]))
    errors = []
    for student, (source, target) in zip(students, taps):
        prediction = student(ops.stop_gradient(features[source]))
        difference = prediction - ops.stop_gradient(features[target])
        axes = tuple(range(1, len(difference.shape)))
        errors.append(ops.expand_dims(ops.mean(ops.square(difference), axis=axes), -1))
    output = errors[0] if len(errors) == 1 else ops.concatenate(errors, axis=-1)
    return keras.Model(inputs, output, name="teacher_student"), students, frozen


def _sum_of_block_errors(y_true, y_pred):
    del y_true  # the targets are inside the model (teacher activations)
    from keras import ops

    return ops.sum(ops.mean(y_pred, axis=0))


def pretrain_blocks(teacher, modules, blocks, x, epochs=1, batch_size=64,
                    learning_rate=1e-3, verbose=0):
    """Pre-trains every block against the teacher.

    Args:
        teacher: the full trained model (left unchanged).
        modules: list of `surgery.Module`.
        blocks: tuple of blocks (see `blocks.identify_blocks`).
        x: training inputs (labels are not needed).
        epochs, batch_size, learning_rate: training settings.

    Returns:
        A list, per block, of ``{layer_name: [weights]}``.
    """
    import keras

    if epochs < 0:
        raise ValueError(f"Expected epochs >= 0. Received: epochs={epochs}")
    model, students, _ = teacher_student_model(teacher, modules, blocks)
    if epochs:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=_sum_of_block_errors)
        dummy = np.zeros((len(x), len(blocks)), dtype="float32")
        model.fit(x, dummy, epochs=epochs, batch_size=batch_size, verbose=verbose)
    return [_layer_weights(student) for student in students]


def save_block_weights(path, block_weights):
    """Writes the list from `pretrain_blocks` to one ``.npz``."""
    arrays = {}
    for index, layers in enumerate(block_weights):
        for name, weights in layers.items():
            for position, value in enumerate(weights):
                arrays[f"{index}/{name}/{position}"] = value
    np.savez(path, **arrays)


def load_block_weights(path):
    """Reads what `save_block_weights` wrote."""
    found = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            index, name, position = key.split("/")
            found.setdefault(int(index), {}).setdefault(name, {})[int(position)] = arrays[key]
    return [{name: [parts[p] for p in sorted(parts)] for name, parts in found.get(i, {}).items()}
            for i in range(max(found, default=-1) + 1)]


def assemble(teacher, modules, config, block_ids=None, block_weights=None):
    """Builds one pruned network of the subspace.

    With ``block_ids`` and ``block_weights`` the network is "block-trained"
    (its layers come from its pre-trained blocks); without them it is the
    "default" network initialized from the teacher's surviving weights.
    """
    pruned = surgery.prune_filters(teacher, modules, list(config))
    for block_id in block_ids or ():
        for name, weights in block_weights[block_id].items():
            pruned.get_layer(name).set_weights(weights)
    return pruned
