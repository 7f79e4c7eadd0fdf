"""Reads per-epoch timings of plain vs ADMM training without hiding their modes.

On a shared machine an epoch's wall time is often bimodal: the same plain epoch
takes 0.95 s in some rounds and 1.26 s in others. Comparing the minima (or the
medians) of two such samples measures which mode each sample happened to sit
in, not the cost of the callback. ``summarize`` therefore reports the modes it
finds and compares like with like: the ADMM median against the median of the
plain epochs' fastest mode, alongside the plain minimum and median ratios.

    .venv/bin/python bench/epoch_timing.py bench/results/cocogen_study_timing*.json

rewrites each file's derived fields from its recorded ``plain_epoch_s`` and
``admm_epoch_s`` lists (no timing is run).
"""

import json
import statistics
import sys

MODE_GAP = 0.10
"""Two sorted neighbours further apart than this fraction start a new mode."""


def modes(seconds):
    """Groups of epoch times split at gaps wider than ``MODE_GAP``.

    A group needs at least two values to count as a mode; a single value
    beyond a gap is an outlier and stays with its neighbours.

    Returns:
        A list of ``{"count", "min", "max", "median"}``, fastest first.
    """
    ordered = sorted(seconds)
    groups = [[ordered[0]]]
    for previous, value in zip(ordered, ordered[1:]):
        if value > previous * (1 + MODE_GAP):
            groups.append([])
        groups[-1].append(value)
    merged = []
    for group in groups:
        if merged and (len(group) < 2 or len(merged[-1]) < 2):
            merged[-1].extend(group)
        else:
            merged.append(list(group))
    return [{"count": len(g), "min": min(g), "max": max(g), "median": statistics.median(g)}
            for g in merged]


def summarize(plain, admm):
    """Derived figures of one timing run (plain and ADMM seconds per epoch)."""
    plain_modes, admm_modes = modes(plain), modes(admm)
    fast = plain_modes[0]["median"]
    admm_median = statistics.median(admm)
    summary = {
        "plain_epoch_s_min": min(plain), "admm_epoch_s_min": min(admm),
        "overhead_min": min(admm) / min(plain) - 1.0,
        "plain_epoch_s_median": statistics.median(plain), "admm_epoch_s_median": admm_median,
        "overhead_median": admm_median / statistics.median(plain) - 1.0,
        "plain_modes": plain_modes, "admm_modes": admm_modes,
        "overhead_vs_plain_fast_mode": admm_median / fast - 1.0,
        "bimodal": len(plain_modes) > 1 or len(admm_modes) > 1,
    }
    summary["reading"] = reading(summary)
    return summary


def reading(summary):
    """One sentence saying which comparison the figures support."""
    if not summary["bimodal"]:
        return (f"one mode each: the medians compare ({summary['overhead_median']:+.1%}); "
                "the minima are the least disturbed runs")
    return ("bimodal: min-vs-min and median-vs-median compare different modes "
            f"({summary['overhead_min']:+.1%} and {summary['overhead_median']:+.1%}); "
            "the ADMM median against the plain epochs' fastest mode is "
            f"{summary['overhead_vs_plain_fast_mode']:+.1%}")


def rewrite(path):
    """Re-derives the figures of a timing file from its recorded lists."""
    with open(path) as f:
        doc = json.load(f)
    doc.update(summarize(doc["plain_epoch_s"], doc["admm_epoch_s"]))
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return doc


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(name, rewrite(name)["reading"])
