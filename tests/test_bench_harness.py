"""The benchmark harness's moving parts (bench/): its bodies are what the gateway accepts,
and it reads wrk's and redis-benchmark's output right. No timing is asserted here."""

from __future__ import annotations

from pathlib import Path

import msgspec
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from bench import features, pages, payloads
from bench.loadgen import parse_redis_benchmark, parse_wrk
from bench.ref_minimal import create_minimal_app
from bench.report import END, START, Row, write_between_markers
from bench.run import judge
from gateway.ingest.sources import Sources
from gateway.ops.embedded import RedisProcess
from tests.helpers.gateway import MakeClient
from tests.helpers.streams import stream_messages

BROWSER_HEADERS = {
    "Authorization": payloads.basic_auth(),
    "Content-Type": "text/plain",
    "Origin": payloads.ORIGIN,
}


def bench_sources(tmp_path: Path) -> Sources:
    path = tmp_path / "sources.toml"
    path.write_text(payloads.sources_toml())
    return Sources.from_file(path)


def test_track_body_is_a_browser_sized_message_with_one_id_slot() -> None:
    template = payloads.track_body()
    body = payloads.fill_ids(template, nonce=0xDEADBEEF, thread=1)
    assert template.count(payloads.ID_MARK.encode()) == 1
    assert 800 <= len(body) <= 1000
    message = msgspec.json.decode(body)
    assert message["messageId"] == "ajs-next-deadbeef001000000000000000000001"
    assert {"page", "userAgent", "library", "campaign", "locale", "screen"} <= set(
        message["context"]
    )


async def test_gateway_stores_the_track_body(
    make_client: MakeClient, redis: Redis, tmp_path: Path
) -> None:
    client = await make_client(sources=bench_sources(tmp_path))
    body = payloads.fill_ids(payloads.track_body(), nonce=7)
    answer = await client.post("/v1/t", data=body, headers=BROWSER_HEADERS)
    assert answer.status == 200, await answer.text()
    [stored] = await stream_messages(redis)
    assert stored["messageId"] == payloads.wrk_id(7, 0, 1)
    assert stored["_source"] == payloads.SOURCE_ID
    assert stored["context"]["ip"] == "127.0.0.1"  # a browser's message, enriched


async def test_gateway_stores_every_message_of_the_batch_body(
    make_client: MakeClient, redis: Redis, tmp_path: Path
) -> None:
    client = await make_client(sources=bench_sources(tmp_path))
    body = payloads.fill_ids(payloads.batch_body(100), nonce=8)
    headers = {"Authorization": payloads.basic_auth(), "Content-Type": "application/json"}
    answer = await client.post("/v1/batch", data=body, headers=headers)
    assert answer.status == 200, await answer.text()
    stored = await stream_messages(redis)
    assert [m["messageId"] for m in stored] == [payloads.wrk_id(8, 0, n) for n in range(1, 101)]


async def test_minimal_reference_stores_the_track_body_through_the_gateways_commit(
    aiohttp_client: AiohttpClient, redis: Redis, redis_server: RedisProcess, tmp_path: Path
) -> None:
    app = create_minimal_app(redis_server.url, bench_sources(tmp_path), tmp_path / "data")
    client = await aiohttp_client(app)
    body = payloads.fill_ids(payloads.track_body(), nonce=9)
    for _ in range(2):  # the second is a retry: dedupe drops it, as in the gateway
        answer = await client.post("/v1/t", data=body, headers=BROWSER_HEADERS)
        assert answer.status == 200, await answer.text()
    [stored] = await stream_messages(redis)
    assert stored["messageId"] == payloads.wrk_id(9, 0, 1)
    assert stored["type"] == "track"
    assert stored["receivedAt"]
    assert stored["_source"] == payloads.SOURCE_ID


WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080/v1/t
  1 threads and 64 connections
  15004 requests in 3.00s, 2.30MB read
  Non-2xx or 3xx responses: 4
Requests/sec:   4995.09
BENCH_RESULT {"requests":15004,"duration_us":3000000,"bytes":2415644,\
"errors":{"connect":0,"read":0,"write":0,"status":4,"timeout":0},\
"latency_us":{"mean":661.0,"p50":615,"p90":1012,"p99":1629,"p999":2218,"max":3391},\
"sent":15068,"late":2}
"""


def test_parse_wrk_reads_the_result_line() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.ok == 15000
    assert result.rate == 5000.0
    assert result.latency_us["p99"] == 1629
    assert (result.sent, result.late, result.failed) == (15068, 2, 4)


REDIS_BENCHMARK_CSV = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
    '"p99_latency_ms","max_latency_ms"\n'
    '"XADD bench:queue * data {""type"":""track"",""a"":1} source bench","116346.71",'
    '"5.354","0.976","4.143","11.575","19.567","39.455"\n'
)


def test_parse_redis_benchmark_reads_the_rate() -> None:
    assert parse_redis_benchmark(REDIS_BENCHMARK_CSV) == 116346.71


def test_results_replace_the_block_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nintro\n\n{START}\nold table\n{END}\n\n## After\n")
    write_between_markers(doc, "new table")
    assert doc.read_text() == f"# Performance\n\nintro\n\n{START}\nnew table\n{END}\n\n## After\n"


def test_ratios_pair_each_round_and_are_judged_on_the_median() -> None:
    def row(server: str, payload: str, round_: int, rate: float) -> Row:
        per_request = 1 if payload == "track" else 100
        mode = "peak" if server != "redis-benchmark XADD" else "n entries"
        return Row(
            server, payload, 64, f"{mode}, round {round_}", per_request, rate=rate, round=round_
        )

    rows = [
        row("bare aiohttp", "track", 1, 10_000),
        row("gateway, 1 process", "track", 1, 8_000),  # 0.80
        row("bare aiohttp", "track", 2, 20_000),
        row("gateway, 1 process", "track", 2, 9_000),  # 0.45
        row("bare aiohttp", "track", 3, 10_000),
        row("gateway, 1 process", "track", 3, 7_500),  # 0.75: median 0.75, met
        row("minimal gateway", "track", 1, 9_000),  # 0.90
        row("minimal gateway", "track", 3, 6_000),  # 0.60
        row("gateway, 2 processes", "batch of 100", 1, 40_000),
        row("redis-benchmark XADD", "stored entry", 1, 100_000),  # 0.40
        row("gateway, 2 processes", "batch of 100", 2, 60_000),
        row("redis-benchmark XADD", "stored entry", 2, 200_000),  # 0.30: not met
    ]
    track, batch = judge(rows)[:2]
    assert track.measured == (
        "median 0.75x (rounds: 0.80x, 0.45x, 0.75x);"
        " minimal gateway median 0.75x bare (rounds: 0.90x, 0.60x)"
    )
    assert track.met is True
    assert batch.measured.startswith("median 0.35x redis-benchmark (rounds: 0.40x, 0.30x)")
    assert batch.met is False


def test_feature_blocks_have_markers_of_their_own(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"{START}\nresults\n{END}\n")
    write_between_markers(doc, "features table", "features")
    write_between_markers(doc, "features again", "features")
    assert doc.read_text() == (
        f"{START}\nresults\n{END}\n\n"
        "<!-- bench:features:start -->\nfeatures again\n<!-- bench:features:end -->\n"
    )


def test_every_feature_variant_is_a_sources_file_the_gateway_loads(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_bytes(msgspec.json.encode(payloads.tracking_plan()))
    for variant in features.VARIANTS:
        path = tmp_path / "sources.toml"
        path.write_text(variant.sources_toml())
        sources = Sources.from_file(path)
        source = sources.resolve(payloads.WRITE_KEY)
        assert source is not None
        assert source.id == payloads.SOURCE_ID
        keys = sum(len(s.write_keys) for s in sources.configured)
        assert keys == (features.KEYS if variant.keys else 1)
        assert (payloads.SOURCE_ID in sources.plans) == variant.plan
        policed = variant.policies or variant.hashed
        assert (payloads.SOURCE_ID in sources.enforcers) == policed
        assert (payloads.SOURCE_ID in sources.limits) == policed


async def test_every_policy_variant_changes_the_stored_track_message(
    make_client: MakeClient, redis: Redis, tmp_path: Path
) -> None:
    """The hashing variant of bench/features.py has something to do in the harness's
    message, and the plan finds it valid (the benchmark times a planned event's own path)."""
    (tmp_path / "plan.json").write_bytes(msgspec.json.encode(payloads.tracking_plan()))
    path = tmp_path / "sources.toml"
    path.write_text(features.Variant("all", hashed=True, plan=True).sources_toml())
    client = await make_client(sources=Sources.from_file(path))
    body = payloads.fill_ids(payloads.track_body(), nonce=9)
    answer = await client.post("/v1/t", data=body, headers=BROWSER_HEADERS)
    assert answer.status == 200, await answer.text()
    [stored] = await stream_messages(redis)
    sent = payloads.track_message()
    assert stored["properties"]["name"] != sent["properties"]["name"]  # hashed
    assert stored["context"]["campaign"]["name"] != sent["context"]["campaign"]["name"]
    assert "quantity" not in stored["properties"]  # dropped
    assert stored["context"]["ip"] == "127.0.0.0"  # truncated
    assert stored["context"]["consent"] == {"categoryPreferences": {}}  # withheld
    assert "violations" not in stored["context"]


def test_open_pages_are_summed_up_in_one_line() -> None:
    output = (
        "page 1: 120 rows, 30 stats events, 5 left out (sampled), stayed open\n"
        "page 2: 80 rows, 30 stats events, 0 left out (sampled), disconnected: HTTP 401\n"
    )
    assert pages.summary(output, 2) == (
        "1 of 2 pages stayed open to the end; 200 rows shown in all (100 a page), "
        "5 left out by the feed's sampling"
    )
    assert pages.summary("Traceback: boom", 10) == "the pages did not run: Traceback: boom"


def _features_row(server: str, rate: float, cpu: float) -> Row:
    """A track run of `bench/features.py`: messages/s and the gateway's CPU share."""
    return Row(server, "track", 64, "peak", 1, rate=rate, cpu={"server 1": cpu}, round=1)


def test_feature_ratios_are_to_the_plain_runs_that_bracket_the_round() -> None:
    rows = [
        _features_row("none", 100.0, 50),
        _features_row("every policy", 90.0, 54),
        _features_row("none, again", 80.0, 60),
    ]
    judged = features._in_turn(rows)
    # Messages/s: 90 against the mean of 100 and 80; CPU a message: 0.6 against 0.5 and 0.75.
    rate, cpu, rate_median, cpu_median = features._medians(judged, "every policy", "track")
    assert (rate_median, round(cpu_median, 3)) == (1.0, 0.96)
    assert (rate, cpu) == ("1.00x (1.00)", "0.96x (0.96)")
    _, _, again, _ = features._medians(judged, "none, again", "track")
    assert again == 0.8


def test_together_runs_are_judged_against_their_partner() -> None:
    plain, policy = _features_row("none", 100.0, 50), _features_row("every policy", 95.0, 57)
    _, _, rate, cpu = features._medians([(policy, [plain])], "every policy", "track")
    assert (rate, round(cpu, 2)) == (0.95, 1.2)
