"""``call_value``: read-only to mypy, a hashable slots dataclass at run time."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from adapter.call_values import call_value
from adapter.transcoding.request_binding import BoundRequest
from adapter.upstream.messages import UpstreamRequest, UpstreamResponse
from adapter.upstream.transport import Answer

CALL_VALUES = (UpstreamRequest, UpstreamResponse, Answer, BoundRequest)


@pytest.mark.parametrize("cls", CALL_VALUES, ids=lambda c: c.__name__)
def test_the_call_values_are_slots_dataclasses_hashed_like_frozen_ones(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert "__slots__" in cls.__dict__ and "__dict__" not in dir(cls)
    assert cls.__hash__ is not None  # (a non-frozen dataclass with eq has none)


def test_equal_values_hash_alike_and_replace_makes_a_new_one() -> None:
    a = UpstreamRequest("GET", "/v1/devices/d1", "GET /v1/devices/{id}", query=(("a", "1"),))
    b = UpstreamRequest("GET", "/v1/devices/d1", "GET /v1/devices/{id}", query=(("a", "1"),))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    c = dataclasses.replace(a, headers=(("x-extra", "1"),))
    assert c != a and a.headers == () and c.headers == (("x-extra", "1"),)
    with pytest.raises(AttributeError):
        a.nope = 1  # type: ignore[attr-defined]  # slots: no attribute outside the fields


def test_fields_left_out_of_comparison_are_left_out_of_the_hash() -> None:
    kept = UpstreamResponse(status=200, headers={}, body=b"{}", decoded={})
    plain = UpstreamResponse(status=200, headers={}, body=b"{}")
    assert kept == plain
    with pytest.raises(TypeError):  # its ``extra`` dict is compared, so hashed: as when frozen
        hash(plain)


def test_a_new_call_values_defaults_and_factories_behave_as_dataclass_fields() -> None:
    @call_value
    class Point:
        x: int
        tags: list[str] = dataclasses.field(default_factory=list)

    p, q = Point(1), Point(1)
    assert p == q and p.tags == [] and p.tags is not q.tags
    assert Point.__hash__ is not None


def test_mypy_refuses_an_assignment_to_a_field(tmp_path: Path) -> None:
    # The half of frozen=True that is kept by the type checker: `make check` runs
    # mypy --strict over adapter/, so a store into a call value does not pass it.
    source = tmp_path / "assigns.py"
    source.write_text(
        textwrap.dedent(
            """
            from adapter.call_values import call_value
            from adapter.upstream.messages import UpstreamResponse

            @call_value
            class Local:
                x: int

            def f(r: UpstreamResponse, v: Local) -> None:
                r.status = 500
                v.x = 2
            """
        )
    )
    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", "--cache-dir=/dev/null", str(source)]
    )
    assert status == 1, out + err
    assert out.count("is read-only") == 2, out
    assert 'Property "status" defined in "UpstreamResponse" is read-only' in out, out
