"""The harness's results as Markdown: the table, the ratios and targets, the machine."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bench.loadgen import WrkResult

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"

MB = 1024 * 1024


@dataclasses.dataclass
class Row:
    """One measured run."""

    server: str
    payload: str
    connections: int
    mode: str
    """`peak` (as fast as the connections allow) or `paced at N req/s`."""
    messages_per_request: int
    result: WrkResult | None = None
    rate: float | None = None
    """redis-benchmark rows: commands (entries) per second."""
    rss: dict[int, int] = dataclasses.field(default_factory=dict)
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    """`server <pid>` for each serving process, `redis`, `load` (the load generator):
    percent of one core during the run."""
    durable: str = ""
    """What the stream holds against what was acknowledged."""
    round: int = 0
    """Which round of an alternating pair (the gateway and its reference) this is; 0: none."""

    @property
    def requests_per_s(self) -> float:
        if self.result is not None:
            return self.result.rate
        return (self.rate or 0.0) / self.messages_per_request

    @property
    def messages_per_s(self) -> float:
        if self.result is not None:
            return self.result.rate * self.messages_per_request
        return self.rate or 0.0


@dataclasses.dataclass
class Target:
    """One of the issue's must-show figures, judged on this run."""

    what: str
    measured: str
    met: bool | None
    """`None` when this run could not measure it."""


def table(rows: list[Row]) -> str:
    """The Markdown table of every run."""
    lines = [
        "| server | payload | conns | load | requests/s | messages/s | p50 ms | p99 ms "
        "| peak RSS / process | CPU % server(s) / Redis / load gen | stream check |",
        "|---|---|--:|---|--:|--:|--:|--:|---|---|---|",
    ]
    for row in rows:
        result = row.result
        p50 = f"{result.latency_us['p50'] / 1000:.2f}" if result else "-"
        p99 = f"{result.latency_us['p99'] / 1000:.2f}" if result else "-"
        rss = " / ".join(f"{size / MB:.0f} MB" for size in row.rss.values()) or "-"
        servers = "+".join(f"{v:.0f}" for k, v in row.cpu.items() if k.startswith("server"))
        others = (f"{row.cpu[k]:.0f}" if k in row.cpu else "-" for k in ("redis", "load"))
        cpu = " / ".join([servers or "-", *others])
        lines.append(
            f"| {row.server} | {row.payload} | {row.connections or '-'} | {row.mode} "
            f"| {row.requests_per_s:,.0f} | {row.messages_per_s:,.0f} | {p50} | {p99} "
            f"| {rss} | {cpu} | {row.durable or '-'} |"
        )
    return "\n".join(lines)


def targets_table(targets: list[Target]) -> str:
    """The Markdown table of the targets."""
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    lines = ["| target | this run | verdict |", "|---|---|---|"]
    lines += [f"| {t.what} | {t.measured} | {verdict[t.met]} |" for t in targets]
    return "\n".join(lines)


def write_between_markers(path: Path, block: str, name: str = "results") -> None:
    """Put `block` between the `bench:<name>` markers of `path` (appended, with them, if
    absent)."""
    text = path.read_text() if path.exists() else ""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    fenced = f"{start}\n{block.strip()}\n{end}"
    if start in text and end in text:
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
        text = pattern.sub(lambda _: fenced, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + fenced + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
