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
