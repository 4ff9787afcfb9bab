"""Fuzz target: path templates (adapter/transcoding/path_template.py).

Invariants:
- parsing any text raises nothing but PathTemplateError;
- rendering any values into a template (the protos' own, and generated ones)
  raises nothing but PathTemplateError, and the path stays under the template's
  literal prefix as httpx sends it and after one percent-decoding.
"""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from adapter.descriptors.loader import load_service_specs
from adapter.descriptors.path_template import PathTemplate, PathTemplateError

from .counting import tried
from .invariants import assert_stays_under_prefix
from .profiles import budget
from .strategies import ADVERSARIAL_TEXT

PROTO_TEMPLATES = sorted({m.template.text for s in load_service_specs() for m in s.methods})

_LITERAL = st.from_regex(r"[a-z0-9][a-z0-9._~-]{0,8}", fullmatch=True)
_PATTERN = st.one_of(
    st.just(""),
    st.just("=*"),
    st.just("=**"),
    st.lists(st.one_of(_LITERAL, st.just("*")), min_size=1, max_size=3).map(lambda p: "=" + "/".join(p)),
    st.lists(st.one_of(_LITERAL, st.just("*")), min_size=1, max_size=2).map(
        lambda p: "=" + "/".join([*p, "**"])
    ),
)


@st.composite
def _generated_template(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_LITERAL, min_size=1, max_size=3))
    names = iter(["a", "b", "c.d", "e"])
    for _ in range(draw(st.integers(0, 2))):
        parts.append("{" + next(names) + draw(_PATTERN) + "}")
        parts.extend(draw(st.lists(_LITERAL, max_size=1)))
    verb = draw(st.one_of(st.just(""), _LITERAL.map(lambda v: ":" + v)))
    return "/" + "/".join(parts) + verb


_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(ADVERSARIAL_TEXT),
    st.lists(st.sampled_from(["a", ".", "..", "", "%2e", "x y", "\\", "é"]), min_size=1, max_size=4).map(
        "/".join
    ),
)


@budget(500)
@given(st.one_of(st.text(max_size=60), _generated_template(), st.sampled_from(PROTO_TEMPLATES)))
def test_parse_raises_only_path_template_error(text: str) -> None:
    tried("path_template.parse")
    with contextlib.suppress(PathTemplateError):
        PathTemplate.parse(text)


@budget(500)
@given(
    st.one_of(st.sampled_from(PROTO_TEMPLATES), _generated_template()),
    st.lists(_VALUES, min_size=4, max_size=4),
)
def test_rendered_path_stays_under_the_literal_prefix(text: str, values: list[str]) -> None:
    tried("path_template.render")
    template = PathTemplate.parse(text)
    bound = {v.dotted: value for v, value in zip(template.variables, values, strict=False)}
    try:
        path = template.render(bound)
    except PathTemplateError:
        return
    assert_stays_under_prefix(template, path)
