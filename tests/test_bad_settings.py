"""A value that cannot work stops `gateway serve` and `gateway worker` before anything starts:
exit 2, one line on stderr naming the flag and the variable and what is allowed, no traceback.

Each case runs the real command in its own process; they all start at once, as the
interpreter's start is most of their time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = ["worker", "--group", "g", "--destination", "stdout", "--redis-url", "redis://127.0.0.1:1"]

CASES: dict[str, tuple[list[str], dict[str, str], str]] = {
    # name: (command line, environment, what the one line says)
    "serve-log-level": (
        ["serve", "--log-level", "loud"],
        {},
        "--log-level='loud' (or GATEWAY_LOG_LEVEL): "
        "must be one of critical, debug, error, info, warning",
    ),
    "serve-log-format": (
        ["serve", "--log-format", "xml"],
        {},
        "--log-format='xml' (or GATEWAY_LOG_FORMAT): must be one of auto, json, text",
    ),
    "serve-redis-url": (
        ["serve", "--redis-url", "localhost:6379"],
        {},
        "--redis-url='localhost:6379' (or GATEWAY_REDIS_URL): "
        "must be a URL starting with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://",
    ),
    "serve-port": (
        ["serve", "--port", "70000"],
        {},
        "--port='70000' (or GATEWAY_PORT): must be an integer from 0 to 65535",
    ),
    "serve-port-env": (
        ["serve"],
        {"GATEWAY_PORT": "http"},
        "GATEWAY_PORT='http' (or --port): must be an integer from 0 to 65535",
    ),
    "serve-workers": (
        ["serve", "--workers", "0"],
        {},
        "--workers='0' (or GATEWAY_WORKERS): must be an integer, 1 or more",
    ),
    "serve-partitions": (
        ["serve", "--partitions", "-2"],
        {},
        "--partitions='-2' (or GATEWAY_PARTITIONS): must be an integer, 1 or more",
    ),
    "serve-redis-timeout": (
        ["serve", "--redis-timeout", "0"],
        {},
        "--redis-timeout='0' (or GATEWAY_REDIS_TIMEOUT): must be a number more than 0",
    ),
    "serve-shutdown-grace": (
        ["serve"],
        {"GATEWAY_SHUTDOWN_GRACE": "-1"},
        "GATEWAY_SHUTDOWN_GRACE='-1' (or --shutdown-grace): must be a number, 0 or more",
    ),
    "serve-dedupe-window": (
        ["serve", "--dedupe-window", "-5"],
        {},
        "--dedupe-window='-5' (or GATEWAY_DEDUPE_WINDOW): must be an integer, 0 or more",
    ),
    "serve-spool-max-bytes": (
        ["serve", "--spool-max-bytes", "lots"],
        {},
        "--spool-max-bytes='lots' (or GATEWAY_SPOOL_MAX_BYTES): must be a size of 1 byte or more",
    ),
    "serve-spool-segment-bytes": (
        ["serve"],
        {"GATEWAY_SPOOL_SEGMENT_BYTES": "0"},
        "GATEWAY_SPOOL_SEGMENT_BYTES='0' (or --spool-segment-bytes): must be a size",
    ),
    "serve-spool-fsync": (
        ["serve", "--spool-fsync", "sometimes"],
        {},
        "(or GATEWAY_SPOOL_FSYNC): must be one of always, everysec, no",
    ),
    "serve-trusted-proxies": (
        ["serve", "--trusted-proxies", "10.0.0.0/33"],
        {},
        "(or GATEWAY_TRUSTED_PROXIES): must be comma-separated networks",
    ),
    "serve-message-over-batch": (
        ["serve", "--max-message-bytes", "600000"],
        {},
        "--max-message-bytes='600000' (or GATEWAY_MAX_MESSAGE_BYTES): "
        "must be at most --max-batch-bytes (512000)",
    ),
    "serve-wait-replicas-timeout": (
        ["serve", "--wait-replicas", "1", "--wait-replicas-timeout", "3"],
        {},
        "--wait-replicas-timeout='3' (or GATEWAY_WAIT_REPLICAS_TIMEOUT): "
        "must be less than --redis-timeout (2)",
    ),
    "serve-wait-replicas-fsync": (
        ["serve"],
        {"GATEWAY_WAIT_REPLICAS_FSYNC": "true"},
        "GATEWAY_WAIT_REPLICAS_FSYNC='true' (or --wait-replicas-fsync): "
        "needs --wait-replicas 1 or more",
    ),
    "serve-sources": (
        ["serve", "--sources", "missing.toml"],
        {},
        "--sources='missing.toml' (or GATEWAY_SOURCES): must be a file the gateway can read",
    ),
    "serve-data-dir": (
        ["serve", "--data-dir", "a-file"],
        {},
        "--data-dir='a-file' (or GATEWAY_DATA_DIR): must be a directory (it is a file)",
    ),
    "serve-missing-value": (
        ["serve", "--port"],
        {},
        "gateway serve: argument --port: expected one argument",
    ),
    "serve-unknown-flag": (
        ["serve", "--prot", "80"],
        {},
        "unrecognized arguments: --prot 80",
    ),
    "worker-log-level": (
        [*WORKER, "--log-level", "loud"],
        {},
        "--log-level='loud' (or GATEWAY_LOG_LEVEL): must be one of",
    ),
    "worker-log-format-env": (
        WORKER,
        {"GATEWAY_LOG_FORMAT": "xml"},
        "GATEWAY_LOG_FORMAT='xml' (or --log-format): must be one of auto, json, text",
    ),
    "worker-redis-url": (
        ["worker", "--group", "g", "--destination", "stdout", "--redis-url", "localhost:6379"],
        {},
        "--redis-url='localhost:6379' (or GATEWAY_REDIS_URL): must be a URL",
    ),
    "worker-redis-url-env": (
        ["worker", "--group", "g", "--destination", "stdout"],
        {"GATEWAY_REDIS_URL": "localhost:6379"},
        "GATEWAY_REDIS_URL='localhost:6379' (or --redis-url): must be a URL",
    ),
    "worker-partitions-env": (
        WORKER,
        {"GATEWAY_PARTITIONS": "0"},
        "GATEWAY_PARTITIONS='0' (or --partitions): must be an integer, 1 or more",
    ),
    "worker-batch-size": (
        [*WORKER, "--batch-size", "0"],
        {},
        "--batch-size='0' (or GATEWAY_BATCH_SIZE): must be an integer, 1 or more",
    ),
    "worker-reclaim-idle": (
        [*WORKER, "--reclaim-idle", "0"],
        {},
        "--reclaim-idle='0' (or GATEWAY_RECLAIM_IDLE): must be a number more than 0",
    ),
    "worker-block": (
        [*WORKER, "--block", "-1"],
        {},
        "--block='-1' (or GATEWAY_BLOCK): must be a number more than 0",
    ),
    "worker-max-attempts": (
        [*WORKER, "--max-attempts", "0"],
        {},
        "--max-attempts='0' (or GATEWAY_MAX_ATTEMPTS): must be an integer, 1 or more",
    ),
    "worker-metrics-port": (
        [*WORKER, "--metrics-port", "70000"],
        {},
        "--metrics-port='70000' (or GATEWAY_METRICS_PORT): must be an integer from 0 to 65535",
    ),
    "worker-destination": (
        ["worker", "--group", "g", "--destination", "nosuch"],
        {},
        "--destination='nosuch' (or GATEWAY_DESTINATION): "
        "must be one of http, file, stdout, archive, or package.module:Class",
    ),
    "worker-no-group": (
        ["worker", "--destination", "stdout"],
        {},
        "--group (or GATEWAY_GROUP) is required",
    ),
    "worker-no-destination": (
        ["worker"],
        {"GATEWAY_GROUP": "g"},
        "--destination (or GATEWAY_DESTINATION) is required, or --config FILE",
    ),
    "worker-option-type": (
        [*WORKER[:-2], "--destination", "http", "--timeout", "soon"],
        {},
        "gateway worker: argument --timeout: invalid float value: 'soon'",
    ),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    """Every case's exit code, stdout and stderr: all started at once, in a fresh directory."""
    directory = tmp_path_factory.mktemp("bad-settings")
    (directory / "a-file").write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    base["PYTHONPATH"] = str(ROOT)
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            env={**base, **environ},
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (args, environ, _) in CASES.items()
    }
    found = {}
    for name, process in processes.items():
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        found[name] = (process.returncode, out, err)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_refused_with_one_line(name: str, results: dict[str, tuple[int, str, str]]) -> None:
    code, out, err = results[name]
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1, err
    assert CASES[name][2] in err
