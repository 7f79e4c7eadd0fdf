"""Promising subspaces and the tuning blocks Sequitur finds in them.

A configuration is one pruning rate per module. Written as a sequence of
symbols ``(module_index, rate)``, the configurations of a subspace share runs
of symbols; the runs worth pre-training once ("tuning blocks") are found with
Sequitur over all configurations joined by delimiters, then two heuristics:

1. a rule is a block only if it occurs in more than one network;
2. a rule is preferred over its sub-rules only if it occurs as often as its
   most frequent descendant (occurrences counted through parent rules), since
   otherwise its pieces are reused more widely than it is.

Modules left uncovered become single-module blocks, so every network is a
sequence of blocks: its *composite vector*.

Example:

```python
configs = [(0.3, 0.5, 0.5), (0.3, 0.5, 0.7), (0.7, 0.5, 0.5)]
found = identify_blocks(configs)
print(found.blocks)       # ((0, 0.3), (1, 0.5)) ... each block a tuple of symbols
print(found.composites)   # per network: indices into found.blocks
```
"""

import dataclasses

import numpy as np

from cocopie_keras.cocotune import sequitur

DEFAULT_RATES = (0.3, 0.5, 0.7)


class _Delimiter:
    """A separator between networks; each one is unique, so no rule spans two networks."""

    __slots__ = ()

    def __repr__(self):
        return "#"


def sample_subspace(num_modules, size, rates=DEFAULT_RATES, size_of=None, seed=0):
    """Samples ``size`` distinct configurations with sizes spread near-uniformly.

    Candidates are drawn at random; the kept ones are picked to cover the range
    of model sizes evenly (one per size bin, filled round-robin).

    Args:
        num_modules: number of prunable modules.
        size: number of configurations wanted.
        rates: the rate set Γ.
        size_of: function config -> model size; default: mean kept fraction.
        seed: random seed.

    Returns:
        A list of tuples of rates, sorted by size (smallest first).
    """
    if num_modules < 1 or size < 1:
        raise ValueError(f"Expected num_modules >= 1 and size >= 1. "
                         f"Received: num_modules={num_modules}, size={size}")
    rates = tuple(float(r) for r in rates)
    for rate in rates:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Expected rates in [0, 1). Received: rate={rate}")
    total = len(set(rates)) ** num_modules
    if size > total:
        raise ValueError(f"Expected size <= {total} distinct configurations. Received: size={size}")
    size_of = size_of or (lambda config: float(np.mean([1.0 - r for r in config])))
    rng = np.random.default_rng(seed)
    pool = {tuple(rng.choice(rates, num_modules)) for _ in range(max(20 * size, 200))}
    if len(pool) < size:  # small spaces: enumerate instead
        import itertools
        pool = set(itertools.product(sorted(set(rates)), repeat=num_modules))
    pool = sorted(pool, key=lambda c: (size_of(c), c))
    sizes = np.array([size_of(c) for c in pool])
    edges = np.linspace(sizes.min(), sizes.max() + 1e-9, size + 1)
    bins = [[c for c, s in zip(pool, sizes) if lo <= s < hi] for lo, hi in zip(edges, edges[1:])]
    for members in bins:
        rng.shuffle(members)
    chosen = []
    while len(chosen) < size:
        for members in bins:
            if members and len(chosen) < size:
                chosen.append(tuple(float(r) for r in members.pop()))
    return sorted(chosen, key=lambda c: (size_of(c), c))


@dataclasses.dataclass
class BlockSet:
    """Tuning blocks of a subspace.

    Attributes:
        blocks: tuple of blocks; a block is a tuple of ``(module_index, rate)``
            over consecutive modules.
        composites: per configuration, the list of block indices covering it
            in module order.
        grammar: the Sequitur grammar text (for inspection).
    """

    blocks: tuple
    composites: list
    grammar: str


def _symbols(config):
    return [(i, float(rate)) for i, rate in enumerate(config)]


def _split_networks(items):
    """The start rule's items, cut at the delimiters: one list per network."""
    segments, current = [], []
    for item in items:
        if isinstance(item, _Delimiter):
            segments.append(current)
            current = []
        else:
            current.append(item)
    segments.append(current)
    return segments


def _rule_usage(rules, segments):
    """Occurrences of each rule in the full derivation, and the networks it is in."""
    frequency = {0: 1}
    networks = {rule_id: set() for rule_id in rules}

    def visit(rule_id, network):
        networks[rule_id].add(network)
        for item in rules[rule_id]:
            if isinstance(item, sequitur.RuleRef):
                frequency[item.rule_id] = frequency.get(item.rule_id, 0) + 1
                visit(item.rule_id, network)

    for network, segment in enumerate(segments):
        for item in segment:
            if isinstance(item, sequitur.RuleRef):
                frequency[item.rule_id] = frequency.get(item.rule_id, 0) + 1
                visit(item.rule_id, network)
    return frequency, networks


def identify_blocks(configs):
    """Finds the tuning blocks and composite vectors of a subspace.

    Args:
        configs: list of configurations (equal-length sequences of rates).

    Returns:
        A `BlockSet`.
    """
    configs = [tuple(float(r) for r in c) for c in configs]
    if not configs or len({len(c) for c in configs}) != 1 or not configs[0]:
        raise ValueError("Expected a non-empty list of equal-length, non-empty configurations. "
                         f"Received: lengths={sorted({len(c) for c in configs})}")
    grammar = sequitur.Grammar()
    for index, config in enumerate(configs):
        if index:
            grammar.append(_Delimiter())
        for symbol in _symbols(config):
            grammar.append(symbol)
    rules = grammar.rules()
    segments = _split_networks(rules[0])
    frequency, networks = _rule_usage(rules, segments)

    descendant_max = {}

    def max_descendant(rule_id):
        if rule_id not in descendant_max:
            best = 0
            for item in rules[rule_id]:
                if isinstance(item, sequitur.RuleRef):
                    best = max(best, frequency[item.rule_id], max_descendant(item.rule_id))
            descendant_max[rule_id] = best
        return descendant_max[rule_id]

    blocks, index_of = [], {}

    def block_id(symbols):
        symbols = tuple(symbols)
        if symbols not in index_of:
            index_of[symbols] = len(blocks)
            blocks.append(symbols)
        return index_of[symbols]

    def decompose(items, out):
        for item in items:
            if not isinstance(item, sequitur.RuleRef):
                out.append(block_id([item]))
                continue
            rule_id = item.rule_id
            if len(networks[rule_id]) > 1 and frequency[rule_id] >= max_descendant(rule_id):
                out.append(block_id(sequitur.expand(rules, rule_id)))
            else:
                decompose(rules[rule_id], out)

    composites = []
    for segment in segments:
        out = []
        decompose(segment, out)
        composites.append(out)
    return BlockSet(tuple(blocks), composites, grammar.format())
