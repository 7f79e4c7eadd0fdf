"""Prints `make test`'s closing line: how many tests of each kind ran.

    python tools/test_summary.py LOG_DIR STEP [STEP ...]

Each `make test` step's output is kept in ``LOG_DIR/<step>.log``; this reads
the counts each test runner prints there (gtest, pytest, the Bazel, JVM and
wheel checks, the arm64 model runner). A step whose log shows no count is an
error: a step that ran no test must not pass silently.
"""

import os
import re
import sys

GTEST = re.compile(r"^\[  PASSED  \] (\d+) tests?\.", re.M)
PYTEST = re.compile(r"^=*\s*(?:(\d+) failed, )?(\d+) passed(?:, (\d+) skipped)?", re.M)
PLAIN = re.compile(r"^\w[\w-]*: (\d+) passed, (\d+) failed", re.M)
JVM = re.compile(r"^CocopieDelegateTest: (\d+) checks passed", re.M)
ARM64_MODELS = re.compile(r"^OK aarch64 .*?(\d+) comparisons", re.M)


def _sum(pattern, text, group=1):
    return sum(int(m.group(group)) for m in pattern.finditer(text))


def _pytest(text):
    return _sum(PYTEST, text, 2)


def _arm64(text):
    return _sum(GTEST, text) + _sum(ARM64_MODELS, text)


# step -> (kind shown, counter); a step not listed is counted by the plain
# "NAME: N passed, M failed" line it prints.
KINDS = {
    "test-cc": ("C++", lambda text: _sum(GTEST, text)),
    "test-asan": ("runtime/ASan", _pytest),
    "bazel": ("Bazel", lambda text: _sum(PLAIN, text)),
    "test-arm64-quick": ("arm64", _arm64),
    "test-arm64": ("arm64", _arm64),
    "test-android-jvm": ("JVM", lambda text: _sum(JVM, text)),
    "test-wheel": ("wheel", lambda text: _sum(PLAIN, text)),
    "test-python": ("Python", _pytest),
}


def count(step, text):
    kind, counter = KINDS.get(step, (step, lambda t: _sum(PLAIN, t)))
    return kind, counter(text)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    log_dir, steps = argv[0], argv[1:]
    parts, total, missing = [], 0, []
    for step in steps:
        path = os.path.join(log_dir, f"{step}.log")
        text = open(path, errors="replace").read() if os.path.exists(path) else ""
        kind, n = count(step, text)
        if n == 0:
            missing.append(step)
        parts.append(f"{kind} {n}")
        total += n
    if missing:
        print(f"make test: no test count found for {', '.join(missing)} "
              f"(logs in {log_dir})", file=sys.stderr)
        return 1
    print(f"make test: {', '.join(parts)}; {total} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
