"""Per-tenant vendor credentials: each call goes through the caller stack of the
credential set the policy binds its principal to.

An upstream has a default stack (its ``auth``) and one stack per entry of
``upstreams.<name>.credential_sets``, each built in full by the composition root:
its own client and credentials, rate limiter and fair shares, retry budget,
circuit breakers and cache. Nothing is shared between sets, so one tenant can
neither spend another's quota, trip its breakers nor read its cached answers.

The choice is made per call from :data:`~adapter.security.identity.current_principal`
and the current policy (re-read on change). A binding to a set the upstream lacks
(a reloaded policy naming a new set) is refused with :class:`CredentialSetRefused`
(PERMISSION_DENIED): never a silent fall back to the default or another set. With
``require_credential_set``, a principal bound to no set is refused too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapter.security.identity import current_principal
from adapter.security.policy import Policy

from .caller import UpstreamCaller
from .errors import CredentialSetRefused
from .messages import UpstreamRequest, UpstreamResponse

__all__ = ["DEFAULT_SET", "TenantRouter"]

#: The name of an upstream's own ``auth`` in metrics and logs (policies bind by
#: naming a set; binding no set means this one).
DEFAULT_SET = ""


class TenantRouter:
    """An :class:`UpstreamCaller` that picks a credential set's stack per call.

    ``inner`` is the default stack (so :func:`~adapter.resilience.find_layer` finds
    its layers); ``sets`` the named ones; ``policy()`` the current policy, or None
    when caller authentication is off (every call then uses the default set).
    """

    def __init__(
        self,
        inner: UpstreamCaller,
        sets: Mapping[str, UpstreamCaller],
        *,
        policy: Callable[[], Policy | None],
        require_set: bool = False,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.sets = dict(sets)
        self._policy = policy
        self._require_set = require_set

    @property
    def default_timeout(self) -> float:
        return self.inner.default_timeout

    def stack_for(self, principal: str, route: str = "") -> UpstreamCaller:
        """The stack ``principal``'s calls use; raises CredentialSetRefused."""
        policy = self._policy()
        chosen = policy.credential_set(principal, self.name) if policy is not None else DEFAULT_SET
        if chosen == DEFAULT_SET:
            if self._require_set:
                raise CredentialSetRefused(
                    f"{principal} is bound to no credential set of {self.name}, and one is required",
                    reason="CREDENTIAL_SET_REQUIRED",
                    upstream=self.name,
                    route=route,
                    principal=principal,
                    credential_set="",
                )
            return self.inner
        stack = self.sets.get(chosen)
        if stack is None:
            raise CredentialSetRefused(
                f"the policy binds {principal} to credential set {chosen!r} of {self.name}, "
                "which is not configured",
                reason="CREDENTIAL_SET_UNKNOWN",
                upstream=self.name,
                route=route,
                principal=principal,
                credential_set=chosen,
            )
        return stack

    async def send(self, request: UpstreamRequest, *, deadline: float) -> UpstreamResponse:
        stack = self.stack_for(current_principal.get().name, request.route)
        return await stack.send(request, deadline=deadline)

    async def aclose(self) -> None:
        for stack in (self.inner, *self.sets.values()):
            await stack.aclose()
