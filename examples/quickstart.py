"""Prune a small CNN, convert it, and run it on the cocopie delegate.

Run from an installed checkout: `.venv/bin/python examples/quickstart.py`.
"""

import keras
import numpy as np

import cocopie_keras
from cocopie_keras import converter, pruning

model = keras.Sequential([
    keras.Input((32, 32, 3)),
    keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
    keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(10),
])
masks = pruning.prune_model(model, connectivity_rate=0.3)  # 4-of-9 patterns
# ... model.fit(x, y, callbacks=[pruning.PatternMaskCallback(masks)]) ...
tflite_bytes = converter.convert(model)  # .tflite + pattern LR metadata

interpreter = cocopie_keras.make_interpreter(tflite_bytes, num_threads=2)
x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
interpreter.invoke()
out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
print("max |keras - delegate| =", float(np.abs(out - model(x).numpy()).max()))
