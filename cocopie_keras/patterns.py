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


def check_entries(kernel_size, entries):
    """Raises ``ValueError`` unless a ``kernel_size`` kernel can keep
    ``entries`` cells as a proper pattern (``1 <= entries < kh*kw``)."""
    kh, kw = (int(v) for v in kernel_size)
    if kh < 1 or kw < 1:
        raise ValueError(f"Expected a positive kernel size. Received: kernel_size={(kh, kw)}")
    if not 1 <= int(entries) < kh * kw:
        raise ValueError(
            f"Expected a kernel with more cells than pattern entries. Received: "
            f"kernel_size={(kh, kw)} ({kh * kw} cells), entries={entries}"
        )


def _cells_by_distance(kernel_size):
    """Flat cell indices ordered by distance to the kernel centre (stable)."""
    kh, kw = kernel_size
    rows, cols = np.divmod(np.arange(kh * kw), kw)
    return np.argsort(np.hypot(rows - (kh - 1) / 2, cols - (kw - 1) / 2), kind="stable")


def fixed_pattern_pool(kernel_size=(3, 3), entries=4, num_patterns=8):
    """A data-independent pool of compact patterns for any ``kh×kw`` kernel.

    For 3×3 kernels with 4 entries and 8 patterns this is
    ``default_pattern_pool()``. Otherwise the patterns are the most compact
    (smallest summed distance to the centre) sets of ``entries`` cells that
    contain the centre cell.

    Args:
        kernel_size: ``(kh, kw)``.
        entries: cells each pattern keeps.
        num_patterns: pool size ``K``.

    Returns:
        bool array ``(K', kh, kw)`` with ``K' <= num_patterns`` (fewer only
        when the kernel has fewer distinct patterns).

    Example:

    >>> fixed_pattern_pool((5, 5), entries=9, num_patterns=4).shape
    (4, 5, 5)
    """
    kernel_size = tuple(int(v) for v in kernel_size)
    check_entries(kernel_size, entries)
    if num_patterns < 1:
        raise ValueError(f"Expected num_patterns >= 1. Received: num_patterns={num_patterns}")
    if kernel_size == (3, 3) and entries == 4 and num_patterns == 8:
        return default_pattern_pool()
    import itertools
    import math

    kh, kw = kernel_size
    order = _cells_by_distance(kernel_size)
    rows, cols = np.divmod(np.arange(kh * kw), kw)
    distance = np.hypot(rows - (kh - 1) / 2, cols - (kw - 1) / 2)
    centre, others = order[0], order[1:]
    # Widen the candidate neighbourhood only as far as needed for K shapes,
    # so the enumeration stays small for large kernels.
    reach = entries - 1
    while reach < len(others) and math.comb(reach, entries - 1) < num_patterns:
        reach += 1
    candidates = []
    for combo in itertools.combinations(others[:reach], entries - 1):
        cells = (centre,) + combo
        candidates.append((float(distance[list(cells)].sum()), sorted(cells)))
    candidates.sort(key=lambda item: (item[0], item[1]))
    pool = np.zeros((min(num_patterns, len(candidates)), kh * kw), dtype=bool)
    for index, (_, cells) in enumerate(candidates[: len(pool)]):
        pool[index, cells] = True
    return pool.reshape(-1, kh, kw)


def design_pattern_pool(kernels, num_patterns=8, entries=4):
    """Builds a pool from trained kernels, PatDNN style.

    Every kernel votes for the shape made of its centre cell and its
    ``entries - 1`` strongest other cells (by magnitude); the ``num_patterns``
    most frequent shapes form the pool. Ties are broken deterministically.

    Args:
        kernels: one array ``(kh, kw, in, out)`` or a list of them, all with
            the same ``kh, kw``.
        num_patterns: pool size ``K``.
        entries: cells each pattern keeps.

    Returns:
        bool array ``(K', kh, kw)``; when the kernels vote for fewer than ``K``
        shapes the pool is completed from ``fixed_pattern_pool``.

    Example:

    >>> pool = design_pattern_pool([layer.kernel.numpy() for layer in convs])
    """
    if isinstance(kernels, np.ndarray) and kernels.ndim == 4:
        kernels = [kernels]
    kernels = [np.asarray(k) for k in kernels]
    if not kernels or any(k.ndim != 4 for k in kernels):
        raise ValueError(
            "Expected one or more kernels of shape (kh, kw, in, out). "
            f"Received: shapes={[k.shape for k in kernels]}"
        )
    kernel_size = kernels[0].shape[:2]
    if any(k.shape[:2] != kernel_size for k in kernels):
        raise ValueError(
            "Expected kernels of one size. "
            f"Received: sizes={sorted({k.shape[:2] for k in kernels})}"
        )
    check_entries(kernel_size, entries)
    kh, kw = kernel_size
    centre = _cells_by_distance(kernel_size)[0]
    votes = []
    for kernel in kernels:
        strength = np.abs(kernel.astype(np.float64)).reshape(kh * kw, -1).T
        strength[:, centre] = np.inf  # the centre is always kept
        # Stable sort on the negated strength: ties go to the lower cell index.
        top = np.argsort(-strength, axis=1, kind="stable")[:, :entries]
        shapes = np.zeros(strength.shape, dtype=bool)
        np.put_along_axis(shapes, top, True, axis=1)
        votes.append(shapes)
    shapes, counts = np.unique(np.concatenate(votes), axis=0, return_counts=True)
    ranked = shapes[np.lexsort((np.arange(len(counts)), -counts))][:num_patterns]
    pool = list(ranked)
    if len(pool) < num_patterns:
        seen = {p.tobytes() for p in pool}
        for extra in fixed_pattern_pool(kernel_size, entries, num_patterns).reshape(-1, kh * kw):
            if len(pool) == num_patterns:
                break
            if extra.tobytes() not in seen:
                seen.add(extra.tobytes())
                pool.append(extra)
    return np.stack(pool).reshape(-1, kh, kw).astype(bool)


def assign_patterns(kernel, pool):
    """Pattern projection alone: the best pattern of ``pool`` per kernel.

    Args:
        kernel: array ``(kh, kw, in, out)``.
        pool: bool ``(P, kh, kw)``.

    Returns:
        ``(ids, retained)``: int ``(in*out,)`` pattern index per kernel and the
        float64 squared L2 norm that pattern keeps.
    """
    kh, kw = kernel.shape[:2]
    squares = np.square(kernel.astype(np.float64)).reshape(kh * kw, -1)
    retained = pool.reshape(len(pool), kh * kw).astype(np.float64) @ squares
    ids = np.argmax(retained, axis=0)
    return ids, retained[ids, np.arange(ids.size)]


def connectivity_keep(scores, connectivity_rate):
    """Connectivity projection alone: which kernels survive.

    Removes ``floor(rate * n)`` of the ``n`` kernels, those with the smallest
    ``scores`` (stable: on ties the lower index is removed first).

    Returns:
        bool ``(n,)``, True for kept kernels.
    """
    check_rate(connectivity_rate)
    keep = np.ones(scores.size, dtype=bool)
    num_removed = int(np.floor(connectivity_rate * scores.size))
    if num_removed:
        keep[np.argsort(scores, kind="stable")[:num_removed]] = False
    return keep


def check_rate(rate, name="connectivity_rate"):
    """Raises ``ValueError`` unless ``rate`` is a number in ``[0, 1)``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
            or not 0.0 <= rate < 1.0:
        raise ValueError(f"Expected {name} in [0, 1). Received: {name}={rate!r}")


def check_group_size(group_size):
    """Raises ``ValueError`` unless ``group_size`` is a positive int."""
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) \
            or group_size < 1:
        raise ValueError(
            f"Expected group_size to be a positive int. Received: group_size={group_size!r}")


def project_kernel(kernel, pool=None, connectivity_rate=0.0, pattern=True, *,
                   group_size=1, depthwise=False):
    """Projects a conv kernel onto a pattern pool (+ connectivity pruning).

    The one projection training, the benchmark and the tools call. Per input
    channel, each group of ``group_size`` consecutive output channels takes
    the pattern keeping the largest sum of squared weights of its kernels;
    connectivity pruning then removes the fraction ``connectivity_rate`` of
    the (input channel, group) slices with the smallest retained norm.
    ``group_size=1``: free per-kernel patterns (the paper's); 32: what the
    delegate's block kernel runs without a wasted multiply. ``pattern=False``
    applies connectivity pruning alone (the pool is one all-ones pattern).

    Args:
        kernel: array ``(kh, kw, in, out)`` (Keras Conv2D layout), or with
            ``depthwise=True`` the DepthwiseConv2D layout
            ``(kh, kw, channels, 1)``, whose channels are grouped (a removed
            group's outputs become the bias).
        pool: bool ``(P, kh, kw)``; default ``default_pattern_pool()``.
        connectivity_rate: fraction of slices to remove, in ``[0, 1)``.
        pattern: apply the pattern projection.
        group_size: output channels (depthwise: channels) sharing a pattern;
            the last group may be smaller.
        depthwise: ``kernel`` is a depthwise kernel of depth multiplier 1.

    Returns:
        A ``KernelProjection`` (``pattern_ids``: the kernel's last two dimensions).

    Raises:
        ValueError: on shape mismatches, a rate outside ``[0, 1)`` or a bad group size.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(
            f"Expected a kernel of shape (kh, kw, in, out). Received: shape={kernel.shape}")
    if not pattern:
        pool = np.ones((1,) + kernel.shape[:2], dtype=bool)
    pool = validate_pattern_pool(default_pattern_pool() if pool is None else pool)
    if kernel.shape[:2] != pool.shape[1:] or (depthwise and kernel.shape[3] != 1):
        layout = "channels, 1" if depthwise else "in, out"
        raise ValueError(
            f"Expected a kernel of shape ({pool.shape[1]}, {pool.shape[2]}, {layout}) to "
            f"match the pattern pool. Received: shape={kernel.shape}")
    check_rate(connectivity_rate)
    check_group_size(group_size)
    if depthwise:  # channels as the outputs of a one-input convolution
        kernel = np.transpose(kernel, (0, 1, 3, 2))
    ids = _grouped_pattern_ids(kernel, pool, connectivity_rate, group_size)
    removed = ids == REMOVED
    mask = pool[np.where(removed, 0, ids)]  # (in, out, kh, kw)
    mask[removed] = False
    mask = np.transpose(mask, (2, 3, 0, 1))
    if depthwise:
        ids, mask = ids.T, np.transpose(mask, (0, 1, 3, 2))
    return KernelProjection(pattern_ids=ids.astype(np.int32), mask=mask, pool=pool)


def _grouped_pattern_ids(kernel, pool, connectivity_rate, group_size):
    """Per-kernel pattern ids ``(in, out)`` of the grouped projection above."""
    kh, kw, cin, cout = kernel.shape
    groups = -(-cout // group_size)
    squares = np.square(kernel.astype(np.float64)).reshape(kh * kw, cin, cout)
    padded = np.zeros((kh * kw, cin, groups * group_size))
    padded[:, :, :cout] = squares  # energy per (cell, in, group): its kernels summed
    energy = padded.reshape(kh * kw, cin, groups, group_size).sum(axis=3)
    flat_pool = pool.reshape(len(pool), kh * kw).astype(np.float64)
    retained = np.einsum("pc,cig->pig", flat_pool, energy)  # (P, in, groups)
    ids = np.argmax(retained, axis=0)  # (in, groups)
    best = np.take_along_axis(retained, ids[None], axis=0)[0]
    ids.reshape(-1)[~connectivity_keep(best.reshape(-1), connectivity_rate)] = REMOVED
    return np.repeat(ids, group_size, axis=1)[:, :cout]


def dense_to_blocks(kernel, block_size):
    """Views a Dense kernel ``(in, out)`` as conv-layout blocks.

    Block ``(i, j)`` is ``kernel[i*bh:(i+1)*bh, j*bw:(j+1)*bw]``; the result
    has shape ``(bh, bw, in/bh, out/bw)`` so that ``project_kernel`` applies
    to Dense layers unchanged.

    Raises:
        ValueError: if the kernel is not 2-D or not divisible into blocks.
    """
    kernel = np.asarray(kernel)
    bh, bw = (int(v) for v in block_size)
    if kernel.ndim != 2 or bh < 1 or bw < 1 or kernel.shape[0] % bh or kernel.shape[1] % bw:
        raise ValueError(
            "Expected a Dense kernel (in, out) divisible into blocks of "
            f"{(bh, bw)}. Received: shape={kernel.shape}, block_size={(bh, bw)}"
        )
    rows, cols = kernel.shape
    return kernel.reshape(rows // bh, bh, cols // bw, bw).transpose(1, 3, 0, 2)


def blocks_to_dense(blocks):
    """Inverse of ``dense_to_blocks``."""
    bh, bw, nr, nc = blocks.shape
    return blocks.transpose(2, 0, 3, 1).reshape(nr * bh, nc * bw)


def project_dense(kernel, pool, block_size, connectivity_rate=0.0):
    """Pattern + connectivity projection of a Dense kernel by blocks.

    Args:
        kernel: array ``(in, out)``.
        pool: bool ``(P, bh, bw)`` patterns for one block.
        block_size: ``(bh, bw)``; must divide ``in`` and ``out``.
        connectivity_rate: fraction of blocks removed entirely.

    Returns:
        A ``KernelProjection`` whose ``mask`` has the Dense kernel's shape and
        whose ``pattern_ids`` are per block ``(in/bh, out/bw)``.
    """
    blocks = dense_to_blocks(kernel, block_size)
    projection = project_kernel(blocks, pool, connectivity_rate)
    projection.mask = blocks_to_dense(projection.mask)
    return projection


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
