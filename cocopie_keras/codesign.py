"""Pattern projection with the delegate's preference built in (co-design).

The delegate's fastest kernel computes 16 or 32 output channels at once and, per
input channel, runs the union of those kernels' patterns. When 32
kernels share one pattern (and are removed together), the union is exactly 4
cells and no zero weight is multiplied. ``project_kernel_grouped`` gives that
structure: for every group of ``group_size`` consecutive output channels and
every input channel it picks the pattern keeping the largest total L2 norm of
the group's kernels, and connectivity pruning removes whole (group, input
channel) slices, weakest first.

Example:

>>> projection = project_kernel_grouped(kernel, connectivity_rate=0.72)
>>> kernel * projection.mask
"""

import numpy as np

from cocopie_keras import patterns as patterns_lib

DELEGATE_CHANNEL_BLOCK = 32
"""Output channels sharing a pattern: a multiple of every target's block."""

DEPTHWISE_CHANNEL_BLOCK = 16
"""Channels the delegate's depthwise kernel packs together (one vector on
AVX-512, whole vectors elsewhere): channels sharing a pattern in such blocks
multiply no zero weight."""


def project_kernel_grouped(kernel, pool=None, connectivity_rate=0.0,
                           group_size=DELEGATE_CHANNEL_BLOCK):
    """Projects a conv kernel so that channel groups share patterns.

    Args:
        kernel: array ``(kh, kw, in, out)`` (Keras layout).
        pool: bool ``(P, kh, kw)``; default ``default_pattern_pool()``.
        connectivity_rate: fraction of (group, input channel) slices to
            remove, in ``[0, 1)``.
        group_size: output channels sharing a pattern; the last group may be
            smaller.

    Returns:
        A ``patterns.KernelProjection`` (per-kernel ids, mask, pool).
    """
    pool = patterns_lib.validate_pattern_pool(
        patterns_lib.default_pattern_pool() if pool is None else pool
    )
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[:2] != pool.shape[1:]:
        raise ValueError(
            f"Expected a kernel of shape ({pool.shape[1]}, {pool.shape[2]}, in, "
            f"out) to match the pattern pool. Received: shape={kernel.shape}"
        )
    if not 0.0 <= connectivity_rate < 1.0:
        raise ValueError(
            "Expected connectivity_rate in [0, 1). "
            f"Received: connectivity_rate={connectivity_rate}"
        )
    if group_size < 1:
        raise ValueError(f"Expected group_size >= 1. Received: group_size={group_size}")
    kh, kw, cin, cout = kernel.shape
    groups = -(-cout // group_size)
    squares = np.square(kernel.astype(np.float64)).reshape(kh * kw, cin, cout)
    padded = np.zeros((kh * kw, cin, groups * group_size))
    padded[:, :, :cout] = squares
    # Energy per (cell, in, group): the group's kernels summed.
    energy = padded.reshape(kh * kw, cin, groups, group_size).sum(axis=3)
    flat_pool = pool.reshape(len(pool), kh * kw).astype(np.float64)
    retained = np.einsum("pc,cig->pig", flat_pool, energy)  # (P, in, groups)
    ids = np.argmax(retained, axis=0)  # (in, groups)
    best = np.take_along_axis(retained, ids[None], axis=0)[0]

    num_removed = int(np.floor(connectivity_rate * ids.size))
    if num_removed:
        weakest = np.argsort(best, axis=None, kind="stable")[:num_removed]
        ids.reshape(-1)[weakest] = patterns_lib.REMOVED

    per_kernel = np.repeat(ids, group_size, axis=1)[:, :cout]  # (in, out)
    removed = per_kernel == patterns_lib.REMOVED
    mask = pool[np.where(removed, 0, per_kernel)]  # (in, out, kh, kw)
    mask[removed] = False
    return patterns_lib.KernelProjection(
        pattern_ids=per_kernel.astype(np.int32),
        mask=np.transpose(mask, (2, 3, 0, 1)),
        pool=pool,
    )


def project_depthwise_grouped(kernel, pool=None, connectivity_rate=0.0,
                              group_size=DEPTHWISE_CHANNEL_BLOCK):
    """Projects a depthwise kernel so that channel groups share patterns.

    The depthwise counterpart of ``project_kernel_grouped``: every group of
    ``group_size`` consecutive channels gets the one pattern keeping the
    largest total L2 norm of the group's kernels, and connectivity pruning
    removes whole groups (their outputs become the bias), weakest first. With
    groups that are a multiple of ``DEPTHWISE_CHANNEL_BLOCK`` the delegate's
    depthwise kernel runs exactly the kept weights.

    Args:
        kernel: array ``(kh, kw, channels, 1)`` (Keras ``DepthwiseConv2D``
            layout, depth multiplier 1).
        pool: bool ``(P, kh, kw)``; default ``default_pattern_pool()``.
        connectivity_rate: fraction of channel groups to remove, in ``[0, 1)``.
        group_size: channels sharing a pattern; the last group may be smaller.

    Returns:
        A ``patterns.KernelProjection`` with ``pattern_ids`` of shape
        ``(channels, 1)`` and ``mask`` of the kernel's shape.

    Example:

    >>> layer = keras.layers.DepthwiseConv2D(3)  # built on 96 channels
    >>> projection = project_depthwise_grouped(layer.kernel.numpy())
    >>> layer.kernel.assign(layer.kernel * projection.mask)
    """
    pool = patterns_lib.validate_pattern_pool(
        patterns_lib.default_pattern_pool() if pool is None else pool
    )
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[3] != 1 or kernel.shape[:2] != pool.shape[1:]:
        raise ValueError(
            f"Expected a depthwise kernel of shape ({pool.shape[1]}, {pool.shape[2]}, "
            f"channels, 1) (depth multiplier 1, the pattern pool's kernel size). "
            f"Received: shape={kernel.shape}"
        )
    # Channels as the output channels of a one-input convolution, so that
    # groups of consecutive channels share a pattern.
    grouped = project_kernel_grouped(
        np.transpose(kernel, (0, 1, 3, 2)), pool=pool,
        connectivity_rate=connectivity_rate, group_size=group_size,
    )
    return patterns_lib.KernelProjection(
        pattern_ids=grouped.pattern_ids.T,
        mask=np.transpose(grouped.mask, (0, 1, 3, 2)),
        pool=grouped.pool,
    )
