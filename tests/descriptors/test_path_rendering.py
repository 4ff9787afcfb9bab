"""A path variable's value in the URL: what needs no encoding is written as it is,
everything else percent-encoded segment by segment; either way the same path as
encoding every value (``quote(segment, safe="")``) gives, and the same refusals."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.descriptors.path_template import PathTemplate, PathTemplateError

SINGLE = PathTemplate.parse("/v1/devices/{device_id}")
MULTI = PathTemplate.parse("/v1/{name=files/**}:download")


def encoded_everywhere(prefix: str, value: str, suffix: str = "") -> str:
    return prefix + "/".join(quote(segment, safe="") for segment in value.split("/")) + suffix


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=st.text(alphabet="abcXYZ019._~-/\\% é:+@?#", min_size=1, max_size=12))
def test_a_single_segment_value_renders_as_if_every_value_were_encoded(value: str) -> None:
    try:
        path = SINGLE.render({"device_id": value})
    except PathTemplateError:
        assert "/" in value or "\\" in value or value in (".", "..")
        return
    assert path == "/v1/devices/" + quote(value, safe="")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=st.text(alphabet="abc019._~-/% é", min_size=1, max_size=12))
def test_a_multi_segment_value_renders_as_if_every_segment_were_encoded(value: str) -> None:
    try:
        path = MULTI.render({"name": "files/" + value})
    except PathTemplateError:
        segments = ("files/" + value).split("/")
        assert "" in segments or any(s in (".", "..") for s in segments)
        return
    assert path == encoded_everywhere("/v1/", "files/" + value, ":download")


@pytest.mark.parametrize("value", [".", "..", ""])
def test_dot_segments_and_empty_values_are_refused(value: str) -> None:
    with pytest.raises(PathTemplateError):
        SINGLE.render({"device_id": value})


@pytest.mark.parametrize("value", ["dev_001", "a.b~c-d", "X9"])
def test_an_id_of_unreserved_characters_is_written_as_it_is(value: str) -> None:
    assert SINGLE.render({"device_id": value}) == f"/v1/devices/{value}"
