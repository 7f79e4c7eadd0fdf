"""Runtime adapters: one class per inference engine, one interface.

Every adapter takes the same pruned ``.tflite`` file, converts it itself when
its engine needs another format (ONNX via ``tf2onnx``, ``.mnn`` via MNN's
converter), and runs it with the thread count it is given::

    runtime = RUNTIMES["ort"]()
    runtime.check_available()          # raises RuntimeMissing if not installed
    runtime.prepare("model.tflite", threads=2, work_dir="out/bench/work")
    y = runtime.run(x)                 # output 0, numpy
    runtime.notes()                    # what a reader of the results should know

Adding an engine is one subclass of ``Runtime`` registered in ``RUNTIMES``.
"""

import importlib
import importlib.metadata
import os
import subprocess
import sys

import numpy as np


class RuntimeMissing(Exception):
    """The engine is not installed (or cannot be loaded) on this machine."""


class Runtime:
    """Base class of a benchmarked inference engine.

    Attributes:
        name: the ``--runtimes`` key.
        label: a short human name for tables and charts.
        packages: distribution names whose versions the results record.
    """

    name = ""
    label = ""
    packages = ()
    uses_onnx = False
    """True when ``prepare`` starts from ``onnx_from_tflite`` (the runner then
    converts once, in its own process, where TensorFlow is already loaded)."""
    reads_compact = False
    """True when the engine is given the compact file (pruned filters stored
    sparse behind DENSIFY, what ``cocopie convert`` writes); the others get
    the same weights with the filters stored dense, which every converter
    (tf2onnx, MNNConvert, TVM) reads."""

    modules = ()
    """Python modules the engine imports; ``check_available`` tries each."""

    def check_available(self):
        """Raises ``RuntimeMissing`` with the reason when the engine cannot load."""
        for module in self.modules:
            _import_or_missing(module)

    def prepare(self, model_path, threads, work_dir):
        """Loads (and converts) the .tflite at ``model_path`` for ``threads`` threads."""
        raise NotImplementedError

    def run(self, x):
        """Output 0 of one inference on batch ``x`` (float32, NHWC)."""
        raise NotImplementedError

    def notes(self):
        """Facts about this run worth keeping in the results (dict of str)."""
        return {}

    @classmethod
    def versions(cls):
        """``{package: version}`` of the installed packages this engine uses."""
        found = {}
        for package in cls.packages:
            try:
                found[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                found[package] = None
        return found


def _import_or_missing(module):
    try:
        return importlib.import_module(module)
    except Exception as error:  # any import failure means: cannot run here
        raise RuntimeMissing(f"cannot import {module}: {error}") from None


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class _LiteRT(Runtime):
    packages = ("ai-edge-litert",)

    modules = ("ai_edge_litert.interpreter",)

    def run(self, x):
        from cocopie_keras.bench import timing

        return timing.run(self.interpreter, x)


class LiteRTXnnpack(_LiteRT):
    """LiteRT with its default delegate, XNNPACK (the stock configuration)."""

    name, label = "xnnpack", "LiteRT+XNNPACK"

    def prepare(self, model_path, threads, work_dir):
        from cocopie_keras import delegate

        self.interpreter = delegate.make_interpreter(
            _read(model_path), use_delegate=False, num_threads=threads)


class LiteRTBuiltin(_LiteRT):
    """LiteRT's built-in kernels, no delegate at all (also the output reference)."""

    name, label = "builtin", "LiteRT builtin"

    def prepare(self, model_path, threads, work_dir):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.interpreter = Interpreter(
            model_content=_read(model_path), num_threads=threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.interpreter.allocate_tensors()


class LiteRTCocopie(_LiteRT):
    """LiteRT with the cocopie delegate (XNNPACK takes the nodes it leaves).

    The model is first put through ``cocopie tune-kernels`` on this machine,
    as a user would before deploying it: every layer's kernel is timed here
    (choices are remembered in a cache file in the work folder), and each
    layer is timed alone against the stock runtime, which keeps the layers
    it runs faster. Tuning happens while the runtime is prepared, never
    during measured runs.
    """

    name, label = "cocopie", "LiteRT+cocopie"
    reads_compact = True
    tuning = "tune-kernels"

    def check_available(self):
        super().check_available()
        from cocopie_keras import delegate

        try:
            delegate.delegate_library_path()
        except FileNotFoundError as error:
            raise RuntimeMissing(str(error)) from None

    def prepare(self, model_path, threads, work_dir):
        from cocopie_keras import converter, delegate
        from cocopie_keras.commands import tune_kernels

        data, cache = _read(model_path), os.path.join(work_dir, "cocopie_tuning.cache")
        self._left_to_stock = 0
        if not converter.read_lr(data):  # nothing described: nothing to tune or store
            self.interpreter = delegate.make_interpreter(
                data, num_threads=threads, tuning="on", tuning_cache=cache)
        else:
            data, rows, _ = tune_kernels.tune_kernels(data, threads=threads, cache=cache)
            self._left_to_stock = sum(
                1 for row in rows if row["tuning"] and row["tuning"]["kernel"] == "stock")
            self.interpreter = delegate.make_interpreter(data, num_threads=threads,
                                                         tuning="cache")
        self._claimed = delegate.delegated_node_count(self.interpreter)
        self._target = delegate.simd_target()

    def notes(self):
        return {"delegated_convs": str(self._claimed), "simd_target": self._target,
                "tuning": self.tuning, "left_to_stock": str(self._left_to_stock)}


def onnx_from_tflite(model_path, work_dir):
    """The ONNX conversion of a .tflite file, made once and cached in ``work_dir``."""
    base = os.path.splitext(os.path.basename(model_path))[0]
    onnx_path = os.path.join(work_dir, base + ".onnx")
    if not os.path.exists(onnx_path):
        tf2onnx = _import_or_missing("tf2onnx")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        model_proto, _ = tf2onnx.convert.from_tflite(model_path, opset=17)
        tmp = onnx_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(model_proto.SerializeToString())
        os.replace(tmp, onnx_path)
    return onnx_path


class OnnxRuntime(Runtime):
    """ONNX Runtime's CPU provider on the tf2onnx conversion of the .tflite."""

    name, label = "ort", "ONNX Runtime"
    packages = ("onnxruntime", "tf2onnx", "onnx")
    uses_onnx = True

    modules = ("onnxruntime", "tf2onnx")

    def prepare(self, model_path, threads, work_dir):
        import onnxruntime as ort

        path = onnx_from_tflite(model_path, work_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x):
        return self.session.run(None, {self.input_name: x})[0]


class Mnn(Runtime):
    """MNN's CPU backend on MNN's own conversion of the .tflite (dense weights)."""

    name, label = "mnn", "MNN"
    packages = ("mnn",)
    sparse = False

    modules = ("MNN", "_tools")

    def convert(self, model_path, work_dir):
        """Runs MNN's converter on the .tflite; returns the .mnn path.

        The converter engine is called directly: the ``mnnconvert`` console
        script also sends usage telemetry and pip-installs a logging SDK,
        which a benchmark must not do (no network at run time).
        """
        base = os.path.splitext(os.path.basename(model_path))[0]
        suffix = "_sparse" if self.sparse else ""
        mnn_path = os.path.join(work_dir, f"{base}{suffix}.mnn")
        command = [sys.executable, "-c", "import sys, _tools; _tools.mnnconvert(sys.argv)",
                   "-f", "TFLITE", "--modelFile", model_path, "--MNNModel", mnn_path,
                   "--bizCode", "cocopie"]
        if self.sparse:
            command.append("--detectSparseSpeedUp")
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0 or not os.path.exists(mnn_path):
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise RuntimeError(f"MNN conversion failed (exit {done.returncode}): {' | '.join(tail)}")
        return mnn_path

    def prepare(self, model_path, threads, work_dir):
        import MNN

        self.mnn_path = self.convert(model_path, work_dir)
        # precision "high": fp32 arithmetic like every other runtime here.
        config = {"backend": "CPU", "numThread": threads, "precision": "high"}
        manager = MNN.nn.create_runtime_manager((config,))
        self.module = MNN.nn.load_module_from_file(self.mnn_path, [], [], runtime_manager=manager)
        self._mnn = MNN

    def run(self, x):
        expr = self._mnn.expr
        tensor = expr.const(x, list(x.shape), expr.NHWC)
        out = self.module.forward([tensor])[0]
        if out.data_format != expr.NHWC:
            out = expr.convert(out, expr.NHWC)
        return np.array(out.read())

    def notes(self):
        return {"mnn_bytes": str(os.path.getsize(self.mnn_path))}


class MnnSparse(Mnn):
    """MNN with its sparse conversion (``--detectSparseSpeedUp``) of the same weights.

    MNN stores a conv sparsely only above its sparsity threshold (0.6 for
    unstructured sparsity in MNN 3.x): 4-of-9 patterns alone (0.56) stay dense,
    patterns + connectivity pruning pass. ``mnn_bytes`` in the notes shows it.
    """

    name, label = "mnn_sparse", "MNN sparse"
    sparse = True


class Tvm(Runtime):
    """Apache TVM (Relax) compiled for this CPU from the ONNX conversion.

    No auto-tuning: MetaSchedule needs hours of measured trials per network,
    and TVM's default CPU schedules cover only GEMV and reductions, so
    convolutions run as the plain loop nests TVM lowers them to. The row
    measures that untuned build.
    """

    name, label = "tvm", "TVM (untuned)"
    packages = ("apache-tvm", "onnx", "tf2onnx")
    uses_onnx = True

    modules = ("tvm", "onnx", "tf2onnx")

    def prepare(self, model_path, threads, work_dir):
        # The TVM thread pool reads this when it starts (first run).
        os.environ["TVM_NUM_THREADS"] = str(threads)
        import onnx
        import tvm
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx

        path = onnx_from_tflite(model_path, work_dir)
        graph = onnx.load(path)
        first = graph.graph.input[0]
        dims = [d.dim_value or 1 for d in first.type.tensor_type.shape.dim]
        module = from_onnx(graph, shape_dict={first.name: dims}, keep_params_in_input=False)
        target = tvm.target.Target({"kind": "llvm", "mcpu": self._host_cpu(tvm),
                                    "num-cores": threads})
        executable = tvm.compile(module, target=target)
        self.vm = relax.VirtualMachine(executable, tvm.cpu())
        self._tensor = getattr(tvm.runtime, "tensor", None) or tvm.nd.array
        self._mcpu = target.attrs.get("mcpu", "")

    @staticmethod
    def _host_cpu(tvm):
        try:
            from tvm.target import codegen

            return str(codegen.llvm_get_system_cpu()) or "generic"
        except (ImportError, AttributeError, RuntimeError):
            return "generic"

    def run(self, x):
        out = self.vm["main"](self._tensor(x))
        if not hasattr(out, "numpy"):
            out = out[0]
        return out.numpy()

    def notes(self):
        return {"schedule": "untuned default (no MetaSchedule)", "mcpu": str(self._mcpu)}


RUNTIMES = {cls.name: cls for cls in (
    LiteRTCocopie, LiteRTXnnpack, LiteRTBuiltin, OnnxRuntime, Mnn, MnnSparse, Tvm)}
"""``--runtimes`` name → adapter class, in the order results are listed."""


def adapter_spec(cls):
    """``"module:QualName"`` of an adapter class (how a worker process finds it)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def adapter_from_spec(spec):
    """The adapter class named by ``adapter_spec``."""
    module_name, _, qualname = spec.partition(":")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target
