"""Sequitur: linear-time inference of a hierarchical grammar from a sequence.

Sequitur (Nevill-Manning & Witten, 1997) reads a sequence one symbol at a time
and keeps two properties of its grammar:

* digram uniqueness: no pair of adjacent symbols occurs twice (non-overlapping)
  in the grammar; a repeat becomes a rule;
* rule utility: every rule is used at least twice; a rule used once is inlined.

Symbols may be any hashable values. `Grammar.rules()` gives each rule's body as
a list whose items are terminals or `RuleRef` (a reference to another rule).

Example:

```python
grammar = Grammar.from_sequence("abcabdabcabd")
print(grammar.format())   # S -> R1 R1 ; R1 -> R2 c R2 d ; R2 -> a b
```
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class RuleRef:
    """A nonterminal in a rule body: the id of the rule it stands for."""

    rule_id: int

    def __repr__(self):
        return f"R{self.rule_id}"


class _Symbol:
    __slots__ = ("value", "rule", "prev", "next", "owner")

    def __init__(self, value=None, rule=None, owner=None):
        self.value = value    # terminal value (when rule is None)
        self.rule = rule      # _Rule for a nonterminal, or the owning rule for a guard
        self.owner = owner    # set on guards only
        self.prev = self.next = None

    @property
    def is_guard(self):
        return self.owner is not None

    def key(self):
        return ("r", id(self.rule)) if self.rule is not None else ("t", self.value)


class _Rule:
    __slots__ = ("guard", "uses", "rule_id")

    def __init__(self, rule_id):
        self.rule_id = rule_id
        self.uses = 0
        self.guard = _Symbol(owner=self)
        self.guard.prev = self.guard.next = self.guard

    def first(self):
        return self.guard.next

    def last(self):
        return self.guard.prev

    def body(self):
        symbol = self.first()
        while not symbol.is_guard:
            yield symbol
            symbol = symbol.next


class Grammar:
    """A Sequitur grammar, built incrementally with `append`."""

    def __init__(self):
        self._next_id = 1
        self._digrams = {}
        self.start = _Rule(0)

    @classmethod
    def from_sequence(cls, sequence):
        """The grammar of a whole sequence."""
        grammar = cls()
        for value in sequence:
            grammar.append(value)
        return grammar

    # -- linked-list primitives ------------------------------------------------
    def _digram_key(self, symbol):
        return (symbol.key(), symbol.next.key())

    def _forget_digram(self, symbol):
        if symbol.is_guard or symbol.next is None or symbol.next.is_guard:
            return
        key = self._digram_key(symbol)
        if self._digrams.get(key) is symbol:
            del self._digrams[key]

    def _join(self, left, right):
        if left.next is not None:
            self._forget_digram(left)
            # In a run "x x x" only one of the overlapping digrams is indexed;
            # removing one must re-index the other.
            if (right.prev is not None and right.next is not None and not right.is_guard
                    and not right.next.is_guard and not right.prev.is_guard
                    and right.key() == right.prev.key() == right.next.key()):
                self._digrams[self._digram_key(right)] = right
            if (left.prev is not None and left.next is not None and not left.is_guard
                    and not left.prev.is_guard and not left.next.is_guard
                    and left.key() == left.next.key() == left.prev.key()):
                self._digrams[self._digram_key(left.prev)] = left.prev
        left.next = right
        right.prev = left

    def _insert_after(self, left, symbol):
        self._join(symbol, left.next)
        self._join(left, symbol)

    def _new_symbol_like(self, symbol):
        if symbol.rule is not None:
            symbol.rule.uses += 1
            return _Symbol(rule=symbol.rule)
        return _Symbol(value=symbol.value)

    def _delete(self, symbol):
        self._join(symbol.prev, symbol.next)
        self._forget_digram(symbol)
        if symbol.rule is not None:
            symbol.rule.uses -= 1

    # -- Sequitur ---------------------------------------------------------------
    def append(self, value):
        """Appends one terminal to the start rule and restores both properties."""
        symbol = _Symbol(value=value)
        self._insert_after(self.start.last(), symbol)
        self._check(symbol.prev)

    def _check(self, symbol):
        """Indexes the digram at ``symbol``; on a repeat, makes/uses a rule."""
        if symbol.is_guard or symbol.next.is_guard:
            return False
        key = self._digram_key(symbol)
        found = self._digrams.get(key)
        if found is None:
            self._digrams[key] = symbol
            return False
        if found.next is not symbol and found is not symbol:  # not overlapping
            self._match(symbol, found)
        return True

    def _substitute(self, symbol, rule):
        """Replaces ``symbol`` and its successor by a reference to ``rule``."""
        left = symbol.prev
        self._delete(left.next)
        self._delete(left.next)
        rule.uses += 1
        self._insert_after(left, _Symbol(rule=rule))
        if not self._check(left):
            self._check(left.next)

    def _match(self, new, old):
        if old.prev.is_guard and old.next.next.is_guard:
            rule = old.prev.owner  # the repeat is a whole rule already
            self._substitute(new, rule)
        else:
            rule = _Rule(self._next_id)
            self._next_id += 1
            self._insert_after(rule.last(), self._new_symbol_like(new))
            self._insert_after(rule.last(), self._new_symbol_like(new.next))
            self._substitute(old, rule)
            self._substitute(new, rule)
            self._digrams[self._digram_key(rule.first())] = rule.first()
        first = rule.first()
        if first.rule is not None and first.rule.uses == 1:
            self._expand(first)

    def _expand(self, symbol):
        """Inlines the body of a rule that is used only once."""
        left, right = symbol.prev, symbol.next
        inner = symbol.rule
        first, last = inner.first(), inner.last()
        self._forget_digram(symbol)
        symbol.prev = symbol.next = None
        self._join(left, first)
        self._join(last, right)
        self._digrams[self._digram_key(last)] = last

    # -- reading ----------------------------------------------------------------
    def rules(self):
        """Rule id -> body (terminals and `RuleRef`); id 0 is the start rule."""
        found, stack, seen = {}, [self.start], set()
        while stack:
            rule = stack.pop()
            if rule.rule_id in seen:
                continue
            seen.add(rule.rule_id)
            body = []
            for symbol in rule.body():
                if symbol.rule is not None:
                    body.append(RuleRef(symbol.rule.rule_id))
                    stack.append(symbol.rule)
                else:
                    body.append(symbol.value)
            found[rule.rule_id] = body
        return dict(sorted(found.items()))

    def format(self):
        """Human-readable ``S -> ... ; R1 -> ...`` text."""
        parts = []
        for rule_id, body in self.rules().items():
            head = "S" if rule_id == 0 else f"R{rule_id}"
            parts.append(f"{head} -> " + " ".join(repr(s) if isinstance(s, RuleRef) else str(s)
                                                 for s in body))
        return " ; ".join(parts)


def expand(rules, rule_id=0):
    """The terminal sequence a rule derives."""
    out = []
    stack = [iter(rules[rule_id])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, RuleRef):
            stack.append(iter(rules[item.rule_id]))
        else:
            out.append(item)
    return out


_END = object()
