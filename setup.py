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
"""

import glob
import os
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, find_packages, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY_NAME = "libcocopie_delegate.so"


def delegate_sources():
    sources = sorted(glob.glob(os.path.join("delegate", "*.cc")))
    return [s for s in sources if not s.endswith("_test.cc")]


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
    depends=glob.glob(os.path.join("delegate", "*.h")),
)

setup(
    name="cocopie-keras",
    version="0.1.0",
    description=(
        "Pattern-based pruning for Keras 3 and a TFLite delegate with "
        "pattern-specialized kernels"
    ),
    python_requires=">=3.10",
    packages=find_packages(include=["cocopie_keras", "cocopie_keras.*"])
    + ["cocopie_keras.converter"],
    package_dir={"cocopie_keras.converter": "converter"},
    ext_modules=[delegate],
    cmdclass={"build_ext": BuildDelegate, "bdist_wheel": PlatformWheel},
    install_requires=[
        "numpy",
        "tensorflow>=2.16",
        "keras>=3",
        "ai-edge-litert>=1.2",
    ],
    extras_require={"demo": ["mlxtend"], "test": ["pytest", "mlxtend"]},
    entry_points={"console_scripts": ["cocopie=cocopie_keras.cli:main"]},
)
