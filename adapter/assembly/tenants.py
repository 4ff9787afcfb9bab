"""The start-up check of the policy's tenant bindings against the configuration.

A policy that binds principals to a credential set the upstream does not have
would refuse those callers on every call; at start that is a configuration
mistake, so the adapter refuses to start and names each missing set (a policy
reloaded later is checked per call instead: the caller gets PERMISSION_DENIED,
see :mod:`adapter.upstream.tenant_router`).
"""

from __future__ import annotations

from adapter.config.settings import ConfigError, Settings
from adapter.security.policy import Policy

__all__ = ["check_tenant_bindings", "unknown_bindings"]


def unknown_bindings(policy: Policy, settings: Settings) -> list[str]:
    """``<upstream>.<set>`` for every set the policy names and the settings lack."""
    missing = []
    for upstream, names in sorted(policy.credential_sets().items()):
        configured = settings.upstreams.get(upstream)
        for name in sorted(names):
            if configured is None or name not in configured.credential_sets:
                missing.append(f"{upstream}.{name}")
    return missing


def check_tenant_bindings(policy: Policy, settings: Settings) -> None:
    """Raises ConfigError naming each credential set the policy binds to and the
    configuration lacks."""
    missing = unknown_bindings(policy, settings)
    if missing:
        keys = ", ".join(f"upstreams.{m.replace('.', '.credential_sets.', 1)}" for m in missing)
        raise ConfigError(
            f"the policy {policy.source} binds principals to credential sets that are not configured: {keys}"
        )
