"""Warnings a client can cause: one line per kind per interval, with the count left out."""

from __future__ import annotations

import logging

import pytest

from gateway.ops.quiet import Quiet

log = logging.getLogger("tests.quiet")


def test_one_line_per_kind_per_interval_then_the_count_suppressed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    quiet = Quiet(interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tests.quiet"):
        assert quiet.warning(log, "pixel_rejected", "refused %s", "a")
        for _ in range(5):
            assert not quiet.warning(log, "pixel_rejected", "refused %s", "b")
        assert quiet.warning(log, "unavailable", "503 %s", "c")  # another kind: its own budget
        now[0] += 10
        assert quiet.warning(log, "pixel_rejected", "refused %s", "d")
    lines = [(r.getMessage(), r.event, r.suppressed) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [
        ("refused a", "pixel_rejected", 0),
        ("503 c", "unavailable", 0),
        ("refused d (5 similar lines suppressed)", "pixel_rejected", 5),
    ]
