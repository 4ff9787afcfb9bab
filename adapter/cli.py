"""Command line: ``python -m adapter [serve]``, ``python -m adapter login <upstream>``.

Exit codes: 0 clean shutdown (or login done), 1 login failed, 2 bad configuration or protos.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from adapter.config.settings import ConfigError, Settings, load_settings
from adapter.descriptors.catalog import DescriptorSetError
from adapter.descriptors.method_spec import SpecError
from adapter.event_loop import run as run_event_loop
from adapter.events.aiokafka_compat import quiet_aiokafka
from adapter.events.declarations import DeclarationError
from adapter.lifecycle.group import PartFailedToStart
from adapter.security.policy import PolicyError
from adapter.telemetry.logs import configure_logging

__all__ = ["START_REFUSALS", "main", "serve", "start_failure"]

logger = logging.getLogger("adapter")


async def serve(settings: Settings) -> int:
    """Runs the adapter until SIGINT/SIGTERM (exit 0), or until a supervised task
    dies under ``on_task_death = exit`` (exit 1); shuts down gracefully either way."""
    from adapter.gc_tuning import tune_collector_for_serving
    from adapter.runtime import MeshAdapter
    from adapter.telemetry.metrics import build_meter_provider
    from adapter.telemetry.shutdown import shut_down_telemetry
    from adapter.telemetry.tracing import build_tracer_provider

    tracer_provider = build_tracer_provider(settings.telemetry)
    meter_provider, registry = build_meter_provider(settings.telemetry, set_global=True)
    adapter = MeshAdapter(
        settings, tracer_provider=tracer_provider, meter_provider=meter_provider, metrics_registry=registry
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await adapter.start()
    tune_collector_for_serving()
    try:
        signalled = asyncio.ensure_future(stop.wait())
        ended = asyncio.ensure_future(adapter.wait_for_termination())
        await asyncio.wait([signalled, ended], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        ended.cancel()
        if stop.is_set():
            logger.info("signal received")
    finally:
        await adapter.stop()
        await asyncio.sleep(0)  # the last calls' spans and metrics are recorded after the reply
        flush = settings.telemetry.flush_timeout_seconds
        shut_down_telemetry(tracer_provider, meter_provider, timeout_s=flush)
    return 1 if adapter.fatal else 0


#: What refuses a configuration or the protos (exit 2): starting again would not help.
START_REFUSALS = (SpecError, ConfigError, DeclarationError, DescriptorSetError, PolicyError)


def start_failure(exc: BaseException) -> tuple[int, str]:
    """The exit code and message of a start ended by ``exc``: 2 for a refused
    configuration (e.g. an unreadable page_tokens.keys_file), 1 when the host refused
    something (a port, a file) or a part failed (its traceback logged unless the host
    did it)."""
    if isinstance(exc, START_REFUSALS):
        return 2, f"mesh-adapter: {exc}"
    if isinstance(exc, PartFailedToStart):  # what started was stopped again
        if not isinstance(exc.__cause__, OSError):  # not the host's doing: a bug, its traceback
            logging.getLogger("adapter").error("start failed", exc_info=exc.__cause__)
        return 1, f"mesh-adapter: {exc}"
    if isinstance(exc, OSError):  # the host refused a file before any part started
        return 1, f"mesh-adapter: cannot start: {exc}"
    logging.getLogger("adapter").error("start failed", exc_info=exc)
    return 1, f"mesh-adapter: start failed: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapter", description="mesh-adapter: gRPC/Kafka adapter")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve gRPC (default)")
    login = sub.add_parser("login", help="one-time OAuth2 login of an upstream (stores its refresh token)")
    login.add_argument("upstream", help="upstream name, e.g. openframe")
    login.add_argument("--no-browser", action="store_true", help="only print the URL to open")
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the callback")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        parser.exit(2, f"mesh-adapter: {exc}\n")
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "login":
        from adapter.auth.login_cli import login_command

        return login_command(settings, args.upstream, open_browser=not args.no_browser, timeout=args.timeout)
    # One line per upstream request is the DEBUG level's job, not INFO's.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    quiet_aiokafka()  # outages are reported once per state change, with aiokafka's reason
    if args.command in (None, "serve"):
        try:
            from adapter.workers import resolve_workers, run_workers

            workers = resolve_workers(settings)
            if workers > 1:
                return asyncio.run(run_workers(settings, workers))
            if settings.grpc.front == "envoy":
                from adapter.server.envoy_front.process import serve_behind_envoy

                return asyncio.run(serve_behind_envoy(settings))
            return run_event_loop(serve(settings), settings.event_loop)
        except (*START_REFUSALS, PartFailedToStart, OSError) as exc:
            code, message = start_failure(exc)
            parser.exit(code, message + "\n")
    return 0
