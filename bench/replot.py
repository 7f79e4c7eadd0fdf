"""Redraws the chart and tables of a `cocopie bench` results file.

    .venv/bin/python bench/replot.py bench/results/full.json   # → full.png, full.md
    .venv/bin/python bench/replot.py --rederive bench/results/full.json

``--rederive`` first recomputes the derived fields (speed-ups from the unrounded
medians with their p10/p90 band, rows where the delegate claimed nothing,
baselines too spread to quote) from the timings already in the file and writes
the file back; nothing is timed. ``--no-png`` leaves the chart alone.
"""

import argparse
import json
import os
import sys

from cocopie_keras.bench import report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="results JSON files")
    parser.add_argument("--rederive", action="store_true",
                        help="recompute derived fields and rewrite the JSON")
    parser.add_argument("--no-png", action="store_true", help="do not redraw the chart")
    args = parser.parse_args(argv)
    problems = []
    for path in args.paths:
        problems += [f"{path}: {p}" for p in replot(path, args.rederive, not args.no_png)]
    for problem in problems:
        print("schema problem:", problem)
    return 1 if problems else 0


def replot(path, rederive=False, png=True):
    """Rewrites ``path``'s Markdown tables (and chart); returns schema problems."""
    with open(path) as f:
        doc = json.load(f)
    if rederive:
        report.rederive(doc)
        report.write_json(doc, path)
    stem = os.path.splitext(path)[0]
    if doc["rows"] and png:
        report.plot(doc, stem + ".png")
    with open(stem + ".md", "w") as f:
        if doc["rows"]:
            f.write(report.text_table(doc, markdown=True) + "\n")
        if doc.get("layer_rows"):
            f.write("\n" + report.layer_table(doc, markdown=True) + "\n")
    return report.validate(doc)


if __name__ == "__main__":
    sys.exit(main())
