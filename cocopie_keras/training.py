"""The pieces of an image-classifier training recipe that pruning reuses.

Pruning fine-tunes a trained network, and it keeps the accuracy only when it
trains the way the network was trained: the same augmentation, optimizer and
learning-rate schedule. ``cocopie prune`` and the CIFAR-10 scripts build
their phases from these:

* ``FlipCropBatches``: horizontal flip + reflect-padded random crop, shuffled
  per epoch, seeded by epoch (a resumed run sees the same batches);
* ``OneCycle``: linear warm-up to a peak rate, then linear decay to zero;
* ``compile_classifier``: Adam or SGD with Nesterov momentum, decoupled
  weight decay on kernels only, (label-smoothed) cross-entropy.

Example:

>>> batches = FlipCropBatches(x_train, y_train, batch_size=512, num_classes=10)
>>> schedule = OneCycle(0.1, total_steps=6 * len(batches), warmup_steps=len(batches) // 2)
>>> compile_classifier(model, "sgd", schedule, label_smoothing=0.2)
>>> model.fit(batches.dataset(), epochs=6, steps_per_epoch=len(batches))
"""

import keras
import numpy as np

OPTIMIZERS = ("adam", "sgd")


class FlipCropBatches:
    """Flip + reflect-padded crop batches of NHWC images with one-hot labels.

    Args:
        x: images ``(N, H, W, C)`` (any dtype; batches are float32).
        y: integer labels ``(N,)``.
        batch_size: images per batch; the last partial batch is dropped.
        num_classes: width of the one-hot labels.
        seed: shuffling and augmentation seed.
        pad: crop offsets range over ``[0, 2·pad]`` pixels.
        flip: mirror half of the images left-right.
    """

    def __init__(self, x, y, batch_size, num_classes, seed=0, pad=4, flip=True):
        x, y = np.asarray(x), np.asarray(y).reshape(-1)
        if x.ndim != 4 or len(x) != len(y):
            raise ValueError("Expected images (N, H, W, C) and N labels. "
                             f"Received: x of shape {x.shape}, {len(y)} labels")
        if not 1 <= batch_size <= len(y):
            raise ValueError(f"Expected 1 <= batch_size <= {len(y)} (the images). "
                             f"Received: batch_size={batch_size}")
        if pad < 0 or pad >= min(x.shape[1:3]):
            raise ValueError(f"Expected 0 <= pad < {min(x.shape[1:3])}. Received: pad={pad}")
        self.padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        self.shape = x.shape[1:]
        self.one_hot = keras.utils.to_categorical(y, num_classes).astype(np.float32)
        self.batch_size, self.seed, self.pad, self.flip = batch_size, seed, pad, flip

    def __len__(self):
        return len(self.one_hot) // self.batch_size

    def epoch(self, epoch):
        """The batches ``(images float32, one-hot)`` of epoch ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.one_hot))
        height, width = self.shape[:2]
        rows_grid, cols_grid = np.arange(height), np.arange(width)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            dy = rng.integers(0, 2 * self.pad + 1, len(index))
            dx = rng.integers(0, 2 * self.pad + 1, len(index))
            rows = (dy[:, None] + rows_grid)[:, :, None]
            cols = (dx[:, None] + cols_grid)[:, None, :]
            flip = (rng.random(len(index)) < 0.5) & self.flip
            # A mirrored crop reads the same window right to left.
            cols = np.where(flip[:, None, None], 2 * dx[:, None, None] + width - 1 - cols, cols)
            batch = self.padded[index[:, None, None], rows, cols]
            yield batch.astype(np.float32), self.one_hot[index]

    def dataset(self, first_epoch=0):
        """An endless ``tf.data.Dataset`` of the epochs from ``first_epoch`` on."""
        import tensorflow as tf

        def forever():
            epoch = first_epoch
            while True:
                yield from self.epoch(epoch)
                epoch += 1

        classes = self.one_hot.shape[1]
        return tf.data.Dataset.from_generator(
            forever, output_signature=(tf.TensorSpec((None, *self.shape), tf.float32),
                                       tf.TensorSpec((None, classes), tf.float32))).prefetch(2)


@keras.saving.register_keras_serializable(package="cocopie_keras")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``peak/10`` to ``peak``, then linear decay to zero.

    Args:
        peak: the largest rate, > 0.
        total_steps: steps of the whole cycle.
        warmup_steps: steps of the warm-up, in ``[1, total_steps)``.
    """

    def __init__(self, peak, total_steps, warmup_steps):
        if not peak > 0 or not 1 <= warmup_steps < total_steps:
            raise ValueError("Expected peak > 0 and 1 <= warmup_steps < total_steps. Received: "
                             f"peak={peak}, warmup_steps={warmup_steps}, "
                             f"total_steps={total_steps}")
        self.peak, self.total, self.warmup = float(peak), int(total_steps), int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        up = self.peak * (0.1 + 0.9 * step / self.warmup)
        down = self.peak * (self.total - step) / (self.total - self.warmup)
        return keras.ops.maximum(keras.ops.where(step < self.warmup, up, down), 0.0)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total, "warmup_steps": self.warmup}


def compile_classifier(model, optimizer, learning_rate, weight_decay=0.0, label_smoothing=0.0,
                       one_hot=True, from_logits=True, jit_compile="auto"):
    """Compiles ``model`` for classification with the recipe's optimizer and loss.

    Args:
        model: a Keras model.
        optimizer: ``"adam"`` or ``"sgd"`` (Nesterov momentum 0.9).
        learning_rate: a float or a ``LearningRateSchedule``.
        weight_decay: decoupled weight decay (each step multiplies a kernel
            by ``1 - lr * weight_decay``, outside the momentum), not applied
            to BN / bias. Coupled decay ``c`` (added to the gradient) under
            SGD momentum ``m`` pulls about as hard as ``c / (1 - m)`` here.
        label_smoothing: needs one-hot labels.
        one_hot: labels are one-hot (else integer class ids).
        from_logits: the model outputs logits.
        jit_compile: passed to ``compile``.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Expected optimizer in {OPTIMIZERS}. Received: optimizer={optimizer!r}")
    if not 0.0 <= label_smoothing < 1.0 or weight_decay < 0:
        raise ValueError("Expected 0 <= label_smoothing < 1 and weight_decay >= 0. Received: "
                         f"label_smoothing={label_smoothing}, weight_decay={weight_decay}")
    if label_smoothing and not one_hot:
        raise ValueError("Expected one-hot labels for label smoothing. Received: one_hot=False")
    decay = weight_decay or None
    if optimizer == "sgd":
        chosen = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True,
                                      weight_decay=decay)
    else:
        chosen = keras.optimizers.AdamW(learning_rate, weight_decay=decay) if decay \
            else keras.optimizers.Adam(learning_rate)
    if decay:
        chosen.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    if one_hot:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits,
                                                    label_smoothing=label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizer=chosen, loss=loss, metrics=["accuracy"], jit_compile=jit_compile)
