# Benchmark harness (`cocopie bench`). The smoke run (`--quick`) is part of the
# Python tests (tests/bench_quick_test.py); these targets are for people.
BENCH_THREADS ?= 2
BENCH_REPEAT  ?= 20

.PHONY: bench-quick bench-full

bench-quick: install
	$(VENV)/bin/cocopie bench --quick --threads $(BENCH_THREADS) --json $(OUT)/bench/quick.json

# The full run behind bench/README.md (about 30 min on 2 cores).
bench-full: install
	bash bench/run_full.sh
