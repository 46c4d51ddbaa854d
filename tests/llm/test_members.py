"""The request-body scanner finds top-level members however the body is split and framed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gpm.llm.members import TopLevelMembers

WANTED = {"model": 64, "stream": 8, "messages": 4096}

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
keys = st.sampled_from(["model", "stream", "messages", "options", "mode", 'a"b', "mo\\del"])


def scan(body: bytes, cuts: list[int], wanted: dict[str, int] = WANTED) -> dict[str, Any]:
    scanner = TopLevelMembers(wanted)
    start = 0
    for cut in sorted({c % (len(body) + 1) for c in cuts}):
        scanner.feed(body[start:cut])
        start = cut
    scanner.feed(body[start:])
    return scanner.result()


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(keys, json_value, max_size=6),
    st.lists(st.integers(min_value=0), max_size=8),
    st.booleans(),
)
def test_finds_each_wanted_member_that_fits(
    obj: dict[str, Any], cuts: list[int], spaced: bool
) -> None:
    body = json.dumps(obj, indent=1 if spaced else None, ensure_ascii=False).encode()
    # Every wanted member well within its cap is found; nothing is found that is not there.
    expected = {
        k: v for k, v in obj.items() if k in WANTED and len(json.dumps(v)) * 2 < WANTED[k] // 2
    }
    found = scan(body, cuts)
    assert {k: found[k] for k in expected} == expected
    assert all(k in WANTED and found[k] == obj[k] for k in found)


def test_a_value_over_its_cap_is_left_out_not_cut() -> None:
    body = json.dumps({"messages": ["x" * 10_000], "model": "m"}).encode()
    assert scan(body, list(range(0, len(body), 777))) == {"model": "m"}


def test_nested_members_of_the_same_name_are_not_top_level() -> None:
    body = b'{"options": {"model": "inner", "stream": false}, "stream": true}'
    assert scan(body, [3, 17, 30]) == {"stream": True}


def test_not_an_object_finds_nothing() -> None:
    assert scan(b'["model", "m"]', []) == {}
    assert scan(b"garbage", [2]) == {}
