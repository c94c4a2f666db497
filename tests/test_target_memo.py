"""parse_target's memo of parsed targets: same answers, bounded, refusals never kept."""

from __future__ import annotations

import pytest

from gateway import target as target_module
from gateway.errors import BadTarget
from gateway.target import MAX_PARSED, MAX_PARSED_LENGTH, parse_target


@pytest.mark.parametrize("raw", ["/", "/a/./b/../c?q=%2F", "/a;p=1/b", "http://h/x?y"],
                         ids=["root", "dots-and-query", "params", "absolute-form"])
def test_a_repeated_target_gets_the_same_answer(raw: str) -> None:
    """The second parse of a target returns the first one's result (kept, not redone)."""
    first = parse_target(raw)
    again = parse_target(raw)
    assert again is first
    assert again == target_module._parse(raw)


@pytest.mark.parametrize("raw", ["/a/%2e%2e/b", "/a%2Fb", "/a#frag"],
                         ids=["encoded-dots", "encoded-slash", "fragment"])
def test_a_refused_target_is_refused_every_time(raw: str) -> None:
    """A refusal is never remembered as a target: each parse refuses it again."""
    for _ in range(2):
        with pytest.raises(BadTarget):
            parse_target(raw)
    assert target_module._PARSED.get(raw) is None


def test_the_memo_stays_bounded_and_skips_long_targets() -> None:
    """Distinct client-chosen targets never grow the memo beyond MAX_PARSED entries."""
    for i in range(MAX_PARSED + 10):
        parse_target(f"/bounded/{i}")
    assert len(target_module._PARSED) <= MAX_PARSED
    long_raw = "/" + "x" * MAX_PARSED_LENGTH
    assert parse_target(long_raw).path == long_raw
    assert target_module._PARSED.get(long_raw) is None
