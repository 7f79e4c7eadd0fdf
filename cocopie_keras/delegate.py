"""Finding and loading the cocopie delegate library."""

import os

LIBRARY_NAME = "libcocopie_delegate.so"


LIBRARY_ENV = "COCOPIE_DELEGATE_LIBRARY"


def delegate_library_path():
    """Absolute path of the delegate shared library shipped in the package.

    The environment variable ``COCOPIE_DELEGATE_LIBRARY`` selects another build
    of the same library (e.g. the sanitizer build ``make test-asan`` uses).

    Raises:
        FileNotFoundError: if the package was installed without building the
            delegate (e.g. copied from a source tree), or the variable names a
            missing file.
    """
    override = os.environ.get(LIBRARY_ENV)
    if override:
        if not os.path.exists(override):
            raise FileNotFoundError(
                f"{LIBRARY_ENV} names {override!r}, which does not exist."
            )
        return os.path.abspath(override)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"The cocopie delegate library is missing at {path}. Build it with "
            "`pip install .` (or `make install`) from the source tree."
        )
    return path


def load_delegate(num_threads=None, runtime="litert", **options):
    """Loads the delegate into a TFLite runtime.

    Args:
        num_threads: worker threads for the delegate's kernels (None: follow
            the interpreter).
        runtime: ``"litert"`` (``ai_edge_litert``) or ``"tf"`` (``tf.lite``).
        **options: further delegate options (``kernel``, ``verbose``,
            ``tuning`` = ``"cache"`` | ``"on"`` | ``"retune"`` | ``"off"``,
            ``tuning_cache`` = a file path); values are passed as strings.
            See ``delegate/tuning/kernel_tuning.h`` for what tuning does.

    Returns:
        The runtime's delegate object, for ``experimental_delegates=[...]``.

    Raises:
        ValueError: if the delegate refuses an option.
    """
    if num_threads is not None:
        options["num_threads"] = num_threads
    options = {key: str(value) for key, value in options.items()}
    if runtime == "litert":
        from ai_edge_litert.interpreter import load_delegate as load
    elif runtime == "tf":
        import tensorflow as tf

        load = tf.lite.experimental.load_delegate
    else:
        raise ValueError(
            f"Expected runtime 'litert' or 'tf'. Received: runtime={runtime!r}"
        )
    return load(delegate_library_path(), options)


def make_interpreter(model_content, use_delegate=True, num_threads=1,
                     runtime="litert", input_shape=None, **options):
    """An allocated interpreter for ``model_content``, with or without us.

    Args:
        model_content: .tflite bytes.
        use_delegate: apply the cocopie delegate (XNNPACK still takes what
            it leaves).
        num_threads: interpreter and delegate threads.
        runtime: ``"litert"`` or ``"tf"``.
        input_shape: shape to give input 0 before the first allocation
            (needed when the model's spatial sizes are unknown, ``None``).
        **options: extra delegate options.
    """
    delegates = []
    if use_delegate:
        delegates.append(load_delegate(num_threads, runtime, **options))
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter
    elif runtime == "tf":
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    else:
        raise ValueError(
            f"Expected runtime 'litert' or 'tf'. Received: runtime={runtime!r}"
        )
    interpreter = Interpreter(
        model_content=model_content,
        experimental_delegates=delegates,
        num_threads=num_threads,
    )
    if input_shape is not None:
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, list(input_shape))
    interpreter.allocate_tensors()
    return interpreter


def delegated_node_count(interpreter):
    """Number of (depthwise) convolutions the cocopie delegate runs in ``interpreter``.

    Asks the delegate itself: the interpreter's own op list shows every
    delegate's partitions (XNNPACK's too) under the same name, DELEGATE.
    """
    import ctypes

    total = 0
    for delegate in getattr(interpreter, "_delegates", None) or []:
        library = getattr(delegate, "_library", None)
        if library is None or not hasattr(library, "CocopieDelegateClaimedNodes"):
            continue
        count = library.CocopieDelegateClaimedNodes(
            ctypes.c_void_p(delegate._delegate_ptr)
        )
        total += max(int(count), 0)
    return total


def kernel_tunings(interpreter):
    """What each node the cocopie delegate runs in ``interpreter`` was tuned to.

    Asks the delegate (``CocopieDelegateKernelTunings``) after the
    interpreter's latest allocation.

    Returns:
        A list of dicts, one per delegated CONV_2D node, ordered by node:
        ``node``, ``source`` (``"lr"``: read from the model's LR, ``"cache"``,
        ``"timed"``, ``"default"``, ``"off"``, ``"forced"``), ``kernel``
        (``"block"`` / ``"rows"``), the block kernel's ``channel_block``,
        ``tile_pixels``, ``tiles_per_task``, ``chunk_bytes``, ``loop_order``,
        ``target``, ``threads``, ``signature``, ``record`` (the one-entry
        tuning record, hex) and, when timed, ``default_us`` / ``tuned_us``.

    Example:

        >>> interpreter = make_interpreter(data, tuning="on")  # doctest: +SKIP
        >>> [t["source"] for t in kernel_tunings(interpreter)]  # doctest: +SKIP
        ['timed', 'timed']
    """
    import ctypes
    import json

    tunings = []
    for delegate in getattr(interpreter, "_delegates", None) or []:
        library = getattr(delegate, "_library", None)
        if library is None or not hasattr(library, "CocopieDelegateKernelTunings"):
            continue
        library.CocopieDelegateKernelTunings.restype = ctypes.c_char_p
        text = library.CocopieDelegateKernelTunings(ctypes.c_void_p(delegate._delegate_ptr))
        if text:
            tunings.extend(json.loads(text.decode()))
    return sorted(tunings, key=lambda t: t["node"])


def simd_target():
    """The SIMD target the delegate's kernels dispatch to on this CPU."""
    import ctypes

    library = ctypes.CDLL(delegate_library_path())
    library.CocopieDelegateSimdTarget.restype = ctypes.c_char_p
    return library.CocopieDelegateSimdTarget().decode()


def preferred_channel_block():
    """Output channels the delegate's block kernel computes together on this
    CPU: pruning groups (``group_size``) of a multiple of it run without
    padding. Asked from the library, so no copy of the number can drift."""
    import ctypes

    library = ctypes.CDLL(delegate_library_path())
    library.CocopieDelegatePreferredChannelBlock.restype = ctypes.c_int
    return int(library.CocopieDelegatePreferredChannelBlock())
