"""cocopie delegate-path: where the delegate library is."""

NAME = "delegate-path"
HELP = "print the delegate library's path"


def add_arguments(parser):
    del parser  # no options


def run(args):
    from cocopie_keras import delegate_library_path

    print(delegate_library_path())
    return 0
