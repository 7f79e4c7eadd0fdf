"""Keras → TFLite conversion that records pattern pruning for the delegate.

Importable as ``cocopie_keras.converter``.
"""

from cocopie_keras.converter.conversion import annotate
from cocopie_keras.converter.conversion import check_lr
from cocopie_keras.converter.conversion import convert
from cocopie_keras.converter.conversion import describe_pattern_convs
from cocopie_keras.converter.conversion import read_lr
from cocopie_keras.converter.conversion import write_lr
from cocopie_keras.converter.lr import METADATA_NAME
from cocopie_keras.converter.lr import LRFormatError
from cocopie_keras.converter.lr import LRLayer

__all__ = [
    "METADATA_NAME",
    "LRFormatError",
    "LRLayer",
    "annotate",
    "check_lr",
    "convert",
    "describe_pattern_convs",
    "read_lr",
    "write_lr",
]
