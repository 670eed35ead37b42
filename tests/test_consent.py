"""Consent per destination in the worker (`gateway.worker.consent`): a destination's required
categories against a message's `context.consent.categoryPreferences`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.worker.config import ConfigError, load_file
from gateway.worker.consent import denied
from gateway.worker.dispatch import Dispatcher
from gateway.worker.message import Message
from gateway.worker.metrics import StatsCollector
from gateway.worker.options import Stats
from tests.helpers.destinations import ListDestination


def message(n: int, consent: Any = None, attempt: int = 1) -> Message:
    body: dict[str, Any] = {"type": "track", "messageId": f"m{n}", "context": {}}
    if consent is not None:
        body["context"]["consent"] = consent
    return Message("gateway:events:{0}", f"{n}-0", b"", body, "web", attempt)


def prefs(**granted: Any) -> dict[str, Any]:
    return {"categoryPreferences": granted}


@pytest.mark.parametrize(
    ("consent", "expected"),
    [
        (None, None),  # no consent object: delivered (the gateway's no_consent decided)
        ({"other": 1}, None),  # no preferences in it: the same
        (prefs(advertising=True, analytics=True), None),
        (prefs(advertising=False, analytics=True), "advertising"),
        (prefs(analytics=True), "advertising"),  # not granted: withheld
        (prefs(advertising=True), "analytics"),
        (prefs(), "advertising"),  # `no_consent = "withhold"`'s mark
        (prefs(advertising="yes", analytics=True), "advertising"),  # only `true` grants
    ],
)
def test_denied(consent: Any, expected: str | None) -> None:
    body = {"context": {"consent": consent}} if consent is not None else {}
    assert denied(body, ("advertising", "analytics")) == expected
    assert denied(body, ()) is None


async def test_withheld_messages_reach_only_the_other_destination() -> None:
    ads = ListDestination("Ads")
    ads.consent = ("advertising",)
    warehouse = ListDestination("Warehouse")
    dispatcher = Dispatcher([ads, warehouse])
    batch = [
        message(1, prefs(advertising=True)),
        message(2, prefs(advertising=False)),
        message(3),
        message(4, prefs(analytics=True)),
        message(5, prefs(advertising=False), attempt=2),  # a retry: not counted again
    ]
    outcomes = await dispatcher.deliver(batch)
    assert outcomes == [{}] * 5  # every message is done: withheld is acknowledged
    assert ads.ids() == ["m1", "m3"]
    assert warehouse.ids() == ["m1", "m2", "m3", "m4", "m5"]
    assert dispatcher.withheld == {("Ads", "advertising"): 2}
    assert dispatcher.targets(batch[1]) == ["Warehouse"]
    stats = Stats(withheld=dispatcher.withheld)
    samples = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in StatsCollector(stats, "g").collect()
        for s in family.samples
    }
    labels = (("category", "advertising"), ("destination", "Ads"), ("group", "g"))
    assert ("gateway_worker_withheld_total", labels, 2) in samples


def test_consent_in_a_destination_table(tmp_path: Path) -> None:
    path = tmp_path / "destinations.toml"
    path.write_text(
        '[[destination]]\nname = "Ads"\nkind = "stdout"\nconsent = ["advertising"]\n'
        '[[destination]]\nname = "All"\nkind = "stdout"\n'
    )
    ads, everything = load_file(path)
    assert ads.consent == ("advertising",)
    assert everything.consent == ()
    path.write_text('[[destination]]\nname = "Ads"\nkind = "stdout"\nconsent = "advertising"\n')
    with pytest.raises(ConfigError, match="consent must be a list of category names"):
        load_file(path)
