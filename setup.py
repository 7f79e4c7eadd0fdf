"""Builds the cocopie-keras package and its C++ delegate library.

The delegate is a plain shared library (not a Python extension): it is loaded
by TFLite runtimes through ``load_delegate``. It is built with setuptools'
compiler machinery so that ``pip install .`` and ``pip install -e .`` both put
``libcocopie_delegate.so`` inside the ``cocopie_keras`` package.

The library does not use Python's C API, so the wheel is tagged for any
Python 3 (``py3-none-<platform>``). It links Debian's Highway and pthreadpool
(shared only: Debian ships no static archives of either); ``make wheel``
(mk/wheel.mk) copies them into the wheel with ``auditwheel repair``, which
makes it a manylinux wheel that runs without them.

The LR's FlatBuffers schema (schema/cocopie_lr.fbs) is compiled at build
time by ``flatc`` (Debian: flatbuffers-compiler, with the headers of
libflatbuffers-dev): build_py generates the Python package
``cocopie_keras.converter.lr_fbs`` (into converter/lr_fbs in the source
tree, so that editable installs see it too; it is git-ignored) and build_ext
the C++ header the delegate includes as "schema/cocopie_lr_generated.h".
"""

import glob
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, find_packages, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.egg_info import egg_info

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY_NAME = "libcocopie_delegate.so"
SCHEMA = os.path.join("schema", "cocopie_lr.fbs")
# The schema's namespace, which is where flatc puts the Python modules.
SCHEMA_PACKAGE = "cocopie_keras.converter.lr_fbs"


def run_flatc(language, out_dir):
    """Runs ``flatc <language>`` on the schema, writing into ``out_dir``."""
    flatc = os.environ.get("FLATC") or shutil.which("flatc")
    if not flatc:
        raise RuntimeError(
            "Expected the FlatBuffers compiler flatc, which generates the LR code "
            f"from {SCHEMA} (Debian: apt-get install flatbuffers-compiler "
            "libflatbuffers-dev; `make install` does this). Received: no flatc on PATH "
            "and FLATC unset")
    subprocess.run([flatc, language, "-o", out_dir, os.path.join(HERE, SCHEMA)], check=True)


def generate_python_schema():
    """Writes the generated package into the source tree (git-ignored)."""
    # package_dir puts cocopie_keras.converter in the folder converter/.
    target = os.path.join(HERE, "converter", "lr_fbs")
    with tempfile.TemporaryDirectory() as scratch:
        # flatc also writes empty __init__.py files for the enclosing
        # packages: only the schema's own package is taken from scratch.
        run_flatc("--python", scratch)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(scratch, *SCHEMA_PACKAGE.split(".")), target)


class BuildPy(build_py):
    """Generates ``cocopie_keras.converter.lr_fbs`` from the schema first."""

    def run(self):
        generate_python_schema()
        super().run()


class EggInfo(egg_info):
    """Generates the schema's package first: the metadata lists its files
    (and setuptools refuses a listed package whose folder is missing)."""

    def run(self):
        generate_python_schema()
        super().run()


# delegate/ and its layer folders; delegate/bench/ is a benchmark program.
DELEGATE_DIRS = ["delegate"] + sorted(
    d for d in glob.glob(os.path.join("delegate", "*", ""))
    if os.path.basename(os.path.dirname(d)) != "bench")


def delegate_files(pattern):
    return sorted(f for d in DELEGATE_DIRS for f in glob.glob(os.path.join(d, pattern)))


def delegate_sources():
    return [s for s in delegate_files("*.cc") if not s.endswith("_test.cc")]


class BuildDelegate(build_ext):
    """Links the delegate as ``cocopie_keras/libcocopie_delegate.so``."""

    def get_ext_filename(self, ext_name):
        # Called with the full dotted name and with its last part alone.
        parts = ext_name.split(".")
        if parts[-1] == "libcocopie_delegate":
            return os.path.join(*parts[:-1], LIBRARY_NAME)
        return super().get_ext_filename(ext_name)

    def get_export_symbols(self, ext):
        return []  # a plain library: no PyInit_ entry point

    def build_extension(self, ext):
        header = "/usr/include/hwy/highway.h"
        if not os.path.exists(header) or not os.path.exists(
            "/usr/include/pthreadpool.h"
        ):
            raise RuntimeError(
                "The delegate needs Highway and pthreadpool headers "
                "(Debian: apt-get install libhwy-dev libpthreadpool-dev; "
                "`make install` does this)."
            )
        if not os.path.exists("/usr/include/flatbuffers/flatbuffers.h"):
            raise RuntimeError(
                "The delegate needs the FlatBuffers headers (Debian: apt-get install "
                "libflatbuffers-dev flatbuffers-compiler; `make install` does this).")
        generated = os.path.join(self.build_temp, "generated")
        run_flatc("--cpp", os.path.join(generated, "schema"))
        ext.include_dirs = list(ext.include_dirs) + [generated]
        compile_on_every_core(self.compiler)
        super().build_extension(ext)


def compile_on_every_core(compiler):
    """Makes ``compiler.compile`` run one compiler process per core.

    distutils compiles an extension's sources one after another; the
    delegate's sources take minutes that way.
    """
    one_by_one = compiler.compile
    if getattr(one_by_one, "on_every_core", False):
        return

    def compile(sources, *args, **kwargs):
        workers = min(len(sources), os.cpu_count() or 1)
        if workers < 2:
            return one_by_one(sources, *args, **kwargs)
        with ThreadPoolExecutor(workers) as pool:
            objects = pool.map(lambda source: one_by_one([source], *args, **kwargs), sources)
            return [obj for per_source in objects for obj in per_source]

    compile.on_every_core = True
    compiler.compile = compile


class PlatformWheel(bdist_wheel):
    """Tags the wheel ``py3-none-<platform>``: one library for every Python 3."""

    def get_tag(self):
        _, _, platform_tag = super().get_tag()
        return "py3", "none", platform_tag


delegate = Extension(
    "cocopie_keras.libcocopie_delegate",
    sources=delegate_sources(),
    include_dirs=[HERE],
    language="c++",
    # -g0 and -s: no debug information or symbol table in the installed
    # library (Python's own CFLAGS ask for -g); the exported entry points
    # stay in the dynamic symbol table.
    extra_compile_args=["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-g0"],
    extra_link_args=["-Wl,--no-undefined", "-s"],
    libraries=["hwy", "pthreadpool", "pthread"],
    depends=delegate_files("*.h") + [SCHEMA],
)

setup(
    name="cocopie-keras",
    version="0.1.0",
    description=(
        "Pattern-based pruning for Keras 3 and a TFLite delegate with "
        "pattern-specialized kernels"
    ),
    python_requires=">=3.10",
    packages=sorted(
        set(find_packages(include=["cocopie_keras", "cocopie_keras.*"]))
        | {"cocopie_keras.converter", SCHEMA_PACKAGE}
    ),
    package_dir={"cocopie_keras.converter": "converter"},
    ext_modules=[delegate],
    cmdclass={
        "build_py": BuildPy,
        "egg_info": EggInfo,
        "build_ext": BuildDelegate,
        "bdist_wheel": PlatformWheel,
    },
    install_requires=[
        "numpy",
        "flatbuffers>=2.0",
        "tensorflow>=2.16",
        "keras>=3",
        "ai-edge-litert>=1.2",
    ],
    extras_require={"demo": ["mlxtend"], "test": ["pytest", "mlxtend"]},
    entry_points={"console_scripts": ["cocopie=cocopie_keras.cli:main"]},
)
