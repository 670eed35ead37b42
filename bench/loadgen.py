"""The load generators: `wrk` with bench/wrk.lua, and `redis-benchmark`; their output parsed."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import subprocess
from pathlib import Path

import msgspec

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
RESULT_MARK = "BENCH_RESULT "


@dataclasses.dataclass(frozen=True)
class Load:
    """What one wrk run sends."""

    path: str
    template: Path
    content_type: str
    auth: str
    origin: str | None
    messages_per_request: int


class WrkResult(msgspec.Struct, frozen=True):
    """The line bench/wrk.lua's `done()` prints, decoded."""

    requests: int
    """Complete answers, whatever their status."""
    duration_us: int
    bytes: int
    errors: dict[str, int]
    """connect, read, write, status (answers that were not 2xx or 3xx), timeout."""
    latency_us: dict[str, float]
    """mean, p50, p90, p99, p999, max of the answered requests."""
    sent: int
    """Requests written, answered or not when wrk stopped."""
    late: int
    """Paced runs: requests that started over 1 ms after their due time."""

    @property
    def seconds(self) -> float:
        return self.duration_us / 1e6

    @property
    def ok(self) -> int:
        """Answers with a 2xx or 3xx status."""
        return self.requests - self.errors.get("status", 0)

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.duration_us else 0.0

    @property
    def failed(self) -> int:
        """Every request that did not succeed, bar the ones in flight when wrk stopped."""
        e = self.errors
        return e.get("status", 0) + e.get("connect", 0) + e.get("timeout", 0) + e.get("read", 0)


def parse_wrk(output: str) -> WrkResult:
    """The result line in wrk's standard output."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            return msgspec.json.decode(line[len(RESULT_MARK) :], type=WrkResult)
    raise ValueError(f"no {RESULT_MARK.strip()} line in wrk's output:\n{output[-2000:]}")


def wrk_command(
    url: str, load: Load, duration: float, connections: int, threads: int, nonce: int
) -> list[str]:
    """The wrk command line of one run."""
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url.rstrip("/") + load.path,
        "--",
        str(load.template),
        load.path,
        load.content_type,
        load.auth,
        load.origin or "-",
        str(nonce),
    ]


def run_wrk(
    url: str,
    load: Load,
    duration: float,
    connections: int,
    threads: int,
    nonce: int,
    rate: float | None = None,
) -> WrkResult:
    """Drive `url` for `duration` seconds; paced to `rate` requests/s when given."""
    env = dict(os.environ)
    env.pop("BENCH_RATE", None)
    if rate is not None:
        env["BENCH_RATE"] = f"{rate / threads:.3f}"
    command = wrk_command(url, load, duration, connections, threads, nonce)
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=duration + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


@dataclasses.dataclass(frozen=True)
class RedisBenchResult:
    """One `redis-benchmark` test: commands per second."""

    rate: float
    requests: int


def redis_benchmark_command(
    port: int, key: str, entry: bytes, requests: int, clients: int, pipeline: int
) -> list[str]:
    """`XADD key * data <entry> source bench`, pipelined."""
    return [
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-n",
        str(requests),
        "-c",
        str(clients),
        "-P",
        str(pipeline),
        "--csv",
        "XADD",
        key,
        "*",
        "data",
        entry.decode(),
        "source",
        "bench",
    ]


def parse_redis_benchmark(output: str) -> float:
    """The requests/s of the one test in `redis-benchmark --csv` output."""
    rows = [row for row in csv.reader(io.StringIO(output)) if row]
    if len(rows) < 2 or "rps" not in rows[0]:
        raise ValueError(f"unexpected redis-benchmark output:\n{output[-2000:]}")
    header, data = rows[0], rows[-1]
    # The test's name (the whole command) is the first column; the numbers are the last.
    return float(data[len(data) - len(header) + header.index("rps")])


def run_redis_benchmark(
    port: int, key: str, entry: bytes, requests: int, clients: int, pipeline: int
) -> RedisBenchResult:
    """Run one pipelined XADD test."""
    command = redis_benchmark_command(port, key, entry, requests, clients, pipeline)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed ({done.returncode}): {done.stderr}")
    return RedisBenchResult(parse_redis_benchmark(done.stdout), requests)
