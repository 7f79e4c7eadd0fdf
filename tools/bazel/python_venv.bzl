"""The project's virtualenv as Bazel's Python toolchain.

The Python package needs numpy (and, for conversion, TensorFlow and LiteRT),
which Debian's python3 does not have. `make install` puts them in the
project's virtualenv, so the py_test runs on that interpreter, the one the
Python tests run on too. Nothing is downloaded: the repository only holds a
generated BUILD file naming the interpreter.

The interpreter is $COCOPIE_BAZEL_PYTHON (tools/bazel/build.sh sets it), else
<workspace>/.venv/bin/python.
"""

_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "venv_python3",
    interpreter_path = "{interpreter}",
    python_version = "PY3",
    # The launcher script's own first line: Bazel's default asks PATH for a
    # `python`, which a plain Debian PATH does not have.
    stub_shebang = "#!{interpreter}",
)

py_runtime_pair(
    name = "venv_runtimes",
    py3_runtime = ":venv_python3",
)

toolchain(
    name = "toolchain",
    toolchain = ":venv_runtimes",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _venv_python_impl(rctx):
    interpreter = rctx.os.environ.get("COCOPIE_BAZEL_PYTHON", "")
    if not interpreter:
        workspace = rctx.path(Label("//:WORKSPACE")).dirname
        interpreter = "%s/.venv/bin/python" % workspace
    if not interpreter.startswith("/"):
        fail("Expected an absolute interpreter path. Received: COCOPIE_BAZEL_PYTHON=%s" % interpreter)
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD", _BUILD.format(interpreter = interpreter))

venv_python = repository_rule(
    implementation = _venv_python_impl,
    environ = ["COCOPIE_BAZEL_PYTHON"],
    local = True,
)
