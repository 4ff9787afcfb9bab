"""JWT verification against a JWKS file and a JWKS URL: the acceptance matrix,
algorithm confusion, and key rotation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from adapter.config.security import JwtSettings
from adapter.security.jwt_verifier import AuthenticationFailed, JwtVerifier

from ..loopback_http import serving
from ..manual_clock import ManualClock
from .jwt_helpers import AUDIENCE, ISSUER, Issuer, hmac_with_public_key, unsigned


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def verifier(issuer: Issuer, tmp_path: Path) -> JwtVerifier:
    path = issuer.write(tmp_path / "jwks.json")
    settings = JwtSettings(jwks_file=path, issuer=ISSUER, audiences=[AUDIENCE], leeway_seconds=30)
    return JwtVerifier(settings, reload_interval=0.01)


async def test_a_valid_token_names_its_subject(issuer: Issuer, verifier: JwtVerifier) -> None:
    principal = await verifier.verify(issuer.token("billing-api"))
    assert (principal.name, principal.source) == ("jwt:billing-api", "jwt")


# Claims from the time the test runs, not the time it was collected: in a long suite,
# "120 s from collection" is already past when the test runs.
REFUSALS: list[tuple[str, Callable[[int], dict[str, object]], str]] = [
    ("expired", lambda now: {"exp": now - 120}, "TOKEN_EXPIRED"),
    ("not yet valid", lambda now: {"nbf": now + 120}, "TOKEN_NOT_YET_VALID"),
    ("wrong audience", lambda now: {"aud": "someone-else"}, "WRONG_AUDIENCE"),
    ("wrong issuer", lambda now: {"iss": "https://evil.test"}, "WRONG_ISSUER"),
    ("no exp", lambda now: {"exp": None}, "INVALID_TOKEN"),
    ("no subject", lambda now: {"sub": None}, "INVALID_TOKEN"),
]


@pytest.mark.parametrize(("case", "claims", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refusals(
    issuer: Issuer,
    verifier: JwtVerifier,
    case: str,
    claims: Callable[[int], dict[str, object]],
    reason: str,
) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        await verifier.verify(issuer.token(**claims(int(time.time()))))
    assert info.value.reason == reason


async def test_small_clock_skew_is_tolerated(issuer: Issuer, verifier: JwtVerifier) -> None:
    await verifier.verify(issuer.token(exp=int(time.time()) - 10))  # within the 30 s leeway
    await verifier.verify(issuer.token(nbf=int(time.time()) + 10))


async def test_alg_none_and_hmac_with_the_public_key_are_refused(
    issuer: Issuer, verifier: JwtVerifier
) -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "attacker", "exp": int(time.time()) + 300}
    for token in (unsigned(claims), hmac_with_public_key(issuer, claims)):
        with pytest.raises(AuthenticationFailed) as info:
            await verifier.verify(token)
        assert info.value.reason == "ALGORITHM_NOT_ALLOWED"


@pytest.mark.parametrize("token", ["", "not.a.token", "a.b", "x" * 5000, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"])
async def test_garbage_is_unauthenticated(verifier: JwtVerifier, token: str) -> None:
    with pytest.raises(AuthenticationFailed):
        await verifier.verify(token)


async def test_a_foreign_key_and_an_unknown_kid_are_refused(issuer: Issuer, verifier: JwtVerifier) -> None:
    stranger = Issuer()
    with pytest.raises(AuthenticationFailed, match="INVALID_TOKEN"):
        await verifier.verify(stranger.token())  # same kid, other key: bad signature
    issuer.add_key("rsa-2")
    with pytest.raises(AuthenticationFailed, match="UNKNOWN_KEY"):
        await verifier.verify(issuer.token(kid="rsa-2"))  # not published yet


async def test_file_rotation_is_picked_up(issuer: Issuer, verifier: JwtVerifier, tmp_path: Path) -> None:
    issuer.add_key("ec-2", kind="ec")
    issuer.write(tmp_path / "jwks.json")
    await asyncio.sleep(0.02)  # past the verifier's reload interval (0.01 s)
    principal = await verifier.verify(issuer.token(kid="ec-2"))
    assert principal.name == "jwt:svc-a"


@pytest_asyncio.fixture
async def idp(issuer: Issuer) -> AsyncIterator[tuple[str, list[int]]]:
    fetches: list[int] = []

    async def jwks(request: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response(issuer.jwks())

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    async with serving(app) as base:
        yield f"{base}/.well-known/jwks.json", fetches


async def test_url_jwks_is_cached_and_refetched_for_a_new_kid(
    issuer: Issuer, idp: tuple[str, list[int]]
) -> None:
    url, fetches = idp
    clock = ManualClock()
    settings = JwtSettings(jwks_url=url, issuer=ISSUER, audiences=[AUDIENCE], jwks_cache_seconds=300)
    verifier = JwtVerifier(settings, clock=clock)
    for _ in range(5):
        await verifier.verify(issuer.token())
    assert len(fetches) == 1  # cached

    issuer.add_key("rsa-2")  # the IdP rotates
    clock.now += 31
    assert (await verifier.verify(issuer.token("b", kid="rsa-2"))).name == "jwt:b"
    assert len(fetches) == 2  # fetched early for the unknown kid

    stranger = Issuer()
    for n in range(20):  # tokens naming random kids cannot make it hammer the IdP
        stranger.add_key(f"junk-{n}")
        with pytest.raises(AuthenticationFailed, match="UNKNOWN_KEY"):
            await verifier.verify(stranger.token(kid=f"junk-{n}"))
    assert len(fetches) == 2


async def test_an_algorithm_that_does_not_fit_the_named_key_is_refused(
    issuer: Issuer, tmp_path: Path
) -> None:
    # Found by the security.bearer fuzz target: an RS256 header naming an EC key made
    # PyJWT raise a bare TypeError before any signature check, so any caller could
    # turn an unsigned token into an error of the call instead of UNAUTHENTICATED.
    issuer.add_key("ec-1", kind="ec")
    settings = JwtSettings(
        jwks_file=issuer.write(tmp_path / "jwks.json"), issuer=ISSUER, audiences=[AUDIENCE]
    )
    verifier = JwtVerifier(settings)
    _, claims, rsa_signature = issuer.token(kid="rsa-1").split(".")
    for token in (
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImVjLTEifQ.3e0.",  # {"alg":"RS256","kid":"ec-1"}, no signature
        # {"alg":"ES256","kid":"rsa-1"} over the RSA key's own signature
        f"eyJhbGciOiJFUzI1NiIsImtpZCI6InJzYS0xIn0.{claims}.{rsa_signature}",
    ):
        with pytest.raises(AuthenticationFailed) as info:
            await verifier.verify(token)
        assert info.value.reason == "ALGORITHM_NOT_ALLOWED"
        assert "does not fit key" in info.value.detail
