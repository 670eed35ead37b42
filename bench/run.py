"""The benchmark harness, one command:

    python bench/run.py [--duration 10] [--connections 64] [--rounds 3] [--out docs/performance.md]
                        [--suppressed 100000]

Starts a Redis-compatible server, the gateway (one process, then two) and the reference
apps, drives each with wrk, runs redis-benchmark, and prints the table (and writes it into
--out between the result markers). Each ratio the issue asks for is measured in --rounds
alternating pairs (the gateway, then its reference) and judged on the median. Needs `wrk`
and `redis-benchmark` (Debian: apt-get install wrk redis-tools). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
from redis import Redis

from bench import pages, payloads
from bench.loadgen import Load, WrkResult, run_redis_benchmark, run_wrk
from bench.procs import ROOT, CpuMeter, Server
from bench.report import MB, Row, Target, table, targets_table, write_between_markers
from gateway.constants import events_key
from gateway.ops.embedded import RedisProcess, free_port, server_binary
from gateway.store.regulation_records import member
from gateway.store.regulations import SUPPRESSED, VERSION

STREAM = events_key(0)
WARMUP_SECONDS = 2.0
RSS_LIMIT = 150 * MB
P99_LIMIT_MS = 10.0


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    missing = [tool for tool in ("wrk", "redis-benchmark") if shutil.which(tool) is None]
    if missing:
        print(f"bench: {', '.join(missing)} not found: apt-get install wrk redis-tools")
        return 2
    started = time.monotonic()
    machine = machine_facts()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        harness = Harness(Path(tmp), options)
        rows = harness.run()
    machine["redis"] += f", nice {harness.redis_nice}"
    elapsed = time.monotonic() - started
    block = render(rows, machine, options, elapsed, harness.page_reports)
    print(block)
    if options.out != "-":
        write_between_markers(ROOT / options.out, block)
        print(f"\nwritten into {options.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1: 2 cores)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating runs of each ratio's pair (3)"
    )
    parser.add_argument(
        "--out", default="docs/performance.md", help="file to write the results into, - for none"
    )
    parser.add_argument(
        "--suppressed",
        type=int,
        default=0,
        help="suppress this many user ids (none the load sends) before each run: the "
        "regulations' check at its size (docs/regulations.md)",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="enforce a tracking plan on the source (50 events x 10 properties, allow mode; "
        "docs/tracking-plans.md); compare with a run without it",
    )
    parser.add_argument(
        "--inspector-pages",
        type=int,
        default=0,
        help="keep this many live inspector pages (their feeds) open on each gateway while it "
        "is measured (docs/inspector.md)",
    )
    return parser


UNREACHED = 10_000_000
"""The per-address budget the gateway runs with: requests a second, and at once."""


class Harness:
    """Runs every measurement against one Redis-compatible server."""

    def __init__(self, tmp: Path, options: argparse.Namespace) -> None:
        self.tmp = tmp
        self.duration: float = options.duration
        self.connections: int = options.connections
        self.threads: int = options.threads
        self.rounds: int = max(1, options.rounds)
        self.suppressed = [
            member(None, "USER_ID", f"bench-suppressed-{n}") for n in range(options.suppressed)
        ]
        self.rows: list[Row] = []
        self.pages: int = options.inspector_pages
        self.page_reports: list[str] = []
        """What the open inspector pages received, a line per gateway (`bench.pages`)."""
        self.redis_nice = 0
        """The Redis server's nice value, read once it runs (`gateway.ops.embedded.PRIORITY`)."""
        track = tmp / "track.json"
        track.write_bytes(payloads.track_body())
        batch = tmp / "batch.json"
        batch.write_bytes(payloads.batch_body(100))
        auth = payloads.basic_auth()
        # Like analytics.js in a browser: text/plain (no preflight per event), Basic auth.
        self.track = Load("/v1/t", track, "text/plain", auth, payloads.ORIGIN, 1)
        self.batch = Load("/v1/batch", batch, "application/json", auth, None, 100)
        self.sources = tmp / "sources.toml"
        plan = None
        if options.plan:
            plan = "plan.json"
            (tmp / plan).write_bytes(msgspec.json.encode(payloads.tracking_plan()))
        self.sources.write_text(payloads.sources_toml(plan))

    def run(self) -> list[Row]:
        """Every run, in order; the rows of the table."""
        redis_server = RedisProcess(self.tmp / "redis")
        redis_server.start()
        self.redis_port = redis_server.port
        assert redis_server.process is not None
        self.redis_pid = redis_server.process.pid
        self.redis_nice = os.getpriority(os.PRIO_PROCESS, self.redis_pid)  # see embedded.PRIORITY
        self.redis = Redis.from_url(redis_server.url)
        self.redis.config_set("lazyfree-lazy-user-flush", "no")  # see _empty_redis
        try:
            self._run_all(redis_server.url)
        finally:
            self.redis.close()
            redis_server.stop()
        return self.rows

    def _run_all(self, url: str) -> None:
        """The ratio pairs run in alternation, so that both sides meet the same machine.

        On a shared virtual machine the speed the host gives moves by tens of percent
        between minutes; alternating the gateway with its reference, round after round,
        and judging the median of the per-round ratios keeps that out of the ratios.
        """
        python = sys.executable
        bare_args = [python, "bench/ref_bare.py", "{port}"]
        minimal_args = [python, "bench/ref_minimal.py", "{port}", url, str(self.sources)]
        minimal_args.append(str(self.tmp / "minimal-data"))
        with (
            self.server("bare aiohttp", bare_args) as bare,
            self.server("minimal gateway", minimal_args) as minimal,
            self.gateway(url, 1) as gateway,
        ):
            peaks = []
            for round_ in range(1, self.rounds + 1):
                self.measure(bare, self.track, stores=False, round_=round_)
                self.measure(minimal, self.track, round_=round_)
                peaks.append(self.measure(gateway, self.track, round_=round_).rate)
            self.measure(gateway, self.track, rate=statistics.median(peaks) / 2, warmup=False)
            self.measure(gateway, self.batch)
        naive_args = [python, "bench/ref_naive.py", "{port}", url]
        with self.server("straightforward", naive_args) as naive:
            self.measure(naive, self.track)
            self.measure(naive, self.batch)
        with self.gateway(url, 2) as gateway:
            peaks = []
            for round_ in range(1, self.rounds + 1):
                peaks.append(self.measure(gateway, self.batch, round_=round_).rate)
                self.queue_ceiling(round_)
            self.measure(gateway, self.batch, rate=statistics.median(peaks) / 2, warmup=False)
            self.measure(gateway, self.track)

    @contextlib.contextmanager
    def gateway(self, url: str, workers: int) -> Iterator[Server]:
        """`gateway serve` with `workers` processes on `url`, as `server` starts it; with
        `--inspector-pages`, that many inspector feeds open on it while it runs."""
        admin_port = free_port()
        args = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1"]
        args += ["--port", "{port}", "--redis-url", url, "--workers", str(workers)]
        args += ["--sources", str(self.sources), "--data-dir", str(self.tmp / "gateway-data")]
        args += ["--log-level", "warning", "--admin-port", str(admin_port)]
        args += ["--admin-token", pages.TOKEN]
        # All the load comes from 127.0.0.1: a budget no run reaches, yet paid for per request
        # (docs/security.md, docs/performance.md).
        args += ["--address-rate", str(UNREACHED), "--address-burst", str(UNREACHED)]
        name = f"gateway, {workers} process{'es' if workers > 1 else ''}"
        with self.server(name, args, listeners=workers) as server:
            if not self.pages:
                yield server
                return
            with pages.opened(name, admin_port, self.pages, self.page_reports):
                yield server

    @contextlib.contextmanager
    def server(self, name: str, args: list[str], listeners: int = 1) -> Iterator[Server]:
        port = free_port()
        args = [arg.replace("{port}", str(port)) for arg in args]
        log = self.tmp / f"{name.replace(' ', '_').replace(',', '')}.log"
        server = Server(name, args, port, log, listeners)
        print(f"bench: starting {name}", file=sys.stderr)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    def measure(
        self,
        server: Server,
        load: Load,
        rate: float | None = None,
        warmup: bool = True,
        stores: bool = True,
        round_: int = 0,
    ) -> WrkResult:
        """One wrk run against `server` on an empty Redis; adds its row.

        `rate`: paced at that many requests/s (else as fast as it goes); `stores`: the
        server writes to the stream, so its length is checked against the answers;
        `round_`: which round of an alternating pair this is (0: none)."""
        self.ready(server, load, rate, warmup)
        return self.drive(server, load, rate, stores, round_)

    def ready(
        self, server: Server, load: Load, rate: float | None = None, warmup: bool = True
    ) -> None:
        """Before a measured run: warm `server` up (unless not `warmup`), empty Redis."""
        if warmup:
            self._wrk(server, load, WARMUP_SECONDS, rate)
        self._settle()
        self._empty_redis()

    def drive(
        self,
        server: Server,
        load: Load,
        rate: float | None = None,
        stores: bool = True,
        round_: int = 0,
    ) -> WrkResult:
        """The measured run of `measure`, once `ready`; adds its row."""
        mode = "peak" if rate is None else f"paced at {rate:,.0f} req/s"
        if round_:
            mode += f", round {round_}"
        print(f"bench: {server.name}, {load.path}, {mode}", file=sys.stderr)
        groups = {f"server {pid}": [pid] for pid in server.serving_pids()}
        meter = CpuMeter({**groups, "redis": [self.redis_pid], "load": []})
        meter.start()
        result = self._wrk(server, load, self.duration, rate)
        cpu = meter.stop()
        row = Row(
            server=server.name,
            payload="track" if load.messages_per_request == 1 else "batch of 100",
            connections=self.connections,
            mode=mode,
            messages_per_request=load.messages_per_request,
            result=result,
            cpu=cpu,
            round=round_,
        )
        if rate is not None and result.late:
            row.mode += f" ({result.late} late)"
        row.durable = (
            self._stream_check(result, load.messages_per_request) if stores else "no stream"
        )
        row.rss = server.peak_rss()
        self.rows.append(row)
        return result

    def _wrk(self, server: Server, load: Load, seconds: float, pace: float | None) -> WrkResult:
        url = f"http://127.0.0.1:{server.port}"
        return run_wrk(url, load, seconds, self.connections, self.threads, _nonce(), pace)

    def _empty_redis(self, timeout: float = 30.0) -> None:
        """An empty Redis with a fresh AOF, so no run pays for an earlier one's data.

        The flush is synchronous (see `run`): Valkey frees asynchronously by default, in a
        thread that would take CPU from the next run. Then an AOF rewrite of the empty
        dataset, so no automatic rewrite (a fork) of the runs' accumulated AOF falls into a
        measurement."""
        self.redis.flushall()
        self._suppress()
        self.redis.bgrewriteaof()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.redis.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                return
            time.sleep(0.05)
        raise RuntimeError("Redis did not finish rewriting its AOF")

    def _suppress(self) -> None:
        """`--suppressed`: the ids in the suppressed set, and its version moved, as the
        admin API would (every gateway process reads them within its poll)."""
        if not self.suppressed:
            return
        for start in range(0, len(self.suppressed), 10_000):
            self.redis.sadd(SUPPRESSED, *self.suppressed[start : start + 10_000])
        self.redis.incr(VERSION)
        time.sleep(0.5)

    def _settle(self, timeout: float = 10.0) -> int:
        """Wait until the stream stops growing (requests in flight done); its length."""
        deadline = time.monotonic() + timeout
        length = -1
        while time.monotonic() < deadline:
            now = int(self.redis.xlen(STREAM))
            if now == length:
                return now
            length = now
            time.sleep(0.2)
        return length

    def _stream_check(self, result: WrkResult, per_request: int) -> str:
        """Every acknowledged message is in the stream, and no more than were sent."""
        length = self._settle()
        acked = result.ok * per_request
        sent = result.sent * per_request
        if result.failed or not acked <= length <= sent:
            return f"**MISMATCH**: XLEN {length:,}, 2xx {acked:,}, sent {sent:,}"
        extra = length - acked
        return f"XLEN = 2xx {acked:,}" + (f" + {extra:,} in flight at stop" if extra else "")

    def queue_ceiling(self, round_: int = 0) -> None:
        """redis-benchmark: pipelined XADD of the entry the gateway stores, 100 a pipeline."""
        entry = payloads.stored_entry()
        key = "bench:queue"
        print("bench: redis-benchmark XADD -P 100", file=sys.stderr)
        run_redis_benchmark(self.redis_port, key, entry, 50_000, 16, 100)  # warm-up, estimate
        self._empty_redis()
        estimate = run_redis_benchmark(self.redis_port, key, entry, 100_000, 16, 100).rate
        self._empty_redis()
        requests = max(100_000, int(estimate * min(self.duration, 5) / 100) * 100)
        meter = CpuMeter({"redis": [self.redis_pid], "load": []})
        meter.start()
        result = run_redis_benchmark(self.redis_port, key, entry, requests, 16, 100)
        cpu = meter.stop()
        length = int(self.redis.xlen(key))
        self.rows.append(
            Row(
                server="redis-benchmark XADD, -P 100",
                payload="stored entry",
                connections=16,
                mode=f"{requests:,} entries" + (f", round {round_}" if round_ else ""),
                messages_per_request=100,
                rate=result.rate,
                cpu=cpu,
                round=round_,
                durable=f"XLEN {length:,}" + ("" if length == requests else " **MISMATCH**"),
            )
        )
        self._empty_redis()


def _nonce() -> int:
    return int.from_bytes(os.urandom(4), "big")


def find(rows: list[Row], server: str, payload: str, paced: bool = False) -> Row | None:
    """The (first) row of `server` with `payload`, at peak or paced."""
    return next(iter(find_all(rows, server, payload, paced)), None)


def find_all(rows: list[Row], server: str, payload: str, paced: bool = False) -> list[Row]:
    """Every row of `server` with `payload`, at peak or paced, in order."""
    return [
        row
        for row in rows
        if row.server.startswith(server)
        and row.payload == payload
        and row.mode.startswith("paced") == paced
    ]


def paired_ratios(gateway: list[Row], reference: list[Row]) -> list[float]:
    """Per round, the gateway's messages/s over its reference's in the same round."""
    by_round = {row.round: row for row in reference}
    return [
        row.messages_per_s / by_round[row.round].messages_per_s
        for row in gateway
        if row.round in by_round
    ]


def _rounds(ratios: list[float]) -> str:
    return ", ".join(f"{ratio:.2f}x" for ratio in ratios)


def judge(rows: list[Row]) -> list[Target]:
    """The issue's must-show figures from this run."""
    targets: list[Target] = []
    bare = find_all(rows, "bare aiohttp", "track")
    naive = find(rows, "straightforward", "track")
    gw1 = find_all(rows, "gateway, 1 process", "track")
    ratios = paired_ratios(gw1, bare)
    if ratios:
        median = statistics.median(ratios)
        rate = statistics.median(row.requests_per_s for row in gw1)
        vs_naive = f"; {rate / naive.requests_per_s:.1f}x straightforward" if naive else ""
        minimal = paired_ratios(find_all(rows, "minimal gateway", "track"), bare)
        vs_minimal = (
            f"; minimal gateway median {statistics.median(minimal):.2f}x bare"
            f" (rounds: {_rounds(minimal)})"
            if minimal
            else ""
        )
        targets.append(
            Target(
                "track, 1 gateway process, 64 connections: >= 0.7x bare aiohttp requests/s",
                f"median {median:.2f}x (rounds: {_rounds(ratios)}){vs_naive}{vs_minimal}",
                median >= 0.7,
            )
        )
    gw2 = find_all(rows, "gateway, 2 processes", "batch of 100")
    queue = find_all(rows, "redis-benchmark", "stored entry")
    ratios = paired_ratios(gw2, queue)
    if ratios:
        rates = [row.messages_per_s for row in gw2]
        need = min(100_000.0, 0.5 * statistics.median(row.messages_per_s for row in queue))
        targets.append(
            Target(
                "batches of 100, 2 processes: >= min(100k, 0.5x redis-benchmark XADD) messages/s",
                f"median {statistics.median(ratios):.2f}x redis-benchmark "
                f"(rounds: {_rounds(ratios)}); median {statistics.median(rates):,.0f} msg/s, "
                f"needed {need:,.0f}",
                statistics.median(ratios) >= 0.5 or statistics.median(rates) >= 100_000,
            )
        )
    for server, payload in (
        ("gateway, 1 process", "track"),
        ("gateway, 2 processes", "batch of 100"),
    ):
        paced = find(rows, server, payload, paced=True)
        if paced and paced.result:
            p99 = paced.result.latency_us["p99"] / 1000
            targets.append(
                Target(
                    f"p99 latency at half the peak rate ({server}, {payload}): <= 10 ms",
                    f"{p99:.2f} ms at {paced.requests_per_s:,.0f} req/s",
                    p99 <= P99_LIMIT_MS,
                )
            )
    gateway_rss = [size for r in rows if r.server.startswith("gateway") for size in r.rss.values()]
    if gateway_rss:
        targets.append(
            Target(
                "peak RSS per gateway process under load: <= 150 MB",
                f"{max(gateway_rss) / MB:.0f} MB at most",
                max(gateway_rss) <= RSS_LIMIT,
            )
        )
    checks = [r.durable for r in rows if r.durable.startswith(("XLEN", "**MISMATCH"))]
    if checks:
        bad = sum("MISMATCH" in c for c in checks)
        targets.append(
            Target(
                "every 2xx answer is an entry in the stream (XLEN after each run)",
                f"{len(checks) - bad} of {len(checks)} runs consistent",
                bad == 0,
            )
        )
    return targets


def machine_facts() -> dict[str, str]:
    """What the numbers depend on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("aiohttp", "uvloop", "msgspec", "redis", "hiredis")
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": f"{os.cpu_count()} x {cpu}",
        "memory": memory,
        "system": f"Linux {platform.release()}, Python {platform.python_version()}",
        "libraries": versions,
        "redis": _first_line([server_binary(), "--version"])
        + f" (appendonly yes, appendfsync {RedisProcess(ROOT).appendfsync})",
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "commit": _first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "load": "load average {:.2f} {:.2f} {:.2f} before the run".format(*os.getloadavg()),
    }


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0]
        if (done.stdout or done.stderr)
        else "unknown"
    )


def render(
    rows: list[Row],
    machine: dict[str, str],
    options: argparse.Namespace,
    elapsed: float,
    page_reports: Sequence[str] = (),
) -> str:
    """The results block of docs/performance.md."""
    facts = "\n".join(f"- {key}: {value}" for key, value in machine.items())
    flags = f" --inspector-pages {options.inspector_pages}" if options.inspector_pages else ""
    facts += "".join(f"\n- inspector pages, {report}" for report in page_reports)
    return f"""### Results of the last run

`python bench/run.py --duration {options.duration:g} --connections {options.connections} \
--threads {options.threads} --rounds {options.rounds}{flags}`: {elapsed:.0f} s in all.

{facts}

{table(rows)}

{targets_table(judge(rows))}
"""


if __name__ == "__main__":
    sys.exit(main())
