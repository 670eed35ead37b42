"""rudder-sdk-node (npm), run by node against the gateway: a backfill keeps its `timestamp`."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from redis.asyncio import Redis

from tests.helpers.browser import HERE
from tests.helpers.gateway import MakeClient
from tests.helpers.missing import missing
from tests.helpers.streams import stream_messages

pytestmark = pytest.mark.slow

SDK = HERE / "node_modules" / "@rudderstack" / "rudder-sdk-node"

SCRIPT = """
const Analytics = require(process.argv[1]);
const client = new Analytics("wk_node", {dataPlaneUrl: process.argv[2], logLevel: "error"});
client.track({userId: "u1", event: "Imported", timestamp: new Date("2020-01-02T03:04:05.678Z")});
client.track({userId: "u1", event: "Live"});
client.flush().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
"""


async def test_rudder_sdk_node_backfill_keeps_its_timestamp(
    make_client: MakeClient, redis: Redis
) -> None:
    node = shutil.which("node")
    if node is None:
        missing(f"node is not installed: `apt-get install -y nodejs npm`, then `npm ci` in {HERE}")
    if not SDK.exists():
        missing(f"@rudderstack/rudder-sdk-node is not installed: run `npm ci` in {HERE}")
    client = await make_client()
    base = str(client.make_url("")).rstrip("/")
    process = await asyncio.create_subprocess_exec(
        node, "-e", SCRIPT, str(SDK), base, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    imported, live = await stream_messages(redis)
    assert imported["context"]["library"]["name"] == "analytics-node"
    # The caller's event time, kept; the SDK's own clock stays in `originalTimestamp`.
    assert imported["timestamp"] == "2020-01-02T03:04:05.678Z"
    assert imported["originalTimestamp"] > "2025"
    # Without a caller's timestamp, `timestamp` is the skew-corrected `originalTimestamp`.
    assert live["timestamp"] > "2025"
