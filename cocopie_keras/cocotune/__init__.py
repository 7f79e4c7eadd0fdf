"""CoCo-Tune: composability-based fast filter pruning for Keras models.

Networks of a promising pruning subspace share runs of identically pruned
modules ("tuning blocks"). The blocks are found with Sequitur, pre-trained once
against the full network (teacher–student), and used to initialize every
network of the subspace before fine-tuning, so the search for the smallest
network that keeps the accuracy needs fewer and shorter trials.

Example:

```python
from cocopie_keras import cocotune
summary = cocotune.tune(model, (x, y), (x_val, y_val), workdir="out/tune", alpha=0.02)
```
"""

from cocopie_keras.cocotune.api import tune
from cocopie_keras.cocotune.blocks import BlockSet, identify_blocks, sample_subspace
from cocopie_keras.cocotune.surgery import (Module, infer_chain_modules, infer_modules,
                                            prune_filters)

__all__ = ["BlockSet", "Module", "identify_blocks", "infer_chain_modules", "infer_modules",
           "prune_filters", "sample_subspace", "tune"]
