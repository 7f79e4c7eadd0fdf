"""Subcommands of the ``cocopie`` command line, one module each.

A module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; ``cocopie_keras.cli`` finds it by itself. Modules import
their heavy dependencies (TensorFlow, Keras) inside ``run`` so that
``cocopie --help`` stays fast.
"""
