import itertools

import numpy as np
import pytest

from cocopie_keras import patterns


def test_default_pool_has_eight_distinct_four_entry_patterns_with_centre():
    pool = patterns.default_pattern_pool()
    assert pool.shape == (8, 3, 3)
    assert np.all(pool.reshape(8, -1).sum(axis=1) == 4)
    assert np.all(pool[:, 1, 1])
    assert len({p.tobytes() for p in pool}) == 8


def test_projection_keeps_the_pattern_with_largest_norm():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 5, 4))
    pool = patterns.default_pattern_pool()
    result = patterns.project_kernel(kernel, pool)
    for ci, co in itertools.product(range(5), range(4)):
        norms = [np.sum((kernel[:, :, ci, co] * p) ** 2) for p in pool]
        assert result.pattern_ids[ci, co] == int(np.argmax(norms))
        np.testing.assert_array_equal(
            result.mask[:, :, ci, co], pool[result.pattern_ids[ci, co]]
        )
    assert result.density == pytest.approx(4 / 9)


def test_connectivity_removes_the_weakest_kernels():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 8, 8))
    kernel[:, :, 0, :] *= 1e-3  # input channel 0 is the weakest everywhere
    result = patterns.project_kernel(kernel, connectivity_rate=0.125)
    removed = result.pattern_ids == patterns.REMOVED
    assert removed.sum() == 8
    assert np.all(removed[0])
    assert not result.mask[:, :, 0, :].any()


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rejects_rates_outside_unit_interval(rate):
    with pytest.raises(ValueError, match="connectivity_rate"):
        patterns.project_kernel(np.ones((3, 3, 2, 2)), connectivity_rate=rate)


def test_rejects_kernel_not_matching_pool():
    with pytest.raises(ValueError, match="Received: shape=\\(5, 5, 2, 2\\)"):
        patterns.project_kernel(np.ones((5, 5, 2, 2)))


def test_rejects_bad_pools():
    with pytest.raises(ValueError, match="same, non-zero number"):
        patterns.validate_pattern_pool(np.array([np.eye(3), np.ones((3, 3))]))
    with pytest.raises(ValueError, match="distinct"):
        pool = patterns.default_pattern_pool()
        patterns.validate_pattern_pool(np.concatenate([pool, pool[:1]]))
    with pytest.raises(ValueError, match="num_patterns, kh, kw"):
        patterns.validate_pattern_pool(np.ones((3, 3)))


def test_patterns_recovered_from_pruned_weights():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 6, 7))
    projection = patterns.project_kernel(kernel, connectivity_rate=0.3)
    pruned = kernel * projection.mask
    with_pool = patterns.patterns_from_weights(pruned, pool=projection.pool)
    np.testing.assert_array_equal(with_pool.pattern_ids, projection.pattern_ids)
    derived = patterns.patterns_from_weights(pruned)
    assert derived is not None
    # Whatever table is derived, it keeps every non-zero weight.
    assert np.all(derived.mask | (pruned == 0))
    assert np.all((derived.pattern_ids == patterns.REMOVED) ==
                  (projection.pattern_ids == patterns.REMOVED))


def test_small_supports_are_grown_to_full_patterns():
    kernel = np.zeros((3, 3, 1, 2))
    kernel[1, 1, 0, 0] = 1.0  # a single kept weight
    kernel[0, 0, 0, 1] = kernel[0, 1, 0, 1] = 2.0
    derived = patterns.patterns_from_weights(kernel)
    assert np.all(derived.pool.reshape(len(derived.pool), -1).sum(axis=1) == 4)
    assert np.all(derived.mask | (kernel == 0))


def test_dense_weights_are_not_patterns():
    kernel = np.ones((3, 3, 2, 2))
    assert patterns.patterns_from_weights(kernel) is None
    pool = patterns.default_pattern_pool()
    not_in_pool = np.zeros((3, 3, 1, 1))
    not_in_pool[0, 0] = not_in_pool[2, 2] = 1.0  # opposite corners
    assert patterns.patterns_from_weights(not_in_pool, pool=pool) is None


def _support_matches_pattern(kernel, projection):
    """Every kept kernel keeps exactly its pattern's cells; removed ones none."""
    pruned = kernel * projection.mask
    cin, cout = projection.pattern_ids.shape
    for ci, co in itertools.product(range(cin), range(cout)):
        pattern_id = projection.pattern_ids[ci, co]
        support = pruned[:, :, ci, co] != 0
        if pattern_id == patterns.REMOVED:
            assert not support.any()
        else:
            np.testing.assert_array_equal(support, projection.pool[pattern_id])


@pytest.mark.parametrize("size, entries, rate", [((3, 3), 4, 0.72), ((5, 5), 6, 0.3),
                                                 ((3, 5), 2, 0.5)])
def test_projection_is_exact_for_k_by_k_kernels(size, entries, rate):
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=size + (6, 5)) + 0.1  # no exact zeros
    pool = patterns.fixed_pattern_pool(size, entries, num_patterns=5)
    projection = patterns.project_kernel(kernel, pool, connectivity_rate=rate)
    _support_matches_pattern(kernel, projection)
    removed = np.sum(projection.pattern_ids == patterns.REMOVED)
    assert removed == int(np.floor(rate * 30))
    assert projection.density == pytest.approx(entries / np.prod(size) * (30 - removed) / 30)


def test_fixed_pool_generalizes_and_keeps_the_centre():
    pool = patterns.fixed_pattern_pool((5, 5), entries=9, num_patterns=6)
    assert pool.shape == (6, 5, 5)
    assert np.all(pool.reshape(6, -1).sum(axis=1) == 9)
    assert np.all(pool[:, 2, 2])
    assert len({p.tobytes() for p in pool}) == 6
    np.testing.assert_array_equal(patterns.fixed_pattern_pool(), patterns.default_pattern_pool())


def test_designed_pool_ranks_the_most_frequent_shapes_first():
    rng = np.random.default_rng(4)
    pool = patterns.default_pattern_pool()
    kernel = np.zeros((3, 3, 10, 10))
    # 60 kernels vote pattern 3, 30 pattern 6, 10 pattern 1 (+ small noise elsewhere).
    ids = np.array([3] * 60 + [6] * 30 + [1] * 10).reshape(10, 10)
    for ci, co in itertools.product(range(10), range(10)):
        kernel[:, :, ci, co] = pool[ids[ci, co]] * (1 + rng.random((3, 3)))
    kernel += 0.01 * rng.random(kernel.shape)
    designed = patterns.design_pattern_pool(kernel, num_patterns=3)
    for rank, expected in enumerate([3, 6, 1]):
        np.testing.assert_array_equal(designed[rank], pool[expected])
    # Fewer voted shapes than asked for: completed from the fixed pool.
    assert len(patterns.design_pattern_pool(kernel, num_patterns=8)) == 8


def test_connectivity_alone_and_pattern_alone_compose():
    rng = np.random.default_rng(5)
    kernel = rng.normal(size=(3, 3, 4, 4)) + 0.1
    only_connectivity = patterns.project_kernel(kernel, connectivity_rate=0.5, pattern=False)
    assert only_connectivity.density == pytest.approx(0.5)
    kept = only_connectivity.pattern_ids != patterns.REMOVED
    norms = np.sum(kernel ** 2, axis=(0, 1))
    assert norms[kept].min() >= norms[~kept].max()
    both = patterns.project_kernel(kernel, connectivity_rate=0.5)
    assert both.density == pytest.approx(4 / 9 * 0.5)


def test_dense_projection_by_blocks_is_exact():
    rng = np.random.default_rng(6)
    kernel = rng.normal(size=(8, 12)) + 0.1
    pool = patterns.fixed_pattern_pool((2, 2), entries=2, num_patterns=4)
    projection = patterns.project_dense(kernel, pool, (2, 2), connectivity_rate=0.25)
    assert projection.mask.shape == (8, 12)
    assert projection.pattern_ids.shape == (4, 6)
    blocks = patterns.dense_to_blocks(kernel * projection.mask, (2, 2))
    np.testing.assert_array_equal(patterns.blocks_to_dense(blocks), kernel * projection.mask)
    assert np.sum(projection.pattern_ids == patterns.REMOVED) == 6
    for r, c in itertools.product(range(4), range(6)):
        block = projection.mask[2 * r:2 * r + 2, 2 * c:2 * c + 2]
        pattern_id = projection.pattern_ids[r, c]
        expected = np.zeros((2, 2), bool) if pattern_id < 0 else pool[pattern_id]
        np.testing.assert_array_equal(block, expected)
    with pytest.raises(ValueError, match="divisible into blocks"):
        patterns.project_dense(np.ones((7, 12)), pool, (2, 2))


def test_kernels_with_too_few_cells_are_refused():
    with pytest.raises(ValueError, match="more cells than pattern entries.*entries=4"):
        patterns.fixed_pattern_pool((1, 1), entries=4)
    with pytest.raises(ValueError, match="entries=9"):
        patterns.design_pattern_pool(np.ones((3, 3, 2, 2)), entries=9)
