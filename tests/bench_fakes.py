"""Fake runtime adapters for the benchmark tests.

Kept apart from the tests and free of Keras so that a worker process imports
them in a fraction of a second.
"""

import os

import numpy as np

from cocopie_keras.bench import runtimes as rt


class PerturbedXnnpack(rt.LiteRTXnnpack):
    """A runtime that silently computes something else (output off by 5 %)."""

    name, label = "perturbed", "perturbed"

    def run(self, x):
        out = super().run(x)
        return out + 0.05 * np.max(np.abs(out))


class MissingRuntime(rt.Runtime):
    """A runtime whose package is not installed."""

    name, label = "absent", "absent"

    def check_available(self):
        rt._import_or_missing("cocopie_no_such_runtime_module")


class BrokenPrepare(rt.LiteRTXnnpack):
    """A runtime that fails to load the model."""

    name, label = "broken", "broken"

    def prepare(self, model_path, threads, work_dir):
        raise RuntimeError("cannot load this model")


class CrashingRuntime(rt.LiteRTXnnpack):
    """A runtime that kills its process (as a native crash would)."""

    name, label = "crashing", "crashing"

    def run(self, x):
        os._exit(3)
