"""Rows of the CoCo-Tune study (`cocotune_study.py`), from exploration summaries.

An exploration summary is what `cocopie_keras.cocotune.tune` returns: per side
(``default``: the teacher's surviving filters, ``block``: pre-trained tuning
blocks) the trials in the order they finished, the best one and the wall time.
A row compares the two sides at one (subspace size, alpha, workers). Pure
functions of JSON records: no Keras here.
"""

import json
import os


def _side(result, extra_seconds=0.0):
    best = result["best"] or {}
    seconds = result["wall_seconds"] + result.get("resumed_seconds", 0.0) + extra_seconds
    return {"configs_explored": result["explored"], "hours": seconds / 3600.0,
            "params": best.get("params"), "accuracy": best.get("accuracy"),
            "found": bool(result["best"]), "trials_resumed": result.get("resumed", 0),
            # False: stopped for time before a success or the end of the subspace.
            "complete": bool(result["best"]) or result.get("complete", True),
            "epochs": [r.get("epochs") for r in result["rows"]],
            "curves": [r["accuracy_curve"] for r in result["rows"]]}


def rederive(result, threshold):
    """The 1-worker exploration at a looser ``threshold``, read from a stricter one.

    With one worker, trials run one after the other, smallest first. A trial
    fine-tuned towards a stricter target does, epoch for epoch, the training
    the looser trial would do, and then goes on: the looser trial is the prefix
    up to the first epoch reaching ``threshold``. Every configuration the
    looser exploration tries was tried by the stricter one (a network meeting
    the stricter target meets the looser one). Its time is each trial's set-up
    plus its measured epochs up to that point, plus the scheduling gap between
    trials measured in the stricter run.
    """
    rows = result["rows"]
    recorded = sum(r["seconds"] for r in rows)
    gap = max(0.0, result["wall_seconds"] + result.get("resumed_seconds", 0.0) - recorded)
    gap /= max(len(rows), 1)
    used, best, seconds = [], None, 0.0
    for row in rows:
        curve = row["accuracy_curve"]
        reached = next((k for k, a in enumerate(curve) if a >= threshold), None)
        stop = reached if reached is not None else len(curve) - 1
        epochs = row["epoch_seconds"]
        tail = row["seconds"] - row["setup_seconds"] - sum(epochs)
        seconds += row["setup_seconds"] + sum(epochs[:stop]) + max(tail, 0.0) + gap
        used.append(dict(row, accuracy_curve=curve[:stop + 1], accuracy=curve[stop],
                         epochs=stop))
        if reached is not None:
            best = used[-1]
            break
    return {"best": best, "explored": len(used), "wall_seconds": seconds, "rows": used,
            "resumed": 0, "resumed_seconds": 0.0, "complete": result.get("complete", True)}


def stopped_summary(workdir, full_accuracy, full_params, size):
    """A 1-worker exploration stopped before its end, read from its ``trials.jsonl``
    (the log of finished trials the exploration appends to).

    Trials ran smallest first, one at a time, so the recorded ones are the
    smallest networks; each side is read up to its first success with
    `rederive`. A side without a success that did not try every network is
    marked incomplete: its time is then a lower bound.
    """
    with open(os.path.join(workdir, "pretrain.json")) as f:
        timing = json.load(f)
    pretrain_seconds, blocks = timing["seconds"], timing.get("blocks", 0)
    stored = {}
    with open(os.path.join(workdir, "trials.jsonl")) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # cut short by the stop
            stored[(row["init"], row["config_index"])] = row
    summary = {"full_accuracy": full_accuracy, "full_params": int(full_params),
               "pretrain_seconds": pretrain_seconds, "blocks": [None] * blocks}
    for init in ("default", "block"):
        rows = sorted((r for (i, _), r in stored.items() if i == init),
                      key=lambda r: (r["params"], r["config_index"]))
        summary[init] = {"rows": rows, "explored": len(rows), "best": None,
                         "wall_seconds": float(sum(r["seconds"] for r in rows)),
                         "complete": len(rows) == size}
    return summary


def speedup_fields(base, comp):
    """base / comp hours when both searches found a network; a search stopped
    before finding one gives only a lower bound (and no speed-up figure)."""
    ratio = base["hours"] / max(comp["hours"], 1e-12)
    if base["found"] and comp["found"]:
        return {"speedup": ratio, "speedup_lower_bound": None}
    stopped = not base["found"] and not base.get("complete", True) and comp["found"]
    return {"speedup": None, "speedup_lower_bound": ratio if stopped else None}


def make_row(size, alpha, workers, summary, base_result, comp_result, pretrain_seconds,
             timing, load):
    base, comp = _side(base_result), _side(comp_result, pretrain_seconds)
    comp["pretrain_overhead_pct"] = 100.0 * pretrain_seconds / 3600.0 / max(comp["hours"], 1e-12)
    return {"subspace_size": size, "alpha": alpha, "workers": workers, "base": base,
            "comp": comp, **speedup_fields(base, comp), "timing": timing,
            "threshold": summary["full_accuracy"] - alpha,
            "full_accuracy": summary["full_accuracy"], "full_params": summary["full_params"],
            "blocks": len(summary["blocks"]), "pretrain_seconds": pretrain_seconds,
            "load": load}
