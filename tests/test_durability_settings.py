"""The durability settings: flags, environment, and values that cannot work."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.cli import build_parser
from gateway.ops import flags
from gateway.settings import Settings, SettingsError


def test_defaults_survive_a_crash_and_remember_an_hour() -> None:
    settings = Settings.load(environ={})
    assert settings.spool_fsync == "everysec"
    assert settings.spool_max_bytes == 1024**3
    assert settings.dedupe_window == 3600
    assert settings.shutdown_grace == 10.0


def test_environment_and_flags() -> None:
    settings = Settings.load(
        environ={
            "GATEWAY_SPOOL_MAX_BYTES": "64M",
            "GATEWAY_SPOOL_SEGMENT_BYTES": "512k",
            "GATEWAY_SPOOL_FSYNC": "always",
            "GATEWAY_DEDUPE_WINDOW": "0",
            "GATEWAY_SHUTDOWN_GRACE": "2.5",
        }
    )
    assert settings.spool_max_bytes == 64 * 1024**2
    assert settings.spool_segment_bytes == 512 * 1024
    assert (settings.spool_fsync, settings.dedupe_window, settings.shutdown_grace) == (
        "always",
        0,
        2.5,
    )
    line = "serve --spool-max-bytes 1GiB --spool-fsync no --dedupe-window 60 --shutdown-grace 3"
    args = build_parser().parse_args([*line.split(), "--redis-timeout", "0.5"])
    flagged = flags.from_args(Settings, args, environ={"GATEWAY_SPOOL_FSYNC": "always"})
    assert flagged.redis_timeout == 0.5
    assert (
        flagged.spool_max_bytes,
        flagged.spool_fsync,
        flagged.dedupe_window,
        flagged.shutdown_grace,
    ) == (
        1024**3,
        "no",
        60,
        3.0,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("GATEWAY_SPOOL_FSYNC", "sometimes"),
        ("GATEWAY_SPOOL_MAX_BYTES", "0"),
        ("GATEWAY_SPOOL_MAX_BYTES", "lots"),
        ("GATEWAY_DEDUPE_WINDOW", "-1"),
        ("GATEWAY_SHUTDOWN_GRACE", "-1"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        Settings.load(environ={key: value})


async def test_head_of_health_for_load_balancers(client: TestClient[Any, Any]) -> None:
    assert (await client.head("/health")).status == 200
    assert (await client.head("/ready")).status == 200
