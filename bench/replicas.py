"""What `--wait-replicas 1` costs, on a local Redis Cluster of three masters with a replica each:

    python bench/replicas.py [--duration 10] [--connections 64] [--rounds 3]

Starts the cluster (the embedded server's binary, as tests/cluster does), then, round after
round, one gateway process without the option and one with it, each driven by wrk with the
harness's `track` and batch-of-100 bodies (every message of its own user, so over the
16 partitions and the three masters), as fast as they go and `track` paced at `--paced`
requests/s. Then the writer alone: flushes of one entry one after another, with and without
the `WAIT`, which is the option's latency without HTTP. Prints Markdown tables for
docs/performance.md. The two sides alternate so that both meet the same (shared, noisy)
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from bench import payloads
from bench.loadgen import Load, WrkResult, run_wrk
from bench.procs import Server
from gateway.constants import events_key
from gateway.ops.embedded import free_port
from gateway.store.cluster_writer import ClusterWriter
from gateway.store.entry import Entry
from gateway.store.replicas import ReplicaWait
from tests.helpers.cluster import Cluster, start_cluster

PARTITIONS = 16
WARMUP = 2.0
FLUSHES = 2000


def bodies(tmp: Path) -> tuple[Load, Load]:
    """The harness's track and batch loads, each message with its own anonymousId."""
    message = payloads.track_message()
    message["anonymousId"] = payloads.ID_MARK  # wrk.lua gives every mark its own id
    track = tmp / "track.json"
    track.write_bytes(msgspec.json.encode(message))
    batch = tmp / "batch.json"
    batch.write_bytes(msgspec.json.encode({"batch": [message] * 100}))
    auth = payloads.basic_auth()
    return (
        Load("/v1/t", track, "text/plain", auth, payloads.ORIGIN, 1),
        Load("/v1/batch", batch, "application/json", auth, None, 100),
    )


@contextlib.contextmanager
def gateway(cluster: Cluster, tmp: Path, wait: int) -> Iterator[Server]:
    port = free_port()
    args = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--redis-url", cluster.seed, "--workers", "1", "--partitions", str(PARTITIONS)]
    args += ["--sources", str(tmp / "sources.toml"), "--data-dir", str(tmp / f"data-{wait}")]
    args += ["--log-level", "warning", "--wait-replicas", str(wait)]
    server = Server(f"wait {wait}", args, port, tmp / f"gateway-{wait}.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def empty(cluster: Cluster) -> None:
    for index in range(len(cluster.nodes)):
        with cluster.client(index) as client:
            client.flushall()


def spooled(tmp: Path, wait: int) -> int:
    """Bytes in the gateway's spool files: what Redis (or its replicas) did not take in time."""
    return sum(path.stat().st_size for path in (tmp / f"data-{wait}").rglob("*.seg"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced", type=float, default=500.0, help="track requests/s (500)")
    options = parser.parse_args(argv)
    results: dict[tuple[str, int], list[WrkResult]] = {}
    flushes: dict[int, list[float]] = {0: [], 1: []}
    with tempfile.TemporaryDirectory(prefix="gateway-replicas-") as directory:
        tmp = Path(directory)
        (tmp / "sources.toml").write_text(payloads.sources_toml())
        loads = bodies(tmp)
        cluster = start_cluster(tmp / "cluster", replicas=True)
        try:
            pace = options.paced
            for round_ in range(options.rounds):
                for wait in (0, 1) if round_ % 2 == 0 else (1, 0):
                    with gateway(cluster, tmp, wait) as server:
                        url = f"http://127.0.0.1:{server.port}"
                        for load, rate in (*((load, None) for load in loads), (loads[0], pace)):
                            run_wrk(url, load, WARMUP, options.connections, 1, 0, rate)
                            empty(cluster)
                            nonce = round_ * 10 + wait + 1
                            result = run_wrk(
                                url, load, options.duration, options.connections, 1, nonce, rate
                            )
                            results.setdefault((name(load, rate), wait), []).append(result)
                            print(
                                f"bench: round {round_ + 1}, wait {wait}, {name(load, rate)}: "
                                f"{result.rate * load.messages_per_request:,.0f} messages/s, "
                                f"p99 {result.latency_us['p99'] / 1000:.1f} ms, "
                                f"{result.failed} failed, spool {spooled(tmp, wait)} bytes",
                                file=sys.stderr,
                            )
                for wait in (0, 1):
                    flushes[wait] += asyncio.run(one_at_a_time(cluster, wait))
        finally:
            cluster.stop()
    print(render(results, [name(loads[0], None), name(loads[1], None), name(loads[0], pace)]))
    print()
    print(render_flushes(flushes))
    return 0


def name(load: Load, rate: float | None) -> str:
    what = "track" if load.messages_per_request == 1 else "batch of 100"
    return what if rate is None else f"{what}, paced at {rate:g} req/s"


async def one_at_a_time(cluster: Cluster, wait: int) -> list[float]:
    """Seconds each of `FLUSHES` one-entry flushes took, one after another (over partitions)."""
    replicas = ReplicaWait(wait, 1.0) if wait else None
    writer = ClusterWriter(cluster.seed, 3600, 2.0, replicas)
    took = []
    try:
        for n in range(FLUSHES):
            entry = Entry(events_key(n % PARTITIONS), b"{}", "bench", f"{wait}-{time.time()}-{n}")
            start = time.perf_counter()
            await writer.write([entry])
            took.append(time.perf_counter() - start)
    finally:
        await writer.close()
    return took[100:]  # the first ones open the connections


def render(results: dict[tuple[str, int], list[WrkResult]], names: list[str]) -> str:
    lines = [
        "| load | `--wait-replicas` | messages/s, each round | median | p50 / p99 ms (median) |",
        "|---|---|---|---|---|",
    ]
    for what in names:
        for wait in (0, 1):
            runs = results[(what, wait)]
            per = 100 if what.startswith("batch") else 1
            rates = [run.rate * per for run in runs]
            p50 = statistics.median(run.latency_us["p50"] for run in runs) / 1000
            p99 = statistics.median(run.latency_us["p99"] for run in runs) / 1000
            each = ", ".join(f"{rate:,.0f}" for rate in rates)
            lines.append(
                f"| {what} | {wait} | {each} | {statistics.median(rates):,.0f} | "
                f"{p50:.2f} / {p99:.2f} |"
            )
    return "\n".join(lines)


def render_flushes(flushes: dict[int, list[float]]) -> str:
    lines = ["| one-entry flushes, one at a time | p50 µs | p90 µs | p99 µs |", "|---|--:|--:|--:|"]
    for wait, took in flushes.items():
        cuts = statistics.quantiles(took, n=100)
        what = "with `WAIT 1`" if wait else "without"
        p50, p90, p99 = (cuts[i] * 1e6 for i in (49, 89, 98))
        lines.append(f"| {what} | {p50:,.0f} | {p90:,.0f} | {p99:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
