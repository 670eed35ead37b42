"""The processes under test: start one, wait until it listens, read its peak memory, stop it."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """An HTTP server under test (the gateway or a reference app), started on a free port."""

    def __init__(
        self, name: str, args: list[str], port: int, log: Path, listeners: int = 1, cwd: Path = ROOT
    ):
        self.name = name
        self.args = args
        self.port = port
        self.log = log
        self.listeners = listeners
        """How many listening sockets it opens (one per process with SO_REUSEPORT)."""
        self.cwd = cwd
        """Where it runs: `python -m gateway` imports the gateway found there first."""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until each of its processes listens."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # one signal reaches the whole tree, and only it
            )
        deadline = time.monotonic() + timeout
        while listening_sockets(self.port) < self.listeners:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout:g}s")
            time.sleep(0.05)

    def serving_pids(self) -> list[int]:
        """The processes that answer requests: the leaves of its process tree that listen."""
        assert self.process is not None
        tree = [self.process.pid, *descendants(self.process.pid)]
        serving = [pid for pid in tree if _listens(pid)]
        return serving or [self.process.pid]

    def peak_rss(self) -> dict[int, int]:
        """Peak resident memory (bytes, VmHWM) of each serving process, so far."""
        return {pid: vm_hwm(pid) for pid in self.serving_pids()}

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a graceful stop), then SIGKILL to the process group if need be."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name in parentheses may hold spaces: the ppid follows the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def vm_hwm(pid: int) -> int:
    """The peak resident set size of `pid` in bytes (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on `port` (SO_REUSEPORT gives one per process)."""
    return len(_listening_inodes(port))


def _listening_inodes(port: int | None = None) -> set[str]:
    """Inodes of the listening TCP sockets (on `port`, or on any port)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":
                continue
            if port is None or int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _listens(pid: int) -> bool:
    """Whether `pid` holds a listening TCP socket."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    listening = _listening_inodes()
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            return True
    return False


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time `pid` has used so far (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the file, 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process's reaped children (the load generators it ran)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """The share of one core each process group used between `start()` and `stop()`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        """name -> pids; the name `load` measures the reaped children instead."""
        self._before: dict[str, float] = {}
        self._started = 0.0

    def _read(self) -> dict[str, float]:
        return {
            name: children_cpu_seconds() if name == "load" else sum(map(cpu_seconds, pids))
            for name, pids in self.groups.items()
        }

    def start(self) -> None:
        self._started = time.monotonic()
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        """name -> percent of one core."""
        elapsed = time.monotonic() - self._started
        after = self._read()
        return {name: 100 * (after[name] - self._before[name]) / elapsed for name in after}
