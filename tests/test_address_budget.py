"""The per-address budget: token buckets in memory, a bounded table, trusted proxies."""

from __future__ import annotations

import ipaddress
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.errors import ApiError
from gateway.http.address_budget import AddressBudget, admission
from tests.helpers.gateway import MakeClient


def test_a_burst_then_the_rate() -> None:
    now = [0.0]
    budget = AddressBudget(rate=10, burst=5, size=100, clock=lambda: now[0])
    assert [budget.take("192.0.2.1") for _ in range(5)] == [0.0] * 5
    assert budget.take("192.0.2.1") == pytest.approx(0.1)  # the next token in 1/10 s
    assert budget.take("192.0.2.2") == 0.0  # another address has its own bucket
    now[0] += 0.25
    assert budget.take("192.0.2.1") == 0.0
    assert budget.take("192.0.2.1") == 0.0
    assert budget.take("192.0.2.1") > 0


def test_the_table_is_bounded_and_forgets_the_oldest() -> None:
    budget = AddressBudget(rate=1, burst=1, size=3, clock=lambda: 0.0)
    for n in range(1000):
        budget.take(f"10.0.{n // 250}.{n % 250}")
    assert len(budget) == 3
    assert budget.take("10.0.3.249") > 0  # still remembered: the newest
    assert budget.take("10.0.0.0") == 0.0  # forgotten: a full bucket again


def test_ipv6_is_counted_by_its_64() -> None:
    budget = AddressBudget(rate=1, burst=2, size=10, clock=lambda: 0.0)
    assert budget.take("2001:db8:1:2::1") == 0.0
    assert budget.take("2001:db8:1:2:ffff::9") == 0.0
    assert budget.take("2001:db8:1:2:abcd::7") > 0  # the same /64
    assert budget.take("2001:db8:1:3::1") == 0.0
    assert budget.take("::ffff:192.0.2.9") == 0.0
    assert budget.take("192.0.2.9") == 0.0
    assert budget.take("192.0.2.9") > 0  # the IPv4-mapped address is that IPv4 address


def test_zero_rate_admits_everyone() -> None:
    assert admission(AddressBudget(0, 1, 10), ()) is None


def test_a_trusted_proxy_s_client_is_the_address_counted() -> None:
    budget = AddressBudget(rate=1, burst=1, size=10, clock=lambda: 0.0)
    admit = admission(budget, (ipaddress.ip_network("127.0.0.0/8"),))
    assert admit is not None

    proxy = mock.Mock()
    proxy.get_extra_info.return_value = ("127.0.0.1", 40000)

    def request(client: str) -> Any:
        headers = {"X-Forwarded-For": client}
        return make_mocked_request("GET", "/", headers=headers, transport=proxy)

    admit(request("203.0.113.1"))
    admit(request("203.0.113.2"))  # the same proxy, another client
    with pytest.raises(ApiError) as refused:
        admit(request("203.0.113.1"))
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "1"


async def test_429_with_retry_after_and_counted(make_client: MakeClient) -> None:
    client = await make_client(address_rate=1, address_burst=2)
    statuses = [(await client.get("/health")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    answer = await client.post("/v1/t", json={"userId": "u", "event": "E"})
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "1"
    assert (await answer.json())["Message"] == "Too many requests from this address"
