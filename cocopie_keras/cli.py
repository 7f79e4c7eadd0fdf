"""The ``cocopie`` command line: subcommands come from ``cocopie_keras.commands``."""

import argparse
import importlib
import os
import pkgutil
import sys

from cocopie_keras import commands


def _command_modules():
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    return [importlib.import_module(f"{commands.__name__}.{name}") for name in names]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cocopie",
        description="Pattern pruning for Keras and the cocopie TFLite delegate.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args)
    except (OSError, ValueError) as error:
        print(f"cocopie {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
