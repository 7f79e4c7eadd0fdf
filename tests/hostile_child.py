"""Runs .tflite models in a process of its own, for delegate_hostile_test.py.

A crash then ends only this process, and its peak memory is its own:

    python hostile_child.py LIBRARY [--option KEY=VALUE] [--address-space MIB]
        MODEL:INPUT:OUTPUT ...

LIBRARY is the delegate library, or "stock" for LiteRT alone. Each model is
run in turn: its input (.npy) is fed to input 0 (resized to its shape) and
output 0 saved to OUTPUT (.npy). One JSON line per model is printed: status
("ok" or "error"), message, claimed (convolutions the delegate runs) and
peak_rss_mib, the process's peak so far. Only LiteRT and NumPy are imported,
so that the peak is the models', not TensorFlow's. --address-space caps the
address space at that many MiB above what the process uses once loaded, so
that a large allocation fails instead of exhausting the machine.
"""

import argparse
import ctypes
import json
import resource

import numpy as np
from ai_edge_litert import interpreter as litert


def status_kib(field):
    """A VmHWM-style field of /proc/self/status, in KiB (0 if absent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def claimed_nodes(delegates):
    total = 0
    for delegate in delegates:
        library = getattr(delegate, "_library", None)
        if library is not None and hasattr(library, "CocopieDelegateClaimedNodes"):
            total += max(0, int(library.CocopieDelegateClaimedNodes(
                ctypes.c_void_p(delegate._delegate_ptr))))
    return total


def run(model_path, input_path, output_path, library, options):
    x = np.load(input_path)
    delegates = [] if library == "stock" else [litert.load_delegate(library, options)]
    interpreter = litert.Interpreter(model_path=model_path,
                                     experimental_delegates=delegates, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    np.save(output_path, interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    return claimed_nodes(delegates)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("library")
    parser.add_argument("--option", action="append", default=[])
    parser.add_argument("--address-space", type=int, default=0)
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    options = dict(item.split("=", 1) for item in args.option)
    if args.address_space:
        limit = status_kib("VmSize") * 1024 + args.address_space * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for triple in args.runs:
        model_path, input_path, output_path = triple.split(":")
        report = {"status": "ok", "message": "", "claimed": 0}
        try:
            report["claimed"] = run(model_path, input_path, output_path, args.library, options)
        except (RuntimeError, ValueError, MemoryError) as error:  # a failed step
            report.update(status="error", message=" ".join(str(error).split()))
        # VmHWM: ru_maxrss would include the parent's memory at fork.
        report["peak_rss_mib"] = status_kib("VmHWM") / 1024
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
