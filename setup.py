"""Builds the cocopie-keras package and its C++ delegate library.

The delegate is a plain shared library (not a Python extension): it is loaded
by TFLite runtimes through ``load_delegate``. It is built with setuptools'
compiler machinery so that ``pip install .`` and ``pip install -e .`` both put
``libcocopie_delegate.so`` inside the ``cocopie_keras`` package.
"""

import glob
import os

from setuptools import Extension, find_packages, setup
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
        super().build_extension(ext)


delegate = Extension(
    "cocopie_keras.libcocopie_delegate",
    sources=delegate_sources(),
    include_dirs=[HERE],
    language="c++",
    extra_compile_args=["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall"],
    extra_link_args=["-Wl,--no-undefined"],
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
    cmdclass={"build_ext": BuildDelegate},
    install_requires=[
        "numpy",
        "tensorflow>=2.16",
        "keras>=3",
        "ai-edge-litert>=1.2",
    ],
    extras_require={"demo": ["mlxtend"], "test": ["pytest", "mlxtend"]},
    entry_points={"console_scripts": ["cocopie=cocopie_keras.cli:main"]},
)
