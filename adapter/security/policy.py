"""The authorization policy: which principals hold which permissions, which vendor
credentials they use, and how much of a vendor quota each may spend. Default deny.

A policy file (TOML, or YAML when it ends in ``.yaml``/``.yml``)::

    [[grants]]
    principals = ["cn:reader", "spiffe://corp/ns/*/sa/reporting"]
    permissions = ["openframe.*.read", "octospine.*.read", "events.openframe.*"]

    [[grants]]
    principals = ["cn:writer"]
    permissions = ["openframe.*.read", "openframe.alerts.write"]

    [[tenants]]                      # calls of these principals use these credentials
    principals = ["cn:team-a*"]
    credentials = { openframe = "team_a" }

    [[quotas]]                       # at most this share of each credential's quota
    principals = ["jwt:batch-*"]
    max_share = 0.2

Principals and permissions are matched exactly, or as glob patterns (``*``, ``?``,
``[...]``, so ``team-*`` is a prefix). The first matching tenant and quota entry
wins. Principals are spelled by where they come from: the URI SAN of a client
certificate as is (``spiffe://...``), ``dns:<name>`` for a DNS SAN, ``cn:<name>``
for a subject CN, ``jwt:<sub>`` for a bearer token.
"""

from __future__ import annotations

import fnmatch
import logging
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Grant", "Policy", "PolicyError", "QuotaShare", "TenantBinding", "load_policy", "parse_policy"]

logger = logging.getLogger(__name__)


class PolicyError(ValueError):
    """The policy file cannot be read or is malformed; the message says where."""


def _matches(patterns: tuple[str, ...], value: str) -> bool:
    return any(p == value or fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class Grant:
    principals: tuple[str, ...]
    permissions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TenantBinding:
    principals: tuple[str, ...]
    #: upstream name -> credential set name (``upstreams.<u>.credential_sets.<name>``).
    credentials: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class QuotaShare:
    principals: tuple[str, ...]
    #: Largest share (0-1] of each credential's quota the principal may hold at once.
    max_share: float


_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Policy:
    """An immutable, parsed policy; decisions are cached per (principal, permission)
    (per instance: a reloaded policy starts with an empty cache)."""

    grants: tuple[Grant, ...] = ()
    tenants: tuple[TenantBinding, ...] = ()
    quotas: tuple[QuotaShare, ...] = ()
    source: str = "<empty>"
    _decisions: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, repr=False)

    def allows(self, principal: str, permission: str) -> bool:
        key = (principal, permission)
        decision = self._decisions.get(key)
        if decision is None:
            decision = any(
                _matches(g.principals, principal) and _matches(g.permissions, permission) for g in self.grants
            )
            if len(self._decisions) >= _CACHE_SIZE:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def credential_set(self, principal: str, upstream: str) -> str:
        """The credential set ``principal`` uses for ``upstream`` ("" = the default)."""
        for tenant in self.tenants:
            if _matches(tenant.principals, principal):
                return tenant.credentials.get(upstream, "")
        return ""

    def max_share(self, principal: str) -> float:
        for quota in self.quotas:
            if _matches(quota.principals, principal):
                return quota.max_share
        return 1.0

    def credential_sets(self) -> dict[str, set[str]]:
        """Every credential set named, per upstream (checked against the settings)."""
        named: dict[str, set[str]] = {}
        for tenant in self.tenants:
            for upstream, name in tenant.credentials.items():
                named.setdefault(upstream, set()).add(name)
        return named


def _strings(entry: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: '{key}' must be a non-empty list of strings")
    return tuple(value)


def _entries(document: Mapping[str, Any], key: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PolicyError(f"'{key}' must be a list of tables")
    return ((f"{key}[{i}]", entry) for i, entry in enumerate(value))


def parse_policy(document: Mapping[str, Any], *, source: str = "<policy>") -> Policy:
    """A policy from a parsed document; raises PolicyError naming the bad entry."""
    unknown = set(document) - {"grants", "tenants", "quotas"}
    if unknown:
        raise PolicyError(f"unknown key(s) {sorted(unknown)}; expected grants, tenants, quotas")
    grants = []
    for where, entry in _entries(document, "grants"):
        _only(entry, {"principals", "permissions"}, where)
        grants.append(Grant(_strings(entry, "principals", where), _strings(entry, "permissions", where)))
    tenants = []
    for where, entry in _entries(document, "tenants"):
        _only(entry, {"principals", "credentials"}, where)
        credentials = entry.get("credentials")
        if not isinstance(credentials, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in credentials.items()
        ):
            raise PolicyError(f"{where}: 'credentials' must map upstream names to credential set names")
        tenants.append(TenantBinding(_strings(entry, "principals", where), dict(credentials)))
    quotas = []
    for where, entry in _entries(document, "quotas"):
        _only(entry, {"principals", "max_share"}, where)
        share = entry.get("max_share")
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share <= 1:
            raise PolicyError(f"{where}: 'max_share' must be a number in (0, 1]")
        quotas.append(QuotaShare(_strings(entry, "principals", where), float(share)))
    return Policy(tuple(grants), tuple(tenants), tuple(quotas), source=source)


def _only(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = set(entry) - allowed
    if extra:
        raise PolicyError(f"{where}: unknown key(s) {sorted(extra)}")


def load_policy(path: Path) -> Policy:
    """Reads and parses a policy file; raises PolicyError."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror or exc}") from None
    is_yaml = path.suffix in (".yaml", ".yml")
    try:
        document = (yaml.safe_load(text) or {}) if is_yaml else tomllib.loads(text.decode())
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not valid {'YAML' if is_yaml else 'TOML'}: {exc}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"{path}: the policy must be a table/mapping")
    try:
        return parse_policy(document, source=str(path))
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
