"""One harness figure at several commits, measured in alternation: where did it move?

    python bench/commits.py [--load batch] [--workers 2] [--rounds 4] COMMIT...

Checks each commit out in a worktree of its own (under the temporary directory's
`gateway-bench-commits/`, kept for the next run), starts `gateway serve` of every commit at
once on one Redis-compatible server, then, round after round, drives each in turn with the
harness's load (track, or batches of 100) on an emptied Redis. Prints each run and every
commit's median. A single harness run per commit cannot tell a regression from a slow
stretch of a shared machine; commits measured in alternation meet the same machine, as
`bench/run.py`'s ratio pairs do (docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis

from bench import payloads
from bench.loadgen import Load, run_wrk
from bench.procs import ROOT, Server
from gateway.ops.embedded import RedisProcess, free_port

TREES = Path(tempfile.gettempdir()) / "gateway-bench-commits"
WARMUP_SECONDS = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="+", help="commits (anything git rev-parse takes)")
    parser.add_argument("--load", choices=("track", "batch"), default="batch")
    parser.add_argument("--workers", type=int, default=2, help="gateway processes (2)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds over every commit (4)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    options = parser.parse_args(argv)
    shas = [_sha(commit) for commit in options.commits]
    rates: dict[str, list[float]] = {sha: [] for sha in shas}
    with (
        tempfile.TemporaryDirectory(prefix="gateway-commits-") as tmp_,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_)
        load = _load(tmp, options.load)
        sources = tmp / "sources.toml"
        sources.write_text(payloads.sources_toml())
        redis_server = RedisProcess(tmp / "redis")
        redis_server.start()
        stack.callback(redis_server.stop)
        redis = Redis.from_url(redis_server.url)
        stack.callback(redis.close)
        redis.config_set("lazyfree-lazy-user-flush", "no")
        servers = {}
        for sha in shas:
            server = _server(sha, redis_server.url, sources, tmp, options.workers)
            print(f"commits: starting {sha}", file=sys.stderr)
            server.start()
            stack.callback(server.stop)
            servers[sha] = server
        for round_ in range(1, options.rounds + 1):
            for sha, server in servers.items():
                url = f"http://127.0.0.1:{server.port}"
                run_wrk(url, load, WARMUP_SECONDS, options.connections, 1, _nonce())
                redis.flushall()
                result = run_wrk(url, load, options.duration, options.connections, 1, _nonce())
                rate = result.ok * load.messages_per_request / result.seconds
                rates[sha].append(rate)
                failed = f", {result.failed} failed" if result.failed else ""
                print(f"round {round_}, {sha}: {rate:,.0f} messages/s{failed}", flush=True)
    print()
    for sha in shas:
        runs = ", ".join(f"{rate:,.0f}" for rate in rates[sha])
        print(f"{sha} {_subject(sha)[:60]}: median {statistics.median(rates[sha]):,.0f} ({runs})")
    return 0


def _load(tmp: Path, kind: str) -> Load:
    """The harness's track load or its batches of 100."""
    auth = payloads.basic_auth()
    if kind == "track":
        (tmp / "track.json").write_bytes(payloads.track_body())
        return Load("/v1/t", tmp / "track.json", "text/plain", auth, payloads.ORIGIN, 1)
    (tmp / "batch.json").write_bytes(payloads.batch_body(100))
    return Load("/v1/batch", tmp / "batch.json", "application/json", auth, None, 100)


def _server(sha: str, redis_url: str, sources: Path, tmp: Path, workers: int) -> Server:
    """`gateway serve` of `sha`'s tree, with the flags that commit knows."""
    tree = _tree(sha)
    port = free_port()
    args = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--redis-url", redis_url, "--workers", str(workers), "--sources", str(sources)]
    args += ["--data-dir", str(tmp / f"data-{sha}"), "--log-level", "warning"]
    known = _help(tree)
    if "--address-rate" in known:  # the budget the harness runs with: never reached
        args += ["--address-rate", "10000000", "--address-burst", "10000000"]
    if "--admin-port" in known:
        args += ["--admin-port", str(free_port())]
    return Server(sha, args, port, tmp / f"{sha}.log", workers, cwd=tree)


def _tree(sha: str) -> Path:
    tree = TREES / sha
    if not tree.exists():
        TREES.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), sha],
            check=True,
            capture_output=True,
        )
    return tree


def _help(tree: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    return done.stdout


def _sha(commit: str) -> str:
    return _git("rev-parse", "--short", commit)


def _subject(sha: str) -> str:
    return _git("log", "-1", "--format=%s", sha)


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _nonce() -> int:
    return int.from_bytes(os.urandom(4), "big")


if __name__ == "__main__":
    sys.exit(main())
