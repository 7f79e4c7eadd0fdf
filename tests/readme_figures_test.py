"""The README figures agree with the committed JSON they are generated from.

`bench/readme_figures.py` writes every figure region of README.md and
bench/README.md from bench/results/*.json. These tests regenerate the regions
in memory and compare: a hand-edited number, or a JSON file changed without
running the script, fails here.
"""

import copy
import os

import pytest

import bench_scripts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


figures = bench_scripts.load("readme_figures")


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


@pytest.fixture(scope="module")
def docs():
    return figures.load_all()


@pytest.mark.parametrize("name", sorted(figures.FILES))
def test_readme_figures_match_their_json(name, docs):
    text = read(name)
    regenerated = figures.regenerate(text, docs, figures.FILES[name])
    stale = figures.stale_regions(text, regenerated)
    assert regenerated == text, (
        f"{name}: figure regions {stale} differ from bench/results/*.json; "
        "run `.venv/bin/python bench/readme_figures.py`")


def test_an_edited_figure_is_reported(docs):
    text = read("README.md")
    run = docs["demo_summary"]["summary"]
    quoted = f"{run['tflite_bytes_dense']} / {run['tflite_bytes_pruned']}"
    edited = text.replace(quoted, f"{run['tflite_bytes_dense']} / 406968")
    assert edited != text  # the demo block quotes the recorded run
    regenerated = figures.regenerate(edited, docs)
    assert figures.stale_regions(edited, regenerated) == ["demo"]


def test_a_changed_json_is_reported(docs):
    changed = copy.deepcopy(docs)
    row = figures.find(changed["full"], "vgg16", "pattern_conn", "cocopie")
    row["speedup_vs_xnnpack_dense"] *= 1.01
    text = read("README.md")
    assert figures.stale_regions(text, figures.regenerate(text, changed)) == ["speed"]


def test_a_removed_region_is_an_error(docs):
    text = read("README.md").replace("<!-- figures:speed -->", "", 1)
    with pytest.raises(ValueError, match="missing=\\['speed'\\]"):
        figures.regenerate(text, docs, figures.FILES["README.md"])


def test_an_unknown_region_is_an_error(docs):
    with pytest.raises(ValueError, match="name='nonsense'"):
        figures.regenerate("<!-- figures:nonsense -->1<!-- /figures -->", docs)


def test_the_demo_summary_is_a_make_demo_run(docs):
    run = docs["demo_summary"]
    assert run["command"] == "make demo"
    summary = run["summary"]
    # `cocopie demo` defaults: the README describes these.
    assert (summary["pattern_group_size"], summary["threads"]) == (32, 1)
    assert summary["delegated_nodes"] == summary["lr_layers"] == summary["pruned_layers"]
    assert summary["tflite_accuracy_delegate"] == summary["tflite_accuracy_stock"]
