"""Reading the files a user names on the command line, with one-line errors.

A file that is missing, unreadable or not of the expected kind is a bad value
on the command line: these helpers raise ``ValueError`` for it (exit status
2, see ``cocopie --help``), never a traceback or a misleading message.
"""

import os
import zipfile

_H5_EXTENSIONS = (".h5", ".hdf5")


def read_file(path, what):
    """The bytes of ``path``; ``what`` names it in the error (e.g. "a .tflite file")."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise ValueError(f"Expected {what}. Received: {path!r} "
                         f"({error.strerror or error})") from None


def _check_model_file(path):
    if not os.path.exists(path):
        raise ValueError(f"Expected a .keras model file. Received: {path!r} (no such file)")
    if os.path.isdir(path):
        raise ValueError(f"Expected a .keras model file. Received: {path!r} (a directory)")
    if not os.access(path, os.R_OK):
        raise ValueError(f"Expected a readable .keras model file. Received: {path!r} "
                         "(permission denied)")
    if path.lower().endswith(_H5_EXTENSIONS):
        return
    if not zipfile.is_zipfile(path):
        raise ValueError(
            "Expected a .keras model file (the zip archive model.save writes). "
            f"Received: {path!r} is not a zip archive")
    if not path.lower().endswith(".keras"):
        raise ValueError(f"Expected a model file name ending in .keras. Received: {path!r}")


def load_keras_model(path):
    """``keras.saving.load_model(path, compile=False)``, or a ``ValueError`` saying why not."""
    path = os.fspath(path)
    _check_model_file(path)  # before importing Keras: a wrong path fails at once
    import keras

    import cocopie_keras.sparsity  # noqa: F401  (registers the pruning wrappers)

    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"Expected a .keras model that Keras can load. Received: {path!r} "
                         f"({reason})") from None


def read_tflite(path):
    """The bytes of a .tflite file, checked to be a TFLite flatbuffer."""
    data = read_file(path, "a readable .tflite file")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"Expected a .tflite file (TFLite flatbuffer, identifier TFL3). "
                         f"Received: {path!r} ({len(data)} bytes without that identifier)")
    return data


def check_output_path(path, option, suffix=None):
    """Refuses an output path that could not be written, before any long work.

    Args:
        path: the path given.
        option: the option that gave it, for the message (e.g. "-o").
        suffix: required ending (e.g. ".keras"), if any.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if suffix and not path.lower().endswith(suffix):
        raise ValueError(f"Expected {option} to end in {suffix}. Received: {option} {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"Expected {option} to be a file path. Received: {path!r} "
                         "(a directory)")
    if not os.path.isdir(directory):
        raise ValueError(f"Expected {option} in an existing folder. Received: {path!r} "
                         f"({directory} does not exist)")
