import numpy as np
import pytest

from cocopie_keras import codesign
from cocopie_keras import patterns


def test_groups_share_one_pattern_per_input_channel():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 6, 40))
    projection = codesign.project_kernel_grouped(kernel, group_size=16)
    ids = projection.pattern_ids
    for start in (0, 16, 32):
        group = ids[:, start:start + 16]
        assert np.all(group == group[:, :1])
    assert projection.density == pytest.approx(4 / 9)


def test_group_pattern_maximizes_the_groups_retained_norm():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 2, 16))
    pool = patterns.default_pattern_pool()
    projection = codesign.project_kernel_grouped(kernel, pool)
    for ci in range(2):
        norms = [np.sum((kernel[:, :, ci, :] * p[:, :, None]) ** 2) for p in pool]
        assert projection.pattern_ids[ci, 0] == int(np.argmax(norms))


def test_connectivity_removes_whole_group_slices():
    kernel = np.random.default_rng(2).normal(size=(3, 3, 8, 32))
    projection = codesign.project_kernel_grouped(kernel, connectivity_rate=0.75)
    removed = projection.pattern_ids == patterns.REMOVED
    assert removed.sum() == 0.75 * removed.size
    for start in (0, 16):
        group = removed[:, start:start + 16]
        assert np.all(group == group[:, :1])
    assert not projection.mask[..., removed].any()


def test_group_of_one_is_plain_pattern_projection():
    kernel = np.random.default_rng(3).normal(size=(3, 3, 4, 5))
    grouped = codesign.project_kernel_grouped(kernel, group_size=1)
    plain = patterns.project_kernel(kernel)
    np.testing.assert_array_equal(grouped.pattern_ids, plain.pattern_ids)


@pytest.mark.parametrize("kwargs, match", [
    ({"connectivity_rate": 1.0}, "connectivity_rate=1.0"),
    ({"group_size": 0}, "group_size=0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        codesign.project_kernel_grouped(np.ones((3, 3, 2, 2)), **kwargs)


def test_depthwise_groups_share_one_pattern():
    kernel = np.random.default_rng(4).normal(size=(3, 3, 40, 1))
    projection = codesign.project_depthwise_grouped(kernel, group_size=16)
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
    projection = codesign.project_depthwise_grouped(kernel, pool, group_size=8)
    for start in (0, 8, 16):
        group = kernel[:, :, start:start + 8, 0]
        norms = [np.sum((group * p[:, :, None]) ** 2) for p in pool]
        assert projection.pattern_ids[start, 0] == int(np.argmax(norms))


def test_depthwise_connectivity_removes_the_weakest_whole_groups():
    rng = np.random.default_rng(6)
    kernel = rng.normal(size=(3, 3, 32, 1))
    kernel[:, :, 8:16] *= 0.01  # the weakest group of 8
    projection = codesign.project_depthwise_grouped(kernel, connectivity_rate=0.25,
                                                    group_size=8)
    removed = projection.pattern_ids[:, 0] == patterns.REMOVED
    np.testing.assert_array_equal(np.nonzero(removed)[0], np.arange(8, 16))
    assert not projection.mask[:, :, 8:16].any()
    assert projection.mask[:, :, :8].sum() == 8 * 4


def test_depthwise_group_of_one_is_per_channel_projection():
    kernel = np.random.default_rng(7).normal(size=(3, 3, 9, 1))
    grouped = codesign.project_depthwise_grouped(kernel, group_size=1)
    plain = patterns.project_kernel(kernel)  # (in=9, out=1): one kernel per channel
    np.testing.assert_array_equal(grouped.pattern_ids, plain.pattern_ids)
    np.testing.assert_array_equal(grouped.mask, plain.mask)


@pytest.mark.parametrize("shape, kwargs, match", [
    ((3, 3, 8, 2), {}, r"shape=\(3, 3, 8, 2\)"),
    ((3, 3, 8), {}, r"shape=\(3, 3, 8\)"),
    ((3, 3, 8, 1), {"connectivity_rate": 1.0}, "connectivity_rate=1.0"),
    ((3, 3, 8, 1), {"group_size": 0}, "group_size=0"),
    ((5, 5, 8, 1), {}, r"shape=\(5, 5, 8, 1\)"),
])
def test_depthwise_bad_arguments(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        codesign.project_depthwise_grouped(np.ones(shape), **kwargs)
