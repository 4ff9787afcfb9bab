"""Validated CRUD over one store: the code path REST handlers and event generators share.

Subclasses publish events by overriding the `on_*` hooks, so a REST create and a generated
event store, list and push the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from simulator.errors import ApiError, FieldIssue
from simulator.store import ResourceStore, StoredItem, merge_patch
from simulator.validation import Schema, check, clean, validate_create
from simulator.wire import JsonObject, later_timestamp, now_timestamp, parse_timestamp


class ResourceService:
    """Create, read, list, merge-patch and delete resources of one kind.

    `filters` maps a list query parameter to the values it accepts (an empty tuple accepts
    any string); `time_filters` maps a parameter to the timestamp field it bounds from below,
    strictly (``{"updated_after": "updated_at"}``); `defaults` fills fields a create leaves out
    (e.g. ``{"status": "open"}``). Every change moves `updated_at` strictly forward.
    """

    def __init__(
        self,
        *,
        store: ResourceStore,
        schema: Schema,
        filters: Mapping[str, tuple[str, ...]] | None = None,
        time_filters: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.schema = schema
        self.kind = schema.kind
        self.filters = dict(filters or {})
        self.time_filters = dict(time_filters or {})
        self.defaults = dict(defaults or {})
        names = {f.name for f in schema.fields}
        self._has_updated_at = "updated_at" in names
        self._order = ["id", *(f.name for f in schema.fields)]

    # --- reads ---------------------------------------------------------------------------

    def get(self, resource_id: str) -> JsonObject:
        """The resource, or a 404 `ApiError`."""
        resource = self.store.get(resource_id)
        if resource is None:
            raise ApiError.not_found(self.kind, resource_id)
        return resource

    def list(self, query: Mapping[str, str]) -> list[StoredItem]:
        """Resources matching the filter parameters present in `query`, oldest first."""
        wanted: dict[str, str] = {}
        issues: list[FieldIssue] = []
        for name, allowed in self.filters.items():
            value = query.get(name)
            if value is None or value == "":
                continue
            if allowed and value not in allowed:
                issues.append(FieldIssue(name, "must be one of " + ", ".join(allowed)))
            wanted[name] = value
        after: dict[str, datetime] = {}
        for name, field_name in self.time_filters.items():
            value = query.get(name)
            if not value:
                continue
            try:
                after[field_name] = parse_timestamp(value)
            except ValueError:
                issues.append(FieldIssue(name, "must be an RFC 3339 timestamp"))
        if issues:
            raise ApiError(400, f"Invalid {self.kind} filter", details=issues)

        def matches(resource: JsonObject) -> bool:
            if any(resource.get(k) != v for k, v in wanted.items()):
                return False
            return all(_later(resource.get(k), bound) for k, bound in after.items())

        return self.store.items(matches)

    # --- writes --------------------------------------------------------------------------

    def create(self, payload: JsonObject) -> JsonObject:
        """Validates and stores a new resource (422 naming the fields on failure)."""
        body, issues = validate_create(self.schema, payload)
        if issues:
            raise ApiError.invalid(self.kind, issues)
        now = now_timestamp()
        resource: JsonObject = {"id": self.store.new_id(), **copy.deepcopy(self.defaults), **body}
        resource["created_at"] = now
        if self._has_updated_at:
            resource["updated_at"] = now
        resource = self.store.add(self._ordered(self.prepare_new(resource)))
        self.on_created(resource)
        return resource

    def update(self, resource_id: str, patch: JsonObject) -> JsonObject:
        """Merge-patches the resource (RFC 7396) and answers it whole."""
        before = self.get(resource_id)
        body, issues = clean(self.schema, patch, partial=True)
        if issues:
            raise ApiError.invalid(self.kind, issues)
        after = merge_patch(before, body)
        issues = check(self.schema, after)
        if issues:
            raise ApiError.invalid(self.kind, issues)
        if self._has_updated_at:
            after["updated_at"] = later_timestamp(before.get("updated_at"))
        after = self.store.replace(self._ordered(after))
        self.on_updated(before, after)
        return after

    def replace_fields(self, resource_id: str, fields: JsonObject) -> JsonObject:
        """Sets output fields directly (simulator-internal changes such as task progress)."""
        before = self.get(resource_id)
        after = {**before, **fields}
        if self._has_updated_at:
            after["updated_at"] = later_timestamp(before.get("updated_at"))
        after = self._ordered(after)
        self.store.replace(after)
        return after

    def delete(self, resource_id: str) -> JsonObject:
        """Removes the resource (404 when unknown)."""
        resource = self.store.delete(resource_id)
        if resource is None:
            raise ApiError.not_found(self.kind, resource_id)
        self.on_deleted(resource)
        return resource

    # --- hooks ---------------------------------------------------------------------------

    def prepare_new(self, resource: JsonObject) -> JsonObject:
        """Adjusts a resource about to be stored (e.g. output-only initial values)."""
        return resource

    def on_created(self, resource: JsonObject) -> None:
        """Called after a create."""

    def on_updated(self, before: JsonObject, after: JsonObject) -> None:
        """Called after an update."""

    def on_deleted(self, resource: JsonObject) -> None:
        """Called after a delete."""

    def _ordered(self, resource: JsonObject) -> JsonObject:
        ordered = {k: resource[k] for k in self._order if k in resource}
        ordered.update((k, v) for k, v in resource.items() if k not in ordered)
        return ordered


def _later(value: object, bound: datetime) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return parse_timestamp(value) > bound
    except ValueError:
        return False
