"""Declarations meet configuration: which sources are built, in which webhook mode,
and the configuration mistakes that stop the start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapter.auth.api_key import ApiKeyCredentials
from adapter.config.settings import Settings
from adapter.events.declarations import (
    DeclarationError,
    EventSourceDeclarations,
    SignatureScheme,
    StreamDeclaration,
    WebhookDeclaration,
)
from adapter.events.declared_sources import build_declared_sources, websocket_url
from adapter.events.watermarks import WatermarkStore
from adapter.events.webhook_auth import SignatureCheck, TokenCheck
from adapter.runtime import MeshAdapter
from adapter.transcoding.json_codec import JsonCodec
from simulator import Simulator

from .mesh_fixtures import mesh_settings

SIGNED = WebhookDeclaration(source="signer", signature=SignatureScheme(header="x-sig"))
UNSIGNED = WebhookDeclaration(source="plain")
STREAM = StreamDeclaration(source="streamer", path="/live")
DECLARED = EventSourceDeclarations(
    streams={"streamer": STREAM}, webhooks={"signer": SIGNED, "plain": UNSIGNED}
)


def settings(upstreams: tuple[str, ...] = ("signer", "plain", "streamer"), **events: Any) -> Settings:
    return Settings(
        upstreams={n: {"base_url": f"https://{n}.example", "auth": {"api_key": "k"}} for n in upstreams},
        events=events,
    )


def build(config: Settings, tmp_path: Path, declared: EventSourceDeclarations = DECLARED) -> Any:
    return build_declared_sources(
        declared,
        config,
        intake=None,  # type: ignore[arg-type]  # nothing is started here
        watermarks=WatermarkStore(tmp_path / "w.json"),
        transcoders={},
        callers={n: None for n in config.upstreams},  # type: ignore[misc]
        credentials={n: ApiKeyCredentials(api_key=SecretStr("k")) for n in config.upstreams},
        codec=JsonCodec(),
    )


def test_every_configured_upstream_that_declares_gets_its_source(tmp_path: Path) -> None:
    built = build(settings(), tmp_path)
    assert list(built.streams) == ["streamer"]
    assert built.streams["streamer"].url == "wss://streamer.example/live"
    assert built.webhook is not None
    endpoints = {e.source: e for e in built.webhook.endpoints}
    assert {s: e.path for s, e in endpoints.items()} == {
        "plain": "/webhooks/plain",
        "signer": "/webhooks/signer",
    }
    # Default mode: the declared signature, else a shared token.
    assert isinstance(endpoints["signer"].verifier.check, SignatureCheck)
    assert isinstance(endpoints["plain"].verifier.check, TokenCheck)


def test_unconfigured_or_disabled_upstreams_get_no_source(tmp_path: Path) -> None:
    built = build(
        settings(("signer",), websockets={}, webhook={"sources": {"signer": {"enabled": False}}}), tmp_path
    )
    assert built.streams == {} and built.webhook is None


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"websockets": {"nobody": {}}}, "events.websockets names nobody"),
        ({"webhook": {"sources": {"nobody": {}}}}, "events.webhook.sources names nobody"),
        ({"webhook": {"sources": {"plain": {"auth": "signature"}}}}, "declares no signature"),
    ],
)
def test_configuration_mistakes_stop_the_start(events: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match=message):
        build(settings(**events), tmp_path)


def test_websocket_url() -> None:
    assert websocket_url("http://127.0.0.1:8081/", "/v1/ws") == "ws://127.0.0.1:8081/v1/ws"
    assert websocket_url("https://api.example", "/ws") == "wss://api.example/ws"


async def test_a_configuration_mistake_stops_the_start_before_anything_runs(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = mesh_settings(simulator, tmp_path, "t.", websockets={"nobody": {}})
    adapter = MeshAdapter(config)
    with pytest.raises(DeclarationError, match=r"events\.websockets names nobody"):
        await adapter.start()
    await adapter.stop(0)
    assert adapter.events is None
    # The spool was never opened: another process may take it.
    assert not (tmp_path / "spool" / "events.db").exists()
