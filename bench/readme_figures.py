"""Regenerates the figures README.md and bench/README.md quote from bench/results/.

Every README figure with a JSON source sits in a marked region::

    <!-- figures:NAME -->generated text<!-- /figures -->

(on one line, or spanning lines). This script recomputes each region from the
committed JSON, from the unrounded values, and writes the files back:

    .venv/bin/python bench/readme_figures.py          # rewrite the regions
    .venv/bin/python bench/readme_figures.py --check  # exit 1 and list stale regions

``tests/readme_figures_test.py`` runs the check.
"""

import argparse
import json
import os
import re
import statistics
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
sys.path.insert(0, ROOT)

from cocopie_keras.bench import report  # noqa: E402  (no Keras import: cheap)

REGION = re.compile(r"(<!-- figures:([a-z0-9-]+) -->)(.*?)(<!-- /figures -->)", re.S)

LABELS = {"cocopie": "cocopie", "xnnpack": "XNNPACK", "builtin": "LiteRT built-in",
          "ort": "ORT", "mnn": "MNN", "mnn_sparse": "MNN sparse", "tvm": "TVM"}
DENSE_PEERS = ("xnnpack", "builtin", "ort", "mnn", "mnn_sparse", "tvm")

SPEED_MODELS = [  # (results file, model, README name, bench/README name, target)
    ("full", "vgg16", "VGG-16 224, whole", "VGG-16 224 (whole)", "5×"),
    ("bodies", "vgg16_body", "VGG-16 224, conv body", "VGG-16 224 conv body", "—"),
    ("full", "resnet50", "ResNet-50 224, whole", "ResNet-50 224 (whole)", "2.5×"),
    ("bodies", "resnet50_body", None, "ResNet-50 224 conv body", "—"),
    ("full", "mobilenetv2", "MobileNetV2 224, whole", "MobileNetV2 224 (whole)", "1.5×"),
    ("bodies", "mobilenetv2_body", None, "MobileNetV2 224 conv body", "—"),
    ("full", "vgg16_cifar", "VGG-16 CIFAR", "VGG-16 CIFAR", "—"),
    ("full", "resnet20_cifar", "ResNet-20 CIFAR", "ResNet-20 CIFAR", "—"),
]


def load(name):
    with open(os.path.join(RESULTS, name + ".json")) as f:
        return json.load(f)


# --- formatting ------------------------------------------------------------------

def ms(value):
    """Milliseconds, 3 significant digits for the usual range (17.9, 1.75, 0.255)."""
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def signed_pct(value, digits=0):
    """+6, −19 (a real minus sign, as the prose uses)."""
    return f"{100 * value:+.{digits}f}".replace("-", "−")


def wrap(text):
    """Long generated prose wrapped like the hand-written lines around it."""
    return textwrap.fill(text, width=92, break_long_words=False, break_on_hyphens=False)


def ratio(value, band=None):
    text = f"{value:.2f}×"
    return text + (f" ({band[0]:.2f}–{band[1]:.2f})" if band else "")


def pct(value, digits=1):
    return f"{100 * value:.{digits}f}"


def timing_cell(row):
    """A row's median; its p10–p90 too when it spreads beyond the bound."""
    if row is None:
        return "—"
    if row["status"] != "ok":
        return "failed" if row["status"].startswith("failed") else row["status"]
    text = ms(row["median_ms"])
    if report.too_spread(row):
        text += f" (p10–p90 {ms(row['p10_ms'])}–{ms(row['p90_ms'])}"
        text += ", needs re-measure)" if row.get("needs_remeasure") else ")"
    return text


# --- speed -------------------------------------------------------------------------

def find(doc, model, variant, runtime):
    for row in doc["rows"]:
        if (row["model"], row["variant"], row["runtime"]) == (model, variant, runtime):
            return row
    return None


def best_dense_peer(doc, model):
    """The fastest quotable dense row of another runtime (ok, spread within bound)."""
    rows = [r for r in doc["rows"] if r["model"] == model and r["variant"] == "dense"
            and r["runtime"] in DENSE_PEERS and r["status"] == "ok" and not report.too_spread(r)]
    return min(rows, key=lambda r: r["median_ms"]) if rows else None


def versus(base, row):
    """Ratio of unrounded medians with its band, as ``report.add_speedups`` does."""
    value = base["median_ms"] / row["median_ms"]
    return ratio(value, [base["p10_ms"] / row["p90_ms"], base["p90_ms"] / row["p10_ms"]])


def speed_cells(doc, model):
    ours = find(doc, model, "pattern_conn", "cocopie")
    base = find(doc, model, "dense", "xnnpack")
    peer = best_dense_peer(doc, model)
    if ours["speedup_vs_xnnpack_dense"] is not None:
        vs_base = ratio(ours["speedup_vs_xnnpack_dense"], ours["speedup_band_vs_xnnpack_dense"])
    else:
        vs_base = "needs re-measure" if base and base.get("needs_remeasure") else "—"
    vs_peer = versus(peer, ours) if peer else "—"
    peer_cell = f"{ms(peer['median_ms'])} ({LABELS[peer['runtime']]})" if peer else "—"
    return ours, base, peer_cell, vs_base, vs_peer


def speed_table(docs):
    """README: cocopie on `pattern_conn` against XNNPACK dense and the best dense peer."""
    lines = ["| model | cocopie | XNNPACK dense | XNNPACK, same pruned file | best dense peer "
             "| vs XNNPACK dense | vs best dense peer | target |", "|---|---|---|---|---|---|---|---|"]
    for source, model, name, _, target in SPEED_MODELS:
        if name is None:
            continue
        doc = docs[source]
        ours, base, peer_cell, vs_base, vs_peer = speed_cells(doc, model)
        same = find(doc, model, "pattern_conn", "xnnpack")
        lines.append(f"| {name} | {timing_cell(ours)} | {timing_cell(base)} | "
                     f"{timing_cell(same)} | {peer_cell} | {vs_base} | {vs_peer} | {target} |")
    return "\n" + "\n".join(lines) + "\n"


def bench_speed_table(docs):
    """bench/README: the same rows with every peer's column."""
    lines = ["| model | cocopie | XNNPACK dense | ORT dense | MNN dense | MNN sparse "
             "| vs XNNPACK dense | vs best dense peer | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for source, model, _, name, target in SPEED_MODELS:
        doc = docs[source]
        ours, base, _, vs_base, vs_peer = speed_cells(doc, model)
        cells = [timing_cell(find(doc, model, "dense", r)) for r in ("ort", "mnn")]
        sparse = timing_cell(find(doc, model, "pattern_conn", "mnn_sparse"))
        lines.append(f"| {name} | {timing_cell(ours)} | {timing_cell(base)} | "
                     f"{' | '.join(cells)} | {sparse} | {vs_base} | {vs_peer} | {target} |")
    return "\n" + "\n".join(lines) + "\n"


def remeasure_note(docs):
    """Which baselines are too spread to quote, from the results files."""
    flagged = [f"{r['model']} ({r['p10_ms']:.3g}–{r['p90_ms']:.3g} ms around "
               f"{r['median_ms']:.3g})" for d in (docs["full"], docs["bodies"]) for r in d["rows"]
               if r.get("needs_remeasure")]
    bound = docs["full"]["config"]["spread_bound"]
    return "\n" + wrap(f"\"needs re-measure\": an XNNPACK dense baseline whose p90/p10 exceeds {bound:g} "
            f"(another job disturbed it) gives no ratio; here {', '.join(flagged)}. "
            "`cocopie bench` now re-measures such a baseline before writing it. A cocopie row on "
            "a file where the delegate claims no node runs XNNPACK and never counts as a "
            "speed-up. Ratios are of unrounded medians; the band in brackets is baseline "
            "p10 / cocopie p90 to baseline p90 / cocopie p10.") + "\n"


def layer_sentence(docs):
    """Single VGG-16 layers of blocks 2–5: ratios where quotable, % of FMA peak."""
    rows = [r for r in docs["layers_vgg16"]["layer_rows"] if r["variant"] == "pattern_conn"
            and r["runtime"] == "cocopie" and not r["layer"].startswith("block1")]
    quoted = [r["speedup_vs_xnnpack_dense"] for r in rows if r["speedup_vs_xnnpack_dense"]]
    peaks = [r["peak_fraction"] for r in rows]
    return wrap(f"Single 3×3 layers of VGG-16 (blocks 2–5) run {min(quoted):.1f}–{max(quoted):.1f}× "
            f"faster than XNNPACK dense ({len(quoted)} of {len(rows)} layers; the other "
            f"baselines need re-measure) at {pct(min(peaks), 0)}–{pct(max(peaks), 0)} % of the "
            "FMA peak on kept MACs.")


def pattern_only_sentence(docs):
    full = docs["full"]
    parts = []
    for model, name in (("vgg16", "VGG-16"), ("resnet50", "ResNet-50")):
        row = find(full, model, "pattern", "cocopie")
        parts.append(f"{name} {ratio(row['speedup_vs_xnnpack_dense'])}")
    return ", ".join(parts)


def peak_sentence(docs):
    peak = docs["full"]["peak"]
    return f"FMA loop {peak['fma_loop_gflops']:.0f} GFLOP/s, sgemm {peak['sgemm_gflops']:.0f}"


def whole_model_ms(docs, model):
    return ms(find(docs["full"], model, "pattern_conn", "cocopie")["median_ms"])


# --- storage and co-design -----------------------------------------------------------

STORAGE_NAMES = {"vgg16": "VGG-16 224", "resnet50": "ResNet-50 224",
                 "mobilenetv2": "MobileNetV2 224", "vgg16_cifar": "VGG-16 CIFAR",
                 "resnet20_cifar": "ResNet-20 CIFAR",
                 "cocopie_prune_mnist_cnn.keras": "MNIST CNN, `cocopie prune`"}


def storage_range(docs, source="storage", storage="cocopie"):
    """Range of the pruned-filter byte ratios (``storage_g1``: free patterns;
    ``storage``: the file kind, over the rows that measured it)."""
    ratios = [r["filter_bytes"][storage] / r["filter_bytes"]["tflite_sparsity"]
              for r in docs[source] if storage in r["filter_bytes"]]
    return f"{min(ratios):.2f}–{max(ratios):.2f}×"


def delegate_only_table(docs, source="storage_g1"):
    """The rows' delegate-only storage next to TFLite's and the stock-readable one."""
    lines = ["| model | pruned filters: TFLite sparsity | cocopie, stock-readable (+LR) | "
             "cocopie, delegate-only (+LR) | ratio | delegate-only file vs TFLite file | "
             "delegate matches stock |", "|---|---|---|---|---|---|---|"]
    for r in docs[source]:
        files, filters = r["file_bytes"], r["filter_bytes"]
        if "cocopie_delegate_only" not in filters:
            continue
        lines.append(f"| {STORAGE_NAMES.get(r['model'], r['model'])} | "
                     f"{filters['tflite_sparsity'] / 1e6:.2f} MB | "
                     f"{filters['cocopie'] / 1e6:.2f} MB | "
                     f"{filters['cocopie_delegate_only'] / 1e6:.2f} MB | "
                     f"{filters['cocopie_delegate_only'] / filters['tflite_sparsity']:.3f} | "
                     f"{files['cocopie_delegate_only'] / files['tflite_sparsity']:.3f} | "
                     f"{r['delegate_only_matches_stock']} |")
    return "\n" + "\n".join(lines) + "\n"


def storage_table(docs, source="storage"):
    def mb(n):
        return f"{n / 1e6:.1f} MB" if n >= 2e6 else f"{n / 1e6:.2f} MB"

    lines = ["| model | pattern layers | dense file | TFLite sparsity file | cocopie file | "
             "pruned filters: TFLite sparsity | cocopie (+LR) | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in docs[source]:
        files, filters = r["file_bytes"], r["filter_bytes"]
        lines.append(f"| {STORAGE_NAMES.get(r['model'], r['model'])} | {r['pattern_layers']} | "
                     f"{mb(files['dense'])} | {mb(files['tflite_sparsity'])} | "
                     f"{mb(files['cocopie'])} | {filters['tflite_sparsity'] / 1e6:.2f} MB | "
                     f"{filters['cocopie'] / 1e6:.2f} MB | "
                     f"{filters['cocopie'] / filters['tflite_sparsity']:.3f} |")
    return "\n" + "\n".join(lines) + "\n"


def codesign_table(docs):
    rows = docs["codesign_accuracy"]["rows"]
    order = [("dense", None, "dense", "—"), ("dense_same_epochs", None, "dense + 6 epochs", "—"),
             ("free", 1, "free patterns", "1"), ("grouped", 8, "grouped", "8"),
             ("grouped", 32, "grouped", "32")]
    lines = ["| variant | channels sharing a pattern | accuracy % (mean ± std, "
             f"{docs['codesign_accuracy']['settings']['seeds']} seeds) | conv weight density |",
             "|---|---|---|---|"]
    for variant, group, name, sharing in order:
        picked = [r for r in rows if r["variant"] == variant and r["group_size"] == group]
        accuracy = [100 * r["accuracy"] for r in picked]
        lines.append(f"| {name} | {sharing} | {statistics.mean(accuracy):.2f} ± "
                     f"{statistics.pstdev(accuracy):.2f} | "
                     f"{statistics.mean(r['conv_weight_density'] for r in picked):.3f} |")
    return "\n" + "\n".join(lines) + "\n"


# --- training studies ------------------------------------------------------------------

def admm_study_sentence(docs):
    rows = [r for r in docs["cocogen_study"] if r["dataset"] == "mnist5k"]
    names = [("dense", "dense"), ("magnitude", "magnitude"), ("filter", "filter"),
             ("oneshot_pattern", "one-shot pattern"), ("admm_pattern", "ADMM pattern")]
    seeds = len({r["seed"] for r in rows})
    parts = [f"{name} {100 * statistics.mean(r['accuracy'] for r in rows if r['method'] == key):.1f} %"
             for key, name in names]
    return f"({seeds} seeds, every method starting from the same dense weights and getting the " \
           f"same post-pruning epochs, dense included): {', '.join(parts)}"


def admm_overhead_sentence(docs):
    t = docs["cocogen_study_timing_quiet"]
    fast, slow = t["plain_modes"][0], t["plain_modes"][-1]
    if len(t["plain_modes"]) == 1:
        return wrap(f"The ADMM callback costs {signed_pct(t['overhead_median'])} % per epoch "
                    f"(median of {t['rounds']} interleaved rounds on a quiet machine, "
                    "`bench/results/cocogen_study_timing_quiet.json`).")
    return wrap(f"The ADMM callback's cost per epoch is not resolved by wall-clock timing here: on a "
            f"quiet machine ({t['rounds']} interleaved rounds) the plain epochs fall into two modes, "
            f"{fast['min']:.2f}–{fast['max']:.2f} s ({fast['count']} rounds) and "
            f"{slow['min']:.2f}–{slow['max']:.2f} s ({slow['count']}), the ADMM epochs have a "
            f"median of {t['admm_epoch_s_median']:.2f} s: "
            f"{signed_pct(t['overhead_vs_plain_fast_mode'])} % against the plain epochs' fast "
            f"mode, {signed_pct(t['overhead_median'])} % median against median, "
            f"{signed_pct(t['overhead_min'], 1)} % minimum against minimum "
            "(`bench/results/cocogen_study_timing_quiet.json`).")


def cocotune_teacher(docs):
    setup = docs["cocotune_study"]["setup"]
    return (f"{setup['teacher_params'] / 1000:.0f} k parameters, "
            f"{100 * setup['teacher']['val_accuracy']:.0f} % validation accuracy")


def cocotune_paragraph(docs):
    rows = docs["cocotune_study"]["rows"]
    base = [r["base"]["configs_explored"] for r in rows]
    comp = [r["comp"]["configs_explored"] for r in rows]

    def where(r):
        workers = "worker" if r["workers"] == 1 else "workers"
        return f"{r['subspace_size']} configs, α {r['alpha']:g}, {r['workers']} {workers}"

    measured = [f"{r['speedup']:.2f}× ({where(r)})" for r in rows
                if r["speedup"] is not None and r["timing"] == "measured"]
    derived = [f"{r['speedup']:.2f}× ({where(r)}; {r['timing']})" for r in rows
               if r["speedup"] is not None and r["timing"] != "measured"]
    text = (f"Composability (block-trained initialization, pre-training time included) explored "
            f"{min(comp)}–{max(comp)} networks where the default initialization explored "
            f"{min(base)}–{max(base)}. Wall-clock speed-ups (default time / composability time), "
            f"measured: {', '.join(measured)}; read from recorded trials: {', '.join(derived)}.")
    for r in rows:
        if r["speedup"] is None and r.get("speedup_lower_bound"):
            text += (f" No figure for {where(r)}: the default search was stopped after "
                     f"{r['base']['configs_explored']} of {r['subspace_size']} configurations "
                     f"without finding a network, while composability found one in "
                     f"{60 * r['comp']['hours']:.1f} min (the ratio of times so far, "
                     f"{r['speedup_lower_bound']:.2f}×, is only a lower bound).")
    pretrain = [r["pretrain_seconds"] for r in rows]
    return wrap(text + f" Block pre-training took {min(pretrain):.0f}–{max(pretrain):.0f} s.")


# --- the demo ----------------------------------------------------------------------------

def demo_block(docs):
    from cocopie_keras import demo

    run = docs["demo_summary"]
    load = run["load_average_after"][0]
    # Two busy cores give a 1-minute load average near 2; above it, other jobs competed.
    busy = ", so the latencies are those of a busy machine" if load > 2.5 else ""
    return (f"\nOne recorded run (`bench/results/demo_summary.json`; {run['machine']}; "
            f"{run['wall_s']} s wall, 1-minute load average {load:.0f} at its end{busy}):"
            f"\n\n```\n{demo.format_table(run['summary'])}\n```\n")


# --- regions ---------------------------------------------------------------------------------

GENERATORS = {
    "demo": demo_block,
    "admm-study": admm_study_sentence,
    "admm-overhead": admm_overhead_sentence,
    "speed": speed_table,
    "speed-bench": bench_speed_table,
    "remeasure-note": remeasure_note,
    "layers": layer_sentence,
    "pattern-only": pattern_only_sentence,
    "peak": peak_sentence,
    "vgg16-ms": lambda docs: whole_model_ms(docs, "vgg16"),
    "resnet20-ms": lambda docs: whole_model_ms(docs, "resnet20_cifar"),
    "storage-range": storage_range,
    "storage-table": storage_table,
    "storage-free-range": lambda docs: storage_range(docs, "storage_g1"),
    "storage-free-table": lambda docs: storage_table(docs, "storage_g1"),
    "storage-delegate-only-range": lambda docs: storage_range(docs, "storage_g1",
                                                              "cocopie_delegate_only"),
    "storage-delegate-only-table": delegate_only_table,
    "codesign": codesign_table,
    "cocotune": cocotune_paragraph,
    "cocotune-teacher": cocotune_teacher,
}

FILES = {
    "README.md": ["demo", "admm-study", "admm-overhead", "speed", "remeasure-note", "layers",
                  "storage-range", "storage-free-range", "storage-delegate-only-range", "cocotune",
                  "cocotune-teacher"],
    "bench/README.md": ["peak", "speed-bench", "remeasure-note", "layers", "pattern-only",
                        "vgg16-ms", "resnet20-ms", "storage-table", "storage-range",
                        "storage-free-table", "storage-free-range", "storage-delegate-only-table",
                        "storage-delegate-only-range", "codesign"],
}
"""The regions each file must have (a deleted marker is an error, not a pass)."""

SOURCES = ["full", "bodies", "layers_vgg16", "storage", "storage_g1", "codesign_accuracy",
           "cocogen_study", "cocogen_study_timing_quiet", "cocotune_study", "demo_summary"]


def load_all():
    return {name: load(name) for name in SOURCES}


def regenerate(text, docs, required=()):
    """``text`` with every marked region recomputed; raises on unknown or missing names."""
    found = set()

    def replace(match):
        name = match.group(2)
        if name not in GENERATORS:
            raise ValueError(f"Expected a region name from {sorted(GENERATORS)}. "
                             f"Received: name={name!r}")
        found.add(name)
        return match.group(1) + GENERATORS[name](docs) + match.group(4)

    result = REGION.sub(replace, text)
    missing = [name for name in required if name not in found]
    if missing:
        raise ValueError(f"Expected figure regions {list(required)}. Received: missing={missing}")
    return result


def stale_regions(old, new):
    """Names of regions whose text differs between two versions of a file."""
    before = {m.group(2): m.group(3) for m in REGION.finditer(old)}
    return sorted(n for n, body in ((m.group(2), m.group(3)) for m in REGION.finditer(new))
                  if before.get(n) != body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a figure differs from its JSON")
    args = parser.parse_args(argv)
    docs, stale = load_all(), []
    for name, required in FILES.items():
        path = os.path.join(ROOT, name)
        with open(path) as f:
            old = f.read()
        new = regenerate(old, docs, required)
        if new != old:
            stale += [f"{name}: {region}" for region in stale_regions(old, new)]
            if not args.check:
                with open(path, "w") as f:
                    f.write(new)
    for item in stale:
        print(("stale: " if args.check else "rewrote: ") + item)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
