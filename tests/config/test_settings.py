"""Configuration errors name the bad key; the CLI refuses to start on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.config.settings import ConfigError, load_settings

from ..adapter_process import run_command


def test_missing_and_bad_keys_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_UPSTREAMS__OPENFRAME__BASE_URL", "not a url")
    monkeypatch.setenv("MESH_GRPC__PORT", "99999")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "upstreams.openframe.base_url (MESH_UPSTREAMS__OPENFRAME__BASE_URL)" in text
    assert "upstreams.openframe.auth (MESH_UPSTREAMS__OPENFRAME__AUTH)" in text
    assert "grpc.port (MESH_GRPC__PORT)" in text


def test_union_members_are_not_part_of_the_named_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_UPSTREAMS__OPENFRAME__BASE_URL", "http://127.0.0.1:8081")
    monkeypatch.setenv("MESH_UPSTREAMS__OPENFRAME__AUTH__TYPE", "oauth2_client_credentials")
    monkeypatch.setenv("MESH_UPSTREAMS__OPENFRAME__AUTH__CLIENT_ID", "c")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "upstreams.openframe.auth.token_url (MESH_UPSTREAMS__OPENFRAME__AUTH__TOKEN_URL)" in str(
        info.value
    )


def test_toml_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mesh.toml"
    config.write_text(
        '[upstreams.octospine]\nbase_url = "https://api.octospine.com"\n'
        'auth = { api_key = "from-file", header = "X-API-Key", scheme = "" }\n'
        '[upstreams.octospine.pagination]\nstyle = "cursor"\n'
    )
    monkeypatch.setenv("MESH_CONFIG_FILE", str(config))
    monkeypatch.setenv("MESH_GRPC__PORT", "6000")
    settings = load_settings()
    octospine = settings.upstreams["octospine"]
    assert octospine.pagination.style == "cursor"
    assert octospine.auth.header == "X-API-Key"
    assert settings.grpc.port == 6000
    assert "from-file" not in repr(settings)  # secrets never in repr


def test_kafka_bootstrap_servers_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.delenv("MESH_EVENTS__KAFKA__BOOTSTRAP_SERVERS", raising=False)
    assert load_settings().events.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"


def test_cli_exits_2_with_the_cause() -> None:
    done = run_command({"MESH_UPSTREAMS__OPENFRAME__BASE_URL": "http://127.0.0.1:1"}, timeout=30)
    assert done.returncode == 2
    assert "MESH_UPSTREAMS__OPENFRAME__AUTH" in done.stderr


def test_moved_webhook_keys_say_where_they_went(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_EVENTS__WEBHOOK__SECRETS", '["whsec"]')
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "events.webhook (MESH_EVENTS__WEBHOOK)" in text
    assert "MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__SECRETS" in text


def test_webhook_sources_and_descriptor_sets_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__AUTH", "token")
    monkeypatch.setenv("MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__TOKENS", '["t1", "t0"]')
    monkeypatch.setenv("MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__REQUIRE_TIMESTAMP", "false")
    monkeypatch.setenv("MESH_DESCRIPTORS__DESCRIPTOR_SETS", '["/opt/acme.binpb"]')
    settings = load_settings()
    source = settings.events.webhook.sources["octospine"]
    assert (source.auth, source.require_timestamp) == ("token", False)
    assert [t.get_secret_value() for t in source.tokens] == ["t1", "t0"]
    assert "t1" not in repr(source)  # secrets stay masked
    assert settings.descriptors.descriptor_sets == [Path("/opt/acme.binpb")]


def test_a_config_file_that_is_not_toml_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken, binary = tmp_path / "broken.toml", tmp_path / "binary.toml"
    broken.write_text("[grpc]\nport = \n")
    binary.write_bytes(b"\xe8\x00\xff")
    monkeypatch.setenv("MESH_CONFIG_FILE", str(broken))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"MESH_CONFIG_FILE={broken}: not valid TOML: Invalid value (at line 2")
    monkeypatch.setenv("MESH_CONFIG_FILE", str(binary))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"MESH_CONFIG_FILE={binary}: unreadable: 'utf-8' codec can't decode")


def test_a_variable_that_is_not_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-settings names only the top-level field ("events"); the message names the
    variable that holds the broken value, wherever below it sits."""
    monkeypatch.setenv("MESH_EVENTS__KAFKA__CLIENT_ID", "not-json-and-fine")
    monkeypatch.setenv("MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__SECRETS", '["whsec", ')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "invalid configuration: MESH_EVENTS__WEBHOOK__SOURCES__OCTOSPINE__SECRETS: "
        "not valid JSON (a table or list in a variable is JSON)"
    )
