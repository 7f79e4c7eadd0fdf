"""Deprecated: the timing helpers moved to ``cocopie_keras.bench.timing`` (one
``bench`` package). This name stays for one release, as the same module."""

import sys
import warnings

from cocopie_keras.bench import timing

warnings.warn("cocopie_keras.benchmark is deprecated; use cocopie_keras.bench.timing",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = timing
