"""Deprecated: the kernel-tuning record moved to ``converter.kernel_tuning``
(kernel auto-tuning, not CoCo-Tune). This name stays for one release and is
the same module object."""

import sys
import warnings

from cocopie_keras.converter import kernel_tuning

warnings.warn("cocopie_keras.converter.tuning is deprecated; use "
              "cocopie_keras.converter.kernel_tuning", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = kernel_tuning
