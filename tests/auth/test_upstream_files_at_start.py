"""A credential file or CA bundle that cannot be read stops the start (exit code 2, the
key named), before any vendor request. Without that check the adapter served a missing
credential file with health SERVING and failed every call of that upstream INTERNAL
``UPSTREAM_CREDENTIALS_UNAVAILABLE``; a bad CA bundle ended the start in a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.assembly.upstream_files import check_upstream_files
from adapter.config.settings import ConfigError, Settings, UpstreamSettings
from adapter.runtime import MeshAdapter

from ..adapter_process import offline, run_command
from ..resilience.harness import StartSim, upstream_settings


@pytest.mark.usefixtures("profile")
async def test_unreadable_secret_files_stop_the_start_naming_each_key(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim()
    empty = tmp_path / "client.secret"
    empty.write_text("\n")
    a_directory = tmp_path / "signing-key"
    a_directory.mkdir()
    settings = upstream_settings(
        sim,
        auth={
            "openframe": {"api_key_file": str(tmp_path / "missing.key")},
            "octospine": {
                "type": "oauth2_client_credentials",
                "token_url": "/oauth/token",
                "client_id": "octospine-client",
                "client_secret_file": str(empty),
            },
        },
    )
    team_a = {"type": "jwt", "private_key_file": str(a_directory), "issuer": "mesh"}
    openframe = settings.upstreams["openframe"].model_dump()
    openframe["credential_sets"] = {"team-a": team_a}
    openframe["ca_bundle"] = str(empty)  # no certificate in it
    settings = settings.model_copy(
        update={"upstreams": {**settings.upstreams, "openframe": UpstreamSettings.model_validate(openframe)}}
    )
    adapter = MeshAdapter(settings)
    with pytest.raises(ConfigError) as info:
        await adapter.start()
    said = str(info.value)
    assert said.startswith("unusable upstream files:")
    assert (
        "upstreams.openframe.auth.api_key_file (MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY_FILE): "
        f"cannot read secret file {tmp_path / 'missing.key'}: No such file or directory"
    ) in said
    assert (
        "upstreams.octospine.auth.client_secret_file (MESH_UPSTREAMS__OCTOSPINE__AUTH__CLIENT_SECRET_FILE): "
        f"cannot read secret file {empty}: secret file {empty} is empty"
    ) in said
    assert (
        "upstreams.openframe.credential_sets.team-a.private_key_file "
        "(MESH_UPSTREAMS__OPENFRAME__CREDENTIAL_SETS__TEAM-A__PRIVATE_KEY_FILE): "
        f"cannot read secret file {a_directory}: Is a directory"
    ) in said
    assert (
        "upstreams.openframe.ca_bundle (MESH_UPSTREAMS__OPENFRAME__CA_BUNDLE): "
        f"cannot load {empty}: [X509: NO_CERTIFICATE_OR_CRL_FOUND]"
    ) in said
    assert len(said.splitlines()) == 5
    assert adapter.server is None  # nothing was served
    assert sim.count() == 0  # and the vendors heard nothing (no token request either)


def test_readable_files_and_a_login_still_to_run_pass(tmp_path: Path) -> None:
    key = tmp_path / "openframe.key"
    key.write_text("k-123\n")
    settings = Settings(
        upstreams={
            "openframe": UpstreamSettings.model_validate(
                {
                    "base_url": "http://127.0.0.1:1",
                    "auth": {
                        "type": "oauth2_authorization_code",
                        "authorize_url": "/v1/oauth/authorize",
                        "token_url": "/v1/oauth/token",
                        "client_id": "c",
                        # written by `python -m adapter login`: UPSTREAM_LOGIN_REQUIRED until then
                        "token_file": str(tmp_path / "not-yet-logged-in.json"),
                    },
                }
            ),
            "octospine": UpstreamSettings.model_validate(
                {"base_url": "http://127.0.0.1:1", "auth": {"api_key_file": str(key)}}
            ),
        }
    )
    check_upstream_files(settings)  # raises nothing


def test_the_command_exits_2_with_the_key(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.key")
    env = offline(
        MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY=None,
        MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY_FILE=missing,
    )
    done = run_command(env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "mesh-adapter: unusable upstream files:" in done.stderr
    assert "MESH_UPSTREAMS__OPENFRAME__AUTH__API_KEY_FILE" in done.stderr
    assert "serving" not in done.stderr
