"""`bench/run.py --inspector-pages N`: live inspector pages open while a gateway is measured.

The pages are `bench/inspector_load.py` in a process of its own: N Server-Sent-Events feeds of
the admin listener, read from the gateway's first start to its stop, so that every run of
that gateway is made with them open. They run on the machine under test (a real page would
be on a laptop elsewhere), so what they cost shows whole in the figures, reader included.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

from bench.procs import ROOT

TOKEN = "bench-admin-token-0123456789abcdef"
"""The admin token the harness's gateways run with when pages are open."""

_LINE = re.compile(r"page \d+: (\d+) rows, (\d+) stats events, (\d+) left out")


@contextlib.contextmanager
def opened(name: str, admin_port: int, pages: int, reports: list[str]) -> Iterator[None]:
    """Keep `pages` feeds open on `admin_port` inside the block; then add one line on what
    they received to `reports`."""
    command = [sys.executable, "-m", "bench.inspector_load", "--pages", str(pages)]
    command += ["--admin-url", f"http://127.0.0.1:{admin_port}", "--admin-token", TOKEN]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # it prints what each page received, then exits
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        reports.append(f"{name}: {summary(output, pages)}")


def summary(output: str, pages: int) -> str:
    """What `bench.inspector_load` printed, in one line."""
    lines = output.strip().splitlines()
    counts = [tuple(map(int, m.groups())) for line in lines if (m := _LINE.match(line))]
    stayed = sum("stayed open" in line for line in lines)
    if not counts:
        return f"the pages did not run: {output.strip()[-300:] or 'no output'}"
    rows = sum(c[0] for c in counts)
    left_out = sum(c[2] for c in counts)
    return (
        f"{stayed} of {pages} pages stayed open to the end; {rows:,} rows shown in all "
        f"({rows // len(counts):,} a page), {left_out:,} left out by the feed's sampling"
    )
