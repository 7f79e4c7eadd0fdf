"""This machine's physical limits: peak fp32 FLOP/s and memory read bandwidth.

Three measurements, each for a given thread count:

* ``sgemm_gflops``: a large single-precision matrix product through numpy's
  tuned BLAS (OpenBLAS in the numpy wheel), the FLOP rate a real kernel can
  reach;
* ``fma_loop_gflops``: a tight loop of independent vector FMAs, compiled here
  with ``-march=native`` (the arithmetic ceiling of the cores);
* ``read_gbs``: streaming reads of an array far larger than the caches (the
  floor for a memory-bound layer: bytes it must read / this rate).

``peak_gflops`` is the larger of the two FLOP figures; every benchmark row is
also reported as a fraction of it.

Example:

>>> limits = measure_peak(threads=2)
>>> limits["peak_gflops"], limits["read_gbs"]
"""

import os
import shutil
import subprocess
import sys
import tempfile

# Our own microbenchmark. Each thread keeps 12 independent vector
# accumulators (enough to cover FMA latency × issue width on current x86 and
# ARM cores) so the loop is bound by FMA throughput alone.
_C_SOURCE = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float vec __attribute__((vector_size(64)));
enum { ACCUMULATORS = 12, LANES = 16 };

static double now(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct { long iterations; const float* data; size_t count; float sink; } job;

static void* fma_job(void* arg) {
  job* j = (job*)arg;
  vec scale, shift, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
  for (int l = 0; l < LANES; ++l) {
    scale[l] = 0.9999999f; shift[l] = 1e-7f;
    a0[l] = l; a1[l] = l + 1; a2[l] = l + 2; a3[l] = l + 3; a4[l] = l + 4; a5[l] = l + 5;
    a6[l] = l + 6; a7[l] = l + 7; a8[l] = l + 8; a9[l] = l + 9; a10[l] = l + 10; a11[l] = l + 11;
  }
  /* Named accumulators, not an array: they must live in registers. */
  for (long i = 0; i < j->iterations; ++i) {
    a0 = a0 * scale + shift; a1 = a1 * scale + shift; a2 = a2 * scale + shift;
    a3 = a3 * scale + shift; a4 = a4 * scale + shift; a5 = a5 * scale + shift;
    a6 = a6 * scale + shift; a7 = a7 * scale + shift; a8 = a8 * scale + shift;
    a9 = a9 * scale + shift; a10 = a10 * scale + shift; a11 = a11 * scale + shift;
  }
  vec s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  float total = 0;
  for (int l = 0; l < LANES; ++l) total += s[l];
  j->sink = total;
  return NULL;
}

static void* read_job(void* arg) {
  job* j = (job*)arg;
  const vec* v = (const vec*)j->data;
  size_t n = j->count / LANES;
  vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  for (long r = 0; r < j->iterations; ++r)
    for (size_t i = 0; i + 3 < n; i += 4) {
      s0 += v[i]; s1 += v[i + 1]; s2 += v[i + 2]; s3 += v[i + 3];
    }
  vec s = s0 + s1 + s2 + s3;
  float total = 0;
  for (int l = 0; l < LANES; ++l) total += s[l];
  j->sink = total;
  return NULL;
}

static double run(void* (*fn)(void*), int threads, job* jobs) {
  pthread_t ids[256];
  double start = now();
  for (int t = 0; t < threads; ++t) pthread_create(&ids[t], NULL, fn, &jobs[t]);
  for (int t = 0; t < threads; ++t) pthread_join(ids[t], NULL);
  return now() - start;
}

int main(int argc, char** argv) {
  if (argc != 4) { fprintf(stderr, "usage: peak fma|read THREADS SECONDS\n"); return 2; }
  int threads = atoi(argv[2]);
  double seconds = atof(argv[3]);
  if (threads < 1 || threads > 256) return 2;
  job jobs[256];
  memset(jobs, 0, sizeof jobs);
  /* Peak figures are maxima: grow one trial until it lasts a tenth of the
     budget, then keep the best of the trials that fit in the budget (other
     processes on a shared machine only ever slow a trial down). */
  double best = 0, spent = 0;
  if (strcmp(argv[1], "fma") == 0) {
    long iterations = 1 << 16;
    while (spent < seconds) {
      for (int t = 0; t < threads; ++t) jobs[t].iterations = iterations;
      double elapsed = run(fma_job, threads, jobs);
      double flops = 2.0 * ACCUMULATORS * LANES * (double)iterations * threads;
      if (elapsed < seconds / 10) { iterations *= 2; continue; }
      spent += elapsed;
      if (flops / elapsed / 1e9 > best) best = flops / elapsed / 1e9;
    }
    printf("%.3f\n", best);
    return 0;
  }
  if (strcmp(argv[1], "read") == 0) {
    size_t per_thread = (size_t)64 << 20;  /* 256 MiB of floats per thread */
    for (int t = 0; t < threads; ++t) {
      float* data = aligned_alloc(64, per_thread * sizeof(float));
      if (!data) return 3;
      for (size_t i = 0; i < per_thread; ++i) data[i] = (float)(i & 7);
      jobs[t].data = data; jobs[t].count = per_thread; jobs[t].iterations = 1;
    }
    run(read_job, threads, jobs);  /* touch once: page faults out of the timing */
    while (spent < seconds) {
      double elapsed = run(read_job, threads, jobs);
      double bytes = (double)per_thread * sizeof(float) * threads;
      spent += elapsed;
      if (bytes / elapsed / 1e9 > best) best = bytes / elapsed / 1e9;
    }
    printf("%.3f\n", best);
    return 0;
  }
  return 2;
}
"""

_SGEMM_SCRIPT = r"""
import sys, time
import numpy as np
n, seconds = int(sys.argv[1]), float(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32)
b = rng.random((n, n), dtype=np.float32)
a @ b
best, spent = 0.0, 0.0
while spent < seconds or best == 0.0:
    start = time.perf_counter()
    a @ b
    elapsed = time.perf_counter() - start
    spent += elapsed
    best = max(best, 2.0 * n ** 3 / elapsed / 1e9)
print(f"{best:.3f}")
"""


def _thread_env(threads):
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def sgemm_gflops(threads, n=4096, seconds=1.0):
    """Best GFLOP/s of an ``n``×``n`` float32 numpy matmul on ``threads`` BLAS threads."""
    done = subprocess.run([sys.executable, "-c", _SGEMM_SCRIPT, str(n), str(seconds)],
                          capture_output=True, text=True, env=_thread_env(threads),
                          timeout=600, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def _compile_probe(directory):
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    source = os.path.join(directory, "peak.c")
    binary = os.path.join(directory, "peak")
    with open(source, "w") as f:
        f.write(_C_SOURCE)
    subprocess.run([compiler, "-O2", "-march=native", "-ffp-contract=fast", "-pthread",
                    source, "-o", binary], check=True, capture_output=True, timeout=120)
    return binary


def probe(kind, threads, seconds=0.5):
    """GFLOP/s (``kind="fma"``) or read GB/s (``kind="read"``) from the compiled probe."""
    with tempfile.TemporaryDirectory(prefix="cocopie_peak_") as directory:
        binary = _compile_probe(directory)
        done = subprocess.run([binary, kind, str(threads), str(seconds)],
                              capture_output=True, text=True, timeout=600, check=True)
    return float(done.stdout.strip())


def measure_peak(threads, quick=False):
    """Peak fp32 FLOP/s and read bandwidth for ``threads`` threads.

    A measurement that cannot run here (no compiler, say) is ``None`` with
    the reason under ``errors``; ``peak_gflops`` uses what was measured.

    Raises:
        ValueError: if ``threads`` < 1.
    """
    if threads < 1:
        raise ValueError(f"Expected threads >= 1. Received: threads={threads}")
    seconds = 0.5 if quick else 2.0
    result = {"threads": threads, "sgemm_n": 2048 if quick else 4096, "errors": {}}
    steps = {
        "sgemm_gflops": lambda: sgemm_gflops(threads, result["sgemm_n"], seconds),
        "fma_loop_gflops": lambda: probe("fma", threads, seconds),
        "read_gbs": lambda: probe("read", threads, seconds),
    }
    for key, step in steps.items():
        try:
            result[key] = step()
        except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
            result[key] = None
            result["errors"][key] = f"{type(error).__name__}: {error}"[:300]
    flops = [v for v in (result["sgemm_gflops"], result["fma_loop_gflops"]) if v]
    result["peak_gflops"] = max(flops) if flops else None
    return result
