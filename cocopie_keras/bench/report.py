"""The benchmark's results: machine description, schema check, tables, chart.

Results are one JSON document::

    {"machine": {...}, "versions": {...}, "peak_gflops": 511.0,
     "peak": {"sgemm_gflops": ..., "fma_loop_gflops": ..., "read_gbs": ...},
     "config": {...}, "rows": [...], "layer_rows": [...]}

Example:

>>> problems = validate(json.load(open("bench/results/full.json")))
>>> print(markdown_table(doc))
"""

import datetime
import importlib.metadata
import json
import os
import platform

ROW_KEYS = (
    "model", "variant", "runtime", "threads", "median_ms", "p10_ms", "p90_ms",
    "nonzero_macs", "gflops", "speedup_vs_xnnpack_dense", "max_abs_diff_vs_litert",
    "status",
)
"""Keys every row has (``layer_rows`` add ``layer``)."""
TOP_KEYS = ("machine", "versions", "peak_gflops", "rows")

SPREAD_BOUND = 1.5
"""Largest p90/p10 of a timing that a speed-up may rest on.

Undisturbed rows of 20 timed runs spread by 1.01–1.10 here; a run that other
jobs disturbed reaches 2–3 (ResNet-20's XNNPACK dense row once read 0.38 ms
median with p90 1.22 ms while the same network under XNNPACK elsewhere in the
run took 0.22 ms). Such a baseline is re-measured, and if it stays that wide no
speed-up is quoted against it.
"""


def machine_info():
    """CPU model, flags, core counts, memory and OS of this machine."""
    info = {"cpu_model": platform.processor() or platform.machine(), "flags": [],
            "logical_cpus": os.cpu_count(), "physical_cores": None,
            "machine": platform.machine(), "os": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        cores = set()
        physical = core = None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and info["cpu_model"] in ("", platform.machine(), platform.processor()):
                info["cpu_model"] = value
            elif key in ("flags", "Features") and not info["flags"]:
                info["flags"] = value.split()
            elif key == "physical id":
                physical = value
            elif key == "core id":
                core = value
                cores.add((physical, core))
        info["physical_cores"] = len(cores) or None
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        info["memory_gib"] = round(kib / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def versions(runtime_classes):
    """Versions of Python, the project and every runtime's packages."""
    found = {"python": platform.python_version()}
    for package in ("cocopie-keras", "numpy", "tensorflow", "keras", "ai-edge-litert"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    for cls in runtime_classes:
        found.update(cls.versions())
    return found


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(doc):
    """Problems with a results document (empty list: it follows the schema).

    Checks the top-level keys, every row's keys and types, and that ``status``
    is ``ok``, ``missing`` or ``failed: <reason>`` with timings present
    exactly when a measurement was made.
    """
    problems = [f"missing top-level key {k!r}" for k in TOP_KEYS if k not in doc]
    if problems:
        return problems
    if doc["peak_gflops"] is not None and not _is_number(doc["peak_gflops"]):
        problems.append("peak_gflops is not a number")
    for name in ("rows", "layer_rows"):
        for i, row in enumerate(doc.get(name, [])):
            where = f"{name}[{i}]"
            missing = [k for k in ROW_KEYS if k not in row]
            if name == "layer_rows" and "layer" not in row:
                missing.append("layer")
            if missing:
                problems.append(f"{where}: missing keys {missing}")
                continue
            status = row["status"]
            if not isinstance(status, str) or not (
                    status in ("ok", "missing") or status.startswith("failed: ")):
                problems.append(f"{where}: bad status {status!r}")
                continue
            timed = ("median_ms", "p10_ms", "p90_ms", "gflops")
            if status == "ok":
                for key in timed + ("max_abs_diff_vs_litert",):
                    if not _is_number(row[key]):
                        problems.append(f"{where}: {key} must be a number when ok")
                if all(_is_number(row[k]) for k in timed[:3]) and not (
                        row["p10_ms"] <= row["median_ms"] <= row["p90_ms"]):
                    problems.append(f"{where}: expected p10 <= median <= p90")
            elif status == "missing" and any(row[k] is not None for k in timed):
                problems.append(f"{where}: a missing runtime has no timings")
            if not isinstance(row["threads"], int) or not _is_number(row["nonzero_macs"]):
                problems.append(f"{where}: threads and nonzero_macs must be numbers")
    return problems


def timing_spread(row):
    """p90 / p10 of a row's timed runs (``None`` without timings)."""
    p10, p90 = row.get("p10_ms"), row.get("p90_ms")
    if _is_number(p10) and _is_number(p90) and p10 > 0:
        return p90 / p10
    return None


def too_spread(row, bound=SPREAD_BOUND):
    """True when a measured row spreads wider than ``bound`` (p90 / p10)."""
    spread = timing_spread(row)
    return spread is not None and bound is not None and spread > bound


def claims_nothing(row):
    """True for a cocopie row whose delegate took no node: it measured XNNPACK."""
    claimed = (row.get("notes") or {}).get("delegated_convs")
    return row["runtime"] == "cocopie" and claimed is not None and int(claimed) == 0


def _is_baseline(row):
    return (row["runtime"], row["variant"]) == ("xnnpack", "dense")


def _speedup_refusal(row, base, bound):
    """Why ``row`` gets no speed-up against ``base`` (``None``: it gets one)."""
    if row["status"] != "ok" or not _is_number(row["median_ms"]):
        return None  # the status already says why
    if claims_nothing(row):
        return "not a speed-up: the delegate claimed no node, so this row is XNNPACK"
    if base is None or base["status"] != "ok":
        return "no xnnpack/dense baseline measured"
    if too_spread(base, bound):
        return (f"xnnpack/dense baseline needs re-measure: p90/p10 "
                f"{timing_spread(base):.2f} > {bound:g}")
    return None


def add_speedups(rows, bound=SPREAD_BOUND):
    """Sets every row's speed-up over XNNPACK dense from the unrounded timings.

    ``speedup_vs_xnnpack_dense`` is the ratio of medians and
    ``speedup_band_vs_xnnpack_dense`` the range the spread allows
    (baseline p10 / row p90 to baseline p90 / row p10). A row gets neither
    when it is not ``ok``, when the delegate claimed no node (that row runs
    XNNPACK and says so in ``speedup_note``), or when the baseline spreads
    wider than ``bound``; the baseline row is then ``needs_remeasure``.
    Rows are matched by model (and layer for ``layer_rows``).
    """
    baselines = {(r["model"], r.get("layer")): r for r in rows if _is_baseline(r)}
    for row in rows:
        base = baselines.get((row["model"], row.get("layer")))
        note = _speedup_refusal(row, base, bound)
        row["timing_spread"] = timing_spread(row)
        row["needs_remeasure"] = bool(_is_baseline(row) and row["status"] == "ok"
                                      and too_spread(row, bound))
        row["speedup_vs_xnnpack_dense"] = row["speedup_band_vs_xnnpack_dense"] = None
        row["speedup_note"] = note
        if note is None and row["status"] == "ok" and _is_number(row["median_ms"]):
            row["speedup_vs_xnnpack_dense"] = base["median_ms"] / row["median_ms"]
            row["speedup_band_vs_xnnpack_dense"] = [base["p10_ms"] / row["p90_ms"],
                                                    base["p90_ms"] / row["p10_ms"]]
    return rows


def rederive(doc, bound=SPREAD_BOUND):
    """Recomputes the derived fields of a results document from its timings.

    Used on files written before speed-ups carried their spread; records the
    bound used in ``config``.
    """
    add_speedups(doc["rows"], bound)
    add_speedups(doc.get("layer_rows", []), bound)
    doc.setdefault("config", {})["spread_bound"] = bound
    return doc


def write_json(doc, path):
    """Writes ``doc`` (pretty, stable key order) to ``path``, creating folders."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


def _status_short(status):
    return status if len(status) <= 60 else status[:57] + "..."


def speedup_cell(row):
    """Ratio of medians and its p10/p90 band, e.g. ``3.91× (3.85–4.30)``, or why none."""
    speedup = row.get("speedup_vs_xnnpack_dense")
    if speedup is not None:
        band = row.get("speedup_band_vs_xnnpack_dense")
        return f"{speedup:.2f}×" + (f" ({band[0]:.2f}–{band[1]:.2f})" if band else "")
    note = row.get("speedup_note") or ""
    if note.startswith("not a speed-up"):
        return "— (claims no node: XNNPACK)"
    if "needs re-measure" in note:
        return "— (baseline needs re-measure)"
    return "—"


def status_cell(row):
    """The status, with "needs re-measure" on a baseline too spread to quote."""
    status = _status_short(row["status"])
    if row.get("needs_remeasure"):
        status += f", needs re-measure (p90/p10 {timing_spread(row):.2f})"
    return status


def format_table(header, lines, markdown=False):
    """``lines`` (lists of cell strings) under ``header``: aligned text, or Markdown."""
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    return "\n".join(out + ["  ".join(c.ljust(w) for c, w in zip(line, widths))
                            for line in lines])


def text_table(doc, markdown=False):
    """The rows as an aligned text table (or a Markdown table)."""
    peak = doc.get("peak_gflops")
    header = ["model", "variant", "runtime", "median ms", "p10–p90 ms", "GFLOP/s (nz)",
              "% peak", "vs XNNPACK dense", "max |Δ| vs LiteRT", "status"]
    lines = []
    for row in doc["rows"]:
        spread = (f"{row['p10_ms']:.2f}–{row['p90_ms']:.2f}"
                  if row["p10_ms"] is not None else "—")
        percent = (100 * row["gflops"] / peak) if (row["gflops"] and peak) else None
        lines.append([row["model"], row["variant"], row["runtime"],
                      _fmt(row["median_ms"], ".2f"), spread, _fmt(row["gflops"], ".1f"),
                      _fmt(percent, ".1f"), speedup_cell(row),
                      _fmt(row["max_abs_diff_vs_litert"], ".1e"), status_cell(row)])
    return format_table(header, lines, markdown)


def layer_table(doc, markdown=False):
    """Per-layer rows: time, GFLOP/s on dense and non-zero MACs, floors."""
    header = ["model", "layer", "variant", "runtime", "median ms", "GFLOP/s dense",
              "GFLOP/s nz", "% peak (nz)", "floor ms", "vs XNNPACK dense", "status"]
    lines = []
    for row in doc.get("layer_rows", []):
        lines.append([row["model"], row["layer"], row["variant"], row["runtime"],
                      _fmt(row["median_ms"], ".3f"), _fmt(row.get("gflops_dense"), ".1f"),
                      _fmt(row["gflops"], ".1f"), _fmt(row.get("peak_fraction") and
                                                       100 * row["peak_fraction"], ".1f"),
                      _fmt(row.get("floor_ms"), ".3f"), speedup_cell(row), status_cell(row)])
    return format_table(header, lines, markdown)


def plot(doc, path):
    """Bar chart of median latency: one panel per model, bars per runtime.

    Runtimes that are missing or failed get no bar and an ``×`` at the axis,
    so an absent bar is never mistaken for a fast one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    rows = doc["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    if not models:
        return None
    fig, axes = plt.subplots(len(models), 1, figsize=(max(7, 2.2 * len(variants) + 3),
                                                       2.8 * len(models)), squeeze=False)
    width = 0.8 / max(len(runtimes), 1)
    colors = plt.get_cmap("tab10")
    for ax, model in zip(axes[:, 0], models):
        for j, runtime in enumerate(runtimes):
            for i, variant in enumerate(variants):
                match = [r for r in rows if (r["model"], r["variant"], r["runtime"]) ==
                         (model, variant, runtime)]
                x = i + (j - (len(runtimes) - 1) / 2) * width
                if match and match[0]["status"] == "ok":
                    ax.bar(x, match[0]["median_ms"], width, color=colors(j % 10))
                elif match:
                    ax.plot([x], [0], marker="x", color=colors(j % 10), clip_on=False,
                            transform=ax.get_xaxis_transform())
        ax.set_xticks(np.arange(len(variants)), variants)
        ax.set_yscale("log")
        ax.set_ylabel("median ms (log)")
        ax.set_title(f"{model}  ({doc['config'].get('threads')} threads; × = missing/failed)",
                     fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    handles = [Patch(color=colors(j % 10), label=runtime) for j, runtime in enumerate(runtimes)]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 7), fontsize=8)
    # Leave a fixed 0.45 inch at the top for the legend, whatever the height.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def timestamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
