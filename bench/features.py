"""The harness's figures with the control plane's features at size, against none:

    python bench/features.py [--duration 8] [--rounds 3] [--only VARIANT ...] [--together]
                             [--out docs/performance.md]

One gateway process per variant, each on its own Redis-compatible server (suppressed ids
live in Redis, and must not reach the other variants): no feature; a sources table of
10,000 keys; 100,000 suppressed user ids; every source policy on (IP, fields, consent,
origins, a rate limit the load never reaches), then with two fields of each message hashed
and one dropped; a tracking plan of 50 events (allow mode); all of them at once; and the
plain gateway again, last, to show the noise. Each round drives every variant with the
harness's track load and its batches of 100 (`bench/run.py`'s loads, stream check and all),
one after the other, and each variant's figure is judged by its median ratio to the plain
gateway's in the same round, as `bench/run.py` judges its own ratios: on a shared machine
the speed moves between minutes, not between neighbouring runs. "none" is the mean of the
plain gateway's run first in the round and its run last, so that a drift within the round
falls on both sides; the last line (`none, again` against the first run) shows the noise.

On a machine whose speed moves within seconds, even that is too coarse: `--together` drives
each variant at the same moment as the plain gateway, each with its own wrk, so whatever
slows the machine slows both, and the two gateways share its cores as the scheduler shares
them; their ratio is then the ratio of what a message costs each. `none, again` beside `none`
shows what the method resolves. (The load generator's CPU column is then both wrk's.)
`--only VARIANT` measures only that variant (repeat it) beside the plain gateway.
The table goes between the `bench:features` markers of --out.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
from redis import Redis

from bench import payloads
from bench.loadgen import Load
from bench.procs import ROOT, Server
from bench.report import Row, table, write_between_markers
from bench.run import Harness, machine_facts
from gateway.ops.embedded import RedisProcess

KEYS = 10_000
KEYS_PER_SOURCE = 10
SUPPRESSED = 100_000
LIMIT = 10_000_000
"""The rate limit's rate and burst: paid for per request, never reached."""
WITHIN = 0.10
"""How far under the plain gateway a variant may fall (the issues' "within 10 %")."""
PAYLOADS = ("track", "batch of 100")
Judged = list[tuple[Row, list[Row]]]
"""Each variant's run with the plain gateway's runs it is judged against."""

EVERY_POLICY = f"""ip = "truncate"
allowed_origins = ["{payloads.ORIGIN}"]
no_consent = "withhold"
hash_secret = "bench-secret-0123456789"
[source.fields]
"traits.email" = "hash"
"context.traits.email" = "hash"
"properties.card" = "drop"
[source.rate_limit]
rate = {LIMIT}
burst = {LIMIT}
"""
"""Every policy, as the issue's example source has them (docs/policies.md): a browser's
`track` has none of those fields, so they cost their lookups; the rest applies to it whole."""
HASHED = """"properties.name" = "hash"
"context.campaign.name" = "hash"
"properties.quantity" = "drop"
"""
"""Fields the harness's message has: two values hashed (two HMACs, not one remembered) and
one dropped in every message, the policies' worst case for it."""
PLAN = """[source.tracking_plan]
path = "plan.json"
mode = "allow"
"""


@dataclasses.dataclass(frozen=True)
class Variant:
    """A gateway configuration measured against the plain one."""

    name: str
    keys: bool = False
    suppressed: bool = False
    policies: bool = False
    hashed: bool = False
    plan: bool = False

    def sources_toml(self) -> str:
        """The sources file: the harness's source, with what this variant turns on, then
        (for `keys`) sources enough to make the table 10,000 keys."""
        text = f'[[source]]\nid = "{payloads.SOURCE_ID}"\nwrite_keys = ["{payloads.WRITE_KEY}"]\n'
        text += EVERY_POLICY if self.policies or self.hashed else ""
        text = (
            text.replace("[source.fields]\n", f"[source.fields]\n{HASHED}") if self.hashed else text
        )
        text += PLAN if self.plan else ""
        if self.keys:
            for n in range(KEYS // KEYS_PER_SOURCE):
                keys = ", ".join(
                    f'"wk_other_{n}_{k}_Zq8Lm2Rt"' for k in range(KEYS_PER_SOURCE - (n == 0))
                )
                text += f'[[source]]\nid = "other-{n}"\nwrite_keys = [{keys}]\n'
        return text


VARIANTS = (
    Variant("none"),
    Variant(f"{KEYS:,} keys", keys=True),
    Variant(f"{SUPPRESSED:,} suppressed ids", suppressed=True),
    Variant("every policy", policies=True),
    Variant("every policy, 2 fields hashed", hashed=True),
    Variant("tracking plan (50 events)", plan=True),
    Variant("all of them", keys=True, suppressed=True, policies=True, plan=True),
    Variant("none, again"),
)
"""The last is the first again: how far the machine moves a ratio within a round."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every variant (3)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="VARIANT",
        help="measure this variant (repeat for more) beside the plain gateway; default: all",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="drive each variant at the same time as the plain gateway, not in turn",
    )
    parser.add_argument(
        "--out", default="docs/performance.md", help="file to write into, - for none"
    )
    options = parser.parse_args(argv)
    names = [variant.name for variant in VARIANTS]
    unknown = [name for name in options.only if name not in names]
    if unknown:
        parser.error(f"no variant {', '.join(unknown)}; the variants: {'; '.join(names[1:-1])}")
    variants = [
        v for v in VARIANTS if not options.only or v.name in (*options.only, "none", "none, again")
    ]
    started = time.monotonic()
    machine = machine_facts()
    rows: list[Row] = []
    judged: Judged = []
    with (
        tempfile.TemporaryDirectory(prefix="gateway-features-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        runs = [stack.enter_context(_started(variant, Path(tmp), options)) for variant in variants]
        for round_ in range(1, options.rounds + 1):
            if options.together:
                for run in runs[1:]:
                    for payload in PAYLOADS:
                        plain, row = _together(runs[0], run, payload, round_)
                        rows += [plain, row]
                        judged.append((row, [plain]))
                continue
            for harness, server in runs:
                for payload in PAYLOADS:
                    harness.measure(server, _load(harness, payload), round_=round_)
                    rows.append(harness.rows[-1])
        if not options.together:
            judged = _in_turn(rows)
    block = render(rows, judged, variants, machine, options, time.monotonic() - started)
    print(block)
    if options.out != "-":
        write_between_markers(ROOT / options.out, block, "features")
        print(f"\nwritten into {options.out}")
    return 0


@contextlib.contextmanager
def _started(
    variant: Variant, tmp: Path, options: argparse.Namespace
) -> Iterator[tuple[Harness, Server]]:
    """The variant's Redis and gateway, running; a harness bound to them."""
    home = tmp / variant.name.replace(" ", "_").replace(",", "")
    home.mkdir()
    suppressed = SUPPRESSED if variant.suppressed else 0
    harness = Harness(
        home,
        argparse.Namespace(
            duration=options.duration,
            connections=options.connections,
            threads=1,
            rounds=options.rounds,
            suppressed=suppressed,
            plan=False,
            inspector_pages=0,
        ),
    )
    harness.sources.write_text(variant.sources_toml())
    (home / "plan.json").write_bytes(msgspec.json.encode(payloads.tracking_plan()))
    redis_server = RedisProcess(home / "redis")
    redis_server.start()
    assert redis_server.process is not None
    harness.redis_port = redis_server.port
    harness.redis_pid = redis_server.process.pid
    harness.redis = Redis.from_url(redis_server.url)
    harness.redis.config_set("lazyfree-lazy-user-flush", "no")
    try:
        with harness.gateway(redis_server.url, 1) as server:
            server.name = variant.name
            yield harness, server
    finally:
        harness.redis.close()
        redis_server.stop()


def _load(harness: Harness, payload: str) -> Load:
    return harness.track if payload == "track" else harness.batch


def _together(
    plain: tuple[Harness, Server], other: tuple[Harness, Server], payload: str, round_: int
) -> tuple[Row, Row]:
    """The plain gateway and `other` driven at the same moment, each by its own wrk on its
    own Redis: their rows. Whatever else the machine runs slows both alike, and the two
    share its cores as the scheduler shares them, so the ratio of their figures is the
    ratio of what a message costs each, end to end."""
    pairs = (plain, other)
    with ThreadPoolExecutor(len(pairs)) as pool:
        list(pool.map(lambda run: run[0].ready(run[1], _load(run[0], payload)), pairs))
        ready = threading.Barrier(len(pairs))

        def drive(run: tuple[Harness, Server]) -> Row:
            harness, server = run
            ready.wait()
            harness.drive(server, _load(harness, payload), round_=round_)
            return harness.rows[-1]

        first, second = pool.map(drive, pairs)
    return first, second


def _in_turn(rows: list[Row]) -> Judged:
    """Each variant's runs, driven in turn, with the plain gateway's runs first in the round
    and last (`none, again`): a drift of the machine within the round falls on both sides
    alike. `none, again` itself is judged against the first."""
    plain: dict[tuple[int, str], list[Row]] = {}
    for row in rows:
        if row.server in ("none", "none, again"):
            plain.setdefault((row.round, row.payload), []).append(row)
    return [
        (row, plain[row.round, row.payload][: 1 if row.server == "none, again" else 2])
        for row in rows
        if row.server != "none"
    ]


def _cpu_per_message(row: Row) -> float:
    """µs of the gateway's processes' CPU a message."""
    serving = sum(share for name, share in row.cpu.items() if name.startswith("server"))
    return serving / 100 / row.messages_per_s * 1e6


def _medians(judged: Judged, name: str, payload: str) -> tuple[str, str, float, float]:
    """The variant's messages/s and CPU a message over the plain gateway's: two cells
    (median and rounds), and the two medians."""
    cells, medians = [], []
    for metric in (lambda row: row.messages_per_s, _cpu_per_message):
        ratios = [
            metric(row) / statistics.mean(map(metric, plain))
            for row, plain in judged
            if row.server == name and row.payload == payload
        ]
        medians.append(statistics.median(ratios))
        cells.append(f"{medians[-1]:.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})")
    return cells[0], cells[1], medians[0], medians[1]


def render(
    rows: list[Row],
    judged: Judged,
    variants: list[Variant],
    machine: dict[str, str],
    options: argparse.Namespace,
    elapsed: float,
) -> str:
    """The results block: each variant's median ratios to none, then every run."""
    lines = [
        "| variant | payload | messages/s: median ratio to none (rounds) "
        "| gateway CPU a message: median ratio to none (rounds) | within 10 % |",
        "|---|---|---|---|---|",
    ]
    for variant in variants[1:]:
        for payload in PAYLOADS:
            rate, cpu, rate_median, cpu_median = _medians(judged, variant.name, payload)
            verdict = rate_median >= 1 - WITHIN and cpu_median <= 1 + WITHIN
            lines.append(
                f"| {variant.name} | {payload} | {rate} | {cpu} | "
                f"{'yes' if verdict else '**no**'} |"
            )
    facts = "\n".join(f"- {key}: {value}" for key, value in machine.items())
    flags = "".join(f' --only "{name}"' for name in options.only)
    flags += " --together" if options.together else ""
    how = (
        "each variant driven at the same time as the plain gateway (its row just before)"
        if options.together
        else "the variants driven in turn; none: the mean of the plain gateway's runs first "
        "and last in the round (none, again)"
    )
    return f"""### Features at size, last run

`python bench/features.py --duration {options.duration:g} --connections {options.connections} \
--rounds {options.rounds}{flags}`: {elapsed:.0f} s in all, one gateway process per variant, \
{how}.

{facts}

{chr(10).join(lines)}

{table(rows)}
"""


if __name__ == "__main__":
    sys.exit(main())
