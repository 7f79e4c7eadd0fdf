"""Prune a small CNN, convert it, and run it on the cocopie delegate.

Run from an installed checkout: `.venv/bin/python examples/quickstart.py`.
"""

import keras
import numpy as np

import cocopie_keras
from cocopie_keras import converter, sparsity

model = keras.Sequential([
    keras.Input((32, 32, 3)),
    keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
    keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(10),
])
wrapped = sparsity.prune_wrap(model, sparsity.PatternPruningConfig(connectivity_rate=0.3))
# ... wrapped.fit(x, y, callbacks=[sparsity.ADMMCallback()]) ...
sparsity.hard_prune(wrapped)  # 4-of-9 patterns, 30 % of the kernels removed
# ... wrapped.fit(x, y, callbacks=[sparsity.MaskedFineTuneCallback()]) ...
model = sparsity.strip_pruning(wrapped)  # plain Keras, zeros in place
tflite_bytes = converter.convert(model)  # .tflite + pattern LR metadata

interpreter = cocopie_keras.make_interpreter(tflite_bytes, num_threads=2)
x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
interpreter.invoke()
out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
print("max |keras - delegate| =", float(np.abs(out - model(x).numpy()).max()))
