"""Sequitur on known sequences and by fuzzing its two grammar properties."""

import random

import pytest

from cocopie_keras.cocotune.sequitur import Grammar, RuleRef, expand


@pytest.mark.parametrize("text,grammar", [
    ("abcabdabcabd", "S -> R4 R4 ; R1 -> a b ; R4 -> R1 c R1 d"),
    ("aaaa", "S -> R1 R1 ; R1 -> a a"),
    ("aaaaa", "S -> R1 R1 a ; R1 -> a a"),
    ("aaaaaaaa", "S -> R2 R2 ; R1 -> a a ; R2 -> R1 R1"),
    ("abab", "S -> R1 R1 ; R1 -> a b"),
    ("abc", "S -> a b c"),
    ("", "S -> "),
])
def test_known_grammars(text, grammar):
    built = Grammar.from_sequence(text)
    assert built.format() == grammar
    assert "".join(expand(built.rules())) == text


def check_properties(sequence, rules):
    assert expand(rules) == list(sequence)
    uses = {}
    for body in rules.values():
        for item in body:
            if isinstance(item, RuleRef):
                uses[item.rule_id] = uses.get(item.rule_id, 0) + 1
    for rule_id, body in rules.items():
        if rule_id:
            assert uses.get(rule_id, 0) >= 2, f"R{rule_id} used {uses.get(rule_id, 0)} time(s)"
            assert len(body) >= 2
    seen = {}
    for rule_id, body in rules.items():
        for i in range(len(body) - 1):
            digram = (body[i], body[i + 1])
            if digram in seen:
                other_rule, other_i = seen[digram]
                # Only the overlapping "x x x" case may repeat a digram.
                assert other_rule == rule_id and other_i == i - 1 and body[i] == body[i + 1], \
                    f"digram {digram} repeated"
            else:
                seen[digram] = (rule_id, i)


def test_fuzz_grammar_properties():
    rng = random.Random(1234)
    for trial in range(1500):
        alphabet = "abcd"[:rng.randint(1, 4)]
        sequence = [rng.choice(alphabet) for _ in range(rng.randint(0, 80))]
        check_properties(sequence, Grammar.from_sequence(sequence).rules())


def test_fuzz_tuple_symbols():
    rng = random.Random(7)
    for trial in range(200):
        sequence = [(rng.randint(0, 3), rng.choice((0.3, 0.5))) for _ in range(rng.randint(0, 40))]
        check_properties(sequence, Grammar.from_sequence(sequence).rules())


def test_property_check_can_fail():
    with pytest.raises(AssertionError):
        check_properties("abab", {0: list("abab")})           # repeated digram
    with pytest.raises(AssertionError):
        check_properties("ab", {0: [RuleRef(1)], 1: list("ab")})  # rule used once
