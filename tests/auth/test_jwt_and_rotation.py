"""JWT credentials (static against the simulator, minted and verified with the
public key) and credentials rotated through files without a restart."""

from __future__ import annotations

from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from octospine.v1 import system_pb2, system_pb2_grpc
from openframe.v1 import alerts_pb2, alerts_pb2_grpc

from adapter.auth import SecretSource
from adapter.auth.jwt_credentials import MintedJwtCredentials
from simulator import Simulator

from ..resilience.harness import StartSim, running_adapter
from .test_client_credentials import oauth

pytestmark = pytest.mark.usefixtures("profile")

GET_ALERT = "/v1/alerts/{alert_id}"


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _replace(path: Path, text: str) -> None:
    """How secret mounts rotate: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.replace(path)


def _header_style(sim: Simulator) -> dict[str, str]:
    wire = sim.config.settings("openframe")
    return {"header": "X-API-Key", "scheme": ""} if wire.auth_style == "x-api-key" else {}


async def _get(h) -> alerts_pb2.Alert:  # type: ignore[no-untyped-def]
    return await alerts_pb2_grpc.AlertServiceStub(h.channel).GetAlert(
        alerts_pb2.GetAlertRequest(alert_id="alt_0001"), timeout=5
    )


async def test_static_jwt_is_sent_as_the_bearer(start_sim: StartSim) -> None:
    token = jwt.encode({"sub": "mesh-adapter", "aud": "openframe"}, "s" * 32, algorithm="HS256")
    sim = await start_sim(openframe_api_key=token)  # the vendor accepts this JWT
    async with running_adapter(
        sim, auth={"openframe": {"type": "jwt", "token": token, **_header_style(sim)}}
    ) as h:
        assert (await _get(h)).id == "alt_0001"
    assert [r.status for r in sim.find_requests(route=GET_ALERT)] == [200]


async def test_minted_jwt_is_signed_cached_and_reminted_on_key_rotation(tmp_path: Path) -> None:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(_pem(keys[0]))
    creds = MintedJwtCredentials(
        SecretSource.from_file(key_file, reload_interval=0.0),
        algorithm="ES256",
        key_id="k1",
        issuer="mesh-adapter",
        audience="https://api.openframe.io",
        lifetime=120,
        claims={"scope": "read"},
    )
    [(name, value)] = await creds.auth_headers()
    token = value.removeprefix("Bearer ")
    claims = jwt.decode(
        token, keys[0].public_key(), algorithms=["ES256"], audience="https://api.openframe.io"
    )
    assert name == "Authorization" and claims["iss"] == "mesh-adapter" and claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == 120
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    assert await creds.auth_headers() == [(name, value)]  # cached
    assert creds.renewals == 1

    _replace(key_file, _pem(keys[1]).decode())
    [(_, rotated)] = await creds.auth_headers()
    jwt.decode(
        rotated.removeprefix("Bearer "),
        keys[1].public_key(),
        algorithms=["ES256"],
        audience="https://api.openframe.io",
    )
    # A 401 re-mints once: the new token differs (fresh jti), the old one is not resent.
    assert await creds.rejected([(name, rotated)])
    [(_, reminted)] = await creds.auth_headers()
    assert reminted != rotated and creds.renewals == 3
    assert "BEGIN" not in repr(creds) and token not in repr(creds)


async def test_api_key_file_rotation_needs_no_restart(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    key_file = tmp_path / "openframe.key"
    key_file.write_text("an-old-key\n")
    auth = {
        "openframe": {"api_key_file": str(key_file), "reload_interval_seconds": 3600, **_header_style(sim)}
    }
    async with running_adapter(sim, auth=auth) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get(h)
        assert info.value.code() == grpc.StatusCode.INTERNAL  # 401: the adapter's key is wrong
        assert sim.count(route=GET_ALERT) == 1  # an unchanged key is not resent
        _replace(key_file, sim.config.openframe_api_key + "\n")
        # The 401 makes the adapter look at the file at once, despite the hour-long interval.
        assert (await _get(h)).id == "alt_0001"
        assert [r.status for r in sim.find_requests(route=GET_ALERT)] == [401, 401, 200]
        assert (await _get(h)).id == "alt_0001"
    assert sim.count(route=GET_ALERT) == 4


async def test_client_secret_file_rotation_needs_no_restart(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim()
    secret_file = tmp_path / "octospine.secret"
    secret_file.write_text("not-the-secret")
    auth = oauth(client_secret=None, client_secret_file=str(secret_file), reload_interval_seconds=3600)
    async with running_adapter(sim, auth=auth) as h:
        stub = system_pb2_grpc.SystemServiceStub(h.channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetHealth(system_pb2.GetHealthRequest(), timeout=5)
        _replace(secret_file, sim.config.octospine_client_secret)
        await stub.GetHealth(system_pb2.GetHealthRequest(), timeout=5)
    assert sim.tokens["octospine"].token_requests == 2
