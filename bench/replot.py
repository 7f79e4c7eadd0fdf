"""Redraws the chart and tables of a `cocopie bench` results file.

    .venv/bin/python bench/replot.py bench/results/full.json   # → full.png, full.md
"""

import json
import os
import sys

from cocopie_keras.bench import report


def main(path):
    with open(path) as f:
        doc = json.load(f)
    problems = report.validate(doc)
    stem = os.path.splitext(path)[0]
    if doc["rows"]:
        report.plot(doc, stem + ".png")
    with open(stem + ".md", "w") as f:
        if doc["rows"]:
            f.write(report.text_table(doc, markdown=True) + "\n")
        if doc.get("layer_rows"):
            f.write("\n" + report.layer_table(doc, markdown=True) + "\n")
    for problem in problems:
        print("schema problem:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
