"""cocopie-keras: pattern-based pruning for Keras 3 and a TFLite delegate.

Prune 3×3 convolution kernels to a few 4-entry patterns (plus whole-kernel
connectivity pruning), convert with ``cocopie_keras.converter.convert`` so the
.tflite file records the patterns, and run it with the delegate library at
``delegate_library_path()``.
"""

from cocopie_keras.delegate import delegate_library_path
from cocopie_keras.delegate import load_delegate
from cocopie_keras.delegate import make_interpreter
from cocopie_keras.patterns import default_pattern_pool
from cocopie_keras.patterns import project_kernel

__version__ = "0.1.0"

__all__ = [
    "default_pattern_pool",
    "delegate_library_path",
    "load_delegate",
    "make_interpreter",
    "project_kernel",
]
