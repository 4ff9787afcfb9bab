"""Command line: ``python -m simulator [options]``; runs until SIGINT or SIGTERM.

Every option falls back to an environment variable (``SIM_<OPTION>``, e.g.
``SIM_OPENFRAME_API_KEY``), then to the `SimulatorConfig` default. Webhook targets are
``url|secret[|event,event]``, repeated, or ``;``-separated in ``SIM_WEBHOOK_TARGETS``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from simulator.config import (
    AUTH_STYLES,
    ENVELOPE_SHAPES,
    PAGINATION_STYLES,
    PROFILES,
    SimulatorConfig,
    WebhookTarget,
)
from simulator.simulator import Simulator

logger = logging.getLogger("simulator")


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get("SIM_" + name.upper().replace("-", "_"))
    return value if value else None


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def _tenant_keys(specs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for spec in specs:
        label, sep, key = spec.strip().partition("=")
        if not sep or not label or not key:
            raise ValueError(f"a tenant API key is LABEL=KEY, got {spec.strip()[:20]!r}")
        pairs.append((label, key))
    return tuple(pairs)


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[SimulatorConfig, str]:
    """The configuration and log level from arguments, then the environment."""
    defaults = SimulatorConfig()

    def env(name: str) -> str | None:
        return _env(environ, name)

    p = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.splitlines()[0])
    p.add_argument("--host", default=env("host") or defaults.host)
    p.add_argument("--openframe-port", type=int, default=int(env("openframe_port") or 8081))
    p.add_argument("--octospine-port", type=int, default=int(env("octospine_port") or 8082))
    p.add_argument("--profile", choices=sorted(PROFILES), default=env("profile") or "documented")
    p.add_argument("--openframe-profile", choices=sorted(PROFILES), default=env("openframe_profile"))
    p.add_argument("--octospine-profile", choices=sorted(PROFILES), default=env("octospine_profile"))
    p.add_argument("--auth-style", choices=AUTH_STYLES, default=env("auth_style"))
    p.add_argument("--pagination", choices=PAGINATION_STYLES, default=env("pagination"))
    p.add_argument("--rate-limit-per-minute", type=int, default=env("rate_limit_per_minute"))
    p.add_argument(
        "--rate-limit-headers",
        action=argparse.BooleanOptionalAction,
        default=_bool(env("rate_limit_headers")),
    )
    p.add_argument("--rate-limit-window", type=float, default=float(env("rate_limit_window") or 60))
    p.add_argument(
        "--graphql-rate-limit-per-minute",
        type=int,
        default=int(env("graphql_rate_limit_per_minute") or defaults.graphql_rate_limit_per_minute or 0),
    )
    for vendor in ("openframe", "octospine"):
        for item in ("api_key", "client_id", "client_secret"):
            name = f"{vendor}_{item}"
            p.add_argument("--" + name.replace("_", "-"), default=env(name) or getattr(defaults, name))
    for vendor in ("openframe", "octospine"):
        p.add_argument(
            f"--{vendor}-tenant-api-key",
            action="append",
            default=[t for t in (env(f"{vendor}_tenant_api_keys") or "").split(";") if t.strip()],
            metavar="LABEL=KEY",
            help="a further accepted API key, recorded as credential api_key:LABEL (repeatable)",
        )
    p.add_argument("--seed", type=int, default=int(env("seed") or defaults.seed))
    p.add_argument("--task-duration", type=float, default=float(env("task_duration") or 1.5))
    p.add_argument("--token-ttl", type=float, default=float(env("token_ttl") or 3600))
    p.add_argument("--webhook-target", action="append", default=[], metavar="URL|SECRET[|EVENTS]")
    p.add_argument("--webhook-backoff", type=float, default=float(env("webhook_backoff") or 1.0))
    p.add_argument("--ws-event-shape", choices=ENVELOPE_SHAPES, default=env("ws_event_shape") or "full")
    p.add_argument(
        "--webhook-body-shape", choices=ENVELOPE_SHAPES, default=env("webhook_body_shape") or "full"
    )
    p.add_argument("--log-level", default=env("log_level") or "INFO")
    args = p.parse_args(argv)
    targets = list(args.webhook_target)
    targets += [t for t in (env("webhook_targets") or "").split(";") if t.strip()]
    try:
        webhook_targets = tuple(WebhookTarget.parse(t.strip()) for t in targets)
    except ValueError as exc:
        p.error(str(exc))
    try:
        tenant_keys = {
            v: _tenant_keys(getattr(args, f"{v}_tenant_api_key")) for v in ("openframe", "octospine")
        }
    except ValueError as exc:
        p.error(str(exc))
    config = SimulatorConfig(
        profile=args.profile,
        openframe_profile=args.openframe_profile,
        octospine_profile=args.octospine_profile,
        auth_style=args.auth_style,
        pagination=args.pagination,
        rate_limit_per_minute=(
            int(args.rate_limit_per_minute) if args.rate_limit_per_minute is not None else None
        ),
        rate_limit_headers=args.rate_limit_headers,
        rate_limit_window_s=args.rate_limit_window,
        graphql_rate_limit_per_minute=args.graphql_rate_limit_per_minute or None,
        host=args.host,
        openframe_port=args.openframe_port,
        octospine_port=args.octospine_port,
        openframe_api_key=args.openframe_api_key,
        octospine_api_key=args.octospine_api_key,
        openframe_tenant_api_keys=tenant_keys["openframe"],
        octospine_tenant_api_keys=tenant_keys["octospine"],
        openframe_client_id=args.openframe_client_id,
        openframe_client_secret=args.openframe_client_secret,
        octospine_client_id=args.octospine_client_id,
        octospine_client_secret=args.octospine_client_secret,
        seed=args.seed,
        task_duration_s=args.task_duration,
        token_ttl_s=args.token_ttl,
        webhook_targets=webhook_targets,
        webhook_backoff_base_s=args.webhook_backoff,
        ws_event_shape=args.ws_event_shape,
        webhook_body_shape=args.webhook_body_shape,
    )
    return config, args.log_level


async def serve(config: SimulatorConfig) -> None:
    """Runs the simulator until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with Simulator(config) as sim:
        # The one line a wrapper (or a test using port 0) reads to find the ports.
        print(
            f"simulator ready openframe={sim.openframe_url} octospine={sim.octospine_url} "
            f"profile={config.profile}",
            flush=True,
        )
        await stopping.wait()
        logger.info("stopping")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m simulator``."""
    config, level = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config.settings("openframe")
        config.settings("octospine")
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
