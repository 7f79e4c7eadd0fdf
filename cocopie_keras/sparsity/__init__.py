"""Pattern-based training (the first half of CoCo-Gen) for Keras 3.

User API: ``PatternPruningConfig`` (what to prune), ``prune_wrap`` (wrap a
trained model), ``ADMMCallback`` (ADMM regularization during ``fit``),
``hard_prune`` (impose the patterns), ``MaskedFineTuneCallback`` (fine-tune
with the masks held), ``strip_pruning`` (plain Keras model, zeros in place)
``pattern_info`` and ``conv_weight_density``. ``recipe.admm_prune`` runs the whole sequence;
``prune_in_place`` is the one-shot projection for models that are not trained
afterwards (benchmarks, tools). Every projection goes through
``patterns.project_kernel``.

Example:

>>> from cocopie_keras import sparsity
>>> wrapped = sparsity.prune_wrap(model, sparsity.PatternPruningConfig(connectivity_rate=0.72))
>>> wrapped.compile(optimizer="adam", loss=loss)
>>> wrapped.fit(x, y, epochs=6, callbacks=[sparsity.ADMMCallback()])
>>> sparsity.hard_prune(wrapped)
>>> wrapped.compile(optimizer="adam", loss=loss)
>>> wrapped.fit(x, y, epochs=4, callbacks=[sparsity.MaskedFineTuneCallback()])
>>> plain = sparsity.strip_pruning(wrapped)
"""

from cocopie_keras.sparsity.admm import ADMMCallback  # noqa: F401
from cocopie_keras.sparsity.admm import MaskedFineTuneCallback  # noqa: F401
from cocopie_keras.sparsity.admm import RhoSchedule  # noqa: F401
from cocopie_keras.sparsity.admm import hard_prune  # noqa: F401
from cocopie_keras.sparsity.config import LayerPlan  # noqa: F401
from cocopie_keras.sparsity.config import PatternPruningConfig  # noqa: F401
from cocopie_keras.sparsity.summaries import conv_weight_density  # noqa: F401
from cocopie_keras.sparsity.wrapper import MaskConstraint  # noqa: F401
from cocopie_keras.sparsity.wrapper import PatternPruneWrapper  # noqa: F401
from cocopie_keras.sparsity.wrapping import pattern_info  # noqa: F401
from cocopie_keras.sparsity.wrapping import prune_in_place  # noqa: F401
from cocopie_keras.sparsity.wrapping import prune_wrap  # noqa: F401
from cocopie_keras.sparsity.wrapping import pruning_wrappers  # noqa: F401
from cocopie_keras.sparsity.wrapping import strip_pruning  # noqa: F401
