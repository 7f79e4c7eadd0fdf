"""The ``cocopie`` command line: subcommands come from ``cocopie_keras.commands``."""

import argparse
import importlib
import os
import pkgutil
import sys

from cocopie_keras import commands

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """\
exit status:
  0    success
  1    the command ran and failed (an I/O or runtime error), or a check it
       made found problems (inspect: LR and weights disagree; bench: schema)
  2    the command line is wrong: an unknown option, a bad value (out of
       range, malformed), or an input file that is missing, unreadable or
       not of the expected kind
  130  interrupted (Ctrl-C)

Every error is one line on stderr, "cocopie COMMAND: error: ...";
--traceback shows the Python traceback of a failure instead.
Output files are replaced atomically: a failed write leaves the old file as
it was."""

# Longest error text printed (a runtime error can carry pages of detail).
_MAX_ERROR_CHARS = 600


class _Parser(argparse.ArgumentParser):
    """argparse with its error on one line (argparse prints the usage first)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _command_modules():
    # Modules named "_..." are helpers of the commands, not commands.
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__)
                   if not m.name.startswith("_"))
    return [importlib.import_module(f"{commands.__name__}.{name}") for name in names]


def build_parser():
    parser = _Parser(
        prog="cocopie",
        description="Pattern pruning for Keras and the cocopie TFLite delegate.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--traceback", action="store_true",
                        help="on a failure, show the Python traceback (for bug reports)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        command = sub.add_parser(module.NAME, aliases=getattr(module, "ALIASES", ()),
                                 help=module.HELP, description=module.HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=getattr(module, "EPILOG", None))
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, (ValueError, OSError)):
        text = f"{type(error).__name__}: {text}"
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS - 3] + "..."
    return text


def exit_status(error):
    """The exit status for an exception a command raised (see ``EPILOG``)."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    # Commands raise ValueError for bad values and for bad input files
    # (commands._inputs turns a missing or unreadable input into one), so an
    # OSError left is a failure of the run itself, e.g. a full disk.
    if isinstance(error, ValueError):
        return EXIT_USAGE
    return EXIT_FAILURE


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args)
    except (Exception, KeyboardInterrupt) as error:  # every failure: one line and a status
        if args.traceback:
            raise
        if isinstance(error, KeyboardInterrupt):
            print(f"cocopie {args.command}: interrupted", file=sys.stderr)
        else:
            print(f"cocopie {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return exit_status(error)


if __name__ == "__main__":
    sys.exit(main())
