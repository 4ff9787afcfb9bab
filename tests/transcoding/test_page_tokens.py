"""Page tokens are signed and bound: a caller cannot forge, alter or move one to
another method, sizes never exceed the configured maximum, and any replica (or
the same one after a restart) with the same keys accepts them."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import httpx
import orjson
import pytest
from openframe.v1 import alerts_pb2, devices_pb2, security_events_pb2

from adapter.config.settings import ConfigError, PageTokenSettings, PaginationSettings
from adapter.descriptors.method_spec import MethodSpec
from adapter.transcoding.errors import BindingError
from adapter.transcoding.json_codec import JsonCodec
from adapter.transcoding.method_transcoder import MethodTranscoder
from adapter.transcoding.page_tokens import PageTokenSigner
from adapter.upstream.messages import UpstreamResponse
from adapter.upstream.secret_source import SecretSource

DEVICES = "/openframe.v1.DeviceService/ListDevices"
ALERTS = "/openframe.v1.AlertService/ListAlerts"
SECURITY = "/openframe.v1.SecurityEventService/ListSecurityEvents"
KEY_A = b"a" * 32
KEY_B = b"b" * 32


def _answer(n: int, total: int = 1000) -> UpstreamResponse:
    doc = {"data": [{"id": f"x{i}"} for i in range(n)], "meta": {"total": total}}
    return UpstreamResponse(
        status=200, headers=httpx.Headers({"content-type": "application/json"}), body=orjson.dumps(doc)
    )


def _transcoder(
    specs: dict[str, MethodSpec], path: str, signer: PageTokenSigner, **pagination: object
) -> MethodTranscoder:
    return MethodTranscoder(specs[path], JsonCodec(), PaginationSettings(**pagination), page_tokens=signer)  # type: ignore[arg-type]


def _first_token(t: MethodTranscoder, request: object, size: int = 10) -> str:
    bound = t.bind(request)  # type: ignore[arg-type]
    token: str = t.decode(_answer(size), bound).next_page_token  # type: ignore[attr-defined]
    assert token
    return token


def _query(t: MethodTranscoder, request: object) -> dict[str, str]:
    return dict(t.bind(request).request.query)  # type: ignore[arg-type]


def test_a_forged_unsigned_token_is_refused(specs: dict[str, MethodSpec]) -> None:
    t = _transcoder(specs, DEVICES, PageTokenSigner.from_keys([KEY_A]))
    # The old format: base64url JSON, recomputable by anyone.
    forged = (
        base64.urlsafe_b64encode(
            orjson.dumps(
                {
                    "v": 1,
                    "s": "page",
                    "p": 1,
                    "n": 100000,
                    "f": t.bind(devices_pb2.ListDevicesRequest()).fingerprint,
                }
            )
        )
        .decode()
        .rstrip("=")
    )
    with pytest.raises(BindingError) as info:
        t.bind(devices_pb2.ListDevicesRequest(page_token=forged))
    assert info.value.field == "page_token"


@pytest.mark.parametrize("position", [0, 5, -8, -1])
def test_a_tampered_token_is_refused(specs: dict[str, MethodSpec], position: int) -> None:
    t = _transcoder(specs, DEVICES, PageTokenSigner.from_keys([KEY_A]))
    token = _first_token(t, devices_pb2.ListDevicesRequest(page_size=10))
    chars = list(token)
    chars[position] = "A" if chars[position] != "A" else "B"  # even a padding bit of the last char
    tampered = "".join(chars)
    assert tampered != token
    with pytest.raises(BindingError, match="page_token"):
        t.bind(devices_pb2.ListDevicesRequest(page_size=10, page_token=tampered))


def test_a_token_signed_with_the_key_but_a_huge_size_is_clamped(specs: dict[str, MethodSpec]) -> None:
    signer = PageTokenSigner.from_keys([KEY_A])
    t = _transcoder(specs, DEVICES, signer, max_page_size=100)
    fingerprint = t.bind(devices_pb2.ListDevicesRequest()).fingerprint
    token = signer.sign({"v": 2, "m": DEVICES, "s": "page", "p": 3, "n": 100000, "f": fingerprint})
    query = _query(t, devices_pb2.ListDevicesRequest(page_token=token))
    assert query["per_page"] == "100"
    assert query["page"] == "3"


def test_a_token_does_not_move_to_another_method(specs: dict[str, MethodSpec]) -> None:
    signer = PageTokenSigner.from_keys([KEY_A])
    alerts = _transcoder(specs, ALERTS, signer)
    security = _transcoder(specs, SECURITY, signer)
    token = _first_token(alerts, alerts_pb2.ListAlertsRequest(page_size=10))
    with pytest.raises(BindingError, match="another method"):
        security.bind(security_events_pb2.ListSecurityEventsRequest(page_size=10, page_token=token))


def test_tokens_work_on_every_replica_and_after_a_restart(specs: dict[str, MethodSpec]) -> None:
    replica_1 = _transcoder(specs, DEVICES, PageTokenSigner.from_keys([KEY_A]))
    replica_2 = _transcoder(specs, DEVICES, PageTokenSigner.from_keys([KEY_A]))
    token = _first_token(replica_1, devices_pb2.ListDevicesRequest(page_size=10))
    assert _query(replica_2, devices_pb2.ListDevicesRequest(page_size=10, page_token=token))["page"] == "2"
    stranger = _transcoder(specs, DEVICES, PageTokenSigner.from_keys([KEY_B]))
    with pytest.raises(BindingError):
        stranger.bind(devices_pb2.ListDevicesRequest(page_size=10, page_token=token))


def test_rotation_through_the_keys_file(specs: dict[str, MethodSpec], tmp_path: Path) -> None:
    keys_file = tmp_path / "page-token-keys"
    keys_file.write_text(KEY_A.decode() + "\n")
    clock = [0.0]
    source = SecretSource(path=keys_file, reload_interval=5.0, clock=lambda: clock[0])
    t = _transcoder(specs, DEVICES, PageTokenSigner.from_key_file(source))
    old = _first_token(t, devices_pb2.ListDevicesRequest(page_size=10))

    keys_file.write_text(f"# newest first; the first key signs\n{KEY_B.decode()}\n{KEY_A.decode()}\n")
    clock[0] += 5.0  # the next look at the file
    new = _first_token(t, devices_pb2.ListDevicesRequest(page_size=10))
    # Tokens issued before the rotation still work; new ones are signed with the new key.
    assert _query(t, devices_pb2.ListDevicesRequest(page_size=10, page_token=old))["page"] == "2"
    only_b = _transcoder(specs, DEVICES, PageTokenSigner.from_keys([KEY_B]))
    assert _query(only_b, devices_pb2.ListDevicesRequest(page_size=10, page_token=new))["page"] == "2"
    with pytest.raises(BindingError):
        only_b.bind(devices_pb2.ListDevicesRequest(page_size=10, page_token=old))


def test_a_replica_that_has_not_reloaded_yet_rechecks_the_keys_file(
    specs: dict[str, MethodSpec], tmp_path: Path
) -> None:
    keys_file = tmp_path / "page-token-keys"
    keys_file.write_text(KEY_A.decode() + "\n")
    frozen = SecretSource(path=keys_file, reload_interval=3600.0, clock=lambda: 0.0)
    late = _transcoder(specs, DEVICES, PageTokenSigner.from_key_file(frozen))
    keys_file.write_text(f"{KEY_B.decode()}\n{KEY_A.decode()}\n")
    first = _transcoder(specs, DEVICES, PageTokenSigner.from_key_file(SecretSource.from_file(keys_file)))
    token = _first_token(first, devices_pb2.ListDevicesRequest(page_size=10))  # signed with B
    assert _query(late, devices_pb2.ListDevicesRequest(page_size=10, page_token=token))["page"] == "2"


def test_settings_read_the_keys_file(specs: dict[str, MethodSpec], tmp_path: Path) -> None:
    keys_file = tmp_path / "page-token-keys"
    keys_file.write_text(KEY_A.decode() + "\n")
    signer = PageTokenSigner.from_settings(PageTokenSettings(keys_file=keys_file))
    token = _first_token(_transcoder(specs, DEVICES, signer), devices_pb2.ListDevicesRequest(page_size=10))
    inline = PageTokenSigner.from_settings(PageTokenSettings(keys=[KEY_A.decode()]))  # type: ignore[list-item]
    query = _query(
        _transcoder(specs, DEVICES, inline), devices_pb2.ListDevicesRequest(page_size=10, page_token=token)
    )
    assert query["page"] == "2"
    keys_file.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than 32"):
        PageTokenSigner.from_settings(PageTokenSettings(keys_file=keys_file))
    with pytest.raises(ConfigError, match=r"page_tokens\.keys_file"):
        PageTokenSigner.from_settings(PageTokenSettings(keys_file=tmp_path / "missing"))


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        PageTokenSettings(keys=["short"])  # type: ignore[list-item]


def test_without_keys_tokens_are_signed_with_a_random_key_and_it_is_said(
    specs: dict[str, MethodSpec], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        signer = PageTokenSigner.from_settings(PageTokenSettings())
    assert "will not survive a restart" in caplog.text
    t = _transcoder(specs, DEVICES, signer)
    token = _first_token(t, devices_pb2.ListDevicesRequest(page_size=10))
    assert _query(t, devices_pb2.ListDevicesRequest(page_size=10, page_token=token))["page"] == "2"
    other_process = _transcoder(specs, DEVICES, PageTokenSigner.from_settings(PageTokenSettings()))
    with pytest.raises(BindingError):
        other_process.bind(devices_pb2.ListDevicesRequest(page_size=10, page_token=token))
