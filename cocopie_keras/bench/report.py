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
        speedup = row["speedup_vs_xnnpack_dense"]
        lines.append([row["model"], row["variant"], row["runtime"],
                      _fmt(row["median_ms"], ".2f"), spread, _fmt(row["gflops"], ".1f"),
                      _fmt(percent, ".1f"), "—" if speedup is None else f"{speedup:.2f}×",
                      _fmt(row["max_abs_diff_vs_litert"], ".1e"), _status_short(row["status"])])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def layer_table(doc, markdown=False):
    """Per-layer rows: time, GFLOP/s on dense and non-zero MACs, floors."""
    header = ["model", "layer", "variant", "runtime", "median ms", "GFLOP/s dense",
              "GFLOP/s nz", "% peak (nz)", "floor ms", "status"]
    lines = []
    for row in doc.get("layer_rows", []):
        lines.append([row["model"], row["layer"], row["variant"], row["runtime"],
                      _fmt(row["median_ms"], ".3f"), _fmt(row.get("gflops_dense"), ".1f"),
                      _fmt(row["gflops"], ".1f"), _fmt(row.get("peak_fraction") and
                                                       100 * row["peak_fraction"], ".1f"),
                      _fmt(row.get("floor_ms"), ".3f"), _status_short(row["status"])])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    return "\n".join(out + ["  ".join(c.ljust(w) for c, w in zip(line, widths))
                            for line in lines])


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
