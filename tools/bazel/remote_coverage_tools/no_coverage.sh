#!/bin/sh
# Placeholder for Bazel's coverage tools in offline builds: does nothing.
echo "note: coverage tools are not available in this offline Bazel setup" >&2
exit 0
