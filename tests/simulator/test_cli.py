"""`python -m simulator`: starts on the given ports, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx

from simulator.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[2]


async def test_cli_serves_and_stops_on_sigterm() -> None:
    env = {**os.environ, "SIM_OCTOSPINE_API_KEY": "env-key"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "--openframe-port", "0", "--octospine-port", "0",
        "--profile", "drifted", "--openframe-api-key", "cli-key", "--log-level", "WARNING",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        match = re.search(r"openframe=(\S+) octospine=(\S+) profile=drifted", line)
        assert match, line
        async with httpx.AsyncClient() as client:
            of = await client.get(match[1] + "/v1/devices", headers={"X-API-Key": "cli-key"})
            octo = await client.get(match[2] + "/api/health", headers={"X-API-Key": "env-key"})
        assert (of.status_code, octo.status_code) == (200, 200)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_env_fallbacks_and_webhook_targets() -> None:
    config, level = parse_args(
        ["--webhook-target", "http://127.0.0.1:9000/a|s1|alert.new"],
        {
            "SIM_OPENFRAME_API_KEY": "k1",
            "SIM_PAGINATION": "offset",
            "SIM_RATE_LIMIT_HEADERS": "true",
            "SIM_WEBHOOK_TARGETS": "http://127.0.0.1:9000/b|s2;http://127.0.0.1:9000/c|s3|task.completed",
            "SIM_LOG_LEVEL": "debug",
        },
    )
    assert config.openframe_api_key == "k1"
    assert config.settings().pagination == "offset"
    assert config.settings().rate_limit_headers is True
    assert [t.url[-1] for t in config.webhook_targets] == ["a", "b", "c"]
    assert config.webhook_targets[2].events == ("task.completed",)
    assert level == "debug"
