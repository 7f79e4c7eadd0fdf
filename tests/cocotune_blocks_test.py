"""Tuning blocks and composite vectors on hand-made subspaces; subspace sampling."""

import numpy as np
import pytest

from cocopie_keras.cocotune import blocks


def expanded(found, network):
    return [symbol for b in found.composites[network] for symbol in found.blocks[b]]


def test_shared_prefix_becomes_one_block():
    configs = [(0.3, 0.5, 0.7, 0.3), (0.3, 0.5, 0.7, 0.5), (0.7, 0.3, 0.7, 0.5)]
    found = blocks.identify_blocks(configs)
    for n, config in enumerate(configs):
        assert expanded(found, n) == [(i, r) for i, r in enumerate(config)]
    prefix = ((0, 0.3), (1, 0.5), (2, 0.7))
    assert found.blocks[found.composites[0][0]] == prefix
    assert found.blocks[found.composites[1][0]] == prefix


def test_child_used_elsewhere_wins_over_parent():
    # (1,.5)(2,.7) also occurs in network 2 without (0,.3): it occurs 3 times,
    # its parent (0,.3)(1,.5)(2,.7) only twice, so the child is the block.
    configs = [(0.3, 0.5, 0.7, 0.3), (0.3, 0.5, 0.7, 0.5), (0.7, 0.5, 0.7, 0.5)]
    found = blocks.identify_blocks(configs)
    assert ((0, 0.3), (1, 0.5), (2, 0.7)) not in found.blocks
    child = found.blocks.index(((1, 0.5), (2, 0.7)))
    assert all(child in composite for composite in found.composites)


def test_rule_in_one_network_only_is_not_a_block():
    # Network 0 repeats nothing with network 1; the shared run is (1,0.5),(2,0.5).
    configs = [(0.3, 0.5, 0.5), (0.7, 0.5, 0.5)]
    found = blocks.identify_blocks(configs)
    assert found.composites[0] == [found.blocks.index(((0, 0.3),)),
                                   found.blocks.index(((1, 0.5), (2, 0.5)))]
    assert found.composites[1][1] == found.composites[0][1]


def test_parent_rule_rejected_when_child_is_more_frequent():
    # (0,.3)(1,.3) occurs in all four networks, its extension with (2,.3) only in two:
    # the longer rule occurs less often than its child, so the child is the block.
    configs = [(0.3, 0.3, 0.3), (0.3, 0.3, 0.3), (0.3, 0.3, 0.7), (0.3, 0.3, 0.5)]
    found = blocks.identify_blocks(configs)
    pair = ((0, 0.3), (1, 0.3))
    assert pair in found.blocks
    assert all(found.blocks[c[0]] == pair for c in found.composites)
    assert ((0, 0.3), (1, 0.3), (2, 0.3)) not in found.blocks


def test_identical_networks_share_one_block():
    found = blocks.identify_blocks([(0.5, 0.7, 0.3)] * 3)
    assert found.blocks == (((0, 0.5), (1, 0.7), (2, 0.3)),)
    assert found.composites == [[0], [0], [0]]


def test_identify_blocks_refuses_ragged_input():
    with pytest.raises(ValueError, match="equal-length"):
        blocks.identify_blocks([(0.3,), (0.3, 0.5)])


def test_sample_subspace_spreads_sizes():
    configs = blocks.sample_subspace(6, 16, seed=3)
    assert len(set(configs)) == 16 and all(len(c) == 6 for c in configs)
    assert all(r in (0.3, 0.5, 0.7) for c in configs for r in c)
    sizes = np.array([np.mean([1 - r for r in c]) for c in configs])
    assert sizes.min() <= 0.35 and sizes.max() >= 0.65   # both ends of the range
    # Near-uniform: no half of the size range holds more than 3/4 of the networks.
    middle = (sizes.min() + sizes.max()) / 2
    assert 4 <= int((sizes < middle).sum()) <= 12
    with pytest.raises(ValueError, match="size <= 9"):
        blocks.sample_subspace(2, 10)
    with pytest.raises(ValueError, match="rate=1.0"):
        blocks.sample_subspace(2, 2, rates=(0.3, 1.0))
