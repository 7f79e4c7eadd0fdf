"""The delegate's C++ sources include each other layer by layer.

``delegate/`` is split into folders that are its layers, bottom up:

    abi      our declaration of the TFLite C ABI (no TFLite headers ship)
    lr       the LR and the tuning record as the schema stores them, and the
             compact (sparse) weights the converter writes
    kernels  pattern convolutions and the simple ops, on plain arrays
    tuning   kernel-tuning records' rules, layer signatures, the tuning cache
    graph    TFLite nodes: handlers, partition steps, graph passes, the
             weights-derived LR, the kernel-tuning search on a step
    (top)    delegate/*.cc: the plugin's entry points

A library source may include its own folder and the folders below it, and
the public C API header ``delegate/cocopie_delegate.h`` (which itself only
includes the ABI). Tests (``*_test.cc``) exercise several layers at once and
may include any of them, and only they include the ``*_testing.h`` helpers.
"""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DELEGATE = os.path.join(ROOT, "delegate")
LAYERS = ("abi", "lr", "kernels", "tuning", "graph", "")
"""Bottom up; "" is delegate/ itself, the plugin on top."""
PUBLIC_HEADER = "delegate/cocopie_delegate.h"
NOT_LIBRARY = ("bench",)
"""Folders of programs built beside the library (not layers)."""
INCLUDE = re.compile(r'^\s*#\s*include\s+"(delegate/[^"]+)"', re.MULTILINE)


def _layer_of(path):
    """The layer of a repository-relative path under delegate/."""
    parts = path.split("/")
    return parts[1] if len(parts) == 3 else ""


def _sources():
    """Repository-relative paths of the delegate's library sources and tests."""
    found = []
    for directory, folders, files in os.walk(DELEGATE):
        folders[:] = [f for f in folders if f not in NOT_LIBRARY]
        for name in files:
            if name.endswith((".h", ".cc")):
                found.append(os.path.relpath(os.path.join(directory, name), ROOT))
    return sorted(p.replace(os.sep, "/") for p in found)


def include_map():
    includes = {}
    for path in _sources():
        with open(os.path.join(ROOT, path)) as f:
            includes[path] = INCLUDE.findall(f.read())
    return includes


def layer_violations(includes):
    """``"source -> header"`` for every include that reaches up a layer."""
    offending = []
    for source, headers in includes.items():
        if source.endswith("_test.cc"):
            continue
        rank = LAYERS.index(_layer_of(source))
        for header in headers:
            if header == PUBLIC_HEADER or not header.startswith("delegate/"):
                continue
            if LAYERS.index(_layer_of(header)) > rank:
                offending.append(f"{source} -> {header}")
    return sorted(offending)


def test_every_source_sits_in_a_layer():
    unknown = [p for p in _sources() if _layer_of(p) not in LAYERS]
    assert unknown == []
    assert {_layer_of(p) for p in _sources()} == set(LAYERS)


def test_every_included_delegate_header_exists():
    missing = sorted(f"{source} -> {header}" for source, headers in include_map().items()
                     for header in headers
                     if header.startswith("delegate/") and not os.path.isfile(
                         os.path.join(ROOT, header)))
    assert missing == []


def test_no_layer_includes_a_layer_above_it():
    assert layer_violations(include_map()) == []


def test_test_helpers_stay_out_of_the_library():
    # *_testing.h headers use the test framework, which the library does not link.
    offending = sorted(f"{source} -> {header}" for source, headers in include_map().items()
                       if not source.endswith(("_test.cc", "_testing.h"))
                       for header in headers if header.endswith("_testing.h"))
    assert offending == []


def test_the_public_header_includes_only_the_abi():
    headers = include_map()[PUBLIC_HEADER]
    assert headers and all(_layer_of(h) == "abi" for h in headers)


@pytest.mark.parametrize("source, header, reaches_up", [
    ("delegate/kernels/pattern_conv.cc", "delegate/graph/conv_node.h", True),
    ("delegate/lr/lr_format.cc", "delegate/tuning/kernel_tuning.h", True),
    ("delegate/graph/conv_node.cc", "delegate/kernels/pattern_conv.h", False),
    ("delegate/cocopie_delegate.cc", "delegate/graph/graph_pass.h", False),
    ("delegate/kernels/pattern_conv_test.cc", "delegate/graph/conv_node.h", False),
])
def test_the_check_sees_an_include_that_reaches_up(source, header, reaches_up):
    assert bool(layer_violations({source: [header]})) == reaches_up
