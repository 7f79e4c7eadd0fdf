"""Deprecated: CoCo-Tune moved to ``cocopie_keras.cocotune`` (so that "tune"
no longer means both CoCo-Tune and kernel auto-tuning). This name and its
submodules stay for one release, as the same module objects."""

import sys
import warnings

from cocopie_keras import cocotune
from cocopie_keras.cocotune import api, blocks, explore, pretrain, sequitur, surgery

warnings.warn("cocopie_keras.tune is deprecated; use cocopie_keras.cocotune",
              DeprecationWarning, stacklevel=2)
for _module in (api, blocks, explore, pretrain, sequitur, surgery):
    sys.modules[f"{__name__}.{_module.__name__.rpartition('.')[2]}"] = _module
sys.modules[__name__] = cocotune
