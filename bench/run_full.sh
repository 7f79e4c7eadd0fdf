#!/usr/bin/env bash
# The full benchmark behind bench/README.md: default models × variants × every
# runtime on 2 threads, then VGG-16's convolutions one by one (TVM left out
# there: untuned, it only adds minutes of plain loop nests).
# Run from the repository root after `make install`: bash bench/run_full.sh
set -euo pipefail
COCOPIE=${COCOPIE:-.venv/bin/cocopie}
THREADS=${BENCH_THREADS:-2}
REPEAT=${BENCH_REPEAT:-20}
OUT=${BENCH_OUT:-bench/results}
NOTE=${BENCH_NOTE:-"2-core shared machine: other jobs may have run at the same time; compare rows of one run, not runs"}
mkdir -p "$OUT"
nice -n 10 "$COCOPIE" bench --threads "$THREADS" --repeat "$REPEAT" --max-run-seconds 5 \
  --json "$OUT/full.json" --markdown "$OUT/full.md" --note "$NOTE"
nice -n 10 "$COCOPIE" bench --models vgg16 --per-layer vgg16 --per-layer-only \
  --runtimes cocopie,xnnpack,builtin,ort,mnn,mnn_sparse \
  --threads "$THREADS" --repeat "$REPEAT" --max-run-seconds 5 \
  --json "$OUT/layers_vgg16.json" --markdown "$OUT/layers_vgg16.md" --note "$NOTE"
