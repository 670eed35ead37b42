"""`integrations` routing, as Segment and MetaRouter define it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.worker.routing import reaches

DESTINATIONS = ("Mixpanel", "Amplitude")


@pytest.mark.parametrize(
    ("integrations", "expected"),
    [
        (None, {"Mixpanel", "Amplitude"}),
        ({}, {"Mixpanel", "Amplitude"}),
        ({"All": True}, {"Mixpanel", "Amplitude"}),
        ({"All": False}, set()),
        ({"All": False, "Mixpanel": True}, {"Mixpanel"}),
        ({"Mixpanel": False}, {"Amplitude"}),
        ({"All": True, "Mixpanel": False}, {"Amplitude"}),
        ({"All": False, "Amplitude": {"apiKey": "x"}}, {"Amplitude"}),  # options mean on
        ({"All": False, "mixpanel": True}, {"Mixpanel"}),  # case-insensitive fallback
        ({"All": False, "Mixpanel": "yes"}, set()),  # not a switch: the default holds
        ({"All": None, "Amplitude": False}, {"Mixpanel"}),
        ({"Google Analytics": False}, {"Mixpanel", "Amplitude"}),  # another destination
        ("not an object", {"Mixpanel", "Amplitude"}),
    ],
)
def test_reaches(integrations: Any, expected: set[str]) -> None:
    message: dict[str, Any] = {"type": "track", "event": "E", "userId": "u"}
    if integrations is not None:
        message["integrations"] = integrations
    assert {name for name in DESTINATIONS if reaches(message, name)} == expected


def test_an_exact_key_wins_over_one_differing_in_case() -> None:
    message = {"integrations": {"All": False, "mixpanel": True, "Mixpanel": False}}
    assert not reaches(message, "Mixpanel")
    assert reaches(message, "MIXPANEL")
