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
