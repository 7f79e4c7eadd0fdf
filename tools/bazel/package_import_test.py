"""Bazel's //:cocopie_keras imports the way the installed package does.

setup.py installs the top-level converter/ folder as ``cocopie_keras.converter``
and the delegate library next to ``cocopie_keras/__init__.py``. This test
imports the package as users do and checks that every module, and the
library, come from the Bazel target's runfiles. (The project's virtualenv,
which runs this test, may also hold an editable install of the source tree:
an import that only works through it would hide a broken Bazel layout.)

Run by tools/bazel/build.sh (``bazel test //:package_import_test``). Not a
pytest file: tools/ is outside pytest's test paths.
"""

import ctypes
import importlib
import importlib.util
import os
import pkgutil
import sys
import unittest


def runfiles_root():
    """The runfiles folder of this test, which the modules must come from."""
    for variable in ("TEST_SRCDIR", "RUNFILES_DIR"):
        if os.environ.get(variable):
            return os.path.abspath(os.environ[variable])
    raise RuntimeError("Expected to run under `bazel test` (TEST_SRCDIR unset).")


def is_under(path, folder):
    # abspath, not realpath: runfiles are symlinks into the source tree.
    return os.path.abspath(path).startswith(folder + os.sep)


class PackageImportTest(unittest.TestCase):

    def assert_from_runfiles(self, module):
        self.assertTrue(
            is_under(module.__file__, runfiles_root()),
            f"{module.__name__} was imported from {module.__file__}, "
            f"not from the Bazel runfiles under {runfiles_root()}",
        )

    def test_converter_imports_as_a_submodule(self):
        import cocopie_keras.converter
        from cocopie_keras import converter

        self.assertIs(converter, cocopie_keras.converter)
        self.assertTrue(callable(converter.convert))
        self.assert_from_runfiles(cocopie_keras)
        self.assert_from_runfiles(converter)

    def test_every_converter_module_imports_from_the_target(self):
        from cocopie_keras import converter

        names = [info.name for info in pkgutil.iter_modules(converter.__path__)]
        self.assertIn("conversion", names)
        for name in names:
            module = importlib.import_module(f"cocopie_keras.converter.{name}")
            self.assert_from_runfiles(module)

    def test_lr_code_generated_from_the_schema_comes_from_the_target(self):
        import numpy as np

        from cocopie_keras.converter import lr, lr_fbs

        names = [info.name for info in pkgutil.iter_modules(lr_fbs.__path__)]
        self.assertIn("LayerwiseRepresentation", names)
        for name in names:
            self.assert_from_runfiles(
                importlib.import_module(f"cocopie_keras.converter.lr_fbs.{name}"))
        masks = np.zeros((1, 3, 3), bool)
        masks[0, 1] = True
        layer = lr.LRLayer(2, 5, masks, np.zeros((4, 3), np.uint8))
        (decoded,) = lr.decode(lr.encode([layer]))
        self.assertEqual((decoded.op_index, decoded.filter_tensor), (2, 5))

    def test_there_is_no_top_level_converter_module(self):
        # The wheel installs no `converter`; code that imports it would work
        # under Bazel only.
        spec = importlib.util.find_spec("converter")
        if spec is not None:
            self.assertFalse(
                is_under(spec.origin or "", runfiles_root()),
                f"a top-level `converter` module is importable from {spec.origin}",
            )

    def test_delegate_library_sits_in_the_package(self):
        import cocopie_keras

        path = cocopie_keras.delegate_library_path()
        self.assertEqual(os.path.dirname(path), os.path.dirname(cocopie_keras.__file__))
        library = ctypes.CDLL(path)
        self.assertTrue(hasattr(library, "tflite_plugin_create_delegate"))
        self.assertTrue(hasattr(library, "tflite_plugin_destroy_delegate"))


if __name__ == "__main__":
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    unittest.main()
