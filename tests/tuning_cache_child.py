"""Tunes a model's kernels with a tuning cache file (run in a subprocess).

``tuning_cache_test.py`` runs this with a timeout, so that a cache path that
blocks (a FIFO) fails the test instead of hanging it. Prints the delegate's
kernel tuning report as JSON; the delegate's messages go to stderr.

Usage: python tuning_cache_child.py MODEL CACHE THREADS
"""

import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from cocopie_keras import delegate


def main(model_path, cache, threads):
    with open(model_path, "rb") as f:
        model = f.read()
    shared = delegate.load_delegate(int(threads), tuning="on", tuning_cache=cache)
    interpreter = Interpreter(model_content=model, experimental_delegates=[shared],
                              num_threads=int(threads))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.ones(detail["shape"], np.float32))
    interpreter.invoke()
    print(json.dumps(delegate.kernel_tunings(interpreter)))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
