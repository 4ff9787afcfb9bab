"""JSON nesting depth, the limit checked before any Struct is built: objects and
arrays counted, leaves not, subclasses of dict and list looked into like them."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.transcoding.json_limits import check_json_depth, json_depth
from adapter.transcoding.json_values import MalformedPayloadError


class Subdict(dict[str, Any]):
    pass


class Sublist(list[Any]):
    pass


def nested(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


DEPTHS = [
    (1, 0),
    ("text", 0),
    (None, 0),
    ({}, 1),
    ([], 1),
    ({"a": 1, "b": "x", "c": None, "d": True, "e": 1.5}, 1),  # leaves only
    ({"a": 1, "b": [1, 2]}, 2),
    ({"a": {"b": {"c": [{}]}}}, 5),
    ([1, [2, [3, [4]]], "x"], 4),
    ({"a": Subdict(b=Subdict(c=1))}, 3),  # subclasses are containers too
    ([Sublist([Sublist([])])], 3),
    (nested(200), 200),
]


@pytest.mark.parametrize(("value", "depth"), DEPTHS)
def test_depth_counts_containers_not_leaves(value: Any, depth: int) -> None:
    assert json_depth(value) == depth


def test_counting_stops_past_the_limit() -> None:
    assert json_depth(nested(10_000), stop_after=64) == 65


def test_deeper_than_the_limit_is_refused_naming_the_field() -> None:
    check_json_depth(nested(64), 64, "metadata")
    with pytest.raises(MalformedPayloadError) as caught:
        check_json_depth(nested(65), 64, "metadata")
    assert caught.value.path == "metadata"
