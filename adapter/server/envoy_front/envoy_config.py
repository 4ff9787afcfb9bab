"""The Envoy bootstrap of the envoy front, built from the adapter's settings.

One listener on ``grpc.host:grpc.port`` (HTTP/2), one HTTP filter chain: pyvoy's
filter runs :mod:`.embedded` and answers the upstream-backed unary calls itself; it
is non-terminal and off on the routes of what it does not answer (health,
reflection, the event stream), which Envoy's router sends to the adapter's grpc.aio
server on a private Unix socket. The port's limits become Envoy's settings:

=============================================  =======================================
``security.limits`` / ``grpc``                 Envoy
=============================================  =======================================
``max_connections``                            overload manager, downstream connections
``max_streams_per_connection``                 ``http2_protocol_options.max_concurrent_streams``
``keepalive_time/timeout_seconds``             ``http2_protocol_options.connection_keepalive``
``max_connection_age(_grace)_seconds``         ``max_connection_duration``, ``drain_timeout``
                                               (streams: grpc.aio's, per caller connection)
``grpc.reuse_port`` (workers)                  ``enable_reuse_port``
``max_receive_message_bytes``                  the front itself (:mod:`.grpc_over_asgi`)
``security.tls``                               the listener's TLS (SDS files, rotated)
``handshake_timeout_seconds``                  ``transport_socket_connect_timeout`` (TLS);
                                               ``listener_filters_timeout`` (plaintext:
                                               the HTTP inspector waits for first bytes)
=============================================  =======================================

Client ping enforcement (``min_client_ping_interval_seconds``, ``max_ping_strikes``)
has no Envoy equivalent; Envoy's own HTTP/2 flood protection applies instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapter.config.settings import Settings, TlsSettings
from adapter.security.forwarded_peer import PEER_HEADER

__all__ = ["GRPC_AIO_PREFIXES", "LISTENER", "bootstrap"]

#: Answered by the grpc.aio server behind Envoy, not by the front.
GRPC_AIO_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.", "/meshadapter.v1.EventService/")
#: The listener's name (the front's port is read from Envoy's admin API by it).
LISTENER = "grpc"
_GRPC_AIO = "grpc_aio"
_EMBEDDED_APP = "adapter.server.envoy_front.embedded:app"
_TYPES = "type.googleapis.com/envoy.extensions."
_MAX_UINT32 = 2**32 - 1
_MAX_HEADERS = 512
#: HTTP/2 flow-control windows as grpc starts them (64 KiB a stream) and as Envoy's
#: edge guidance sets them, not Envoy's default 256 MiB: Envoy buffers up to a
#: stream's window, so with its default a stream whose caller reads slowly (a
#: Subscribe) piled answers up in Envoy's memory (+31 MB on one stream, measured;
#: +3 MB with these) where grpc.aio would have made its sender wait.
_WINDOWS = {"initial_stream_window_size": 65536, "initial_connection_window_size": 1048576}
_MAX_STREAMS = 2**31 - 1  # HTTP/2's largest SETTINGS_MAX_CONCURRENT_STREAMS Envoy takes
_UNLIMITED = {
    "priority": "DEFAULT",
    "max_connections": _MAX_UINT32,
    "max_pending_requests": _MAX_UINT32,
    "max_requests": _MAX_UINT32,
    "max_retries": 0,  # the router never retries a call here (no retry policy)
}


def _seconds(value: float) -> str:
    return f"{value:.3f}s"


def _pyvoy_filter(module: str) -> dict[str, Any]:
    # One Python thread, as the adapter has one loop; uvloop: pyvoy 1.3.0 panics when
    # Python 3.11's asyncio loop shuts down (a 3.12 signature), uvloop stops cleanly.
    app = {"app": _EMBEDDED_APP, "interface": "asgi", "root_path": "", "lifespan": True, "loop": "uvloop"}
    return {
        "name": "pyvoy",
        "typed_config": {
            "@type": _TYPES + "filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"module": {"local": {"filename": module}}},
            "filter_name": "pyvoy",
            "terminal_filter": False,  # the router behind it serves grpc.aio's routes
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": json.dumps(app),
            },
        },
    }


def _routes() -> list[dict[str, Any]]:
    off = {"pyvoy": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}
    # No route timeout and no idle timeout: the event stream and health Watch last as
    # long as their callers want (the server's keepalive finds vanished ones).
    to_grpc_aio = {"cluster": _GRPC_AIO, "timeout": "0s", "idle_timeout": "0s"}
    # grpc.aio sees Envoy's socket as the peer: the caller's address goes along, over
    # whatever a caller sent in that header (adapter/security/forwarded_peer.py).
    caller = {
        "header": {"key": PEER_HEADER, "value": "%DOWNSTREAM_REMOTE_ADDRESS%"},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }
    routes: list[dict[str, Any]] = [
        {
            "match": {"prefix": p},
            "route": to_grpc_aio,
            "typed_per_filter_config": off,
            "request_headers_to_add": [caller],
        }
        for p in GRPC_AIO_PREFIXES
    ]
    # Answered by pyvoy before the router. Envoy's stream idle timeout (5 min) applies
    # here: a caller that opens a call and never sends its message does not hold it for ever.
    routes.append({"match": {"prefix": "/"}, "route": {"cluster": _GRPC_AIO, "timeout": "0s"}})
    return routes


def _sds(name: str, path: Path) -> dict[str, Any]:
    return {
        "name": name,
        "sds_config": {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"},
    }


def _secret_file(path: Path, secret: dict[str, Any]) -> tuple[Path, str]:
    kind = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    return path, json.dumps({"resources": [{"@type": kind, **secret}]})


def _tls(tls: TlsSettings, workdir: Path) -> tuple[dict[str, Any], dict[Path, str]]:
    """The listener's TLS (ALPN h2) and the SDS files it reads. Through SDS, not inline:
    Envoy then watches the certificate files' directories and serves a rotated pair
    (written by rename, as cert-manager and mesh agents write) to new connections,
    as grpc.aio's server does. ``require``: a caller without a certificate chaining to
    ``client_ca_file`` fails the handshake."""
    pair = {
        "certificate_chain": {"filename": str(tls.cert_file.resolve())},
        "private_key": {"filename": str(tls.key_file.resolve())},
    }
    files = dict([_secret_file(workdir / "sds-server.json", {"name": "server", "tls_certificate": pair})])
    common: dict[str, Any] = {
        "alpn_protocols": ["h2"],
        "tls_certificate_sds_secret_configs": [_sds("server", workdir / "sds-server.json")],
    }
    client_ca = tls.client_ca_file if tls.client_auth == "require" else None
    if client_ca is not None:
        trusted = {"trusted_ca": {"filename": str(client_ca.resolve())}}
        path, text = _secret_file(
            workdir / "sds-client-ca.json", {"name": "client_ca", "validation_context": trusted}
        )
        files[path] = text
        common["validation_context_sds_secret_config"] = _sds("client_ca", path)
    context = {
        "@type": _TYPES + "transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": common,
        "require_client_certificate": client_ca is not None,
    }
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}, files


def bootstrap(
    settings: Settings, *, unix_socket: Path, pyvoy_module: str, workdir: Path
) -> tuple[dict[str, Any], dict[Path, str]]:
    """Envoy's configuration and the files it reads (to be written into ``workdir``
    by the caller): the gRPC port, its TLS, its routes, the grpc.aio cluster on
    ``unix_socket``, the limits; the admin API on ``workdir/admin.sock`` (for the
    supervisor to read the listener's bound port)."""
    grpc, limits = settings.grpc, settings.security.limits
    http2: dict[str, Any] = {
        **_WINDOWS,
        "connection_keepalive": {
            "interval": _seconds(limits.keepalive_time_seconds),
            "timeout": _seconds(limits.keepalive_timeout_seconds),
        },
    }
    # 0 is "off" as on grpc.aio (no limit); Envoy 1.39's own default would be 1,024,
    # and a caller's 1,025th stream would wait in its client, unanswered.
    http2["max_concurrent_streams"] = limits.max_streams_per_connection or _MAX_STREAMS
    manager: dict[str, Any] = {
        "@type": _TYPES + "filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": LISTENER,
        "codec_type": "HTTP2",
        "http2_protocol_options": http2,
        "generate_request_id": False,
        # The caller's verified certificate for the authorization gate, in a header
        # no caller can set: Envoy drops theirs (adapter/security/forwarded_certificate.py).
        "forward_client_cert_details": "SANITIZE_SET" if settings.security.tls else "SANITIZE",
        "set_current_client_cert_details": {"cert": True},
        "route_config": {"virtual_hosts": [{"name": "adapter", "domains": ["*"], "routes": _routes()}]},
        "http_filters": [
            _pyvoy_filter(pyvoy_module),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": _TYPES + "filters.http.router.v3.Router"},
            },
        ],
    }
    # Envoy resets a stream with more than 100 headers; grpc refuses only what is over
    # its 16 KiB of metadata, which 512 entries always are (32 bytes an entry at least),
    # so that is what the front (.grpc_over_asgi) and grpc.aio refuse, by its status.
    protocol: dict[str, Any] = {"max_headers_count": _MAX_HEADERS}
    manager["common_http_protocol_options"] = protocol
    if limits.max_connection_age_seconds:
        protocol["max_connection_duration"] = _seconds(limits.max_connection_age_seconds)
        manager["drain_timeout"] = _seconds(max(limits.max_connection_age_grace_seconds, 0.001))
    cluster = {
        "name": _GRPC_AIO,
        "type": "STATIC",
        "connect_timeout": "1s",
        # Envoy's default circuit breakers (1,024 requests) would refuse the 1,025th
        # open stream (Subscribe, health Watch) UNAVAILABLE "overflow": lifted, so the
        # adapter's own caps decide (RESOURCE_EXHAUSTED, naming the limit).
        "circuit_breakers": {"thresholds": [_UNLIMITED]},
        # One connection to grpc.aio for each caller's connection, not a pool shared by
        # all: grpc.aio's connection age then cuts one caller's routed streams when its
        # own time comes, as without Envoy (Envoy's max_connection_duration never ends a
        # connection with a stream open), not every caller's Subscribe at once.
        "connection_pool_per_downstream_connection": True,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _TYPES + "upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": _WINDOWS},
            }
        },
        "load_assignment": {
            "cluster_name": _GRPC_AIO,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": str(unix_socket)}}}}]}
            ],
        },
    }
    chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]
    }
    files: dict[Path, str] = {}
    if settings.security.tls is not None:
        chain["transport_socket"], files = _tls(settings.security.tls, workdir)
        # Envoy has no handshake deadline of its own: a connection that never finishes
        # one (no certificate needed to open it) would hold a place for an hour.
        chain["transport_socket_connect_timeout"] = _seconds(limits.handshake_timeout_seconds)
    listener: dict[str, Any] = {
        "name": LISTENER,
        "address": {"socket_address": {"address": grpc.host, "port_value": grpc.port}},
        "enable_reuse_port": grpc.reuse_port,
        "filter_chains": [chain],
    }
    if settings.security.tls is None:
        # Without TLS nothing bounds a connection that never speaks (no preface): Envoy
        # held one for its hour-long idle timeout, in a place of max_connections. The
        # HTTP inspector waits for a connection's first bytes, and the listener closes
        # one that sends none in time, as grpc.aio does at its handshake timeout.
        listener["listener_filters"] = [
            {
                "name": "envoy.filters.listener.http_inspector",
                "typed_config": {"@type": _TYPES + "filters.listener.http_inspector.v3.HttpInspector"},
            }
        ]
        listener["listener_filters_timeout"] = _seconds(limits.handshake_timeout_seconds)
        listener["continue_on_listener_filters_timeout"] = False
    config: dict[str, Any] = {
        "node": {"id": "mesh-adapter", "cluster": "mesh-adapter"},  # SDS needs a node
        # Only the supervisor reaches it: a socket in the private working directory.
        "admin": {"address": {"pipe": {"path": str(workdir / "admin.sock"), "mode": 0o600}}},
        "static_resources": {
            "listeners": [listener],
            "clusters": [cluster],
        },
    }
    if limits.max_connections:
        config["overload_manager"] = {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _TYPES
                        + "resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": limits.max_connections,
                    },
                }
            ]
        }
    return config, files
