"""cocopie inspect: the LR of a .tflite file, checked against its weights."""

NAME = "inspect"
HELP = "show the LR of a .tflite file and check it against the weights"


def add_arguments(parser):
    parser.add_argument("model", help="path of a .tflite file")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON document instead of a table")


def run(args):
    import json

    from cocopie_keras import converter
    from cocopie_keras.commands import _inputs
    from cocopie_keras.converter import report

    data = _inputs.read_tflite(args.model)
    try:
        has_lr = converter.read_lr(data) is not None
        layers = report.layer_reports(data)
        problems = converter.check_lr(data)
    except ValueError as error:  # names the file: the reader's message does not
        raise ValueError(f"{args.model}: {error}") from None
    cpu = _this_cpu()
    if args.json:
        print(json.dumps({"file": args.model, "bytes": len(data), "has_lr": has_lr,
                          "layers": layers, "problems": problems, "this_cpu": cpu}, indent=2))
        return 1 if problems else 0
    if not has_lr:
        print(f"{args.model}: no cocopie LR (the delegate will leave it to stock kernels)")
        return 0
    from cocopie_keras.converter import conversion, lr

    version = lr.stored_version(conversion.read_lr_bytes(data))
    print(f"{args.model}: LR version {version}, {len(layers)} layer(s)")
    if cpu:
        print(f"this CPU: {cpu['simd_target']}, the block kernel computes "
              f"{cpu['preferred_channel_block']} output channels together (block_padding "
              "in --json, per block width)")
    print(f"{'op':>4} {'kind':<22} {'shape (OHWI)':<20} {'patterns':>8} {'kernels':>8} "
          f"{'dense B':>10} {'CSR B':>10} {'FKW B':>10}  tuning (cocopie tune-kernels)")
    for layer in layers:
        used = sum(1 for p in layer["patterns"] if p["kernels"])
        print(f"{layer['op_index']:>4} {layer['kind']:<22} {str(layer['shape_ohwi']):<20} "
              f"{used:>8} {layer['kernel_density']:>8.3f} {layer['dense_bytes']:>10} "
              f"{layer['csr_bytes']:>10} {layer['fkw_bytes']:>10}  {_tuning_text(layer)}")
    for problem in problems:
        print("inconsistent:", problem)
    return 1 if problems else 0


def _this_cpu():
    """The delegate's SIMD target and channel block here, or None without it."""
    from cocopie_keras import delegate

    try:
        return {"simd_target": delegate.simd_target(),
                "preferred_channel_block": delegate.preferred_channel_block()}
    except (OSError, AttributeError):  # no delegate library built / an older one
        return None


def _tuning_text(layer):
    """The stored kernel tuning per SIMD target, or why it is unusable."""
    from cocopie_keras.converter import kernel_tuning as tuning

    facts = layer["tuning"]
    if "stored_error" in facts:
        return f"ignored ({facts['stored_error']})"
    entries = [tuning.TuningEntry(**entry).describe() for entry in facts["stored"]]
    return "; ".join(entries) if entries else "-"
