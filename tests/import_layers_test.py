"""The package's modules import each other without a cycle, layer by layer.

Layers, bottom up: the training core (patterns, the sparsity API and its
deprecated shims) imports no other layer; the converter reads the core; the
CLI, the demo, the benchmark and CoCo-Tune sit on top of both. Every import
statement counts, also the ones inside functions: a lazy import is still a
dependency.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIRS = {"cocopie_keras": "cocopie_keras", "converter": "cocopie_keras.converter"}
"""Source folder → the package name it is installed as (see setup.py)."""

CORE = ("cocopie_keras.patterns", "cocopie_keras.sparsity", "cocopie_keras.codesign",
        "cocopie_keras.pruning", "cocopie_keras.atomic_write", "cocopie_keras.training")
CONVERTER = ("cocopie_keras.converter",)
TOP = ("cocopie_keras.cli", "cocopie_keras.commands", "cocopie_keras.demo",
       "cocopie_keras.bench", "cocopie_keras.benchmark", "cocopie_keras.cocotune",
       "cocopie_keras.tune")


def _modules():
    """``{module name: path}`` of every non-test source file."""
    modules = {}
    for folder, package in PACKAGE_DIRS.items():
        for directory, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if not name.endswith(".py") or name.endswith("_test.py"):
                    continue
                relative = os.path.relpath(os.path.join(directory, name), os.path.join(ROOT, folder))
                parts = relative[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join([package] + parts)] = os.path.join(directory, name)
    return modules


def _resolve(name, modules):
    """The project module an imported dotted name refers to, else None."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module, path, modules):
    is_package = path.endswith("__init__.py")
    base = module if is_package else module.rpartition(".")[0]
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                anchor = base
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                origin = f"{anchor}.{origin}".rstrip(".")
            # ``from a import b`` depends on a.b when b is a module, else on a.
            names = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("converter"):
                name = "cocopie_keras." + name  # the source folder's installed name
            target = _resolve(name, modules)
            if target and target != module:
                targets.add(target)
    return targets


def import_graph():
    modules = _modules()
    return {module: _imports(module, path, modules) for module, path in modules.items()}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in(module, layer):
    return any(module == prefix or module.startswith(prefix + ".") for prefix in layer)


def _is_package_init_of(module, target):
    """A package importing its own submodules (``__init__`` re-exports)."""
    return target.startswith(module + ".")


def test_no_module_imports_itself_back():
    graph = import_graph()
    # A package's __init__ re-exporting its submodules is not a loop of
    # dependencies between modules; everything else is.
    graph = {m: {t for t in targets if not _is_package_init_of(m, t)}
             for m, targets in graph.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("layer, forbidden", [
    (CORE, CONVERTER + TOP),
    (CONVERTER, TOP),
])
def test_lower_layers_do_not_import_upper_ones(layer, forbidden):
    offending = sorted(f"{module} -> {target}"
                       for module, targets in import_graph().items() if _in(module, layer)
                       for target in targets if _in(target, forbidden))
    assert offending == []


def test_the_walk_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "cocopie_keras.converter" in graph["cocopie_keras.demo"]  # inside run_demo
    assert "cocopie_keras.sparsity.config" in graph["cocopie_keras.sparsity.wrapper"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
