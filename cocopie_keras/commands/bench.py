"""cocopie bench: latency of pruned models on every runtime, against the peak.

    cocopie bench --quick --json out/bench/quick.json
    cocopie bench --models vgg16,resnet50 --runtimes cocopie,xnnpack,ort \
        --threads 2 --repeat 20 --json bench/results/full.json
"""

NAME = "bench"
HELP = "benchmark pruned models on LiteRT (+cocopie), ONNX Runtime, MNN and TVM"

QUICK = {"models": "resnet20_cifar", "variants": "dense,pattern_conn", "repeat": 20,
         "warmup": 2, "max_run_seconds": 5.0}
FULL = {"models": "vgg16,resnet50,mobilenetv2,vgg16_cifar,resnet20_cifar",
        "variants": "dense,pattern,pattern_conn", "repeat": 20, "warmup": 3,
        "max_run_seconds": 10.0}


def _names(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser):
    from cocopie_keras.bench import models, runtimes

    parser.add_argument("--quick", action="store_true",
                        help=f"smoke subset (≤ 2 min): {QUICK['models']}, {QUICK['variants']}")
    parser.add_argument("--models", help=f"comma list from {','.join(models.ALL_MODEL_NAMES)} "
                        f"(default: {','.join(models.MODEL_NAMES)}; --quick: {QUICK['models']})")
    parser.add_argument("--variants", help=f"comma list from {','.join(models.VARIANTS)}")
    parser.add_argument("--runtimes", default=",".join(runtimes.RUNTIMES),
                        help="comma list (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every runtime")
    parser.add_argument("--repeat", type=int, help="timed runs per measurement (default 20)")
    parser.add_argument("--warmup", type=int, help="untimed runs first (default 3)")
    parser.add_argument("--per-layer", default="", metavar="MODELS",
                        help="also time each distinct conv of these models as a one-op model")
    parser.add_argument("--per-layer-only", action="store_true",
                        help="with --per-layer: skip the whole-model measurements")
    parser.add_argument("--connectivity-rate", type=float, default=models.CONNECTIVITY_RATE,
                        help="kernels removed by pattern_conn (default 0.72)")
    parser.add_argument("--group-size", type=int, default=models.PATTERN_GROUP,
                        help="output channels sharing a pattern and a removal in the pruned "
                             f"variants; 1: free per-kernel patterns (default "
                             f"{models.PATTERN_GROUP})")
    parser.add_argument("--max-run-seconds", type=float,
                        help="stop a runtime whose first run takes longer (default 10)")
    parser.add_argument("--json", required=True, help="results file to write")
    parser.add_argument("--png", help="bar chart (default: the JSON path with .png)")
    parser.add_argument("--markdown", help="also write the tables as Markdown here")
    parser.add_argument("--work-dir", help="keep converted models here (default: temporary)")
    parser.add_argument("--no-isolate", action="store_true",
                        help="measure in this process instead of one worker per runtime")
    parser.add_argument("--note", help="free text stored in the results (e.g. machine load)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    import os

    from cocopie_keras import atomic_write
    from cocopie_keras.bench import report, runner

    preset = QUICK if args.quick else FULL
    models = _names(args.models or preset["models"])
    variants = _names(args.variants or preset["variants"])
    layer_models = _names(args.per_layer)
    doc = runner.run_benchmark(
        models=models, variants=variants, runtimes=_names(args.runtimes),
        threads=args.threads, repeat=args.repeat or preset["repeat"],
        warmup=preset["warmup"] if args.warmup is None else args.warmup,
        layer_models=layer_models, connectivity_rate=args.connectivity_rate,
        work_dir=args.work_dir, keep_work=args.work_dir is not None,
        isolate=not args.no_isolate,
        max_run_s=args.max_run_seconds or preset["max_run_seconds"], quick=args.quick,
        progress=not args.no_progress, note=args.note,
        whole_models=not (args.per_layer_only and layer_models), group_size=args.group_size)
    problems = report.validate(doc)
    png = args.png or os.path.splitext(args.json)[0] + ".png"
    for path in (args.json, png):  # results may go to a new folder
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write.atomic_path(args.json) as temporary:
        report.write_json(doc, temporary)
    with atomic_write.atomic_path(png) as temporary:
        report.plot(doc, temporary)
    limits = doc["peak"]
    print(f"peak fp32 on {args.threads} thread(s): {_num(doc['peak_gflops'])} GFLOP/s "
          f"(sgemm {_num(limits.get('sgemm_gflops'))}, FMA loop "
          f"{_num(limits.get('fma_loop_gflops'))}); read bandwidth "
          f"{_num(limits.get('read_gbs'))} GB/s")
    print(report.text_table(doc))
    if doc["layer_rows"]:
        print()
        print(report.layer_table(doc))
    if args.markdown:
        text = report.text_table(doc, markdown=True) + "\n"
        if doc["layer_rows"]:
            text += "\n" + report.layer_table(doc, markdown=True) + "\n"
        atomic_write.write_bytes(args.markdown, text.encode())
    for problem in problems:
        print("schema problem:", problem)
    print(args.json)
    return 1 if problems else 0


def _num(value):
    return "n/a" if value is None else f"{value:.1f}"
