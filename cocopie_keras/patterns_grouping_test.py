import numpy as np
import pytest

from cocopie_keras import codesign
from cocopie_keras import patterns


def test_groups_share_one_pattern_per_input_channel():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 6, 40))
    projection = patterns.project_kernel(kernel, group_size=16)
    ids = projection.pattern_ids
    for start in (0, 16, 32):
        group = ids[:, start:start + 16]
        assert np.all(group == group[:, :1])
    assert projection.density == pytest.approx(4 / 9)


def test_group_pattern_maximizes_the_groups_retained_norm():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 2, 16))
    pool = patterns.default_pattern_pool()
    projection = patterns.project_kernel(kernel, pool, group_size=32)
    for ci in range(2):
        norms = [np.sum((kernel[:, :, ci, :] * p[:, :, None]) ** 2) for p in pool]
        assert projection.pattern_ids[ci, 0] == int(np.argmax(norms))


def test_connectivity_removes_whole_group_slices():
    kernel = np.random.default_rng(2).normal(size=(3, 3, 8, 32))
    projection = patterns.project_kernel(kernel, connectivity_rate=0.75, group_size=32)
    removed = projection.pattern_ids == patterns.REMOVED
    assert removed.sum() == 0.75 * removed.size
    for start in (0, 16):
        group = removed[:, start:start + 16]
        assert np.all(group == group[:, :1])
    assert not projection.mask[..., removed].any()


def test_group_of_one_matches_a_per_kernel_reference():
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(3, 3, 4, 5))
    pool = patterns.default_pattern_pool()
    projection = patterns.project_kernel(kernel, pool, connectivity_rate=0.25)
    retained = np.array([[[np.sum((kernel[:, :, i, o] * p) ** 2) for p in pool]
                          for o in range(5)] for i in range(4)])  # (in, out, P)
    expected = np.argmax(retained, axis=2)
    weakest = np.argsort(retained.max(axis=2), axis=None, kind="stable")[:5]
    expected.reshape(-1)[weakest] = patterns.REMOVED
    np.testing.assert_array_equal(projection.pattern_ids, expected)


def test_deprecated_codesign_names_warn_and_project_the_same():
    kernel = np.random.default_rng(8).normal(size=(3, 3, 4, 40))
    with pytest.warns(DeprecationWarning, match="project_kernel"):
        old = codesign.project_kernel_grouped(kernel, connectivity_rate=0.5)
    new = patterns.project_kernel(kernel, connectivity_rate=0.5, group_size=32)
    np.testing.assert_array_equal(old.mask, new.mask)
    depthwise = kernel[:, :, :, :1]
    with pytest.warns(DeprecationWarning, match="project_kernel"):
        old = codesign.project_depthwise_grouped(depthwise)
    new = patterns.project_kernel(depthwise, group_size=16, depthwise=True)
    np.testing.assert_array_equal(old.pattern_ids, new.pattern_ids)


@pytest.mark.parametrize("kwargs, match", [
    ({"connectivity_rate": 1.0}, "connectivity_rate=1.0"),
    ({"group_size": 0}, "group_size=0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        patterns.project_kernel(np.ones((3, 3, 2, 2)), **kwargs)


def test_depthwise_groups_share_one_pattern():
    kernel = np.random.default_rng(4).normal(size=(3, 3, 40, 1))
    projection = patterns.project_kernel(kernel, group_size=16, depthwise=True)
    ids = projection.pattern_ids
    assert ids.shape == (40, 1) and projection.mask.shape == kernel.shape
    for start in (0, 16, 32):
        assert np.all(ids[start:start + 16] == ids[start])
    assert projection.density == pytest.approx(4 / 9)
    pool = projection.pool
    for c in range(40):
        np.testing.assert_array_equal(projection.mask[:, :, c, 0], pool[ids[c, 0]])


def test_depthwise_group_pattern_maximizes_the_groups_retained_norm():
    rng = np.random.default_rng(5)
    kernel = rng.normal(size=(3, 3, 24, 1))
    pool = patterns.default_pattern_pool()
    projection = patterns.project_kernel(kernel, pool, group_size=8, depthwise=True)
    for start in (0, 8, 16):
        group = kernel[:, :, start:start + 8, 0]
        norms = [np.sum((group * p[:, :, None]) ** 2) for p in pool]
        assert projection.pattern_ids[start, 0] == int(np.argmax(norms))


def test_depthwise_connectivity_removes_the_weakest_whole_groups():
    rng = np.random.default_rng(6)
    kernel = rng.normal(size=(3, 3, 32, 1))
    kernel[:, :, 8:16] *= 0.01  # the weakest group of 8
    projection = patterns.project_kernel(kernel, connectivity_rate=0.25, group_size=8,
                                          depthwise=True)
    removed = projection.pattern_ids[:, 0] == patterns.REMOVED
    np.testing.assert_array_equal(np.nonzero(removed)[0], np.arange(8, 16))
    assert not projection.mask[:, :, 8:16].any()
    assert projection.mask[:, :, :8].sum() == 8 * 4


def test_depthwise_group_of_one_is_per_channel_projection():
    kernel = np.random.default_rng(7).normal(size=(3, 3, 9, 1))
    grouped = patterns.project_kernel(kernel, group_size=1, depthwise=True)
    pool = patterns.default_pattern_pool()
    for c in range(9):
        norms = [np.sum((kernel[:, :, c, 0] * p) ** 2) for p in pool]
        assert grouped.pattern_ids[c, 0] == int(np.argmax(norms))


@pytest.mark.parametrize("shape, kwargs, match", [
    ((3, 3, 8, 2), {}, r"shape=\(3, 3, 8, 2\)"),
    ((3, 3, 8), {}, r"shape=\(3, 3, 8\)"),
    ((3, 3, 8, 1), {"connectivity_rate": 1.0}, "connectivity_rate=1.0"),
    ((3, 3, 8, 1), {"group_size": 0}, "group_size=0"),
    ((5, 5, 8, 1), {}, r"shape=\(5, 5, 8, 1\)"),
])
def test_depthwise_bad_arguments(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        patterns.project_kernel(np.ones(shape), depthwise=True, **kwargs)
