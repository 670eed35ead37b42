"""What a rate-limit check costs, measured on the embedded server.

Runs N checks through `gateway.store.ratelimit.RateLimiter`, one at a time and then 64 at
once over 4 callers, for two limits no check reaches: 100/s (Intilery's default, too slow
for leases: every check is asked of Redis) and 10^9/s (spent from the process's leases),
beside the same tasks without a check, and prints the CPU and wall time per check and the
writes to Redis per check. Run: `python bench/ratelimit.py [N]`; results go in
docs/intilery.md and docs/policies.md.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

from gateway.ops.embedded import RedisProcess
from gateway.store.ratelimit import Limit, RateLimiter

LIMITS: dict[str, Limit | None] = {
    "no check": None,
    "100/s (asked)": Limit(rate=100, burst=10**9),
    "10^9/s (leased)": Limit(rate=1e9, burst=10**9),
}
"""`no check`: a request's task without one, what the others are measured against."""


async def _unchecked() -> None:
    """A request's task without a check."""


async def measure(url: str, count: int) -> None:
    limiter = RateLimiter(url, timeout=2.0, processes=1)
    try:
        for name, limit in LIMITS.items():
            if limit is not None:
                await limiter.check(f"warm-up {name}", limit)
        for (name, limit), in_flight in itertools.product(LIMITS.items(), (1, 64)):
            done = 0
            cpu, wall, flushes = time.process_time(), time.monotonic(), limiter.flushes
            while done < count:
                callers = [f"{name} {i % 4}" for i in range(in_flight)]
                await asyncio.gather(
                    *(
                        _unchecked() if limit is None else limiter.check(caller, limit)
                        for caller in callers
                    )
                )
                done += in_flight
            print(
                f"{name:>16}, {in_flight:>2} in flight: "
                f"{(time.process_time() - cpu) / done * 1e6:6.1f} µs CPU/check, "
                f"{(time.monotonic() - wall) / done * 1e6:7.1f} µs/check, "
                f"{(limiter.flushes - flushes) / done:.3f} writes/check"
            )
    finally:
        await limiter.close()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as directory:
        server = RedisProcess(Path(directory))
        server.start()
        try:
            asyncio.run(measure(server.url, count))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
