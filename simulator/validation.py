"""Declarative request validation producing vendor field issues.

A `Schema` lists a resource's proto fields. `clean` keeps the known input fields of a payload
(dropping unknown and output-only ones, as a real server ignores them) and reports type errors;
`check` reports what a complete resource still lacks (required fields, cross-field rules)::

    body, issues = clean(ALERT, payload, partial=False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from simulator.errors import FieldIssue
from simulator.wire import JsonObject

Kind = Literal[
    "string",
    "enum",
    "bool",
    "number",
    "struct",
    "value",
    "string_list",
    "string_map",
    "message",
    "message_list",
]


@dataclass(frozen=True)
class Field:
    """One field of a schema. `message` is the nested schema of message fields."""

    name: str
    kind: Kind
    required: bool = False
    choices: tuple[str, ...] = ()
    message: Schema | None = None
    output_only: bool = False


@dataclass(frozen=True)
class Schema:
    """The fields of a resource (or nested message) plus cross-field rules."""

    kind: str
    fields: tuple[Field, ...]
    rules: tuple[Callable[[JsonObject], list[FieldIssue]], ...] = field(default=())

    def by_name(self) -> dict[str, Field]:
        """Fields keyed by name."""
        return {f.name: f for f in self.fields}


def _type_issue(f: Field, value: Any, path: str) -> FieldIssue | None:
    ok: bool
    if f.kind == "string":
        ok = isinstance(value, str)
        if ok and f.required and not value.strip():
            return FieldIssue(path, "must not be empty")
        expected = "a string"
    elif f.kind == "enum":
        if isinstance(value, str) and value in f.choices:
            return None
        return FieldIssue(path, "must be one of " + ", ".join(f.choices))
    elif f.kind == "bool":
        ok, expected = isinstance(value, bool), "a boolean"
    elif f.kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number"
    elif f.kind in ("struct", "message", "string_map"):
        ok, expected = isinstance(value, dict), "an object"
        if ok and f.kind == "string_map" and not all(isinstance(v, str) for v in value.values()):
            return FieldIssue(path, "must map names to strings")
    elif f.kind == "string_list":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        expected = "a list of strings"
    elif f.kind == "message_list":
        ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
        expected = "a list of objects"
    else:  # "value": any JSON value
        ok, expected = True, "a value"
    return None if ok else FieldIssue(path, f"must be {expected}")


def clean(
    schema: Schema, payload: JsonObject, *, partial: bool, prefix: str = ""
) -> tuple[JsonObject, list[FieldIssue]]:
    """Known input fields of `payload` with their type issues.

    With `partial` (a PATCH), `null` is kept (it removes the field) unless the field is
    required; nested messages are cleaned the same way.
    """
    result: JsonObject = {}
    issues: list[FieldIssue] = []
    for f in schema.fields:
        if f.output_only or f.name not in payload:
            continue
        value = payload[f.name]
        path = prefix + f.name
        if value is None:
            if partial and not f.required:
                result[f.name] = None
            elif f.required:
                issues.append(FieldIssue(path, "is required"))
            continue
        issue = _type_issue(f, value, path)
        if issue:
            issues.append(issue)
            continue
        if f.kind == "message" and f.message is not None:
            value, nested = clean(f.message, value, partial=partial, prefix=path + ".")
            issues.extend(nested)
        elif f.kind == "message_list" and f.message is not None:
            cleaned_list = []
            for index, item in enumerate(value):
                item_value, nested = clean(f.message, item, partial=False, prefix=f"{path}[{index}].")
                cleaned_list.append(item_value)
                issues.extend(nested)
            value = cleaned_list
        result[f.name] = value
    return result, issues


def check(schema: Schema, resource: JsonObject, *, prefix: str = "") -> list[FieldIssue]:
    """What a complete resource lacks: required fields, then the schema's cross-field rules."""
    issues: list[FieldIssue] = []
    for f in schema.fields:
        value = resource.get(f.name)
        path = prefix + f.name
        if f.required and (value is None or value == ""):
            issues.append(FieldIssue(path, "is required"))
        elif f.kind == "message" and f.message is not None and isinstance(value, dict):
            issues.extend(check(f.message, value, prefix=path + "."))
        elif f.kind == "message_list" and f.message is not None and isinstance(value, list):
            for index, item in enumerate(value):
                issues.extend(check(f.message, item, prefix=f"{path}[{index}]."))
    for rule in schema.rules:
        issues.extend(FieldIssue(prefix + i.field, i.issue) for i in rule(resource))
    return issues


def validate_create(schema: Schema, payload: JsonObject) -> tuple[JsonObject, list[FieldIssue]]:
    """Cleans a create payload and checks it is complete."""
    body, issues = clean(schema, payload, partial=False)
    if not issues:
        issues = check(schema, body)
    return body, issues


def schedule_rule(resource: JsonObject) -> list[FieldIssue]:
    """A schedule's value is a cron string or a positive number of seconds."""
    kind, value = resource.get("type"), resource.get("value")
    if kind == "cron" and not (isinstance(value, str) and len(value.split()) in (5, 6)):
        return [FieldIssue("value", "must be a cron expression for a cron schedule")]
    if kind == "interval" and not (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    ):
        return [FieldIssue("value", "must be a positive number of seconds for an interval")]
    return []


SCHEDULE = Schema(
    "schedule",
    (
        Field("type", "enum", required=True, choices=("cron", "interval")),
        Field("value", "value", required=True),
    ),
    rules=(schedule_rule,),
)

AUTHENTICATION = Schema(
    "authentication",
    (
        Field("type", "string"),
        Field("token", "string"),
        Field("username", "string"),
        Field("password", "string"),
        Field("secret", "string"),
    ),
)
