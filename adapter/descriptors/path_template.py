r"""``google.api.http`` path templates: parsing once, rendering per call.

Grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

Rendering follows the rule's encoding: a single-segment variable (``{id}``,
``{id=*}``) is percent-encoded entirely, so ``a/b`` becomes ``a%2Fb`` and cannot
escape its segment; a multi-segment variable (``{name=shelves/*/books/**}``)
keeps its ``/`` separators and encodes each segment.

A value with a ``.`` or ``..`` segment is refused, and so is an empty segment in
a multi-segment variable: servers and proxies collapse dot segments (RFC 3986
5.2.4), so ``{device_id}`` = ``..`` would turn ``/v1/devices/..`` into ``/v1``
and reach another resource. Segments are split at ``/`` and ``\`` even inside a
single-segment value, where they are percent-encoded: some proxies decode
``%2F`` (and treat ``\`` as ``/``) before normalising. With these rules a
rendered path stays under its template's literal prefix, also after one
percent-decoding (tests/fuzz/test_fuzz_path_templates.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote

__all__ = ["PathTemplate", "PathTemplateError", "PathVariable"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_LITERAL = re.compile(r"[A-Za-z0-9\-._~!$&'()+,;=@%]+\Z")


class PathTemplateError(ValueError):
    """A template is malformed (start-up) or a value does not fit it (per call).

    ``field`` names the request field at fault (dotted) when a value is the cause.
    """

    def __init__(self, message: str, *, field: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.problem = problem or message


#: Segments that address another resource once a server normalises the path.
_DOT_SEGMENTS = frozenset({".", ".."})
_SEPARATORS = re.compile(r"[/\\]")
#: RFC 3986's unreserved characters: a value made of them alone is its own encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")


@dataclass(frozen=True, slots=True)
class PathVariable:
    """A ``{field.path=pattern}`` part of a template."""

    field_path: tuple[str, ...]
    #: The segments the value must match; ``("*",)`` for a plain ``{var}``.
    pattern: tuple[str, ...]
    #: ``pattern`` as a regular expression over the raw value.
    regex: re.Pattern[str]

    @property
    def dotted(self) -> str:
        return ".".join(self.field_path)

    @property
    def multi_segment(self) -> bool:
        return len(self.pattern) > 1 or "**" in self.pattern


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed template: literal strings and variables, in order."""

    text: str
    parts: tuple[str | PathVariable, ...]
    verb: str

    @property
    def variables(self) -> tuple[PathVariable, ...]:
        return tuple(p for p in self.parts if isinstance(p, PathVariable))

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        if not text.startswith("/"):
            raise PathTemplateError(f"{text!r}: a template starts with '/'")
        body, verb = _split_verb(text)
        parts: list[str | PathVariable] = []
        for segment in _split_segments(body[1:], text):
            if segment.startswith("{"):
                parts.append(_parse_variable(segment, text))
            elif segment in ("*", "**"):
                raise PathTemplateError(f"{text!r}: wildcards outside a variable are not bound to a field")
            elif _LITERAL.match(segment):
                parts.append(segment)
            else:
                raise PathTemplateError(f"{text!r}: bad literal segment {segment!r}")
        seen = [v.dotted for v in parts if isinstance(v, PathVariable)]
        if len(seen) != len(set(seen)):
            raise PathTemplateError(f"{text!r}: a field is bound twice")
        return cls(text=text, parts=tuple(parts), verb=verb)

    def render(self, values: dict[str, str]) -> str:
        """The URL path with each variable's value (by dotted field path) encoded."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part.dotted, "")
            if not value:
                _refuse(part, "is required (it is part of the URL path)")
            if not part.regex.match(value):
                _refuse(part, f"does not match the path pattern {'/'.join(part.pattern)!r}")
            if _UNRESERVED.fullmatch(value) is not None and value not in _DOT_SEGMENTS:
                out.append(value)  # nothing to encode, no separator (most ids): as below, cheaper
                continue
            segments = value.split("/") if part.multi_segment else [value]
            if any(s in _DOT_SEGMENTS for s in _SEPARATORS.split(value)) or "" in segments:
                _refuse(part, "must not have an empty, '.' or '..' segment (it is part of the URL path)")
            out.append("/".join(quote(s, safe="") for s in segments))
        path = "/" + "/".join(out)
        return f"{path}:{self.verb}" if self.verb else path


def _refuse(part: PathVariable, problem: str) -> NoReturn:
    # The value itself stays out of the message: it is the caller's, maybe large.
    raise PathTemplateError(f"{part.dotted} {problem}", field=part.dotted, problem=problem)


def _split_verb(text: str) -> tuple[str, str]:
    # A ':' after the last '}' and the last '/' starts the verb.
    last_close = text.rfind("}")
    colon = text.find(":", max(last_close, text.rfind("/")))
    if colon == -1:
        return text, ""
    verb = text[colon + 1 :]
    if not _LITERAL.match(verb):
        raise PathTemplateError(f"{text!r}: bad verb {verb!r}")
    return text[:colon], verb


def _split_segments(body: str, text: str) -> list[str]:
    """Splits on '/' outside braces."""
    segments: list[str] = []
    depth = 0
    current = ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise PathTemplateError(f"{text!r}: unbalanced '}}'")
        if ch == "/" and depth == 0:
            segments.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise PathTemplateError(f"{text!r}: unbalanced '{{'")
    segments.append(current)
    if any(not s for s in segments):
        raise PathTemplateError(f"{text!r}: empty segment")
    return segments


def _parse_variable(segment: str, text: str) -> PathVariable:
    if not segment.endswith("}"):
        raise PathTemplateError(f"{text!r}: a variable must be a whole segment: {segment!r}")
    inner = segment[1:-1]
    name, _, pattern_text = inner.partition("=")
    if not _IDENT.match(name):
        raise PathTemplateError(f"{text!r}: bad field path {name!r}")
    pattern = tuple(pattern_text.split("/")) if pattern_text else ("*",)
    for seg in pattern:
        if seg not in ("*", "**") and not _LITERAL.match(seg):
            raise PathTemplateError(f"{text!r}: bad pattern segment {seg!r}")
    if "**" in pattern[:-1]:
        raise PathTemplateError(f"{text!r}: '**' must be the last segment of a pattern")
    # A lone '*' takes any value: it is percent-encoded into one segment.
    regex = (
        ".+"
        if pattern == ("*",)
        else "/".join("[^/]+" if s == "*" else ".+" if s == "**" else re.escape(s) for s in pattern)
    )
    # DOTALL: a newline is a character like any other here; encoding makes it harmless.
    compiled = re.compile(regex + r"\Z", re.DOTALL)
    return PathVariable(field_path=tuple(name.split(".")), pattern=pattern, regex=compiled)
