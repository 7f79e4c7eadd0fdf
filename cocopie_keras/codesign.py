"""Deprecated: the grouped projection is ``patterns.project_kernel(group_size=...)``.

The delegate's block kernel computes 16 or 32 output channels at once and, per
input channel, runs the union of those kernels' patterns; channel groups that
share one pattern (and are removed together) give it no wasted multiply.
``patterns.project_kernel`` takes ``group_size`` (and ``depthwise``) itself,
so training, the benchmark and the tools share one projection. The names
below stay for one release.
"""

import warnings

from cocopie_keras import patterns as patterns_lib

DELEGATE_CHANNEL_BLOCK = 32
"""Output channels sharing a pattern: a multiple of every target's block."""

DEPTHWISE_CHANNEL_BLOCK = 16
"""Channels the delegate's depthwise kernel packs together (one vector on
AVX-512, whole vectors elsewhere)."""


def _deprecated(old):
    warnings.warn(f"cocopie_keras.codesign.{old} is deprecated; use "
                  "cocopie_keras.patterns.project_kernel(..., group_size=...)",
                  DeprecationWarning, stacklevel=3)


def project_kernel_grouped(kernel, pool=None, connectivity_rate=0.0,
                           group_size=DELEGATE_CHANNEL_BLOCK):
    """Deprecated alias of ``patterns.project_kernel(kernel, pool, rate, group_size=...)``."""
    _deprecated("project_kernel_grouped")
    return patterns_lib.project_kernel(kernel, pool, connectivity_rate, group_size=group_size)


def project_depthwise_grouped(kernel, pool=None, connectivity_rate=0.0,
                              group_size=DEPTHWISE_CHANNEL_BLOCK):
    """Deprecated alias of ``patterns.project_kernel(..., group_size=..., depthwise=True)``."""
    _deprecated("project_depthwise_grouped")
    return patterns_lib.project_kernel(kernel, pool, connectivity_rate, group_size=group_size,
                                       depthwise=True)
