"""Kernel patterns and the one-shot pattern / connectivity projection.

A *pattern* is the set of cells a k×k convolution kernel keeps. Pattern
pruning gives every kernel of a layer one pattern from a small pool (the one
that keeps the largest L2 norm of its weights); connectivity pruning then
removes whole kernels, the weakest first. Both are pure numpy functions on a
Keras-layout kernel (``kh, kw, in, out``) so that training-time code (masks,
ADMM projections) and the converter share them.

Example:

>>> pool = default_pattern_pool()
>>> kernel = np.random.default_rng(0).normal(size=(3, 3, 8, 16))
>>> result = project_kernel(kernel, pool, connectivity_rate=0.25)
>>> pruned = kernel * result.mask
"""

import dataclasses

import numpy as np

REMOVED = -1
"""Pattern id of a kernel removed by connectivity pruning."""


def cells_to_mask(cells, kernel_size=(3, 3)):
    """Returns a boolean ``kernel_size`` array with ``cells`` set.

    Args:
        cells: iterable of ``(row, col)`` pairs.
        kernel_size: ``(kh, kw)``.
    """
    mask = np.zeros(kernel_size, dtype=bool)
    for row, col in cells:
        mask[row, col] = True
    return mask


def default_pattern_pool():
    """The 8 four-entry 3×3 patterns used by default.

    Every pattern keeps the centre: four "T" shapes (centre and three of its
    four neighbours) and four 2×2 squares at the centre's corners, the shapes
    pattern-pruning studies found most often in trained CNN kernels.

    Returns:
        bool array of shape ``(8, 3, 3)``.
    """
    centre, up, down, left, right = (1, 1), (0, 1), (2, 1), (1, 0), (1, 2)
    shapes = [
        [centre, up, left, right],
        [centre, down, left, right],
        [centre, up, down, left],
        [centre, up, down, right],
        [centre, up, left, (0, 0)],
        [centre, up, right, (0, 2)],
        [centre, down, left, (2, 0)],
        [centre, down, right, (2, 2)],
    ]
    return np.stack([cells_to_mask(s) for s in shapes])


def validate_pattern_pool(pool):
    """Checks a pattern pool and returns it as a bool ``(P, kh, kw)`` array.

    Raises:
        ValueError: if the pool is empty, not 3-D, has duplicate patterns, or
            its patterns keep different numbers of cells.
    """
    pool = np.asarray(pool)
    if pool.ndim != 3 or pool.shape[0] == 0:
        raise ValueError(
            "Expected a pattern pool of shape (num_patterns, kh, kw). "
            f"Received: shape={pool.shape}"
        )
    pool = pool.astype(bool)
    entries = pool.reshape(len(pool), -1).sum(axis=1)
    if np.any(entries != entries[0]) or entries[0] == 0:
        raise ValueError(
            "Expected every pattern to keep the same, non-zero number of "
            f"cells. Received: cells per pattern={entries.tolist()}"
        )
    if len({p.tobytes() for p in pool}) != len(pool):
        raise ValueError("Expected distinct patterns. Received duplicates.")
    if len(pool) > 254:
        raise ValueError(
            "Expected at most 254 patterns per layer. "
            f"Received: num_patterns={len(pool)}"
        )
    return pool


@dataclasses.dataclass
class KernelProjection:
    """Result of projecting one convolution kernel onto patterns.

    Attributes:
        pattern_ids: int array ``(in, out)``: index into the pool, or
            ``REMOVED`` for kernels dropped by connectivity pruning.
        mask: bool array with the kernel's shape ``(kh, kw, in, out)``.
        pool: the pattern pool used, bool ``(P, kh, kw)``.
    """

    pattern_ids: np.ndarray
    mask: np.ndarray
    pool: np.ndarray

    @property
    def density(self):
        """Fraction of the kernel's weights that are kept."""
        return float(self.mask.mean())


def project_kernel(kernel, pool=None, connectivity_rate=0.0):
    """Projects a conv kernel onto a pattern pool (+ connectivity pruning).

    For every ``(in, out)`` kernel the pattern keeping the largest sum of
    squared weights is chosen; then the fraction ``connectivity_rate`` of the
    layer's kernels with the smallest retained norm is removed.

    Args:
        kernel: array ``(kh, kw, in, out)`` (Keras Conv2D layout).
        pool: bool ``(P, kh, kw)``; default ``default_pattern_pool()``.
        connectivity_rate: fraction of kernels to remove, in ``[0, 1)``.

    Returns:
        A ``KernelProjection``.

    Raises:
        ValueError: on shape mismatches or a rate outside ``[0, 1)``.
    """
    pool = validate_pattern_pool(default_pattern_pool() if pool is None else pool)
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
    kh, kw, cin, cout = kernel.shape
    squares = np.square(kernel.astype(np.float64)).reshape(kh * kw, cin * cout)
    flat_pool = pool.reshape(len(pool), kh * kw).astype(np.float64)
    retained = flat_pool @ squares  # (P, in*out)
    ids = np.argmax(retained, axis=0)
    best = retained[ids, np.arange(ids.size)]

    num_removed = int(np.floor(connectivity_rate * ids.size))
    if num_removed:
        weakest = np.argsort(best, kind="stable")[:num_removed]
        ids[weakest] = REMOVED

    ids = ids.reshape(cin, cout)
    mask = pool[np.where(ids == REMOVED, 0, ids)]  # (in, out, kh, kw)
    mask = np.where((ids == REMOVED)[..., None, None], False, mask)
    return KernelProjection(
        pattern_ids=ids.astype(np.int32),
        mask=np.transpose(mask, (2, 3, 0, 1)),
        pool=pool,
    )


def patterns_from_weights(kernel, entries=4, pool=None):
    """Recovers per-kernel patterns from weights that are already pruned.

    Each kernel's non-zero cells must fit in one pattern: the first pattern of
    ``pool`` containing them, or, without a pool, a pattern built from the
    kernels that keep exactly ``entries`` cells (smaller supports are grown to
    ``entries`` cells, nearest to the centre first). All-zero kernels are
    ``REMOVED``.

    Args:
        kernel: array ``(kh, kw, in, out)``.
        entries: cells each pattern keeps (ignored when ``pool`` is given).
        pool: optional bool ``(P, kh, kw)`` to match supports against.

    Returns:
        A ``KernelProjection``, or ``None`` when some kernel keeps more cells
        than a pattern has, fits no pattern of ``pool``, or the layer would need
        more than 254 patterns.
    """
    kernel = np.asarray(kernel)
    kh, kw, cin, cout = kernel.shape
    cells = kh * kw
    if pool is not None:
        pool = validate_pattern_pool(pool)
        if pool.shape[1:] != (kh, kw):
            return None
        entries = int(pool[0].sum())
    if entries >= cells:
        return None
    support = (kernel != 0).reshape(cells, cin * cout).T  # (kernels, cells)
    if support.sum(axis=1).max(initial=0) > entries:
        return None

    if pool is not None:
        flat_pool = pool.reshape(len(pool), cells)
    else:
        flat_pool = _pool_from_supports(support, entries, (kh, kw))
        if len(flat_pool) > 254:
            return None
    # A kernel fits a pattern when none of its non-zero cells is outside it.
    outside = support.astype(np.int32) @ (~flat_pool).T.astype(np.int32)
    fits = outside == 0
    empty = ~support.any(axis=1)
    if not np.all(fits.any(axis=1) | empty):
        return None
    ids = np.where(empty, REMOVED, np.argmax(fits, axis=1))
    ids = ids.reshape(cin, cout).astype(np.int32)
    pool_out = flat_pool.reshape(-1, kh, kw)
    # The kept mask is the whole pattern, not only the non-zero cells.
    mask = np.where(
        (ids == REMOVED)[None, None],
        False,
        np.transpose(pool_out[np.where(ids == REMOVED, 0, ids)], (2, 3, 0, 1)),
    )
    return KernelProjection(pattern_ids=ids, mask=mask, pool=pool_out)


def _pool_from_supports(support, entries, kernel_size):
    """Distinct patterns covering the given supports (see above)."""
    kh, kw = kernel_size
    rows, cols = np.divmod(np.arange(kh * kw), kw)
    # Cells ordered by distance to the centre: used to grow small supports.
    order = np.argsort(np.hypot(rows - (kh - 1) / 2, cols - (kw - 1) / 2), kind="stable")
    patterns = []
    seen = set()
    counts = support.sum(axis=1)
    for row in np.unique(support[counts == entries], axis=0):
        seen.add(row.tobytes())
        patterns.append(row)
    for row in np.unique(support[(counts > 0) & (counts < entries)], axis=0):
        if any(np.all(p[row]) for p in patterns):
            continue
        grown = row.copy()
        for cell in order:
            if grown.sum() == entries:
                break
            grown[cell] = True
        if grown.tobytes() not in seen:
            seen.add(grown.tobytes())
            patterns.append(grown)
    if not patterns:  # every kernel removed: any single pattern will do
        grown = np.zeros(kh * kw, dtype=bool)
        grown[order[:entries]] = True
        patterns.append(grown)
    return np.stack(patterns).astype(bool)
