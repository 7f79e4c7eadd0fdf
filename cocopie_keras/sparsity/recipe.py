"""The CoCo-Gen training recipe in one call: wrap → ADMM → hard prune →
masked fine-tune → strip. Used by ``cocopie prune`` and the study.

Example:

>>> def compile_model(m):
...     m.compile(optimizer=keras.optimizers.Adam(1e-3),
...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
...               metrics=["accuracy"])
>>> result = admm_prune(trained, (x, y), compile_model,
...                     PatternPruningConfig(connectivity_rate=0.72), admm_epochs=6)
>>> plain = result.model
"""

import dataclasses

from cocopie_keras.sparsity import admm
from cocopie_keras.sparsity import wrapping


@dataclasses.dataclass
class RecipeResult:
    """What ``admm_prune`` / ``oneshot_prune`` return.

    Attributes:
        model: plain Keras model, pruned weights at zero (ready to convert).
        wrapped: the wrapped model (masks, pattern ids, ADMM state).
        admm_history: ``ADMMCallback.history`` (empty for one-shot).
        fit_histories: Keras ``History.history`` dicts, per phase.
    """

    model: object
    wrapped: object
    admm_history: list
    fit_histories: dict


def _check_epochs(**epochs):
    for name, value in epochs.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"Expected {name} to be an int >= 0. Received: {name}={value!r}")


def admm_prune(model, train, compile_fn, config=None, admm_epochs=6, finetune_epochs=4,
               batch_size=64, validation_data=None, rho=None, update_every=1,
               update_unit="epoch", log_dir=None, callbacks=(), verbose=1,
               finetune_compile_fn=None, admm_callbacks=(), steps_per_epoch=None,
               penalty="absolute"):
    """Pattern + connectivity pruning with ADMM, then masked fine-tuning.

    Args:
        model: a trained, built Keras model (not modified).
        train: ``(x, y)`` arrays or a ``tf.data.Dataset`` of batches.
        compile_fn: ``compile_fn(model)`` compiles a model (called once per
            phase, so each phase starts with a fresh optimizer).
        finetune_compile_fn: compiles the model for the fine-tune phase
            (default ``compile_fn``), e.g. with a decaying learning rate.
        config: ``PatternPruningConfig``.
        admm_epochs, finetune_epochs: epochs per phase.
        batch_size: used when ``train`` is arrays.
        validation_data: passed to ``fit``.
        rho, update_every, update_unit, log_dir, penalty: see ``ADMMCallback``.
        callbacks: extra Keras callbacks for both phases.
        admm_callbacks: extra Keras callbacks for the ADMM phase only.
        verbose: Keras ``fit`` verbosity.
        steps_per_epoch: batches per epoch when ``train`` is an endless
            dataset (e.g. ``training.FlipCropBatches.dataset()``).

    Returns:
        A ``RecipeResult``.
    """
    _check_epochs(admm_epochs=admm_epochs, finetune_epochs=finetune_epochs)
    wrapped = wrapping.prune_wrap(model, config)  # validates config before training
    admm_callback = admm.ADMMCallback(update_every=update_every, update_unit=update_unit,
                                      rho=rho, log_dir=log_dir, penalty=penalty)
    histories = {}
    if admm_epochs:
        compile_fn(wrapped)
        histories["admm"] = _fit(wrapped, train, batch_size, admm_epochs, validation_data,
                                 [admm_callback, *admm_callbacks, *callbacks], verbose,
                                 steps_per_epoch)
    admm.hard_prune(wrapped)
    if finetune_epochs:
        (finetune_compile_fn or compile_fn)(wrapped)
        histories["finetune"] = _fit(wrapped, train, batch_size, finetune_epochs,
                                     validation_data,
                                     [admm.MaskedFineTuneCallback(), *callbacks], verbose,
                                     steps_per_epoch)
    plain = wrapping.strip_pruning(wrapped)
    compile_fn(plain)
    return RecipeResult(plain, wrapped, admm_callback.history, histories)


def oneshot_prune(model, train, compile_fn, config=None, finetune_epochs=10, batch_size=64,
                  validation_data=None, callbacks=(), verbose=1):
    """The same projection without ADMM: hard prune at once, then fine-tune."""
    return admm_prune(model, train, compile_fn, config, admm_epochs=0,
                      finetune_epochs=finetune_epochs, batch_size=batch_size,
                      validation_data=validation_data, callbacks=callbacks, verbose=verbose,
                      finetune_compile_fn=compile_fn)


def _fit(model, train, batch_size, epochs, validation_data, callbacks, verbose,
         steps_per_epoch=None):
    if isinstance(train, tuple):
        x, y = train
        history = model.fit(x, y, batch_size=batch_size, epochs=epochs,
                            validation_data=validation_data, callbacks=callbacks,
                            verbose=verbose)
    else:
        history = model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            validation_data=validation_data, callbacks=callbacks,
                            verbose=verbose)
    return history.history
