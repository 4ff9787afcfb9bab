"""The peer bench: what one call costs the adapter, beside a compiled peer and
the Python ceiling, against an upstream that is never the bottleneck (issue 11).

    python -m bench.peer [--seconds 5] [--repeat 3] [--concurrency 1,16,64] [--smoke]

Arms, each answering ``openframe.v1.DeviceService/GetDevice`` with the same
~650-byte Device (checked byte for byte before anything is measured):

- mesh-adapter as shipped (tracing, default transport; events, cache and rate
  limiter off; retries, deadlines, rich errors on), exporting its spans and
  metrics over OTLP to a sink (go/otlpsink), and once more with the cache on
  (every call a hit);
- the same adapter behind Envoy (``grpc.front = "envoy"``, docs/envoy-front.md),
  plain and with every call a cache hit; its CPU is the process tree's (the
  supervisor and Envoy, which runs the adapter);
- vanguard-go: connectrpc.com/vanguard transcoding gRPC -> REST through
  ``httputil.ReverseProxy``, schema from a descriptor set of protos/ (go/vanguard);
- the grpc.aio ceiling: a plain grpc.aio server returning a fixed Device (ceiling.py);
- the floor: the same server doing one bare aiohttp GET of the upstream per call
  (ceiling.py --upstream), i.e. what any design of this adapter on grpc.aio and
  aiohttp costs before its own work;
- aiohttp and httpx (over httpx-aiohttp) GETting the upstream directly (direct_client.py).

The upstream is a compiled Go ``net/http`` server (go/upstream) answering the
fixed JSON. ghz drives the gRPC arms. The system under test runs on one core
(``taskset``), ghz and the upstream on the other; CPU is each arm's own process
CPU time over the run, children included (1.0 = its whole core), so "per core" = req/s / CPU.
The events rows (events.py) compare the spool + drainer path with a raw aiokafka
producer on one broker (``BENCH_KAFKA_PORT``, else ``KAFKA_TEST_PORT``, else 19092),
``--repeat`` times: each figure is the median over the runs (report.median_events). The
saturated runs last ``--events-seconds``, the runs at half the rate ``--events-paced-seconds``.

setup.sh builds the Go programs and ghz once (stamped, in .build/). The table and
the goal ratios go to stdout, ``--json`` writes the rows, ``--chart`` a PNG.
"""
