"""In-memory resource stores: wire-shaped dicts kept in creation order.

Each stored resource gets a creation sequence number, so lists are ordered oldest first and
cursors stay valid while items are added or deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from simulator.wire import JsonObject


@dataclass(frozen=True)
class StoredItem:
    """A resource with its creation sequence number (used by cursors)."""

    seq: int
    resource: JsonObject


class ResourceStore:
    """Resources of one kind by id, in creation order, with sequential ids.

    Ids are ``<prefix>_<zero-padded counter>``, e.g. ``ResourceStore("alt", width=4)`` issues
    ``alt_0001``, ``alt_0002``... Values are the wire JSON objects; treat what `get` returns as
    read-only and change state through the services so events are published.
    """

    def __init__(self, prefix: str, *, width: int = 4) -> None:
        self.prefix = prefix
        self.width = width
        self._items: dict[str, StoredItem] = {}
        self._next_seq = 1
        self._next_id = 1

    def new_id(self) -> str:
        """Reserves and returns the next id."""
        resource_id = f"{self.prefix}_{self._next_id:0{self.width}d}"
        self._next_id += 1
        return resource_id

    def add(self, resource: JsonObject) -> JsonObject:
        """Stores `resource` (which must carry its `id`) as the newest item."""
        resource_id = resource["id"]
        self._items[resource_id] = StoredItem(self._next_seq, resource)
        self._next_seq += 1
        return resource

    def get(self, resource_id: str) -> JsonObject | None:
        """The resource with this id, or None."""
        item = self._items.get(resource_id)
        return item.resource if item else None

    def replace(self, resource: JsonObject) -> JsonObject:
        """Replaces a stored resource, keeping its place in the order."""
        item = self._items[resource["id"]]
        self._items[resource["id"]] = StoredItem(item.seq, resource)
        return resource

    def delete(self, resource_id: str) -> JsonObject | None:
        """Removes and returns the resource, or None when unknown."""
        item = self._items.pop(resource_id, None)
        return item.resource if item else None

    def items(self, predicate: Callable[[JsonObject], bool] | None = None) -> list[StoredItem]:
        """Stored items, oldest first, optionally filtered."""
        values = self._items.values()
        return [i for i in values if predicate is None or predicate(i.resource)]

    def all(self) -> list[JsonObject]:
        """Every resource, oldest first."""
        return [i.resource for i in self._items.values()]

    def clear(self) -> None:
        """Forgets every resource and restarts the id counter."""
        self._items.clear()
        self._next_seq = 1
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self._items

    def __iter__(self) -> Iterator[JsonObject]:
        return iter(self.all())


def merge_patch(target: JsonObject, patch: JsonObject) -> JsonObject:
    """RFC 7396 JSON merge patch: objects merge recursively, `null` removes, the rest replaces.

    Returns a new object; `target` is not changed.
    """
    result: JsonObject = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def deep_copy(value: Any) -> Any:
    """A deep copy (for handing out stored values safely)."""
    return copy.deepcopy(value)
